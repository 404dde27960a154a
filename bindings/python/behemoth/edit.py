"""Edit sets (bh_editset_*) and edits (bh_edit_*): fine-tuning editors over a layer selection.

    es = EditSet(ds, kind="single", relation=0)
    res = m.edit(es, method="lora", layers={"blocks": [1], "sublayers": "mlp"}, rank=32, alpha=32)
    res.metrics["edit_success"], res.to_frame(), res.deltas["gpt_neox.layers.1.mlp.dense_4h_to_h.weight"]
"""
from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Mapping
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

from . import _lib
from ._handle import Handle, call_with_string_out, step_call
from ._spec import spec_json
from .dataset import Dataset
from .errors import Status
from .progress import run_steps

__all__ = ["EditSet", "EditResult"]

PathLike = Union[str, bytes, "os.PathLike[str]"]
_DTYPES = {"int32": np.int32, "int64": np.int64}


class EditSet(Handle):
    """A bh_editset: the edits, their fine-tuning sentences and the test groups of an experiment.

    ``EditSet(dataset, kind="diverse", count=10, relation=1)``: the spec is a dict/JSON and/or
    keyword arguments (docs/training-and-editing.md). The set is immutable once made."""

    _free_function = "bh_editset_free"
    _pointer_type = _lib.EditSetPtr
    _kind = "edit set"

    def __init__(self, dataset: Dataset, spec: Union[Mapping[str, Any], str, None] = None, /, **edit_spec):
        Handle.__init__(self)
        if not isinstance(dataset, Dataset):
            raise TypeError(f"dataset must be a behemoth.Dataset, not {type(dataset).__name__}")
        self.dataset = dataset
        self._info: Optional[dict] = None
        text = spec_json(spec, edit_spec, "edit spec")
        with dataset._use() as dh:
            self._open("bh_editset_create", dh, text)

    @classmethod
    def import_reference(cls, dataset: Dataset, directory) -> "EditSet":
        """A fine-tuning folder written by the official generator (finetuning_data/, ft_validations/),
        for `dataset` imported from its parent folder (bh_editset_import_reference)."""
        if not isinstance(dataset, Dataset):
            raise TypeError(f"dataset must be a behemoth.Dataset, not {type(dataset).__name__}")
        with dataset._use() as dh:
            return cls._create("bh_editset_import_reference", dh, os.fspath(directory), dataset=dataset, _info=None)

    # ---- description ---------------------------------------------------------------------------

    def info_json(self) -> str:
        with self._use() as h:
            return call_with_string_out(lambda out: _lib.lib().bh_editset_info(h, out), "bh_editset_info")

    @property
    def info(self) -> dict:
        """bh_editset_info parsed: spec (defaults filled in), edits, training counts per group, test
        groups and their sizes, dataset fingerprint, arrays. Each access returns a fresh copy."""
        return self._cached_info()

    @property
    def spec(self) -> dict:
        return self.info["spec"]

    @property
    def digest(self) -> str:
        """The content digest ("xxh64:...") of the edit set's spec and arrays."""
        return self.info["digest"]

    @property
    def fingerprint(self) -> str:
        """The dataset's fingerprint (pass as `dataset_fingerprint` to pin a spec to this dataset)."""
        return self.info.get("dataset_fingerprint", "")

    @property
    def training_counts(self) -> dict:
        """Training sentences per group of the fine-tuning mix, e.g. {"edited": 250, ...}."""
        return dict(self.info.get("training", {}))

    @property
    def mix(self) -> Optional[dict]:
        """The fine-tuning mix part by part: {"scale", "parts": {name: {"requested", "scaled",
        "obtained"}}, "warnings"}. A dataset too small for the spec's counts gets every part scaled
        by one factor (unless `absolute_counts=True`); None for an imported official folder."""
        return self.info.get("mix")

    @property
    def warnings(self) -> list:
        """Where the mix differs from what the spec asked for (scaled, or a part came out short)."""
        return list((self.mix or {}).get("warnings", []))

    @property
    def groups(self) -> list:
        """Names of the test groups (edited, edited_original, remaining, ...)."""
        return list(self.info.get("groups", {}))

    def __len__(self) -> int:
        return len(self.info.get("edits", []))

    # ---- arrays --------------------------------------------------------------------------------

    def array_specs(self) -> dict:
        return {name: {"dtype": _DTYPES.get(a.get("dtype")), "shape": tuple(a.get("shape", ()))}
                for name, a in self.info.get("arrays", {}).items()}

    def array(self, name: str) -> np.ndarray:
        """A named array ("tokens", "offsets", "edits", "groups/<g>/prompts", ...) as numpy."""
        spec = self.array_specs().get(name)
        dtype = spec["dtype"] if spec and spec["dtype"] else np.int32
        function = "bh_editset_array_i32" if dtype == np.int32 else "bh_editset_array_i64"
        count = ctypes.c_int64()
        with self._use() as h:
            fn = getattr(_lib.lib(), function)
            _lib.check(fn(h, name, None, 0, ctypes.byref(count)), function)
            out = np.empty(count.value, dtype=dtype)
            _lib.check(fn(h, name, out, out.size, ctypes.byref(count)), function)
        if spec and spec["shape"] and int(np.prod(spec["shape"])) == out.size:
            out = out.reshape(spec["shape"])
        return out

    @property
    def edits(self) -> np.ndarray:
        """n x 4 int32: subject, relation, old object, new object (ordinals within the relation)."""
        return self.array("edits").reshape(-1, 4)

    @property
    def tokens(self) -> np.ndarray:
        """The fine-tuning sentences' tokens, concatenated (int32)."""
        return self.array("tokens").reshape(-1)

    @property
    def offsets(self) -> np.ndarray:
        """Where each fine-tuning sentence starts in `tokens` (int64, n+1 entries)."""
        return self.array("offsets").reshape(-1)

    def sequences(self) -> list:
        tokens, offsets = self.tokens, self.offsets
        return [tokens[offsets[i]:offsets[i + 1]] for i in range(offsets.size - 1)]

    def group(self, name: str) -> dict:
        """A test group: prompts (list of int32 arrays), targets, facts (indices into the dataset's
        fact table), relations, and alternatives (the competing object's token, or None)."""
        if name not in self.groups:
            raise KeyError(f"edit set has no group {name!r} (groups: {', '.join(self.groups) or 'none'})")
        p = f"groups/{name}/"
        flat = self.array(p + "prompts").reshape(-1)
        offsets = self.array(p + "offsets").reshape(-1)
        has_alt = (p + "alternatives") in self.array_specs()
        return {
            "prompts": [flat[offsets[i]:offsets[i + 1]] for i in range(offsets.size - 1)],
            "targets": self.array(p + "targets"),
            "facts": self.array(p + "facts"),
            "relations": self.array(p + "relations"),
            "alternatives": self.array(p + "alternatives") if has_alt else None,
        }

    def __repr__(self) -> str:
        if self.closed:
            return "<behemoth.EditSet (closed)>"
        try:
            s = self.spec
            return f"<behemoth.EditSet kind={s.get('kind')} relation={s.get('relation')} edits={len(self)}>"
        except Exception:
            return "<behemoth.EditSet>"


class _Deltas(Mapping):
    """name -> weight change of a trained tensor, fetched from the library on first access."""

    def __init__(self, result: "EditResult", names: list, shapes: dict):
        self._result = result
        self._names = list(names)
        self._shapes = shapes
        self._cache: dict = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(f"{name!r} was not trained by this edit (trained: {', '.join(self._names)})")
        if name not in self._cache:
            self._cache[name] = self._result._delta(name, self._shapes.get(name))
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"<deltas of {len(self._names)} tensors: {', '.join(self._names)}>"


class EditResult(Handle):
    """The outcome of `Model.edit`: metrics, the full report (bh_edit_end), weight changes
    (bh_edit_delta) and an HDF5 file (bh_edit_save). Holds the bh_edit handle until closed."""

    _free_function = "bh_edit_free"
    _pointer_type = _lib.EditPtr
    _kind = "edit"

    def __init__(self, *_a, **_kw):
        Handle.__init__(self)
        raise TypeError("an EditResult comes from model.edit(editset, ...)")

    def _init_after_create(self) -> None:
        self.report: dict = {}
        self.step_reports: list = []  # every bh_edit_step report, in order

    def _finish(self) -> None:
        with self._use() as h:
            self.report = json.loads(call_with_string_out(lambda out: _lib.lib().bh_edit_end(h, out), "bh_edit_end"))

    @property
    def metrics(self) -> dict:
        """name -> value: edit_success, remaining_accuracy, ..., each also as <name>_before."""
        return {k: v["value"] for k, v in self.report.get("metrics", {}).items()}

    @property
    def definitions(self) -> dict:
        """name -> how the metric is computed."""
        return {k: v["definition"] for k, v in self.report.get("metrics", {}).items()}

    @property
    def warnings(self) -> list:
        """The edit set's mix warnings, as the report states them (see EditSet.mix)."""
        return list((self.report.get("edit_set", {}).get("mix") or {}).get("warnings", []))

    @property
    def trained_tensors(self) -> list:
        return list(self.report.get("method", {}).get("trained_tensors", []))

    @property
    def deltas(self) -> Mapping:
        """name -> float32 weight change (after - before) of each trained tensor, with its shape."""
        if getattr(self, "_deltas", None) is None:
            self._deltas = _Deltas(self, self.trained_tensors, getattr(self, "_shapes", {}))
        return self._deltas

    @property
    def vectors(self) -> dict:
        """name -> float32 vector an editor kept (bh_edit_vector): ROME's "edit<i>/block<b>/u",
        ".../v_star" and ".../k_star". Empty for methods that keep none."""
        if getattr(self, "_vectors", None) is None:
            out = {}
            for name, shape in (self.report.get("vectors") or {}).items():
                count = ctypes.c_int64()
                with self._use() as h:
                    fn = _lib.lib().bh_edit_vector
                    _lib.check(fn(h, name, None, 0, ctypes.byref(count)), "bh_edit_vector")
                    v = np.empty(count.value, dtype=np.float32)
                    _lib.check(fn(h, name, v, v.size, ctypes.byref(count)), "bh_edit_vector")
                out[name] = v.reshape(shape) if int(np.prod(shape)) == v.size else v
            self._vectors = out
        return self._vectors

    def _delta(self, name: str, shape) -> np.ndarray:
        count = ctypes.c_int64()
        with self._use() as h:
            fn = _lib.lib().bh_edit_delta
            _lib.check(fn(h, name, None, 0, ctypes.byref(count)), "bh_edit_delta")
            out = np.empty(count.value, dtype=np.float32)
            _lib.check(fn(h, name, out, out.size, ctypes.byref(count)), "bh_edit_delta")
        if shape and int(np.prod(shape)) == out.size:
            out = out.reshape(shape)
        return out

    def save(self, path: PathLike) -> None:
        """HDF5 (format "behemoth.edit"): /deltas/<name>, /lora/<name>/{A,B}, /groups/<name>/..., and
        the report as an attribute."""
        self._call("bh_edit_save", os.fspath(path))

    @property
    def adapter(self) -> "Adapter":
        """The LoRA adapters of this edit as an Adapter (bh_edit_adapter); InvalidArgumentError for a
        method without adapters. With merge=False the model keeps its weights and the change is only here."""
        with self._use() as h:
            return Adapter._create("bh_edit_adapter", h)

    def to_frame(self):
        """The metrics as a pandas DataFrame (name, value, definition), or a list of dicts without pandas."""
        rows = [{"name": k, "value": v["value"], "definition": v["definition"]}
                for k, v in self.report.get("metrics", {}).items()]
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows, columns=["name", "value", "definition"])

    def __repr__(self) -> str:
        m = self.metrics
        shown = ", ".join(f"{k}={m[k]:.3f}" for k in ("edit_success", "remaining_accuracy") if k in m)
        return f"<behemoth.EditResult {shown}{' (closed)' if self.closed else ''}>"


class Adapter(Handle):
    """A set of LoRA adapters (rank, alpha, A and B per target matrix; ΔW = alpha/rank · B·A) as a
    value: from an edit (`EditResult.adapter`), a file (`Adapter.load`) or factors
    (`Adapter.create`, `behemoth.peft.load_peft`); saved as a
    "behemoth.adapter" file; applied to a model of the same shapes merged into its weights or as a
    side path, and removed again.

        a = result.adapter; a.save("adapter.h5")
        b = Adapter.load("adapter.h5"); b.apply(model, merge=False); ...; b.remove(model)
    """

    _free_function = "bh_adapter_free"
    _pointer_type = _lib.AdapterPtr
    _kind = "adapter"

    def __init__(self, *_a, **_kw):
        Handle.__init__(self)
        raise TypeError("an Adapter comes from EditResult.adapter, Adapter.load(path) or Adapter.create(rank, alpha, factors)")

    @classmethod
    def load(cls, path) -> "Adapter":
        return cls._create("bh_adapter_load", os.fspath(path))

    @classmethod
    def create(cls, rank: int, alpha: float, factors: Mapping[str, Any]) -> "Adapter":
        """An adapter from factors trained elsewhere (bh_adapter_create, bh_adapter_set_factor):
        `factors` maps a block matrix's Hugging Face weight name
        ("gpt_neox.layers.1.mlp.dense_4h_to_h.weight") to (A [rank, in], B [out, rank]); ΔW =
        alpha/rank · B·A. behemoth.peft.load_peft makes one from a PEFT LoRA folder."""
        arrays, targets = {}, []
        for name, pair in factors.items():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"factors[{name!r}] must be a pair (A [rank, in], B [out, rank])")
            a, b = (np.ascontiguousarray(x, dtype=np.float32) for x in pair)
            if a.ndim != 2 or b.ndim != 2 or a.shape[0] != rank or b.shape[1] != rank:
                raise ValueError(f"factors[{name!r}]: A is {a.shape} and B is {b.shape}; with rank {rank} they must be "
                                 f"[{rank}, in] and [out, {rank}]")
            arrays[name] = (a, b)
            targets.append({"tensor": name, "shape": [int(b.shape[0]), int(a.shape[1])]})
        adapter = cls._create("bh_adapter_create", spec_json({"rank": rank, "alpha": alpha, "targets": targets}, None, "adapter spec"))
        try:
            for name, (a, b) in arrays.items():
                adapter.set_factor(name, "A", a)
                adapter.set_factor(name, "B", b)
        except BaseException:
            adapter.close()
            raise
        return adapter

    def _factor_shape(self, tensor: str, factor: str):
        for t in self.info["targets"]:
            if t["tensor"] == tensor:
                out, inp = t["shape"]
                return {"A": (self.rank, inp), "B": (out, self.rank)}.get(factor)
        return None

    def set_factor(self, tensor: str, factor: str, values) -> None:
        """Overwrites factor "A" ([rank, in]) or "B" ([out, rank]) of one target with finite values
        (bh_adapter_set_factor). Not once the adapter has been applied to a model (MisuseError)."""
        a = np.ascontiguousarray(values, dtype=np.float32)
        shape = self._factor_shape(tensor, factor)
        if shape is not None and a.shape != shape:
            raise ValueError(f"{factor} of {tensor} has shape {shape}, not {a.shape}")
        self._call("bh_adapter_set_factor", tensor, factor, a.reshape(-1), a.size)
        self._info = None   # the digest changed

    def factor(self, tensor: str, factor: str) -> np.ndarray:
        """A copy of factor "A" [rank, in] or "B" [out, rank] of one target (bh_adapter_factor)."""
        count = ctypes.c_int64()
        with self._use() as h:
            fn = _lib.lib().bh_adapter_factor
            _lib.check(fn(h, tensor, factor, None, 0, ctypes.byref(count)), "bh_adapter_factor")
            out = np.empty(count.value, dtype=np.float32)
            _lib.check(fn(h, tensor, factor, out, out.size, ctypes.byref(count)), "bh_adapter_factor")
        shape = self._factor_shape(tensor, factor)
        return out.reshape(shape) if shape else out

    def factors(self) -> dict:
        """Every target's (A, B), by tensor name, in block order."""
        return {t["tensor"]: (self.factor(t["tensor"], "A"), self.factor(t["tensor"], "B")) for t in self.info["targets"]}

    @property
    def rank(self) -> int:
        return int(self.info["rank"])

    @property
    def alpha(self) -> float:
        return float(self.info["alpha"])

    @property
    def targets(self) -> list:
        """The adapted weights' Hugging Face names, in block order."""
        return [t["tensor"] for t in self.info["targets"]]

    def save(self, path) -> None:
        self._call("bh_adapter_save", os.fspath(path))

    def info_json(self) -> str:
        with self._use() as h:
            return call_with_string_out(lambda out: _lib.lib().bh_adapter_info(h, out), "bh_adapter_info")

    @property
    def info(self) -> dict:
        """{"rank", "alpha", "targets": [{"block", "matrix", "tensor", "shape"}], "digest"}"""
        return self._cached_info()

    @property
    def digest(self) -> str:
        """The content digest, the same as its file's (`behemoth.verify(path)["digest"]`)."""
        return self.info["digest"]

    def apply(self, model, merge: bool = True) -> None:
        """merge=True: W += alpha/rank · B·A in the model's weights; False: a side path (the weights
        stay; every forward pass adds the adapters; one at a time, none during an edit)."""
        with self._use() as h, model._use() as mh:
            _lib.check(_lib.lib().bh_adapter_apply(mh, h, 1 if merge else 0), "bh_adapter_apply")

    def remove(self, model) -> None:
        """Undoes `apply`: detaches the side path, or subtracts the merged change (up to float rounding)."""
        with self._use() as h, model._use() as mh:
            _lib.check(_lib.lib().bh_adapter_remove(mh, h), "bh_adapter_remove")

    def __repr__(self) -> str:
        if self.closed:
            return "<behemoth.Adapter (closed)>"
        i = self.info
        return f"<behemoth.Adapter rank={i['rank']} alpha={i['alpha']} targets={len(i['targets'])}>"


def _edit_postfix(report: Mapping[str, Any]) -> dict:
    if not report:
        return {}
    return {"loss": f"{report.get('loss', float('nan')):.4f}", "lr": f"{report.get('learning_rate', float('nan')):.2e}"}


def run_edit(model, editset: EditSet, method_json: str, *, progress: Optional[bool],
             callback: Optional[Callable[[dict], Any]], oracle=None) -> EditResult:
    """bh_edit_begin, bh_edit_step until BH_DONE (with a bar), bh_edit_end -> EditResult.
    The model's lock is held throughout: the edit changes its weights."""
    with model._use() as mh:
        with editset._use() as eh:
            res = EditResult._create("bh_edit_begin", mh, eh, method_json)
        res.model = model
        res.editset = editset
        res._shapes = model.tensors()
        try:
            if oracle is not None:
                with oracle._use() as oh:
                    res._call("bh_edit_set_oracle", oh)
            def step():
                status, r = step_call(res, "bh_edit_step")
                if status == Status.STEP:
                    res.step_reports.append(r)
                return status, r

            def should_stop(_steps, report):
                return callback is not None and callback(dict(report)) is False

            run_steps(step, desc="editing", progress=progress, postfix=_edit_postfix, should_stop=should_stop)
            # Stopped by the callback or not, bh_edit_end measures the edit as trained so far
            # (the report's "stopped_early" says which).
            res._finish()
        except BaseException:
            res.close()
            raise
    return res
