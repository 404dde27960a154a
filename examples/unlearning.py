"""Unlearning on the demo model: every method, full fine-tuning and LoRA, against the oracle.

    python examples/unlearning.py --preset demo --out out/unlearning        # the table in docs/unlearning.md
    python examples/unlearning.py --preset tiny --out /tmp/unlearn --seeds 5

Forgets one relation's facts for 50% of its subjects (relation 0), trains the oracle (the same
specs and seeds, without those sentences; cached under <out>/oracles), runs each unlearning method
with full fine-tuning and with LoRA on every block, each followed by a relearning attack, and
measures Forget Quality of the oracles trained with other seeds against the seed-0 oracle (what a
perfect unlearner could reach) and of the original model (what no unlearning gives). Writes
<out>/unlearning.md and <out>/unlearning.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import behemoth as bh
from behemoth.main_job import PRESETS

COLUMNS = ["forget_accuracy", "retain_accuracy", "model_utility", "forget_truth_ratio", "forget_quality",
           "oracle_agreement", "relearned_fraction", "relearn_forget_accuracy", "seconds"]


def train_original(preset: str, out: str, progress: bool):
    data_spec, config, train = PRESETS[preset]
    ds = bh.Dataset.generate(data_spec)
    path = os.path.join(out, "model.h5")
    if os.path.exists(path):
        m = bh.Model.load(path)
        if ds.digest in m.info["history"].get("datasets", []):
            return ds, m, config, train
        m.close()
    m = bh.Model.create(ds, config)
    t0 = time.time()
    m.train(ds, train, progress=progress)
    print(f"original model trained in {time.time() - t0:.0f} s", file=sys.stderr)
    m.save(path)
    return ds, m, config, train


def seeded(spec: dict, seed: int) -> dict:
    return dict(spec, seed=seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--out", default="out/unlearning")
    ap.add_argument("--relation", type=int, default=0)
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--methods", default=",".join(bh.unlearn.METHODS))
    ap.add_argument("--adapters", default="full,lora")
    ap.add_argument("--relearn-steps", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=5, help="oracles of other seeds to compare with the seed-0 oracle")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    cache = os.path.join(args.out, "oracles")

    ds, model, config, train = train_original(args.preset, args.out, args.progress)
    fs = bh.forget_set(ds, relation=args.relation, forget_fraction=args.fraction)
    print(f"forget set: {len(fs.info['forget_facts'])} facts; groups {fs.info['groups']}", file=sys.stderr)

    t0 = time.time()
    oracle = bh.oracle(ds, fs, config=config, train=train, cache_dir=cache, progress=args.progress)
    oracle_seconds = time.time() - t0
    print(f"oracle (seed 0): {oracle_seconds:.0f} s (0 when cached)", file=sys.stderr)

    rows = []
    original = bh.unlearn.evaluate(model, fs, oracle)["metrics"]
    rows.append(dict(method="(original model)", adapter="", **{k: original.get(k) for k in COLUMNS}))
    for method in filter(None, args.methods.split(",")):
        for adapter in filter(None, args.adapters.split(",")):
            m = model.clone()
            t = time.time()
            res = m.edit(fs, method=method, adapter=adapter, oracle=oracle,
                         relearn={"steps": args.relearn_steps}, progress=args.progress)
            metrics = dict(res.metrics)
            metrics["seconds"] = time.time() - t
            rows.append(dict(method=method, adapter=adapter, **{k: metrics.get(k) for k in COLUMNS}))
            print(method, adapter, {k: rows[-1][k] for k in COLUMNS}, file=sys.stderr)
            res.close()
            m.close()

    # Oracles of other seeds against the seed-0 oracle: the Forget Quality a perfect unlearner reaches.
    seed_rows = []
    for s in range(1, args.seeds + 1):
        t = time.time()
        other = bh.oracle(ds, fs, config=seeded(config, s), train=seeded(train, s), cache_dir=cache, progress=args.progress)
        mt = bh.unlearn.evaluate(other, fs, oracle)["metrics"]
        seed_rows.append({"seed": s, "forget_quality": mt["forget_quality"], "oracle_agreement": mt["oracle_agreement"],
                          "forget_accuracy": mt["forget_accuracy"], "seconds": time.time() - t})
        print("oracle seed", s, seed_rows[-1], file=sys.stderr)
        other.close()
    fq = [r["forget_quality"] for r in seed_rows]

    result = {"preset": args.preset, "relation": args.relation, "fraction": args.fraction,
              "forget_facts": len(fs.info["forget_facts"]), "oracle_seconds": oracle_seconds,
              "original_forget_quality": original["forget_quality"], "rows": rows, "oracle_seeds": seed_rows,
              "oracle_seed_median_forget_quality": statistics.median(fq) if fq else None,
              "ks_method": "exact (two-sided, scipy.stats.ks_2samp(method='exact'))",
              "library_version": bh.version()}
    with open(os.path.join(args.out, "unlearning.json"), "w") as f:
        json.dump(result, f, indent=2)

    def fmt(v):
        return "" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
    lines = [f"Forgetting relation {args.relation} for {args.fraction:.0%} of its subjects "
             f"({result['forget_facts']} facts), preset {args.preset}, library {bh.version()}.", "",
             "| method | adapter | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 2)]
    for r in rows:
        lines.append(f"| {r['method']} | {r['adapter']} | " + " | ".join(fmt(r[k]) for k in COLUMNS) + " |")
    lines += ["", f"Oracle training: {oracle_seconds:.0f} s. Forget Quality (KS exact) of the original model: "
              f"{original['forget_quality']:.3g}.", ""]
    if seed_rows:
        lines += ["| oracle seed | forget_quality vs seed 0 | oracle_agreement | forget_accuracy |", "|---|---|---|---|"]
        lines += [f"| {r['seed']} | {r['forget_quality']:.3g} | {r['oracle_agreement']:.3g} | {r['forget_accuracy']:.3g} |" for r in seed_rows]
        lines += ["", f"Median over {len(fq)} seed pairs: {statistics.median(fq):.3g}."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "unlearning.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
