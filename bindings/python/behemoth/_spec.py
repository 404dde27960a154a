"""Keyword arguments and dicts to the JSON specs of the C API.

`spec_json(base, kwargs, what=...)` merges a base spec (a dict, a JSON string or None) with keyword
arguments (which win when they are not None), drops `None` values at every depth (so "not given" means "the library's
default"), turns numpy scalars/arrays, tuples and paths into JSON values, and refuses NaN or
infinite numbers with an InvalidArgumentError that names the key (JSON has no NaN; the library
would only see a syntax error).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from .errors import InvalidArgumentError, Status

__all__ = ["spec_json", "clean"]


def clean(value: Any, path: str, what: str) -> Any:
    """A JSON-ready copy of `value` with None dropped from mappings; raises on non-finite floats."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{what}: keys must be strings, got {k!r} at {path or 'top level'}")
            if v is None:
                continue
            out[k] = clean(v, f"{path}.{k}" if path else k, what)
        return out
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [clean(v, f"{path}[{i}]", what) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(Status.ERR_INVALID, f"{what}: {path} = {value} is not a finite number")
    return value


def spec_json(base=None, kwargs: Mapping[str, Any] | None = None, what: str = "spec") -> str:
    """The JSON text of `base` (dict, JSON str/bytes or None) with `kwargs` on top."""
    kwargs = dict(kwargs or {})
    if base is None:
        merged: dict = {}
    elif isinstance(base, (str, bytes)):
        text = base.decode("utf-8") if isinstance(base, bytes) else base
        if not kwargs:
            return text  # passed through untouched: the library reports what is wrong with it
        merged = json.loads(text)
        if not isinstance(merged, dict):
            raise TypeError(f"{what}: a JSON spec must be an object when keyword arguments are added to it")
    elif isinstance(base, Mapping):
        merged = dict(base)
    else:
        raise TypeError(f"{what} must be a dict, a JSON string or None, not {type(base).__name__}")
    # A keyword argument left None means "not given": it must not hide the base spec's value.
    merged.update({k: v for k, v in kwargs.items() if v is not None})
    return json.dumps(clean(merged, "", what), allow_nan=False)
