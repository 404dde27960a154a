"""A LitGPT checkpoint, converted by LitGPT's own converter (`litgpt convert_from_litgpt`), comes in
with behemoth.hf.from_transformers and computes LitGPT's logits. Skipped unless litgpt is installed
(it pins an older huggingface_hub than transformers 5 needs: docs/huggingface.md says how this was run)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
litgpt = pytest.importorskip("litgpt")

from behemoth import hf  # noqa: E402


def test_a_litgpt_checkpoint_converted_by_litgpt(tiny, tmp_path):
    from litgpt import GPT, Config
    from litgpt.scripts.convert_lit_checkpoint import convert_lit_checkpoint
    from litgpt.utils import save_config

    vocab = tiny.info["vocabulary"]["size"]
    config = Config(name="pythia-behemoth-tiny", block_size=64, vocab_size=vocab, padding_multiple=128, n_layer=2,
                    n_embd=64, n_head=4, intermediate_size=256, rotary_percentage=0.25, parallel_residual=True, bias=True)
    assert config.padded_vocab_size == -(-vocab // 128) * 128 > vocab     # 1408 rows for 1407 tokens
    torch.manual_seed(3)
    model = GPT(config).eval()
    with torch.no_grad():   # LitGPT leaves the initialisation to the trainer: give every weight some size
        for name, p in model.named_parameters():
            layer_norm_gain = p.ndim == 1 and name.endswith(".weight")
            p.copy_(torch.randn_like(p) * (0.1 if p.ndim > 1 else 0.02) + (1.0 if layer_norm_gain else 0.0))
    checkpoint = tmp_path / "out" / "pretrain" / "final"
    checkpoint.mkdir(parents=True)
    torch.save({"model": model.state_dict()}, checkpoint / "lit_model.pth")   # as litgpt pretrain saves it
    save_config(config, checkpoint)                                           # model_config.yaml

    hf_dir = tmp_path / "hf-model"
    convert_lit_checkpoint(checkpoint, hf_dir)                                # = litgpt convert_from_litgpt
    assert sorted(p.name for p in hf_dir.iterdir()) == ["model.pth"]
    with pytest.raises(FileNotFoundError, match="no config.json"):
        hf.from_transformers(hf_dir, dataset=tiny)
    (hf_dir / "config.json").write_text(json.dumps(hf.litgpt_config(checkpoint / "model_config.yaml"), indent=2))
    shutil.copy(hf_dir / "config.json", tmp_path / "config.json")
    tokenizer = hf.official_tokenizer(tiny)
    (hf_dir / "tokenizer.json").write_text(json.dumps(tokenizer))            # checked against the dataset

    tokens = np.stack([s[:12] for s in tiny.sequences()[:4]]).astype(np.int32)
    with torch.no_grad():
        want = model(torch.from_numpy(tokens.astype(np.int64))).numpy()
    with hf.from_transformers(hf_dir, dataset=tiny) as ours:
        assert ours.vocab_size == config.padded_vocab_size
        got = ours.logits(tokens)
    assert float(want.std()) > 0.3                                           # far from uniform
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))
