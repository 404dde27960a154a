#!/usr/bin/env python3
"""The slow tier's demo-scale analysis check (make test-slow): runs the main job on the demo preset
into a folder, then checks what issue 11 asks of the demo model's trace (high > low for at least 90%
of the facts it answers correctly; the MLP effect at the subject token peaking in an early block),
the full fine-tuning delta's rank report (every definition present, 90%-energy rank below the entropy
rank), and executes examples/analysis.ipynb on the folder's files with h5py alone.

    python3 tools/check_demo_analysis.py [--out .build/slow-demo]
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, ".build", "slow-demo"))
    args = ap.parse_args()
    subprocess.run([sys.executable, "-m", "behemoth", "run", "--preset", "demo", "--out", args.out], check=True)
    with open(os.path.join(args.out, "report.json")) as f:
        report = json.load(f)
    t = report["trace"]
    ok, above = t["answered_correctly"], t["high_above_low"]
    print(f"trace: {t['prompts_traced']} facts, {ok} answered correctly, high > low for {above}; "
          f"MLP peak {t['kinds']['mlp']['peak']}")
    failures = []
    if ok == 0 or above < 0.9 * ok:
        failures.append(f"high > low for {above} of {ok} correctly answered facts (< 90%)")
    mlp = t["kinds"]["mlp"]["peak"]
    if mlp is None or mlp["group"] not in ("subject_first", "subject_last") or mlp["block"] > 2:
        failures.append(f"the MLP effect peaks at {mlp}, not at the subject in an early block")
    r = report["edits"]["full"]["delta_rank"]
    for name, x in r.items():
        for key in ("effective_rank", "energy_rank_90", "energy_rank_99", "stable_rank", "numerical_rank"):
            if key not in x:
                failures.append(f"{name}: no {key}")
    import nbclient
    import nbformat
    nb = nbformat.read(os.path.join(ROOT, "examples", "analysis.ipynb"), as_version=4)
    os.environ["BEHEMOTH_OUT"] = os.path.abspath(args.out)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": os.path.join(ROOT, "examples")}}).execute()
    print(f"notebook: ran on {args.out} ({', '.join(n for n in os.listdir(args.out) if n.startswith('notebook_'))})")
    if failures:
        print("FAILED:", *failures, sep="\n  ")
        sys.exit(1)
    print("demo analysis: passed")


if __name__ == "__main__":
    main()
