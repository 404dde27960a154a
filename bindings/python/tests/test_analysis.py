"""Recording, causal tracing and effective rank from Python: the files stand on their own in h5py,
the arrays match what the library reports, and bad input raises a clear error."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import behemoth
from behemoth import InvalidArgumentError


def test_trace_report_arrays_and_file(trained, tiny, tmp_path):
    path = tmp_path / "trace.h5"
    tr = trained.trace(tiny, count=6, samples=4, window=3, severed=["mlp"], progress=False, out=path)
    r = tr.report
    assert r["prompts_requested"] == r["prompts_traced"] == 6
    assert r["answered_correctly"] >= 5 and r["high_above_low"] >= 5
    assert tr.kinds == ["block", "mlp", "attn", "block_severed_mlp"]
    L = trained.config["layers"]
    s = tr.scores("mlp")
    assert s.shape[0] == 6 and s.shape[2] == L
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == b"behemoth.trace" or f.attrs["format"] == "behemoth.trace"
        spec = json.loads(f.attrs["spec"])
        assert spec["window"] == 3 and spec["samples"] == 4 and spec["sigma"] > 0 and spec["model_digest"] == trained.digest
        np.testing.assert_array_equal(f["scores/mlp"][()], s)
        np.testing.assert_array_equal(f["low"][()], tr.low)
        names = json.loads(f["token_groups"].attrs["names"])
        assert names[3] == "subject_last" and names[-1] == "last"
        assert f["average/block"].shape == (len(names), L)
        # the last token's top state is the clean one
        lengths = np.diff(f["offsets"][()])
        for i, n in enumerate(lengths):
            if f["correct"][i]:
                assert abs(f["scores/block"][i, n - 1, L - 1] - f["high"][i]) < 1e-5
    assert behemoth.verify_file(path)["format"] == "behemoth.trace"


def test_trace_bad_input(trained, tiny):
    for bad in [{"noise": 0}, {"samples": 0}, {"kinds": ["nope"]}, {"group": "missing"}, {"prompts": [10 ** 6]}]:
        with pytest.raises(InvalidArgumentError):
            trained.trace(tiny, progress=False, **bad)


def test_record_group_positions(trained, tiny, tmp_path):
    path = tmp_path / "acts.h5"
    rep = trained.record(tiny, path, sites=["block_output", "mlp_hidden"], positions=["subject_last", "last"], batch_size=16,
                         progress=False)
    g = tiny.eval_group("sro") if hasattr(tiny, "eval_group") else None
    with h5py.File(path, "r") as f:
        n = f["positions"].shape[0]
        assert rep["prompts"] == n and f["positions"].shape == (n, 2)
        L, D = trained.config["layers"], trained.config["hidden"]
        assert f[f"activations/block_output.{L - 1}"].shape == (n, 2, D)
        prompts, offsets = f["prompts"][()], f["offsets"][()]
        # the last slot of the last block's output equals a single prompt's pass through the final norm's input
        i = n // 2
        p = prompts[offsets[i]:offsets[i + 1]]
        assert f["positions"][i, 1] == len(p) - 1
        spec = json.loads(f.attrs["spec"])
        assert spec["model_digest"] == trained.digest and spec["source"] == "dataset"
    _ = g


def test_record_explicit_prompts_and_errors(trained, tmp_path):
    path = tmp_path / "explicit.h5"
    rep = trained.record([[1, 2, 3], [4, 5]], path, positions=["all"], progress=False)
    assert rep["slots"] == 3
    with h5py.File(path, "r") as f:
        assert f["positions"][1].tolist() == [0, 1, -1]
    with pytest.raises(InvalidArgumentError, match="subject"):
        trained.record([[1, 2, 3]], tmp_path / "x.h5", positions=["subject_last"], progress=False)
    with pytest.raises(InvalidArgumentError):
        trained.record([[1, 2, 3]], tmp_path / "x.h5", sites=["nowhere"], progress=False)
    with pytest.raises(InvalidArgumentError):
        trained.record([[1, 2, 3]], tmp_path / "x.h5", blocks=[99], progress=False)
    with pytest.raises((InvalidArgumentError, ValueError)):
        trained.record([], tmp_path / "x.h5", progress=False)
    assert not (tmp_path / "x.h5").exists()


def test_rank_of_lora_edit_adapter_and_models(trained, tiny, tmp_path):
    m = trained.clone()
    es = behemoth.EditSet(tiny, kind="single")
    res = m.edit(es, method="lora", rank=4, layers={"blocks": [1], "sublayers": "mlp"}, optimizer={"epochs": 5}, progress=False)
    r = behemoth.rank(res, out=tmp_path / "rank.h5")
    assert r["source"]["source"] == "edit" and r["matrices"]
    for name, x in r["matrices"].items():
        assert x["numerical_rank"] <= 4 and x["energy_rank_90"] <= x["energy_rank_99"] <= 4
        for key in ("effective_rank", "stable_rank", "frobenius_norm", "spectral_norm"):
            assert key in x
    with h5py.File(tmp_path / "rank.h5", "r") as f:
        names = json.loads(f["table"].attrs["names"])
        assert names == list(r["matrices"])
        assert (f["table/numerical_rank"][()] <= 4).all()
        assert f[f"singular_values/{names[0]}"].shape[0] == min(f[f"singular_values/{names[0]}"].attrs["rows"],
                                                                  f[f"singular_values/{names[0]}"].attrs["cols"])
    both = behemoth.rank(trained, m)
    assert set(both["matrices"]) == set(r["matrices"])
    with pytest.raises(TypeError):
        behemoth.rank(trained)
    other = behemoth.Model.create(dataset=tiny, preset="tiny", layers=trained.config["layers"] + 1)
    with pytest.raises(InvalidArgumentError, match="different shapes"):
        behemoth.rank(trained, other)


def test_rank_of_an_adapter(trained, tiny):
    # an adapter from a LoRA edit (merge=False: the change is only in the adapter) reports rank ≤ its rank
    m = trained.clone()
    res = m.edit(behemoth.EditSet(tiny, kind="single"), method="lora", rank=2, merge=False,
                 layers={"blocks": [0], "sublayers": "mlp"}, optimizer={"epochs": 3}, progress=False)
    r = behemoth.rank(res.adapter)
    assert r["source"]["source"] == "adapter" and r["matrices"]
    assert all(x["numerical_rank"] <= 2 for x in r["matrices"].values())


def test_localization_vs_editing(trained, tiny, tmp_path):
    from behemoth.analysis import localization
    tr = trained.trace(tiny, count=4, samples=3, progress=False)
    rep = localization(trained, tiny, tr, editors=("rome",), max_facts=3, progress=False, out=tmp_path / "loc.json")
    L = trained.config["layers"]
    assert rep["facts_compared"] == 3 and rep["blocks"] == list(range(L))
    for row in rep["facts"]:
        assert 0 <= row["trace_peak_block"] < L and 0 <= row["best_edit_block"]["rome"] < L
        assert len(row["edit_score"]["rome"]) == L and len(row["trace_effect"]) == L
        assert row["best_edit_block"]["rome"] == int(np.argmax(row["edit_score"]["rome"]))
    assert set(rep["correlation"]["rome"]) >= {"pearson", "spearman", "n"}
    assert json.loads((tmp_path / "loc.json").read_text())["facts_compared"] == 3
    with pytest.raises(ValueError, match="kind"):
        p = tmp_path / "t.h5"
        tr.save(p)
        localization(trained, tiny, p, kind="nope", progress=False)


def test_every_analysis_file_opens_in_h5dump(trained, tiny, tmp_path):
    import shutil
    import subprocess
    if shutil.which("h5dump") is None:
        pytest.skip("h5dump is not installed (hdf5-tools)")
    trained.trace(tiny, count=2, samples=2, progress=False, out=tmp_path / "trace.h5")
    trained.record(tiny, tmp_path / "acts.h5", positions=["last"], count=5, progress=False)
    m = trained.clone()
    res = m.edit(behemoth.EditSet(tiny, kind="single"), method="rome", progress=False)
    behemoth.rank(res, out=tmp_path / "rank.h5")
    for name, fmt in (("trace", "behemoth.trace"), ("acts", "behemoth.activations"), ("rank", "behemoth.rank")):
        out = subprocess.run(["h5dump", "-A", str(tmp_path / f"{name}.h5")], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert fmt in out.stdout and "format_version" in out.stdout and "spec" in out.stdout
