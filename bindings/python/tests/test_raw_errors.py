"""Error paths through the raw ctypes functions: NULLs, bad sizes, absurd specs.

Each case runs in a fresh interpreter (see conftest.run_isolated): a Swift trap would kill the
process with a signal, and the test reports that instead of taking pytest down with it. Each case
prints "ok" lines; any assertion failure is a non-zero exit."""
from __future__ import annotations

import pytest

# Common setup for the cases: a tiny dataset handle `ds` and helpers.
SETUP = """
from ctypes import byref, c_int64, c_void_p, c_int32
def status_of(s, *, expect, contains=None):
    msg = _lib.last_error()
    assert s == expect, f"status {s} (expected {expect}): {msg!r}"
    if s != 0:
        assert msg, "empty bh_last_error after a failure"
    if contains:
        assert contains in msg, f"{contains!r} not in {msg!r}"
    print("ok", s, msg)
ds = behemoth.Dataset.generate(preset="tiny")
h = ds._h
"""

CASES = {
    "generate_nulls": """
        out = _lib.DatasetPtr()
        status_of(lib.bh_dataset_generate(None, byref(out)), expect=1, contains="NULL")
        assert not out
        status_of(lib.bh_dataset_generate(b"{}", None), expect=1)
        status_of(lib.bh_dataset_generate(b"\\xff\\xfe", byref(out)), expect=1)   # not UTF-8
        assert not out
    """,
    "generate_bad_specs": """
        out = _lib.DatasetPtr()
        for spec in [b"{", b"null", b"[]", b'{"preset": 7}', b'{"unknown_key": 1}',
                     b'{"preset": "tiny", "subjects": -5}', b'{"preset": "tiny", "subjects": 0}',
                     b'{"preset": "tiny", "subjects": 1e400}', b'{"preset": "tiny", "subjects": 1.5}',
                     b'{"preset": "tiny", "subjects": 100000000000000000000000000000}']:
            s = lib.bh_dataset_generate(spec, byref(out))
            status_of(s, expect=1)
            assert not out
        status_of(lib.bh_dataset_generate(b'{"preset": "tiny", "unknown_key": 1}', byref(out)),
                  expect=1, contains="unknown_key")
    """,
    "absurd_counts": """
        out = _lib.DatasetPtr()
        for key in ("subjects", "relations", "objects", "repeats"):
            spec = json.dumps({"preset": "tiny", key: 10**12}).encode()
            s = lib.bh_dataset_generate(spec, byref(out))
            assert s != 0 and not out, (key, s)
            print("ok", key, s, _lib.last_error())
        try:
            behemoth.Dataset.generate(preset="tiny", subjects=10**12)
            raise SystemExit("subjects=10**12 was accepted")
        except behemoth.BehemothError as e:
            print("ok", e)
    """,
    "handle_nulls": """
        status_of(lib.bh_dataset_save(None, b"/tmp/x.h5"), expect=1, contains="NULL")
        status_of(lib.bh_dataset_save(h, None), expect=1, contains="NULL")
        status_of(lib.bh_dataset_export_reference(None, b"/tmp/x"), expect=1)
        status_of(lib.bh_dataset_export_reference(h, None), expect=1)
        out = _lib.DatasetPtr()
        status_of(lib.bh_dataset_load(None, byref(out)), expect=1)
        status_of(lib.bh_dataset_load(b"/tmp/x.h5", None), expect=1)
        status_of(lib.bh_dataset_import_reference(None, byref(out)), expect=1)
        status_of(lib.bh_dataset_import_reference(b"/tmp", None), expect=1)
        s = c_void_p()
        status_of(lib.bh_dataset_info(None, byref(s)), expect=1)
        assert not s.value
        status_of(lib.bh_dataset_info(h, None), expect=1)
        lib.bh_dataset_free(None)
        lib.bh_string_free(None)
        print("ok frees")
    """,
    "array_buffers": """
        count = c_int64(-1)
        status_of(lib.bh_dataset_array_i32(h, b"facts", None, 0, byref(count)), expect=0)
        n = count.value
        assert n > 0 and n % 4 == 0
        small = np.zeros(n - 1, np.int32)
        count.value = -1
        status_of(lib.bh_dataset_array_i32(h, b"facts", small, small.size, byref(count)), expect=7)
        assert count.value == n and not small.any()          # needed count reported, nothing copied
        status_of(lib.bh_dataset_array_i32(h, b"facts", small, 0, byref(count)), expect=7)
        status_of(lib.bh_dataset_array_i32(h, b"facts", None, 5, byref(count)), expect=1)   # NULL buffer, capacity 5
        status_of(lib.bh_dataset_array_i32(h, b"facts", small, -1, byref(count)), expect=1)  # negative capacity
        status_of(lib.bh_dataset_array_i32(h, b"facts", None, 0, None), expect=1)            # NULL count
        status_of(lib.bh_dataset_array_i32(h, None, None, 0, byref(count)), expect=1)        # NULL name
        status_of(lib.bh_dataset_array_i32(None, b"facts", None, 0, byref(count)), expect=1) # NULL handle
        s = lib.bh_dataset_array_i32(h, b"no/such/array", None, 0, byref(count))
        status_of(s, expect=1, contains="no/such/array")
        s = lib.bh_dataset_array_i64(h, b"facts", None, 0, byref(count))                     # wrong dtype
        assert s in (1, 4), s
        print("ok dtype", s, _lib.last_error())
        big = np.zeros(n + 10, np.int32)
        status_of(lib.bh_dataset_array_i32(h, b"facts", big, big.size, byref(count)), expect=0)
        assert count.value == n and (big[n:] == 0).all()
        assert np.array_equal(big[:n].reshape(-1, 4), ds.facts)
    """,
    "decode_buffers": """
        text = c_void_p()
        status_of(lib.bh_dataset_decode(h, None, 3, byref(text)), expect=1, contains="NULL")
        status_of(lib.bh_dataset_decode(None, np.zeros(1, np.int32), 1, byref(text)), expect=1)
        status_of(lib.bh_dataset_decode(h, np.zeros(1, np.int32), 1, None), expect=1)
        status_of(lib.bh_dataset_decode(h, np.zeros(1, np.int32), -1, byref(text)), expect=1)
        status_of(lib.bh_dataset_decode(h, np.array([-5], np.int32), 1, byref(text)), expect=1)
        status_of(lib.bh_dataset_decode(h, np.array([2**31 - 1], np.int32), 1, byref(text)), expect=1)
        assert not text.value
        s = lib.bh_dataset_decode(h, None, 0, byref(text))
        assert s == 0, s
        assert _lib.take_string(text) == ""
        print("ok empty")
    """,
    "file_errors": """
        import tempfile, pathlib
        d = pathlib.Path(tempfile.mkdtemp())
        out = _lib.DatasetPtr()
        status_of(lib.bh_dataset_load(str(d / "missing.h5").encode(), byref(out)), expect=3)
        assert not out
        s = lib.bh_dataset_load(str(d).encode(), byref(out))          # a folder, not a file
        assert s in (3, 4) and not out, s
        status_of(lib.bh_dataset_save(h, str(d / "no/such/x.h5").encode()), expect=3)
        s = lib.bh_dataset_import_reference(str(d / "nope").encode(), byref(out))
        assert s in (3, 4) and not out, s
        s = lib.bh_dataset_import_reference(str(d).encode(), byref(out))   # empty folder
        assert s in (3, 4) and not out, s
        (d / "blocker").write_text("a file where a folder should be")
        s = lib.bh_dataset_export_reference(h, str(d / "blocker" / "sub").encode())
        assert s == 3, s
        print("ok files")
    """,
    "use_after_close_python": """
        ds.close()
        try:
            ds.tokens
            raise SystemExit("closed dataset was usable")
        except behemoth.MisuseError as e:
            print("ok", e)
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_raw_error_case(case, isolated):
    import textwrap
    out = isolated(SETUP + textwrap.dedent(CASES[case])).stdout
    assert "ok" in out
