"""Hugging Face folders without torch: behemoth.hf.save_transformers / from_transformers(folder)
and the vocabulary checks, by round trips and folders changed on purpose.

Needs numpy, h5py and safetensors only (CI installs neither torch nor transformers)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

safetensors_numpy = pytest.importorskip("safetensors.numpy")

import behemoth  # noqa: E402
from behemoth import Model, hf  # noqa: E402


def batch(ds, n=4, width=10):
    return np.stack([s[:width] for s in ds.sequences()[:n]]).astype(np.int32)


# ---- models ---------------------------------------------------------------------------------------

def test_round_trip_through_a_folder_is_exact(trained, tiny, tmp_path):
    folder = hf.save_transformers(trained, tmp_path / "hf", dataset=tiny)
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == \
        ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["architectures"] == ["GPTNeoXForCausalLM"] and config["vocab_size"] == trained.vocab_size
    assert config["rotary_pct"] == config["rope_parameters"]["partial_rotary_factor"] == 0.25
    saved = safetensors_numpy.load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert set(saved) == set(trained.tensors()) and "embed_out.weight" in saved
    back = hf.from_transformers(folder, dataset=tiny)
    for name in trained.tensors():
        assert np.array_equal(back.tensor(name), trained.tensor(name)), name
    assert back.config == {**trained.config, "preset": back.config["preset"], "seed": back.config["seed"]}
    np.testing.assert_array_equal(back.logits(batch(tiny)), trained.logits(batch(tiny)))
    # the model is made for the dataset: it evaluates as the original does
    assert back.evaluate(tiny, groups="sro")["groups"]["sro"]["accuracy"] == 1
    # and back out again: the same bytes
    hf.save_transformers(back, tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (tmp_path / "hf" / "model.safetensors").read_bytes()
    back.close()


def test_a_model_file_a_sequential_model_and_half_precision(tiny, tmp_path):
    with Model.create(dataset=tiny, preset="tiny", parallel_residual=False, rotary_pct=0.5, layers=1) as m:
        m.save(tmp_path / "m.h5")
        hf.save_transformers(tmp_path / "m.h5", tmp_path / "hf")
        config = json.loads((tmp_path / "hf" / "config.json").read_text())
        assert config["use_parallel_residual"] is False and config["rope_parameters"]["partial_rotary_factor"] == 0.5
        # float16 and bfloat16 weights are widened exactly
        weights = safetensors_numpy.load_file(str(tmp_path / "hf" / "model.safetensors"))
        half = {k: v.astype(np.float16) for k, v in weights.items()}
        safetensors_numpy.save_file(half, str(tmp_path / "hf" / "model.safetensors"))
        with hf.from_transformers(tmp_path / "hf") as h:
            for k, v in half.items():
                assert np.array_equal(h.tensor(k), v.astype(np.float32)), k
            assert h.config["parallel_residual"] is False and h.config["rotary_pct"] == 0.5
        write_bf16(tmp_path / "hf" / "model.safetensors", weights)
        with hf.from_transformers(tmp_path / "hf") as b:
            for k, v in weights.items():
                want = (v.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)   # bf16: the top 16 bits
                assert np.array_equal(b.tensor(k), want), k


def write_bf16(path, weights):
    """A safetensors file of bfloat16 tensors (truncated float32), written by hand: numpy has no bfloat16."""
    header, blobs, offset = {}, [], 0
    for name, v in sorted(weights.items()):
        raw = (np.ascontiguousarray(v, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def test_shards_and_bad_folders(trained, tmp_path):
    hf.save_transformers(trained, tmp_path / "hf")
    weights = safetensors_numpy.load_file(str(tmp_path / "hf" / "model.safetensors"))
    shard = tmp_path / "sharded"
    shard.mkdir()
    shutil.copy(tmp_path / "hf" / "config.json", shard / "config.json")
    names = sorted(weights)
    index = {}
    for i, part in enumerate((names[:10], names[10:])):
        file = f"model-0000{i + 1}-of-00002.safetensors"
        safetensors_numpy.save_file({k: weights[k] for k in part}, str(shard / file))
        index.update({k: file for k in part})
    (shard / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}))
    with hf.from_transformers(shard) as m:
        assert np.array_equal(m.tensor("embed_out.weight"), trained.tensor("embed_out.weight"))

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="none of model.safetensors"):
        hf.from_transformers(tmp_path / "empty")
    (shard / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json.*litgpt_config"):
        hf.from_transformers(shard)

    def folder_with(change_config=None, change_weights=None):
        d = tmp_path / "bad"
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(tmp_path / "hf", d)
        config = json.loads((d / "config.json").read_text())
        w = dict(weights)
        if change_config:
            change_config(config)
        if change_weights:
            change_weights(w)
        (d / "config.json").write_text(json.dumps(config))
        safetensors_numpy.save_file(w, str(d / "model.safetensors"))
        return d

    cases = [
        (dict(change_config=lambda c: c.update(model_type="llama")), "GPT-NeoX models only"),
        (dict(change_config=lambda c: c.update(tie_word_embeddings=True)), "untied"),
        (dict(change_config=lambda c: c.update(hidden_act="gelu_new")), "exact"),
        (dict(change_config=lambda c: c.update(rotary_pct=0.5)), "rotary fraction is given differently"),
        (dict(change_config=lambda c: c["rope_parameters"].update(rope_type="linear")), "scaled rotary"),
        (dict(change_config=lambda c: c.update(hidden_size=32)), "shape"),
        (dict(change_weights=lambda w: w.pop("gpt_neox.layers.0.mlp.dense_4h_to_h.bias")), "no values for"),
        (dict(change_weights=lambda w: w.update(extra=np.zeros(3, np.float32))), "no tensor extra"),
        (dict(change_weights=lambda w: w.update({"lm_head.weight": w["embed_out.weight"]})), "twice"),
        (dict(change_weights=lambda w: w.update({"gpt_neox.embed_in.weight": np.zeros((5, 5), np.int32)})), "dtype int32"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            hf.from_transformers(folder_with(**kwargs))
    nan = dict(weights)
    nan["gpt_neox.final_layer_norm.bias"] = np.full_like(nan["gpt_neox.final_layer_norm.bias"], np.nan)
    with pytest.raises(behemoth.InvalidArgumentError, match="finite"):
        hf.from_transformers(folder_with(change_weights=lambda w: w.update(nan)))
    # attention_bias false: the attention's biases are absent, and zero
    def no_attention_bias(w):
        for k in [k for k in w if k.endswith(("attention.query_key_value.bias", "attention.dense.bias"))]:
            del w[k]
    with hf.from_transformers(folder_with(lambda c: c.update(attention_bias=False), no_attention_bias)) as m:
        assert not m.tensor("gpt_neox.layers.1.attention.dense.bias").any()


def test_vocabulary_checks(trained, tiny, tmp_path):
    folder = hf.save_transformers(trained, tmp_path / "hf", dataset=tiny)
    other = behemoth.Dataset.generate(preset="tiny", subjects=80)   # a larger vocabulary
    assert other.info["vocabulary"]["size"] > tiny.info["vocabulary"]["size"]
    with pytest.raises(ValueError, match=r"vocabulary of 1407 tokens but the dataset uses \d+: the model was trained on another"):
        hf.from_transformers(folder, dataset=other)
    # the same size, other tokens: the tokenizer check names the first difference
    tok = json.loads((tmp_path / "hf" / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    swap = [t for t, i in vocab.items() if i in (3, 4)]
    vocab[swap[0]], vocab[swap[1]] = vocab[swap[1]], vocab[swap[0]]
    (tmp_path / "hf" / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ValueError, match=r"tokenizer.json has 'ĠRR' at id 3 but the dataset's official tokenizer has 'ĠSS'"):
        hf.from_transformers(folder, dataset=tiny)
    hf.from_transformers(folder).close()      # without a dataset nothing is checked
    (tmp_path / "hf" / "tokenizer.json").unlink()
    hf.from_transformers(folder, dataset=tiny).close()


def test_a_padded_vocabulary_is_accepted_and_works(trained, tiny, tmp_path):
    """LitGPT pads the embedding rows to a multiple of 128: the engine takes a vocabulary larger than
    the dataset's (evaluation, editing and tracing only ever use the dataset's ids)."""
    hf.save_transformers(trained, tmp_path / "hf", dataset=tiny)
    weights = safetensors_numpy.load_file(str(tmp_path / "hf" / "model.safetensors"))
    n = trained.vocab_size
    padded = -(-n // 128) * 128 + 128          # 1536: more than one padding row
    for name in ("gpt_neox.embed_in.weight", "embed_out.weight"):
        w = weights[name]
        pad = np.zeros((padded - n, w.shape[1]), np.float32)
        if name == "embed_out.weight":
            pad[:] = -0.1                          # trained padding rows: never a target, pushed down
        weights[name] = np.concatenate([w, pad])
    safetensors_numpy.save_file(weights, str(tmp_path / "hf" / "model.safetensors"))
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config["vocab_size"] = padded
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    with hf.from_transformers(tmp_path / "hf", dataset=tiny) as m:
        assert m.vocab_size == padded
        np.testing.assert_allclose(m.logits(batch(tiny))[..., :n], trained.logits(batch(tiny)), atol=1e-5, rtol=0)
        assert m.evaluate(tiny, groups="sro")["groups"]["sro"]["accuracy"] == 1
        res = m.edit(behemoth.EditSet(tiny, kind="single", relation=0), method="lora", rank=4,
                     layers={"blocks": [1], "sublayers": "mlp"}, optimizer={"epochs": 2}, progress=False)
        assert "edit_success" in res.metrics
        res.close()
