"""The build backend's one custom step: put libbehemoth.so and its file tool inside the package.

    pip install ./bindings/python       # or: pip wheel ./bindings/python
    BEHEMOTH_LIB=/path/libbehemoth.so pip wheel ./bindings/python

The library is taken from BEHEMOTH_LIB when it is set (behemoth-files, the tool the library runs to
read format version 1 files, from beside it); otherwise the repository this folder sits in is built
with `make build` (swift build with the Swift runtime linked in statically; the flags live in the
Makefile only). The wheel then needs neither Swift nor the checkout: only numpy, and OpenBLAS and
HDF5 from the system. An editable install (`pip install -e`) bundles nothing: the package then finds
the library in the checkout's build folder (behemoth/_lib.py).
"""
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BUNDLED = ("libbehemoth.so", "behemoth-files")


def built_library() -> Path:
    env = os.environ.get("BEHEMOTH_LIB")
    if env:
        lib = Path(env).expanduser().resolve()
        if not lib.is_file():
            raise SystemExit(f"behemoth: BEHEMOTH_LIB={env} is set but no such file exists")
        return lib
    if not (REPO / "Package.swift").is_file():
        raise SystemExit("behemoth: building the package needs libbehemoth.so: set BEHEMOTH_LIB to a built "
                         "library, or build from the repository's bindings/python folder (where `make build` runs)")
    print("behemoth: no BEHEMOTH_LIB given; building the library with `make build` (a few minutes)")
    subprocess.run(["make", "-C", str(REPO), "build"], check=True)
    return REPO / ".build-dist" / "release" / "libbehemoth.so"


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        lib = built_library()
        target = Path(self.build_lib) / "behemoth"
        for name in BUNDLED:
            source = lib if name == "libbehemoth.so" else lib.parent / name
            if not source.is_file():
                raise SystemExit(f"behemoth: {source} not found beside {lib} (`make build` builds both)")
            shutil.copy2(source, target / name)   # copy2 keeps the executable bit


class NativeDistribution(Distribution):
    """Holds native code, so the wheel is for one platform (and installs into platlib)."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """A native library called through ctypes, not a Python extension: any Python 3, this platform."""

    def get_tag(self):
        return "py3", "none", super().get_tag()[2]


setup(distclass=NativeDistribution, cmdclass={"build_py": BuildWithLibrary, "bdist_wheel": PlatformWheel})
