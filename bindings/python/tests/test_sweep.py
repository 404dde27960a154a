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


# ---- killed, resumed, on Dask, with dying workers: the same table ------------------------------

#: 12 cells: LoRA ranks 2 and 4, full fine-tuning, ROME (not applicable to attention or both).
GRID = {"editor": [{"method": "lora", "rank": [2, 4], "alpha": 8, "optimizer": {"epochs": 4}},
                   {"method": "full", "optimizer": {"epochs": 2}}, {"method": "rome"}],
        "layers": ["mlp@1", "attn@0-1", "both@all"], "seed": [0]}
#: What may differ between two runs of the same cell: where and how fast it ran.
RUN_COLUMNS = {"seconds", "edit_seconds", "before_seconds", "worker", "attempts"}


def same_rows(a, b):
    a, b = rows_of(a), rows_of(b)
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for x, y in zip(a, b):
        for k in set(x) | set(y):
            if k in RUN_COLUMNS:
                continue
            vx, vy = x.get(k), y.get(k)
            if isinstance(vx, float) and isinstance(vy, float) and vx != vx and vy != vy:
                continue
            assert vx == vy, f"cell {x['id']} ({x['method']}, {x['layers']}): {k} is {vx!r} in one run and {vy!r} in the other"


@pytest.fixture(scope="module")
def uninterrupted(base, tmp_path_factory):
    spec = {"base": base, "axes": GRID, "rank": True}
    rows = rows_of(sweep(spec, str(tmp_path_factory.mktemp("whole")), workers=2, progress=False))
    assert len(rows) == 12
    assert [r["status"] for r in rows].count("not_applicable") == 2
    assert all(r["status"] in ("ok", "not_applicable") for r in rows), [r.get("error") for r in rows]
    return spec, rows


def test_a_killed_sweep_resumes_and_gives_the_same_table(uninterrupted, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from conftest import subprocess_env
    spec, whole = uninterrupted
    out = tmp_path / "killed"
    code = ("import json, sys\nfrom behemoth.sweep import sweep\n"
            "if __name__ == '__main__':\n"
            f"    sweep(json.loads(sys.argv[1]), {str(out)!r}, workers=2, progress=False)\n")
    script = tmp_path / "run.py"
    script.write_text(code)
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(spec)], env=subprocess_env(), start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        done = [p for p in os.listdir(out / "cells")] if (out / "cells").exists() else []
        if len([p for p in done if p.endswith(".json")]) >= 3:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)   # the driver and its workers, mid-sweep
    proc.wait()
    finished = sorted(p for p in os.listdir(out / "cells") if p.endswith(".json"))
    assert 3 <= len(finished) < 12, f"the sweep was to be killed midway, it had {len(finished)} cells"
    mtimes = {p: os.path.getmtime(out / "cells" / p) for p in finished}
    resumed = sweep(spec, str(out), workers=2, progress=False)
    for p, t in mtimes.items():
        assert os.path.getmtime(out / "cells" / p) == t, "finished cells are not run again"
    same_rows(resumed, whole)
    with open(out / "results.csv") as f:
        assert sum(1 for _ in f) == 13, "the table has a header and 12 rows"


def test_dask_gives_the_same_rows(uninterrupted, tmp_path):
    distributed = pytest.importorskip("distributed", reason="Dask distributed is an optional extra (pip install dask[distributed])")
    spec, whole = uninterrupted
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        rows = rows_of(sweep(spec, str(tmp_path / "dask"), executor=client.get_executor(), progress=False))
        pids = set(client.run(os.getpid).values())
    same_rows(rows, whole)
    assert {r["worker"] for r in rows} <= pids and os.getpid() not in pids, "cells ran in the cluster's worker processes"


def _kill_a_worker_when(out, cells_done: int, stop):
    import multiprocessing
    import signal
    import time
    while not stop.is_set():
        n = len([p for p in os.listdir(out / "cells") if p.endswith(".json")]) if (out / "cells").exists() else 0
        workers = multiprocessing.active_children()
        if n >= cells_done and workers:
            os.kill(workers[0].pid, signal.SIGKILL)
            return
        time.sleep(0.01)


SLOW_LORA = {"editor": [{"method": "lora", "rank": [2, 4, 8], "alpha": 8, "optimizer": {"epochs": 20}}],
             "layers": ["mlp@0", "mlp@1"], "seed": [0]}


def sweep_killing_a_worker(spec, out, **kw):
    """The sweep's rows, one of its worker processes killed (SIGKILL) once the first cell is done."""
    import threading
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_worker_when, args=(out, 1, stop))
    killer.start()
    try:
        return rows_of(sweep(spec, str(out), workers=2, progress=False, **kw))
    finally:
        stop.set()
        killer.join()


def test_a_worker_that_dies_mid_cell_is_retried_alone(base, tmp_path):
    out = tmp_path / "dies"
    rows = sweep_killing_a_worker({"base": base, "axes": SLOW_LORA}, out)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows), [(r["status"], r.get("error")) for r in rows]
    assert max(r["attempts"] for r in rows) == 2, "the cells the dead worker held ran again"
    with open(out / "results.csv") as f:
        assert sum(1 for _ in f) == 7


def test_a_cell_whose_worker_keeps_dying_is_a_failed_row_and_runs_again_next_time(base, tmp_path):
    spec = {"base": base, "axes": SLOW_LORA}
    out = tmp_path / "fails"
    rows = sweep_killing_a_worker(spec, out, max_attempts=1)
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(rows) == 6 and 1 <= len(failed) <= 2, "the cells in the broken pool are reported, the rest ran"
    assert all("worker process died" in r["error"] for r in failed)
    summary = json.load(open(out / "summary.json"))
    assert summary["by_status"]["failed"] == len(failed) and summary["cells_requested"] == 6
    again = rows_of(sweep(spec, str(out), workers=2, progress=False))
    assert all(r["status"] == "ok" for r in again)


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("axes, message", [
    ({"editor": [{"method": "romee"}]}, "method 'romee' does not exist"),
    ({"layers": ["mlp@7"]}, "axis layers"),
    ({"layers": ["ffn@1"]}, "axis layers"),
    ({"edit": [{"kind": "bogus"}]}, "axis edit"),
    ({"edit": [{"kind": "single", "count": 10 ** 6}]}, "axis edit"),
])
def test_an_axis_value_that_does_not_exist_is_refused_before_anything_runs(base, tmp_path, axes, message):
    with pytest.raises(ValueError, match=message):
        sweep({"base": base, "axes": axes}, str(tmp_path / "bad"), workers=1, progress=False)
    assert os.listdir(tmp_path / "bad" / "cells") == []


def test_a_model_of_another_dataset_is_refused(base, trained, tmp_path):
    import behemoth
    other = behemoth.Dataset.generate(preset="tiny", seed=99)
    other.save(tmp_path / "other.h5")
    with pytest.raises(ValueError, match="trained on dataset"):
        sweep({"base": {"model": base["model"], "dataset": str(tmp_path / "other.h5")}, "axes": {}}, str(tmp_path / "a"), progress=False)
    bigger = behemoth.Dataset.generate(preset="tiny", subjects=40)
    bigger.save(tmp_path / "bigger.h5")
    with pytest.raises(ValueError, match="vocabulary"):
        sweep({"base": {"model": base["model"], "dataset": str(tmp_path / "bigger.h5")}, "axes": {}}, str(tmp_path / "b"), progress=False)
    assert trained.info["history"]["datasets"] == [behemoth.Dataset.load(base["dataset"]).digest]


# ---- figures: the arrays behind them are the table's aggregates ---------------------------------

def test_heatmap_arrays_are_the_tables_means_over_seeds(tmp_path):
    import numpy as np
    from behemoth import plots
    row = dict(edit_kind="single", status="ok")
    rows = [dict(row, id="a", method="lora", rank=2, layers="mlp@1", seed=0, edit_success=1.0, remaining_accuracy=0.9),
            dict(row, id="b", method="lora", rank=2, layers="mlp@1", seed=1, edit_success=0.5, remaining_accuracy=0.7),
            dict(row, id="c", method="lora", rank=4, layers="mlp@1", seed=0, edit_success=0.25, remaining_accuracy=1.0),
            dict(row, id="d", method="lora", rank=4, layers="attn@0", seed=0, status="error", edit_success=None, remaining_accuracy=None),
            dict(row, id="e", method="rome", rank=None, layers="mlp@1", seed=0, edit_success=1.0, remaining_accuracy=0.5,
                 spectrum=[2.0, 1.0, 0.5]),
            dict(row, id="f", method="rome", rank=None, layers="attn@0", seed=0, status="not_applicable"),
            dict(row, id="g", method="full", rank=None, layers="mlp@1", seed=0, edit_kind="forget_relation",
                 forgetting_success=0.4, remaining_accuracy=0.6)]
    figs = plots.sweep(rows, out=tmp_path / "s")
    a = np.load(tmp_path / "s_heatmaps.npz")
    assert list(a["single/layers"]) == ["mlp@1", "attn@0"] and list(a["single/columns"]) == ["lora r2", "lora r4", "rome"]
    np.testing.assert_array_equal(a["single/edit_success"], [[0.75, 0.25, 1.0], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(a["single/remaining_accuracy"], [[0.8, 1.0, 0.5], [np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(a["single/count"], [[2, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(a["forget_relation/edit_success"], [[0.4], [np.nan]])   # its forgetting success
    sp = np.load(tmp_path / "s_spectra.npz")
    assert list(sp["ids"]) == ["e"] and sp["spectra"].tolist() == [[2.0, 1.0, 0.5]]
    assert figs["spectra"] is not None
    for name in ("s_heatmaps", "s_tradeoff", "s_spectra"):
        assert os.path.getsize(tmp_path / f"{name}.png") > 1000 and os.path.getsize(tmp_path / f"{name}.pdf") > 1000


def test_figures_of_a_real_sweep_match_its_table(uninterrupted, tmp_path):
    import numpy as np
    from behemoth import plots
    spec, rows = uninterrupted
    plots.sweep(rows, out=tmp_path / "real")
    a = np.load(tmp_path / "real_heatmaps.npz")
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        li = list(a["single/layers"]).index(r["layers"])
        column = r["method"] if r["rank"] is None or r["rank"] != r["rank"] else f"{r['method']} r{int(r['rank'])}"
        ci = list(a["single/columns"]).index(column)
        assert a["single/edit_success"][li, ci] == r["edit_success"]          # one seed: the mean is the cell
        assert a["single/remaining_accuracy"][li, ci] == r["remaining_accuracy"]
        assert a["single/count"][li, ci] == 1
    sp = np.load(tmp_path / "real_spectra.npz")
    assert len(sp["ids"]) == len(ok), "every finished cell has a spectrum"
    by_id = {r["id"]: r for r in ok}
    for i, cid in enumerate(sp["ids"]):
        r = by_id[str(cid)]
        sv = sp["spectra"][i][~np.isnan(sp["spectra"][i])]
        assert np.all(np.diff(sv) <= 0), "singular values descend"
        if r["method"] == "rome":
            assert sv[1] <= 1e-5 * sv[0], "a ROME delta has rank one"
        if r["method"] == "lora":
            assert np.count_nonzero(sv > 1e-5 * sv[0]) <= r["rank"]


# ---- the paper pipeline, end to end on the tiny preset ------------------------------------------

def run_example(script: str, tmp_path):
    """Runs examples/<script> --preset tiny with two workers; returns its --out folder."""
    import subprocess
    import sys
    from conftest import repo_root, subprocess_env
    root = repo_root()
    if root is None:
        pytest.skip(f"examples/{script} lives in the repository (this is an installed copy of the tests)")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(root / "examples" / script), "--preset", "tiny", "--out", str(out), "--workers", "2"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_the_paper_pipeline_writes_its_report(tmp_path):
    import re
    out = run_example("paper.py", tmp_path)
    md = (out / "report.md").read_text()
    for section in ("## 1. Capacity search", "## 2. The base model", "## 3. Edits", "## 4. Causal tracing", "## Specs"):
        assert section in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) >= 6 and all((out / i).stat().st_size > 1000 for i in images), images
    assert "correlated" in md and "dependent update rate" in md, "the correlated pair's table is there"
    html = (out / "report.html").read_text()
    assert html.count("<img") == len(images) and "<table" in html
    rows = list(csv_rows(out / "sweep" / "results.csv"))
    assert len(rows) == 2 * 3 * 2


def test_the_architecture_comparison_runs_both_families(tmp_path):
    import json
    out = run_example("architectures.py", tmp_path)
    rows = json.loads((out / "rows.json").read_text())
    # per architecture: LoRA on both sublayers and ROME on the MLP of each of 2 blocks, single and correlated
    assert sorted({r["architecture"] for r in rows}) == ["gpt_neox", "llama"] and len(rows) == 2 * 2 * 2 * 2
    assert all(r["edit_success"] == 1 for r in rows if r["method"] == "rome")
    table = (out / "table.md").read_text()
    assert "| llama | dependent update |" in table and "| gpt_neox | edit success |" in table


def csv_rows(path):
    import csv
    with open(path) as f:
        yield from csv.DictReader(f)


def test_a_pool_found_broken_while_submitting_is_replaced(base, tmp_path, monkeypatch):
    """The driver learns of a dead worker from submit (not from a finished future): the cells still in
    the broken pool and the one being submitted all run again in a fresh pool."""
    import signal
    import time
    real = cf.ProcessPoolExecutor
    calls = {"submit": 0}

    class DiesOnThirdSubmit(real):
        def submit(self, *args, **kwargs):
            calls["submit"] += 1
            if calls["submit"] == 3:
                os.kill(next(iter(self._processes)), signal.SIGKILL)
                deadline = time.time() + 30
                while not self._broken and time.time() < deadline:   # CPython marks the pool broken from its manager thread
                    time.sleep(0.01)
            return super().submit(*args, **kwargs)

    monkeypatch.setattr(cf, "ProcessPoolExecutor", DiesOnThirdSubmit)
    rows = rows_of(sweep({"base": base, "axes": SLOW_LORA}, str(tmp_path / "s"), workers=2, progress=False))
    assert calls["submit"] > 6, "the broken pool was replaced and the lost cells submitted again"
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows), [(r["status"], r.get("error")) for r in rows]


def test_unlearning_methods_sweep_forget_sets_only(base, tmp_path):
    spec = {"base": base, "axes": {
        "editor": [{"method": "grad_diff", "adapter": ["full", "lora"], "optimizer": {"epochs": 2, "batch_size": 8}},
                   {"method": "lora", "rank": 2, "optimizer": {"epochs": 1}}],
        "layers": ["mlp@1"],
        "edit": [{"kind": "unlearn", "relation": 0, "forget_fraction": 0.25}, {"kind": "single"}]}}
    out = str(tmp_path / "u")
    with cf.ThreadPoolExecutor(max_workers=1) as ex:
        rows = rows_of(sweep(spec, out, executor=ex, progress=False))
    status = {(r["method"], r["edit_kind"], json.loads(r["cell"])["editor"].get("adapter")): r for r in rows}
    for adapter in ("full", "lora"):
        ok = status[("grad_diff", "unlearn", adapter)]
        assert ok["status"] == "ok", ok["error"]
        assert 0 <= ok["forget_accuracy"] <= 1 and "retain_accuracy" in ok
        assert status[("grad_diff", "single", adapter)]["status"] == "not_applicable"
    assert status[("lora", "unlearn", None)]["status"] == "not_applicable"
    assert status[("lora", "single", None)]["status"] == "ok"
    with open(os.path.join(out, "summary.json")) as f:
        best = {(b["method"], b["edit_kind"]): b for b in json.load(f)["best_layers"]}
    u = [r for r in rows if r["method"] == "grad_diff" and r["edit_kind"] == "unlearn"]
    # an unlearning cell's edit success is 1 − forget_accuracy, its remaining accuracy the retain accuracy
    assert best[("grad_diff", "unlearn")]["edit_success"] == pytest.approx(sum(1 - r["forget_accuracy"] for r in u) / len(u))
    assert best[("grad_diff", "unlearn")]["remaining_accuracy"] == pytest.approx(sum(r["retain_accuracy"] for r in u) / len(u))
