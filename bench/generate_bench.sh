#!/usr/bin/env bash
# Times dataset generation, HDF5 save/load and official-folder export through the C API.
# Usage: bench/generate_bench.sh [preset ...]   (default: tiny demo paper)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build >/dev/null
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-$(tools/blas-core)}"
LIB="$PWD/.build-dist/release/libbehemoth.so"
OUT="$(mktemp -d /tmp/behemoth-bench-XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
python3 - "$LIB" "$OUT" "${@:-tiny demo paper}" <<'PY'
import ctypes, json, sys, time
lib = ctypes.CDLL(sys.argv[1])
out = sys.argv[2]
presets = " ".join(sys.argv[3:]).split()
P = ctypes.c_void_p
lib.bh_dataset_generate.argtypes = [ctypes.c_char_p, ctypes.POINTER(P)]
lib.bh_dataset_save.argtypes = [P, ctypes.c_char_p]
lib.bh_dataset_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(P)]
lib.bh_dataset_export_reference.argtypes = [P, ctypes.c_char_p]
lib.bh_dataset_info.argtypes = [P, ctypes.POINTER(ctypes.c_char_p)]
lib.bh_dataset_free.argtypes = [P]
lib.bh_last_error.restype = ctypes.c_char_p

def check(status, what):
    if status != 0:
        raise SystemExit(f"{what}: status {status}: {lib.bh_last_error().decode()}")

print(f"{'preset':8} {'facts':>9} {'tokens':>10} {'vocab':>6} {'generate':>9} {'save':>7} {'load':>7} {'export':>7}")
for preset in presets:
    ds = P()
    t0 = time.perf_counter()
    check(lib.bh_dataset_generate(json.dumps({"preset": preset}).encode(), ctypes.byref(ds)), "generate")
    t1 = time.perf_counter()
    s = ctypes.c_char_p()
    check(lib.bh_dataset_info(ds, ctypes.byref(s)), "info")
    counts = json.loads(s.value)["counts"]
    path = f"{out}/{preset}.h5".encode()
    t2 = time.perf_counter()
    check(lib.bh_dataset_save(ds, path), "save")
    t3 = time.perf_counter()
    ds2 = P()
    check(lib.bh_dataset_load(path, ctypes.byref(ds2)), "load")
    t4 = time.perf_counter()
    check(lib.bh_dataset_export_reference(ds, f"{out}/{preset}-ref".encode()), "export")
    t5 = time.perf_counter()
    lib.bh_dataset_free(ds); lib.bh_dataset_free(ds2)
    print(f"{preset:8} {counts['facts']:>9} {counts['tokens']:>10} {counts['vocab_size']:>6} "
          f"{t1 - t0:>8.2f}s {t3 - t2:>6.2f}s {t4 - t3:>6.2f}s {t5 - t4:>6.2f}s")
PY
