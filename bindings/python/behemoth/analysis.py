"""Analysis instruments: recording activations, causal tracing, effective rank of weight changes
(docs/analysis.md). Each writes a self-describing HDF5 file that h5py opens without this package.

    tr = model.trace(ds, count=100, samples=10, out="trace.h5")
    tr.report["kinds"]["mlp"]["peak"]           # where the average indirect effect peaks
    tr.scores("mlp")                            # [prompts, tokens, blocks], NaN past a prompt's end
    model.record(ds, "acts.h5", sites=["block_output"], positions=["subject_last", "last"])
    behemoth.rank(edit_result, out="rank.h5")   # or rank(model_before, model_after), rank(adapter)
"""
from __future__ import annotations

import ctypes
import json
import os
from typing import Any, Callable, Mapping, Optional, Union

Spec = Union[Mapping[str, Any], str, None]

import numpy as np

from . import _lib
from ._handle import Handle, call_with_string_out, step_call
from ._spec import spec_json
from .errors import Status
from .progress import run_steps

__all__ = ["Trace", "trace", "record", "rank", "localization"]


class Trace(Handle):
    """A causal trace in progress or done (bh_tracer). `report` is bh_trace_end's summary."""
    _free_function = "bh_trace_free"
    _pointer_type = _lib.TracerPtr
    _kind = "trace"

    report: dict = {}
    steps: list = []

    def array(self, name: str) -> np.ndarray:
        """"low", "high" [F]; "scores/<kind>" [F, T, L]; "average/<kind>" [groups, L] (float32)."""
        count = ctypes.c_int64()
        with self._use() as h:
            fn = _lib.lib().bh_trace_array
            _lib.check(fn(h, name, None, 0, ctypes.byref(count)), "bh_trace_array")
            out = np.empty(count.value, dtype=np.float32)
            if out.size:
                _lib.check(fn(h, name, out, out.size, ctypes.byref(count)), "bh_trace_array")
        n = len(self.steps)
        if name.startswith("scores/") and n:
            return out.reshape(n, -1, self.blocks)
        if name.startswith("average/"):
            return out.reshape(-1, self.blocks)
        return out

    @property
    def blocks(self) -> int:
        return int(self._blocks)

    def scores(self, kind: str = "block") -> np.ndarray:
        return self.array(f"scores/{kind}")

    @property
    def low(self) -> np.ndarray:
        return self.array("low")

    @property
    def high(self) -> np.ndarray:
        return self.array("high")

    @property
    def kinds(self) -> list:
        return list(self.report.get("kinds", {}).keys())

    def save(self, path) -> None:
        """The trace file (format behemoth.trace)."""
        self._call("bh_trace_save", os.fspath(path))

    def __repr__(self) -> str:
        if self.closed:
            return "<behemoth.Trace (closed)>"
        r = self.report
        return (f"<behemoth.Trace {r.get('prompts_traced')} prompts, {r.get('answered_correctly')} answered correctly, "
                f"total effect {r.get('total_effect', float('nan')):.3f}>")


def trace(model, dataset, spec: Spec = None, *, out=None, progress: Optional[bool] = True,
          callback: Optional[Callable[[dict], Any]] = None, **trace_spec) -> Trace:
    """Causal tracing of `dataset`'s evaluation group on `model` (bh_trace_begin/step/end): corrupt
    the subject tokens, restore one clean state at a time. Keyword arguments are the trace spec
    (group, prompts, count, noise, noise_scale, replace, samples, window, kinds, severed, reuse, seed).
    `out`: also write the trace file. A bar shows the prompts; callback(step) returning False stops."""
    from .dataset import Dataset
    from .model import Model
    if not isinstance(model, Model) or not isinstance(dataset, Dataset):
        raise TypeError("trace(model, dataset, ...) takes a behemoth.Model and a behemoth.Dataset")
    text = spec_json(spec, trace_spec, "trace spec")
    with model._use() as mh:
        with dataset._use() as dh:
            t = Trace._create("bh_trace_begin", mh, dh, text)
        t._blocks = model.config["layers"]
        t.steps = []
        try:
            def step():
                status, r = step_call(t, "bh_trace_step")
                if status == Status.DONE:
                    return status, r
                t.steps.append(r)
                return Status.STEP, {"step": r["done"], "total_steps": r["total"], **r}

            run_steps(step, desc="tracing", progress=progress,
                      postfix=lambda r: {"correct": sum(s["correct"] for s in t.steps)},
                      should_stop=lambda _n, r: callback is not None and callback(dict(r)) is False)
            with t._use() as h:
                t.report = json.loads(call_with_string_out(lambda o: _lib.lib().bh_trace_end(h, o), "bh_trace_end"))
            if out is not None:
                t.save(out)
        except BaseException:
            t.close()
            raise
    return t


class _Recorder(Handle):
    _free_function = "bh_record_free"
    _pointer_type = _lib.RecorderPtr
    _kind = "recorder"


def record(model, source, out, *, group: str = "sro", sites=("block_output",), blocks=(), positions=("subject_last", "last"),
           batch_size: int = 64, count: int = 0, offsets=None, progress: Optional[bool] = True) -> dict:
    """Records activations into `out` (format behemoth.activations), streamed, and returns the summary.
    source: a Dataset (its evaluation group `group`), an EditSet (its group `group`), or explicit
    prompts (a list of token arrays, or flat tokens with `offsets`; positions "last" / "all" only).
    positions: any of subject_first, subject_last, relation, last, or ["all"]."""
    from .dataset import Dataset
    from .edit import EditSet
    from .model import Model
    if not isinstance(model, Model):
        raise TypeError("record takes a behemoth.Model")
    spec = spec_json({"path": os.fspath(out), "group": group, "sites": list(sites), "blocks": list(blocks),
                      "positions": list(positions), "batch_size": batch_size, "count": count}, None, "record spec")
    with model._use() as mh:
        if isinstance(source, Dataset):
            with source._use() as dh:
                rec = _Recorder._create("bh_record_begin", mh, dh, None, None, None, 0, spec)
        elif isinstance(source, EditSet):
            with source._use() as eh:
                rec = _Recorder._create("bh_record_begin", mh, None, eh, None, None, 0, spec)
        else:
            flat, bounds = Model._flatten_prompts(source, offsets)
            if bounds.size < 2:
                raise ValueError("record: no prompts given")
            rec = _Recorder._create("bh_record_begin", mh, None, None, flat if flat.size else None, bounds, bounds.size - 1, spec)
        with rec:
            def step():
                status, r = step_call(rec, "bh_record_step")
                return (status, {"step": r["done"], "total_steps": r["total"]}) if r else (status, r)

            run_steps(step, desc="recording", progress=progress, postfix=lambda r: {})
            with rec._use() as h:
                return json.loads(call_with_string_out(lambda o: _lib.lib().bh_record_end(h, o), "bh_record_end"))


def rank(a, b=None, *, out=None) -> dict:
    """Singular values and every rank measure (entropy effective rank, 90/99% energy ranks, stable
    rank, numerical rank) of each changed weight matrix, as a dict (and the file `out`, format
    behemoth.rank). a: an EditResult (its deltas), an Adapter (alpha/rank · B·A), or a Model with
    b the Model after the change (ΔW = b − a)."""
    from .edit import Adapter, EditResult
    from .model import Model
    path = os.fspath(out) if out is not None else None
    if isinstance(a, Model):
        if not isinstance(b, Model):
            raise TypeError("rank(model_before, model_after): give the second model")
        with a._use() as ha, b._use() as hb:
            text = call_with_string_out(lambda o: _lib.lib().bh_rank_models(ha, hb, path, o), "bh_rank_models")
    elif b is not None:
        raise TypeError("rank takes a second argument only for two models")
    elif isinstance(a, EditResult):
        with a._use() as h:
            text = call_with_string_out(lambda o: _lib.lib().bh_rank_edit(h, path, o), "bh_rank_edit")
    elif isinstance(a, Adapter):
        with a._use() as h:
            text = call_with_string_out(lambda o: _lib.lib().bh_rank_adapter(h, path, o), "bh_rank_adapter")
    else:
        raise TypeError(f"rank takes an EditResult, an Adapter or two Models, not {type(a).__name__}")
    return json.loads(text)


def _ranks(v):
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v), dtype=float)
    sv = np.asarray(v, dtype=float)[order]
    i = 0
    while i < len(v):  # average ranks of ties
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2
        i = j + 1
    return r


def _correlations(x, y) -> dict:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return {"pearson": None, "spearman": None, "n": int(len(x)),
                "note": "undefined: fewer than two facts or one side constant"}
    rx, ry = _ranks(x), _ranks(y)
    sp = None if rx.std() == 0 or ry.std() == 0 else float(np.corrcoef(rx, ry)[0, 1])
    return {"pearson": float(np.corrcoef(x, y)[0, 1]), "spearman": sp, "n": int(len(x))}


def localization(model, dataset, trace, *, editors=("rome",), blocks=None, kind: str = "mlp", group: str = "subject_last",
                 max_facts: int = 20, metric: str = "efficacy_magnitude", editor_specs: Optional[Mapping[str, Mapping]] = None,
                 seed: int = 0, progress: Optional[bool] = True, out=None) -> dict:
    """Does localization inform editing? (Hase et al. 2023.) For each correctly answered fact of a
    trace: the block where its causal effect peaks (kind ∈ block / mlp / attn, at the token group
    "subject_last" or "last") beside the block where each editor edits it best (the highest
    `metric` of a single edit of that fact at that block alone; efficacy_magnitude = p(new) − p(old)),
    with Pearson and Spearman correlations across facts, and per fact the correlation between the
    two curves over blocks. `trace`: a Trace or a trace file. `editor_specs[name]`: extra method
    fields (LoRA's rank, ...). The model is not changed (each edit runs on a clone)."""
    from .edit import EditSet
    import h5py
    if isinstance(trace, Trace):  # read back from its file: the file holds the subject spans
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            trace.save(os.path.join(d, "trace.h5"))
            return localization(model, dataset, os.path.join(d, "trace.h5"), editors=editors, blocks=blocks, kind=kind,
                                group=group, max_facts=max_facts, metric=metric, editor_specs=editor_specs, seed=seed,
                                progress=progress, out=out)
    with h5py.File(os.fspath(trace), "r") as f:
        if f"scores/{kind}" not in f:
            raise ValueError(f"localization: the trace has no kind {kind!r} (it has {sorted(f['scores'].keys())})")
        scores, low = f[f"scores/{kind}"][()], f["low"][()]
        facts, correct = f["facts"][()], f["correct"][()].astype(bool)
        lengths = np.diff(f["offsets"][()])
        subject = f["subject_range"][()]
    if group not in ("subject_last", "last"):
        raise ValueError("localization: group is 'subject_last' or 'last'")
    L = scores.shape[2]
    blocks = list(range(L)) if blocks is None else list(blocks)
    table = dataset.facts
    chosen = [i for i in range(len(facts)) if correct[i] and facts[i] >= 0][:max_facts]
    if not chosen:
        raise ValueError("localization: the trace has no correctly answered fact to compare")
    rows = []
    total = len(chosen) * len(editors) * len(blocks)
    from .progress import progress_bar
    from .sweep import LOCATE_EDITORS
    bar = progress_bar(total=total, desc="localization", enabled=progress)
    for i in chosen:
        pos = int(lengths[i] - 1) if group == "last" else int(subject[i, 1] - 1)
        curve = scores[i, pos, :] - low[i]
        s, r = int(table[facts[i], 0]), int(table[facts[i], 1])
        row = {"fact": int(facts[i]), "subject": s, "relation": r, "trace_effect": [float(x) for x in curve],
               "trace_peak_block": blocks[int(np.argmax(curve[blocks]))], "edit_score": {}, "best_edit_block": {}, "curve_correlation": {}}
        es = EditSet(dataset, kind="single", relation=r, subjects=[s], count=1, seed=seed)
        if es.edits.shape[0] != 1 or int(es.edits[0, 0]) != s or int(es.edits[0, 1]) != r:
            raise RuntimeError(f"localization: the edit set for fact {facts[i]} edits {es.edits.tolist()}, not subject {s}, relation {r}")
        for name in editors:
            values = []
            for b in blocks:
                m = model.clone()
                spec = {"method": name, "layers": {"blocks": [b]} if name in LOCATE_EDITORS
                        else {"blocks": [b], "sublayers": "mlp"}}
                spec.update((editor_specs or {}).get(name, {}))
                res = m.edit(es, spec=spec, progress=False)
                values.append(float(res.metrics.get(metric, float("nan"))))
                res.close()
                m.close()
                bar.update(1)
            row["edit_score"][name] = values
            row["best_edit_block"][name] = blocks[int(np.nanargmax(values))]
            row["curve_correlation"][name] = _correlations([curve[b] for b in blocks], values)["pearson"]
        es.close()
        rows.append(row)
    bar.close()
    report = {
        "kind": kind, "group": group, "metric": metric, "blocks": blocks, "editors": list(editors),
        "facts_requested": max_facts, "facts_compared": len(rows),
        "facts": rows,
        "correlation": {e: _correlations([r["trace_peak_block"] for r in rows], [r["best_edit_block"][e] for r in rows]) for e in editors},
        "mean_curve_correlation": {e: (float(np.nanmean([r["curve_correlation"][e] for r in rows if r["curve_correlation"][e] is not None]))
                                       if any(r["curve_correlation"][e] is not None for r in rows) else None) for e in editors},
        "mean_trace_peak_block": float(np.mean([r["trace_peak_block"] for r in rows])),
        "mean_best_edit_block": {e: float(np.mean([r["best_edit_block"][e] for r in rows])) for e in editors},
    }
    if out is not None:
        with open(os.fspath(out), "w") as f:
            json.dump(report, f, indent=1)
    return report
