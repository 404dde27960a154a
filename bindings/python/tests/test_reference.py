"""The official generator's folder format: export (checked with Hugging Face `tokenizers`) and import."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import behemoth
from behemoth import Dataset

from conftest import repo_root


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("reference")
    tiny.export_reference(d)
    return d


def test_export_layout(exported):
    assert (exported / "metadata" / "tokenizer.json").is_file()
    assert any((exported / "data").glob("full_text_*.txt"))
    assert any((exported / "validations").glob("*.txt"))


def test_tokenizer_roundtrip(tiny, exported):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(exported / "metadata" / "tokenizer.json"))
    seqs = tiny.sequences()
    for seq in seqs[:100]:
        text = tiny.decode(seq)
        assert tok.encode(text).ids == [int(t) for t in seq], text
    for name in tiny.eval_groups[:3]:
        g = tiny.eval_group(name)
        for p in g.prompts[:20]:
            assert tok.encode(tiny.decode(p)).ids == [int(t) for t in p]


def test_export_text_matches_decode(tiny, exported):
    text = "".join(p.read_text() for p in sorted((exported / "data").glob("full_text_*.txt")))
    for seq in tiny.sequences()[:50]:
        assert tiny.decode(seq) in text


def test_import_exported(tiny, exported):
    with Dataset.import_reference(exported) as again:
        a = np.unique(tiny.facts[:, :3], axis=0)
        b = np.unique(again.facts[:, :3], axis=0)
        assert np.array_equal(a, b)
        ours = {tiny.decode(s) for s in tiny.sequences()}
        theirs = {again.decode(s) for s in again.sequences()}
        assert theirs <= ours or ours <= theirs


def _official_fixtures() -> Path | None:
    env = os.environ.get("BEHEMOTH_REFERENCE_FIXTURES")
    candidates = [Path(env)] if env else []
    root = repo_root()
    if root:
        candidates += [root / "Tests" / "Fixtures" / "official-generator",
                       root / "Tests" / "fixtures" / "official-generator",
                       root / "fixtures" / "official-generator"]
    return next((c for c in candidates if (c / "independent-s50-r3-o10").is_dir()), None)


def test_import_official_output():
    root = _official_fixtures()
    if root is None:
        pytest.skip("official generator fixtures not found (set BEHEMOTH_REFERENCE_FIXTURES)")
    folder = root / "independent-s50-r3-o10"
    with Dataset.import_reference(folder) as ds:
        assert ds.facts.shape[0] == 150  # 50 subjects x 3 relations
        text = (folder / "data" / "full_text_0.txt").read_text()
        for seq in ds.sequences()[:50]:
            assert ds.decode(seq) in text
        lines = (folder / "validations" / "sro.txt").read_text().splitlines()
        prompts = {line.split("\t")[0] for line in lines}
        if "sro" in ds.eval_groups:
            g = ds.eval_group("sro")
            assert {ds.decode(p) for p in g.prompts} == prompts


def test_import_official_fine_tuning_folder_and_edit_with_it():
    root = _official_fixtures()
    if root is None:
        pytest.skip("official generator fixtures not found (set BEHEMOTH_REFERENCE_FIXTURES)")
    from behemoth import EditSet, Model
    folder = root / "correlated-s60-r3-o8-c1"
    ft = next(folder.glob("ftremapping_*"))
    with Dataset.import_reference(folder) as ds:
        es = EditSet.import_reference(ds, ft)
        info = es.info
        assert info["source"] == str(ft)
        lines = (ft / "ft_validations" / "same_subject_second_rel_converted_sro.txt").read_text().splitlines()
        g = es.group("correlated_dependent")
        assert [ds.decode(p) + "\t" + ds.decode([t]) for p, t in zip(g["prompts"], g["targets"])] == lines
        assert info["training"]["edited"] == len((ft / "finetuning_data" / "edited_data.txt").read_text().splitlines())
        with Model.create(dataset=ds, preset="tiny") as m:   # the official edit set runs through our editors
            res = m.edit(es, method="lora", rank=4, alpha=8, layers={"blocks": [1]}, optimizer={"epochs": 1}, progress=False)
            assert "dependent_update_rate" in res.metrics
            res.close()
    with pytest.raises(behemoth.BehemothError, match="fine-tuning folder"):
        with Dataset.import_reference(folder) as ds:
            EditSet.import_reference(ds, folder)


def test_import_of_a_damaged_official_folder_raises_format_error(tmp_path):
    root = _official_fixtures()
    if root is None:
        pytest.skip("official generator fixtures not found (set BEHEMOTH_REFERENCE_FIXTURES)")
    import shutil
    folder = tmp_path / "damaged"
    shutil.copytree(root / "independent-s50-r3-o10", folder)
    with Dataset.import_reference(folder):
        pass  # the copy imports before the damage
    sro = folder / "validations" / "sro.txt"
    sro.write_text("\n".join(sro.read_text().splitlines()[:120]))
    with pytest.raises(behemoth.FormatError, match=r"validations/sro\.txt has 120 lines, expected 150 \(one per fact\)") as err:
        Dataset.import_reference(folder)
    assert err.value.status == behemoth.Status.ERR_FORMAT
