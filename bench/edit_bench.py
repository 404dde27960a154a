#!/usr/bin/env python3
"""Edit steps per second on the demo model through the library's own editors (the Python binding):
LoRA r32 on the last block's MLP, and full fine-tuning of every block. Steps are timed between the
editor's step callbacks (the edit's evaluation excluded). Run with BEHEMOTH_LIB naming a library to
time another build (speed_bench.py times the checkout's and a baseline's in one run).

    python3 bench/edit_bench.py [--run out] [--steps 40]

`--run` is a folder `make run` wrote (dataset.h5, model.h5); without it the demo dataset is generated
and an untrained demo-shape model is used (the same arithmetic per step). Prints one line per editor:
`edit_steps_per_s <name> <value>`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

from behemoth.dataset import Dataset  # noqa: E402
from behemoth.edit import EditSet  # noqa: E402
from behemoth.model import Model  # noqa: E402


def time_edit(model, es, spec, warmup=3):
    stamps = []
    with model.clone() as m:
        r = m.edit(es, progress=False, callback=lambda rep: stamps.append(time.perf_counter()), **spec)
        r.close()
    steps = stamps[warmup:]
    if len(steps) < 2:
        raise SystemExit(f"edit_bench: only {len(stamps)} steps; raise --steps")
    gaps = sorted(b - a for a, b in zip(steps, steps[1:]))
    return 1 / gaps[len(gaps) // 2], 1 / gaps[0], len(stamps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a folder make run wrote (dataset.h5, model.h5)")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per editor (approximately)")
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()
    if a.run:
        ds = Dataset.load(os.path.join(a.run, "dataset.h5"))
        model = Model.load(os.path.join(a.run, "model.h5"))
    else:
        ds = Dataset.generate(preset="demo", seed=0)
        model = Model.create(dataset=ds, preset="pythia-31m-shape")
    last = model.config["layers"] - 1
    es = EditSet(ds, kind="single", seed=0)
    sentences = len(es.sequences())
    epochs = max(4, -(-a.steps * a.batch // max(1, sentences)))
    opt = {"epochs": epochs, "batch_size": a.batch, "learning_rate": 1e-4}
    editors = {
        "lora_last_mlp": dict(method="lora", rank=32, alpha=32, layers={"blocks": [last], "sublayers": "mlp"}, optimizer=opt),
        "full_all_blocks": dict(method="full", layers={"sublayers": "both"}, optimizer=opt),
    }
    print(f"edit_bench: model "
          f"({model.config['layers']} blocks × {model.config['hidden']}), {sentences} training sentences, batch {a.batch}")
    for name, spec in editors.items():
        rate, best, n = time_edit(model, es, spec)
        print(f"edit_steps_per_s {name} {rate:.2f}   ({n} steps, median step)")
        print(f"edit_best_steps_per_s {name} {best:.2f}   (fastest step)")


if __name__ == "__main__":
    main()
