"""The main job (`behemoth run`, `make run`): generate a dataset, train a model on it to at least 95%
fact accuracy, evaluate it, then edit one fact with LoRA (rank 32, last block's MLP) and one with
full fine-tuning, and report edit success and remaining accuracy for both; then analyse: the effective
rank of the full fine-tuning delta under every definition, a causal trace of 100 facts, and a small
sweep (LoRA ranks 8 and 32 and ROME over four layer selections) with its figures.

Writes into the output folder: dataset.h5, model.h5 (a resumable checkpoint), edit_lora.h5,
edit_full.h5, rank.h5, trace.h5, report.json (every spec, seed, version, metric and the command line) and training.png
(needs h5py and matplotlib; skipped with a note when they are missing).

    from behemoth.main_job import run
    report = run("tiny", "out")
"""
from __future__ import annotations

import json
import os
import platform
import time
from typing import Optional, Sequence

import numpy as np

import behemoth
from .dataset import Dataset
from .edit import EditSet
from .model import Model

__all__ = ["PRESETS", "EDIT_OPTIMIZER", "FULL_OPTIMIZER", "EDIT_OPTIMIZERS", "JobFailed", "run", "plot_history"]

PRESETS = {
    # dataset spec, model config, training spec
    "tiny": (
        {"preset": "tiny", "seed": 0},
        {"preset": "tiny", "max_positions": 64},
        {"epochs": 150, "batch_size": 32, "learning_rate": 0.003, "min_learning_rate": 0.0003, "weight_decay": 0.0,
         "warmup_steps": 20, "eval_every_epochs": 25},
    ),
    "demo": (
        {"preset": "demo", "seed": 0},                      # 256 subjects × 4 relations × 50 objects
        {"preset": "pythia-31m-shape", "max_positions": 64},  # 6 blocks × 256, 8 heads, 1024, rotary 0.25
        {"epochs": 80, "batch_size": 128, "learning_rate": 0.002, "min_learning_rate": 0.0002, "weight_decay": 0.1,
         "warmup_steps": 30, "eval_every_epochs": 5, "stop_at_accuracy": 0.99},
    ),
}

# Editing: LoRA at 3e-4 for 10 epochs, full fine-tuning at 1e-4 for 5 (the library's defaults, spelled
# out so the report shows them); on the demo model single edits then succeed and keep remaining accuracy.
EDIT_OPTIMIZER = {"learning_rate": 0.0003, "epochs": 10, "batch_size": 32}
FULL_OPTIMIZER = {"learning_rate": 0.0001, "epochs": 5, "batch_size": 32}
# The tiny model (2 blocks × 64) needs larger steps for one edit to take.
EDIT_OPTIMIZERS = {
    "tiny": ({"learning_rate": 0.001, "epochs": 20, "batch_size": 32}, {"learning_rate": 0.0005, "epochs": 10, "batch_size": 32}),
    "demo": (EDIT_OPTIMIZER, FULL_OPTIMIZER),
}

#: Facts traced by the job's analysis step (10 noise samples each; about 14 s on the demo model).
TRACE_PROMPTS = {"tiny": 20, "demo": 100}

#: The job fails when training ends below this fact accuracy (the edits would measure little).
MIN_ACCURACY = 0.95


class JobFailed(Exception):
    """The job ran but its result is not usable (the model did not learn the facts)."""


def run(preset: str = "demo", out: str = "out", seed: int = 0, progress: Optional[bool] = True,
        command: Optional[Sequence[str]] = None) -> dict:
    """Runs the main job on a preset ("tiny" or "demo"), writing into `out`; returns the report
    (also written as out/report.json). `command` is recorded in the report (the command line that
    ran the job). Raises JobFailed when the model ends below 95% fact accuracy."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (presets: {', '.join(sorted(PRESETS))})")
    os.makedirs(out, exist_ok=True)
    started = time.time()
    ds_spec, model_cfg, train_spec = PRESETS[preset]
    ds_spec = dict(ds_spec, seed=seed)
    model_cfg = dict(model_cfg, seed=seed)
    train_spec = dict(train_spec, seed=seed, checkpoint_path=os.path.join(out, "model.h5"))

    info = behemoth.runtime_info()
    print(f"behemoth {behemoth.version()}: OpenBLAS {info['blas_core']} kernels, {info['threads']} threads")
    if info.get("warning"):
        print("warning:", info["warning"])

    # 1. Data
    ds = Dataset.generate(**ds_spec)
    ds.save(os.path.join(out, "dataset.h5"))
    c = ds.info["counts"]
    print(f"dataset: {c['subjects']} subjects × {c['relations']} relations × {c['objects']} objects = {c['facts']} facts, "
          f"{c['sequences']} sentences, vocabulary {c['vocab_size']}")
    print("  e.g.", ds.decode(ds.sentence(0)))

    # 2. Train to ≥ 95% fact accuracy
    model = Model.create(dataset=ds, **model_cfg)
    print(f"model: {model_cfg['preset']}, {model.info['parameters']:,} parameters")
    train_report = model.train(ds, progress=progress, **train_spec)
    evaluation = model.evaluate(ds, groups=["sro"])
    accuracy = evaluation["groups"]["sro"]["accuracy"]
    print(f"trained in {train_report['seconds']:.0f} s ({train_report['training_tokens_per_second']:.0f} tokens/s): "
          f"fact accuracy {accuracy:.1%}")
    plotted = plot_history(os.path.join(out, "model.h5"), os.path.join(out, "training.png"))

    report = {
        "library_version": behemoth.version(),
        "versions": {"library": behemoth.version(), "abi": behemoth.abi_version(), "binding": behemoth.__version__,
                     "python": platform.python_version(), "numpy": np.__version__},
        "command": list(command) if command is not None else None,
        "runtime": info,
        "preset": preset,
        "seed": seed,
        "dataset": ds.info["spec"],
        "model": model.config,
        "training": train_report,
        "evaluation": evaluation,
    }
    report_path = os.path.join(out, "report.json")
    if accuracy < MIN_ACCURACY:
        # The report is still written: it holds the training run that fell short.
        report["seconds"] = time.time() - started
        _write_json(report_path, report)
        raise JobFailed(f"the model reached only {accuracy:.1%} fact accuracy (below {MIN_ACCURACY:.0%}); "
                        f"see {report_path}")

    # 3. Edit one fact two ways, each on its own copy of the trained model
    edit_set = EditSet(ds, kind="single", seed=seed)
    s, r, old, new = (int(x) for x in edit_set.edits[0])
    print(f"edit: subject {s}, relation {r}: object {old} -> {new}; training sentences {edit_set.training_counts}")
    for warning in edit_set.warnings:   # e.g. the official counts scaled to the dataset's size
        print(f"  note: {warning}")
    last = model.config["layers"] - 1
    lora_optimizer, full_optimizer = EDIT_OPTIMIZERS[preset]
    methods = {
        "lora": dict(method="lora", rank=32, alpha=32, layers={"blocks": [last], "sublayers": "mlp"}, optimizer=lora_optimizer),
        "full": dict(method="full", layers={"sublayers": "both"}, optimizer=full_optimizer),
    }
    edits = {}
    for name, method in methods.items():
        with model.clone() as copy:
            result = copy.edit(edit_set, progress=progress, **method)
            result.save(os.path.join(out, f"edit_{name}.h5"))
            m = result.metrics
            print(f"  {name:4s}: edit success {m['edit_success']:.0%}, remaining accuracy {m['remaining_accuracy']:.1%} "
                  f"(before {m['remaining_accuracy_before']:.1%})")
            edits[name] = result.report
            if name == "full":
                # every rank definition of the full fine-tuning delta, side by side (docs/analysis.md)
                ranks = behemoth.rank(result, out=os.path.join(out, "rank.h5"))
                print(f"        delta rank: median entropy rank {ranks['median_effective_rank']:.1f}, "
                      f"median 90%-energy rank {ranks['median_energy_rank_90']:.0f} over {len(ranks['matrices'])} matrices")

    # 4. Analyse: causal tracing of the trained model's facts (where does restoring a clean state bring the answer back?)
    tr = model.trace(ds, count=TRACE_PROMPTS[preset], samples=10, progress=progress, out=os.path.join(out, "trace.h5"))
    t = tr.report
    peaks = ", ".join(f"{k} at {v['peak']['group']} block {v['peak']['block']} ({v['peak']['indirect_effect']:.2f})"
                      for k, v in t["kinds"].items() if v["peak"])
    print(f"trace: {t['prompts_traced']} facts ({t['answered_correctly']} answered correctly), total effect {t['total_effect']:.2f}; "
          f"average indirect effect peaks: {peaks}")
    tr.close()

    # 5. A small sweep (behemoth.sweep): LoRA ranks × layer selections and ROME, in worker processes
    from .sweep import sweep as run_sweep
    from . import plots
    sweep_spec = {"base": {"model": os.path.abspath(os.path.join(out, "model.h5")), "dataset": os.path.abspath(os.path.join(out, "dataset.h5"))},
                  "axes": {"editor": [{"method": "lora", "rank": [8, 32], "alpha": 32, "optimizer": lora_optimizer}, {"method": "rome"}],
                           "layers": ["mlp@0", f"mlp@{last}", f"attn@{last}", "both@all"], "seed": [seed]}}
    rows = run_sweep(sweep_spec, os.path.join(out, "sweep"), progress=progress)
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    swept = "sweep/results.csv"
    try:
        plots.sweep(rows, out=os.path.join(out, "sweep", "sweep"))
        swept += ", sweep/sweep_heatmaps.png, sweep/sweep_tradeoff.png"
    except ImportError:
        print("  (sweep figures skipped: matplotlib is not installed)")
    for r in rows:
        if r["status"] == "ok":
            print(f"  sweep {r['method']:4s} rank {str(r['rank']) if r['rank'] == r['rank'] and r['rank'] is not None else '-':>3s} "
                  f"{r['layers']:9s}: edit success {r['edit_success']:.0%}, remaining accuracy {r['remaining_accuracy']:.1%}")

    report["edit_set"] = edit_set.info
    report["edits"] = edits
    report["trace"] = t
    report["sweep"] = {"spec": sweep_spec, "rows": rows}
    report["seconds"] = time.time() - started
    _write_json(report_path, report)
    written = "dataset.h5, model.h5, edit_lora.h5, edit_full.h5, rank.h5, trace.h5, " + swept + (", training.png" if plotted else "")
    print(f"done in {time.time() - started:.0f} s: {report_path}, {written}")
    return report


def _write_json(path: str, value: dict) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=1)


def plot_history(checkpoint: str, path: str) -> bool:
    """Loss per step and accuracy per evaluation, read back from the checkpoint with h5py, drawn with
    matplotlib. Both are optional: without them one line says the plot was skipped. Returns whether
    the plot was written."""
    try:
        import h5py
        import matplotlib
    except ImportError as e:
        print(f"{os.path.basename(path)} skipped: {e.name} is not installed (pip install 'behemoth[plots]')")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with h5py.File(checkpoint, "r") as f:
        step, loss = f["history/step"][:], f["history/loss"][:]
        eval_step, acc = f["history/eval_step"][:], f["history/eval_accuracy"][:]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(step, loss, lw=0.8, label="training loss")
    ax.set_xlabel("step"); ax.set_ylabel("loss")
    ax2 = ax.twinx()
    if len(eval_step):
        ax2.plot(eval_step, acc[:, 0], "o-", color="C1", label="fact accuracy")
    ax2.set_ylim(0, 1.02); ax2.set_ylabel("fact accuracy")
    fig.legend(loc="upper center", ncol=2, frameon=False); fig.tight_layout(rect=(0, 0, 1, 0.92)); fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
