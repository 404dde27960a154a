#!/usr/bin/env python3
"""The locate-then-edit study on the demo model (issue 10's numbers; a one-off, never a test).

    python3 bench/locate_edit_study.py rome --run out                 # ROME: 6 blocks x 4 fact tokens x 20 facts
    python3 bench/locate_edit_study.py budget --run out               # ROME at the subject with an unconstrained v*
    python3 bench/locate_edit_study.py batch --run out                # MEMIT / AlphaEdit / LoRA / full on 10 and 25 diverse edits
    python3 bench/locate_edit_study.py correlated --work /tmp/corr    # trains the correlated demo, then 20 correlated edits
    python3 bench/locate_edit_study.py batch100 --work /tmp/o200      # trains the demo with 200 objects, then 100 diverse edits

`--run` is a folder `make run` (or `behemoth run`) wrote: dataset.h5 and model.h5. Each part prints a
table and writes <part>.json beside it (every spec, seed and the library version). A ROME, MEMIT or
AlphaEdit edit here runs with the library's defaults except where a column says otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

import behemoth  # noqa: E402
from behemoth.dataset import Dataset  # noqa: E402
from behemoth.edit import EditSet  # noqa: E402
from behemoth.main_job import EDIT_OPTIMIZER, FULL_OPTIMIZER, PRESETS  # noqa: E402
from behemoth.model import Model  # noqa: E402

FACT_TOKENS = ["subject_last", "subject_first", "last", "relation"]


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def edit(model, es, **method):
    """One experiment on a clone of `model`: (metrics, report, seconds)."""
    with model.clone() as m:
        t = time.time()
        r = m.edit(es, progress=False, **method)
        seconds = time.time() - t
        out = (r.metrics, r.report, seconds)
        r.close()
    return out


def rome(args):
    ds = Dataset.load(os.path.join(args.run, "dataset.h5"))
    model = Model.load(os.path.join(args.run, "model.h5"))
    L = model.config["layers"]
    es = EditSet(ds, kind="diverse", count=args.facts, seed=args.seed)
    rows = []
    print(f"ROME, {args.facts} single-fact edits (one at a time on the trained model), {args.run}")
    print(f"{'fact token':14s} {'block':>5s} {'success':>8s} {'remaining':>10s} {'p(new) v*':>10s} {'s/edit':>7s}")
    for token in FACT_TOKENS:
        for block in range(L):
            metrics, report, seconds = edit(model, es, method="rome", mode="one_at_a_time", fact_token=token, layers={"blocks": [block]})
            per = report.get("per_edit", [])
            # the v* loop's last mean p(new object) per edit, from the editor's traces
            probs = []
            for run in report.get("editor", []):
                for u in run.get("updates", []):
                    if u.get("probability"):
                        probs.append(u["probability"][-1])
            row = dict(fact_token=token, block=block, edit_success=metrics["edit_success"],
                       remaining_accuracy=mean(x["remaining_accuracy"] for x in per),
                       remaining_accuracy_before=metrics.get("remaining_accuracy_before"),
                       v_star_probability=mean(probs), seconds_per_edit=seconds / args.facts)
            rows.append(row)
            print(f"{token:14s} {block:5d} {row['edit_success']:8.0%} {row['remaining_accuracy']:10.1%} {row['v_star_probability']:10.3f} {row['seconds_per_edit']:7.2f}")
    return dict(run=os.path.abspath(args.run), facts=args.facts, seed=args.seed, rows=rows,
                remaining_accuracy_before=metrics.get("remaining_accuracy_before"))


def budget(args):
    """Whether the subject tokens fail for lack of optimisation: v* with 10x the steps, 4x the step
    size, no weight decay and no clamp, at the subject's last token."""
    ds = Dataset.load(os.path.join(args.run, "dataset.h5"))
    model = Model.load(os.path.join(args.run, "model.h5"))
    es = EditSet(ds, kind="diverse", count=args.facts, seed=args.seed)
    loose = dict(v_steps=200, v_lr=2.0, v_weight_decay=0.0, clamp_norm_factor=1000.0, stop_loss=0.01)
    rows = []
    print(f"ROME at subject_last with v* unconstrained ({loose}), {args.facts} single edits, {args.run}")
    print(f"{'block':>5s} {'success':>8s} {'remaining':>10s} {'p(new) v*':>10s}")
    for block in range(model.config["layers"]):
        metrics, report, seconds = edit(model, es, method="rome", mode="one_at_a_time", fact_token="subject_last",
                                        layers={"blocks": [block]}, **loose)
        probs = [u["probability"][-1] for run in report.get("editor", []) for u in run.get("updates", []) if u.get("probability")]
        row = dict(block=block, edit_success=metrics["edit_success"], v_star_probability=mean(probs),
                   remaining_accuracy=mean(x["remaining_accuracy"] for x in report.get("per_edit", [])))
        rows.append(row)
        print(f"{block:5d} {row['edit_success']:8.0%} {row['remaining_accuracy']:10.1%} {row['v_star_probability']:10.3f}", flush=True)
    return dict(run=os.path.abspath(args.run), facts=args.facts, seed=args.seed, v_star=loose, rows=rows)


def batch_methods(L, blocks):
    last = L - 1
    return {
        "memit": dict(method="memit", fact_token="last", layers={"blocks": blocks}),
        "alphaedit": dict(method="alphaedit", fact_token="last", layers={"blocks": blocks}),
        "alphaedit_facts": dict(method="alphaedit", preserved="training_facts", fact_token="last", layers={"blocks": blocks}),
        "lora": dict(method="lora", rank=32, alpha=32, layers={"blocks": [last], "sublayers": "mlp"}, optimizer=EDIT_OPTIMIZER),
        "full": dict(method="full", layers={"sublayers": "both"}, optimizer=FULL_OPTIMIZER),
    }


def run_batch(ds, model, counts, blocks, modes, methods_wanted, seed):
    rows = []
    methods = batch_methods(model.config["layers"], blocks)
    print(f"{'method':16s} {'edits':>5s} {'mode':>10s} {'success':>8s} {'remaining':>10s} {'right after':>11s} {'retention':>9s} {'seconds':>8s}")
    for n in counts:
        es = EditSet(ds, kind="diverse", count=n, seed=seed)
        for name in methods_wanted:
            for mode in modes:
                metrics, report, seconds = edit(model, es, mode=mode, **methods[name])
                row = dict(method=name, edits=n, mode=mode, spec=methods[name], seconds=seconds,
                           **{k: metrics.get(k) for k in ["edit_success", "remaining_accuracy", "remaining_accuracy_before",
                                                          "edit_success_right_after", "sequential_retention", "sequential_late_success",
                                                          "same_relation_neighbours", "same_subject_other_relations"]})
                rows.append(row)
                f = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
                print(f"{name:16s} {n:5d} {mode:>10s} {f(row['edit_success']):>8s} {row['remaining_accuracy']:10.1%} "
                      f"{f(row['edit_success_right_after']):>11s} {f(row['sequential_retention']):>9s} {seconds:8.1f}", flush=True)
    return rows


def batch(args):
    ds = Dataset.load(os.path.join(args.run, "dataset.h5"))
    model = Model.load(os.path.join(args.run, "model.h5"))
    rows = run_batch(ds, model, args.counts, args.blocks, ["batch", "sequential"], args.methods, args.seed)
    return dict(run=os.path.abspath(args.run), blocks=args.blocks, seed=args.seed, rows=rows)


def train(work, **dataset_overrides):
    """The demo preset's dataset (with overrides) and model, trained as `make run` trains them (cached in `work`)."""
    os.makedirs(work, exist_ok=True)
    ds_spec, cfg, spec = PRESETS["demo"]
    dpath, mpath = os.path.join(work, "dataset.h5"), os.path.join(work, "model.h5")
    if os.path.exists(dpath) and os.path.exists(mpath):
        return Dataset.load(dpath), Model.load(mpath)
    ds = Dataset.generate(**dict(ds_spec, seed=0, **dataset_overrides))
    ds.save(dpath)
    model = Model.create(dataset=ds, **dict(cfg, seed=0))
    model.train(ds, progress=False, **dict(spec, seed=0))
    model.save(mpath)
    return ds, model


def correlated(args):
    ds, model = train(args.work, correlated_pair=True, correlation_strength=1.0)
    acc = model.evaluate(ds, groups=["sro"])["groups"]["sro"]["accuracy"]
    print(f"correlated demo dataset: fact accuracy {acc:.1%}; {args.facts} single correlated edits each")
    L = model.config["layers"]
    methods = {f"rome {t} block {b}": dict(method="rome", fact_token=t, layers={"blocks": [b]})
               for t, b in [("last", 1), ("last", 4), ("last", 5), ("subject_last", 0)]}
    methods["lora"] = batch_methods(L, [L - 1])["lora"]
    methods["full"] = batch_methods(L, [L - 1])["full"]
    keys = ["edit_success", "dependent_update_rate", "correlated_retention", "correlated_leak_rate", "correlated_other", "remaining_accuracy"]
    rows = []
    print(f"{'method':24s} " + " ".join(f"{k[:12]:>12s}" for k in keys))
    for name, method in methods.items():
        acc = {k: [] for k in keys}
        for i in range(args.facts):
            es = EditSet(ds, kind="correlated", seed=args.seed + i)
            metrics, _, _ = edit(model, es, **method)
            for k in keys:
                if metrics.get(k) is not None:
                    acc[k].append(metrics[k])
            es.close()
        row = dict(method=name, spec=method, **{k: mean(v) for k, v in acc.items()})
        rows.append(row)
        print(f"{name:24s} " + " ".join(f"{row[k]:12.1%}" for k in keys), flush=True)
    return dict(work=os.path.abspath(args.work), facts=args.facts, seed=args.seed, fact_accuracy=acc, rows=rows)


def batch100(args):
    ds, model = train(args.work, objects=200)
    acc = model.evaluate(ds, groups=["sro"])["groups"]["sro"]["accuracy"]
    print(f"demo dataset with 200 objects per relation: fact accuracy {acc:.1%}")
    rows = run_batch(ds, model, [100], args.blocks, args.modes, args.methods, args.seed)
    return dict(work=os.path.abspath(args.work), blocks=args.blocks, fact_accuracy=acc, rows=rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=["rome", "budget", "batch", "correlated", "batch100"])
    p.add_argument("--run", default="out", help="a folder `make run` wrote (rome, batch)")
    p.add_argument("--work", default="/tmp/behemoth-study", help="where correlated / batch100 train their model")
    p.add_argument("--facts", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--counts", type=int, nargs="+", default=[10, 25])
    p.add_argument("--blocks", type=int, nargs="+", default=[3, 4, 5], help="MEMIT / AlphaEdit blocks")
    p.add_argument("--modes", nargs="+", default=["batch", "sequential"])
    p.add_argument("--methods", nargs="+", default=["memit", "alphaedit", "alphaedit_facts", "lora", "full"])
    p.add_argument("--out", default=None, help="the JSON file (default: <part>.json in --run or --work)")
    args = p.parse_args(argv)
    t = time.time()
    result = {"rome": rome, "budget": budget, "batch": batch, "correlated": correlated, "batch100": batch100}[args.part](args)
    result.update(part=args.part, library_version=behemoth.version(), runtime=behemoth.runtime_info(),
                  command=sys.argv, seconds=time.time() - t)
    out = args.out or os.path.join(args.run if args.part in ("rome", "budget", "batch") else args.work, f"{args.part}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
