#!/usr/bin/env python3
"""Paraphrase scores of single edits: a dataset with several templates per relation, one held out.

Each relation trains on the official SRO sentence and two more templates of the generated family
and holds one template out (never written in training text for its facts). The script trains the
base model (or reuses one: --model), measures how well it answers facts in their held-out template
before any edit, then makes the paper's single edit with LoRA (rank 32, last block's MLP), full
fine-tuning and ROME on --edits facts the model knows in both the SRO and the held-out template
(as CounterFact edits facts the model knows), and writes a markdown table of the mean edit success,
CounterFact ES / PS / NS, paraphrase success and magnitude, and remaining accuracy.

    python3 examples/paraphrase.py --preset demo --out out/paraphrase     # about 10 minutes on 2 free cores
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

from behemoth import Dataset, EditSet, Model  # noqa: E402
from behemoth.main_job import EDIT_OPTIMIZERS, PRESETS  # noqa: E402

COLUMNS = ["edit_success", "efficacy_score", "paraphrase_success", "paraphrase_score", "paraphrase_magnitude",
           "neighborhood_score", "remaining_accuracy"]


# Templates with the subject and relation before the object (word order, fillers, synonyms of the
# grammar words, a question form): each can be held out, and each trains the object's prediction.
EVALUABLE = ["W9 RR {r} W7 SS {s} W5 OO {o}",
             "SS {s} W11 W12 RR {r} W13 OO {o}",
             "QQ WQ1 RR {r} WQ2 SS {s} WQ3 WQ4 AA OO {o}",
             "W14 W15 SS {s} W16 RR {r} W17 W18 OO {o}"]


def known_facts(model, ds, heldout: int, seed: int) -> list:
    """Base facts the model answers in the SRO prompt and in every held-out template, in a seeded order."""
    sro = model.evaluate_group(ds, "sro")["correct"]
    para = model.evaluate_group(ds, "paraphrase")["correct"].reshape(-1, heldout)   # fact by fact
    base = ds.info["counts"]["subjects"] * ds.info["counts"]["relations"]
    known = [f for f in range(base) if sro[f] and para[f].all()]
    np.random.default_rng(seed).shuffle(known)
    return known


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    ap.add_argument("--out", default="out/paraphrase")
    ap.add_argument("--templates", type=int, default=4, help="templates per relation (the official one included)")
    ap.add_argument("--heldout", type=int, default=1, help="held-out templates per relation")
    ap.add_argument("--epochs", type=int, default=150, help="training epochs at most (stops at 99%% on sro)")
    ap.add_argument("--edits", type=int, default=5, help="single edits per method (averaged)")
    ap.add_argument("--model", default=None, help="a model trained on this dataset (skips training)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table", default=None, help="also write the markdown table here")
    ap.add_argument("--repeats", type=int, default=3,
                    help="sentences per fact, each in a template drawn on its own (with 1, a fact is written in one template only)")
    ap.add_argument("--evaluable", action="store_true",
                    help="draw from templates whose object comes last (every sentence then teaches the object) instead of the generated family")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.time()

    ds_spec, model_cfg, train_spec = PRESETS[args.preset]
    extra = {"templates": EVALUABLE} if args.evaluable else {}
    ds = Dataset.generate(dict(ds_spec, seed=args.seed, templates_per_relation=args.templates, heldout_templates=args.heldout,
                               repeats=args.repeats, **extra))
    ds.save(os.path.join(args.out, "dataset.h5"))
    templates = ds.info["templates"]
    for t in templates:
        print(f"{t['relation']}: training {t['training']}, held out {t['heldout']}")

    if args.model:
        model = Model.load(args.model)
        trained = f"reused from {args.model} ({model.info['history']['steps']} steps)"
    else:
        model = Model.create(dataset=ds, **dict(model_cfg, seed=args.seed))
        t0 = time.time()
        model.train(ds, **dict(train_spec, seed=args.seed, epochs=args.epochs))
        trained = f"trained here, at most {args.epochs} epochs, {time.time() - t0:.0f} s"
        model.save(os.path.join(args.out, "model.h5"))
    evaluation = model.evaluate(ds, groups=["sro", "trained_paraphrase", "paraphrase"])["groups"]
    accuracy = {g: v["accuracy"] for g, v in evaluation.items()}
    per_relation = {g: {f"r{p['relation']}": p["accuracy"] for p in v.get("per_relation", [])} for g, v in evaluation.items()}
    print("accuracy: " + ", ".join(f"{g} {a:.1%}" for g, a in accuracy.items()))

    facts = known_facts(model, ds, args.heldout, args.seed)
    R = ds.info["counts"]["relations"]
    last = model.config["layers"] - 1
    lora_optimizer, full_optimizer = EDIT_OPTIMIZERS[args.preset]
    methods = {
        f"LoRA rank 32, block {last} MLP": dict(method="lora", rank=32, alpha=32, layers={"blocks": [last], "sublayers": "mlp"},
                                               optimizer=lora_optimizer),
        "full fine-tuning (all blocks)": dict(method="full", layers={"sublayers": "both"}, optimizer=full_optimizer),
        "ROME (default block)": dict(method="rome"),
    }
    runs = {name: [] for name in methods}
    edits = []
    for k, f in enumerate(facts[:args.edits]):
        with EditSet(ds, kind="single", subjects=[f // R], relation=f % R, seed=args.seed + k) as edit_set:
            edits.append([int(x) for x in edit_set.edits[0]])
            for name, method in methods.items():
                with model.clone() as copy:
                    t0 = time.time()
                    result = copy.edit(edit_set, progress=False, **method)
                    runs[name].append(dict(result.metrics, seconds=time.time() - t0,
                                           layers=result.report.get("method", {}).get("layers")))
                    result.close()
        print(f"edit {k}: subject {edits[-1][0]}, relation {edits[-1][1]}, {edits[-1][2]} -> {edits[-1][3]}: "
              + "; ".join(f"{n.split()[0]} PS {runs[n][-1].get('paraphrase_score', float('nan')):.2f}" for n in methods))

    def mean(name, key):
        values = [r[key] for r in runs[name] if key in r]
        return sum(values) / len(values) if values else None

    command = "python3 examples/paraphrase.py " + " ".join(sys.argv[1:])
    lines = [f"# Paraphrase scores of single edits ({args.preset} preset)", "",
             f"Command: `{command}` (total {time.time() - started:.0f} s on this machine, shared with other jobs).", "",
             f"Dataset: {ds.info['counts']['facts']} facts, `templates_per_relation` = {args.templates}, "
             f"`heldout_templates` = {args.heldout}, seed {args.seed}. Each relation's templates:", ""]
    lines += [f"- {t['relation']}: training {', '.join(f'`{x}`' for x in t['training'])}; held out "
              f"{', '.join(f'`{x}`' for x in t['heldout'])}" for t in templates]
    trained_elsewhere = [t["relation"] for t in templates
                         if any(h in u["training"] for h in t["heldout"] for u in templates if u is not t)]
    lines += ["", f"Held-out templates that another relation trains on: {', '.join(trained_elsewhere) or 'none'}.", "",
              f"Base model ({model_cfg['preset']}, {trained}). Accuracy before editing (per relation in brackets):", ""]
    lines += [f"- `{g}`: {a:.1%} (" + ", ".join(f"{r} {v:.0%}" for r, v in per_relation[g].items()) + ")" for g, a in accuracy.items()]
    lines += ["", "(`paraphrase`: every fact in its relation's held-out template; `trained_paraphrase`: in its other "
              "evaluable training templates.)", "",
              f"Edits: {len(edits)} single edits (`kind` single, one at a time from the base model), of facts the base "
              f"model answers in the SRO prompt and in the held-out template ({len(facts)} such facts): "
              + ", ".join(f"(s {s}, r {r}: {o} → {n})" for s, r, o, n in edits)
              + ". Each trains on the SRO sentence only. Means over the edits:", "",
              "| method | " + " | ".join(COLUMNS) + " | seconds |",
              "|---|" + "---|" * (len(COLUMNS) + 1)]
    for name in methods:
        cells = [mean(name, k) for k in COLUMNS]
        lines.append(f"| {name} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in cells)
                     + f" | {mean(name, 'seconds'):.1f} |")
    first = next(iter(methods))
    lines += ["", "Before the edits (same for every method): " + ", ".join(
        f"{k} {mean(first, k + '_before'):.3f}" for k in ("edit_success", "paraphrase_success", "remaining_accuracy")
        if mean(first, k + "_before") is not None) + "."]
    text = "\n".join(lines) + "\n"
    for path in [os.path.join(args.out, "table.md")] + ([args.table] if args.table else []):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump({"accuracy": accuracy, "per_relation": per_relation, "edits": edits, "runs": runs, "templates": templates},
                  f, indent=1, default=str)
    print(text)


if __name__ == "__main__":
    main()
