#!/usr/bin/env python3
"""Token collisions (issue 14): does an edit damage facts that share a token with the edited fact
more than facts that do not?

Generates a dataset whose tokens are partly shared between roles (dataset spec `collisions`,
docs/formats.md "Token collisions"), trains the default model on it, makes single edits with LoRA
(rank 32) and ROME, and tabulates edit success and the accuracy of untouched facts and same-relation
neighbours split by whether they share a token with the edited fact (the edit report's
`*_shared_token` / `*_no_shared_token` metrics, docs/training-and-editing.md).

    python3 examples/collisions.py --preset demo --out out/collisions

Writes --out/table.md (and --table if given), results.json, dataset.h5 and model.h5 (reused when there).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

import numpy as np  # noqa: E402

from behemoth import Dataset, EditSet, Model  # noqa: E402
from behemoth.main_job import EDIT_OPTIMIZERS, PRESETS  # noqa: E402

COLLISIONS = [{"kind": "objects_across_relations", "fraction": 0.2}, {"kind": "subject_parts", "fraction": 0.2}]
EDITORS = {"LoRA r32": dict(method="lora", rank=32, alpha=32), "ROME": dict(method="rome")}
# Per group: (metric of the split, prompt-count metric prefix)
SPLITS = [("remaining", "remaining_accuracy", "remaining"),
          ("same-relation neighbours", "same_relation_neighbours", "same_relation_neighbours")]


def train(args, ds: Dataset, log: dict) -> str:
    path = os.path.join(args.out, "model.h5")
    if not os.path.exists(path):
        t0 = time.time()
        _, model, training = PRESETS[args.preset]   # the main job's model and training spec
        m = Model.create(dataset=ds, **model)
        m.train(ds, progress=False, **training)
        m.save(path)
        log["training_seconds"] = round(time.time() - t0, 1)
    return path


def pooled(rows: list, metric: str, counts: str, suffix: str, before: bool) -> tuple:
    """Accuracy over every prompt of the split, all edits pooled (each edit's split weighted by its
    prompt count), and the number of prompts; None where no edit has a prompt in the split."""
    n = sum(r[f"{counts}_{suffix}_prompts"] for r in rows)
    if n == 0:
        return None, 0
    key = f"{metric}_{suffix}" + ("_before" if before else "")
    return sum(r[key] * r[f"{counts}_{suffix}_prompts"] for r in rows if key in r) / n, int(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--edits", type=int, default=16, help="single edits per editor")
    ap.add_argument("--table", help="also write the markdown table here")
    ap.add_argument("--no-collisions", action="store_true",
                    help="the control: the same dataset spec without collisions (shared tokens are then only same objects)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    log = {"command": "python3 " + " ".join(sys.argv)}
    t_start = time.time()

    spec = {"preset": args.preset, "seed": 0} if args.no_collisions else {"preset": args.preset, "seed": 0, "collisions": COLLISIONS}
    ds = Dataset.generate(spec)
    shared = ds.info["vocabulary"].get("token_roles", {})
    log["shared_tokens"] = sum(1 for roles in shared.values() if len(roles) > 1)
    mpath = train(args, ds, log)
    with Model.load(mpath) as m:
        log["base_sro_accuracy"] = m.evaluate(ds, groups=["sro"])["groups"]["sro"]["accuracy"]

    # The edited facts: distinct random subjects, relations in turn.
    rng = np.random.default_rng(0)
    subjects = rng.choice(ds.info["counts"]["subjects"], size=args.edits, replace=False)
    R = ds.info["counts"]["relations"]
    optimizer = EDIT_OPTIMIZERS[args.preset][0]
    results = {}
    for name, editor in EDITORS.items():
        t0 = time.time()
        rows = []
        for i, s in enumerate(subjects):
            es = EditSet(ds, kind="single", subjects=[int(s)], relation=i % R, seed=i)
            with Model.load(mpath) as m:
                extra = {"optimizer": optimizer} if editor["method"] == "lora" else {}
                res = m.edit(es, progress=False, **editor, **extra)
                rows.append(dict(res.metrics))
        results[name] = {"seconds": round(time.time() - t0, 1), "edits": rows}
        print(f"{name}: {len(rows)} edits in {results[name]['seconds']:.0f} s", flush=True)
    log["total_seconds"] = round(time.time() - t_start, 1)
    json.dump({"spec": ds.spec, "log": log, "results": results}, open(os.path.join(args.out, "results.json"), "w"), indent=1)

    def fmt(x):
        return "—" if x is None else f"{x:.3f}"
    lines = [f"# Token collisions: single edits on the `{args.preset}` preset", "",
             f"Dataset spec: `{json.dumps(spec)}` ({log['shared_tokens']} tokens with more than one role); "
             f"base model `{PRESETS[args.preset][1]['preset']}` (the main job's training spec), sro accuracy {log['base_sro_accuracy']:.3f}. "
             f"{args.edits} single edits per editor (subjects drawn with seed 0, relation i mod {R}); each on the "
             "trained model. Accuracies pool every prompt of the split over the edits; n = prompts (summed over edits); "
             "drop = before − after.", "",
             "| editor | edit success | split | shared token: before → after (drop), n | no shared token: before → after (drop), n |",
             "|---|---|---|---|---|"]
    for name, r in results.items():
        rows = r["edits"]
        success = np.mean([x["edit_success"] for x in rows])
        for label, metric, counts in SPLITS:
            cells = []
            for suffix in ("shared_token", "no_shared_token"):
                b, n = pooled(rows, metric, counts, suffix, True)
                a, _ = pooled(rows, metric, counts, suffix, False)
                drop = None if a is None else b - a
                cells.append(f"{fmt(b)} → {fmt(a)} ({fmt(drop)}), n = {n}")
            lines.append(f"| {name} | {success:.3f} | {label} | {cells[0]} | {cells[1]} |")
    timing = ", ".join(f"{k}: {v['seconds']:.0f} s" for k, v in results.items())
    lines += ["", f"Command: `{log['command']}`", "",
              f"Timings: training {log.get('training_seconds', 'reused')} s; edits {timing}; total {log['total_seconds']:.0f} s "
              "(2 shared cores, nice 10).", ""]
    table = "\n".join(lines)
    print(table)
    for path in [os.path.join(args.out, "table.md")] + ([args.table] if args.table else []):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        open(path, "w").write(table)


if __name__ == "__main__":
    main()
