#!/usr/bin/env python3
"""The analysis instruments on the demo model `make run` leaves in out/ (docs/analysis.md):

1. causal tracing of 100 facts (block outputs, MLPs, attention, and the severed-MLP variant);
2. the effective rank of three edits of one fact under every definition: LoRA rank 32 on the last
   block's MLP, full fine-tuning of every block, and ROME on the last block (rank one);
3. localization vs editing: the block where each traced fact's MLP effect peaks beside the block
   where ROME and LoRA edit it best (each fact edited at each block);
and writes every figure as PNG and PDF, plus analysis.json, into --out (default out/analysis).

    python3 examples/analysis.py [--run out] [--out out/analysis] [--facts 100] [--localize 20]

About 7 minutes on 2 cores, most of it the localization (20 facts × 6 blocks × 2 editors = 240 edits);
`--localize 3` takes under 2.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

import behemoth  # noqa: E402
from behemoth import Dataset, EditSet, Model, plots  # noqa: E402
from behemoth.analysis import localization  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="out", help="a folder `make run` wrote (dataset.h5, model.h5)")
    ap.add_argument("--out", default=None, help="where the figures go (default <run>/analysis)")
    ap.add_argument("--facts", type=int, default=100, help="facts traced")
    ap.add_argument("--localize", type=int, default=20, help="facts compared in localization vs editing (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = args.out or os.path.join(args.run, "analysis")
    os.makedirs(out, exist_ok=True)
    ds = Dataset.load(os.path.join(args.run, "dataset.h5"))
    model = Model.load(os.path.join(args.run, "model.h5"))
    summary = {"library_version": behemoth.version(), "model_digest": model.digest}
    started = time.time()

    # 1. causal tracing
    trace_path = os.path.join(out, "trace.h5")
    tr = model.trace(ds, count=args.facts, samples=10, severed=["mlp"], out=trace_path)
    summary["trace"] = tr.report
    plots.trace_heatmap(trace_path, out=os.path.join(out, "trace_average"))
    first_correct = next(i for i, s in enumerate(tr.steps) if s["correct"])
    import h5py
    with h5py.File(trace_path, "r") as f:
        o = f["offsets"][()]
        tokens = f["prompts"][o[first_correct]:o[first_correct + 1]]
        b, e = f["subject_range"][first_correct]
    labels = [ds.decode([int(t)]).strip() + ("*" if b <= i < e else "") for i, t in enumerate(tokens)]
    plots.trace_heatmap(trace_path, fact=first_correct, labels=labels, out=os.path.join(out, "trace_fact"))
    plots.causal_effect_curves(trace_path, out=os.path.join(out, "causal_effects"))
    print(f"traced {tr.report['prompts_traced']} facts in {tr.report['seconds']:.1f} s")

    # 2. the rank of three edits of one fact
    last = model.config["layers"] - 1
    es = EditSet(ds, kind="single", seed=args.seed)
    methods = {
        "lora": dict(method="lora", rank=32, alpha=32, layers={"blocks": [last], "sublayers": "mlp"},
                     optimizer={"learning_rate": 0.0003, "epochs": 10, "batch_size": 32}),
        "full": dict(method="full", layers={"sublayers": "both"}, optimizer={"learning_rate": 0.0001, "epochs": 5, "batch_size": 32}),
        "rome": dict(method="rome", layers={"blocks": [last]}),
    }
    summary["rank"] = {}
    for name, spec in methods.items():
        with model.clone() as m:
            res = m.edit(es, progress=False, **spec)
            r = behemoth.rank(res, out=os.path.join(out, f"rank_{name}.h5"))
            summary["rank"][name] = {k: r[k] for k in ("median_effective_rank", "median_energy_rank_90", "max_energy_rank_90",
                                                       "max_numerical_rank")}
            summary["rank"][name]["edit_success"] = res.metrics["edit_success"]
            plots.spectra(os.path.join(out, f"rank_{name}.h5"), out=os.path.join(out, f"spectra_{name}"))
            print(f"{name}: edit success {res.metrics['edit_success']:.0%}; ranks {summary['rank'][name]}")

    # 3. localization vs editing
    if args.localize > 0:
        rep = localization(model, ds, trace_path, editors=("rome", "lora"), kind="mlp", group="subject_last",
                           max_facts=args.localize, seed=args.seed,
                           editor_specs={"lora": {"rank": 8, "alpha": 16,
                                                  "optimizer": {"learning_rate": 0.0003, "epochs": 10, "batch_size": 32}}},
                           out=os.path.join(out, "localization.json"))
        plots.localization_vs_editing(rep, out=os.path.join(out, "localization"))
        summary["localization"] = {k: rep[k] for k in ("correlation", "mean_curve_correlation", "mean_trace_peak_block",
                                                       "mean_best_edit_block", "facts_compared")}
        print("localization vs editing:", json.dumps(summary["localization"]["correlation"]))
    summary["seconds"] = time.time() - started
    with open(os.path.join(out, "analysis.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"done in {summary['seconds']:.0f} s: figures and analysis.json in {out}")


if __name__ == "__main__":
    main()
