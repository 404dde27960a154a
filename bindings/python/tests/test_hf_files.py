"""Hugging Face folders and PEFT adapter folders without torch: behemoth.hf.save_transformers /
from_transformers(folder), the vocabulary checks, behemoth.peft.save_peft / load_peft, checked against
Tests/Fixtures/hf (made by transformers and peft: tools/make_hf_fixture.py) and by round trips.

Needs numpy, h5py and safetensors only (CI installs neither torch, transformers nor peft)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

safetensors_numpy = pytest.importorskip("safetensors.numpy")

import behemoth  # noqa: E402
from behemoth import Model, hf, peft  # noqa: E402

from conftest import repo_root  # noqa: E402

FIXTURE = repo_root() / "Tests" / "Fixtures" / "hf" if repo_root() else None
needs_fixture = pytest.mark.skipif(FIXTURE is None or not FIXTURE.is_dir(),
                                   reason="Tests/Fixtures/hf is in the repository checkout only")


def close_to(got, want):
    """Equal to 1e-5 of the largest logit (the fixture's logits were computed in float64)."""
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


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
    (tmp_path / "empty" / "lit_model.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="LitGPT checkpoint.*litgpt convert_from_litgpt"):
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
        (dict(change_config=lambda c: c.update(model_type="mistral")), "GPT-NeoX and Llama models only"),
        (dict(change_config=lambda c: c.update(model_type="llama", hidden_act="silu")), "the engine.s llama has no biases"),
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


@needs_fixture
def test_the_fixture_folder_made_by_transformers(tiny):
    tokens = np.load(FIXTURE / "tokens.npy").astype(np.int32)
    with hf.from_transformers(FIXTURE / "model", dataset=tiny) as m:   # float16 weights, its tokenizer.json checked
        close_to(m.logits(tokens), np.load(FIXTURE / "logits_base.npy"))
    # the fixture's tokenizer.json is exactly the tiny dataset's official one
    assert json.loads((FIXTURE / "model" / "tokenizer.json").read_text(encoding="utf-8")) == hf.official_tokenizer(tiny)
    with pytest.raises(ValueError, match="another dataset's vocabulary"):
        hf.from_transformers(FIXTURE / "model", dataset=behemoth.Dataset.generate(preset="tiny", subjects=80))


# ---- PEFT adapters --------------------------------------------------------------------------------

@needs_fixture
@pytest.mark.parametrize("name", ["peft-lora", "peft-rslora"])
def test_peft_adapters_made_by_peft(tiny, name, tmp_path):
    tokens = np.load(FIXTURE / "tokens.npy").astype(np.int32)
    want = np.load(FIXTURE / f"logits_{name.replace('-', '_')}.npy")
    config = json.loads((FIXTURE / name / "adapter_config.json").read_text())
    a = peft.load_peft(FIXTURE / name)
    assert a.rank == config["r"] == 4
    if config["use_rslora"]:   # PEFT scales by lora_alpha / sqrt(r); ours by alpha / rank
        assert a.alpha == pytest.approx(config["lora_alpha"] * 2) and len(a.targets) == 2
    else:
        assert a.alpha == config["lora_alpha"] and len(a.targets) == 4
    with hf.from_transformers(FIXTURE / "model", dataset=tiny) as base:
        before = base.logits(tokens)
        for merge in (True, False):
            m = base.clone()
            a.apply(m, merge=merge)
            close_to(m.logits(tokens), want)
            a.remove(m)
            np.testing.assert_allclose(m.logits(tokens), before, atol=1e-4, rtol=0)
            m.close()
    # out again: the same tensors, bit for bit, and a config that targets the same modules the same way
    peft.save_peft(a, tmp_path / "out")
    theirs = safetensors_numpy.load_file(str(FIXTURE / name / "adapter_model.safetensors"))
    ours = safetensors_numpy.load_file(str(tmp_path / "out" / "adapter_model.safetensors"))
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        assert np.array_equal(ours[k], theirs[k]), k
    back = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    modules = [f"gpt_neox.layers.{b}.{m}" for b in range(2) for m in peft.MODULES]
    assert [peft._targeted(back, m) for m in modules] == [peft._targeted(config, m) for m in modules]
    scale = config["lora_alpha"] / (np.sqrt(config["r"]) if config["use_rslora"] else config["r"])
    assert back["lora_alpha"] / back["r"] == pytest.approx(scale) and not back["use_rslora"]
    assert peft.load_peft(tmp_path / "out").digest == a.digest


def test_save_peft_of_an_edit_and_partial_targets(trained, tiny, tmp_path):
    m = trained.clone()
    res = m.edit(behemoth.EditSet(tiny, kind="single", relation=0), method="lora", rank=4, alpha=8, merge=False,
                 layers={"blocks": [1], "sublayers": "mlp"}, optimizer={"epochs": 2}, progress=False)
    a = res.adapter
    peft.save_peft(a, tmp_path / "lora", base_model_name_or_path="EleutherAI/pythia-behemoth")
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert (config["peft_type"], config["task_type"], config["r"], config["lora_alpha"]) == ("LORA", "CAUSAL_LM", 4, 8)
    assert config["target_modules"] == ["dense_h_to_4h", "dense_4h_to_h"] and config["layers_to_transform"] == [1]
    assert config["base_model_name_or_path"] == "EleutherAI/pythia-behemoth" and config["bias"] == "none"
    tensors = safetensors_numpy.load_file(str(tmp_path / "lora" / "adapter_model.safetensors"))
    assert sorted(tensors) == [f"base_model.model.gpt_neox.layers.1.mlp.{m}.lora_{f}.weight"
                               for m in ("dense_4h_to_h", "dense_h_to_4h") for f in "AB"]
    assert peft.load_peft(tmp_path / "lora").digest == a.digest
    # targets that are not every matrix in every block: a regular expression naming exactly them
    factors = a.factors()
    qkv = "gpt_neox.layers.0.attention.query_key_value.weight"
    factors[qkv] = (np.full((4, 64), 0.01, np.float32), np.full((192, 4), 0.02, np.float32))
    b = behemoth.Adapter.create(4, 8, factors)
    peft.save_peft(b, tmp_path / "partial")
    config = json.loads((tmp_path / "partial" / "adapter_config.json").read_text())
    assert isinstance(config["target_modules"], str) and config["layers_to_transform"] is None
    reached = [n for n in (f"gpt_neox.layers.{i}.{m}" for i in range(2) for m in peft.MODULES) if peft._targeted(config, n)]
    assert reached == ["gpt_neox.layers.0.attention.query_key_value", "gpt_neox.layers.1.mlp.dense_h_to_4h",
                       "gpt_neox.layers.1.mlp.dense_4h_to_h"]
    assert peft.load_peft(tmp_path / "partial").digest == b.digest
    for x in (a, b, res, m):
        x.close()


def peft_folder(tmp_path, config_change=None, tensors_change=None):
    """A copy of the fixture's peft-lora folder (or a made-up one outside the checkout) with changes."""
    d = tmp_path / "adapter"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    if FIXTURE is not None and (FIXTURE / "peft-lora").is_dir():
        config = json.loads((FIXTURE / "peft-lora" / "adapter_config.json").read_text())
        tensors = safetensors_numpy.load_file(str(FIXTURE / "peft-lora" / "adapter_model.safetensors"))
    else:
        config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["query_key_value", "dense_4h_to_h"]}
        rng = np.random.default_rng(0)
        tensors = {}
        for i in range(2):
            for module, (out, inp) in (("attention.query_key_value", (192, 64)), ("mlp.dense_4h_to_h", (64, 256))):
                p = f"base_model.model.gpt_neox.layers.{i}.{module}"
                tensors[f"{p}.lora_A.weight"] = rng.normal(size=(4, inp)).astype(np.float32)
                tensors[f"{p}.lora_B.weight"] = rng.normal(size=(out, 4)).astype(np.float32)
    if config_change:
        config_change(config)
    if tensors_change:
        tensors_change(tensors)
    (d / "adapter_config.json").write_text(json.dumps(config))
    safetensors_numpy.save_file(tensors, str(d / "adapter_model.safetensors"))
    return d


def test_peft_adapters_behemoth_cannot_apply_are_refused(tmp_path):
    peft.load_peft(peft_folder(tmp_path)).close()    # the unchanged copy loads
    embed = "base_model.model.gpt_neox.embed_in"
    cases = [
        (dict(config_change=lambda c: c["target_modules"].append("embed_in")), "reaches gpt_neox.embed_in"),
        (dict(config_change=lambda c: c.update(target_modules=["query_key_value", "embed_out"])), "reaches embed_out"),
        (dict(config_change=lambda c: c.update(target_modules=".*")), "reaches"),
        (dict(tensors_change=lambda t: t.update({f"{embed}.lora_embedding_A": np.zeros((4, 1407), np.float32)})),
         "for gpt_neox.embed_in"),
        (dict(tensors_change=lambda t: t.update({"base_model.model.embed_out.lora_A.weight": np.zeros((4, 64), np.float32)})),
         "for embed_out"),
        (dict(config_change=lambda c: c.update(modules_to_save=["embed_out"])), "modules_to_save"),
        (dict(config_change=lambda c: c.update(use_dora=True)), "DoRA"),
        (dict(config_change=lambda c: c.update(bias="lora_only")), "bias is 'lora_only'"),
        (dict(config_change=lambda c: c.update(fan_in_fan_out=True)), "Conv1D"),
        (dict(config_change=lambda c: c.update(rank_pattern={"dense_4h_to_h": 8})), "different ranks"),
        (dict(config_change=lambda c: c.update(alpha_pattern={"query_key_value": 16})), "alphas"),
        (dict(config_change=lambda c: c.update(init_lora_weights="pissa")), "changed the base weights"),
        (dict(config_change=lambda c: c.update(use_qalora=True)), "use_qalora = True"),
        (dict(config_change=lambda c: c.update(trainable_token_indices=[5])), "trainable_token_indices"),
        (dict(config_change=lambda c: c.update(peft_type="IA3")), "not \"LORA\""),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            peft.load_peft(peft_folder(tmp_path, **kwargs))
        assert "merge_and_unload" in str(e.value) or "disagree" in str(e.value)
    # the two files disagree, or are incomplete
    qkv0 = "base_model.model.gpt_neox.layers.0.attention.query_key_value"
    with pytest.raises(ValueError, match="not both factors"):
        peft.load_peft(peft_folder(tmp_path, tensors_change=lambda t: t.pop(f"{qkv0}.lora_B.weight")))
    with pytest.raises(ValueError, match="does not reach: the two files disagree"):
        peft.load_peft(peft_folder(tmp_path, config_change=lambda c: c.update(layers_to_transform=[1])))
    with pytest.raises(ValueError, match="rank 4 but adapter_config.json"):
        peft.load_peft(peft_folder(tmp_path, config_change=lambda c: c.update(r=8)))
    with pytest.raises(behemoth.InvalidArgumentError, match="finite"):
        peft.load_peft(peft_folder(tmp_path, tensors_change=lambda t: t[f"{qkv0}.lora_A.weight"].__setitem__((0, 0), np.nan)))
    # a rank_pattern that gives every module the same rank is fine, as are harmless settings
    same = peft.load_peft(peft_folder(tmp_path, config_change=lambda c: c.update(
        rank_pattern={"dense_4h_to_h": 4}, lora_dropout=0.1, init_lora_weights="gaussian", target_modules="all-linear")))
    assert same.rank == 4
    (tmp_path / "adapter" / "adapter_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a PEFT adapter folder"):
        peft.load_peft(tmp_path / "adapter")


# ---- the llama architecture -----------------------------------------------------------------------

@needs_fixture
def test_the_llama_fixture_folder_and_its_peft_adapter(tiny, tmp_path):
    """A LlamaForCausalLM folder (grouped-query attention, tied embeddings: no lm_head in the file) and
    a PEFT LoRA on k_proj, o_proj and up_proj, both made by transformers and peft."""
    tokens = np.load(FIXTURE / "tokens.npy").astype(np.int32)
    with hf.from_transformers(FIXTURE / "llama", dataset=tiny) as m:
        c = m.config
        assert (c["architecture"], c["kv_heads"], c["tie_embeddings"], c["parallel_residual"]) == ("llama", 2, True, False)
        assert "lm_head.weight" not in m.tensors()
        close_to(m.logits(tokens), np.load(FIXTURE / "logits_llama.npy"))
        a = peft.load_peft(FIXTURE / "peft-llama")
        assert len(a.targets) == 6 and a.rank == 4
        assert {t["tensor"] for t in a.info["targets"]} == {f"model.layers.{b}.{n}.weight" for b in range(2)
                                                           for n in ("self_attn.k_proj", "self_attn.o_proj", "mlp.up_proj")}
        for merge in (True, False):
            e = m.clone()
            a.apply(e, merge=merge)
            close_to(e.logits(tokens), np.load(FIXTURE / "logits_peft_llama.npy"))
            e.close()
        # out again: the same tensors, bit for bit
        peft.save_peft(a, tmp_path / "out")
        theirs = safetensors_numpy.load_file(str(FIXTURE / "peft-llama" / "adapter_model.safetensors"))
        ours = safetensors_numpy.load_file(str(tmp_path / "out" / "adapter_model.safetensors"))
        assert sorted(ours) == sorted(theirs) and all(np.array_equal(ours[k], theirs[k]) for k in theirs)
        assert peft.load_peft(tmp_path / "out").digest == a.digest
        # through a folder of ours and back: exact
        hf.save_transformers(m, tmp_path / "folder", dataset=tiny)
        config = json.loads((tmp_path / "folder" / "config.json").read_text())
        assert config["architectures"] == ["LlamaForCausalLM"] and config["num_key_value_heads"] == 2
        with hf.from_transformers(tmp_path / "folder", dataset=tiny) as back:
            np.testing.assert_array_equal(back.logits(tokens), m.logits(tokens))


def test_llama_models_transformers_cannot_hold_are_refused(tiny, tmp_path):
    with Model.create(tiny, {"preset": "llama-tiny", "rotary_pct": 0.5}) as m:
        with pytest.raises(ValueError, match="rotates the whole head"):
            hf.save_transformers(m, tmp_path / "x")
    good = hf.llama_config_json({"architecture": "llama", "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2,
                                 "intermediate": 176, "vocab_size": 1407})
    assert hf.our_config(good)["kv_heads"] == 2
    for change, words in [({"hidden_act": "gelu"}, "SwiGLU"), ({"attention_bias": True}, "no biases"),
                          ({"mlp_bias": True}, "no biases"), ({"head_dim": 32}, "head_dim"),
                          ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}}, "whole head"),
                          ({"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}}, "scaled rotary")]:
        with pytest.raises(ValueError, match=words):
            hf.our_config({**good, **change})
    # the engine refuses key/value heads that do not divide the heads
    with pytest.raises(behemoth.BehemothError, match="must divide heads"):
        Model.create(tiny, {"preset": "llama-tiny", "kv_heads": 3})
