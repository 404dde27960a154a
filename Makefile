# Behemoth: build, test, run.  `make run` and `make test` work on a fresh Debian 12 machine with Swift.
PREFIX ?= /usr/local
PYTHON ?= python3
# One set of flags for the library and the tests (testing enabled only exposes internal symbols to
# the test targets), so `make test` builds the release library once.
SWIFT_FLAGS = -c release -Xswiftc -enable-testing
SWIFT_RELEASE = swift build $(SWIFT_FLAGS)
BUILD_DIR = .build/release
LIB = $(BUILD_DIR)/libbehemoth.so
PRESET ?= demo

# OpenBLAS chooses its kernels when it is loaded; name the right ones for this CPU unless the user did.
OPENBLAS_CORETYPE ?= $(shell tools/blas-core)
export OPENBLAS_CORETYPE
export BEHEMOTH_LIB = $(CURDIR)/$(LIB)

SYSTEM_PACKAGES = libopenblas-dev libhdf5-dev hdf5-tools pkg-config

.PHONY: all deps deps-system deps-python build test test-slow test-swift test-c test-fuzz test-python run install uninstall bench clean

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
	@$(PYTHON) -c "import numpy, h5py, pytest, tqdm, matplotlib, tokenizers" 2>/dev/null || \
	  $(PYTHON) -m pip install -q -r requirements.txt
	@$(PYTHON) -c "import behemoth" 2>/dev/null || $(PYTHON) -m pip install -q -e bindings/python

build: deps-system
	$(SWIFT_RELEASE)

# Release mode with testing enabled: the engine's tests train small models and need optimized code.
test-swift: deps-system
	swift test $(SWIFT_FLAGS)

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

test: deps test-swift test-c test-fuzz test-python
	@echo "all test suites passed"

# The slow tier: the fuzz suite at 6,000 cases from another seed (about 10 minutes on 2 cores).
FUZZ_SLOW_SEED ?= 2
test-slow: build
	$(MAKE) test-fuzz FUZZ_CASES=6000 FUZZ_SEED=$(FUZZ_SLOW_SEED)

run: deps build
	$(PYTHON) examples/main_job.py --preset $(PRESET) --out out

# Speed, measured against the references in the same run (PyTorch needs requirements-reference.txt).
bench: deps build
	@$(PYTHON) -c "import torch, transformers" 2>/dev/null || $(PYTHON) -m pip install -q -r requirements-reference.txt
	bash bench/generate_bench.sh
	$(PYTHON) bench/train_bench.py

install: build
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libbehemoth.so
	install -m 755 $(BUILD_DIR)/behemoth-cli $(DESTDIR)$(PREFIX)/bin/behemoth
	install -m 644 include/behemoth.h $(DESTDIR)$(PREFIX)/include/behemoth.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e "s|@VERSION@|$$(sed -n 's/#define BH_VERSION \"\(.*\)\"/\1/p' include/behemoth.h)|" \
	  bindings/c/behemoth.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/behemoth.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libbehemoth.so $(DESTDIR)$(PREFIX)/bin/behemoth $(DESTDIR)$(PREFIX)/include/behemoth.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/behemoth.pc

clean:
	rm -rf .build out bindings/c/build
