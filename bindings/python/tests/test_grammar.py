"""Several templates per relation through the Python API: the spec keys pass through, the info lists
each relation's templates, the paraphrase groups are there, and an edit reports paraphrase metrics."""
from __future__ import annotations

import pytest

import behemoth
from behemoth import Dataset, EditSet, Model

SPEC = dict(preset="tiny", templates_per_relation=4, heldout_templates=1, seed=5)


def test_templates_in_info_and_groups():
    with Dataset.generate(**SPEC) as ds:
        info = ds.info
        assert info["spec"]["templates_per_relation"] == 4 and info["spec"]["heldout_templates"] == 1
        rows = info["templates"]
        assert len(rows) == info["counts"]["relations_total"]
        for row in rows:
            assert row["training"][0] == "SS {s} W0 W1 RR {r} W2 OO {o}" and len(row["training"]) == 3
            assert len(row["heldout"]) == 1 and row["heldout"][0] not in row["training"]
        g = ds.eval_group("paraphrase")
        assert len(g) == info["counts"]["facts"]
        # The default grammar has neither the keys nor the listing.
    with Dataset.generate(preset="tiny", seed=5) as plain:
        assert "templates" not in plain.info and "templates_per_relation" not in plain.info["spec"]
        assert "paraphrase" not in plain.eval_groups


@pytest.mark.parametrize("extra, needle", [
    (dict(heldout_templates=4), "must be less than templates_per_relation"),
    (dict(templates=["SS {s} W0 RR {r} OO"]), "has no {o} slot"),
    (dict(templates=["SS {s} W0 RR {r} XX OO {o}"]), '"XX" is not a token name'),
])
def test_bad_template_specs(extra, needle):
    with pytest.raises(behemoth.InvalidArgumentError, match=needle.replace("{", r"\{").replace("}", r"\}")):
        Dataset.generate(**dict(SPEC, **extra))


def test_edit_reports_paraphrase_metrics():
    with Dataset.generate(**SPEC) as ds, Model.create(dataset=ds, preset="tiny", max_positions=64) as m, \
            EditSet(ds, kind="single", seed=3) as es:
        assert "edited_paraphrase" in es.groups
        res = m.edit(es, method="full", optimizer={"epochs": 1}, progress=False)
        for k in ("paraphrase_success", "paraphrase_score", "paraphrase_magnitude", "efficacy_score", "neighborhood_score"):
            assert k in res.metrics, k
        assert "held-out" in res.definitions["paraphrase_score"]
        res.close()
