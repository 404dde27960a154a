"""behemoth.peft against PEFT itself: our adapters load in PeftModel with our logits, and PEFT's
LoRA adapters load here with PeftModel's logits. Skipped when torch, transformers or peft is not
installed (tests/test_hf_files.py checks the committed fixture without them)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft_lib = pytest.importorskip("peft")

import behemoth  # noqa: E402
from behemoth import hf, peft  # noqa: E402


def batch(ds, n=6, width=10):
    return np.stack([s[:width] for s in ds.sequences()[:n]]).astype(np.int32)


def torch_logits(model, tokens):
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(tokens.astype(np.int64))).logits.numpy()


def close_to(got, want):
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


@pytest.fixture(scope="module")
def edited(trained, tiny):
    """A real LoRA edit of the trained tiny model, kept as an adapter (merge=False)."""
    m = trained.clone()
    res = m.edit(behemoth.EditSet(tiny, kind="single", relation=0), method="lora", rank=4, alpha=8, merge=False,
                 layers={"blocks": [0, 1], "sublayers": "both"}, optimizer={"epochs": 10, "learning_rate": 0.003},
                 progress=False)
    assert res.metrics["edit_success"] > res.metrics["edit_success_before"]
    yield res.adapter
    res.close()
    m.close()


@pytest.mark.parametrize("blocks", ["all", "partial"])
def test_our_adapter_in_peft(trained, tiny, edited, tmp_path, blocks):
    adapter = edited
    if blocks == "partial":   # not every matrix in every block: save_peft writes a regular expression
        factors = {k: v for k, v in edited.factors().items() if ".1.mlp" in k or ".0.attention.query" in k}
        adapter = behemoth.Adapter.create(edited.rank, edited.alpha, factors)
    peft.save_peft(adapter, tmp_path / "lora")
    pm = peft_lib.PeftModel.from_pretrained(hf.to_transformers(trained), tmp_path / "lora").eval()
    tokens = batch(tiny)
    m = trained.clone()
    adapter.apply(m, merge=False)
    ours = m.logits(tokens)
    assert not np.allclose(ours, trained.logits(tokens), atol=1e-2)
    close_to(torch_logits(pm, tokens), ours)
    m.close()


@pytest.mark.parametrize("kwargs", [
    dict(r=4, lora_alpha=8, target_modules=["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]),
    dict(r=8, lora_alpha=4, use_rslora=True, target_modules=["dense_4h_to_h"], layers_to_transform=[0]),
    dict(r=2, lora_alpha=16, target_modules="all-linear", rank_pattern={"dense": 2}),
    dict(r=4, lora_alpha=8, target_modules=r"gpt_neox\.layers\.1\.attention\.query_key_value", lora_dropout=0.1),
])
def test_peft_adapter_here(trained, tiny, tmp_path, kwargs):
    torch.manual_seed(7)
    pm = peft_lib.get_peft_model(hf.to_transformers(trained),
                                 peft_lib.LoraConfig(task_type="CAUSAL_LM", init_lora_weights=False, **kwargs)).eval()
    pm.save_pretrained(tmp_path / "lora")
    adapter = peft.load_peft(tmp_path / "lora")
    assert adapter.rank == kwargs["r"]
    tokens = batch(tiny)
    want = torch_logits(pm, tokens)
    for merge in (True, False):
        m = trained.clone()
        adapter.apply(m, merge=merge)
        close_to(m.logits(tokens), want)
        m.close()


def test_a_dora_adapter_is_refused(trained, tmp_path):
    pm = peft_lib.get_peft_model(hf.to_transformers(trained),
                                 peft_lib.LoraConfig(r=4, target_modules=["dense_4h_to_h"], use_dora=True))
    pm.save_pretrained(tmp_path / "dora")
    with pytest.raises(ValueError, match="DoRA"):
        peft.load_peft(tmp_path / "dora")
    pm = peft_lib.get_peft_model(hf.to_transformers(trained),
                                 peft_lib.LoraConfig(r=4, target_modules=["dense_4h_to_h"], modules_to_save=["embed_out"]))
    pm.save_pretrained(tmp_path / "saved")
    with pytest.raises(ValueError, match="modules_to_save"):
        peft.load_peft(tmp_path / "saved")
