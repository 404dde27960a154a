#!/usr/bin/env python3
"""The paper's grid of editors for a single fact edit: full fine-tuning and LoRA of rank 32, 64 and
128, each restricted to every block's MLP, every block's attention, every block's MLP + attention,
and all blocks. Trains the demo model once (or loads --model), then prints a table of edit success
and remaining accuracy and writes it to --out/edit_grid.json.

    python3 examples/edit_grid.py [--model out/model.h5] [--edits 1] [--out out]

On 2 cores the full grid (4 editors × 19 layer selections) takes roughly 20–30 minutes on the demo model.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))
sys.path.insert(0, HERE)

from behemoth import Dataset, EditSet, Model  # noqa: E402
from main_job import EDIT_OPTIMIZER, FULL_OPTIMIZER, PRESETS  # noqa: E402


def selections(layers):
    out = []
    for b in range(layers):
        out.append((f"block {b} MLP", {"blocks": [b], "sublayers": "mlp"}))
    for b in range(layers):
        out.append((f"block {b} attention", {"blocks": [b], "sublayers": "attention"}))
    for b in range(layers):
        out.append((f"block {b} both", {"blocks": [b], "sublayers": "both"}))
    out.append(("all blocks", {"sublayers": "both"}))
    return out


EDITORS = [
    ("full", dict(method="full", optimizer=FULL_OPTIMIZER)),
    ("LoRA 32", dict(method="lora", rank=32, alpha=32, optimizer=EDIT_OPTIMIZER)),
    ("LoRA 64", dict(method="lora", rank=64, alpha=64, optimizer=EDIT_OPTIMIZER)),
    ("LoRA 128", dict(method="lora", rank=128, alpha=128, optimizer=EDIT_OPTIMIZER)),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    ap.add_argument("--model", help="a trained model file (skips training); it must match the preset's dataset")
    ap.add_argument("--edits", type=int, default=1, help="single edits to average over (different seeds)")
    ap.add_argument("--out", default="out")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ds_spec, model_cfg, train_spec = PRESETS[a.preset]
    ds = Dataset.generate(**ds_spec)
    if a.model:
        model = Model.load(a.model)
    else:
        model = Model.create(dataset=ds, **model_cfg)
        model.train(ds, **train_spec)
        model.save(os.path.join(a.out, "grid_model.h5"))
    acc = model.evaluate(ds, groups=["sro"])["groups"]["sro"]["accuracy"]
    print(f"base model: fact accuracy {acc:.1%}")
    edit_sets = [EditSet(ds, kind="single", seed=s) for s in range(a.edits)]

    rows = []
    layers = model.config["layers"]
    header = f"{'editor':9s} {'layers':18s} {'edit success':>12s} {'remaining':>10s} {'seconds':>8s}"
    print(header)
    print("-" * len(header))
    for editor, method in EDITORS:
        for label, sel in selections(layers):
            success, remaining, secs = [], [], 0.0
            for es in edit_sets:
                with model.clone() as copy:
                    t0 = time.time()
                    res = copy.edit(es, layers=sel, progress=False, **method)
                    secs += time.time() - t0
                    success.append(res.metrics["edit_success"])
                    remaining.append(res.metrics["remaining_accuracy"])
                    res.close()
            row = {"editor": editor, "layers": label, "edit_success": sum(success) / len(success),
                   "remaining_accuracy": sum(remaining) / len(remaining), "seconds": secs}
            rows.append(row)
            print(f"{editor:9s} {label:18s} {row['edit_success']:12.0%} {row['remaining_accuracy']:10.1%} {secs:8.1f}", flush=True)
    with open(os.path.join(a.out, "edit_grid.json"), "w") as f:
        json.dump({"base_accuracy": acc, "edits": a.edits, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
