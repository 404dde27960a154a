#!/usr/bin/env python3
"""The slow tier's demo-scale sweep check (make test-slow): a 60-cell sweep of the demo model
(LoRA ranks 8 and 32, full fine-tuning, ROME × 15 layer selections) run three ways, which must give
the same table, metric for metric:
  1. uninterrupted, in a pool of worker processes;
  2. killed (SIGKILL to the driver and its workers) a third of the way through, then resumed: the
     finished cells are not run again;
  3. on a Dask LocalCluster with 2 worker processes.

    python3 tools/check_demo_sweep.py [--run .build/slow-demo]     # a folder with the demo main job's model.h5, dataset.h5
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

from behemoth.main_job import EDIT_OPTIMIZER, FULL_OPTIMIZER  # noqa: E402
from behemoth.sweep import sweep  # noqa: E402

RUN_COLUMNS = {"seconds", "edit_seconds", "before_seconds", "worker", "attempts"}


def differences(a, b) -> list:
    out = []
    if [r["id"] for r in a] != [r["id"] for r in b]:
        return ["the cells differ"]
    for x, y in zip(a, b):
        for k in sorted(set(x) | set(y)):
            vx, vy = x.get(k), y.get(k)
            if k in RUN_COLUMNS or (isinstance(vx, float) and isinstance(vy, float) and vx != vx and vy != vy):
                continue
            if vx != vy:
                out.append(f"{x['method']} {x['layers']}: {k} {vx!r} vs {vy!r}")
    return out


def rows_of(t):
    return t.to_dict("records") if hasattr(t, "to_dict") else t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=os.path.join(ROOT, ".build", "slow-demo"))
    ap.add_argument("--out", default=os.path.join(ROOT, ".build", "slow-sweep"))
    a = ap.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    os.makedirs(a.out)
    spec = {"base": {"model": os.path.abspath(os.path.join(a.run, "model.h5")), "dataset": os.path.abspath(os.path.join(a.run, "dataset.h5"))},
            "rank": True,
            "axes": {"editor": [{"method": "lora", "rank": [8, 32], "alpha": 32, "optimizer": EDIT_OPTIMIZER},
                                {"method": "full", "optimizer": FULL_OPTIMIZER}, {"method": "rome"}],
                     "layers": [f"mlp@{b}" for b in range(6)] + [f"attn@{b}" for b in range(6)] + ["both@5", "both@all", "all"],
                     "seed": [0]}}
    failures = []

    t0 = time.time()
    whole = rows_of(sweep(spec, os.path.join(a.out, "whole"), progress=False))
    t_whole = time.time() - t0
    status = {s: sum(1 for r in whole if r["status"] == s) for s in {r["status"] for r in whole}}
    print(f"1. uninterrupted: {len(whole)} cells in {t_whole:.0f} s ({status})")
    if len(whole) != 60 or set(status) - {"ok", "not_applicable"}:
        failures.append(f"the uninterrupted sweep has {len(whole)} rows with statuses {status}")

    killed = os.path.join(a.out, "killed")
    script = os.path.join(a.out, "run.py")
    with open(script, "w") as f:
        f.write("import json, sys\nsys.path.insert(0, %r)\nfrom behemoth.sweep import sweep\n"
                "if __name__ == '__main__':\n    sweep(json.loads(sys.argv[1]), %r, progress=False)\n"
                % (os.path.join(ROOT, "bindings", "python"), killed))
    proc = subprocess.Popen([sys.executable, script, json.dumps(spec)], start_new_session=True)
    cells = os.path.join(killed, "cells")
    while proc.poll() is None and len([p for p in os.listdir(cells) if p.endswith(".json")] if os.path.isdir(cells) else []) < 20:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p: os.path.getmtime(os.path.join(cells, p)) for p in os.listdir(cells) if p.endswith(".json")}
    t0 = time.time()
    resumed = rows_of(sweep(spec, killed, progress=False))
    rerun = [p for p, t in before.items() if os.path.getmtime(os.path.join(cells, p)) != t]
    diff = differences(resumed, whole)
    print(f"2. killed after {len(before)} cells, resumed: {len(resumed)} rows in {time.time() - t0:.0f} s; "
          f"finished cells run again: {len(rerun)}; differences from the uninterrupted table: {len(diff)}")
    failures += [f"killed+resumed: {d}" for d in diff[:5]] + ([f"{len(rerun)} finished cells ran again"] if rerun else [])
    if not 0 < len(before) < 60:
        failures.append(f"the kill came at {len(before)} cells, not midway")

    from distributed import Client, LocalCluster
    t0 = time.time()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        dask_rows = rows_of(sweep(spec, os.path.join(a.out, "dask"), executor=client.get_executor(), progress=False))
    diff = differences(dask_rows, whole)
    print(f"3. Dask LocalCluster (2 worker processes): {len(dask_rows)} rows in {time.time() - t0:.0f} s; "
          f"differences from the uninterrupted table: {len(diff)}")
    failures += [f"dask: {d}" for d in diff[:5]]

    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("demo sweep check passed")


if __name__ == "__main__":
    main()
