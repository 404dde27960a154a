"""Edit sets and edits through the Python API, on the tiny model trained once per session."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import behemoth
from behemoth import Dataset, EditResult, EditSet, Model

# 20 epochs: the default mix is scaled to the tiny dataset (about 13 copies of the edit, not 250).
LORA = dict(method="lora", rank=32, alpha=32, optimizer={"learning_rate": 0.001, "epochs": 20})


def last_block(m: Model) -> int:
    return m.config["layers"] - 1


def weights(m: Model) -> dict:
    return {name: m.tensor(name) for name in m.tensors()}


@pytest.fixture(scope="module")
def single(tiny):
    with EditSet(tiny, kind="single", relation=0, seed=3) as es:
        yield es


@pytest.fixture(scope="module")
def lora_edit(trained, single):
    """(model before, model after, result) of one LoRA edit on the last block's MLP."""
    before = weights(trained)
    m = trained.clone()
    res = m.edit(single, layers={"blocks": [last_block(m)], "sublayers": "mlp"}, progress=False, **LORA)
    yield before, m, res
    res.close()
    m.close()


# ---- edit sets ----------------------------------------------------------------------------------

def test_editset_contents(tiny, single):
    info = single.info
    assert info["spec"]["kind"] == "single" and info["spec"]["repeats"] == 250   # defaults filled in
    assert info["spec"]["absolute_counts"] is False
    edits = single.edits
    assert edits.shape == (1, 4) and edits.dtype == np.int32 and len(single) == 1
    subject, relation, old, new = edits[0]
    assert relation == 0 and old != new
    assert single.groups[:2] == ["edited", "edited_original"] and "remaining" in single.groups
    # The tiny dataset cannot supply the official counts: every part is scaled, and the info says so.
    mix = single.mix
    assert 0 < mix["scale"] < 1 and "scaled by" in single.warnings[0]
    for name, part in mix["parts"].items():
        assert part["requested"] == {"edited": 250, "with_same_value": 150, "with_same_rel": 500, "regularization": 250}[name]
        assert part["scaled"] == int(mix["scale"] * part["requested"])
        assert part["obtained"] == single.training_counts[name]
    assert single.training_counts["edited"] == mix["parts"]["edited"]["scaled"] < 250
    tokens, offsets = single.tokens, single.offsets
    assert tokens.dtype == np.int32 and offsets.dtype == np.int64
    assert offsets[0] == 0 and offsets[-1] == tokens.size
    assert offsets.size - 1 == info["training_sequences"] == sum(single.training_counts.values())
    assert len(single.sequences()) == offsets.size - 1

    g = single.group("edited")
    assert set(g) == {"prompts", "targets", "facts", "relations", "alternatives"}
    assert len(g["prompts"]) == g["targets"].size == g["facts"].size == g["relations"].size == 1
    fact = tiny.facts[g["facts"][0]]
    assert fact[0] == subject and fact[1] == relation
    orig = single.group("edited_original")
    assert orig["targets"][0] != g["targets"][0]                   # old vs new object
    assert g["alternatives"] is not None and g["alternatives"][0] == orig["targets"][0]
    rem = single.group("remaining")
    assert len(rem["prompts"]) == info["groups"]["remaining"] > 0
    assert all(p.dtype == np.int32 and p.ndim == 1 for p in rem["prompts"])
    with pytest.raises(KeyError, match="no group"):
        single.group("nope")
    with pytest.raises(behemoth.InvalidArgumentError):
        single.array("no/such/array")
    assert "single" in repr(single)


def test_editset_kinds_and_fingerprint(tiny):
    with EditSet(tiny, kind="diverse", count=3, relation=1) as d:
        e = d.edits
        assert e.shape == (3, 4) and (e[:, 1] == 1).all() and len(set(e[:, 3])) == 3
        fp = d.fingerprint
        assert fp
    with EditSet(tiny, {"kind": "forget_relation", "relation": 2}, forget_fraction=0.5) as f:
        assert "forgotten" in f.groups and f.spec["forget_fraction"] == 0.5
    with EditSet(tiny, dataset_fingerprint=fp, subjects=[5]) as pinned:
        assert pinned.edits[0, 0] == 5
    with Dataset.generate(preset="tiny", seed=9) as other:
        with pytest.raises(behemoth.InvalidArgumentError, match="fingerprint"):
            EditSet(other, dataset_fingerprint=fp)


@pytest.mark.parametrize("spec, needle", [
    ({"relation": 99}, "relation"),
    ({"kind": "diverse", "count": 1000}, "count"),
    ({"kind": "identical", "count": 65}, "count"),
    ({"subjects": [10**6]}, "subjects"),
    ({"kind": "no_such_kind"}, "kind"),
    ({"no_such_key": 1}, "no_such_key"),
])
def test_editset_errors(tiny, spec, needle):
    with pytest.raises(behemoth.InvalidArgumentError, match=needle):
        EditSet(tiny, **spec)


def test_editset_absolute_counts(tiny):
    with EditSet(tiny, kind="single", seed=3, absolute_counts=True) as es:
        assert es.spec["absolute_counts"] is True and es.mix["scale"] == 1
        assert es.training_counts["edited"] == 250
        regularization = es.mix["parts"]["regularization"]
        assert regularization["requested"] == 250 and regularization["obtained"] < 250
        assert any(w.startswith(f"regularization: {regularization['obtained']} of the 250 ") for w in es.warnings)


def test_editset_needs_a_dataset():
    with pytest.raises(TypeError):
        EditSet("tiny")


# ---- one LoRA edit --------------------------------------------------------------------------------

def test_lora_single_edit_metrics(lora_edit):
    _, m, res = lora_edit
    assert isinstance(res, EditResult)
    metrics = res.metrics
    assert metrics["edit_success"] == 1.0 and metrics["edit_success_before"] == 0.0
    assert metrics["remaining_accuracy"] >= metrics["remaining_accuracy_before"] - 0.05
    assert metrics["remaining_accuracy_before"] == 1.0
    assert set(res.definitions) == set(metrics) and "NEW object" in res.definitions["edit_success"]
    r = res.report
    assert r["method"]["rank"] == 32 and r["method"]["alpha"] == 32 and r["method"]["mode"] == "batch"
    assert r["method"]["optimizer"]["learning_rate"] == 0.001 and r["method"]["optimizer"]["epochs"] == 20
    assert r["method"]["layers"]["blocks"] == [last_block(m)]
    assert r["edit_set"]["spec"]["kind"] == "single"
    assert r["edit_set"]["mix"]["parts"]["edited"]["obtained"] == r["edit_set"]["training"]["edited"]
    assert res.warnings and res.warnings == r["edit_set"]["mix"]["warnings"]
    assert r["steps"] == len(res.step_reports) > 0
    assert set(r["before"]) == set(r["after"]) >= {"edited", "remaining"}
    assert "EditResult" in repr(res)


def test_lora_edit_changes_only_the_selected_tensors(lora_edit):
    before, m, res = lora_edit
    trained = set(res.trained_tensors)
    b = last_block(m)
    assert trained == {f"gpt_neox.layers.{b}.mlp.dense_h_to_4h.weight", f"gpt_neox.layers.{b}.mlp.dense_4h_to_h.weight"}
    after = weights(m)
    for name, w in before.items():
        if name in trained:
            assert not np.array_equal(after[name], w), name
            np.testing.assert_allclose(after[name] - w, res.deltas[name], atol=1e-5)
        else:
            assert np.array_equal(after[name], w), f"{name} changed but was frozen"


def test_lora_deltas_low_rank(lora_edit, trained):
    _, m, res = lora_edit
    assert set(res.deltas) == set(res.trained_tensors) and len(res.deltas) == 2
    for name, d in res.deltas.items():
        assert d.dtype == np.float32 and d.shape == trained.tensors()[name]
        s = np.linalg.svd(d.astype(np.float64), compute_uv=False)
        rank = int((s > s[0] * 1e-5).sum())
        assert 1 <= rank <= 32, (name, rank)
    assert res.deltas[res.trained_tensors[0]] is res.deltas[res.trained_tensors[0]]  # fetched once
    with pytest.raises(KeyError, match="not trained"):
        res.deltas["gpt_neox.embed_in.weight"]


def test_edit_result_save_and_frame(lora_edit, tmp_path):
    _, m, res = lora_edit
    path = tmp_path / "edit.h5"
    res.save(path)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] in ("behemoth.edit", b"behemoth.edit")
        names = []
        f["deltas"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert sorted(names) == sorted(res.trained_tensors)
        for n in names:
            assert np.array_equal(f["deltas"][n][()], res.deltas[n])
        assert "lora" in f
        edited = f["groups/edited"]
        assert edited["correct_before"][()].tolist() == [0] and edited["correct_after"][()].tolist() == [1]
        assert "remaining" in f["groups"]
        assert json.loads(f.attrs["report"])["metrics"]["edit_success"]["value"] == 1.0
    frame = res.to_frame()
    try:
        import pandas  # noqa: F401
        rows = frame.to_dict("records")
        assert list(frame.columns) == ["name", "value", "definition"]
    except ImportError:
        rows = frame
    assert {r["name"]: r["value"] for r in rows} == res.metrics


def test_forgetting_success_over_changed_subjects(trained, tiny, tmp_path):
    with EditSet(tiny, kind="forget_relation", relation=1, forget_fraction=1.0) as es:
        m = trained.clone()
        res = m.edit(es, method="full", optimizer={"learning_rate": 1e-3, "epochs": 3}, progress=False)
        g = es.group("forgotten")
        changed = g["targets"] != g["alternatives"]          # old object != forced object 0
        holders = sum(1 for s, r, o in tiny.facts[:, :3] if r == 1 and o == 0)
        assert 0 < holders and res.metrics["forgetting_changed_subjects"] == changed.sum() == len(changed) - holders
        res.save(tmp_path / "forget.h5")
        with h5py.File(tmp_path / "forget.h5", "r") as f:
            predicted = f["groups/forgotten/predicted_after"][()]
        assert res.metrics["forgetting_success_changed"] == pytest.approx((predicted == g["targets"])[changed].mean())
        assert res.metrics["forgetting_success"] == pytest.approx((predicted == g["targets"]).mean())
        assert res.metrics["forgetting_success_changed_before"] == 0       # the model knew every fact
        assert "changed" in res.definitions["forgetting_success_changed"]
        m.close()


def test_result_close_and_context(trained, single):
    m = trained.clone()
    with m.edit(single, layers={"blocks": [0], "sublayers": "attention"}, progress=False, **LORA) as res:
        assert res.metrics["edit_success"] in (0.0, 1.0)
        names = res.trained_tensors
        assert all("attention" in n and ".layers.0." in n for n in names)
    assert res.closed
    with pytest.raises(behemoth.MisuseError):
        res.save("/tmp/never.h5")
    with pytest.raises(behemoth.MisuseError):
        res.deltas[names[0]]
    assert res.metrics  # the report stays readable
    m.close()


def test_full_finetune_and_modes(trained, tiny):
    with EditSet(tiny, kind="diverse", count=2, relation=1, repeats=50, same_relation_per_edit=20) as es:
        m = trained.clone()
        res = m.edit(es, method="full", mode="sequential", layers={"blocks": [last_block(m)], "sublayers": "mlp"},
                     optimizer={"learning_rate": 0.001, "epochs": 3}, progress=False)
        assert res.report["method"]["method"] == "full" and res.report["method"]["mode"] == "sequential"
        assert any(n.endswith(".bias") for n in res.trained_tensors)        # biases too, by default
        assert "rank" not in res.report["method"]
        res.close()
        seen = []
        m2 = trained.clone()
        before = weights(m2)
        res2 = m2.edit(es, mode="one_at_a_time", layers={"blocks": [last_block(m2)], "sublayers": "mlp"},
                       progress=False, callback=seen.append, **LORA)
        assert seen and len(res2.report["per_edit"]) == 2
        after = weights(m2)
        assert all(np.array_equal(before[n], after[n]) for n in before)   # restored afterwards
        res2.close()
        m.close()
        m2.close()


def test_callback_stops_edit_early_and_still_reports(trained, single):
    m = trained.clone()
    res = m.edit(single, layers={"blocks": [1], "sublayers": "mlp"}, progress=False,
                 callback=lambda r: r["step"] < 3, **LORA)
    assert res.report["stopped_early"] is True
    assert res.report["steps"] == 3
    assert "edit_success" in res.metrics
    res.close()
    m.close()


def test_edit_progress_bar(trained, single, capsys):
    pytest.importorskip("tqdm")
    m = trained.clone()
    m.edit(single, layers={"blocks": [1], "sublayers": "mlp"}, progress=True, **LORA).close()
    err = capsys.readouterr().err
    assert "editing" in err and "loss=" in err
    m.close()


@pytest.mark.parametrize("method, needle", [
    ({"layers": {"blocks": [9]}}, "blocks"),
    ({"rank": 0}, "rank"),
    ({"method": "nope"}, "method"),
    ({"layers": {"blocks": [1], "sublayers": "bogus"}}, "sublayers"),
    ({"optimizer": {"learning_rate": float("nan")}}, "learning_rate"),
    ({"optimizer": {"learning_rate": -1.0}}, "learning_rate"),
    ({"no_such_key": 1}, "no_such_key"),
])
def test_bad_edit_method_leaves_model_unchanged(trained, single, method, needle):
    m = trained.clone()
    before = weights(m)
    with pytest.raises(behemoth.InvalidArgumentError, match=needle):
        m.edit(single, progress=False, **method)
    after = weights(m)
    assert all(np.array_equal(before[n], after[n]) for n in before)
    m.close()


def test_editset_of_a_larger_dataset(trained):
    with Dataset.generate(preset="tiny", subjects=200) as big, EditSet(big, subjects=[150]) as es:
        assert big.info["counts"]["vocab_size"] > trained.vocab_size
        m = trained.clone()
        before = weights(m)
        with pytest.raises(behemoth.InvalidArgumentError, match="different dataset"):
            m.edit(es, progress=False, **LORA)
        assert all(np.array_equal(before[n], m.tensor(n)) for n in before)
        m.close()


def test_edit_argument_types(trained, tiny, single):
    with pytest.raises(TypeError):
        trained.edit(tiny)            # a dataset is not an edit set
    with pytest.raises(TypeError):
        EditResult()


def test_edit_spec_dict_is_not_overridden_by_unset_arguments(trained, single):
    """`spec=` alone decides: the keyword arguments left at None must not put LoRA on every block."""
    m = trained.clone()
    spec = {"method": "full", "layers": {"blocks": [last_block(m)], "sublayers": "mlp"},
            "optimizer": {"learning_rate": 0.001, "epochs": 1}}
    res = m.edit(single, spec=spec, progress=False)
    assert res.report["method"]["method"] == "full"
    assert all(f".layers.{last_block(m)}.mlp." in n for n in res.trained_tensors), res.trained_tensors
    res.close()
    res = m.edit(single, spec=spec, method="lora", rank=4, progress=False)   # given arguments still win
    assert res.report["method"]["method"] == "lora" and res.report["method"]["rank"] == 4
    res.close()
    m.close()


def test_a_registered_demonstration_editor_runs_through_python(trained, single, tmp_path):
    """fixed_rank_one is one file in the engine plus a registry line: nothing in the binding knows it."""
    m = trained.clone()
    res = m.edit(single, method="fixed_rank_one", scale=0.25, seed=2, layers={"blocks": [0], "sublayers": "mlp"}, progress=False)
    assert res.report["method"]["method"] == "fixed_rank_one" and res.report["method"]["scale"] == 0.25
    assert res.report["steps"] == 1
    for name in res.trained_tensors:
        d = res.deltas[name]
        assert abs(np.linalg.norm(d) - 0.25) < 1e-4
        assert np.linalg.matrix_rank(d, tol=1e-6) == 1
    res.save(tmp_path / "rank_one.h5")
    assert behemoth.verify_file(tmp_path / "rank_one.h5")["attributes"]["spec"]["method"] == "fixed_rank_one"
    res.close()
    with pytest.raises(behemoth.InvalidArgumentError, match='registered: "full", "lora", "fixed_rank_one", "rome", "memit", "alphaedit"'):
        m.edit(single, method="nope", progress=False)
    m.close()


def test_rome_edits_through_python(trained, single, tmp_path):
    """ROME: one rank-one update of the chosen block's dense_4h_to_h that writes v* at k*; the
    report's editor entry traces v*; u, v*, k* are EditResult.vectors and in the saved file."""
    h5py = pytest.importorskip("h5py")
    m = trained.clone()
    res = m.edit(single, method="rome", layers={"blocks": [1]}, fact_token="last", progress=False)
    name = "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"
    assert res.trained_tensors == [name]
    d = res.deltas[name]
    s = np.linalg.svd(d, compute_uv=False)
    assert s[1] < 1e-5 * s[0]
    v = res.vectors
    assert set(v) == {"edit0/block1/u", "edit0/block1/v_star", "edit0/block1/k_star"}
    w, b = m.tensor(name), m.tensor("gpt_neox.layers.1.mlp.dense_4h_to_h.bias")
    out = w @ v["edit0/block1/k_star"] + b
    assert np.allclose(out, v["edit0/block1/v_star"], rtol=1e-4, atol=1e-4)
    upd = res.report["editor"][0]["updates"][0]
    assert upd["update_rank"] == 1 and len(upd["loss"]) == upd["v_iterations"]
    assert res.metrics["edit_success"] == 1.0
    res.save(tmp_path / "rome.h5")
    with h5py.File(tmp_path / "rome.h5", "r") as f:
        assert np.array_equal(f["editor/edit0/block1/u"][()], v["edit0/block1/u"])
    res.close()
    m.close()


@pytest.mark.parametrize("method", ["memit", "alphaedit"])
def test_batch_locate_editors_through_python(trained, tiny, method):
    """MEMIT and AlphaEdit from Python: several edits at once and in sequence, only the chosen
    blocks' dense_4h_to_h change, the report gives each z's trace and each block's update, each z is a
    vector, and a sequential run reports how the earlier edits fared after the later ones."""
    with EditSet(tiny, kind="diverse", count=3, seed=6) as es:
        for mode in ["batch", "sequential"]:
            m = trained.clone()
            extra = {"preserved": "training_facts", "nullspace_threshold": 1e-9, "l2": 0.001} if method == "alphaedit" else {}
            res = m.edit(es, method=method, mode=mode, fact_token="last", layers={"blocks": [1]}, progress=False, **extra)
            assert res.trained_tensors == ["gpt_neox.layers.1.mlp.dense_4h_to_h.weight"]
            runs = res.report["editor"]
            assert len(runs) == (1 if mode == "batch" else 3)
            assert runs[0]["method"] == method and runs[0]["updates"][0]["block"] == 1
            if method == "memit":
                assert runs[0]["covariance_weight"] == pytest.approx(15000 * 256 / 16384)
                assert runs[0]["covariance_weight_from"] == "15000 × intermediate / 16384"
            assert any(k.endswith("z") for k in res.vectors)
            metrics = res.metrics
            assert metrics["edit_success"] > 0
            if method == "alphaedit":
                # the exact null space of the other facts' keys at the last block and token: no other answer moves
                assert metrics["remaining_accuracy"] == metrics["remaining_accuracy_before"]
            if mode == "sequential":
                assert 0 <= metrics["sequential_retention"] <= 1 and "edit_success_right_after" in metrics
            else:
                assert "sequential_retention" not in metrics
            res.close()
            m.close()


def test_edit_reports_echo_the_optimizer_betas(trained, single):
    m = trained.clone()
    res = m.edit(single, method="lora", rank=4, layers={"blocks": [1], "sublayers": "mlp"},
                 optimizer={"epochs": 1, "beta2": 0.99}, progress=False)
    opt = res.report["method"]["optimizer"]
    assert (opt["beta1"], opt["beta2"], opt["eps"]) == (0.9, 0.99, 1e-8)
    res.close()
    m.close()


def test_adapters_as_values(trained, single, tiny, tmp_path):
    """An unmerged LoRA edit leaves the model and hands back an Adapter: saved, loaded, applied
    merged or as a side path, removed; another model shape is refused naming the tensor."""
    m = trained.clone()
    before = m.tensor("gpt_neox.layers.1.mlp.dense_4h_to_h.weight")
    res = m.edit(single, method="lora", rank=8, alpha=16, merge=False, layers={"blocks": [1], "sublayers": "mlp"},
                 optimizer={"learning_rate": 0.001, "epochs": 3}, progress=False)
    assert np.array_equal(m.tensor("gpt_neox.layers.1.mlp.dense_4h_to_h.weight"), before)
    a = res.adapter
    assert a.info["rank"] == 8 and [t["matrix"] for t in a.info["targets"]] == ["dense_h_to_4h", "dense_4h_to_h"]
    a.save(tmp_path / "a.h5")
    assert behemoth.verify_file(tmp_path / "a.h5")["format"] == "behemoth.adapter"
    b = behemoth.Adapter.load(tmp_path / "a.h5")
    tokens = tiny.sentence(0)[None, :8].astype(np.int32)
    plain = m.logits(tokens)
    b.apply(m, merge=False)                       # side path: weights unchanged, outputs changed
    assert np.array_equal(m.tensor("gpt_neox.layers.1.mlp.dense_4h_to_h.weight"), before)
    side = m.logits(tokens)
    assert not np.allclose(side, plain)
    # the adapter's digest is its file's; with it beside the weights, info and evaluation name it
    assert a.digest == b.digest == behemoth.verify_file(tmp_path / "a.h5")["digest"]
    assert m.info["side_path_adapter_digest"] == a.digest
    assert m.evaluate(tiny, groups="sro")["side_path_adapter_digest"] == a.digest
    with pytest.raises(behemoth.MisuseError):
        b.apply(m, merge=False)
    b.remove(m)
    assert np.array_equal(m.logits(tokens), plain)
    assert m.info["side_path_adapter_digest"] is None
    b.apply(m, merge=True)                        # merged: the same function as the side path
    assert np.allclose(m.logits(tokens), side, atol=1e-4)
    b.remove(m)
    assert np.allclose(m.tensor("gpt_neox.layers.1.mlp.dense_4h_to_h.weight"), before, atol=1e-6)
    other = Model.create(dataset=tiny, preset="tiny", intermediate=128)
    with pytest.raises(behemoth.InvalidArgumentError, match="dense_h_to_4h"):
        b.apply(other)
    full = m.edit(single, method="full", layers={"blocks": [1], "sublayers": "mlp"}, optimizer={"epochs": 1}, progress=False)
    with pytest.raises(behemoth.InvalidArgumentError, match="no adapters"):
        full.adapter
    for x in (a, b, res, full, other, m):
        x.close()


def test_adapter_from_factors(trained, single, tiny):
    """Adapter.create (bh_adapter_create + bh_adapter_set_factor) copies an edit's adapter exactly:
    the same factors, digest and outputs; bad factors are refused; once applied, they are fixed."""
    m = trained.clone()
    res = m.edit(single, method="lora", rank=4, alpha=8, merge=False, layers={"blocks": [1], "sublayers": "mlp"},
                 optimizer={"learning_rate": 0.001, "epochs": 2}, progress=False)
    a = res.adapter
    factors = a.factors()
    name = "gpt_neox.layers.1.mlp.dense_4h_to_h.weight"
    assert list(factors) == a.targets and factors[name][0].shape == (4, 256) and factors[name][1].shape == (64, 4)
    assert (a.rank, a.alpha) == (4, 8.0)
    b = behemoth.Adapter.create(4, 8, factors)
    assert b.digest == a.digest and b.info["targets"] == a.info["targets"]
    assert np.array_equal(b.factor(name, "B"), factors[name][1])
    tokens = tiny.sentence(0)[None, :8].astype(np.int32)
    a.apply(m, merge=False)
    want = m.logits(tokens)
    a.remove(m)
    b.apply(m, merge=False)
    assert np.array_equal(m.logits(tokens), want)
    with pytest.raises(behemoth.MisuseError, match="applied"):
        b.set_factor(name, "A", factors[name][0])
    b.remove(m)
    zero = behemoth.Adapter.create(2, 1.0, {name: (np.zeros((2, 256)), np.zeros((64, 2)))})
    zero.set_factor(name, "B", np.ones((64, 2)))
    assert zero.digest != behemoth.Adapter.create(2, 1.0, {name: (np.zeros((2, 256)), np.zeros((64, 2)))}).digest
    with pytest.raises(ValueError, match="shape"):
        zero.set_factor(name, "A", np.zeros((2, 255)))
    with pytest.raises(behemoth.InvalidArgumentError, match="finite"):
        zero.set_factor(name, "A", np.full((2, 256), np.nan))
    with pytest.raises(behemoth.InvalidArgumentError, match="no target"):
        zero.factor("gpt_neox.layers.0.mlp.dense_4h_to_h.weight", "A")
    with pytest.raises(behemoth.InvalidArgumentError, match="rank"):
        behemoth.Adapter.create(0, 1.0, {name: (np.zeros((0, 256)), np.zeros((64, 0)))})
    with pytest.raises(behemoth.InvalidArgumentError, match="attention or MLP"):
        behemoth.Adapter.create(2, 1.0, {"gpt_neox.embed_in.weight": (np.zeros((2, 64)), np.zeros((1407, 2)))})
    with pytest.raises(ValueError, match="rank 2"):
        behemoth.Adapter.create(2, 1.0, {name: (np.zeros((3, 256)), np.zeros((64, 2)))})
    for x in (a, b, zero, res, m):
        x.close()
