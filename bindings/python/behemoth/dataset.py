"""Dataset: synthetic facts, vocabulary, token sequences and evaluation prompts (bh_dataset_*)."""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import numpy as np

from . import _lib
from ._handle import Handle, call_with_string_out
from ._spec import spec_json
from .errors import InvalidArgumentError, Status

__all__ = ["Dataset", "EvalGroup"]

PathLike = Union[str, bytes, "os.PathLike[str]"]

_DTYPES = {
    "int32": np.int32, "i32": np.int32, "<i4": np.int32, "i4": np.int32,
    "int64": np.int64, "i64": np.int64, "<i8": np.int64, "i8": np.int64,
}


def _spec_json(spec, kwargs) -> str:
    """A JSON spec from a dict, a JSON string or None, with keyword arguments on top (None dropped)."""
    return spec_json(spec, kwargs, "dataset spec")


@dataclass
class EvalGroup:
    """One evaluation group: prompts (one token array each), targets and the facts they test.

    facts: what the file stores under eval/<group>/facts: for each prompt, the index of its fact
        in `Dataset.facts`. fact_rows: those facts' rows (n x 4: head, relation, tail, alt).
    prompt_tokens / prompt_offsets: the prompts as stored (flat, with n+1 offsets).
    arrays: every array of the group as stored, so nothing is lost when a group has more."""

    name: str
    prompts: list
    targets: Optional[np.ndarray]
    facts: Optional[np.ndarray]
    fact_rows: Optional[np.ndarray] = None
    prompt_tokens: Optional[np.ndarray] = field(default=None, repr=False)
    prompt_offsets: Optional[np.ndarray] = field(default=None, repr=False)
    arrays: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.prompts)

    def __repr__(self) -> str:
        return f"EvalGroup({self.name!r}, {len(self.prompts)} prompts, arrays={sorted(self.arrays)})"


class Dataset(Handle):
    """A bh_dataset. Create with `Dataset.generate`, `Dataset.load` or `Dataset.import_reference`.

    Use as a context manager or call `close()`; the handle is also freed when the object is
    collected. Methods may be called from several threads; calls on one dataset are serialized.
    """

    _free_function = "bh_dataset_free"
    _pointer_type = _lib.DatasetPtr
    _kind = "dataset"

    def __init__(self, *_a, **_kw):
        Handle.__init__(self)
        raise TypeError("create a Dataset with Dataset.generate(...), Dataset.load(path) "
                        "or Dataset.import_reference(dir)")

    def _init_after_create(self) -> None:
        self._info: Optional[dict] = None

    # ---- construction --------------------------------------------------------------------------

    @classmethod
    def generate(cls, spec: Union[Mapping[str, Any], str, None] = None, /, **kwargs) -> "Dataset":
        """Generates a dataset from a DatasetSpec: a dict or JSON string, and/or keyword arguments
        (which win), e.g. ``Dataset.generate(preset="tiny")`` or ``Dataset.generate(subjects=100, seed=3)``.
        Unknown keys and wrong types raise InvalidArgumentError."""
        return cls._create("bh_dataset_generate", _spec_json(spec, kwargs))

    @classmethod
    def load(cls, path: PathLike) -> "Dataset":
        """Loads an HDF5 dataset file (format = "behemoth.dataset")."""
        return cls._create("bh_dataset_load", os.fspath(path))

    @classmethod
    def import_reference(cls, directory: PathLike) -> "Dataset":
        """Imports the official generator's output folder (metadata/, data/, validations/)."""
        return cls._create("bh_dataset_import_reference", os.fspath(directory))

    def save(self, path: PathLike) -> None:
        """Writes the dataset as HDF5 (through a temporary file renamed into place)."""
        self._call("bh_dataset_save", os.fspath(path))

    def export_reference(self, directory: PathLike) -> None:
        """Writes the official generator's folder layout (tokenizer.json, text shards, validations...)."""
        self._call("bh_dataset_export_reference", os.fspath(directory))

    # ---- description ---------------------------------------------------------------------------

    def info_json(self) -> str:
        """bh_dataset_info as text."""
        with self._use() as h:
            return call_with_string_out(lambda out: _lib.lib().bh_dataset_info(h, out), "bh_dataset_info")

    @property
    def info(self) -> dict:
        """bh_dataset_info parsed: counts, vocabulary roles, relations, evaluation groups, arrays, spec.
        (A dataset does not change, so this is read once; each access returns a fresh copy.)"""
        return self._cached_info()

    @property
    def spec(self) -> dict:
        """The full spec the dataset was made with (defaults filled in), from info["spec"]."""
        return self.info.get("spec", {})

    @property
    def digest(self) -> str:
        """The content digest ("xxh64:..." over the spec and every array): equal datasets have equal
        digests, and a saved file carries it as its `digest` attribute."""
        return self.info["digest"]

    def array_specs(self) -> dict:
        """name -> {"dtype": numpy dtype, "shape": tuple} for every array info lists."""
        raw = self.info.get("arrays", [])
        entries = raw.items() if isinstance(raw, Mapping) else ((a.get("name"), a) for a in raw)
        out = {}
        for name, a in entries:
            if not name:
                continue
            dtype = _DTYPES.get(str(a.get("dtype", "")).lower())
            shape = tuple(int(d) for d in a.get("shape", ())) if a.get("shape") is not None else None
            out[name] = {"dtype": dtype, "shape": shape}
        return out

    @property
    def array_names(self) -> list:
        return list(self.array_specs())

    # ---- arrays ----------------------------------------------------------------------------------

    def _copy(self, name: str, dtype) -> np.ndarray:
        function = "bh_dataset_array_i32" if np.dtype(dtype) == np.int32 else "bh_dataset_array_i64"
        count = ctypes.c_int64()
        with self._use() as h:
            fn = getattr(_lib.lib(), function)
            _lib.check(fn(h, name, None, 0, ctypes.byref(count)), function)
            buffer = np.empty(count.value, dtype=dtype)
            _lib.check(fn(h, name, buffer, buffer.size, ctypes.byref(count)), function)
        return buffer[: count.value]

    def array(self, name: str, dtype=None) -> np.ndarray:
        """A named array (as listed in info["arrays"]; the same names as in the HDF5 file), copied into
        a new numpy array with the listed dtype and shape."""
        spec = self.array_specs().get(name)
        if dtype is None:
            if spec is None or spec["dtype"] is None:
                known = ", ".join(self.array_names) or "none"
                if spec is None and self.array_names:
                    raise KeyError(f"dataset has no array {name!r} (arrays: {known})")
                dtype = np.int32  # info does not say: int32 is the common case
            else:
                dtype = spec["dtype"]
        data = self._copy(name, dtype)
        shape = spec["shape"] if spec else None
        if shape and int(np.prod(shape, dtype=np.int64)) == data.size:
            data = data.reshape(shape)
        return data

    @property
    def facts(self) -> np.ndarray:
        """The fact table, n x 4 int32: head (subject), relation, tail (object), alt (-1 if none)."""
        f = self.array("facts").astype(np.int32, copy=False)
        return f.reshape(-1, 4) if f.ndim == 1 else f

    @property
    def tokens(self) -> np.ndarray:
        """Every training sequence's tokens, concatenated (int32)."""
        return self.array("tokens").reshape(-1).astype(np.int32, copy=False)

    @property
    def offsets(self) -> np.ndarray:
        """Where each sequence starts in `tokens` (int64); the last entry is len(tokens)."""
        return self.array("offsets").reshape(-1).astype(np.int64, copy=False)

    @staticmethod
    def _bounds(offsets: np.ndarray, n_tokens: int) -> np.ndarray:
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        if offsets.size == 0 or offsets[-1] != n_tokens:  # starts only: close the last sequence
            offsets = np.append(offsets, n_tokens)
        return offsets

    def sequences(self) -> list:
        """The training sequences as a list of int32 arrays (views into one array)."""
        tokens = self.tokens
        b = self._bounds(self.offsets, tokens.size)
        return [tokens[b[i]:b[i + 1]] for i in range(b.size - 1)]

    @property
    def num_sequences(self) -> int:
        """The number of training sequences."""
        return self._bounds(self.offsets, self._count("tokens")).size - 1

    def _count(self, name: str) -> int:
        """Element count of an array (a size query; nothing is copied)."""
        spec = self.array_specs().get(name)
        dtype = spec["dtype"] if spec and spec["dtype"] is not None else np.int32
        function = "bh_dataset_array_i32" if np.dtype(dtype) == np.int32 else "bh_dataset_array_i64"
        count = ctypes.c_int64()
        with self._use() as h:
            _lib.check(getattr(_lib.lib(), function)(h, name, None, 0, ctypes.byref(count)), function)
        return count.value

    def sentence(self, i: int) -> np.ndarray:
        """Token ids of training sequence i (negative i counts from the end)."""
        tokens = self.tokens
        b = self._bounds(self.offsets, tokens.size)
        n = b.size - 1
        if not -n <= i < n:
            raise IndexError(f"sequence {i} out of range (the dataset has {n})")
        i %= n
        return tokens[b[i]:b[i + 1]].copy()

    @property
    def eval_groups(self) -> list:
        """Names of the evaluation groups (from the "eval/<group>/..." arrays)."""
        names = []
        for a in self.array_names:
            parts = a.split("/")
            if len(parts) >= 3 and parts[0] == "eval" and parts[1] not in names:
                names.append(parts[1])
        return names

    def eval_group(self, name: str) -> EvalGroup:
        """An evaluation group's arrays: prompts (list of int32 arrays), targets, facts, and all of
        them as stored in `.arrays`."""
        prefix = f"eval/{name}/"
        names = [a for a in self.array_names if a.startswith(prefix)]
        if not names:
            raise KeyError(f"dataset has no evaluation group {name!r} (groups: {', '.join(self.eval_groups) or 'none'})")
        arrays = {a[len(prefix):]: self.array(a) for a in names}
        prompts_raw = arrays.get("prompts")
        prompt_offsets = next((arrays[k] for k in ("prompt_offsets", "prompts_offsets", "offsets") if k in arrays), None)
        if prompts_raw is None:
            prompts = []
        elif prompts_raw.ndim == 2:
            prompts = list(prompts_raw)
        elif prompt_offsets is not None:
            b = self._bounds(prompt_offsets, prompts_raw.size)
            prompts = [prompts_raw[b[i]:b[i + 1]] for i in range(b.size - 1)]
        else:
            prompts = [prompts_raw]
        facts = arrays.get("facts")
        fact_rows = None
        if facts is not None and facts.ndim == 2:
            fact_rows = facts
        elif facts is not None and facts.ndim == 1:
            table = self.facts
            if facts.size == 0 or (facts.min() >= 0 and facts.max() < len(table)):
                fact_rows = table[facts]
        return EvalGroup(name=name, prompts=prompts, targets=arrays.get("targets"), facts=facts,
                         fact_rows=fact_rows, prompt_tokens=prompts_raw, prompt_offsets=prompt_offsets,
                         arrays=arrays)

    # ---- text ------------------------------------------------------------------------------------

    def decode(self, tokens) -> str:
        """Token ids to text in the official format (" SS 0172 0714 W0 ...")."""
        a = np.asarray(tokens)
        if a.ndim == 0:
            a = a.reshape(1)
        if a.ndim != 1:
            raise ValueError(f"decode takes a 1-D sequence of token ids, got shape {a.shape}")
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"token ids must be integers, got {a.dtype}")
        if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
            raise InvalidArgumentError(Status.ERR_INVALID, "token id does not fit in int32", "bh_dataset_decode")
        a = np.ascontiguousarray(a, dtype=np.int32)
        with self._use() as h:
            return call_with_string_out(
                lambda out: _lib.lib().bh_dataset_decode(h, a, a.size, out), "bh_dataset_decode")

    def __repr__(self) -> str:
        if self.closed:
            return "<behemoth.Dataset (closed)>"
        try:
            counts = self.info.get("counts", {})
            shown = ", ".join(f"{k}={v}" for k, v in counts.items() if isinstance(v, int))
        except Exception:
            shown = "?"
        return f"<behemoth.Dataset {shown}>"
