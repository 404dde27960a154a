"""Figures of the analysis files (matplotlib, imported when a function runs; h5py to read the files).

Each function takes a file path (or an open h5py.File; the localization scatter a report dict or its
JSON path), draws one figure, writes `<out>.png` and `<out>.pdf` when `out` (a path without
extension) is given, and returns the matplotlib Figure.

    from behemoth import plots
    plots.trace_heatmap("out/trace.h5", out="out/trace_average")        # average indirect effect by token group
    plots.trace_heatmap("out/trace.h5", fact=0, out="out/trace_fact0")   # one prompt, as the ROME paper draws it
    plots.causal_effect_curves("out/trace.h5", out="out/effects")
    plots.spectra("out/rank.h5", out="out/spectra")
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .sweep import metric_value

__all__ = ["trace_heatmap", "causal_effect_curves", "spectra", "localization_vs_editing", "sweep"]

KIND_TITLES = {"block": "block output", "mlp": "MLP output", "attn": "attention output",
               "block_severed_mlp": "block output, MLP severed", "block_severed_attn": "block output, attention severed"}
KIND_COLOURS = {"block": "Purples", "mlp": "Greens", "attn": "Reds", "block_severed_mlp": "Blues", "block_severed_attn": "Oranges"}


def _pyplot():
    """pyplot, on the Agg backend when nothing chose one and there is no display (a headless Linux
    machine, CI); a backend already chosen (MPLBACKEND, a notebook's inline, pyplot imported) stays."""
    import matplotlib
    headless = sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and \
        not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if headless and not os.environ.get("MPLBACKEND") and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


@contextmanager
def _opened(source):
    import h5py
    if isinstance(source, h5py.File):
        yield source
    else:
        with h5py.File(os.fspath(source), "r") as f:
            yield f


def _save(fig, out) -> None:
    if out is not None:
        out = os.fspath(out)
        fig.savefig(out + ".png", dpi=130, bbox_inches="tight")
        fig.savefig(out + ".pdf", bbox_inches="tight")


def _text(v) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _scalar(v) -> float:
    """A value stored as a scalar or a one-element array (/average/total_effect is [1])."""
    return float(np.asarray(v).reshape(-1)[0])


def _kinds(f, folder: str, kinds) -> list:
    """The kinds asked for, or every kind in `folder` of the file (the known ones in their usual order)."""
    if kinds is not None:
        kinds = list(kinds)
        missing = [k for k in kinds if f"{folder}/{k}" not in f]
        if missing:
            have = sorted(k for k in f[folder] if k != "total_effect") if folder in f else []
            raise ValueError(f"no /{folder}/{missing[0]} in the trace file (it has: {', '.join(have) or 'none'})")
        return kinds
    if folder not in f:
        return []
    present = [k for k in f[folder] if k != "total_effect"]
    return [k for k in KIND_TITLES if k in present] + sorted(k for k in present if k not in KIND_TITLES)


def trace_heatmap(trace, fact: Optional[int] = None, out=None, kinds: Optional[Sequence[str]] = None,
                  labels: Optional[Sequence[str]] = None):
    """One panel per kind. fact=None: the average indirect effect (score − low) over the correctly
    answered prompts, token group × block. fact=i: prompt i's scores, token × block, the colour
    starting at its low score (the ROME paper's heatmaps); `labels` names its tokens (default: ids,
    with the subject's marked *)."""
    plt = _pyplot()
    with _opened(trace) as f:
        kinds = _kinds(f, "scores" if fact is not None else "average", kinds)
        if not kinds:
            raise ValueError("trace_heatmap: the file has no /scores/<kind> (or /average/<kind>)")
        L = f[f"scores/{kinds[0]}"].shape[2] if fact is not None else f[f"average/{kinds[0]}"].shape[1]
        if fact is None:
            names = json.loads(_text(f["token_groups"].attrs["names"]))
            data = {k: f[f"average/{k}"][()] for k in kinds}
            count = int(_scalar(f["average"].attrs["count"]))
            rows = [i for i in range(len(names)) if not all(np.isnan(data[k][i]).all() for k in kinds)]
            ylabels = [names[i].replace("_", " ") for i in rows]
            data = {k: v[rows] for k, v in data.items()}
            title = f"average indirect effect (score − low) over {count} correctly answered prompts"
            vmin = {k: min(0.0, float(np.nanmin(v))) if np.isfinite(v).any() else 0.0 for k, v in data.items()}
            bar = "average indirect effect"
        else:
            if not 0 <= fact < f["low"].shape[0]:
                raise IndexError(f"trace_heatmap: fact {fact} is outside the {f['low'].shape[0]} traced prompts")
            n = int(f["offsets"][fact + 1] - f["offsets"][fact])
            tokens = f["prompts"][int(f["offsets"][fact]):int(f["offsets"][fact + 1])]
            b, e = f["subject_range"][fact]
            if labels is not None and len(labels) != n:
                raise ValueError(f"trace_heatmap: {len(labels)} labels for the {n} tokens of prompt {fact}")
            ylabels = list(labels) if labels is not None else [f"{t}*" if b <= i < e else str(t) for i, t in enumerate(tokens)]
            data = {k: f[f"scores/{k}"][fact, :n, :] for k in kinds}
            low, high = float(f["low"][fact]), float(f["high"][fact])
            vmin = {k: low for k in kinds}
            fact_index, answer, target = int(f["facts"][fact]), int(f["answer"][fact]), int(f["target"][fact])
            verdict = "correct" if answer == target else f"expected {target}"
            title = (f"prompt {fact}" + (f" (fact {fact_index})" if fact_index >= 0 else "") +
                     f": answer {answer} ({verdict}), p clean {high:.3f}, corrupted {low:.3f}")
            bar = "p(answer)"
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds) + 1, 0.38 * len(ylabels) + 1.8), squeeze=False)
    for ax, k in zip(axes[0], kinds):
        v = data[k]
        im = ax.imshow(v, cmap=KIND_COLOURS.get(k, "viridis"), vmin=vmin[k], aspect="auto", interpolation="nearest")
        ax.set_title(f"restoring the {KIND_TITLES.get(k, k)}", fontsize=9)
        ax.set_xticks(range(L))
        ax.set_xlabel("block")
        ax.set_yticks(range(len(ylabels)))
        ax.set_yticklabels(ylabels if ax is axes[0][0] else [""] * len(ylabels), fontsize=8)
        cb = fig.colorbar(im, ax=ax, fraction=0.05)
        cb.ax.tick_params(labelsize=7)
        cb.set_label(bar, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, out)
    return fig


def causal_effect_curves(trace, out=None, group: str = "subject_last", kinds: Optional[Sequence[str]] = None):
    """Average indirect effect vs block, one line per kind, at `group` (left) and at the last token
    (right), with the total effect (high − low) dashed."""
    plt = _pyplot()
    with _opened(trace) as f:
        names = json.loads(_text(f["token_groups"].attrs["names"]))
        kinds = _kinds(f, "average", kinds)
        if not kinds:
            raise ValueError("causal_effect_curves: the file has no /average/<kind>")
        avg = {k: f[f"average/{k}"][()] for k in kinds}
        total = _scalar(f["average/total_effect"][()])
        count = int(_scalar(f["average"].attrs["count"]))
    if group not in names:
        raise ValueError(f"causal_effect_curves: no token group {group!r} (groups: {', '.join(names)})")
    groups = [group] + (["last"] if group != "last" else [])
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False, sharey=True)
    colours = {"block": "tab:purple", "mlp": "tab:green", "attn": "tab:red", "block_severed_mlp": "tab:blue",
               "block_severed_attn": "tab:orange"}
    for ax, g in zip(axes[0], groups):
        gi = names.index(g)
        for k in kinds:
            y = avg[k][gi]
            ax.plot(range(len(y)), y, marker="o", label=KIND_TITLES.get(k, k), color=colours.get(k))
        ax.axhline(total, ls="--", color="grey", lw=1, label=f"total effect {total:.2f}")
        ax.set_title(f"at the {g.replace('_', ' ')} token", fontsize=10)
        ax.set_xlabel("block")
        ax.set_xticks(range(len(avg[kinds[0]][gi])))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("average indirect effect")
    axes[0][-1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"causal effects over {count} correctly answered prompts", fontsize=10)
    fig.tight_layout()
    _save(fig, out)
    return fig


def spectra(rank, out=None, names: Optional[Sequence[str]] = None, top: Optional[int] = 8):
    """Singular-value spectra (log scale) of the deltas of a rank file: the `top` matrices with the
    largest Frobenius norm (or `names`), each labelled with its entropy rank and 90%-energy rank."""
    plt = _pyplot()
    with _opened(rank) as f:
        table_names = json.loads(_text(f["table"].attrs["names"]))
        fro = dict(zip(table_names, f["table/frobenius_norm"][()]))
        er = dict(zip(table_names, f["table/effective_rank"][()]))
        e90 = dict(zip(table_names, f["table/energy_rank_90"][()]))
        spec = json.loads(_text(f.attrs["spec"])) if "spec" in f.attrs else {}
        source = ", ".join(str(spec[k]) for k in ("source", "method") if isinstance(spec.get(k), (str, int)))
        chosen = list(names) if names is not None else sorted(table_names, key=lambda n: -fro[n])[:top or len(table_names)]
        unknown = [n for n in chosen if n not in fro]
        if unknown:
            raise ValueError(f"spectra: no matrix {unknown[0]!r} in the rank file ({len(table_names)} matrices)")
        values = {n: f[f"singular_values/{n}"][()] for n in chosen}
    if not chosen:
        raise ValueError("spectra: the rank file holds no matrix (nothing changed)")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for n in chosen:
        s = values[n]
        s = s[s > 0]
        short = n.replace("gpt_neox.layers.", "L").replace("model.layers.", "L").replace(".weight", "")
        ax.semilogy(np.arange(1, len(s) + 1), s, label=f"{short}: entropy rank {er[n]:.1f}, 90% energy {int(e90[n])}")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title("singular values of the weight change" + (f" ({source})" if source else ""), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out)
    return fig


def localization_vs_editing(report: Union[Mapping, str, os.PathLike], out=None):
    """The block where tracing peaks (x, jittered) against the block where each editor edits best
    (y), one point per fact, with the correlations (behemoth.analysis.localization's report)."""
    plt = _pyplot()
    if not isinstance(report, Mapping):
        with open(os.fspath(report)) as fh:
            report = json.load(fh)
    editors = list(report["editors"])
    if not editors or not report["facts"]:
        raise ValueError("localization_vs_editing: the report compares no editor or no fact")
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, len(editors), figsize=(4.2 * len(editors), 4), squeeze=False)
    blocks = report.get("blocks") or sorted({r["trace_peak_block"] for r in report["facts"]} |
                                            {b for r in report["facts"] for b in r["best_edit_block"].values()})
    for ax, e in zip(axes[0], editors):
        x = np.array([r["trace_peak_block"] for r in report["facts"]], float)
        y = np.array([r["best_edit_block"][e] for r in report["facts"]], float)
        ax.scatter(x + rng.uniform(-0.15, 0.15, len(x)), y + rng.uniform(-0.15, 0.15, len(y)), alpha=0.7)
        lo, hi = min(blocks), max(blocks)
        ax.plot([lo, hi], [lo, hi], ls=":", color="grey", lw=1)
        c = report.get("correlation", {}).get(e) or {}
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        n = c.get("n", len(x))
        ax.set_title(f"{e}: Pearson {fmt(c.get('pearson'))}, Spearman {fmt(c.get('spearman'))} (n = {n})", fontsize=9)
        where = ", ".join(str(v).replace("_", " ") for v in (report.get("kind"), report.get("group")) if v)
        ax.set_xlabel("block where tracing peaks" + (f" ({where})" if where else ""))
        ax.set_ylabel("block where the edit works best")
        ax.set_xticks(blocks)
        ax.set_yticks(blocks)
        ax.grid(alpha=0.3)
    fig.suptitle("does localization inform editing?", fontsize=10)
    fig.tight_layout()
    _save(fig, out)
    return fig


def _rows(table):
    if hasattr(table, "to_dict"):
        return table.to_dict("records")
    if isinstance(table, (str, os.PathLike)):
        import csv
        import json
        with open(os.fspath(table)) as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            for k, v in r.items():
                if isinstance(v, str) and v.startswith("["):
                    r[k] = json.loads(v)   # a list column (a cell's spectrum) is JSON in the CSV
                    continue
                try:
                    r[k] = float(v) if v not in ("", None) else None
                except ValueError:
                    pass
        return rows
    return list(table)


def _rank_label(r) -> str:
    v = r.get("rank")
    return "—" if v is None or (isinstance(v, float) and v != v) else str(int(v))


def _column(r) -> str:
    """A heatmap column: the editor, with its rank when it has one ("lora r32", "full", "rome")."""
    rk = _rank_label(r)
    return str(r["method"]) if rk == "—" else f"{r['method']} r{rk}"


def sweep_grids(table, metrics: Sequence[str] = ("edit_success", "remaining_accuracy")) -> dict:
    """The arrays behind `sweep`'s heatmaps, per edit kind: {kind: {"layers": [...], "columns":
    [editor and rank, ...], "count": [layers, columns] cells averaged, metric: [layers, columns] mean
    over seeds (NaN where no cell finished ok)}}. A forgetting edit's edit_success is its
    forgetting_success."""
    rows = _rows(table)
    layers = list(dict.fromkeys(str(r["layers"]) for r in rows))
    out: dict = {}
    for kind in list(dict.fromkeys(str(r.get("edit_kind")) for r in rows)):
        mine = [r for r in rows if str(r.get("edit_kind")) == kind]
        columns = sorted({_column(r) for r in mine},
                         key=lambda c: (c.split(" ")[0], int(c.split(" r")[1]) if " r" in c else 0))
        g = {"layers": layers, "columns": columns, "count": np.zeros((len(layers), len(columns)), dtype=int)}
        for metric in metrics:
            g[metric] = np.full((len(layers), len(columns)), np.nan)
        for li, sel in enumerate(layers):
            for ci, col in enumerate(columns):
                ok = [r for r in mine if str(r["layers"]) == sel and _column(r) == col and r.get("status") == "ok"]
                g["count"][li, ci] = len(ok)
                for metric in metrics:
                    vals = [float(metric_value(r, metric)) for r in ok if metric_value(r, metric) is not None]
                    if vals:
                        g[metric][li, ci] = float(np.mean(vals))
        out[kind] = g
    return out


def sweep(table, out=None, metrics: Sequence[str] = ("edit_success", "remaining_accuracy")) -> dict:
    """A sweep's figures (behemoth.sweep): per edit kind and metric, a heatmap over layer selection ×
    editor and rank (mean over seeds; grey where the cell is not applicable or failed: the paper's
    main figures); the trade-off of edit success against remaining accuracy, one point per cell; and,
    when the sweep took ranks, each cell's delta spectrum (singular values of its largest changed
    matrix over σ₁). `table`: the DataFrame or rows `sweep` returned, or its results.csv. Writes
    <out>_heatmaps, <out>_tradeoff and <out>_spectra (PNG and PDF), with the arrays behind the
    heatmaps and spectra beside them (<out>_heatmaps.npz: "<kind>/<metric>", "<kind>/layers",
    "<kind>/columns", "<kind>/count"; <out>_spectra.npz: "spectra" [cells, k], "ids"). Returns
    {"heatmaps", "tradeoff", "spectra" (None without ranks)} figures."""
    plt = _pyplot()
    rows = _rows(table)
    if not rows:
        raise ValueError("plots.sweep: the table is empty")
    ok = [r for r in rows if r.get("status") == "ok"]
    grids = sweep_grids(rows, metrics)
    layers = next(iter(grids.values()))["layers"]
    width = max(len(g["columns"]) for g in grids.values())
    fig, axes = plt.subplots(len(grids), len(metrics), figsize=(len(metrics) * (0.6 * width + 2.6), len(grids) * (0.3 * len(layers) + 1.3)),
                             squeeze=False)
    arrays = {}
    cmap = plt.get_cmap("viridis").with_extremes(bad="lightgrey")
    for gi, (kind, g) in enumerate(grids.items()):
        arrays[f"{kind}/layers"] = np.array(g["layers"])
        arrays[f"{kind}/columns"] = np.array(g["columns"])
        arrays[f"{kind}/count"] = g["count"]
        for mi, metric in enumerate(metrics):
            grid = g[metric]
            arrays[f"{kind}/{metric}"] = grid
            ax = axes[gi][mi]
            im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
            for (li, ci), v in np.ndenumerate(grid):
                if v == v:
                    ax.text(ci, li, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color="white" if v < 0.6 else "black")
            ax.set_xticks(range(len(g["columns"])))
            ax.set_xticklabels(g["columns"], fontsize=7, rotation=30, ha="right")
            ax.set_yticks(range(len(layers)))
            ax.set_yticklabels(layers if mi == 0 else [""] * len(layers), fontsize=7)
            name = metric.replace("_", " ") + (" (forgetting success)" if kind == "forget_relation" and metric == "edit_success" else "")
            ax.set_title(f"{kind}: {name}", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()

    fig2, ax = plt.subplots(figsize=(5.5, 4.2))
    for method in sorted({str(r["method"]) for r in ok}):
        pts = [(float(r["remaining_accuracy"]), float(metric_value(r, "edit_success"))) for r in ok
               if str(r["method"]) == method and metric_value(r, "edit_success") is not None and r.get("remaining_accuracy") is not None]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], label=method, alpha=0.7)
    ax.set_xlabel("remaining accuracy (untouched facts)")
    ax.set_ylabel("edit success (forgetting: forgetting success)")
    ax.set_title(f"edit success vs collateral damage ({len(ok)} cells)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig2.tight_layout()

    fig3 = None
    with_spectra = [r for r in ok if isinstance(r.get("spectrum"), list) and r["spectrum"]]
    if with_spectra:
        methods = sorted({str(r["method"]) for r in with_spectra})
        fig3, axs = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.6), squeeze=False)
        width = max(len(r["spectrum"]) for r in with_spectra)
        spectra = np.full((len(with_spectra), width), np.nan)
        for i, r in enumerate(with_spectra):
            sv = np.asarray(r["spectrum"], dtype=float)
            spectra[i, :len(sv)] = sv
        for ax, method in zip(axs[0], methods):
            mine = [(i, r) for i, r in enumerate(with_spectra) if str(r["method"]) == method]
            colors = plt.get_cmap("plasma")(np.linspace(0, 0.9, max(len(mine), 1)))
            for (i, r), c in zip(mine, colors):
                sv = spectra[i][~np.isnan(spectra[i])]
                label = f"{r['layers']}" + ("" if _rank_label(r) == "—" else f" r{_rank_label(r)}")
                ax.semilogy(np.arange(1, len(sv) + 1), sv / sv[0], color=c, lw=1, alpha=0.8, label=label if len(mine) <= 12 else None)
            ax.set_xlabel("singular value index")
            ax.set_ylabel("σᵢ / σ₁ of the largest changed matrix")
            ax.set_ylim(1e-4, 1.5)
            ax.set_title(f"{method}: delta spectra ({len(mine)} cells)", fontsize=9)
            ax.grid(alpha=0.3, which="both")
            if len(mine) <= 12:
                ax.legend(fontsize=6)
        fig3.tight_layout()
        if out is not None:
            np.savez(os.fspath(out) + "_spectra.npz", spectra=spectra, ids=np.array([str(r["id"]) for r in with_spectra]))
            _save(fig3, os.fspath(out) + "_spectra")
    if out is not None:
        np.savez(os.fspath(out) + "_heatmaps.npz", **arrays)
        _save(fig, os.fspath(out) + "_heatmaps")
        _save(fig2, os.fspath(out) + "_tradeoff")
    return {"heatmaps": fig, "tradeoff": fig2, "spectra": fig3}
