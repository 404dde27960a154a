"""Sweeps: cells from a spec, layer selections by name, a process pool that resumes where it stopped,
any concurrent.futures executor, and Dask distributed on a LocalCluster with real worker processes."""
from __future__ import annotations

import concurrent.futures as cf
import json
import os

import h5py
import pytest

from behemoth.sweep import cells, layer_selection, sweep, table


def test_layer_selections_by_name():
    assert layer_selection("mlp@5", 6) == {"blocks": [5], "sublayers": "mlp"}
    assert layer_selection("attn@0-2", 6) == {"blocks": [0, 1, 2], "sublayers": "attention"}
    assert layer_selection("both@all", 3) == {"blocks": [0, 1, 2], "sublayers": "both"}
    assert layer_selection("all", 2)["embeddings"] is True
    for bad in ["mlp", "mlp@9", "ffn@1", "attn@2-1", "mlp@x"]:
        with pytest.raises(ValueError):
            layer_selection(bad, 6)


def test_cells_expand_list_valued_editor_fields():
    spec = {"axes": {"editor": [{"method": "lora", "rank": [2, 4]}, {"method": "rome"}], "layers": ["mlp@1", "all"], "seed": [0, 1]}}
    cs = cells(spec)
    assert len(cs) == (2 + 1) * 2 * 2
    assert {c["editor"].get("rank") for c in cs} == {2, 4, None}
    assert len({c["id"] for c in cs}) == len(cs) and cells(spec)[3]["id"] == cs[3]["id"], "ids are stable"
    with pytest.raises(ValueError, match="unknown axes"):
        cells({"axes": {"blocks": [1]}})
    with pytest.raises(ValueError, match="same"):
        cells({"axes": {"seed": [0, 0]}})


@pytest.fixture(scope="module")
def base(trained, tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    trained.save(d / "model.h5")
    tiny.save(d / "dataset.h5")
    return {"model": str(d / "model.h5"), "dataset": str(d / "dataset.h5")}


SPEC_AXES = {"editor": [{"method": "lora", "rank": [2, 4], "optimizer": {"epochs": 3}}, {"method": "rome"}],
             "layers": ["mlp@1", "attn@0-1"], "seed": [0]}


def rows_of(t):
    return t.to_dict("records") if hasattr(t, "to_dict") else t


def test_process_pool_sweep_resumes_where_it_stopped(base, tmp_path):
    spec = {"base": base, "axes": SPEC_AXES, "rank": True}
    out = str(tmp_path / "sweep")
    first = rows_of(sweep(spec, out, workers=2, progress=False, max_cells=2))
    assert len(first) == 2
    mtimes = {p: os.path.getmtime(os.path.join(out, "cells", p)) for p in os.listdir(os.path.join(out, "cells"))}
    rows = rows_of(sweep(spec, out, workers=2, progress=False))
    assert len(rows) == 6
    for p, t in mtimes.items():
        assert os.path.getmtime(os.path.join(out, "cells", p)) == t, "finished cells are not run again"
    by = {(r["method"], r["rank"] if r["rank"] == r["rank"] else None, r["layers"]): r for r in rows}
    rome_attn = [r for r in rows if r["method"] == "rome" and r["layers"] == "attn@0-1"][0]
    assert rome_attn["status"] == "not_applicable" and "MLP" in rome_attn["error"]
    rome = [r for r in rows if r["method"] == "rome" and r["layers"] == "mlp@1"][0]
    assert rome["status"] == "ok" and rome["edit_success"] == 1 and rome["max_numerical_rank"] == 1
    for r in rows:
        if r["method"] == "lora":
            assert r["status"] == "ok" and r["max_numerical_rank"] <= r["rank"]
            assert r["requested_edits"] == 1 == r["obtained_edits"]
            assert json.loads(r["cell"])["editor"]["rank"] == r["rank"]
    assert len({r["worker"] for r in rows if r["status"] != "error"}) <= 4   # two pools of two processes
    assert os.path.getsize(os.path.join(out, "results.csv")) > 0
    with h5py.File(os.path.join(out, "results.h5"), "r") as f:
        assert f["edit_success"].shape == (6,) and json.loads(f.attrs["spec"])["rank"] is True
    assert len(rows_of(table(out))) == 6
    _ = by


def test_any_executor_and_a_failed_cell_is_a_row(base, tmp_path):
    spec = {"base": base, "axes": {"editor": [{"method": "lora", "rank": 2, "optimizer": {"epochs": 2}},
                                              {"method": "lora", "rank": 10 ** 6}], "layers": ["mlp@0"]}}
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        rows = rows_of(sweep(spec, str(tmp_path / "t"), executor=ex, progress=False))
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert "rank" in rows[1]["error"]


def test_dask_local_cluster(base, tmp_path):
    distributed = pytest.importorskip("distributed", reason="Dask distributed is an optional extra (pip install dask[distributed])")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        spec = {"base": base, "axes": {"editor": [{"method": "rome"}], "layers": ["mlp@0", "mlp@1"], "seed": [0, 1]}}
        rows = rows_of(sweep(spec, str(tmp_path / "dask"), executor=client.get_executor(), progress=False))
        pids = set(client.run(os.getpid).values())
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert {r["worker"] for r in rows} <= pids and os.getpid() not in pids, "cells ran in the cluster's worker processes"
