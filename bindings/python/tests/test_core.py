"""Library-level calls, loading rules and the declarations table (no dataset needed)."""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import behemoth
from behemoth import _lib
from behemoth.errors import Status, make_error, status_name

from conftest import repo_root, run_isolated, subprocess_env


def test_version_and_abi(lib):
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", behemoth.version())
    assert behemoth.abi_version() == behemoth.EXPECTED_ABI_VERSION == 1
    assert behemoth.library_path() == lib.path and lib.path.is_file()


def test_version_matches_header():
    root = repo_root()
    if root is None:
        pytest.skip("not running from a repository checkout")
    header = (root / "include" / "behemoth.h").read_text()
    assert f'#define BH_VERSION "{behemoth.version()}"' in header
    assert f"#define BH_ABI_VERSION {behemoth.EXPECTED_ABI_VERSION}u" in header


def test_status_codes_match_header():
    root = repo_root()
    if root is None:
        pytest.skip("not running from a repository checkout")
    header = (root / "include" / "behemoth.h").read_text()
    defined = {m[0]: int(m[1]) for m in re.findall(r"#define\s+(BH_(?:OK|ERR_\w+|STEP|DONE))\s+(\d+)", header)}
    assert defined == {s.c_name: int(s) for s in Status}


def test_threads():
    before = behemoth.get_num_threads()
    try:
        behemoth.set_num_threads(3)
        assert behemoth.get_num_threads() == 3
        for bad in (0, -1, 1025, 2**31 - 1):
            with pytest.raises(behemoth.InvalidArgumentError) as e:
                behemoth.set_num_threads(bad)
            assert e.value.status == Status.ERR_INVALID and e.value.status_name == "BH_ERR_INVALID"
            assert str(bad) in e.value.message and "bh_set_num_threads" in e.value.message
            assert behemoth.get_num_threads() == 3  # a failed call changes nothing
        with pytest.raises(behemoth.InvalidArgumentError):
            behemoth.set_num_threads(2**40)  # does not fit int32: refused before the call
        with pytest.raises(TypeError):
            behemoth.set_num_threads(2.5)
    finally:
        behemoth.set_num_threads(before)


def test_last_error_and_status_str(lib):
    assert lib.bh_set_num_threads(0) == Status.ERR_INVALID
    assert "n = 0" in behemoth.last_error()
    assert lib.bh_set_num_threads(2) == Status.OK
    assert behemoth.last_error() == ""  # cleared by a successful call
    for s in Status:
        assert behemoth.status_str(s), s
    assert behemoth.status_str(Status.ERR_FORMAT) == "bad file format"
    assert behemoth.status_str(12345) == "unknown status"
    assert behemoth.status_str(-1) == "unknown status"


def test_last_error_is_thread_local(lib):
    assert lib.bh_set_num_threads(-7) == Status.ERR_INVALID
    seen = {}

    def worker():
        lib.bh_set_num_threads(5000)
        seen["worker"] = behemoth.last_error()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert "5000" in seen["worker"]
    assert "-7" in behemoth.last_error()  # the worker's failure did not overwrite ours
    behemoth.set_num_threads(2)


def test_string_free_null(lib):
    lib.bh_string_free(None)  # a no-op


def test_runtime_info():
    info = behemoth.runtime_info()
    for key in ("blas_core", "threads", "cpu_features", "recommended_core", "warning"):
        assert key in info
    assert info["threads"] == behemoth.get_num_threads()


def test_error_classes():
    e = make_error(4, "file x: not a behemoth dataset", "bh_dataset_load")
    assert isinstance(e, behemoth.FormatError) and isinstance(e, behemoth.BehemothError)
    assert (e.status, e.status_name, e.message, e.function) == (4, "BH_ERR_FORMAT", "file x: not a behemoth dataset", "bh_dataset_load")
    assert str(e) == "[BH_ERR_FORMAT] file x: not a behemoth dataset"
    assert isinstance(make_error(1, "x"), ValueError)
    assert isinstance(make_error(8, "x"), MemoryError)
    assert type(make_error(77, "x")) is behemoth.BehemothError
    assert status_name(77) == "BH_UNKNOWN(77)"
    with pytest.raises(behemoth.InvalidArgumentError):
        _lib.check(1)
    assert _lib.check(Status.STEP) == Status.STEP and _lib.check(Status.DONE) == Status.DONE


# ---- the declarations table against the header ----------------------------------------------------

_C_SCALARS = {"int32_t": ctypes.c_int32, "int64_t": ctypes.c_int64, "uint32_t": ctypes.c_uint32,
              "uint8_t": ctypes.c_uint8, "float": ctypes.c_float, "double": ctypes.c_double}


def _header_functions(text: str) -> dict:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)
    out = {}
    for m in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(bh_\w+)\s*\(([^)]*)\)\s*;", text):
        ret, name, params = " ".join(m[1].split()), m[2], " ".join(m[3].split())
        args = [] if params in ("", "void") else [p.strip() for p in params.split(",")]
        out[name] = (ret, args)
    return out


def _param_type(decl: str) -> str:
    """'const bh_dataset *ds' -> 'const bh_dataset *'."""
    decl = re.sub(r"\s*\*\s*", " * ", decl).split()
    if decl[-1] != "*" and len(decl) > 1 and decl[-1] not in _C_SCALARS:
        decl = decl[:-1]  # drop the parameter name
    return " ".join(decl).replace("* *", "**")


def _compatible(ctype_text: str, declared, is_return: bool) -> bool:
    t = ctype_text.replace(" *", "*").replace("const ", "")
    if t == "void":
        return declared is None
    if t in _C_SCALARS:
        return declared is _C_SCALARS[t]
    if t == "char*":
        return declared in ((ctypes.c_char_p,) if is_return else (_lib._Text, ctypes.c_void_p))
    if t == "char**":
        return declared is _lib.StringOut
    m = re.fullmatch(r"(bh_\w+)(\*+)", t)
    if m:
        target = declared
        for _ in range(len(m[2])):
            if not hasattr(target, "_type_"):
                return False
            target = target._type_
        return isinstance(target, type) and issubclass(target, ctypes.Structure) and target.__name__ == m[1]
    if t.endswith("*") and t[:-1] in _C_SCALARS:
        base = _C_SCALARS[t[:-1]]
        if declared is ctypes.POINTER(base):
            return True
        name = getattr(declared, "__name__", "")
        want = "const_" if ctype_text.startswith("const") else ""
        return name == f"{want}{np.dtype(base).name}_buffer"
    return False


def test_every_header_function_is_declared():
    root = repo_root()
    if root is None:
        pytest.skip("not running from a repository checkout")
    header = _header_functions((root / "include" / "behemoth.h").read_text())
    assert set(header) == set(_lib.SIGNATURES), (
        f"only in the header: {sorted(set(header) - set(_lib.SIGNATURES))}; "
        f"only in _lib.py: {sorted(set(_lib.SIGNATURES) - set(header))}")
    for name, (ret, params) in header.items():
        restype, argtypes = _lib.SIGNATURES[name]
        assert _compatible(ret, restype, True), f"{name}: returns {ret}, declared {restype}"
        assert len(params) == len(argtypes), f"{name}: {len(params)} parameters, {len(argtypes)} declared"
        for p, a in zip(params, argtypes):
            assert _compatible(_param_type(p), a, False), f"{name}: parameter '{p}' declared as {a}"


def test_missing_export_fails_only_when_used(lib, monkeypatch):
    monkeypatch.setitem(_lib.SIGNATURES, "bh_not_in_this_build", (ctypes.c_int32, []))
    fn = getattr(lib, "bh_not_in_this_build")  # no error yet
    with pytest.raises(behemoth.LibraryError, match="does not export bh_not_in_this_build"):
        fn()
    assert "bh_not_in_this_build" in lib.missing()
    lib.__dict__.pop("bh_not_in_this_build", None)
    with pytest.raises(AttributeError):
        lib.bh_no_such_function_in_header


def test_abi_mismatch_is_refused(lib, monkeypatch):
    monkeypatch.setattr(_lib, "EXPECTED_ABI_VERSION", 999)
    with pytest.raises(behemoth.LibraryError, match="ABI version 1.*needs 999"):
        _lib.Library(lib.path)


def test_typed_arguments_reject_wrong_arrays():
    # The argument converters (checked before the library is called).
    with pytest.raises(TypeError, match="int32"):
        _lib.I32Out.from_param(np.zeros(4, np.float64))
    with pytest.raises(TypeError, match="contiguous"):
        _lib.I32Out.from_param(np.zeros((4, 4), np.int32)[:, 0])
    ro = np.zeros(4, np.int32)
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="writeable"):
        _lib.I32Out.from_param(ro)
    assert _lib.I32In.from_param(ro) is not None  # input buffers may be read-only
    assert _lib.I32Out.from_param(None) is None
    assert _lib.I32Out.from_param((ctypes.c_int32 * 3)()) is not None
    with pytest.raises(TypeError, match="str, bytes"):
        _lib._Text.from_param(42)
    assert _lib._Text.from_param("héllo") == "héllo".encode()
    assert _lib._Text.from_param(Path("/tmp/x")) == b"/tmp/x"


# ---- finding and loading the library --------------------------------------------------------------

@pytest.mark.parametrize("flags, core", [
    ("fpu sse2 avx avx2 fma avx512f avx512bw avx512vl avx512dq", "SkylakeX"),
    ("fpu sse2 avx avx2 fma avx512f avx512bw", "Haswell"),
    ("fpu sse2 avx avx2 fma", "Haswell"),
    ("fpu sse2 avx avx2", None),
    ("fpu sse2", None),
])
def test_blas_core_rule(flags, core):
    assert _lib.blas_core(f"processor\t: 0\nflags\t\t: {flags}\nbugs\t: x\n") == core


def test_blas_core_agrees_with_tools_script():
    root = repo_root()
    script = root / "tools" / "blas-core" if root else None
    if not script or not script.is_file():
        pytest.skip("tools/blas-core not available")
    expected = subprocess.run(["sh", str(script)], capture_output=True, text=True).stdout.strip() or None
    assert _lib.blas_core(Path("/proc/cpuinfo").read_text()) == expected


def test_coretype_set_before_load_unless_given(lib):
    expected = _lib.blas_core(Path("/proc/cpuinfo").read_text())
    env = subprocess_env(OPENBLAS_CORETYPE=None, BEHEMOTH_LIB=str(lib.path))
    code = ("import os, behemoth; assert 'OPENBLAS_CORETYPE' not in os.environ; behemoth.version(); "
            "print(os.environ.get('OPENBLAS_CORETYPE'), behemoth.runtime_info()['openblas_coretype_env'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(expected)
    if expected:
        assert out[1] == expected  # the library saw it in its environment
    env["OPENBLAS_CORETYPE"] = "Haswell"
    out = subprocess.run([sys.executable, "-c", code.replace("assert 'OPENBLAS_CORETYPE' not in os.environ; ", "")],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["Haswell", "Haswell"]


def test_library_lookup_order(lib, tmp_path):
    env = subprocess_env(BEHEMOTH_LIB=str(tmp_path / "nope.so"))
    code = ("import behemoth\ntry:\n    behemoth.version()\nexcept behemoth.LibraryError as e:\n    print('LibraryError', e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("LibraryError") and "BEHEMOTH_LIB" in out and "nope.so" in out
    # Without the variable, an editable install finds the repository's .build/release build.
    del env["BEHEMOTH_LIB"]
    out = subprocess.run([sys.executable, "-c", "import behemoth; print(behemoth.library_path())"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(out) in _lib.candidate_paths()
    assert Path(out).is_file()


def test_import_does_not_load_the_library(lib):
    # `import behemoth` must work before the library is built (pip install before swift build).
    env = subprocess_env(BEHEMOTH_LIB="/nonexistent/libbehemoth.so")
    subprocess.run([sys.executable, "-c", "import behemoth, behemoth.dataset, behemoth.progress"],
                   env=env, check=True)


def test_isolated_runner_reports_crashes():
    with pytest.raises(pytest.fail.Exception, match="signal"):
        # A real fault: the Swift runtime's backtracer (loaded with the library) lets a signal sent
        # with kill() return, so only a genuine crash shows what a trap would do.
        run_isolated("ctypes.string_at(0)")


def test_runtime_info_names_the_kernels_in_use(lib):
    k = behemoth.runtime_info()["kernels"]
    assert k["compiled"] == ["avx512", "avx2", "portable"]
    assert k["selected"] in k["supported"] and "portable" in k["supported"]
    assert k["vector_width"] == {"avx512": 16, "avx2": 8, "portable": 8}[k["selected"]]
    flags = set(behemoth.runtime_info()["cpu_features"])
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags and not k["requested"]:
        assert k["selected"] == "avx512"


def test_kernels_can_be_chosen_by_environment():
    # BEHEMOTH_KERNELS is read when the library loads: a fresh process each
    for name in ("portable", "avx2"):
        out = run_isolated(f"import behemoth; k = behemoth.runtime_info()['kernels']; print(k['selected'], k['requested'], k['refused'])",
                           env={"BEHEMOTH_KERNELS": name}).stdout
        selected, requested = out.split()[:2]
        assert requested == name
        supported = name == "portable" or "avx2" in behemoth.runtime_info()["cpu_features"]
        assert (selected == name) == supported
    out = run_isolated("import behemoth; print(behemoth.runtime_info()['kernels']['refused'])", env={"BEHEMOTH_KERNELS": "sse9"}).stdout
    assert "not one of avx512, avx2, portable" in out


def test_matrix_products_share_the_engines_threads():
    # BEHEMOTH_BLAS_THREADING is read at first use: a fresh process each. By default OpenBLAS runs
    # single-threaded and the engine splits products across its own threads; "openblas" restores
    # OpenBLAS's pool; anything else is refused, and said.
    probe = ("import behemoth; behemoth.set_num_threads(2); i = behemoth.runtime_info(); t = i['blas_threading']; "
             "print(t['selected'], i['blas_threads'], repr(t['refused']))")
    for env, selected, blas_threads in (({}, "engine", "1"), ({"BEHEMOTH_BLAS_THREADING": "openblas"}, "openblas", "2")):
        out = run_isolated(probe, env=env).stdout.split()
        assert out[:2] == [selected, blas_threads], (env, out)
    out = run_isolated(probe, env={"BEHEMOTH_BLAS_THREADING": "mkl"}).stdout
    assert out.startswith("engine 1") and "not one of engine, openblas" in out


def test_runtime_info_says_how_the_library_was_built(lib):
    build = behemoth.runtime_info()["build"]
    assert set(build) == {"swift_runtime", "compiler", "kernels", "configuration"}
    assert build["compiler"].startswith("Swift 6.") and build["configuration"] == "release"
    if shutil.which("readelf") is None:
        pytest.skip("readelf is not installed")
    needed = subprocess.run(["readelf", "-d", str(lib.path)], capture_output=True, text=True, check=True).stdout
    # "static" exactly when the library does not link the Swift runtime as a shared library
    assert (build["swift_runtime"] == "static") == ("libswiftCore.so" not in needed), (build, lib.path)
