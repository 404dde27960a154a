# Behemoth: build, test, run.  `make run` and `make test` work on a fresh Debian 12 machine with Swift.
PREFIX ?= /usr/local
PYTHON ?= python3
# Two release builds of the same sources:
#  - the shipped library and its file tool (`make build`, .build-dist): the Swift runtime linked in
#    statically, so libbehemoth.so needs only libc, libstdc++, OpenBLAS and HDF5 and loads on machines
#    without Swift; the C tests, the Python tests, the wheel and `make install` use it;
#  - the Swift tests (`swift test`, .build): XCTest links the Swift runtime dynamically, and testing
#    is enabled so the tests see internal symbols.
DIST_FLAGS = -c release --scratch-path .build-dist -Xswiftc -static-stdlib -Xswiftc -DBH_STATIC_RUNTIME
TEST_FLAGS = -c release -Xswiftc -enable-testing
BUILD_DIR = .build-dist/release
LIB = $(BUILD_DIR)/libbehemoth.so
TOOL = $(BUILD_DIR)/behemoth-files
WHEEL_DIR = .build-dist/wheel
PRESET ?= demo

# OpenBLAS chooses its kernels when it is loaded; name the right ones for this CPU unless the user did.
OPENBLAS_CORETYPE ?= $(shell tools/blas-core)
export OPENBLAS_CORETYPE
export BEHEMOTH_LIB = $(CURDIR)/$(LIB)

SYSTEM_PACKAGES = libopenblas-dev libhdf5-dev hdf5-tools pkg-config

.PHONY: all deps deps-system deps-python build wheel test test-slow test-swift test-c test-fuzz test-python test-dist run install uninstall bench bench-edit bench-trace clean

all: build

deps: deps-system deps-python

deps-system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

deps-python:
	@$(PYTHON) -c "import numpy, h5py, pytest, tqdm, matplotlib, tokenizers, nbclient, nbformat, ipykernel, distributed, safetensors" 2>/dev/null || \
	  $(PYTHON) -m pip install -q -r requirements.txt

build: deps-system
	swift build $(DIST_FLAGS)

# The Python wheel, with the library built above inside it (the package's build backend takes it
# from BEHEMOTH_LIB; without it, it runs `make build` itself).
wheel: build
	rm -rf $(WHEEL_DIR)
	$(PYTHON) -m pip wheel -q --no-deps -w $(WHEEL_DIR) ./bindings/python
	@ls -l $(WHEEL_DIR)/*.whl

# Release mode with testing enabled: the engine's tests train small models and need optimized code.
test-swift: deps-system
	swift test $(TEST_FLAGS)

# The C tests link the INSTALLED library through pkg-config, as a user's program would.
test-c: build
	$(MAKE) install PREFIX=$(CURDIR)/.build/prefix
	PKG_CONFIG_PATH=$(CURDIR)/.build/prefix/lib/pkgconfig $(MAKE) -C bindings/c test

# Damaged files against every loader, each load in a forked child (bindings/c/fuzz_files.c):
# FUZZ_CASES cases from FUZZ_SEED; `make test` runs the CI size, `make test-slow` a large run.
FUZZ_CASES ?= 1200
FUZZ_SEED ?= 1
test-fuzz: build
	$(MAKE) install PREFIX=$(CURDIR)/.build/prefix
	PKG_CONFIG_PATH=$(CURDIR)/.build/prefix/lib/pkgconfig $(MAKE) -C bindings/c fuzz CASES=$(FUZZ_CASES) SEED=$(FUZZ_SEED) \
	  LEGACY_FIXTURES=$(CURDIR)/Tests/Fixtures/legacy-v1

test-python: build deps-python
	$(PYTHON) -m pytest -q bindings/python/tests

# The shipped library, the wheel and the command line on a machine without Swift: the toolchain's
# folder hidden by a mount namespace (tools/test-without-swift).
test-dist: wheel
	$(MAKE) install PREFIX=$(CURDIR)/.build/prefix
	PKG_CONFIG_PATH=$(CURDIR)/.build/prefix/lib/pkgconfig $(MAKE) -C bindings/c all
	PYTHON=$(PYTHON) tools/test-without-swift $(CURDIR)/.build/prefix $(WHEEL_DIR)

test: deps test-swift test-c test-fuzz test-python test-dist
	@echo "all test suites passed"

# The slow tier: the fuzz suite at 6,000 cases from another seed (about 5 minutes on 2 cores),
# resident memory while recording 5,000 then 50,000 prompts (alone: other suites would move it), the
# demo main job's analysis, a 60-cell demo sweep run whole, killed and resumed, and on Dask, and the
# Forget Quality of unlearning oracles trained with six seeds (tiny preset; docs/unlearning.md).
FUZZ_SLOW_SEED ?= 2
test-slow: build deps-python
	$(MAKE) test-fuzz FUZZ_CASES=6000 FUZZ_SEED=$(FUZZ_SLOW_SEED)
	BEHEMOTH_RSS_TEST=1 swift test $(TEST_FLAGS) --filter RecorderTests
	$(PYTHON) -m pip install -q --no-deps ./bindings/python
	$(PYTHON) tools/check_demo_analysis.py
	$(PYTHON) tools/check_demo_sweep.py --run .build/slow-demo
	BEHEMOTH_SLOW=1 $(PYTHON) -m pytest -q bindings/python/tests/test_unlearn.py -k oracle_seeds

# The main job through the command line of the installed package, as a user runs it: the package
# is installed from bindings/python with the library just built inside it (no second build).
run: deps build
	$(PYTHON) -m pip install -q --no-deps ./bindings/python
	$(PYTHON) -m behemoth run --preset $(PRESET) --out out

# Speed, measured against the references in the same run (PyTorch needs requirements-reference.txt).
bench: deps build
	@$(PYTHON) -c "import torch, transformers" 2>/dev/null || $(PYTHON) -m pip install -q -r requirements-reference.txt
	bash bench/generate_bench.sh
	$(PYTHON) bench/speed_bench.py

# ROME / MEMIT / AlphaEdit against PyTorch on the demo model `make run` leaves in out/.
bench-edit: deps build
	@$(PYTHON) -c "import torch, transformers" 2>/dev/null || $(PYTHON) -m pip install -q -r requirements-reference.txt
	@test -f out/model.h5 || $(MAKE) run
	$(PYTHON) bench/locate_edit_bench.py --run out

# Causal tracing (100 facts × positions × blocks × 3 kinds × 10 samples) against PyTorch on the demo model.
bench-trace: deps build
	@$(PYTHON) -c "import torch, transformers" 2>/dev/null || $(PYTHON) -m pip install -q -r requirements-reference.txt
	@test -f out/model.h5 || $(MAKE) run
	$(PYTHON) bench/trace_bench.py --run out --no-reuse

# The library, its file tool (libexec/behemoth-files: the library runs it to read format version 1
# files in a separate process), the header and the pkg-config file (OpenBLAS and HDF5 as private libs).
install: build
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/libexec $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libbehemoth.so
	install -m 755 $(TOOL) $(DESTDIR)$(PREFIX)/libexec/behemoth-files
	install -m 644 include/behemoth.h $(DESTDIR)$(PREFIX)/include/behemoth.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e "s|@VERSION@|$$(sed -n 's/#define BH_VERSION \"\(.*\)\"/\1/p' include/behemoth.h)|" \
	  -e "s|@LIBS_PRIVATE@|$$(pkg-config --libs openblas hdf5)|" \
	  bindings/c/behemoth.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/behemoth.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libbehemoth.so $(DESTDIR)$(PREFIX)/libexec/behemoth-files $(DESTDIR)$(PREFIX)/include/behemoth.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/behemoth.pc

clean:
	rm -rf .build .build-dist out bindings/c/build bindings/python/build
