"""Shared fixtures: the loaded library, a tiny dataset, and a runner for code that might crash."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
# In the checkout, test the package beside these tests, whatever is installed. A copy of the tests
# elsewhere (tools/test-without-swift) tests the installed package: the wheel and its bundled library.
PACKAGE_ROOT = TESTS.parent
FROM_CHECKOUT = (PACKAGE_ROOT / "behemoth" / "__init__.py").is_file()
if FROM_CHECKOUT:
    sys.path.insert(0, str(PACKAGE_ROOT))

import behemoth  # noqa: E402
from behemoth import _lib  # noqa: E402

if FROM_CHECKOUT:
    assert Path(behemoth.__file__).resolve().parent == PACKAGE_ROOT / "behemoth", behemoth.__file__


def subprocess_env(**overrides) -> dict:
    """The environment for a child Python: imports the same package; `None` removes a variable."""
    env = dict(os.environ)
    if FROM_CHECKOUT:
        env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def repo_root() -> Path | None:
    """The repository (the folder above the tests that holds include/behemoth.h), if any."""
    for folder in TESTS.parents:
        if (folder / "include" / "behemoth.h").is_file():
            return folder
    return None


def pytest_report_header(config):
    try:
        lib = _lib.lib()
    except Exception as e:  # shown in the header; the tests themselves then fail with it
        return [f"behemoth: library not loaded: {e}"]
    lines = [f"behemoth: {lib.path} (ABI {lib.abi_version}), OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}"]
    missing = lib.missing()
    if missing:
        lines.append("behemoth: this build does not export yet: " + ", ".join(missing) +
                     " (tests using them fail until it does)")
    return lines


@pytest.fixture(scope="session")
def lib():
    return _lib.lib()


@pytest.fixture(scope="session")
def tiny():
    """The tiny preset, generated once per session (tests must not close it)."""
    ds = behemoth.Dataset.generate(preset="tiny")
    yield ds
    ds.close()


@pytest.fixture(scope="session")
def tiny_file(tiny, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.h5"
    tiny.save(path)
    return path


def run_isolated(code: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs Python `code` in a fresh interpreter against the same library; fails the test if the
    process died (a signal, e.g. SIGILL from a Swift trap) or exited non-zero. The code should print
    what it checked; its stdout is returned. `env`: variables to add to the environment."""
    env = subprocess_env(BEHEMOTH_LIB=str(_lib.lib().path), **(env or {}))
    prelude = ("import ctypes, json, os, sys\nimport numpy as np\nimport behemoth\n"
               "from behemoth import _lib\nlib = _lib.lib()\n")
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode < 0:
        pytest.fail(f"the process was killed by signal {-proc.returncode} (a crash the library must not allow)\n"
                    f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"subprocess exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def isolated():
    return run_isolated


#: Trains the tiny preset to 100% sro accuracy in a few seconds.
TRAIN_SPEC = {"epochs": 150, "batch_size": 32, "learning_rate": 0.003, "min_learning_rate": 0.0003,
              "weight_decay": 0.0, "eval_every_epochs": 25, "warmup_steps": 20}


@pytest.fixture(scope="session")
def trained_run(tiny):
    """(model, report): the tiny model trained once per session. Tests must not change it: edit or
    train a `model.clone()`."""
    m = behemoth.Model.create(dataset=tiny, preset="tiny")
    report = m.train(tiny, progress=False, **TRAIN_SPEC)
    yield m, report
    m.close()


@pytest.fixture(scope="session")
def trained(trained_run):
    return trained_run[0]
