#!/usr/bin/env python3
"""Sweep throughput: the same cells one after another in a loop in this process (the library's
default threads: every core) vs `behemoth.sweep` with a pool of worker processes (one BLAS thread
each), in one run. The "before" evaluation (every test group on the unedited model, computed once
per edit set and then cached) is counted separately: the loop computes it once, each worker once.

    python3 bench/sweep_bench.py --model out/model.h5 --dataset out/dataset.h5            # the paper grid
    python3 bench/sweep_bench.py --model out/model.h5 --dataset out/dataset.h5 --grid small --loop

--grid paper: full fine-tuning and LoRA ranks 32, 64, 128 × 19 layer selections (each block's MLP,
attention, both; all blocks) = 76 cells, the grid examples/edit_grid.py runs serially.
--loop also runs the serial loop (for the paper grid that is the slow part: about 9 minutes).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

from behemoth.main_job import EDIT_OPTIMIZER, FULL_OPTIMIZER  # noqa: E402


def paper_axes(layers: int) -> dict:
    sel = [f"{k}@{b}" for k in ("mlp", "attn", "both") for b in range(layers)] + ["both@all"]
    return {"editor": [{"method": "full", "optimizer": FULL_OPTIMIZER},
                       {"method": "lora", "rank": [32, 64, 128], "alpha": [32], "optimizer": EDIT_OPTIMIZER}],
            "layers": sel, "seed": [0]}


def small_axes(layers: int) -> dict:
    return {"editor": [{"method": "lora", "rank": [8, 32], "alpha": 32, "optimizer": EDIT_OPTIMIZER},
                       {"method": "full", "optimizer": FULL_OPTIMIZER}],
            "layers": ["mlp@0", f"mlp@{layers - 1}", f"attn@{layers - 1}", "both@all"], "seed": [0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--grid", choices=["paper", "small"], default="paper")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--loop", action="store_true", help="also run the cells one after another in this process")
    ap.add_argument("--loop-threads", type=int, default=os.cpu_count() or 1,
                    help="threads of that loop (default: every core, as a plain script runs)")
    ap.add_argument("--out", help="keep the sweep's folder here (default: a temporary one)")
    a = ap.parse_args()

    import behemoth
    from behemoth.sweep import cells, run_cell, sweep
    info = behemoth.runtime_info()
    with behemoth.Model.load(a.model) as m:
        layers = m.config["layers"]
    axes = paper_axes(layers) if a.grid == "paper" else small_axes(layers)
    spec = {"base": {"model": os.path.abspath(a.model), "dataset": os.path.abspath(a.dataset)}, "axes": axes}
    todo = cells(spec)
    print(f"{len(todo)} cells ({a.grid} grid) on {a.model}; OpenBLAS core {info['blas_core']}, {os.cpu_count()} cores")
    result = {"cells": len(todo), "grid": a.grid, "blas_core": info["blas_core"], "workers": a.workers}

    out = a.out or tempfile.mkdtemp(prefix="sweep-bench-")
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    rows = sweep(spec, out, workers=a.workers, progress=False)
    pool_wall = time.time() - t0
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        print(f"warning: {len(bad)} cells did not finish ok: {bad[0].get('error')}")
    # Each worker computed the before evaluation once (its first cell); they ran side by side.
    by_worker: dict = {}
    for r in rows:
        by_worker[r["worker"]] = max(by_worker.get(r["worker"], 0.0), float(r.get("before_seconds") or 0))
    pool_before = max(by_worker.values())
    result.update(pool_wall=pool_wall, pool_before=pool_before, pool_workers_used=len(by_worker))
    print(f"pool of {a.workers} processes: {pool_wall:.1f} s wall ({len(todo) / pool_wall * 60:.1f} cells/min); "
          f"before evaluation {pool_before:.1f} s per worker ({len(by_worker)} workers) → "
          f"{len(todo) / (pool_wall - pool_before) * 60:.1f} cells/min without it")

    if a.loop:
        paths = (os.path.abspath(a.model), os.path.abspath(a.dataset))
        behemoth.set_num_threads(a.loop_threads)
        t0 = time.time()
        loop_rows = []
        for c in todo:
            loop_rows.append(run_cell(paths, c, False, a.loop_threads))
        loop_wall = time.time() - t0
        loop_before = sum(float(r.get("before_seconds") or 0) for r in loop_rows)
        same = sum(1 for x, y in zip(rows, loop_rows) if x.get("edit_success") == y.get("edit_success"))
        result.update(loop_wall=loop_wall, loop_before=loop_before, loop_threads=a.loop_threads,
                      ratio=loop_wall / pool_wall, ratio_without_before=(loop_wall - loop_before) / (pool_wall - pool_before))
        print(f"loop in one process ({a.loop_threads} threads): {loop_wall:.1f} s ({len(todo) / loop_wall * 60:.1f} cells/min); "
              f"before evaluation {loop_before:.1f} s → {len(todo) / (loop_wall - loop_before) * 60:.1f} cells/min without it")
        print(f"pool vs loop: {result['ratio']:.2f}× wall, {result['ratio_without_before']:.2f}× without the before "
              f"evaluation; edit success equal in {same} of {len(todo)} cells (threads change float rounding)")
    print(json.dumps(result))
    if not a.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
