"""The base class of every Python object that owns a library handle (bh_dataset, bh_model,
bh_trainer, bh_editset, bh_edit).

A subclass names its C free function and pointer type; it creates instances with `_create`, which
calls a `bh_*_create`-style function with an out-parameter. Every use of the handle goes through
`with self._use() as h:`, which holds the object's lock (the C API allows one thread per handle at a
time; ctypes releases the GIL during calls, so two Python threads could otherwise enter together)
and raises MisuseError once the object is closed.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import threading
from typing import Callable, Iterator

from . import _lib
from .errors import InternalError, MisuseError, Status


class Handle:
    #: C free function (a name in _lib.SIGNATURES), e.g. "bh_dataset_free".
    _free_function: str = ""
    #: ctypes pointer type of the handle, e.g. _lib.DatasetPtr.
    _pointer_type: type = ctypes.c_void_p
    #: Name used in messages, e.g. "dataset".
    _kind: str = "handle"

    # Class-level defaults: __del__ and close() work even if __init__/_create never ran or failed.
    _h = None
    _lock = None

    def __init__(self) -> None:
        # Set before anything can fail, so __del__ finds a consistent object.
        self._h = None
        self._lock = threading.RLock()

    @classmethod
    def _create(cls, function: str, *args, **attrs):
        """Calls `function(*args, &out)` and wraps the new handle. Raises BehemothError on failure
        (the out-handle is then NULL and there is nothing to free)."""
        obj = cls.__new__(cls)
        Handle.__init__(obj)
        for k, v in attrs.items():
            setattr(obj, k, v)
        obj._open(function, *args)
        return obj

    def _open(self, function: str, *args) -> None:
        """For constructors (`__init__` of Trainer, EditSet): calls `function(*args, &out)` and makes
        this object own the new handle. `Handle.__init__` must have run first."""
        out = self._pointer_type()
        status = getattr(_lib.lib(), function)(*args, ctypes.byref(out))
        _lib.check(status, function)
        if not out:
            raise InternalError(Status.ERR_INTERNAL, f"{function} returned BH_OK but a NULL handle", function)
        self._h = out
        self._init_after_create()

    def _init_after_create(self) -> None:
        """Hook for subclasses (caches etc.); runs once the handle is set."""

    @property
    def closed(self) -> bool:
        return self._h is None

    @contextlib.contextmanager
    def _use(self) -> Iterator:
        """Holds the lock and yields the live handle; MisuseError if closed."""
        lock = self._lock
        if lock is None:
            raise MisuseError(Status.ERR_MISUSE, f"{self._kind} was never created")
        with lock:
            if self._h is None:
                raise MisuseError(Status.ERR_MISUSE, f"{self._kind} is closed")
            yield self._h

    def _call(self, function: str, *args) -> int:
        """Calls `function(handle, *args)` under the lock and checks its status."""
        with self._use() as h:
            return _lib.check(getattr(_lib.lib(), function)(h, *args), function)

    def _cached_info(self) -> dict:
        """The handle's info JSON (its `info_json()`), parsed once for an object that never changes;
        each call returns a fresh copy the caller may modify."""
        with self._use():
            if getattr(self, "_info", None) is None:
                self._info = json.loads(self.info_json())
            return json.loads(json.dumps(self._info))

    def close(self) -> None:
        """Frees the handle; further use raises MisuseError. Closing twice is harmless."""
        lock = self._lock
        if lock is None or self._h is None:
            return
        with lock:
            h, self._h = self._h, None
            if h:
                getattr(_lib.lib(), self._free_function)(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown or a failed construction: never raise from __del__
            pass


def call_with_string_out(call: Callable[[ctypes.c_void_p], int], function: str) -> str:
    """Runs `call(out)` where `out` is a char ** out-parameter, checks the status and returns the
    string (freed with bh_string_free)."""
    out = ctypes.c_void_p()
    status = call(ctypes.byref(out))
    try:
        _lib.check(status, function)
    except BaseException:
        if out.value:  # defensive: the API leaves it unset on failure
            _lib.lib().bh_string_free(out)
        raise
    return _lib.take_string(out)


def step_call(obj: Handle, function: str) -> tuple:
    """Calls a `*_step(handle, &report_json)` function under the object's lock: (Status.STEP, the
    report parsed) or (Status.DONE, {}) when nothing was left to do."""
    out = ctypes.c_void_p()
    with obj._use() as h:
        status = _lib.check(getattr(_lib.lib(), function)(h, ctypes.byref(out)), function)
    text = _lib.take_string(out)
    if status == Status.DONE:
        return Status.DONE, {}
    return Status.STEP, (json.loads(text) if text else {})
