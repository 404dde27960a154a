"""behemoth: Python binding for libbehemoth (include/behemoth.h) through ctypes.

    import behemoth
    from behemoth import Dataset, Model, EditSet
    ds = Dataset.generate(preset="tiny")
    m = Model.create(dataset=ds, preset="tiny")
    m.train(ds, epochs=150, batch_size=32, learning_rate=3e-3)
    print(m.evaluate(ds)["groups"]["sro"]["accuracy"])
    res = m.edit(EditSet(ds, kind="single"), method="lora", layers={"blocks": [1], "sublayers": "mlp"})
    print(res.metrics["edit_success"])

The library is loaded on first use; see `behemoth._lib` for where it is looked for.
"""
from __future__ import annotations

from . import _lib
from ._lib import EXPECTED_ABI_VERSION, LibraryError, library_path
from . import hf
from .dataset import Dataset, EvalGroup
from .edit import Adapter, EditResult, EditSet
from .errors import (
    BehemothError,
    BufferTooSmallError,
    CancelledError,
    FileIOError,
    FormatError,
    InternalError,
    InvalidArgumentError,
    MisuseError,
    NumericError,
    OutOfMemoryError,
    Status,
)
from .model import Model, Trainer, capacity_search
from .analysis import Trace, rank
from . import plots
from . import peft
from . import unlearn
from .unlearn import forget_set, oracle, ks_2samp

__version__ = "0.1.0"

__all__ = [
    "version", "abi_version", "set_num_threads", "get_num_threads", "runtime_info", "library_path", "last_error",
    "status_str", "verify_file", "upgrade_file", "set_memory_limit", "memory_limit", "Dataset", "EvalGroup", "Model", "Trainer", "EditSet", "EditResult", "Adapter", "capacity_search", "hf", "peft", "Trace", "rank", "plots",
    "unlearn", "forget_set", "oracle", "ks_2samp",
    "Status", "EXPECTED_ABI_VERSION", "BehemothError",
    "LibraryError", "InvalidArgumentError", "MisuseError", "FileIOError", "FormatError",
    "NumericError", "CancelledError", "BufferTooSmallError", "OutOfMemoryError", "InternalError",
]


def version() -> str:
    """The library's version string (BH_VERSION it was built with), e.g. "0.1.0"."""
    return _lib.lib().bh_version().decode("utf-8")


def abi_version() -> int:
    """bh_abi_version(); the binding refuses to load a library whose value differs from EXPECTED_ABI_VERSION."""
    return int(_lib.lib().bh_abi_version())


def set_num_threads(n: int) -> None:
    """Threads for matrix products and parallel kernels (1 to 1024); InvalidArgumentError otherwise."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if not -(2**31) <= n < 2**31:
        raise InvalidArgumentError(Status.ERR_INVALID, f"set_num_threads: n = {n} does not fit in int32",
                                   "bh_set_num_threads")
    _lib.check(_lib.lib().bh_set_num_threads(n), "bh_set_num_threads")


def get_num_threads() -> int:
    return int(_lib.lib().bh_get_num_threads())


def runtime_info() -> dict:
    """bh_runtime_info() parsed: BLAS core and config, threads, CPU model and features, the
    recommended OPENBLAS_CORETYPE and a "warning" when OpenBLAS runs slower kernels than the CPU has."""
    import json

    from ._handle import call_with_string_out
    return json.loads(call_with_string_out(_lib.lib().bh_runtime_info, "bh_runtime_info"))


def last_error() -> str:
    """bh_last_error() on this thread ("" after a successful call)."""
    return _lib.last_error()


def status_str(status: int) -> str:
    """bh_status_str(): the library's static text for a status code."""
    return _lib.status_str(status)


def verify_file(path) -> dict:
    """Checks any Behemoth file (HDF5 layout, root attributes, content digest; datasets and models
    are loaded in full) and describes it: {"format", "format_version", "digest", ...}. A damaged or
    edited file raises FormatError naming the problem. (`behemoth verify FILE` on the command line.)"""
    import json
    import os

    from ._handle import call_with_string_out
    p = os.fspath(path)
    return json.loads(call_with_string_out(lambda out: _lib.lib().bh_file_verify(p, out), "bh_file_verify"))


def upgrade_file(source, target) -> None:
    """Writes `target`, a current-format copy of `source`: for files written by Behemoth 0.1 (format
    version 1), read in a separate process. (`behemoth upgrade OLD NEW` on the command line.)"""
    import os
    _lib.check(_lib.lib().bh_file_upgrade(os.fspath(source), os.fspath(target)), "bh_file_upgrade")


def set_memory_limit(gigabytes: float | None) -> None:
    """The most memory one model, trainer, dataset or edit may allocate; None restores the default
    (80% of physical memory, or BEHEMOTH_MAX_MEMORY_GB). Larger requests raise OutOfMemoryError
    naming the size needed, before anything is allocated."""
    n = 0 if gigabytes is None else int(gigabytes * 1e9)
    if n < 0 or (gigabytes is not None and n == 0):
        raise InvalidArgumentError(Status.ERR_INVALID, f"set_memory_limit: {gigabytes} GB must be positive",
                                   "bh_set_memory_limit")
    _lib.check(_lib.lib().bh_set_memory_limit(n), "bh_set_memory_limit")


def memory_limit() -> float:
    """The current memory limit in gigabytes (10^9 bytes)."""
    return int(_lib.lib().bh_get_memory_limit()) / 1e9
