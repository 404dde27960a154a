#!/usr/bin/env python3
"""The paper's main comparisons on a Llama-family model beside GPT-NeoX (issue: architecture
generalisation): the same dataset (with a correlated relation pair), the same training, then per
block a single edit with LoRA r32 (attention and MLP of that block) and with ROME (that block's MLP),
and the correlated pair's edit with both, for each architecture. Writes table.md and rows.json.

    python3 examples/architectures.py --preset demo --out out/architectures    # about 15 minutes on 2 cores
    python3 examples/architectures.py --preset tiny --out /tmp/arch             # seconds (the tests' shape)
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

import behemoth  # noqa: E402
from behemoth import Dataset, Model  # noqa: E402
from behemoth.main_job import EDIT_OPTIMIZER  # noqa: E402
from behemoth.sweep import sweep  # noqa: E402

PRESETS = {
    "tiny": {"dataset": {"preset": "tiny", "seed": 0, "correlated_pair": True},
             "models": {"gpt_neox": {"preset": "tiny"}, "llama": {"preset": "llama-tiny"}},
             "training": {"epochs": 150, "batch_size": 32, "learning_rate": 0.003, "min_learning_rate": 0.0003,
                          "weight_decay": 0.0, "warmup_steps": 20, "eval_every_epochs": 25},
             "lora": {"learning_rate": 0.001, "epochs": 20, "batch_size": 32}},
    "demo": {"dataset": {"preset": "demo", "seed": 0, "correlated_pair": True},
             "models": {"gpt_neox": {"preset": "pythia-31m-shape"}, "llama": {"preset": "llama-31m-shape"}},
             # examples/paper.py's demo training
             "training": {"epochs": 80, "batch_size": 128, "learning_rate": 0.002, "min_learning_rate": 0.0002,
                          "weight_decay": 0.1, "warmup_steps": 30, "eval_every_epochs": 5, "stop_at_accuracy": 0.99},
             "lora": EDIT_OPTIMIZER},
}

# (row label, metric) of the table, per edit kind
METRICS = {"single": [("edit success", "edit_success"), ("remaining accuracy", "remaining_accuracy"),
                      ("same subject, other relations", "same_subject_other_relations")],
           "correlated": [("edit success", "edit_success"), ("dependent update", "dependent_update_rate"),
                          ("correlated retention", "correlated_retention"), ("remaining accuracy", "remaining_accuracy")]}


def train(p: dict, arch: str, ds, out: str) -> tuple:
    path = os.path.join(out, f"model-{arch}.h5")
    t0 = time.time()
    if not os.path.exists(path):
        with Model.create(dataset=ds, max_positions=64, **p["models"][arch]) as m:
            m.train(ds, **p["training"])
            m.save(path)
    with Model.load(path) as m:
        acc = m.evaluate(ds, groups=["sro"])["groups"]["sro"]["accuracy"]
        params = sum(int(__import__("numpy").prod(s)) for s in m.tensors().values())
    return path, acc, params, time.time() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--out", default="out/architectures")
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args(argv)
    p = PRESETS[a.preset]
    os.makedirs(a.out, exist_ok=True)
    ds = Dataset.generate(**p["dataset"])
    dpath = os.path.join(a.out, "dataset.h5")
    if not os.path.exists(dpath):
        ds.save(dpath)
    rows, trained = [], {}
    for arch in p["models"]:
        mpath, acc, params, seconds = train(p, arch, ds, a.out)
        trained[arch] = (acc, params, seconds)
        with Model.load(mpath) as m:
            L = m.config["layers"]
        spec = {"base": {"model": mpath, "dataset": dpath},
                "axes": {"editor": [{"method": "lora", "rank": 32, "alpha": 32, "optimizer": p["lora"]}, {"method": "rome"}],
                         "layers": [f"{k}@{b}" for b in range(L) for k in ("both", "mlp")],
                         "edit": [{"kind": "single"}, {"kind": "correlated"}], "seed": [0]}}
        got = sweep(spec, os.path.join(a.out, f"sweep-{arch}"), workers=a.workers)
        got = got.to_dict("records") if hasattr(got, "to_dict") else got
        # LoRA on both sublayers of a block, ROME on its MLP (the cells the other pairing leaves out)
        rows += [dict(r, architecture=arch) for r in got if r["status"] == "ok" and
                 ((r["method"] == "lora" and r["layers"].startswith("both@")) or (r["method"] == "rome" and r["layers"].startswith("mlp@")))]
    json.dump(rows, open(os.path.join(a.out, "rows.json"), "w"), indent=1, default=str)
    lines = [f"# GPT-NeoX and Llama on the same data ({a.preset})", "",
             f"Command: `python3 examples/architectures.py {' '.join(argv or sys.argv[1:])}`; library {behemoth.version()}.", "",
             "| architecture | parameters | sro accuracy | training s |", "|---|---|---|---|"]
    for arch, (acc, params, seconds) in trained.items():
        lines.append(f"| {arch} | {params:,} | {acc:.3f} | {seconds:.0f} |")
    for kind, metrics in METRICS.items():
        for editor in ("lora", "rome"):
            blocks = sorted({int(r["layers"].split("@")[1]) for r in rows if r["method"] == editor and r["edit_kind"] == kind})
            lines += ["", f"## {kind} edit, {'LoRA r32 (attention + MLP of the block)' if editor == 'lora' else 'ROME (the block MLP)'}", "",
                      "| architecture | metric | " + " | ".join(f"block {b}" for b in blocks) + " |",
                      "|---|---|" + "---|" * len(blocks)]
            for arch in p["models"]:
                for label, key in metrics:
                    vals = []
                    for b in blocks:
                        r = [x for x in rows if x["architecture"] == arch and x["method"] == editor and x["edit_kind"] == kind
                             and int(x["layers"].split("@")[1]) == b]
                        v = r[0].get(key) if r else None
                        vals.append("" if v is None or v != v else f"{v:.3g}")
                    lines.append(f"| {arch} | {label} | " + " | ".join(vals) + " |")
    path = os.path.join(a.out, "table.md")
    open(path, "w").write("\n".join(lines) + "\n")
    print(open(path).read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
