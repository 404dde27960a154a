"""Finding, loading and declaring libbehemoth.so: the only module that talks to ctypes.CDLL.

The library is looked up, in order:
  1. the ``BEHEMOTH_LIB`` environment variable (the path of the .so; an error if it does not exist),
  2. ``libbehemoth.so`` beside this file (the installed package: the wheel bundles it),
  3. ``.build-dist/release/libbehemoth.so`` (``make build``), then ``.build/release/libbehemoth.so``
     (``swift build``), in the nearest folder above this file that has one (the repository, when the
     package is used from the checkout).

It is loaded lazily, on the first call that needs it, so ``import behemoth`` works before the library
is built. Before loading, OPENBLAS_CORETYPE is set from the CPU flags when the user has not set it
(OpenBLAS reads it only when it is loaded). Every export of behemoth.h is declared below with its
argtypes/restype; a function the loaded library does not export raises LibraryError only when used.
"""
from __future__ import annotations

import ctypes
import os
import platform
import threading
from ctypes import POINTER, c_char_p, c_int32, c_int64, c_uint32, c_void_p
from pathlib import Path

import numpy as np

from .errors import SUCCESS, LibraryError, Status, make_error

#: BH_ABI_VERSION of the header this binding was written against.
EXPECTED_ABI_VERSION = 1
LIBRARY_NAME = "libbehemoth.so"
ENV_VAR = "BEHEMOTH_LIB"


# ---- argument types ------------------------------------------------------------------------------

class _Text:
    """A `const char *` argument: str (encoded UTF-8), bytes, os.PathLike (file-system encoding) or None."""

    @classmethod
    def from_param(cls, obj):
        if obj is None or isinstance(obj, bytes):
            return obj
        if isinstance(obj, str):
            return obj.encode("utf-8")
        if isinstance(obj, os.PathLike):
            return os.fsencode(obj)
        raise TypeError(f"expected str, bytes, a path or None, got {type(obj).__name__}")


def _buffer(ctype, dtype, writable: bool):
    """A typed pointer argument that takes a C-contiguous numpy array of exactly `dtype`, a ctypes
    array/pointer of `ctype`, or None (NULL). A wrong dtype is a TypeError before the library is called."""
    pointer = POINTER(ctype)
    dtype = np.dtype(dtype)

    class _Buffer:
        @classmethod
        def from_param(cls, obj):
            if obj is None:
                return None
            if isinstance(obj, np.ndarray):
                if obj.dtype != dtype:
                    raise TypeError(f"expected a numpy array of {dtype}, got {obj.dtype}")
                if not obj.flags.c_contiguous:
                    raise TypeError("expected a C-contiguous numpy array")
                if writable and not obj.flags.writeable:
                    raise TypeError("expected a writeable numpy array")
                return obj.ctypes.data_as(pointer)
            return pointer.from_param(obj)

    _Buffer.__name__ = f"{'' if writable else 'const_'}{dtype}_buffer"
    return _Buffer


# Opaque handle types (never dereferenced). Distinct pointer types keep a model from being passed
# where a dataset is expected.
class bh_dataset(ctypes.Structure):
    pass


class bh_model(ctypes.Structure):
    pass


class bh_trainer(ctypes.Structure):
    pass


class bh_editset(ctypes.Structure):
    pass


class bh_edit(ctypes.Structure):
    pass


class bh_adapter(ctypes.Structure):
    pass


class bh_recorder(ctypes.Structure):
    pass


class bh_tracer(ctypes.Structure):
    pass


DatasetPtr = POINTER(bh_dataset)
ModelPtr = POINTER(bh_model)
TrainerPtr = POINTER(bh_trainer)
EditSetPtr = POINTER(bh_editset)
EditPtr = POINTER(bh_edit)
AdapterPtr = POINTER(bh_adapter)
RecorderPtr = POINTER(bh_recorder)
TracerPtr = POINTER(bh_tracer)
I32Out = _buffer(c_int32, np.int32, writable=True)
I64Out = _buffer(c_int64, np.int64, writable=True)
F32Out = _buffer(ctypes.c_float, np.float32, writable=True)
U8Out = _buffer(ctypes.c_uint8, np.uint8, writable=True)
I32In = _buffer(c_int32, np.int32, writable=False)
I64In = _buffer(c_int64, np.int64, writable=False)
F32In = _buffer(ctypes.c_float, np.float32, writable=False)
F64In = _buffer(ctypes.c_double, np.float64, writable=False)
StringOut = POINTER(c_void_p)  # char **: kept as void* so the pointer can be passed to bh_string_free

# name -> (restype, argtypes), in the order of include/behemoth.h. tests/test_core.py checks that this
# table and the header declare the same functions.
SIGNATURES: dict[str, tuple] = {
    # library
    "bh_version": (c_char_p, []),
    "bh_abi_version": (c_uint32, []),
    "bh_last_error": (c_char_p, []),
    "bh_status_str": (c_char_p, [c_int32]),
    "bh_string_free": (None, [c_void_p]),
    "bh_set_num_threads": (c_int32, [c_int32]),
    "bh_get_num_threads": (c_int32, []),
    "bh_runtime_info": (c_int32, [StringOut]),
    # files and limits
    "bh_file_verify": (c_int32, [_Text, StringOut]),
    "bh_file_upgrade": (c_int32, [_Text, _Text]),
    "bh_set_memory_limit": (c_int32, [c_int64]),
    "bh_get_memory_limit": (c_int64, []),
    # datasets
    "bh_dataset_generate": (c_int32, [_Text, POINTER(DatasetPtr)]),
    "bh_dataset_load": (c_int32, [_Text, POINTER(DatasetPtr)]),
    "bh_dataset_save": (c_int32, [DatasetPtr, _Text]),
    "bh_dataset_import_reference": (c_int32, [_Text, POINTER(DatasetPtr)]),
    "bh_dataset_export_reference": (c_int32, [DatasetPtr, _Text]),
    "bh_dataset_info": (c_int32, [DatasetPtr, StringOut]),
    "bh_dataset_array_i32": (c_int32, [DatasetPtr, _Text, I32Out, c_int64, POINTER(c_int64)]),
    "bh_dataset_array_i64": (c_int32, [DatasetPtr, _Text, I64Out, c_int64, POINTER(c_int64)]),
    "bh_dataset_decode": (c_int32, [DatasetPtr, I32In, c_int64, StringOut]),
    "bh_dataset_free": (None, [DatasetPtr]),
    # models
    "bh_model_create": (c_int32, [_Text, DatasetPtr, POINTER(ModelPtr)]),
    "bh_model_load": (c_int32, [_Text, POINTER(ModelPtr)]),
    "bh_model_save": (c_int32, [ModelPtr, _Text]),
    "bh_model_clone": (c_int32, [ModelPtr, POINTER(ModelPtr)]),
    "bh_model_info": (c_int32, [ModelPtr, StringOut]),
    "bh_model_logits": (c_int32, [ModelPtr, I32In, c_int64, c_int64, F32Out, c_int64, POINTER(c_int64)]),
    "bh_model_predict": (c_int32, [ModelPtr, I32In, I64In, c_int64, I32Out, c_int64, POINTER(c_int64)]),
    "bh_model_tensor": (c_int32, [ModelPtr, _Text, F32Out, c_int64, POINTER(c_int64)]),
    "bh_model_set_tensor": (c_int32, [ModelPtr, _Text, F32In, c_int64]),
    "bh_model_free": (None, [ModelPtr]),
    # training
    "bh_trainer_begin": (c_int32, [ModelPtr, DatasetPtr, _Text, POINTER(TrainerPtr)]),
    "bh_trainer_step": (c_int32, [TrainerPtr, StringOut]),
    "bh_trainer_save": (c_int32, [TrainerPtr, _Text]),
    "bh_trainer_end": (c_int32, [TrainerPtr, StringOut]),
    "bh_trainer_free": (None, [TrainerPtr]),
    # evaluation
    "bh_evaluate": (c_int32, [ModelPtr, DatasetPtr, _Text, StringOut]),
    "bh_evaluate_group": (c_int32, [ModelPtr, DatasetPtr, _Text, I32Out, U8Out, F32Out, I32Out, c_int64,
                                    POINTER(c_int64)]),
    "bh_capacity_search": (c_int32, [_Text, StringOut]),
    # editing
    "bh_editset_create": (c_int32, [DatasetPtr, _Text, POINTER(EditSetPtr)]),
    "bh_editset_import_reference": (c_int32, [DatasetPtr, _Text, POINTER(EditSetPtr)]),
    "bh_editset_info": (c_int32, [EditSetPtr, StringOut]),
    "bh_editset_array_i32": (c_int32, [EditSetPtr, _Text, I32Out, c_int64, POINTER(c_int64)]),
    "bh_editset_array_i64": (c_int32, [EditSetPtr, _Text, I64Out, c_int64, POINTER(c_int64)]),
    "bh_editset_free": (None, [EditSetPtr]),
    "bh_edit_begin": (c_int32, [ModelPtr, EditSetPtr, _Text, POINTER(EditPtr)]),
    "bh_edit_step": (c_int32, [EditPtr, StringOut]),
    "bh_edit_end": (c_int32, [EditPtr, StringOut]),
    "bh_edit_save": (c_int32, [EditPtr, _Text]),
    "bh_edit_delta": (c_int32, [EditPtr, _Text, F32Out, c_int64, POINTER(c_int64)]),
    "bh_edit_vector": (c_int32, [EditPtr, _Text, F32Out, c_int64, POINTER(c_int64)]),
    "bh_edit_free": (None, [EditPtr]),
    # unlearning
    "bh_edit_set_oracle": (c_int32, [EditPtr, ModelPtr]),
    "bh_unlearn_evaluate": (c_int32, [ModelPtr, EditSetPtr, ModelPtr, StringOut]),
    "bh_ks_2samp": (c_int32, [F64In, c_int64, F64In, c_int64, POINTER(ctypes.c_double), POINTER(ctypes.c_double)]),
    # adapters
    "bh_edit_adapter": (c_int32, [EditPtr, POINTER(AdapterPtr)]),
    "bh_adapter_save": (c_int32, [AdapterPtr, _Text]),
    "bh_adapter_load": (c_int32, [_Text, POINTER(AdapterPtr)]),
    "bh_adapter_info": (c_int32, [AdapterPtr, StringOut]),
    "bh_adapter_create": (c_int32, [_Text, POINTER(AdapterPtr)]),
    "bh_adapter_set_factor": (c_int32, [AdapterPtr, _Text, _Text, F32In, c_int64]),
    "bh_adapter_factor": (c_int32, [AdapterPtr, _Text, _Text, F32Out, c_int64, POINTER(c_int64)]),
    "bh_adapter_apply": (c_int32, [ModelPtr, AdapterPtr, c_int32]),
    "bh_adapter_remove": (c_int32, [ModelPtr, AdapterPtr]),
    "bh_adapter_free": (None, [AdapterPtr]),
    # analysis
    "bh_record_begin": (c_int32, [ModelPtr, DatasetPtr, EditSetPtr, I32In, I64In, c_int64, _Text, POINTER(RecorderPtr)]),
    "bh_record_step": (c_int32, [RecorderPtr, StringOut]),
    "bh_record_end": (c_int32, [RecorderPtr, StringOut]),
    "bh_record_free": (None, [RecorderPtr]),
    "bh_trace_begin": (c_int32, [ModelPtr, DatasetPtr, _Text, POINTER(TracerPtr)]),
    "bh_trace_step": (c_int32, [TracerPtr, StringOut]),
    "bh_trace_end": (c_int32, [TracerPtr, StringOut]),
    "bh_trace_save": (c_int32, [TracerPtr, _Text]),
    "bh_trace_array": (c_int32, [TracerPtr, _Text, F32Out, c_int64, POINTER(c_int64)]),
    "bh_trace_free": (None, [TracerPtr]),
    "bh_rank_models": (c_int32, [ModelPtr, ModelPtr, _Text, StringOut]),
    "bh_rank_edit": (c_int32, [EditPtr, _Text, StringOut]),
    "bh_rank_adapter": (c_int32, [AdapterPtr, _Text, StringOut]),
}


# ---- finding the library ------------------------------------------------------------------------

def candidate_paths() -> list[Path]:
    """Where the library is looked for, in order (BEHEMOTH_LIB is handled by `find_library`)."""
    here = Path(__file__).resolve().parent
    paths = [here / LIBRARY_NAME]
    for folder in here.parents:
        paths.append(folder / ".build-dist" / "release" / LIBRARY_NAME)
        paths.append(folder / ".build" / "release" / LIBRARY_NAME)
    return paths


def find_library() -> Path:
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise LibraryError(f"{ENV_VAR}={env} is set but no such file exists")
        return path
    tried = candidate_paths()
    for path in tried:
        if path.is_file():
            return path
    raise LibraryError(
        f"{LIBRARY_NAME} not found. Install the wheel (`pip install ./bindings/python` builds one with "
        f"the library inside), run `make build` in the repository, or set {ENV_VAR} to its path. Looked in: " + ", ".join(str(p) for p in tried[:4]) + ", ...")


def blas_core(cpuinfo: str) -> str | None:
    """The OPENBLAS_CORETYPE for a CPU, from /proc/cpuinfo text (the rule of tools/blas-core)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def configure_blas_core() -> str | None:
    """Sets OPENBLAS_CORETYPE from /proc/cpuinfo unless it is set already; returns the value in effect."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return os.environ["OPENBLAS_CORETYPE"]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            core = blas_core(f.read())
    except OSError:
        return None
    if core:
        os.environ["OPENBLAS_CORETYPE"] = core
    return core


# ---- the loaded library ---------------------------------------------------------------------------

class Library:
    """The loaded libbehemoth.so. Attribute access gives the declared ctypes function for an export
    (``lib.bh_version()``); a function this build does not export raises LibraryError when used."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._cdll = ctypes.CDLL(str(self.path))
        except OSError as e:
            raise LibraryError(f"cannot load {self.path}: {e}") from None
        self.abi_version = int(self.bh_abi_version())
        if self.abi_version != EXPECTED_ABI_VERSION:
            raise LibraryError(
                f"{self.path} has ABI version {self.abi_version}, but this binding needs "
                f"{EXPECTED_ABI_VERSION}: rebuild the library or reinstall the binding from the same checkout")

    def __getattr__(self, name: str):
        if name not in SIGNATURES:
            raise AttributeError(f"{name} is not a function of behemoth.h")
        restype, argtypes = SIGNATURES[name]
        try:
            fn = getattr(self._cdll, name)
        except AttributeError:
            fn = _missing_function(name, self.path)
        else:
            fn.restype = restype
            fn.argtypes = argtypes
        self.__dict__[name] = fn  # cache: __getattr__ runs once per name
        return fn

    def has(self, name: str) -> bool:
        """Whether the loaded library exports `name`."""
        try:
            getattr(self._cdll, name)
            return True
        except AttributeError:
            return False

    def missing(self) -> list[str]:
        """Functions declared in behemoth.h that this build does not export."""
        return [n for n in SIGNATURES if not self.has(n)]


def _missing_function(name: str, path: Path):
    def missing(*_args, **_kwargs):
        raise LibraryError(
            f"{path} does not export {name}, which behemoth.h declares: the library was built from "
            f"an older checkout than this binding; rebuild it with `swift build -c release`")
    missing.__name__ = name
    return missing


_lock = threading.Lock()
_library: Library | None = None


def lib() -> Library:
    """The library, loaded on first use (thread-safe)."""
    global _library
    if _library is None:
        with _lock:
            if _library is None:
                path = find_library()
                configure_blas_core()
                _library = Library(path)
    return _library


def library_path() -> Path:
    """The path of the loaded library (loads it if needed)."""
    return lib().path


# ---- status and string helpers -------------------------------------------------------------------

def last_error() -> str:
    msg = lib().bh_last_error()
    return msg.decode("utf-8", errors="replace") if msg else ""


def status_str(status: int) -> str:
    s = lib().bh_status_str(int(status))
    return s.decode("utf-8", errors="replace") if s else ""


def check(status: int, function: str | None = None) -> int:
    """Returns `status` if it means success (BH_OK, BH_STEP, BH_DONE); otherwise raises the matching
    BehemothError with bh_last_error(), read at once on this thread."""
    if status in SUCCESS:
        return status
    message = last_error() or status_str(status) or "unknown error"
    raise make_error(status, message, function)


def take_string(ptr: c_void_p) -> str:
    """Copies a library-owned char * (from a char ** out-parameter) and frees it with bh_string_free."""
    if not ptr.value:
        return ""
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib().bh_string_free(ptr)


__all__ = [
    "EXPECTED_ABI_VERSION", "SIGNATURES", "Library", "lib", "library_path", "find_library",
    "candidate_paths", "blas_core", "configure_blas_core", "last_error", "status_str", "check",
    "take_string", "DatasetPtr", "ModelPtr", "TrainerPtr", "EditSetPtr", "EditPtr", "Status",
]

_check = check  # the name the design notes use
