"""Issue 7: files, sizes and misuse that must never crash the process or pass as good."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import behemoth
from behemoth import EditSet, FormatError, Model, OutOfMemoryError
from conftest import repo_root, subprocess_env
from behemoth import _lib

LEGACY = (repo_root() / "Tests" / "Fixtures" / "legacy-v1") if repo_root() else None
LORA = dict(method="lora", rank=8, alpha=8, optimizer={"learning_rate": 0.001, "epochs": 1})


@pytest.fixture(scope="module")
def every_file_type(tiny, trained, tmp_path_factory):
    """One file of each type the library writes: dataset, model, checkpoint, edit."""
    d = tmp_path_factory.mktemp("types")
    tiny.save(d / "dataset.h5")
    trained.save(d / "model.h5")
    m = trained.clone()
    t = behemoth.Trainer(m, tiny, epochs=1, batch_size=32)
    t.step()
    t.save(d / "checkpoint.h5")
    t.close()
    with EditSet(tiny, kind="single", relation=0, seed=3) as es:
        res = m.edit(es, layers={"blocks": [1], "sublayers": "mlp"}, progress=False, **LORA)
        res.save(d / "edit.h5")
        res.close()
    m.close()
    return {k: d / f"{k}.h5" for k in ("dataset", "model", "checkpoint", "edit")}


@pytest.mark.parametrize("kind", ["dataset", "model", "checkpoint", "edit"])
def test_h5py_and_h5dump_open_every_file_type(every_file_type, kind):
    path = every_file_type[kind]
    with h5py.File(path, "r") as f:
        assert f.id.get_create_plist().get_version()[0] >= 2, "superblock v2+: the checksummed layout"
        assert f.attrs["format_version"] == 2
        assert f.attrs["digest"].decode().startswith("xxh64:")
        json.loads(f.attrs["spec"])  # fixed-length UTF-8: bytes, which json reads as they are
        n = 0

        def visit(name, obj):
            nonlocal n
            if isinstance(obj, h5py.Dataset):
                obj[()]
                if obj.size:
                    assert obj.fletcher32, f"{name} has no checksum"
                n += 1
            for a in obj.attrs.values():
                assert not (isinstance(a, str)), f"{name}: a variable-length string attribute"
        f.visititems(visit)
        assert n > 0
    if shutil.which("h5dump"):
        subprocess.run(["h5dump", "-H", str(path)], check=True, capture_output=True)
    info = behemoth.verify_file(path)
    assert info["format"] == f"behemoth.{'model' if kind == 'checkpoint' else kind}"
    with h5py.File(path, "r") as f:
        assert info["digest"] == f.attrs["digest"].decode()
        # The description lists every array with h5py's dtype and shape, and every root attribute.
        arrays = {}
        f.visititems(lambda name, obj: arrays.update({"/" + name: (str(obj.dtype), list(obj.shape))})
                     if isinstance(obj, h5py.Dataset) else None)
        assert {c["name"]: (c["dtype"], c["shape"]) for c in info["contents"]} == arrays
        assert info["arrays"] == len(arrays)
        assert set(info["attributes"]) == set(f.attrs) - {"format_version"}
        assert info["attributes"]["spec"] == json.loads(f.attrs["spec"])
        groups = {}
        f.visititems(lambda name, obj: groups.update({"/" + name: set(obj.attrs)})
                     if isinstance(obj, h5py.Group) and len(obj.attrs) else None)
        assert {g: set(a) for g, a in info["group_attributes"].items()} == groups
        if kind == "checkpoint":
            state = info["group_attributes"]["/trainer"]["state"]
            assert state == json.loads(f["trainer"].attrs["state"]) and isinstance(state, dict)
            assert info["group_attributes"]["/optimizer"]["step"] == int(f["optimizer"].attrs["step"])


def test_digests_are_exposed_and_follow_the_content(tiny, trained, every_file_type):
    assert tiny.digest == behemoth.verify_file(every_file_type["dataset"])["digest"]
    assert trained.digest == behemoth.verify_file(every_file_type["model"])["digest"]
    m = trained.clone()
    assert m.digest == trained.digest
    m.train(tiny, epochs=1, batch_size=32, progress=False)
    assert m.digest != trained.digest
    m.close()
    with EditSet(tiny, kind="single", relation=0, seed=3) as a, EditSet(tiny, kind="single", relation=0, seed=4) as b:
        assert a.digest.startswith("xxh64:") and a.digest != b.digest


def test_edit_report_names_the_digests(trained, tiny):
    m = trained.clone()
    with EditSet(tiny, kind="single", relation=0, seed=3) as es:
        res = m.edit(es, layers={"blocks": [1], "sublayers": "mlp"}, progress=False, **LORA)
        d = res.report["digests"]
        assert d["model_before"] == trained.digest and d["model_after"] == m.digest != trained.digest
        assert d["edit_set"] == es.digest and d["dataset"] == tiny.digest
        res.close()
    m.close()


def test_a_spec_rewritten_with_h5py_is_refused(every_file_type, tmp_path):
    for kind in ("dataset", "model", "edit"):
        copy = tmp_path / f"{kind}.h5"
        shutil.copy(every_file_type[kind], copy)
        with h5py.File(copy, "r+") as f:
            spec = json.loads(f.attrs["spec"])
            spec["seed" if kind == "dataset" else "hidden" if kind == "model" else "mode"] = 12345
            text = json.dumps(spec).encode()
            f.attrs.create("spec", np.array(text, dtype=h5py.string_dtype("utf-8", len(text))))
        with pytest.raises(FormatError, match="digest mismatch|spec|config|shape"):
            behemoth.verify_file(copy)
    copy = tmp_path / "ds.h5"
    shutil.copy(every_file_type["dataset"], copy)
    with h5py.File(copy, "r+") as f:
        f["tokens"][0] = f["tokens"][1]
    with pytest.raises(FormatError, match="digest mismatch"):
        behemoth.Dataset.load(copy)


@pytest.mark.skipif(LEGACY is None, reason="needs the repository's legacy fixtures")
def test_format_version_1_files_load_and_upgrade(tmp_path):
    ds = behemoth.Dataset.load(LEGACY / "dataset.h5")
    m = Model.load(LEGACY / "model.h5")
    assert behemoth.verify_file(LEGACY / "edit.h5")["format"] == "behemoth.edit"
    behemoth.upgrade_file(LEGACY / "dataset.h5", tmp_path / "ds.h5")
    assert h5py.File(tmp_path / "ds.h5", "r").id.get_create_plist().get_version()[0] >= 2
    again = behemoth.Dataset.load(tmp_path / "ds.h5")
    assert again.digest == ds.digest
    assert np.array_equal(again.array("tokens"), ds.array("tokens"))
    # the command line does the same
    tool = _lib.lib().path.parent / "behemoth-files"   # beside the library: a build folder or the wheel
    assert tool.is_file(), f"{tool}: the file tool should ship beside the library"
    subprocess.run([str(tool), "upgrade", str(LEGACY / "model.h5"), str(tmp_path / "m.h5")], check=True)
    assert Model.load(tmp_path / "m.h5").digest == m.digest
    out = subprocess.run([str(tool), "verify", str(tmp_path / "m.h5")], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout)["digest"] == m.digest


def test_oversized_configs_and_the_memory_limit(isolated):
    out = isolated("""
        from behemoth import Model, OutOfMemoryError
        try:
            Model.create(preset="tiny", vocab_size=1407, hidden=65536)
            raise SystemExit("allocated")
        except OutOfMemoryError as e:
            import re; assert re.search(r"needs [0-9]+ GB", str(e)), e
            print("refused:", e)
        behemoth.set_memory_limit(0.001)
        assert behemoth.memory_limit() == 0.001
        try:
            Model.create(preset="tiny", vocab_size=100)
            raise SystemExit("allocated over the limit")
        except OutOfMemoryError as e:
            assert "the limit is" in str(e), e
        try:
            behemoth.Dataset.generate(subjects=100000, relationships=20, objects=10)
            raise SystemExit("generated over the limit")
        except OutOfMemoryError as e:
            print("dataset refused:", e)
        behemoth.set_memory_limit(None)
        Model.create(preset="tiny", vocab_size=100).close()
        print("ok")
    """)
    assert "ok" in out.stdout


def test_big_specs_are_refused_fast():
    spec = "{" + ",".join(f'"k{i}": {i}' for i in range(200_000)) + "}"
    start = time.monotonic()
    with pytest.raises(behemoth.InvalidArgumentError):
        behemoth.Dataset.generate(spec)
    assert time.monotonic() - start < 1.0


def test_a_killed_save_leaves_no_temporary_file_after_the_next_save(tiny, tmp_path):
    target = tmp_path / "ds.h5"
    code = (f"import behemoth\nds = behemoth.Dataset.generate(preset='tiny', repeats=40)\n"
            f"print('ready', flush=True)\nwhile True: ds.save({str(target)!r})\n")
    env = subprocess_env(BEHEMOTH_LIB=str(_lib.lib().path))
    leftovers = 0
    for attempt in range(8):
        p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.3 + 0.05 * attempt)
        p.send_signal(signal.SIGKILL)
        p.wait()
        leftovers += len(glob.glob(str(target) + ".tmp-*"))
    tiny.save(target)
    assert glob.glob(str(target) + ".tmp-*") == [], "temporary files of killed saves are left"
    assert behemoth.Dataset.load(target).digest == tiny.digest
    print(f"killed saves left {leftovers} temporary files, all removed by the next save")
