"""Raw-pointer error paths of the model, trainer, evaluation and edit exports: NULL handles, the wrong
kind of handle, NULL buffers with a capacity, bad sizes and offsets, calls out of order.

Each case runs in a fresh interpreter (conftest.run_isolated): a Swift trap would kill it with a
signal and the test reports that. Every case ends by using the library again, proving the process
and its handles survived."""
from __future__ import annotations

import textwrap

import pytest

SETUP = """
from ctypes import byref, c_int64, c_void_p, cast
def status_of(s, *, expect, contains=None):
    msg = _lib.last_error()
    assert s == expect, f"status {s} (expected {expect}): {msg!r}"
    if s not in (0, 100, 101):
        assert msg, "empty bh_last_error after a failure"
    if contains:
        assert contains in msg, f"{contains!r} not in {msg!r}"
    print("ok", s, msg)
INVALID, MISUSE, TOO_SMALL = 1, 2, 7
ds = behemoth.Dataset.generate(preset="tiny")
m = behemoth.Model.create(dataset=ds, preset="tiny")
es = behemoth.EditSet(ds)
D, M, E = ds._h, m._h, es._h
as_model = lambda p: cast(p, _lib.ModelPtr)
as_dataset = lambda p: cast(p, _lib.DatasetPtr)
as_trainer = lambda p: cast(p, _lib.TrainerPtr)
as_editset = lambda p: cast(p, _lib.EditSetPtr)
as_edit = lambda p: cast(p, _lib.EditPtr)
tokens = np.array([[3, 4, 5, 6]], np.int32)
def still_alive():
    assert m.logits(tokens).shape == (1, 4, m.vocab_size)
    assert ds.facts.shape[1] == 4 and len(es) == 1
    print("ok alive")
"""

CASES = {
    "model_nulls": """
        out = _lib.ModelPtr()
        status_of(lib.bh_model_create(None, D, byref(out)), expect=INVALID, contains="NULL"); assert not out
        status_of(lib.bh_model_create(b'{"preset": "tiny"}', D, None), expect=INVALID)
        status_of(lib.bh_model_load(None, byref(out)), expect=INVALID); assert not out
        status_of(lib.bh_model_load(b"/tmp/x.h5", None), expect=INVALID)
        status_of(lib.bh_model_save(None, b"/tmp/x.h5"), expect=INVALID, contains="NULL")
        status_of(lib.bh_model_save(M, None), expect=INVALID)
        status_of(lib.bh_model_clone(None, byref(out)), expect=INVALID); assert not out
        status_of(lib.bh_model_clone(M, None), expect=INVALID)
        s = c_void_p()
        status_of(lib.bh_model_info(None, byref(s)), expect=INVALID); assert not s.value
        status_of(lib.bh_model_info(M, None), expect=INVALID)
        n = c_int64()
        status_of(lib.bh_model_tensor(None, b"embed_out.weight", None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_model_tensor(M, None, None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_model_tensor(M, b"embed_out.weight", None, 0, None), expect=INVALID)
        status_of(lib.bh_model_tensor(M, b"embed_out.weight", None, 10, byref(n)), expect=INVALID)
        status_of(lib.bh_model_tensor(M, b"embed_out.weight", np.zeros(3, np.float32), 3, byref(n)), expect=TOO_SMALL)
        assert n.value == m.tensors()["embed_out.weight"][0] * m.tensors()["embed_out.weight"][1]
        status_of(lib.bh_model_tensor(M, b"embed_out.weight", np.zeros(3, np.float32), -1, byref(n)), expect=INVALID)
        lib.bh_model_free(None); lib.bh_trainer_free(None); lib.bh_editset_free(None); lib.bh_edit_free(None)
        print("ok frees")
        still_alive()
    """,
    "wrong_kind_handles": """
        n = c_int64(); s = c_void_p()
        status_of(lib.bh_model_info(as_model(D), byref(s)), expect=INVALID, contains="model")
        status_of(lib.bh_model_logits(as_model(E), tokens, 1, 4, None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_model_save(as_model(D), b"/tmp/never.h5"), expect=INVALID)
        out = _lib.ModelPtr()
        status_of(lib.bh_model_create(b'{"preset": "tiny"}', as_dataset(M), byref(out)), expect=INVALID, contains="dataset")
        assert not out
        t = _lib.TrainerPtr()
        status_of(lib.bh_trainer_begin(as_model(D), as_dataset(M), b"{}", byref(t)), expect=INVALID); assert not t
        status_of(lib.bh_trainer_step(as_trainer(M), byref(s)), expect=INVALID, contains="trainer")
        status_of(lib.bh_trainer_save(as_trainer(D), b"/tmp/never.h5"), expect=INVALID)
        status_of(lib.bh_trainer_end(as_trainer(E), byref(s)), expect=INVALID)
        status_of(lib.bh_evaluate(M, as_dataset(E), b"{}", byref(s)), expect=INVALID)
        status_of(lib.bh_evaluate_group(as_model(D), D, b"sro", None, None, None, None, 0, byref(n)), expect=INVALID)
        e = _lib.EditPtr()
        status_of(lib.bh_edit_begin(M, as_editset(D), b"{}", byref(e)), expect=INVALID, contains="edit set"); assert not e
        status_of(lib.bh_edit_step(as_edit(M), byref(s)), expect=INVALID)
        status_of(lib.bh_edit_delta(as_edit(E), b"x", None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_editset_info(as_editset(M), byref(s)), expect=INVALID)
        status_of(lib.bh_editset_array_i32(as_editset(D), b"tokens", None, 0, byref(n)), expect=INVALID)
        out_es = _lib.EditSetPtr()
        status_of(lib.bh_editset_create(as_dataset(M), b"{}", byref(out_es)), expect=INVALID); assert not out_es
        # freeing through the wrong free function leaves the handle alone
        lib.bh_model_free(as_model(D)); lib.bh_trainer_free(as_trainer(M)); lib.bh_edit_free(as_edit(E))
        lib.bh_editset_free(as_editset(M)); lib.bh_dataset_free(as_dataset(E))
        print("ok wrong frees")
        still_alive()
    """,
    "logits_buffers": """
        n = c_int64(-1)
        status_of(lib.bh_model_logits(M, tokens, 1, 4, None, 0, byref(n)), expect=0)
        total = n.value
        assert total == 4 * m.vocab_size
        small = np.zeros(total - 1, np.float32)
        status_of(lib.bh_model_logits(M, tokens, 1, 4, small, small.size, byref(n)), expect=TOO_SMALL)
        assert n.value == total and not small.any()
        status_of(lib.bh_model_logits(M, tokens, 1, 4, None, 100, byref(n)), expect=INVALID)
        status_of(lib.bh_model_logits(M, tokens, 1, 4, small, -5, byref(n)), expect=INVALID)
        status_of(lib.bh_model_logits(M, tokens, 1, 4, None, 0, None), expect=INVALID)
        status_of(lib.bh_model_logits(M, None, 1, 4, None, 0, byref(n)), expect=INVALID, contains="NULL")
        status_of(lib.bh_model_logits(M, tokens, 0, 4, None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_model_logits(M, tokens, -1, 4, None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_model_logits(M, tokens, 1, -4, None, 0, byref(n)), expect=INVALID)
        for rows, width in [(2**62, 4), (2**31, 2000), (2**40, 2**20), (1, 2**62)]:
            s = lib.bh_model_logits(M, tokens, rows, width, None, 0, byref(n))
            assert s == INVALID, (rows, width, s)
        print("ok overflow")
        bad = np.array([[3, 4, 99999, 6]], np.int32)
        status_of(lib.bh_model_logits(M, bad, 1, 4, None, 0, byref(n)), expect=INVALID, contains="tokens[2]")
        still_alive()
    """,
    "predict_offsets": """
        p = np.array([3, 4, 5, 6, 7], np.int32)
        out = np.zeros(2, np.int32); n = c_int64()
        good = np.array([0, 2, 5], np.int64)
        status_of(lib.bh_model_predict(M, p, good, 2, out, 2, byref(n)), expect=0)
        status_of(lib.bh_model_predict(M, p, good, 2, out, 1, byref(n)), expect=TOO_SMALL)
        status_of(lib.bh_model_predict(M, p, good, 2, None, 2, byref(n)), expect=INVALID)
        status_of(lib.bh_model_predict(M, p, good, 2, out, 2, None), expect=INVALID)
        for offsets in ([1, 2, 5], [0, 3, 2], [0, 0, 5], [0, 2, 2**60], [0, -2, 5], [0, 2**62, 2**63 - 1]):
            s = lib.bh_model_predict(M, p, np.array(offsets, np.int64), 2, out, 2, byref(n))
            assert s == INVALID, (offsets, s)
            print("ok", offsets, _lib.last_error())
        status_of(lib.bh_model_predict(M, None, good, 2, out, 2, byref(n)), expect=INVALID)
        status_of(lib.bh_model_predict(M, p, None, 2, out, 2, byref(n)), expect=INVALID)
        status_of(lib.bh_model_predict(M, p, good, 0, out, 2, byref(n)), expect=INVALID)
        status_of(lib.bh_model_predict(M, p, good, -3, out, 2, byref(n)), expect=INVALID)
        status_of(lib.bh_model_predict(M, p, good, 2**62, out, 2, byref(n)), expect=INVALID)
        status_of(lib.bh_model_predict(None, p, good, 2, out, 2, byref(n)), expect=INVALID)
        still_alive()
    """,
    "evaluate_buffers": """
        n = c_int64(); s = c_void_p()
        status_of(lib.bh_evaluate_group(M, D, b"sro", None, None, None, None, 0, byref(n)), expect=0)
        k = n.value
        assert k > 0
        pred = np.zeros(k, np.int32); corr = np.zeros(k, np.uint8)
        status_of(lib.bh_evaluate_group(M, D, b"sro", pred, corr, None, None, k - 1, byref(n)), expect=TOO_SMALL)
        status_of(lib.bh_evaluate_group(M, D, b"sro", pred, None, None, None, -1, byref(n)), expect=INVALID)
        status_of(lib.bh_evaluate_group(M, D, b"sro", pred, None, None, None, k, None), expect=INVALID)
        status_of(lib.bh_evaluate_group(M, D, None, pred, None, None, None, k, byref(n)), expect=INVALID)
        status_of(lib.bh_evaluate_group(M, None, b"sro", pred, None, None, None, k, byref(n)), expect=INVALID)
        status_of(lib.bh_evaluate_group(M, D, b"nope", pred, None, None, None, k, byref(n)), expect=INVALID)
        status_of(lib.bh_evaluate_group(M, D, b"sro", pred, None, None, None, k, byref(n)), expect=0)
        status_of(lib.bh_evaluate(M, D, b"{", byref(s)), expect=INVALID)
        status_of(lib.bh_evaluate(M, D, b'{"groups": ["sro"]}', None), expect=INVALID)
        status_of(lib.bh_evaluate(None, D, b"{}", byref(s)), expect=INVALID)
        status_of(lib.bh_evaluate(M, None, b"{}", byref(s)), expect=INVALID)
        status_of(lib.bh_capacity_search(None, byref(s)), expect=INVALID)
        status_of(lib.bh_capacity_search(b"{}", None), expect=INVALID)
        status_of(lib.bh_capacity_search(b"[]", byref(s)), expect=INVALID)
        # a model too small for the dataset
        small = behemoth.Model.create(preset="tiny", vocab_size=20)
        status_of(lib.bh_evaluate(small._h, D, b"{}", byref(s)), expect=INVALID)
        status_of(lib.bh_evaluate_group(small._h, D, b"sro", pred, None, None, None, k, byref(n)), expect=INVALID)
        still_alive()
    """,
    "trainer_misuse": """
        t = _lib.TrainerPtr(); s = c_void_p()
        status_of(lib.bh_trainer_begin(None, D, b"{}", byref(t)), expect=INVALID); assert not t
        status_of(lib.bh_trainer_begin(M, None, b"{}", byref(t)), expect=INVALID); assert not t
        status_of(lib.bh_trainer_begin(M, D, None, byref(t)), expect=INVALID); assert not t
        status_of(lib.bh_trainer_begin(M, D, b"{}", None), expect=INVALID)
        status_of(lib.bh_trainer_begin(M, D, b'{"learning_rate": NaN}', byref(t)), expect=INVALID); assert not t
        status_of(lib.bh_trainer_begin(M, D, b'{"epochs": 1e300}', byref(t)), expect=INVALID); assert not t
        status_of(lib.bh_trainer_begin(M, D, b'{"batch_size": 100000000000}', byref(t)), expect=INVALID); assert not t
        status_of(lib.bh_trainer_begin(M, D, b'{"resume_from": "/no/such/file.h5"}', byref(t)), expect=3); assert not t
        status_of(lib.bh_trainer_step(None, byref(s)), expect=INVALID)
        status_of(lib.bh_trainer_save(None, b"/tmp/x.h5"), expect=INVALID)
        status_of(lib.bh_trainer_end(None, byref(s)), expect=INVALID)
        status_of(lib.bh_trainer_begin(M, D, b'{"epochs": 1}', byref(t)), expect=0)
        status_of(lib.bh_trainer_step(t, None), expect=100)                    # a report is optional
        status_of(lib.bh_trainer_save(t, None), expect=INVALID)
        status_of(lib.bh_trainer_save(t, b""), expect=INVALID)
        status_of(lib.bh_trainer_save(t, b"/no/such/dir/ck.h5"), expect=3)
        status_of(lib.bh_trainer_end(t, None), expect=0)                      # so is the end report
        # a step after bh_trainer_end is misuse, not more training
        status_of(lib.bh_trainer_step(t, byref(s)), expect=MISUSE, contains="bh_trainer_end")
        assert not s.value
        status_of(lib.bh_trainer_step(t, byref(s)), expect=MISUSE)
        lib.bh_trainer_free(t)
        still_alive()
    """,
    "edit_misuse": """
        e = _lib.EditPtr(); s = c_void_p(); n = c_int64()
        status_of(lib.bh_editset_create(None, b"{}", byref(_lib.EditSetPtr())), expect=INVALID)
        status_of(lib.bh_editset_create(D, None, byref(_lib.EditSetPtr())), expect=INVALID)
        status_of(lib.bh_editset_create(D, b"{}", None), expect=INVALID)
        status_of(lib.bh_editset_info(None, byref(s)), expect=INVALID)
        status_of(lib.bh_editset_info(E, None), expect=INVALID)
        status_of(lib.bh_editset_array_i32(E, b"tokens", None, 5, byref(n)), expect=INVALID)
        status_of(lib.bh_editset_array_i32(E, b"tokens", None, 0, None), expect=INVALID)
        status_of(lib.bh_editset_array_i32(E, None, None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_editset_array_i32(E, b"offsets", None, 0, byref(n)), expect=INVALID, contains="int64")
        status_of(lib.bh_editset_array_i64(E, b"tokens", None, 0, byref(n)), expect=INVALID, contains="int32")
        status_of(lib.bh_editset_array_i32(E, b"groups/nope/prompts", None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_editset_array_i32(E, b"tokens", np.zeros(1, np.int32), 1, byref(n)), expect=TOO_SMALL)
        status_of(lib.bh_edit_begin(None, E, b"{}", byref(e)), expect=INVALID); assert not e
        status_of(lib.bh_edit_begin(M, None, b"{}", byref(e)), expect=INVALID); assert not e
        status_of(lib.bh_edit_begin(M, E, None, byref(e)), expect=INVALID); assert not e
        status_of(lib.bh_edit_begin(M, E, b"{}", None), expect=INVALID)
        status_of(lib.bh_edit_begin(M, E, b'{"rank": 0}', byref(e)), expect=INVALID); assert not e
        status_of(lib.bh_edit_step(None, byref(s)), expect=INVALID)
        status_of(lib.bh_edit_end(None, byref(s)), expect=INVALID)
        status_of(lib.bh_edit_save(None, b"/tmp/x.h5"), expect=INVALID)
        status_of(lib.bh_edit_delta(None, b"x", None, 0, byref(n)), expect=INVALID)
        spec = b'{"layers": {"blocks": [1], "sublayers": "mlp"}, "optimizer": {"epochs": 1}}'
        status_of(lib.bh_edit_begin(M, E, spec, byref(e)), expect=0)
        name = b"gpt_neox.layers.1.mlp.dense_4h_to_h.weight"
        status_of(lib.bh_edit_save(e, b"/tmp/never.h5"), expect=MISUSE, contains="bh_edit_end")
        status_of(lib.bh_edit_delta(e, name, None, 0, byref(n)), expect=MISUSE)
        status_of(lib.bh_edit_step(e, None), expect=100)
        status_of(lib.bh_edit_end(e, None), expect=0)                   # finishes the skipped steps
        status_of(lib.bh_edit_step(e, byref(s)), expect=MISUSE, contains="bh_edit_end")
        status_of(lib.bh_edit_delta(e, name, None, 0, byref(n)), expect=0)
        k = n.value
        assert k == 64 * 256
        status_of(lib.bh_edit_delta(e, name, np.zeros(k - 1, np.float32), k - 1, byref(n)), expect=TOO_SMALL)
        status_of(lib.bh_edit_delta(e, name, None, 3, byref(n)), expect=INVALID)
        status_of(lib.bh_edit_delta(e, name, None, 0, None), expect=INVALID)
        status_of(lib.bh_edit_delta(e, None, None, 0, byref(n)), expect=INVALID)
        status_of(lib.bh_edit_delta(e, b"gpt_neox.embed_in.weight", None, 0, byref(n)), expect=INVALID, contains="not trained")
        status_of(lib.bh_edit_save(e, None), expect=INVALID)
        status_of(lib.bh_edit_save(e, b""), expect=INVALID)
        status_of(lib.bh_edit_save(e, b"/no/such/dir/e.h5"), expect=3)
        lib.bh_edit_free(e)
        still_alive()
    """,
    "use_after_close_python": """
        t = behemoth.Trainer(m, ds, epochs=1)
        m.close()                      # the trainer keeps the library's model alive
        assert t.step()["step"] == 1
        t.close()
        for f in (lambda: m.info, lambda: t.step(), lambda: m.edit(es), lambda: es.info if es.close() is None else 0):
            try:
                f()
                raise SystemExit("a closed handle was usable")
            except behemoth.MisuseError as e:
                print("ok", e)
    """,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_raw_error_case(case, isolated):
    out = isolated(SETUP + textwrap.dedent(CASES[case])).stdout
    assert "ok" in out
