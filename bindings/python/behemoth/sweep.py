"""Sweeps: the paper's grids (editor × rank × layer selection × edit kind × seed) as one call, run on
every core in processes, resumable, with any concurrent.futures.Executor (Dask's included).

    from behemoth.sweep import sweep
    table = sweep({
        "base": {"model": "out/model.h5", "dataset": "out/dataset.h5"},
        "axes": {
            "editor": [{"method": "lora", "rank": [8, 32], "alpha": 32}, {"method": "full"}, {"method": "rome"}],
            "layers": ["mlp@5", "attn@0-2", "both@all", "all"],
            "edit": [{"kind": "single"}],
            "seed": [0, 1],
        },
    }, out="out/sweep")

Each cell builds its edit set, clones the base model, edits, evaluates (the "before" evaluation is
cached per worker), optionally takes the delta's effective rank, and writes one row:
`<out>/cells/<cell id>.json`, written atomically, so a killed or stopped sweep restarts where it
stopped. The table (one row per cell, the full cell spec in it) is `<out>/results.csv` and
`<out>/results.h5` (and `results.parquet` when pandas and pyarrow are there); `sweep` returns it as a
pandas DataFrame when pandas is installed, else as a list of dicts.

Cells run in a bounded window (one per worker). A cell whose worker process dies (killed, out of
memory) is run again on its own in a fresh process, up to `max_attempts` times; after that its row
says status "failed" and why, and the next `sweep` call tries it again. Rows with status "error"
(the library refused the cell) are kept: change the spec to change them.

Layer selections by name: `mlp@5`, `attn@0-2` (blocks 0, 1, 2), `both@all`, `mlp@all`, and `all`
(every block, both sublayers, the embeddings and the unembedding). ROME, MEMIT and AlphaEdit edit
MLPs only: their cells for attention, both or all are rows with status "not_applicable".
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import hashlib
import itertools
import json
import multiprocessing
import os
import time
from typing import Any, Mapping, Optional, Sequence

from ._files import write_text_atomically
from .unlearn import METHODS as UNLEARN_METHODS

__all__ = ["sweep", "cells", "layer_selection", "LOCATE_EDITORS"]

LOCATE_EDITORS = ("rome", "memit", "alphaedit")
#: The unlearning methods: they run on forget sets (edit kind "unlearn") only, and other methods not on them.
UNLEARN_EDITORS = UNLEARN_METHODS


def layer_selection(name: str, layers: int) -> dict:
    """`mlp@5` → {"blocks": [5], "sublayers": "mlp"}; `attn@0-2`, `both@all`, `all` (everything)."""
    if name == "all":
        return {"blocks": list(range(layers)), "sublayers": "both", "embeddings": True, "unembedding": True}
    part, sep, where = name.partition("@")
    sub = {"mlp": "mlp", "attn": "attention", "attention": "attention", "both": "both"}.get(part)
    if not sep or sub is None:
        raise ValueError(f"layer selection {name!r}: write <mlp|attn|both>@<block | first-last | all>, or all")
    if where == "all":
        blocks = list(range(layers))
    else:
        lo, dash, hi = where.partition("-")
        try:
            blocks = list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
        except ValueError:
            raise ValueError(f"layer selection {name!r}: blocks must be a number, a range a-b, or all") from None
        if not blocks or blocks[0] < 0 or blocks[-1] >= layers:
            raise ValueError(f"layer selection {name!r}: the model has blocks 0..{layers - 1}")
    return {"blocks": blocks, "sublayers": sub}


def _expand_editor(e: Mapping[str, Any]) -> list:
    """An editor entry whose scalar fields hold lists ({"rank": [8, 32]}) → one editor per combination."""
    if "method" not in e:
        raise ValueError(f"sweep: an editor needs a method: {e}")
    keys = [k for k, v in e.items() if isinstance(v, list) and k not in ("layers",)]
    if not keys:
        return [dict(e)]
    out = []
    for values in itertools.product(*(e[k] for k in keys)):
        d = dict(e)
        d.update(zip(keys, values))
        out.append(d)
    return out


def cells(spec: Mapping[str, Any]) -> list:
    """Every cell of a sweep spec, in a stable order, each with its id (a digest of its spec)."""
    axes = dict(spec.get("axes", {}))
    unknown = set(axes) - {"editor", "layers", "edit", "seed"}
    if unknown:
        raise ValueError(f"sweep: unknown axes {sorted(unknown)} (axes: editor, layers, edit, seed)")
    editors = [x for e in axes.get("editor", [{"method": "lora"}]) for x in _expand_editor(e)]
    layers = axes.get("layers", ["mlp@all"])
    edits = axes.get("edit", [{"kind": "single"}])
    seeds = axes.get("seed", [0])
    out = []
    for editor, sel, edit, seed in itertools.product(editors, layers, edits, seeds):
        cell = {"editor": editor, "layers": sel, "edit": edit, "seed": seed}
        text = json.dumps(cell, sort_keys=True)
        cell["id"] = hashlib.sha1(text.encode()).hexdigest()[:12]
        out.append(cell)
    ids = [c["id"] for c in out]
    if len(set(ids)) != len(ids):
        raise ValueError("sweep: two cells are the same (an axis lists a value twice)")
    return out


def check_cells(todo: Sequence[Mapping[str, Any]], model_config: Mapping[str, Any], dataset=None) -> None:
    """Refuses, before anything runs, an axis value that does not exist: an editor the library does
    not have, a layer selection outside the model, an edit spec the dataset cannot build."""
    import behemoth
    from behemoth.edit import EditSet
    editors = behemoth.runtime_info().get("editors") or []
    layers = int(model_config["layers"])
    seen_edits: set = set()
    for c in todo:
        m = c["editor"].get("method")
        if editors and m not in editors:
            raise ValueError(f"sweep: axis editor: method {m!r} does not exist (the library has {', '.join(editors)})")
        try:
            layer_selection(c["layers"], layers)
        except ValueError as e:
            raise ValueError(f"sweep: axis layers: {e}") from None
        key = json.dumps(c["edit"], sort_keys=True)
        if dataset is not None and key not in seen_edits:
            seen_edits.add(key)
            try:
                EditSet(dataset, seed=c["seed"], **c["edit"]).close()
            except Exception as e:  # noqa: BLE001 - the library says what is wrong with the edit spec
                raise ValueError(f"sweep: axis edit: {c['edit']} cannot be built on this dataset: {e}") from None


def check_base(model, dataset, model_path: str = "model", dataset_path: str = "dataset") -> None:
    """Refuses a base model that was not trained on the sweep's dataset: a smaller vocabulary, another
    vocabulary layout (models trained here record it), or a model file whose history names the
    datasets it was trained on and not this one. Models imported from Hugging Face record neither:
    hf.from_transformers(folder, dataset) checks their tokenizer when they come in."""
    vocab = dataset.info.get("vocabulary") or {}
    tok = model.info.get("tokenizer") or {}
    # A larger vocabulary is padding (LitGPT pads to a multiple of 128; the engine accepts it).
    if model.config["vocab_size"] < (vocab.get("size") or 0):
        raise ValueError(f"sweep: base.model {model_path} has a vocabulary of {model.config['vocab_size']} tokens but "
                         f"base.dataset {dataset_path} has {vocab.get('size')}: the model was made for another dataset")
    if tok and tok.get("roles") != vocab.get("roles"):
        raise ValueError(f"sweep: base.model {model_path} was trained on a dataset with another vocabulary layout than "
                         f"base.dataset {dataset_path} (token roles differ): give the dataset the model was trained on")
    trained_on = (model.info.get("history") or {}).get("datasets") or []
    if trained_on and dataset.digest not in trained_on:
        raise ValueError(f"sweep: base.model {model_path} was trained on dataset {', '.join(trained_on)}, not on "
                         f"base.dataset {dataset_path} ({dataset.digest}): give the dataset the model was trained on")


# ---- the worker side: the base model is loaded once per worker process -------------------------

_WORKER: dict = {}


def _base(paths: tuple, threads: int):
    import behemoth
    if paths not in _WORKER:
        behemoth.set_num_threads(threads)
        _WORKER.clear()
        _WORKER[paths] = (behemoth.Dataset.load(paths[1]), behemoth.Model.load(paths[0]))
    return _WORKER[paths]


def _init_worker(threads: int) -> None:
    # OpenBLAS threads are process-wide: one per worker process keeps the cores from oversubscribing
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)


def run_cell(paths: tuple, cell: Mapping[str, Any], with_rank: bool = False, threads: int = 1) -> dict:
    """One cell (in whichever process runs it): the row, status "ok", "not_applicable" or "error"."""
    import behemoth
    from behemoth.edit import EditSet
    row = {"id": cell["id"], "cell": json.dumps(cell, sort_keys=True), "method": cell["editor"]["method"],
           "rank": cell["editor"].get("rank"), "layers": cell["layers"], "edit_kind": cell["edit"].get("kind", "single"),
           "edit_count": cell["edit"].get("count"), "seed": cell["seed"], "status": "ok", "error": None,
           "worker": os.getpid()}
    t0 = time.time()
    try:
        ds, base = _base(paths, threads)
        L = base.config["layers"]
        method = dict(cell["editor"])
        sel = layer_selection(cell["layers"], L)
        if method["method"] in LOCATE_EDITORS:
            if sel["sublayers"] != "mlp" or sel.get("embeddings"):
                row["status"] = "not_applicable"
                row["error"] = f"{method['method']} edits MLPs (dense_4h_to_h, llama: down_proj) only; {cell['layers']} selects more"
                row["seconds"] = time.time() - t0
                return row
            if cell["edit"].get("kind") in ("forget_relation", "unlearn"):
                row["status"] = "not_applicable"
                row["error"] = f"{method['method']} writes one new fact per edit; {cell['edit'].get('kind')} has no single edited prompt per edit"
                row["seconds"] = time.time() - t0
                return row
            sel = {"blocks": sel["blocks"]}
        unlearning = method["method"] in UNLEARN_EDITORS
        if unlearning != (cell["edit"].get("kind") == "unlearn"):
            row["status"] = "not_applicable"
            row["error"] = (f"{method['method']} unlearns a forget set (kind 'unlearn')" if unlearning
                            else f"{method['method']} edits facts; kind 'unlearn' is for the unlearning methods")
            row["seconds"] = time.time() - t0
            return row
        method["layers"] = sel
        es = EditSet(ds, seed=cell["seed"], **cell["edit"])
        row["requested_edits"] = es.spec.get("count")
        row["obtained_edits"] = len(es.edits)
        with base.clone() as m:
            res = m.edit(es, spec=method, progress=False)
            row.update({k: v for k, v in res.metrics.items()})
            report = res.report
            row["delta_norm"] = sum(v ** 2 for v in report.get("delta_norms", {}).values()) ** 0.5
            row["edit_seconds"] = report.get("seconds")
            # The "before" evaluation is shared: a worker computes it once per edit set, then caches it.
            row["before_seconds"] = report.get("before_seconds")
            if with_rank:
                row.update(_rank_columns(res))
            res.close()
        es.close()
    except Exception as e:  # noqa: BLE001 - a failed cell is a row that says why, not a lost sweep
        row["status"] = "error"
        row["error"] = f"{type(e).__name__}: {e}"
    row["seconds"] = time.time() - t0
    return row


SPECTRUM_LENGTH = 64


def _rank_columns(res) -> dict:
    """The delta's rank measures and the spectrum (top singular values) of its largest changed matrix."""
    import tempfile

    import behemoth
    import h5py
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rank.h5")
        r = behemoth.rank(res, out=path)
        cols = {k: r[k] for k in ("median_effective_rank", "median_energy_rank_90", "max_energy_rank_90", "max_numerical_rank")}
        matrices = r.get("matrices") or {}
        if matrices:
            name = max(matrices, key=lambda n: matrices[n]["frobenius_norm"])
            with h5py.File(path, "r") as f:
                sv = f["singular_values"][name][()]
            cols["spectrum_tensor"] = name
            cols["spectrum"] = [float(x) for x in sv[:SPECTRUM_LENGTH]]
    return cols


# ---- the driver --------------------------------------------------------------------------------

def _prepare_base(spec: Mapping[str, Any], out: str, progress) -> tuple:
    """(model path, dataset path): given files, or a model trained once from dataset + training specs
    (kept in <out>/base_model.h5 and reused when its spec matches)."""
    import behemoth
    base = dict(spec.get("base", {}))
    if isinstance(base.get("model"), str):
        if not isinstance(base.get("dataset"), str):
            raise ValueError("sweep: base.model is a file, so base.dataset must be the dataset file it was trained on")
        return os.path.abspath(base["model"]), os.path.abspath(base["dataset"])
    for key in ("dataset", "model", "training"):
        if not isinstance(base.get(key), Mapping):
            raise ValueError("sweep: base needs either {model: file, dataset: file} or {dataset: spec, model: config, training: spec}")
    key = hashlib.sha1(json.dumps(base, sort_keys=True).encode()).hexdigest()[:12]
    mpath, dpath = os.path.join(out, f"base_model-{key}.h5"), os.path.join(out, f"base_dataset-{key}.h5")
    if not (os.path.exists(mpath) and os.path.exists(dpath)):
        ds = behemoth.Dataset.generate(**base["dataset"])
        m = behemoth.Model.create(dataset=ds, **base["model"])
        m.train(ds, progress=progress, **base["training"])
        ds.save(dpath + ".tmp")
        m.save(mpath + ".tmp")
        os.replace(dpath + ".tmp", dpath)
        os.replace(mpath + ".tmp", mpath)
    return os.path.abspath(mpath), os.path.abspath(dpath)


def sweep(spec: Mapping[str, Any], out: str, *, executor: Optional[cf.Executor] = None, workers: Optional[int] = None,
          progress: Optional[bool] = True, max_cells: Optional[int] = None, max_attempts: int = 2):
    """Runs every cell of `spec` not already in `<out>/cells/` and writes the table; returns it.
    executor: any concurrent.futures.Executor (e.g. Dask's `client.get_executor()`); default: a pool
    of `workers` processes (default: the CPU count) with one BLAS thread each. max_cells: stop after
    that many new cells (the rest run on the next call). max_attempts: runs of a cell whose worker
    died before its row says "failed"."""
    import behemoth
    from .progress import progress_bar
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"sweep: max_attempts must be an integer ≥ 1, got {max_attempts!r}")
    os.makedirs(os.path.join(out, "cells"), exist_ok=True)
    paths = _prepare_base(spec, out, progress)
    todo_all = cells(spec)
    with behemoth.Dataset.load(paths[1]) as ds, behemoth.Model.load(paths[0]) as model:
        check_base(model, ds, paths[0], paths[1])
        check_cells(todo_all, model.config, ds)
        base_digests = {"model_digest": model.digest, "dataset_digest": ds.digest}
    write_text_atomically(os.path.join(out, "sweep.json"), json.dumps({
        "spec": spec, "cells": len(todo_all), "base": {"model": paths[0], "dataset": paths[1], **base_digests},
        "library_version": behemoth.runtime_info().get("library_version")}, indent=1))
    done = {c["id"] for c in todo_all if _finished(out, c["id"])}
    todo = [c for c in todo_all if c["id"] not in done]
    if max_cells is not None:
        todo = todo[:max_cells]
    with_rank = bool(spec.get("rank", False))
    own = executor is None
    n = workers or os.cpu_count() or 1
    bar = progress_bar(total=len(todo_all), desc="sweep", enabled=progress)
    bar.update(len(done))
    queue = list(todo)            # cells to run, in order
    suspects: list = []           # cells that were running when a worker died: rerun one at a time
    attempts = {c["id"]: 0 for c in todo}
    inflight: dict = {}
    pool = None
    try:
        while queue or suspects or inflight:
            if pool is None:
                pool = executor if not own else cf.ProcessPoolExecutor(
                    max_workers=n, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(1,))
            # A bounded window (one cell per worker) tells which cells a dead worker took with it;
            # a foreign executor (Dask, ...) gets every cell at once unless `workers` bounds it.
            window = 1 if suspects else (n if own or workers else len(queue) + len(inflight))
            while (suspects or queue) and len(inflight) < window:
                source = suspects or queue
                c = source.pop(0)
                attempts[c["id"]] += 1
                try:
                    inflight[pool.submit(run_cell, paths, c, with_rank, 1)] = c
                except cf.BrokenExecutor:
                    attempts[c["id"]] -= 1
                    source.insert(0, c)
                    if not own:
                        raise RuntimeError("sweep: the executor is broken (a worker died and it cannot start another); the "
                                           "finished cells are saved: run sweep again with a working executor to go on") from None
                    pool = _drop(pool)
                    break
            if not inflight:
                continue
            finished, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
            if own and any(isinstance(f.exception(), cf.BrokenExecutor) for f in finished):
                # A dead process breaks the whole pool: collect every cell in it (finished ones keep
                # their rows, the others go back to run alone in a fresh pool).
                finished = cf.wait(inflight).done
                pool = _drop(pool)   # (already dropped if a submit found it broken)
            for fut in finished:
                c = inflight.pop(fut)
                try:
                    row = fut.result()
                except Exception as e:  # noqa: BLE001 - the worker died (or the executor lost it), not the cell's code
                    why = f"{type(e).__name__}: {e}".strip()
                    if attempts[c["id"]] < max_attempts:
                        suspects.append(c)
                        continue
                    row = _failed_row(c, f"the worker process died while running this cell ({attempts[c['id']]} of "
                                         f"{max_attempts} attempts; last: {why}); run sweep again to retry it")
                row["attempts"] = attempts[c["id"]]
                write_text_atomically(os.path.join(out, "cells", row["id"] + ".json"), json.dumps(row))
                bar.update(1)
    finally:
        bar.close()
        if own and pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return table(out, spec)


def _drop(pool) -> None:
    """Shuts down a broken pool of our own without waiting (its processes are gone or going)."""
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    return None


def _finished(out: str, cell_id: str) -> bool:
    """A cell has a row that is not "failed" (a failed cell is tried again)."""
    p = os.path.join(out, "cells", cell_id + ".json")
    if not os.path.exists(p):
        return False
    try:
        with open(p) as f:
            return json.load(f).get("status") != "failed"
    except (OSError, ValueError):
        return False   # unreadable: run it again (rows are written atomically, so this is outside damage)


def _failed_row(cell: Mapping[str, Any], why: str) -> dict:
    return {"id": cell["id"], "cell": json.dumps(cell, sort_keys=True), "method": cell["editor"]["method"],
            "rank": cell["editor"].get("rank"), "layers": cell["layers"], "edit_kind": cell["edit"].get("kind", "single"),
            "edit_count": cell["edit"].get("count"), "seed": cell["seed"], "status": "failed", "error": why}


def table(out: str, spec: Optional[Mapping[str, Any]] = None):
    """The rows of every finished cell of the sweep in `out` (in cell order), written as results.csv and
    results.h5 (and results.parquet with pandas + pyarrow); a pandas DataFrame if pandas is installed."""
    if spec is None:
        with open(os.path.join(out, "sweep.json")) as f:
            spec = json.load(f)["spec"]
    rows = []
    for c in cells(spec):
        p = os.path.join(out, "cells", c["id"] + ".json")
        if os.path.exists(p):
            with open(p) as f:
                rows.append(json.load(f))
    columns: list = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with open(os.path.join(out, "results.csv.tmp"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    os.replace(os.path.join(out, "results.csv.tmp"), os.path.join(out, "results.csv"))
    _write_h5(os.path.join(out, "results.h5"), rows, columns, spec)
    _write_summary(out, spec, rows)
    try:
        import pandas as pd
    except ImportError:
        return rows
    frame = pd.DataFrame(rows, columns=columns)
    try:
        frame.to_parquet(os.path.join(out, "results.parquet"))
    except Exception:  # noqa: BLE001 - parquet needs pyarrow or fastparquet: optional
        pass
    return frame


def _write_h5(path: str, rows: Sequence[Mapping], columns: Sequence[str], spec) -> None:
    try:
        import h5py
        import numpy as np
    except ImportError:
        return
    tmp = path + ".tmp"
    with h5py.File(tmp, "w", libver=("v110", "latest")) as f:
        f.attrs["format"] = "behemoth.sweep"
        f.attrs["spec"] = json.dumps(spec)
        for c in columns:
            values = [r.get(c) for r in rows]
            if any(isinstance(v, list) for v in values):   # spectra: [cells, length], NaN-padded
                width = max(len(v) for v in values if isinstance(v, list))
                a = np.full((len(rows), width), np.nan)
                for i, v in enumerate(values):
                    if isinstance(v, list):
                        a[i, :len(v)] = v
                f.create_dataset(c, data=a)
                continue
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None for v in values) and \
                    any(v is not None for v in values):
                f.create_dataset(c, data=np.array([np.nan if v is None else float(v) for v in values]))
            else:
                f.create_dataset(c, data=np.array(["" if v is None else str(v) for v in values], dtype=h5py.string_dtype()))
    os.replace(tmp, path)


def metric_value(row: Mapping[str, Any], metric: str):
    """A row's metric, None if it has none; a forgetting edit's edit_success is its
    forgetting_success (forget_relation reports no edit_success); an unlearning edit's is
    1 − forget_accuracy, and its remaining_accuracy is its retain_accuracy."""
    v = row.get(metric)
    if v is None and metric == "edit_success":
        v = row.get("forgetting_success")
        if v is None and row.get("forget_accuracy") is not None:
            v = 1 - float(row["forget_accuracy"])
    if v is None and metric == "remaining_accuracy":
        v = row.get("retain_accuracy")
    return v


def _write_summary(out: str, spec: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict:
    """summary.json and summary.md: cells asked for vs rows written by status, time spent, and per
    editor and edit kind the layer selection with the best edit success (forgetting edits: forgetting
    success; ties: remaining accuracy)."""
    requested = len(cells(spec))
    by_status: dict = {}
    for r in rows:
        by_status[r.get("status")] = by_status.get(r.get("status"), 0) + 1
    best = []
    groups: dict = {}
    for r in rows:
        if r.get("status") == "ok":
            groups.setdefault((r["method"], r.get("rank"), r.get("edit_kind")), []).append(r)
    for (method, rank, kind), rs in sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        by_sel: dict = {}
        for r in rs:
            by_sel.setdefault(r["layers"], []).append(r)

        def mean(rs_, k):
            v = [float(x) for x in (metric_value(r, k) for r in rs_) if x is not None]
            return sum(v) / len(v) if v else float("nan")
        sel = max(by_sel, key=lambda k: (mean(by_sel[k], "edit_success"), mean(by_sel[k], "remaining_accuracy")))
        best.append({"method": method, "rank": rank, "edit_kind": kind, "layers": sel, "cells": len(by_sel[sel]),
                     "edit_success": mean(by_sel[sel], "edit_success"),
                     "remaining_accuracy": mean(by_sel[sel], "remaining_accuracy")})
    summary = {"cells_requested": requested, "rows": len(rows), "missing": requested - len(rows), "by_status": by_status,
               "cell_seconds": sum(float(r.get("seconds") or 0) for r in rows),
               "edit_seconds": sum(float(r.get("edit_seconds") or 0) for r in rows), "best_layers": best}
    write_text_atomically(os.path.join(out, "summary.json"), json.dumps(summary, indent=1))
    lines = [f"# Sweep summary ({out})", "",
             f"{len(rows)} of {requested} cells have rows: " + ", ".join(f"{v} {k}" for k, v in sorted(by_status.items()))
             + (f"; {requested - len(rows)} not run yet" if requested > len(rows) else "") + ".",
             f"Time in cells: {summary['cell_seconds']:.1f} s (of which editing {summary['edit_seconds']:.1f} s).", "",
             "| editor | rank | edit kind | best layers | seeds | edit success | remaining accuracy |", "|---|---|---|---|---|---|---|"]
    for b in best:
        lines.append(f"| {b['method']} | {'' if b['rank'] is None else b['rank']} | {b['edit_kind']} | {b['layers']} | {b['cells']} | "
                     f"{b['edit_success']:.3f} | {b['remaining_accuracy']:.3f} |")
    failed = [r for r in rows if r.get("status") in ("failed", "error")]
    if failed:
        lines += ["", "Cells that did not finish:", ""] + [f"- {r['id']} ({r['method']}, {r['layers']}): {r['status']}: {r.get('error')}" for r in failed]
    write_text_atomically(os.path.join(out, "summary.md"), "\n".join(lines) + "\n")
    return summary
