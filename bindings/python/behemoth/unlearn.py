"""Unlearning: forget sets, oracles, forget metrics and the exact KS test (docs/unlearning.md).

    fs = behemoth.forget_set(ds, relation=0, forget_fraction=0.5)        # EditSet of kind "unlearn"
    oracle = behemoth.oracle(ds, fs, config=m.config, train=train_spec, cache_dir="oracles")
    res = m.clone().edit(fs, method="npo", oracle=oracle, relearn={"steps": 10})
    res.metrics["forget_quality"], res.metrics["oracle_agreement"], res.metrics["relearned_fraction"]
    behemoth.unlearn.evaluate(m, fs, oracle)["metrics"]                 # any model, no edit

The oracle is the model retrained from scratch without the forget set's sentences: the same dataset
spec with `exclude_facts` set to the forget set's facts, the same model config, training spec and
seeds. It is cached as a file keyed by those specs, the dataset's digest and the library version.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _lib
from ._files import write_text_atomically
from ._handle import call_with_string_out
from ._spec import spec_json
from .dataset import Dataset
from .edit import EditSet
from .model import Model

__all__ = ["METHODS", "forget_set", "oracle", "oracle_key", "evaluate", "ks_2samp"]

#: The unlearning methods `Model.edit` takes on a forget set.
METHODS = ("grad_ascent", "grad_diff", "kl", "npo", "simnpo", "rmu", "relabel")


def forget_set(dataset: Dataset, spec: Union[Mapping[str, Any], str, None] = None, /, **forget_spec) -> EditSet:
    """An edit set of kind "unlearn": the forget set and its retain set (the other base facts, or
    `retain_facts`). Keys (docs/unlearning.md): scope ("relation": `relation` with
    `forget_fraction` or `subjects`; "subjects": `subjects` or `count` random ones, every fact of
    each; "facts": `facts` = [[subject, relation], ...]), retain_facts, forced_object (relabel's
    target ordinal), seed."""
    text = spec_json(spec, forget_spec, "forget set")
    merged = json.loads(text) if text.strip() else {}
    if merged.get("kind", "unlearn") != "unlearn":
        raise ValueError(f"forget_set: kind is {merged['kind']!r}; a forget set has kind 'unlearn'")
    merged["kind"] = "unlearn"
    return EditSet(dataset, merged)


def _canonical(spec: Union[Mapping[str, Any], str, None]) -> dict:
    if spec is None:
        return {}
    if isinstance(spec, (str, bytes)):
        return json.loads(spec) if spec.strip() else {}
    return json.loads(json.dumps(dict(spec)))


def oracle_key(dataset: Dataset, forget: EditSet, config: Union[Mapping[str, Any], str, None],
               train: Union[Mapping[str, Any], str, None]) -> dict:
    """What an oracle is keyed by: the oracle dataset spec, the original dataset's digest, the model
    config, the training spec and the library version; `key["id"]` names its cache file."""
    from . import version
    info = forget.info
    if info["spec"].get("kind") != "unlearn":
        raise ValueError("oracle: `forget` must be a forget set (EditSet of kind 'unlearn', behemoth.forget_set)")
    if "oracle_dataset_spec" not in info:
        raise ValueError("oracle: the dataset was imported, not generated from a spec; the oracle's dataset cannot be made")
    if info["dataset_digest"] != dataset.digest:
        raise ValueError("oracle: the forget set was made from another dataset than `dataset`")
    train = _canonical(train)
    for k in ("checkpoint_path", "resume_from", "checkpoint_every_epochs"):
        train.pop(k, None)   # where the original wrote checkpoints is not the oracle's business
    key = {
        "dataset_spec": info["oracle_dataset_spec"],
        "dataset": info["dataset_digest"],
        "config": _canonical(config),
        "train": train,
        "library_version": version(),
    }
    key["id"] = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return key


def oracle(dataset: Dataset, forget: EditSet, *, config: Union[Mapping[str, Any], str, None] = None,
           train: Union[Mapping[str, Any], str, None] = None, cache_dir: Union[str, os.PathLike, None] = None,
           progress: Optional[bool] = True) -> Model:
    """The oracle of a forget set: a model made from `config` (a ModelConfig, e.g. the original
    model's `m.config`) and trained with `train` (the original's training spec) on the dataset
    generated from `dataset`'s spec with exclude_facts = the forget set. With `cache_dir`, the model
    is kept as `oracle-<id>.h5` (and its key as `oracle-<id>.json`) and loaded from there next time;
    a cached file whose training history does not name the oracle dataset is refused."""
    key = oracle_key(dataset, forget, config, train)
    data = Dataset.generate(key["dataset_spec"])
    path = None
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(os.fspath(cache_dir), f"oracle-{key['id']}.h5")
        if os.path.exists(path):
            m = Model.load(path)
            trained = m.info.get("history", {}).get("datasets", [])
            if data.digest not in trained:
                m.close()
                raise ValueError(f"oracle: the cached file {path} was not trained on this oracle dataset ({data.digest}); "
                                 f"its history names {trained}. Delete it to train the oracle again.")
            return m
    m = Model.create(data, config=key["config"])
    try:
        m.train(data, key["train"], progress=progress)
        if path is not None:
            m.save(path)
            write_text_atomically(path[:-3] + ".json", json.dumps(key, indent=2, sort_keys=True) + "\n")
    except BaseException:
        m.close()
        raise
    return m


def evaluate(model: Model, forget: EditSet, oracle: Optional[Model] = None) -> dict:
    """One model's measures on a forget set (bh_unlearn_evaluate), no edit: "metrics" (forget and
    retain accuracy, target probability, relation mass, truth ratios, model utility; with an oracle
    forget_quality, oracle_agreement, oracle_forget_accuracy), "definitions", "groups",
    "log_truth_ratio" (per forget prompt) and "oracle_log_truth_ratio"."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a behemoth.Model, not {type(model).__name__}")
    if not isinstance(forget, EditSet):
        raise TypeError(f"forget must be a behemoth.EditSet, not {type(forget).__name__}")
    if oracle is not None and not isinstance(oracle, Model):
        raise TypeError(f"oracle must be a behemoth.Model or None, not {type(oracle).__name__}")
    if oracle is model:
        raise ValueError("evaluate: the oracle is the model itself")
    with model._use() as mh, forget._use() as eh, contextlib.ExitStack() as stack:
        oh = stack.enter_context(oracle._use()) if oracle is not None else None
        text = call_with_string_out(lambda out: _lib.lib().bh_unlearn_evaluate(mh, eh, oh, out), "bh_unlearn_evaluate")
    return json.loads(text)


def ks_2samp(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(statistic, p-value) of the two-sided two-sample Kolmogorov–Smirnov test with the exact
    p-value, as scipy.stats.ks_2samp(a, b, method="exact") (bh_ks_2samp; m·n ≤ 4e8)."""
    x = np.ascontiguousarray(np.asarray(a, dtype=np.float64).ravel())
    y = np.ascontiguousarray(np.asarray(b, dtype=np.float64).ravel())
    stat, p = ctypes.c_double(), ctypes.c_double()
    _lib.check(_lib.lib().bh_ks_2samp(x, x.size, y, y.size, ctypes.byref(stat), ctypes.byref(p)), "bh_ks_2samp")
    return float(stat.value), float(p.value)
