"""Model, Trainer, evaluation and capacity search through the Python API (tiny preset)."""
from __future__ import annotations

import json
import shutil
import threading

import h5py
import numpy as np
import pytest
from conftest import TRAIN_SPEC

import behemoth
from behemoth import Dataset, Model, Trainer

SHORT = {"epochs": 6, "batch_size": 32, "learning_rate": 0.003, "min_learning_rate": 0.0003,
         "weight_decay": 0.0, "eval_every_epochs": 2, "warmup_steps": 5}


def batch_of(ds: Dataset, n: int = 6) -> np.ndarray:
    """The first n training sequences, right-padded with 0 into [n, width]."""
    seqs = ds.sequences()[:n]
    out = np.zeros((len(seqs), max(s.size for s in seqs)), np.int32)
    for i, s in enumerate(seqs):
        out[i, :s.size] = s
    return out


def assert_same_weights(a: Model, b: Model):
    assert a.tensors() == b.tensors()
    for name in a.tensors():
        assert np.array_equal(a.tensor(name), b.tensor(name)), name


# ---- creation and description -------------------------------------------------------------------

def test_create_info_tensors(tiny):
    with Model.create(dataset=tiny, preset="tiny") as m:
        info = m.info
        assert info["config"]["vocab_size"] == tiny.info["counts"]["vocab_size"]
        assert m.config == info["config"] and m.config["preset"] == "tiny"
        assert info["parameters"] == m.num_parameters == sum(int(np.prod(s)) for s in m.tensors().values())
        t = m.tensors()
        c = m.config
        assert t["gpt_neox.embed_in.weight"] == (c["vocab_size"], c["hidden"])
        assert t["embed_out.weight"] == (c["vocab_size"], c["hidden"])
        assert t["gpt_neox.layers.0.attention.query_key_value.weight"] == (3 * c["hidden"], c["hidden"])
        w = m.tensor("gpt_neox.layers.1.mlp.dense_4h_to_h.weight")
        assert w.dtype == np.float32 and w.shape == (c["hidden"], c["intermediate"]) and w.std() > 0
        assert m.tensor("gpt_neox.final_layer_norm.weight").shape == (c["hidden"],)
        with pytest.raises(behemoth.InvalidArgumentError, match="no tensor"):
            m.tensor("no.such.tensor")
        assert info["history"]["steps"] == 0
        assert "tiny" in repr(m)


def test_create_variants(tiny):
    with Model.create(preset="tiny", vocab_size=50) as a, Model.create({"preset": "tiny", "vocab_size": 50}) as b, \
            Model.create(dataset=tiny, config={"preset": "tiny"}, layers=3) as c:
        assert a.vocab_size == b.vocab_size == 50
        assert_same_weights(a, b)  # seeded initialisation
        assert c.config["layers"] == 3 and c.vocab_size == tiny.info["counts"]["vocab_size"]
    with pytest.raises(TypeError):
        Model()
    with pytest.raises(TypeError):
        Model.create(dataset="not a dataset", config={"preset": "tiny"})


@pytest.mark.parametrize("overrides, needle", [
    ({"hidden": 65}, "hidden"),
    ({"layers": 0}, "layers"),
    ({"vocab_size": 10}, "vocab"),
    ({"no_such_key": 1}, "no_such_key"),
    ({"heads": -1}, "heads"),
])
def test_create_errors(tiny, overrides, needle):
    with pytest.raises(behemoth.InvalidArgumentError, match=needle):
        Model.create(dataset=tiny, preset="tiny", **overrides)


def test_create_without_vocabulary():
    with pytest.raises(behemoth.InvalidArgumentError, match="vocab_size"):
        Model.create(preset="tiny")


def test_closed_model_is_misuse(tiny):
    m = Model.create(dataset=tiny, preset="tiny")
    m.close()
    m.close()
    for call in (lambda: m.info, lambda: m.logits([[1, 2]]), lambda: m.clone(), lambda: Trainer(m, tiny, epochs=1)):
        with pytest.raises(behemoth.MisuseError):
            call()
    assert "closed" in repr(m)


# ---- inference ------------------------------------------------------------------------------------

def test_logits_and_predict(trained, tiny):
    tokens = batch_of(tiny)
    logits = trained.logits(tokens)
    assert logits.shape == tokens.shape + (trained.vocab_size,) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    # one row alone gives the same numbers (causal attention, right padding)
    row = trained.logits(tokens[2])
    assert row.shape == (tokens.shape[1], trained.vocab_size)
    np.testing.assert_allclose(row, logits[2], rtol=1e-5, atol=1e-5)
    # python lists work too
    np.testing.assert_allclose(trained.logits(tokens.tolist()), logits, rtol=1e-6, atol=1e-6)

    sro = tiny.eval_group("sro")
    prompts, targets = sro.prompts[:20], sro.targets[:20]
    pred = trained.predict(prompts)
    assert pred.dtype == np.int32 and np.array_equal(pred, targets)  # the trained model is perfect
    flat = np.concatenate(prompts)
    offsets = np.cumsum([0] + [p.size for p in prompts])
    assert np.array_equal(trained.predict((flat, offsets)), pred)
    assert np.array_equal(trained.predict(flat, offsets=offsets[:-1]), pred)   # starts only
    assert trained.predict([]).shape == (0,)
    # the greedy prediction is the argmax of the last position's logits
    last = trained.logits(prompts[0])[-1]
    assert pred[0] == int(np.argmax(last))


def test_logits_errors(trained):
    with pytest.raises(behemoth.InvalidArgumentError, match="outside the vocabulary"):
        trained.logits([[1, 2, trained.vocab_size]])
    with pytest.raises(behemoth.InvalidArgumentError, match="outside the vocabulary"):
        trained.logits([[1, -1]])
    with pytest.raises(behemoth.InvalidArgumentError):
        trained.logits([[1, 2**40]])
    with pytest.raises(behemoth.InvalidArgumentError):
        trained.logits(np.zeros((0, 3), np.int32))
    with pytest.raises(behemoth.InvalidArgumentError, match="max_positions"):
        trained.logits(np.zeros((1, trained.config["max_positions"] + 1), np.int32))
    with pytest.raises(TypeError):
        trained.logits([[0.5, 1.5]])
    with pytest.raises(ValueError):
        trained.logits(np.zeros((1, 2, 3), np.int32))
    with pytest.raises(behemoth.InvalidArgumentError, match="outside the vocabulary"):
        trained.predict([[1, 2], [3, 99999]])
    with pytest.raises(behemoth.InvalidArgumentError):
        trained.predict([[1, 2], []])
    with pytest.raises(ValueError, match="list"):
        trained.predict(np.array([1, 2, 3]))


def test_threads_share_a_model(trained, tiny):
    tokens = batch_of(tiny)
    expected = trained.logits(tokens)
    errors = []

    def work():
        try:
            for _ in range(5):
                assert np.array_equal(trained.logits(tokens), expected)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ---- training and evaluation --------------------------------------------------------------------

def test_train_reaches_full_accuracy(trained_run, tiny):
    m, report = trained_run
    assert report["finished"] is True
    assert report["steps"] == report["total_steps"] > 0
    assert report["final_accuracy"] == {"sro": 1.0}
    for k, v in TRAIN_SPEC.items():
        assert report["spec"][k] == v, k                 # the spec echoed ...
    assert report["spec"]["beta2"] == 0.95               # ... with defaults filled in
    assert report["model"] == m.config
    assert report["training_tokens_per_second"] > 0
    history = m.info["history"]
    assert history["steps"] == report["steps"] and history["final_accuracy"] == [1.0]
    assert history["eval_groups"] == ["sro"] and history["evaluations"] >= 6


def test_evaluate(trained, tiny):
    r = trained.evaluate(tiny)
    assert r["groups"]["sro"]["accuracy"] == 1.0
    assert set(r["groups"]) == set(tiny.eval_groups)
    assert r["spec"]["batch_size"] == 256
    r2 = trained.evaluate(tiny, groups="sro", batch_size=7)
    assert list(r2["groups"]) == ["sro"] and r2["spec"] == {"groups": ["sro"], "batch_size": 7}
    assert r2["groups"]["sro"]["mean_target_probability"] == pytest.approx(r["groups"]["sro"]["mean_target_probability"], rel=1e-5)
    g = trained.evaluate_group(tiny, "sro")
    n = len(tiny.eval_group("sro"))
    assert set(g) == {"predicted", "correct", "target_probability", "target_rank"}
    assert g["correct"].dtype == bool and g["correct"].shape == (n,) and g["correct"].all()
    assert np.array_equal(g["predicted"], tiny.eval_group("sro").targets)
    assert (g["target_rank"] == 1).all() and (g["target_probability"] > 0.5).all()
    with pytest.raises(behemoth.InvalidArgumentError):
        trained.evaluate(tiny, groups=["no_such_group"])
    with pytest.raises(behemoth.InvalidArgumentError):
        trained.evaluate_group(tiny, "no_such_group")
    with pytest.raises(behemoth.InvalidArgumentError):
        trained.evaluate(tiny, batch_size=0)


def test_save_load_identical(trained, tiny, tmp_path):
    path = tmp_path / "m.h5"
    trained.save(path)
    tokens = batch_of(tiny)
    with Model.load(path) as again, trained.clone() as copy:
        assert again.config == trained.config
        assert np.array_equal(again.logits(tokens), trained.logits(tokens))
        assert_same_weights(again, trained)
        assert np.array_equal(copy.logits(tokens), trained.logits(tokens))
        assert again.info["history"]["steps"] == trained.info["history"]["steps"]
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] in ("behemoth.model", b"behemoth.model")
        assert json.loads(f.attrs["spec"])["hidden"] == trained.config["hidden"]
        w = f["weights/gpt_neox.layers.0.mlp.dense_h_to_4h.weight"][()]
        assert np.array_equal(w, trained.tensor("gpt_neox.layers.0.mlp.dense_h_to_4h.weight"))


def test_load_errors(trained, tiny_file, tmp_path):
    with pytest.raises(behemoth.FormatError, match="behemoth.dataset"):
        Model.load(tiny_file)
    with pytest.raises(behemoth.FileIOError):
        Model.load(tmp_path / "missing.h5")
    # a file whose tensor shapes do not match its config
    good = tmp_path / "good.h5"
    trained.save(good)
    bad = tmp_path / "bad.h5"
    shutil.copy(good, bad)
    name = "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"
    with h5py.File(bad, "r+") as f:
        del f[f"weights/{name}"]
        f[f"weights/{name}"] = np.zeros((3, 5), np.float32)
    with pytest.raises(behemoth.FormatError, match=name):
        Model.load(bad)
    with pytest.raises(behemoth.InvalidArgumentError):
        Model.load("")


@pytest.mark.parametrize("bad, needle", [
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"learning_rate": float("inf")}, "learning_rate"),
    ({"epochs": 0}, "epochs"),
    ({"no_such_key": 1}, "no_such_key"),
    ({"batch_size": "big"}, "batch_size"),
    ({"eval_groups": ["no_such_group"]}, "no_such_group"),
])
def test_train_spec_errors(tiny, bad, needle):
    with Model.create(dataset=tiny, preset="tiny") as m:
        before = m.tensor("gpt_neox.embed_in.weight")
        with pytest.raises(behemoth.InvalidArgumentError, match=needle):
            m.train(tiny, progress=False, **bad)
        assert np.array_equal(m.tensor("gpt_neox.embed_in.weight"), before)


def test_nan_in_raw_json_is_refused(tiny):
    with Model.create(dataset=tiny, preset="tiny") as m:
        with pytest.raises(behemoth.InvalidArgumentError):
            Trainer(m, tiny, '{"learning_rate": NaN}')
        with pytest.raises(behemoth.InvalidArgumentError):
            Trainer(m, tiny, '{"learning_rate": 1e400}')


def test_train_on_too_large_dataset(tiny):
    with Model.create(preset="tiny", vocab_size=50) as m:
        with pytest.raises(behemoth.InvalidArgumentError, match="vocab"):
            m.train(tiny, epochs=1, progress=False)


def test_trainer_steps_iteration_and_callback(tiny):
    with Model.create(dataset=tiny, preset="tiny") as m, Trainer(m, tiny, **SHORT) as t:
        first = t.step()
        assert first["step"] == 1 and first["total_steps"] == t.total_steps > 1
        assert set(first) >= {"loss", "learning_rate", "grad_norm", "tokens_per_second", "evaluated", "accuracy"}
        rest = list(t)
        assert len(rest) == t.total_steps - 1 and rest[-1]["step"] == t.total_steps
        assert any(r["evaluated"] for r in rest) and rest[-1]["evaluated"]
        assert t.done and t.step() is None and t.step() is None
        end = t.end()
        assert end["finished"] and end["steps"] == t.total_steps
        assert t.end()["steps"] == end["steps"]          # end may be called again
        assert "Trainer" in repr(t)

    seen = []
    with Model.create(dataset=tiny, preset="tiny") as m:
        report = m.train(tiny, progress=False, callback=lambda r: seen.append(r["step"]) or r["step"] < 4, **SHORT)
        assert seen == [1, 2, 3, 4]
        assert report["steps"] == 4 and report["finished"] is False
        assert m.info["history"]["steps"] == 4


def test_train_progress_bar(tiny, capsys):
    pytest.importorskip("tqdm")
    with Model.create(dataset=tiny, preset="tiny") as m:
        report = m.train(tiny, progress=True, epochs=2, batch_size=32, eval_every_epochs=1)
    err = capsys.readouterr().err
    assert report["finished"]
    assert "training" in err and "loss=" in err and "acc=" in err and "tok/s=" in err
    assert f"{report['total_steps']}/{report['total_steps']}" in err


def test_keyboard_interrupt_still_ends(tiny):
    with Model.create(dataset=tiny, preset="tiny") as m, Trainer(m, tiny, **SHORT) as t:
        def interrupt(r):
            if r["step"] == 3:
                raise KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            t.run(progress=False, callback=interrupt)
        assert t.report is not None and t.report["steps"] == 3 and not t.report["finished"]


def test_resume_is_exact(tiny, tmp_path):
    with Model.create(dataset=tiny, preset="tiny") as straight:
        straight.train(tiny, progress=False, **SHORT)
        ck = tmp_path / "ck.h5"
        with Model.create(dataset=tiny, preset="tiny") as first:
            with Trainer(first, tiny, **SHORT) as t:
                for r in t:
                    if r["step"] == 7:
                        break
                t.save(ck)
                assert not t.done
        with Model.create(dataset=tiny, preset="tiny") as resumed:
            with Trainer(resumed, tiny, resume_from=str(ck), **SHORT) as t:
                nxt = t.step()
                assert nxt["step"] == 8
                report = t.run(progress=False)
            assert report["finished"] and report["steps"] == report["total_steps"]
            assert_same_weights(resumed, straight)
        # the checkpoint is also a model file
        with Model.load(ck) as partial:
            assert partial.info["history"]["steps"] == 7
        with Model.create(dataset=tiny, preset="tiny", layers=1) as other:
            with pytest.raises(behemoth.InvalidArgumentError, match="config"):
                Trainer(other, tiny, resume_from=str(ck), **SHORT)
        plain = tmp_path / "plain.h5"
        straight.save(plain)
        with Model.create(dataset=tiny, preset="tiny") as m2:
            with pytest.raises(behemoth.FormatError, match="resumable"):
                Trainer(m2, tiny, resume_from=str(plain), **SHORT)


def test_checkpoint_path_in_spec(tiny, tmp_path):
    ck = tmp_path / "auto.h5"
    with Model.create(dataset=tiny, preset="tiny") as m:
        m.train(tiny, progress=False, checkpoint_path=str(ck), **SHORT)
        with Model.load(ck) as again:
            assert_same_weights(again, m)


# ---- capacity search ------------------------------------------------------------------------------

def test_capacity_search_small():
    training = {"epochs": 60, "batch_size": 8, "learning_rate": 0.005, "min_learning_rate": 0.0005,
                "weight_decay": 0.0, "warmup_steps": 10, "eval_every_epochs": 60}
    r = behemoth.capacity_search(dataset={"preset": "tiny"}, model={"preset": "tiny"}, training=training,
                                 search={"min_subjects": 8, "max_subjects": 32, "max_probes": 3})
    assert 1 <= len(r["probes"]) <= 3
    for p in r["probes"]:
        assert 8 <= p["subjects"] <= 32 and 0 <= p["accuracy"] <= 1 and isinstance(p["passed"], bool)
    assert r["spec"]["min_subjects"] == 8 and r["training"]["epochs"] == 60
    passed = [p["subjects"] for p in r["probes"] if p["passed"]]
    assert r["best_subjects"] == (max(passed) if passed else None)


def test_capacity_search_errors():
    with pytest.raises(behemoth.InvalidArgumentError, match="no_such"):
        behemoth.capacity_search(search={"min_subjects": 8, "max_subjects": 16, "no_such": 1})
    with pytest.raises(behemoth.InvalidArgumentError):
        behemoth.capacity_search(dataset={"preset": "tiny"}, training={"epochs": 0})
    with pytest.raises(behemoth.InvalidArgumentError):
        behemoth.capacity_search(dataset={"preset": "tiny"}, search={"min_subjects": 32, "max_subjects": 8})


def test_set_tensor_changes_the_weights_and_refuses_bad_values(trained):
    from behemoth import InvalidArgumentError
    m = trained.clone()
    name = "gpt_neox.layers.0.mlp.dense_4h_to_h.weight"
    w = m.tensor(name)
    before = m.digest
    m.set_tensor(name, w * 2)
    assert np.array_equal(m.tensor(name), w * 2) and m.digest != before
    m.set_tensor(name, w)
    assert m.digest == before
    with pytest.raises(ValueError, match="shape"):
        m.set_tensor(name, w[:1])
    bad = w.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidArgumentError, match="finite"):
        m.set_tensor(name, bad)
    with pytest.raises(InvalidArgumentError, match="no tensor"):
        m.set_tensor("gpt_neox.layers.99.mlp.dense_4h_to_h.weight", w)
    m.close()
