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
from contextlib import contextmanager
from typing import Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["trace_heatmap", "causal_effect_curves", "spectra", "localization_vs_editing"]

KIND_TITLES = {"block": "block output", "mlp": "MLP output", "attn": "attention output",
               "block_severed_mlp": "block output, MLP severed", "block_severed_attn": "block output, attention severed"}
KIND_COLOURS = {"block": "Purples", "mlp": "Greens", "attn": "Reds", "block_severed_mlp": "Blues", "block_severed_attn": "Oranges"}


def _pyplot():
    import matplotlib
    if not os.environ.get("DISPLAY") and matplotlib.get_backend().lower() not in ("agg", "pdf", "svg") \
            and "inline" not in matplotlib.get_backend():
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


def trace_heatmap(trace, fact: Optional[int] = None, out=None, kinds: Optional[Sequence[str]] = None,
                  labels: Optional[Sequence[str]] = None):
    """One panel per kind. fact=None: the average indirect effect (score − low) over the correctly
    answered prompts, token group × block. fact=i: prompt i's scores, token × block, the colour
    starting at its low score (the ROME paper's heatmaps); `labels` names its tokens (default: ids,
    with the subject's marked *)."""
    plt = _pyplot()
    with _opened(trace) as f:
        kinds = list(kinds or [k for k in KIND_TITLES if f"scores/{k}" in f])
        if not kinds:
            raise ValueError("trace_heatmap: the file has no /scores/<kind>")
        L = f[f"scores/{kinds[0]}"].shape[2]
        if fact is None:
            names = json.loads(_text(f["token_groups"].attrs["names"]))
            data = {k: f[f"average/{k}"][()] for k in kinds}
            count = int(f["average"].attrs["count"])
            rows = [i for i in range(len(names)) if not all(np.isnan(data[k][i]).all() for k in kinds)]
            ylabels = [names[i].replace("_", " ") for i in rows]
            data = {k: v[rows] for k, v in data.items()}
            title = f"average indirect effect over {count} correctly answered prompts"
            vmin = {k: min(0.0, float(np.nanmin(v))) for k, v in data.items()}
            bar = "average indirect effect (score − low)"
        else:
            if not 0 <= fact < f["low"].shape[0]:
                raise IndexError(f"trace_heatmap: fact {fact} is outside the {f['low'].shape[0]} traced prompts")
            n = int(f["offsets"][fact + 1] - f["offsets"][fact])
            tokens = f["prompts"][int(f["offsets"][fact]):int(f["offsets"][fact + 1])]
            b, e = f["subject_range"][fact]
            ylabels = list(labels) if labels is not None else [f"{t}*" if b <= i < e else str(t) for i, t in enumerate(tokens)]
            data = {k: f[f"scores/{k}"][fact, :n, :] for k in kinds}
            low, high = float(f["low"][fact]), float(f["high"][fact])
            vmin = {k: low for k in kinds}
            title = (f"prompt {fact} (fact {int(f['facts'][fact])}): answer {int(f['answer'][fact])}, "
                     f"p clean {high:.3f}, corrupted {low:.3f}")
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
        if ax is axes[0][-1]:
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
        kinds = list(kinds or [k for k in KIND_TITLES if f"average/{k}" in f])
        avg = {k: f[f"average/{k}"][()] for k in kinds}
        total = float(f["average/total_effect"][0])
        count = int(f["average"].attrs["count"])
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
    axes[0][-1].legend(fontsize=8)
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
        source = json.loads(_text(f.attrs["spec"])).get("source", "")
        chosen = list(names) if names is not None else sorted(table_names, key=lambda n: -fro[n])[:top or len(table_names)]
        values = {n: f[f"singular_values/{n}"][()] for n in chosen}
    if not chosen:
        raise ValueError("spectra: the rank file holds no matrix (nothing changed)")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for n in chosen:
        s = values[n]
        s = s[s > 0]
        short = n.replace("gpt_neox.layers.", "L").replace(".weight", "")
        ax.semilogy(np.arange(1, len(s) + 1), s, label=f"{short}: entropy rank {er[n]:.1f}, 90% energy {int(e90[n])}")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title(f"singular values of the weight change ({source})", fontsize=10)
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
    editors = report["editors"]
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, len(editors), figsize=(4.2 * len(editors), 4), squeeze=False)
    blocks = report.get("blocks") or sorted({r["trace_peak_block"] for r in report["facts"]})
    for ax, e in zip(axes[0], editors):
        x = np.array([r["trace_peak_block"] for r in report["facts"]], float)
        y = np.array([r["best_edit_block"][e] for r in report["facts"]], float)
        ax.scatter(x + rng.uniform(-0.15, 0.15, len(x)), y + rng.uniform(-0.15, 0.15, len(y)), alpha=0.7)
        lo, hi = min(blocks), max(blocks)
        ax.plot([lo, hi], [lo, hi], ls=":", color="grey", lw=1)
        c = report["correlation"][e]
        fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
        ax.set_title(f"{e}: Pearson {fmt(c.get('pearson'))}, Spearman {fmt(c.get('spearman'))} (n = {c.get('n')})", fontsize=9)
        ax.set_xlabel(f"block where tracing peaks ({report.get('kind')}, {report.get('group', '').replace('_', ' ')})")
        ax.set_ylabel("block where the edit works best")
        ax.set_xticks(blocks)
        ax.set_yticks(blocks)
        ax.grid(alpha=0.3)
    fig.suptitle("does localization inform editing?", fontsize=10)
    fig.tight_layout()
    _save(fig, out)
    return fig
