"""The `behemoth` command line (behemoth/cli.py): in-process through main([...]), and as a child
`python -m behemoth ...` for exit codes and stderr."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import behemoth
from behemoth import Dataset, Model, _lib
from behemoth.cli import main
from conftest import subprocess_env

COMMANDS = ["run", "generate", "import-official", "export-official", "train", "evaluate", "edit", "info",
            "verify", "upgrade"]

# A few epochs of the tiny preset: enough for a checkpoint with a history, not for accuracy.
TRAIN_ARGS = ["model.preset=tiny", "model.max_positions=64", "epochs=4", "batch_size=32", "learning_rate=3e-3",
              "eval_every_epochs=2"]
EDIT_FLAGS = ["method=lora", "rank=4", "alpha=8", "layers.blocks=[1]", "layers.sublayers=mlp",
              "optimizer.epochs=2", "set.kind=single", "set.seed=3"]


def cli(capsys, *args) -> tuple:
    """(exit code, stdout, stderr) of main([...]) run in this process."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def child(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m behemoth ...` in a fresh interpreter against the same package and library."""
    env = subprocess_env(BEHEMOTH_LIB=str(_lib.lib().path))
    return subprocess.run([sys.executable, "-m", "behemoth", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("behemoth: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Files made through the command line once: a dataset, a checkpoint, an edit (LoRA from flags)
    and the edited model (a plain model file)."""
    d = tmp_path_factory.mktemp("cli")
    assert main(["generate", "preset=tiny", "seed=2", "--out", str(d / "ds.h5"), "-q"]) == 0
    assert main(["train", str(d / "ds.h5"), *TRAIN_ARGS, "--out", str(d / "ckpt.h5"),
                 "--report", str(d / "train.json"), "-q"]) == 0
    assert main(["edit", str(d / "ckpt.h5"), str(d / "ds.h5"), *EDIT_FLAGS, "--out", str(d / "edit.h5"),
                 "--save-model", str(d / "edited.h5"), "-q"]) == 0
    return d


# ---- help and usage ------------------------------------------------------------------------------------

def test_help_lists_every_command(capsys):
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(capsys, command):
    code, out, err = cli(capsys, command, "--help")
    assert code == 0 and err == ""
    assert f"behemoth {command}" in out and "examples:" in out and "--quiet" in out


def test_help_as_a_child_process():
    p = child("edit", "--help")
    assert p.returncode == 0, p.stderr
    assert "usage: behemoth edit" in p.stdout and "set.key=value" in p.stdout


def test_wrong_flag_is_one_line_and_exit_2():
    p = child("train", "ds.h5", "--out", "m.h5", "--bogus")
    assert p.returncode == 2
    line = one_error_line(p.stderr)
    assert "--bogus" in line and "behemoth train --help" in line
    assert p.stdout == ""


def test_unknown_command_and_missing_arguments(capsys):
    code, _, err = cli(capsys, "frobnicate")
    assert code == 2 and "invalid choice: 'frobnicate'" in one_error_line(err)
    code, _, err = cli(capsys, "generate", "preset=tiny")
    assert code == 2 and "--out" in one_error_line(err)


def test_bad_key_value(capsys, tmp_path):
    out = tmp_path / "x.h5"
    for bad, says in [("preset", "expected key=value, got 'preset'"), ("=3", "expected key=value"),
                      ("a..b=1", "empty part")]:
        code, _, err = cli(capsys, "generate", bad, "--out", out)
        assert code == 2 and says in one_error_line(err)
    code, _, err = cli(capsys, "generate", "seed=1", "seed.x=2", "--out", out)
    assert code == 2 and "seed is 1, not an object" in one_error_line(err)
    # well formed, but the library refuses it: exit 1 with the library's message
    code, _, err = cli(capsys, "generate", "preset=tiny", "subjects=many", "--out", out)
    assert code == 1 and "dataset spec: subjects must be an integer" in one_error_line(err)
    code, _, err = cli(capsys, "generate", "preset=tiny", "colour=blue", "--out", out)
    assert code == 1 and "unknown key 'colour'" in one_error_line(err)
    assert not out.exists()


# ---- file and spec errors ----------------------------------------------------------------------------------

def test_missing_file_names_it():
    p = child("info", "/no/such/dir/model.h5")
    assert p.returncode == 1
    assert "/no/such/dir/model.h5" in one_error_line(p.stderr)
    p = child("generate", "--spec", "/no/such/spec.json", "--out", "x.h5")
    assert p.returncode == 1
    assert "/no/such/spec.json" in one_error_line(p.stderr)


def test_malformed_json_spec_names_file_and_line(tmp_path):
    spec = tmp_path / "dataset.json"
    spec.write_text('{\n  "preset": "tiny",\n  "seed": 3,,\n}\n')
    p = child("generate", "--spec", spec, "--out", tmp_path / "x.h5")
    assert p.returncode == 1
    line = one_error_line(p.stderr)
    assert str(spec) in line and "line 3" in line and "column" in line
    assert not (tmp_path / "x.h5").exists()


def test_spec_that_is_not_an_object(capsys, tmp_path):
    spec = tmp_path / "list.json"
    spec.write_text("[1, 2]")
    code, _, err = cli(capsys, "generate", "--spec", spec, "--out", tmp_path / "x.h5")
    assert code == 1 and "must be a JSON object" in one_error_line(err)


def test_damaged_and_wrong_files(capsys, tmp_path, work):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    code, _, err = cli(capsys, "info", junk)
    assert code == 1 and "not an HDF5 file" in one_error_line(err)
    code, _, err = cli(capsys, "evaluate", work / "ds.h5", work / "ckpt.h5")  # arguments swapped
    assert code == 1 and "expected behemoth.model" in one_error_line(err)


# ---- the workflow ------------------------------------------------------------------------------------------

def test_generate_writes_the_requested_spec(capsys, tmp_path):
    spec = tmp_path / "ds.json"
    spec.write_text(json.dumps({"preset": "tiny", "seed": 5, "objects": 4}))
    code, out, err = cli(capsys, "generate", "--spec", spec, "objects=6", "--out", tmp_path / "sub" / "ds.h5")
    assert code == 0, err
    assert "64 subjects × 3 relations × 6 objects" in out
    with Dataset.load(tmp_path / "sub" / "ds.h5") as ds:
        assert ds.spec["seed"] == 5 and ds.spec["objects"] == 6 and ds.spec["preset"] == "tiny"
        with Dataset.generate(preset="tiny", seed=5, objects=6) as same:
            assert ds.digest == same.digest  # exactly what the Python API makes


def test_key_values_after_an_option_are_overrides(capsys, tmp_path):
    code, _, err = cli(capsys, "generate", "--out", tmp_path / "ds.h5", "preset=tiny", "seed=4")
    assert code == 0, err
    with Dataset.load(tmp_path / "ds.h5") as ds:
        assert ds.spec["seed"] == 4


def test_train_writes_checkpoint_and_report(work):
    report = json.loads((work / "train.json").read_text())
    assert report["finished"] and report["steps"] == report["total_steps"] > 0
    assert report["spec"]["epochs"] == 4 and report["spec"]["learning_rate"] == 0.003
    assert report["spec"]["checkpoint_path"] == str(work / "ckpt.h5")
    assert report["model"]["preset"] == "tiny" and report["model"]["max_positions"] == 64
    assert "sro" in report["final_accuracy"]
    with Model.load(work / "ckpt.h5") as m:
        assert m.info["history"]["steps"] == report["steps"]
        assert m.config["max_positions"] == 64


def test_train_from_spec_files_and_resume(capsys, tmp_path, work):
    config = tmp_path / "model.json"
    config.write_text(json.dumps({"preset": "tiny", "layers": 1}))
    spec = tmp_path / "train.json"
    spec.write_text(json.dumps({"epochs": 2, "batch_size": 64}))
    code, out, err = cli(capsys, "train", work / "ds.h5", "--config", config, "--spec", spec,
                         "--out", tmp_path / "m.h5", "-q")
    assert code == 0, err
    assert "m.h5: 6 of 6 steps" in out
    with Model.load(tmp_path / "m.h5") as m:
        assert m.config["layers"] == 1
    # resuming a finished run with the same spec ends at once; another spec is refused by the library
    code, _, err = cli(capsys, "train", work / "ds.h5", "--resume", tmp_path / "m.h5", "--spec", spec,
                       "--out", tmp_path / "m.h5", "-q")
    assert code == 0, err
    code, _, err = cli(capsys, "train", work / "ds.h5", "--resume", tmp_path / "m.h5", "epochs=3",
                       "--out", tmp_path / "m2.h5", "-q")
    assert code == 1 and "resume" in one_error_line(err)
    code, _, err = cli(capsys, "train", work / "ds.h5", "--resume", tmp_path / "m.h5", "model.layers=2",
                       "--out", tmp_path / "m2.h5")
    assert code == 2 and "model.*" in one_error_line(err)


def test_evaluate(capsys, work):
    code, out, err = cli(capsys, "evaluate", work / "ckpt.h5", work / "ds.h5")
    assert code == 0, err
    assert "sro" in out and "accuracy" in out and "192" in out
    code, out, _ = cli(capsys, "evaluate", work / "ckpt.h5", work / "ds.h5", "--groups", "sro", "--json")
    assert code == 0
    report = json.loads(out)
    with Model.load(work / "ckpt.h5") as m, Dataset.load(work / "ds.h5") as ds:
        assert report["groups"]["sro"]["accuracy"] == m.evaluate(ds, groups="sro")["groups"]["sro"]["accuracy"]


def test_edit_from_flags(work):
    with Dataset.load(work / "ds.h5") as ds, behemoth.EditSet(ds, kind="single", seed=3) as expected:
        edits = expected.info["edits"]
    v = behemoth.verify_file(work / "edit.h5")
    spec, edit_set = v["attributes"]["spec"], v["attributes"]["edit_set"]
    assert spec["method"] == "lora" and spec["rank"] == 4 and spec["alpha"] == 8
    assert spec["layers"]["blocks"] == [1] and spec["layers"]["sublayers"] == "mlp"
    assert spec["optimizer"]["epochs"] == 2
    assert edit_set["spec"]["seed"] == 3 and edit_set["edits"] == edits
    assert "edit_success" in v["attributes"]["report"]["metrics"]
    # --save-model wrote the edited model; the input checkpoint is unchanged
    assert behemoth.verify_file(work / "edited.h5")["digest"] == v["attributes"]["report"]["digests"]["model_after"]
    assert behemoth.verify_file(work / "ckpt.h5")["digest"] == v["attributes"]["report"]["digests"]["model_before"]


def test_edit_from_json_files(capsys, tmp_path, work):
    method = tmp_path / "full.json"
    method.write_text(json.dumps({"method": "full", "layers": {"blocks": [0], "sublayers": "attention"},
                                  "optimizer": {"epochs": 1, "learning_rate": 1e-4}}))
    edit_set = tmp_path / "editset.json"
    edit_set.write_text(json.dumps({"kind": "single", "relation": 1, "seed": 4}))
    code, out, err = cli(capsys, "edit", work / "ckpt.h5", work / "ds.h5", "--method", method,
                         "--edit-set", edit_set, "optimizer.learning_rate=2e-4", "--out", tmp_path / "e.h5", "-q")
    assert code == 0, err
    assert "edit: subject" in out and "edit_success" in out
    attrs = behemoth.verify_file(tmp_path / "e.h5")["attributes"]
    assert attrs["spec"]["method"] == "full"
    assert attrs["spec"]["layers"]["blocks"] == [0] and attrs["spec"]["layers"]["sublayers"] == "attention"
    assert attrs["spec"]["optimizer"] == dict(attrs["spec"]["optimizer"], epochs=1, learning_rate=2e-4)
    assert attrs["edit_set"]["spec"]["relation"] == 1 and attrs["edit_set"]["spec"]["seed"] == 4


def test_edit_method_keys_are_checked(capsys, tmp_path, work):
    code, _, err = cli(capsys, "edit", work / "ckpt.h5", work / "ds.h5", "rnak=4", "--out", tmp_path / "e.h5")
    assert code == 1 and "rnak" in one_error_line(err)
    code, _, err = cli(capsys, "edit", work / "ckpt.h5", work / "ds.h5", "set.kind=sideways", "--out", tmp_path / "e.h5")
    assert code == 1 and "sideways" in one_error_line(err)
    code, _, err = cli(capsys, "edit", work / "ckpt.h5", work / "ds.h5", "--official-edit-set", tmp_path / "no_ft",
                       "--out", tmp_path / "e.h5")
    assert code == 1 and "no_ft" in one_error_line(err)
    code, _, err = cli(capsys, "edit", work / "ckpt.h5", work / "ds.h5", "--official-edit-set", tmp_path / "no_ft",
                       "set.seed=1", "--out", tmp_path / "e.h5")
    assert code == 2 and "--official-edit-set" in one_error_line(err)
    assert not (tmp_path / "e.h5").exists()


# ---- info and verify ----------------------------------------------------------------------------------

def test_info_dataset(capsys, work):
    code, out, err = cli(capsys, "info", work / "ds.h5")
    assert code == 0, err
    assert "behemoth.dataset, format version 2" in out and "by behemoth" in out
    assert "preset=tiny" in out and "seed=2" in out
    assert "64 subjects × 3 relations × 8 objects = 192 facts" in out
    assert "/facts" in out and "[192, 4]" in out and "sro (192 prompts)" in out


def test_info_checkpoint(capsys, work):
    report = json.loads((work / "train.json").read_text())
    code, out, err = cli(capsys, "info", work / "ckpt.h5")
    assert code == 0, err
    assert "training checkpoint" in out and "behemoth.model, format version 2" in out
    assert "layers=2" in out and "hidden=64" in out
    assert f"{report['steps']} steps" in out and "final loss" in out and "final accuracy sro" in out
    assert "/weights/gpt_neox.layers.{0..1}.mlp.dense_h_to_4h.weight" in out and "[256, 64]" in out
    assert "/optimizer/m/*" in out and "as /weights/*" in out
    code, out, _ = cli(capsys, "info", work / "ckpt.h5", "--all")
    assert "/optimizer/m/gpt_neox.layers.1.mlp.dense_h_to_4h.weight" in out


def test_info_model(capsys, work):
    code, out, err = cli(capsys, "info", work / "edited.h5")
    assert code == 0, err
    assert "edited.h5: model" in out and "training checkpoint" not in out
    assert "behemoth.model, format version 2" in out and "params    280,192" in out
    assert "/weights/embed_out.weight" in out and "[1407, 64]" in out


def test_info_edit(capsys, work):
    code, out, err = cli(capsys, "info", work / "edit.h5")
    assert code == 0, err
    assert "edit result" in out and "behemoth.edit, format version 2" in out
    assert "method=lora" in out and "rank=4" in out and "kind=single" in out
    assert "/lora/gpt_neox.layers.1.mlp.dense_h_to_4h.weight/A" in out and "[4, 64]" in out
    assert "/groups/remaining/*" in out
    assert "metrics" in out and "edit_success" in out and "remaining_accuracy" in out and "before" in out


def test_info_json(capsys, work):
    code, out, _ = cli(capsys, "info", work / "edit.h5", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["format"] == "behemoth.edit" and "edit_success" in d["summary"]["metrics"]
    assert any(c["name"] == "/lora/gpt_neox.layers.1.mlp.dense_h_to_4h.weight/B" for c in d["contents"])


def test_verify(capsys, tmp_path, work):
    files = [work / "ds.h5", work / "ckpt.h5", work / "edit.h5"]
    code, out, err = cli(capsys, "verify", *files)
    assert code == 0, err
    assert out.count("ok  ") == 3 and "behemoth.edit, format version 2" in out
    code, out, _ = cli(capsys, "verify", *files, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [v["format"] for v in lines] == ["behemoth.dataset", "behemoth.model", "behemoth.edit"]
    # a damaged file: the library's message, exit 1, and the good files still reported
    damaged = tmp_path / "damaged.h5"
    data = (work / "ds.h5").read_bytes()
    damaged.write_bytes(data[: len(data) // 2])  # truncated
    code, out, err = cli(capsys, "verify", work / "ds.h5", damaged)
    assert code == 1 and out.count("ok  ") == 1
    assert str(damaged) in one_error_line(err)


def test_upgrade_and_official_round_trip(capsys, tmp_path, work):
    code, out, err = cli(capsys, "upgrade", work / "ds.h5", tmp_path / "up.h5")
    assert code == 0 and "format version 2" in out, err
    code, _, err = cli(capsys, "export-official", work / "ds.h5", "--out", tmp_path / "official")
    assert code == 0, err
    assert (tmp_path / "official" / "metadata").is_dir()
    code, out, err = cli(capsys, "import-official", tmp_path / "official", "--out", tmp_path / "back.h5")
    assert code == 0, err
    assert "192 facts" in out


# ---- the main job ---------------------------------------------------------------------------------------

def test_run_tiny(capsys, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = cli(capsys, "run", "--preset", "tiny", "--out", out_dir, "--quiet")
    assert code == 0, err
    for name in ["dataset.h5", "model.h5", "edit_lora.h5", "edit_full.h5", "report.json"]:
        assert (out_dir / name).is_file(), name
    assert "fact accuracy 100.0%" in out and "lora: edit success" in out and "full: edit success" in out
    assert "done in" in out
    report = json.loads((out_dir / "report.json").read_text())
    assert report["command"] == ["behemoth", "run", "--preset", "tiny", "--out", str(out_dir), "--quiet"]
    assert report["versions"]["library"] == behemoth.version()
    for name in ("lora", "full"):
        metrics = report["edits"][name]["metrics"]
        assert "edit_success" in metrics and "remaining_accuracy" in metrics
    try:
        import h5py  # noqa: F401
        import matplotlib  # noqa: F401
        assert (out_dir / "training.png").is_file()
    except ImportError:
        assert "training.png skipped" in out


def test_plot_skipped_without_matplotlib(capsys, monkeypatch, tmp_path, work):
    from behemoth.main_job import plot_history
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert plot_history(str(work / "ckpt.h5"), str(tmp_path / "training.png")) is False
    out = capsys.readouterr().out
    assert out.strip() == "training.png skipped: matplotlib is not installed (pip install 'behemoth[plots]')"
    assert not (tmp_path / "training.png").exists()
