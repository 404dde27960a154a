"""Dataset: generate, arrays, decode, save/load (checked with h5py), evaluation groups, threads.

These need the bh_dataset_* exports; until the library has them they fail with LibraryError."""
from __future__ import annotations

import gc
import re
import threading

import h5py
import numpy as np
import pytest

import behemoth
from behemoth import Dataset, Status

# The official text form: " SS <words> RR <words> OO <word>." where every word is a 4-digit id.
SENTENCE = re.compile(r"^ SS( \d{4})+ RR( \d{4})+ OO \d{4}\.(<\|endoftext\|>)?$")


def test_generate_tiny_info(tiny):
    info = tiny.info
    assert isinstance(info, dict)
    for key in ("arrays", "spec"):
        assert key in info, f"info lacks {key!r}: {sorted(info)}"
    names = tiny.array_names
    for name in ("facts", "tokens", "offsets"):
        assert name in names
    assert tiny.spec.get("preset", "tiny") == "tiny"
    info["mutated"] = True
    assert "mutated" not in tiny.info  # callers get a copy
    assert "Dataset" in repr(tiny)


def test_generate_is_deterministic():
    with Dataset.generate(preset="tiny") as a, Dataset.generate({"preset": "tiny"}) as b, \
            Dataset.generate('{"preset": "tiny"}') as c:
        assert np.array_equal(a.facts, b.facts) and np.array_equal(a.tokens, c.tokens)
        assert a.info == b.info == c.info


def test_generate_kwargs_override_spec():
    with Dataset.generate({"preset": "tiny", "seed": 1}, seed=2) as a, Dataset.generate(preset="tiny", seed=2) as b:
        assert a.spec == b.spec
        assert np.array_equal(a.tokens, b.tokens)


def test_facts(tiny):
    f = tiny.facts
    assert f.dtype == np.int32 and f.ndim == 2 and f.shape[1] == 4 and f.shape[0] > 0
    assert (f[:, :3] >= 0).all()
    assert ((f[:, 3] == -1) | (f[:, 3] >= 0)).all()


def test_tokens_offsets_sequences(tiny):
    tokens, offsets = tiny.tokens, tiny.offsets
    assert tokens.dtype == np.int32 and tokens.ndim == 1
    assert offsets[0] == 0 and (np.diff(offsets) > 0).all() and offsets[-1] <= tokens.size
    seqs = tiny.sequences()
    assert len(seqs) == tiny.num_sequences > 0
    assert sum(s.size for s in seqs) == tokens.size
    assert np.array_equal(np.concatenate(seqs), tokens)
    assert np.array_equal(tiny.sentence(0), seqs[0]) and np.array_equal(tiny.sentence(-1), seqs[-1])
    with pytest.raises(IndexError):
        tiny.sentence(len(seqs))


def test_every_listed_array(tiny):
    for name, spec in tiny.array_specs().items():
        a = tiny.array(name)
        assert spec["dtype"] is not None, f"{name}: dtype not understood"
        assert a.dtype == spec["dtype"], name
        if spec["shape"] is not None:
            assert a.shape == spec["shape"], name
    with pytest.raises(KeyError, match="no array"):
        tiny.array("no/such/array")


def test_unknown_array_from_library(tiny):
    with pytest.raises(behemoth.InvalidArgumentError) as e:
        tiny._copy("no/such/array", np.int32)
    assert "no/such/array" in e.value.message


def test_decode_official_form(tiny):
    seq = tiny.sentence(0)
    text = tiny.decode(seq)
    assert SENTENCE.match(text), text
    # Text is the concatenation of each token's text; a word is " " + its 4-digit id.
    parts = [tiny.decode([t]) for t in seq]
    assert "".join(parts) == text
    for t, p in zip(seq, parts):
        if t >= 85:  # the first meaningful id
            assert p == f" {t:04d}"
    assert tiny.decode([]) == ""
    assert tiny.decode(np.asarray(seq, dtype=np.int64)) == text  # any integer dtype
    assert tiny.decode(list(map(int, seq))) == text


def test_decode_every_sequence(tiny):
    for i, s in enumerate(tiny.sequences()[:50]):
        assert SENTENCE.match(tiny.decode(s)), (i, tiny.decode(s))


def test_decode_bad_tokens(tiny):
    with pytest.raises(behemoth.InvalidArgumentError):
        tiny.decode([-1])
    with pytest.raises(behemoth.InvalidArgumentError):
        tiny.decode([10**6])
    with pytest.raises(behemoth.InvalidArgumentError):
        tiny.decode([2**40])  # does not fit int32: refused before the call
    with pytest.raises(ValueError):
        tiny.decode([[1, 2]])
    with pytest.raises(TypeError):
        tiny.decode([1.5])


def test_eval_groups(tiny):
    groups = tiny.eval_groups
    assert groups, "the dataset has no eval/<group>/... arrays"
    for name in groups:
        g = tiny.eval_group(name)
        assert len(g) > 0 and g.targets is not None
        assert len(g.targets) == len(g.prompts)
        if g.facts is not None:
            assert len(g.facts) == len(g.prompts)
            assert g.fact_rows is not None and g.fact_rows.shape == (len(g.prompts), 4)
        for p in g.prompts[:20]:
            assert p.ndim == 1 and p.size > 0
    if "sro" in groups:
        g = tiny.eval_group("sro")
        text = tiny.decode(g.prompts[0])
        assert text.startswith(" SS ") and text.endswith(" OO"), text
        target = np.asarray(g.targets[0]).reshape(-1)
        assert re.fullmatch(r"( \d{4})+", tiny.decode(target))
    with pytest.raises(KeyError, match="no evaluation group"):
        tiny.eval_group("no-such-group")


def test_save_load_roundtrip_with_h5py(tiny, tiny_file, tmp_path):
    with h5py.File(tiny_file, "r") as f:
        fmt = f.attrs["format"]
        assert (fmt.decode() if isinstance(fmt, bytes) else fmt) == "behemoth.dataset"
        assert "format_version" in f.attrs
        for name, spec in tiny.array_specs().items():
            assert name in f, f"{name} listed by info but not in the file"
            stored = f[name][()]
            assert stored.dtype == spec["dtype"], name
            assert np.array_equal(stored, tiny.array(name)), name
    with Dataset.load(tiny_file) as again:
        assert np.array_equal(again.facts, tiny.facts)
        assert np.array_equal(again.tokens, tiny.tokens)
        assert np.array_equal(again.offsets, tiny.offsets)
        assert again.array_names == tiny.array_names
        assert again.decode(again.sentence(0)) == tiny.decode(tiny.sentence(0))
        # save again from the loaded copy: same arrays
        again.save(tmp_path / "again.h5")
    with h5py.File(tmp_path / "again.h5", "r") as a, h5py.File(tiny_file, "r") as b:
        for name in tiny.array_names:
            assert np.array_equal(a[name][()], b[name][()]), name


def test_save_overwrites_atomically(tiny, tmp_path):
    path = tmp_path / "d.h5"
    path.write_bytes(b"old contents")
    tiny.save(path)
    with Dataset.load(path) as d:
        assert np.array_equal(d.facts, tiny.facts)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "d.h5"]
    assert leftovers == [], leftovers


def test_file_errors(tiny, tmp_path):
    with pytest.raises(behemoth.FileIOError) as e:
        Dataset.load(tmp_path / "missing.h5")
    assert e.value.status == Status.ERR_IO and "missing.h5" in e.value.message
    with pytest.raises(behemoth.FileIOError):
        tiny.save(tmp_path / "no" / "such" / "dir" / "x.h5")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(10)
        f.attrs["format"] = "something.else"
    with pytest.raises(behemoth.FormatError) as e:
        Dataset.load(foreign)
    assert e.value.status == Status.ERR_FORMAT and e.value.message
    no_attr = tmp_path / "plain.h5"
    with h5py.File(no_attr, "w") as f:
        f["facts"] = np.zeros((2, 4), np.int32)
    with pytest.raises(behemoth.FormatError):
        Dataset.load(no_attr)
    text = tmp_path / "text.h5"
    text.write_text("not an HDF5 file\n")
    with pytest.raises((behemoth.FormatError, behemoth.FileIOError)):
        Dataset.load(text)


def test_truncated_file(tiny, tiny_file, tmp_path, isolated):
    data = tiny_file.read_bytes()
    for frac in (0.5, 0.9):
        cut = tmp_path / f"cut{frac}.h5"
        cut.write_bytes(data[: int(len(data) * frac)])
        out = isolated(f"""
            try:
                behemoth.Dataset.load({str(cut)!r})
                print("loaded")
            except behemoth.BehemothError as e:
                print("error", e.status, e.message)
        """).stdout
        assert out.startswith("error"), out
        assert int(out.split()[1]) in (Status.ERR_FORMAT, Status.ERR_IO), out


def test_spec_errors():
    with pytest.raises(behemoth.InvalidArgumentError) as e:
        Dataset.generate("{not json")
    assert e.value.message
    with pytest.raises(behemoth.InvalidArgumentError) as e:
        Dataset.generate(preset="tiny", no_such_key=1)
    assert "no_such_key" in e.value.message
    with pytest.raises(behemoth.InvalidArgumentError):
        Dataset.generate(preset="no-such-preset")
    with pytest.raises(behemoth.InvalidArgumentError):
        Dataset.generate("[1, 2]")
    with pytest.raises(behemoth.InvalidArgumentError) as e:
        Dataset.generate(preset="tiny", seed="seven")
    assert "seed" in e.value.message
    with pytest.raises(TypeError):
        Dataset.generate(42)


def test_constructor_and_closed_handles():
    with pytest.raises(TypeError, match="Dataset.generate"):
        Dataset()
    gc.collect()  # __del__ of the half-made object must not raise
    ds = Dataset.generate(preset="tiny")
    ds.close()
    ds.close()
    assert ds.closed
    with pytest.raises(behemoth.MisuseError, match="closed"):
        ds.facts
    with pytest.raises(behemoth.MisuseError):
        ds.decode([1])
    with Dataset.generate(preset="tiny") as d:
        pass
    assert d.closed and "closed" in repr(d)


def test_failed_create_leaves_nothing(tmp_path):
    # Raised from inside _create: the half-made object is collected without errors.
    unraisable = []
    import sys
    old = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(u)
    try:
        for _ in range(3):
            with pytest.raises(behemoth.BehemothError):
                Dataset.load(tmp_path / "missing.h5")
        gc.collect()
    finally:
        sys.unraisablehook = old
    assert unraisable == []


def test_threads_share_a_dataset(tiny):
    expected_facts = tiny.facts
    expected_text = tiny.decode(tiny.sentence(0))
    errors = []

    def work():
        try:
            for _ in range(20):
                assert np.array_equal(tiny.facts, expected_facts)
                assert tiny.decode(tiny.sentence(0)) == expected_text
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_close_while_other_thread_uses():
    ds = Dataset.generate(preset="tiny")
    outcomes = []

    def work():
        for _ in range(200):
            try:
                ds.tokens
            except behemoth.MisuseError:
                outcomes.append("closed")
                return
        outcomes.append("finished")

    t = threading.Thread(target=work)
    t.start()
    ds.close()
    t.join()
    assert outcomes and outcomes[0] in ("closed", "finished")


def test_token_collisions(tmp_path):
    """A spec with collisions: role sets in info and the file, refusals named, no official export."""
    collisions = [{"kind": "objects_across_relations", "fraction": 0.25}, {"kind": "subject_parts", "fraction": 0.25}]
    with Dataset.generate(preset="tiny", collisions=collisions) as ds:
        assert ds.spec["collisions"] == [dict(c) for c in collisions]
        roles = ds.info["vocabulary"]["token_roles"]
        shared = {int(t): r for t, r in roles.items() if len(r) > 1}
        assert shared and all(any(n.startswith("object/") for n in r) or "subject_first" in r for r in shared.values())
        token_map = ds.array("vocab/token_map")
        assert token_map.shape == (ds.info["counts"]["vocab_size"],)
        subjects = ds.array("vocab/subject_tokens")
        assert subjects.shape == (64, 2) and (subjects[:, 1] >= 0).sum() == 16   # round(0.25 * 64) two-token words
        ds.save(tmp_path / "c.h5")
        with h5py.File(tmp_path / "c.h5", "r") as f:
            assert np.array_equal(f["vocab/token_map"][:], token_map)
            import json
            assert json.loads(f["vocab"].attrs["token_roles"]) == roles
        with pytest.raises(behemoth.InvalidArgumentError) as e:
            ds.export_reference(tmp_path / "official")
        assert "token collisions" in e.value.message
    with Dataset.generate(preset="tiny") as plain:
        assert "collisions" not in plain.spec and "token_roles" not in plain.info["vocabulary"]
    with pytest.raises(behemoth.InvalidArgumentError) as e:
        Dataset.generate(preset="tiny", collisions=[{"kind": "subject_parts", "fraction": 2}])
    assert "fraction = 2" in e.value.message
