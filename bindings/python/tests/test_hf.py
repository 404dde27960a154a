"""behemoth.hf: our model files as transformers.GPTNeoXForCausalLM, logits equal to ours.

Skipped cleanly when torch or transformers is not installed (they are optional)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import behemoth  # noqa: E402
from behemoth import Model, hf  # noqa: E402


def padded_batch(ds, n=8):
    seqs = ds.sequences()[:n]
    out = np.zeros((len(seqs), max(s.size for s in seqs)), np.int32)
    for i, s in enumerate(seqs):
        out[i, :s.size] = s
    return out


def hf_logits(model, tokens):
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(tokens.astype(np.int64))).logits.numpy()


def test_logits_match_transformers(trained, tiny, tmp_path):
    path = tmp_path / "m.h5"
    trained.save(path)
    model = hf.to_transformers(path)
    assert isinstance(model, transformers.GPTNeoXForCausalLM) and not model.training
    c = trained.config
    assert model.config.hidden_size == c["hidden"] and model.config.num_hidden_layers == c["layers"]
    assert model.config.vocab_size == c["vocab_size"]
    tokens = padded_batch(tiny)
    ours = trained.logits(tokens)
    theirs = hf_logits(model, tokens)
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
    # the head under either name, and every tensor in place
    sd = model.state_dict()
    head = sd.get("lm_head.weight", sd.get("embed_out.weight"))
    assert np.array_equal(head.numpy(), trained.tensor("embed_out.weight"))


def test_from_model_object_sequential_residual(tiny):
    with Model.create(dataset=tiny, preset="tiny", parallel_residual=False, rotary_pct=0.5, layers=1) as m:
        m.train(tiny, epochs=1, progress=False)
        model = hf.to_transformers(m)
        tokens = padded_batch(tiny, 4)
        np.testing.assert_allclose(hf_logits(model, tokens), m.logits(tokens), atol=1e-4, rtol=0)


@pytest.mark.parametrize("tied", [False, True])
def test_a_trained_llama_matches_llama_for_causal_lm_and_comes_back(tiny, tied):
    with Model.create(dataset=tiny, preset="llama-tiny", tie_embeddings=tied) as m:
        m.train(tiny, epochs=2, progress=False)
        model = hf.to_transformers(m)
        assert isinstance(model, transformers.LlamaForCausalLM)
        assert model.config.num_key_value_heads == 2 and model.config.tie_word_embeddings == tied
        tokens = padded_batch(tiny, 4)
        ours = m.logits(tokens)
        np.testing.assert_allclose(hf_logits(model, tokens), ours, atol=1e-4, rtol=0)
        # the object back (its state dict repeats a tied lm_head, which must equal the embedding)
        with hf.from_transformers(model, dataset=tiny) as back:
            np.testing.assert_array_equal(back.logits(tokens), ours)
        if tied:
            # untied by hand: the object computes with a head its config says is the embedding
            model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone() + 1)
            with pytest.raises(ValueError, match="differs from model.embed_tokens"):
                hf.from_transformers(model, dataset=tiny)


def test_not_a_model_file(tiny_file):
    with pytest.raises(ValueError, match="not a behemoth model"):
        hf.to_transformers(tiny_file)


def test_from_transformers_round_trip_and_a_model_made_by_transformers(trained, tiny):
    back = hf.from_transformers(hf.to_transformers(trained))
    for name in trained.tensors():
        assert np.array_equal(back.tensor(name), trained.tensor(name)), name
    tokens = padded_batch(tiny, 4)
    np.testing.assert_array_equal(back.logits(tokens), trained.logits(tokens))
    # a GPT-NeoX that transformers initialised (sequential residual, half rotary): the same logits in both
    hc = hf.transformers_config({"vocab_size": 40, "hidden": 32, "layers": 2, "heads": 4, "intermediate": 64,
                                 "rotary_pct": 0.5, "parallel_residual": False, "max_positions": 64})
    torch.manual_seed(3)
    theirs = transformers.GPTNeoXForCausalLM(hc).eval()
    ours = hf.from_transformers(theirs)
    x = np.random.default_rng(0).integers(0, 40, size=(3, 9)).astype(np.int32)
    np.testing.assert_allclose(ours.logits(x), hf_logits(theirs, x), atol=1e-4, rtol=0)
    assert ours.config["parallel_residual"] is False and ours.config["rotary_pct"] == 0.5


def test_save_transformers_loads_in_transformers(trained, tiny, tmp_path):
    """A folder written without torch (config.json, model.safetensors, the official tokenizer):
    from_pretrained gives our logits, and its tokenizer encodes the dataset's text to our ids."""
    hf.save_transformers(trained, tmp_path / "hf", dataset=tiny)
    model = transformers.GPTNeoXForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    tokens = padded_batch(tiny)
    np.testing.assert_allclose(hf_logits(model, tokens), trained.logits(tokens), atol=1e-4, rtol=0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    seq = tiny.sequences()[3]
    assert tokenizer(tiny.decode(seq))["input_ids"] == seq.tolist()


def test_from_transformers_reads_save_pretrained_and_torch_files(tmp_path):
    hc = hf.transformers_config({"vocab_size": 40, "hidden": 32, "layers": 2, "heads": 4, "intermediate": 64,
                                 "rotary_pct": 0.5, "parallel_residual": False, "max_positions": 64})
    torch.manual_seed(5)
    theirs = transformers.GPTNeoXForCausalLM(hc).eval()
    theirs.save_pretrained(tmp_path / "pretrained")
    x = np.random.default_rng(1).integers(0, 40, size=(3, 9)).astype(np.int32)
    with hf.from_transformers(tmp_path / "pretrained") as ours:
        np.testing.assert_allclose(ours.logits(x), hf_logits(theirs, x), atol=1e-4, rtol=0)
        assert ours.config["parallel_residual"] is False and ours.config["rotary_pct"] == 0.5
    # LitGPT's convert_from_litgpt layout: a model.pth state dict (HF names, embed_out.weight) and the
    # model's config.json beside it; also pytorch_model.bin, in bfloat16
    sd = {("embed_out.weight" if k == "lm_head.weight" else k): v for k, v in theirs.state_dict().items()}
    for name, dtype in (("model.pth", torch.float32), ("pytorch_model.bin", torch.bfloat16)):
        d = tmp_path / name.replace(".", "_")
        d.mkdir()
        (d / "config.json").write_bytes((tmp_path / "pretrained" / "config.json").read_bytes())
        torch.save({k: v.to(dtype) for k, v in sd.items()}, d / name)
        with hf.from_transformers(d) as ours:
            for k, v in sd.items():
                assert np.array_equal(ours.tensor(k), v.to(dtype).float().numpy()), (name, k)
