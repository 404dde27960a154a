#!/usr/bin/env python3
"""The paper's experiments end to end (Iofinova & Alistarh, 2026), on data made here, with a report:

  1. capacity search: the largest subject count the model learns to 95% within the epoch budget;
  2. training the base model on the dataset (with a correlated relation pair, for §4.9);
  3. every edit kind × editor × layer selection (a sweep: full fine-tuning, LoRA ranks, ROME and
     MEMIT; single, 10 identical, 10 diverse, forgetting a relation, the correlated pair), with the
     effective rank and spectrum of each cell's delta;
  4. causal tracing of the base model;
  5. report.md (and report.html): every table and figure, the specs, seeds and versions.

    python3 examples/paper.py --preset demo --out out/paper        # about 7 minutes on 2 cores
    python3 examples/paper.py --preset paper --estimate             # the paper's scale: prints the CPU time

Each step keeps its result in --out and is skipped when it is there (the sweep resumes cell by cell),
so a stopped run goes on where it stopped. --preset paper is the paper's scale (100,000 subjects × 6
relations × 400 objects, Pythia-31M, 460 epochs, 76 layer selections × editors per edit kind, 3
seeds): days of CPU time on one machine (--estimate measures this machine and prints the estimate);
run its sweep on a cluster (docs/sweeps.md) or bring a GPU-trained model in with --model.
"""
import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bindings", "python"))

import behemoth  # noqa: E402
from behemoth import Dataset, Model  # noqa: E402
from behemoth.main_job import EDIT_OPTIMIZER, FULL_OPTIMIZER, plot_history  # noqa: E402

MODEL = {"preset": "pythia-31m-shape", "max_positions": 64}


def layer_grid(layers: int) -> list:
    """The paper's 19 selections for 6 blocks: each block's MLP, attention, both; and all blocks."""
    return [f"{k}@{b}" for k in ("mlp", "attn", "both") for b in range(layers)] + ["both@all"]


PRESETS = {
    # For the tests: every step on the tiny preset in well under a minute.
    "tiny": {
        "dataset": {"preset": "tiny", "seed": 0, "correlated_pair": True},
        "model": {"preset": "tiny", "max_positions": 64},
        "training": {"epochs": 150, "batch_size": 32, "learning_rate": 0.003, "min_learning_rate": 0.0003,
                     "weight_decay": 0.0, "warmup_steps": 20, "eval_every_epochs": 25},
        "capacity": {"training": {"epochs": 20, "batch_size": 16, "learning_rate": 0.003, "weight_decay": 0.0, "warmup_steps": 5},
                     "search": {"min_subjects": 16, "max_subjects": 64, "target_accuracy": 0.95, "max_probes": 2}},
        "editors": [{"method": "lora", "rank": 4, "alpha": 8, "optimizer": {"learning_rate": 0.001, "epochs": 20, "batch_size": 32}},
                    {"method": "rome"}],
        "layers": lambda L: ["mlp@0", f"mlp@{L - 1}", "both@all"],
        "edits": [{"kind": "single"}, {"kind": "correlated"}],
        "seeds": [0],
        "trace": 10,
    },
    "demo": {
        "dataset": {"preset": "demo", "seed": 0, "correlated_pair": True},
        "model": MODEL,
        "training": {"epochs": 80, "batch_size": 128, "learning_rate": 0.002, "min_learning_rate": 0.0002,
                     "weight_decay": 0.1, "warmup_steps": 30, "eval_every_epochs": 5, "stop_at_accuracy": 0.99},
        # The procedure at small scale (about a minute): the tiny model shape, 30 epochs. The base
        # model below is the demo size, which the Pythia-31M shape learns in about 2 minutes.
        "capacity": {"model": {"preset": "tiny", "max_positions": 64},
                     "training": {"epochs": 30, "batch_size": 16, "learning_rate": 0.003, "min_learning_rate": 0.0003,
                                  "weight_decay": 0.0, "warmup_steps": 20},
                     "search": {"min_subjects": 64, "max_subjects": 1024, "target_accuracy": 0.95, "max_probes": 5}},
        "editors": [{"method": "full", "optimizer": FULL_OPTIMIZER},
                    {"method": "lora", "rank": [32, 128], "alpha": 32, "optimizer": EDIT_OPTIMIZER},
                    {"method": "rome"}, {"method": "memit"}],
        "layers": lambda L: ["mlp@0", f"mlp@{L // 2}", f"mlp@{L - 1}", f"attn@{L - 1}", "both@all"],
        "edits": [{"kind": "single"}, {"kind": "identical", "count": 10}, {"kind": "diverse", "count": 10},
                  {"kind": "forget_relation", "forget_fraction": 0.1}, {"kind": "correlated"}],
        "seeds": [0],
        "trace": 100,
    },
    "paper": {
        "dataset": {"preset": "paper", "seed": 0, "correlated_pair": True},
        "model": MODEL,
        "training": {"epochs": 460, "batch_size": 128, "learning_rate": 0.0006, "min_learning_rate": 0.00006,
                     "weight_decay": 0.1, "warmup_steps": 2000, "eval_every_epochs": 20},
        "capacity": {"training": {"epochs": 460, "batch_size": 128, "learning_rate": 0.0006, "min_learning_rate": 0.00006,
                                  "weight_decay": 0.1, "warmup_steps": 2000},
                     "search": {"min_subjects": 10000, "max_subjects": 200000, "target_accuracy": 0.95, "max_probes": 8}},
        "editors": [{"method": "full", "optimizer": FULL_OPTIMIZER},
                    {"method": "lora", "rank": [32, 64, 128], "alpha": 32, "optimizer": EDIT_OPTIMIZER},
                    {"method": "rome"}, {"method": "memit"}, {"method": "alphaedit"}],
        "layers": layer_grid,
        "edits": [{"kind": "single"}, {"kind": "identical", "count": 10}, {"kind": "diverse", "count": 10},
                  {"kind": "forget_relation", "forget_fraction": 0.1}, {"kind": "correlated"}],
        "seeds": [0, 1, 2],
        "trace": 1000,
    },
}


def step(name: str, log: dict):
    """Times a step into log[name]."""
    class _T:
        def __enter__(self):
            self.t0 = time.time()
            print(f"== {name}", flush=True)

        def __exit__(self, *exc):
            log[name] = round(log.get(name, 0) + time.time() - self.t0, 1)   # a resumed step adds to its time
            print(f"   {name}: {log[name]:.0f} s", flush=True)
    return _T()


def capacity(p: dict, out: str, log: dict) -> dict:
    path = os.path.join(out, "capacity.json")
    if os.path.exists(path):
        return json.load(open(path))
    with step("capacity search", log):
        report = behemoth.capacity_search(dataset=p["dataset"], model=p["capacity"].get("model", p["model"]),
                                          training=p["capacity"]["training"],
                                          search=p["capacity"]["search"])
    json.dump(report, open(path, "w"), indent=1)
    return report


def _steps_trained(path: str) -> int:
    with Model.load(path) as m:
        return m.info["history"]["steps"]


def train(p: dict, out: str, log: dict, model_path=None) -> tuple:
    dpath, mpath = os.path.join(out, "dataset.h5"), os.path.join(out, "model.h5")
    ds = Dataset.generate(**p["dataset"])
    if not os.path.exists(dpath):
        ds.save(dpath)
    if model_path:
        return dpath, os.path.abspath(model_path), None
    if not os.path.exists(mpath) or _steps_trained(mpath) == 0:
        with step("training", log):
            m = Model.create(dataset=ds, **p["model"])
            m.train(ds, checkpoint_path=mpath, **p["training"])
            m.save(mpath)
    with Model.load(mpath) as m:
        acc = m.evaluate(ds, groups=["sro"])["groups"]["sro"]["accuracy"]
    plot_history(mpath, os.path.join(out, "training.png"))
    return dpath, mpath, acc


def run_sweep(p: dict, out: str, dpath: str, mpath: str, log: dict, workers):
    from behemoth import plots
    from behemoth.sweep import sweep
    with Model.load(mpath) as m:
        L = m.config["layers"]
    spec = {"base": {"model": mpath, "dataset": dpath}, "rank": True,
            "axes": {"editor": p["editors"], "layers": p["layers"](L), "edit": p["edits"], "seed": p["seeds"]}}
    with step("sweep", log):
        rows = sweep(spec, os.path.join(out, "sweep"), workers=workers)
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    plots.sweep(rows, out=os.path.join(out, "sweep", "sweep"))
    return spec, rows


def trace(p: dict, out: str, dpath: str, mpath: str, log: dict) -> dict:
    from behemoth import plots
    path = os.path.join(out, "trace.h5")
    if not os.path.exists(path):
        with step("causal tracing", log), Dataset.load(dpath) as ds, Model.load(mpath) as m:
            m.trace(ds, count=p["trace"], out=path).close()
    plots.trace_heatmap(path, out=os.path.join(out, "trace"))
    plots.causal_effect_curves(path, out=os.path.join(out, "trace_curves"))
    import h5py
    with h5py.File(path, "r") as f:
        report = f.attrs["report"]
    return json.loads(report.decode() if isinstance(report, bytes) else report)


def estimate(p: dict) -> None:
    """Measures training throughput on this machine (a few steps of the preset's model on a slice of
    its data) and prints what the preset costs."""
    ds = Dataset.generate(**p["dataset"])
    tokens = int(ds.info["counts"].get("tokens") or len(ds.tokens))
    sample = Dataset.generate(**dict(p["dataset"], subjects=min(2000, ds.info["counts"]["subjects"])))
    m = Model.create(dataset=sample, **p["model"])
    r = m.train(sample, epochs=1, batch_size=p["training"]["batch_size"], progress=False)
    tps = r["training_tokens_per_second"]
    epochs = p["training"]["epochs"]
    hours = tokens * epochs / tps / 3600
    probes = p["capacity"]["search"]["max_probes"]
    print(f"dataset: {ds.info['counts']['facts']:,} facts, {tokens:,} tokens per epoch; this machine trains "
          f"{tps:,.0f} tokens/s ({behemoth.runtime_info()['blas_core']} core)")
    print(f"training ({epochs} epochs): {hours:,.0f} h; capacity search (≤ {probes} such trainings at ≤ this size): "
          f"≤ {hours * probes:,.0f} h")
    from behemoth.sweep import _expand_editor
    editors = sum(len(_expand_editor(e)) for e in p["editors"])
    cells = editors * len(p["layers"](6)) * len(p["edits"]) * len(p["seeds"])
    # Each cell's edit trains on a few thousand sentences (the edit sets do not grow with the data),
    # but its evaluation forwards every fact once; a forward pass costs about a third of a training step.
    per_cell = 5 + tokens / (3 * tps)
    print(f"sweep: {cells} cells (some not applicable) × about {per_cell:,.0f} s each (5 s of editing, then "
          f"every fact forwarded once at about {3 * tps:,.0f} tokens/s) ≈ {cells * per_cell / 3600:,.0f} hours "
          f"on this machine: a cluster's job (docs/sweeps.md)")


def write_report(out: str, p: dict, preset: str, cap, acc, spec, rows, tr, log, argv) -> str:
    with open(os.path.join(out, "sweep", "summary.json")) as f:   # the sweep's own summary (best layers per editor and kind)
        summary = json.load(f)
    info = behemoth.runtime_info()
    L = []
    L += [f"# Behemoth: the paper's experiments, preset `{preset}`", "",
          f"`{' '.join(argv)}` · behemoth {behemoth.version()} · OpenBLAS {info['blas_core']} · "
          f"{info['threads']} threads · Python {platform.python_version()} · {time.strftime('%Y-%m-%d %H:%M')}", "",
          "Step times: " + ", ".join(f"{k} {v:.0f} s" for k, v in log.items()) + ".", ""]
    L += ["## 1. Capacity search", ""]
    if cap:
        L += ["| subjects | facts | accuracy | learned | seconds |", "|---|---|---|---|---|"]
        for pr in cap.get("probes", []):
            d = pr.get("details") or {}
            L.append(f"| {pr['subjects']} | {d.get('facts', '')} | {pr['accuracy']:.3f} | {'yes' if pr['passed'] else 'no'} | {d.get('seconds', 0):.0f} |")
        L += ["", f"Largest subject count learned to {p['capacity']['search']['target_accuracy']:.0%}: "
                  f"**{cap.get('best_subjects')}** (searched {p['capacity']['search']['min_subjects']}–"
                  f"{p['capacity']['search']['max_subjects']} subjects, model `{json.dumps(p['capacity'].get('model', p['model']))}`, "
                  f"{p['capacity']['training']['epochs']} epochs).", ""]
    L += ["## 2. The base model", "",
          f"Dataset `{json.dumps(p['dataset'])}`; model `{json.dumps(p['model'])}`; training `{json.dumps(p['training'])}`.", ""]
    if acc is not None:
        L += [f"Fact accuracy (sro): **{acc:.1%}**.", "", "![training](training.png)", ""]
    ok = [r for r in rows if r["status"] == "ok"]
    L += ["## 3. Edits: every kind × editor × layer selection", "",
          f"{len(rows)} of {summary['cells_requested']} cells have rows: "
          + ", ".join(f"{v} {k}" for k, v in sorted(summary["by_status"].items())) + ". Full table: `sweep/results.csv` "
          "(and `results.h5`); each cell's spec is in its `cell` column.", "",
          "Best layer selection per editor and edit kind (edit success, ties broken by remaining accuracy):", "",
          "| edit kind | editor | rank | best layers | edit success | remaining accuracy |", "|---|---|---|---|---|---|"]
    for b in sorted(summary["best_layers"], key=lambda b: (str(b["edit_kind"]), str(b["method"]), str(b["rank"]))):
        L.append(f"| {b['edit_kind']} | {b['method']} | {'' if b['rank'] is None or b['rank'] != b['rank'] else int(b['rank'])} | "
                 f"{b['layers']} | {b['edit_success']:.2f} | {b['remaining_accuracy']:.3f} |")
    L += ["", "Heatmaps (mean over seeds; grey: not applicable or failed):", "", "![heatmaps](sweep/sweep_heatmaps.png)", "",
          "Edit success against collateral damage, one point per cell:", "", "![trade-off](sweep/sweep_tradeoff.png)", "",
          "Spectra of each cell's weight change (its largest changed matrix):", "", "![spectra](sweep/sweep_spectra.png)", ""]
    # The paper's rank claim: single-edit full fine-tuning deltas have low effective rank; larger changes higher.
    L += ["Effective rank (entropy, median over changed matrices) of full fine-tuning deltas by edit kind:", "",
          "| edit kind | layers | median effective rank | median 90%-energy rank |", "|---|---|---|---|"]
    for r in ok:
        if r["method"] == "full" and r["layers"] == "both@all":
            L.append(f"| {r['edit_kind']} | {r['layers']} | {r.get('median_effective_rank', float('nan')):.1f} | "
                     f"{r.get('median_energy_rank_90', float('nan')):.0f} |")
    corr = [r for r in ok if r["edit_kind"] == "correlated"]
    keys = [k for k in ("dependent_update_rate", "correlated_retention", "correlated_leak_rate", "correlated_other")
            if any(isinstance(r.get(k), (int, float)) for r in corr)]
    if corr and keys:
        L += ["", "The correlated pair (§4.9): editing the first relation; what the second does:", "",
              "| editor | rank | layers | edit success | " + " | ".join(k.replace("_", " ") for k in keys) + " |",
              "|---|---|---|---|" + "---|" * len(keys)]
        for r in corr:
            L.append(f"| {r['method']} | {'' if r['rank'] is None or r['rank'] != r['rank'] else int(r['rank'])} | {r['layers']} | "
                     f"{r['edit_success']:.2f} | " + " | ".join(f"{float(r[k]):.2f}" for k in keys) + " |")
    L += ["", "## 4. Causal tracing", ""]
    if tr:
        L += [f"{tr.get('prompts_traced')} facts traced ({tr.get('answered_correctly')} answered correctly); "
              f"total effect {tr.get('total_effect', float('nan')):.2f}.", "",
              "| restored | peak token group | peak block | average indirect effect |", "|---|---|---|---|"]
        for k, v in (tr.get("kinds") or {}).items():
            if v.get("peak"):
                L.append(f"| {k} | {v['peak']['group']} | {v['peak']['block']} | {v['peak']['indirect_effect']:.3f} |")
        L += ["", "![trace](trace.png)", "", "![causal effect curves](trace_curves.png)", ""]
    L += ["## Specs", "", "```json", json.dumps({"preset": preset, "sweep": spec}, indent=1, default=str), "```", ""]
    md = "\n".join(L) + "\n"
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, "report.html"), "w") as f:
        f.write(markdown_to_html(md))
    return md


def markdown_to_html(md: str) -> str:
    """The report's Markdown (headings, paragraphs, tables, images, code) as one HTML page, without
    a Markdown package: enough for what write_report emits."""
    import html
    import re
    out, table, code = [], [], False

    def inline(s):
        s = html.escape(s)
        s = re.sub(r"!\[([^\]]*)\]\(([^)]*)\)", r'<img alt="\1" src="\2" style="max-width:100%">', s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", s)

    def flush():
        if table:
            out.append("<table border=1 cellspacing=0 cellpadding=3>")
            for i, row in enumerate(t for t in table if not set(t.replace("|", "").strip()) <= {"-"}):
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                tag = "th" if i == 0 else "td"
                out.append("<tr>" + "".join(f"<{tag}>{inline(c)}</{tag}>" for c in cells) + "</tr>")
            out.append("</table>")
            table.clear()
    for line in md.splitlines():
        if line.startswith("```"):
            flush()
            out.append("</pre>" if code else "<pre>")
            code = not code
        elif code:
            out.append(html.escape(line))
        elif line.startswith("|"):
            table.append(line)
        else:
            flush()
            m = re.match(r"(#+) (.*)", line)
            if m:
                out.append(f"<h{len(m.group(1))}>{inline(m.group(2))}</h{len(m.group(1))}>")
            elif line.strip():
                out.append(f"<p>{inline(line)}</p>")
    flush()
    return "<!doctype html><meta charset=utf-8><title>Behemoth report</title><body style='font-family:sans-serif;max-width:1100px'>\n" \
        + "\n".join(out) + "\n</body>\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    ap.add_argument("--out", default="out/paper")
    ap.add_argument("--model", help="a trained model file of the preset's dataset (skips capacity search and training)")
    ap.add_argument("--workers", type=int, help="sweep worker processes (default: the CPU count)")
    ap.add_argument("--skip-capacity", action="store_true", help="skip the capacity search")
    ap.add_argument("--estimate", action="store_true", help="measure this machine and print the preset's CPU time, then stop")
    a = ap.parse_args(argv)
    p = PRESETS[a.preset]
    if a.estimate:
        estimate(p)
        return 0
    os.makedirs(a.out, exist_ok=True)
    times = os.path.join(a.out, "step_seconds.json")
    log: dict = json.load(open(times)) if os.path.exists(times) else {}   # steps done by an earlier run keep their times
    started = time.time()
    cap = None if (a.skip_capacity or a.model) else capacity(p, a.out, log)
    dpath, mpath, acc = train(p, a.out, log, a.model)
    spec, rows = run_sweep(p, a.out, dpath, mpath, log, a.workers)
    tr = trace(p, a.out, dpath, mpath, log)
    log["this run"] = round(time.time() - started, 1)
    json.dump(log, open(times, "w"), indent=1)
    write_report(a.out, p, a.preset, cap, acc, spec, rows, tr, log, ["python3", "examples/paper.py", *(argv or sys.argv[1:])])
    print(f"report: {os.path.join(a.out, 'report.md')} (and report.html), {log['this run']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
