"""Model (bh_model_*), Trainer (bh_trainer_*), evaluation (bh_evaluate*) and capacity search.

    m = Model.create(dataset=ds, preset="tiny")
    report = m.train(ds, epochs=150, batch_size=32)          # a tqdm bar; returns bh_trainer_end's report
    m.evaluate(ds)["groups"]["sro"]["accuracy"]

Locks: every call on a handle holds that object's lock. A trainer step also holds its model's lock
(the step changes the weights), and an edit holds the model's lock from begin to end. Locks are
always taken in the order trainer/edit -> model -> dataset/edit set, so threads cannot deadlock.
"""
from __future__ import annotations

import ctypes
import json
import os
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from . import _lib
from ._handle import Handle, call_with_string_out
from ._spec import spec_json
from .dataset import Dataset
from .errors import InvalidArgumentError, Status
from .progress import run_steps

if TYPE_CHECKING:
    from .edit import EditResult

__all__ = ["Model", "Trainer", "capacity_search"]

PathLike = Union[str, bytes, "os.PathLike[str]"]
Spec = Union[Mapping[str, Any], str, None]

_I32 = np.iinfo(np.int32)


def _int32_array(values, what: str, function: str) -> np.ndarray:
    """A C-contiguous int32 copy of integer `values`; TypeError for non-integers, InvalidArgumentError
    for values that do not fit in int32 (the library checks the vocabulary range itself)."""
    a = np.asarray(values)
    if a.dtype == object:
        try:
            a = np.asarray(values, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"{what} must be integers") from None
    if a.size and (a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{what} must be integers, got {a.dtype}")
    if a.size and (a.min() < _I32.min or a.max() > _I32.max):
        raise InvalidArgumentError(Status.ERR_INVALID, f"{what}: a token id does not fit in int32", function)
    return np.ascontiguousarray(a, dtype=np.int32)


def _check_kind(obj, cls, what: str):
    if not isinstance(obj, cls):
        raise TypeError(f"{what} must be a behemoth.{cls.__name__}, not {type(obj).__name__}")
    return obj


def _string_call(function: str, *args) -> str:
    """Runs `function(*args, &string)` and returns the string."""
    return call_with_string_out(lambda out: getattr(_lib.lib(), function)(*args, out), function)


class Model(Handle):
    """A bh_model: a Pythia-style GPT-NeoX transformer (float32, Hugging Face tensor names).

    Create with `Model.create`, `Model.load` or `m.clone()`; free with `close()`, `with`, or by
    letting it be collected."""

    _free_function = "bh_model_free"
    _pointer_type = _lib.ModelPtr
    _kind = "model"

    def __init__(self, *_a, **_kw):
        Handle.__init__(self)
        raise TypeError("create a Model with Model.create(...), Model.load(path) or model.clone()")

    def _init_after_create(self) -> None:
        self._tensors: Optional[dict] = None
        self._config: Optional[dict] = None

    # ---- construction ------------------------------------------------------------------------------

    @classmethod
    def create(cls, dataset: Optional[Dataset] = None, config: Spec = None, **overrides) -> "Model":
        """A new, randomly initialised model from a ModelConfig: `config` (dict or JSON) and/or
        keyword arguments (which win), e.g. ``Model.create(dataset=ds, preset="tiny", layers=3)``.
        With a dataset, vocab_size is taken from it (and must cover it if given); without one,
        vocab_size is required."""
        if config is None and isinstance(dataset, (Mapping, str, bytes)):
            dataset, config = None, dataset  # Model.create({"preset": "tiny", "vocab_size": 100})
        text = spec_json(config, overrides, "model config")
        if dataset is None:
            return cls._create("bh_model_create", text, None)
        _check_kind(dataset, Dataset, "dataset")
        with dataset._use() as dh:
            return cls._create("bh_model_create", text, dh)

    @classmethod
    def load(cls, path: PathLike) -> "Model":
        """Loads an HDF5 model file or training checkpoint (format = "behemoth.model")."""
        return cls._create("bh_model_load", os.fspath(path))

    def save(self, path: PathLike) -> None:
        """Writes the model as HDF5 (weights under /weights/<Hugging Face name>; atomically)."""
        self._call("bh_model_save", os.fspath(path))

    def clone(self) -> "Model":
        """An independent copy (weights, config, history)."""
        with self._use() as h:
            return type(self)._create("bh_model_clone", h)

    # ---- description ---------------------------------------------------------------------------

    def info_json(self) -> str:
        with self._use() as h:
            return _string_call("bh_model_info", h)

    @property
    def info(self) -> dict:
        """bh_model_info parsed: config, parameters, tensors, tokenizer, training history summary.
        (Read afresh on every access: training changes the history.)"""
        return json.loads(self.info_json())

    @property
    def digest(self) -> str:
        """The content digest ("xxh64:..." over the config and the weights): it changes with every
        training step or edit, and a saved file carries it as its `digest` attribute."""
        return self.info["digest"]

    @property
    def config(self) -> dict:
        """The full ModelConfig (defaults filled in): layers, hidden, heads, vocab_size, ..."""
        with self._use():
            if self._config is None:
                self._config = self.info["config"]
            return dict(self._config)

    @property
    def vocab_size(self) -> int:
        return int(self.config["vocab_size"])

    @property
    def num_parameters(self) -> int:
        return int(self.info["parameters"])

    def tensors(self) -> dict:
        """name -> shape (a tuple) of every parameter tensor, in the order of the parameter block."""
        with self._use():
            if self._tensors is None:
                self._tensors = {t["name"]: tuple(int(d) for d in t["shape"]) for t in self.info["tensors"]}
            return dict(self._tensors)

    def tensor(self, name: str) -> np.ndarray:
        """A copy of one parameter tensor by Hugging Face name, as float32 with its shape."""
        shape = self.tensors().get(name)
        count = ctypes.c_int64()
        with self._use() as h:
            fn = _lib.lib().bh_model_tensor
            if shape is None:  # let the library name the problem
                _lib.check(fn(h, name, None, 0, ctypes.byref(count)), "bh_model_tensor")
                shape = (count.value,)
            out = np.empty(shape, dtype=np.float32)
            _lib.check(fn(h, name, out, out.size, ctypes.byref(count)), "bh_model_tensor")
        return out

    def set_tensor(self, name: str, values) -> None:
        """Overwrites one parameter tensor (Hugging Face name) with `values` of its shape (finite floats)."""
        shape = self.tensors().get(name)
        a = np.ascontiguousarray(values, dtype=np.float32)
        if shape is not None and a.shape != shape:
            raise ValueError(f"{name} has shape {shape}, not {a.shape}")
        self._call("bh_model_set_tensor", name, a.reshape(-1), a.size)

    def state_dict(self) -> dict:
        """Every tensor as a numpy array, by Hugging Face name (`embed_out.weight` for the head)."""
        return {name: self.tensor(name) for name in self.tensors()}

    # ---- inference ---------------------------------------------------------------------------------

    def logits(self, tokens) -> np.ndarray:
        """Logits for a batch of token rows: int array [rows, width] -> float32 [rows, width, vocab].
        Rows may be right-padded (attention is causal). A 1-D array is one row: [width, vocab]."""
        a = _int32_array(tokens, "tokens", "bh_model_logits")
        single = a.ndim == 1
        if single:
            a = a.reshape(1, -1)
        if a.ndim != 2:
            raise ValueError(f"logits takes a 2-D array [rows, width] of token ids, got shape {a.shape}")
        rows, width = a.shape
        count = ctypes.c_int64()
        with self._use() as h:
            fn = _lib.lib().bh_model_logits
            # A size query first: it validates the tokens before a possibly large allocation.
            _lib.check(fn(h, a if a.size else None, rows, width, None, 0, ctypes.byref(count)), "bh_model_logits")
            out = np.empty((rows, width, count.value // max(1, rows * width)), dtype=np.float32)
            _lib.check(fn(h, a, rows, width, out, out.size, ctypes.byref(count)), "bh_model_logits")
        return out[0] if single else out

    def predict(self, prompts, offsets=None) -> np.ndarray:
        """Greedy next token after each prompt -> int32 [n_prompts].

        prompts: a list of 1-D token arrays; a 2-D array (one prompt per row); or flat tokens with
        `offsets` (n+1 entries, or n starts), also accepted as the tuple (flat, offsets)."""
        flat, bounds = self._flatten_prompts(prompts, offsets)
        n = bounds.size - 1
        if n == 0:
            return np.empty(0, dtype=np.int32)
        out = np.empty(n, dtype=np.int32)
        count = ctypes.c_int64()
        with self._use() as h:
            _lib.check(_lib.lib().bh_model_predict(h, flat if flat.size else None, bounds, n, out, out.size,
                                                   ctypes.byref(count)), "bh_model_predict")
        return out

    @staticmethod
    def _flatten_prompts(prompts, offsets):
        if offsets is None and isinstance(prompts, tuple) and len(prompts) == 2 \
                and np.ndim(prompts[0]) == 1 and np.ndim(prompts[1]) == 1:
            prompts, offsets = prompts
        if offsets is not None:
            flat = _int32_array(prompts, "prompts", "bh_model_predict").reshape(-1)
            bounds = np.asarray(offsets, dtype=np.int64).reshape(-1)
            if bounds.size == 0 or bounds[-1] != flat.size:
                bounds = np.append(bounds, flat.size)
            return flat, np.ascontiguousarray(bounds, dtype=np.int64)
        if isinstance(prompts, np.ndarray) and prompts.ndim == 2:
            rows = list(prompts)
        elif isinstance(prompts, np.ndarray) and prompts.ndim == 1 and prompts.dtype != object:
            raise ValueError("predict takes a list of prompts (or a 2-D array, or flat tokens with offsets), "
                             "not one 1-D array: wrap a single prompt in a list")
        else:
            rows = list(prompts)
        parts = [_int32_array(p, f"prompt {i}", "bh_model_predict").reshape(-1) for i, p in enumerate(rows)]
        bounds = np.zeros(len(parts) + 1, dtype=np.int64)
        if parts:
            bounds[1:] = np.cumsum([p.size for p in parts])
        flat = np.concatenate(parts) if parts else np.empty(0, np.int32)
        return np.ascontiguousarray(flat, dtype=np.int32), bounds

    # ---- evaluation ------------------------------------------------------------------------------

    def evaluate(self, dataset: Dataset, groups: Union[str, Sequence[str], None] = None,
                 batch_size: int = 256) -> dict:
        """bh_evaluate: per group accuracy, mean target probability and rank, per relation accuracy,
        and the spec echoed. `groups` defaults to every evaluation group of the dataset."""
        _check_kind(dataset, Dataset, "dataset")
        if isinstance(groups, str):
            groups = [groups]
        text = spec_json({"groups": list(groups) if groups is not None else None, "batch_size": batch_size},
                         None, "evaluation spec")
        with self._use() as h, dataset._use() as dh:
            return json.loads(_string_call("bh_evaluate", h, dh, text))

    def evaluate_group(self, dataset: Dataset, group: str) -> dict:
        """Per-prompt results of one evaluation group: numpy arrays `predicted` (int32), `correct`
        (bool), `target_probability` (float32) and `target_rank` (int32, 1 = top)."""
        _check_kind(dataset, Dataset, "dataset")
        count = ctypes.c_int64()
        fn = _lib.lib().bh_evaluate_group
        with self._use() as h, dataset._use() as dh:
            _lib.check(fn(h, dh, group, None, None, None, None, 0, ctypes.byref(count)), "bh_evaluate_group")
            n = count.value
            predicted = np.empty(n, np.int32)
            correct = np.empty(n, np.uint8)
            probability = np.empty(n, np.float32)
            rank = np.empty(n, np.int32)
            if n:
                _lib.check(fn(h, dh, group, predicted, correct, probability, rank, n, ctypes.byref(count)),
                           "bh_evaluate_group")
        return {"predicted": predicted, "correct": correct.astype(bool), "target_probability": probability,
                "target_rank": rank}

    # ---- training and editing ----------------------------------------------------------------------

    def train(self, dataset: Dataset, spec: Spec = None, *, progress: Optional[bool] = True,
              callback: Optional[Callable[[dict], Any]] = None, **train_spec) -> dict:
        """Trains on `dataset` to the end of a TrainSpec (`spec` and/or keyword arguments: epochs,
        batch_size, learning_rate, ...; docs/training-and-editing.md) and returns bh_trainer_end's
        report. Draws a tqdm bar (loss, lr, acc when evaluated, tok/s) unless progress=False.
        `callback(step_report)` runs after every step; returning False stops early (the report is
        still made, with "finished": false)."""
        with Trainer(self, dataset, spec, **train_spec) as t:
            return t.run(progress=progress, callback=callback)

    def edit(self, editset, method: Optional[str] = None, *, layers: Optional[Mapping[str, Any]] = None,
             rank: Optional[int] = None, alpha: Optional[float] = None, mode: Optional[str] = None,
             optimizer: Optional[Mapping[str, Any]] = None, spec: Spec = None,
             oracle: Optional["Model"] = None,
             progress: Optional[bool] = True, callback: Optional[Callable[[dict], Any]] = None,
             **method_spec) -> "EditResult":
        """Edits this model in place with an EditSet (bh_edit_begin/step/end) and returns the
        EditResult (metrics, report, deltas). Arguments left None take `spec`'s values, else the
        library's defaults (method "lora", rank 32, alpha 16, mode "batch", every block, both
        sublayers; docs/training-and-editing.md).
        Clone the model first to keep the original. `callback(step_report)` returning False
        stops the edit early; the result then measures it as trained so far (report["stopped_early"]).
        On a forget set (behemoth.forget_set) the unlearning methods apply ("grad_ascent", "grad_diff",
        "kl", "npo", "simnpo", "rmu", "relabel"; docs/unlearning.md), and `oracle` (behemoth.oracle)
        adds forget_quality, oracle_agreement and oracle_forget_accuracy to the metrics."""
        from .edit import EditSet, run_edit
        _check_kind(editset, EditSet, "editset")
        if oracle is not None:
            _check_kind(oracle, Model, "oracle")
            if oracle is self:
                raise ValueError("edit: the oracle is the model being edited")
        kwargs = dict(method=method, layers=layers, rank=rank, alpha=alpha, mode=mode, optimizer=optimizer)
        kwargs.update(method_spec)
        return run_edit(self, editset, spec_json(spec, kwargs, "edit method"), progress=progress, callback=callback,
                        oracle=oracle)

    # ---- analysis -----------------------------------------------------------------------------------

    def trace(self, dataset: Dataset, spec: Spec = None, *, out=None, progress: Optional[bool] = True,
              callback: Optional[Callable[[dict], Any]] = None, **trace_spec):
        """Causal tracing of `dataset`'s prompts on this model -> behemoth.analysis.Trace (report,
        scores per kind [prompts, tokens, blocks], low, high; `out` writes the trace file). Keyword
        arguments: group, prompts, count, noise, noise_scale, replace, samples, window, kinds, severed,
        reuse, seed (docs/analysis.md)."""
        from .analysis import trace
        return trace(self, dataset, spec, out=out, progress=progress, callback=callback, **trace_spec)

    def record(self, source, out, **kwargs) -> dict:
        """Records activations of a Dataset's group, an EditSet's group or explicit prompts into the
        activations file `out` (behemoth.analysis.record: sites, blocks, positions, group, batch_size)."""
        from .analysis import record
        return record(self, source, out, **kwargs)

    def __repr__(self) -> str:
        if self.closed:
            return "<behemoth.Model (closed)>"
        try:
            c = self.config
            return (f"<behemoth.Model {c.get('preset') or 'custom'}: layers={c['layers']} hidden={c['hidden']} "
                    f"heads={c['heads']} vocab={c['vocab_size']}>")
        except Exception:
            return "<behemoth.Model>"


class Trainer(Handle):
    """A training run (bh_trainer_begin/step/save/end) on a model and a dataset.

        with Trainer(m, ds, epochs=150, batch_size=32) as t:
            for report in t:            # one optimizer step each: step, loss, learning_rate, ...
                if report["step"] == 10:
                    t.save("ck.h5")     # resumable: Trainer(m2, ds, ..., resume_from="ck.h5")
                    break
            final = t.end()

    The model's weights change in place. `run()` drives it to the end with a progress bar."""

    _free_function = "bh_trainer_free"
    _pointer_type = _lib.TrainerPtr
    _kind = "trainer"

    def __init__(self, model: Model, dataset: Dataset, spec: Spec = None, /, **train_spec):
        Handle.__init__(self)
        self.model = _check_kind(model, Model, "model")
        self.dataset = _check_kind(dataset, Dataset, "dataset")
        self.last_report: Optional[dict] = None
        self.report: Optional[dict] = None
        self._done = False
        text = spec_json(spec, train_spec, "training spec")
        with model._use() as mh, dataset._use() as dh:
            self._open("bh_trainer_begin", mh, dh, text)

    @property
    def done(self) -> bool:
        """True once step() has returned None (training finished)."""
        return self._done

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far (counting the steps before a resume)."""
        return int(self.last_report["step"]) if self.last_report else 0

    @property
    def total_steps(self) -> Optional[int]:
        """All steps of the run (known after the first step)."""
        return int(self.last_report["total_steps"]) if self.last_report else None

    def step(self) -> Optional[dict]:
        """One optimizer step -> its report {"step", "total_steps", "epoch", "loss", "learning_rate",
        "grad_norm", "tokens_per_second", "evaluated", "accuracy": {group: value}}; None when
        training has finished. A NaN loss raises NumericError."""
        with self._use() as h, self.model._lock:
            if self._done:
                return None
            out = ctypes.c_void_p()
            status = _lib.check(_lib.lib().bh_trainer_step(h, ctypes.byref(out)), "bh_trainer_step")
            text = _lib.take_string(out)
            if status == Status.DONE:
                self._done = True
                return None
            self.last_report = json.loads(text) if text else {}
            return dict(self.last_report)

    def __iter__(self) -> Iterator[dict]:
        while True:
            r = self.step()
            if r is None:
                return
            yield r

    def save(self, path: PathLike) -> None:
        """Writes a checkpoint (weights, optimizer moments, position, history) that
        `Trainer(..., resume_from=path)` continues exactly; `Model.load(path)` reads its weights."""
        with self._use() as h, self.model._lock:
            _lib.check(_lib.lib().bh_trainer_save(h, os.fspath(path)), "bh_trainer_save")

    def end(self) -> dict:
        """bh_trainer_end: the final report (spec, model, steps, finished, final_loss, final_accuracy,
        throughput, runtime). May be called more than once; step() after it raises MisuseError."""
        with self._use() as h, self.model._lock:
            self.report = json.loads(_string_call("bh_trainer_end", h))
            return self.report

    def run(self, progress: Optional[bool] = True, callback: Optional[Callable[[dict], Any]] = None,
            max_steps: Optional[int] = None) -> dict:
        """Steps until done (or `callback(report)` returns False, or `max_steps` steps), drawing a tqdm
        bar unless progress=False, then returns `end()`. Ctrl-C ends the run cleanly and re-raises."""
        shown: dict = {}
        result: dict = {}

        def step():
            r = self.step()
            return (Status.DONE, {}) if r is None else (Status.STEP, r)

        def should_stop(_steps, report):
            return callback is not None and callback(dict(report)) is False

        def end():
            result["report"] = self.end()

        run_steps(step, end=end, total=self.total_steps, desc="training", progress=progress,
                  postfix=lambda r: _train_postfix(r, shown), should_stop=should_stop, max_steps=max_steps)
        return result["report"]

    def __repr__(self) -> str:
        if self.closed:
            return "<behemoth.Trainer (closed)>"
        return f"<behemoth.Trainer step {self.step_count}/{self.total_steps or '?'}{' done' if self._done else ''}>"


def _train_postfix(report: Mapping[str, Any], shown: dict) -> dict:
    """What the training bar shows: loss, lr, the last evaluated accuracy, tokens/s."""
    if not report:
        return dict(shown)
    shown["loss"] = f"{report.get('loss', float('nan')):.4f}"
    shown["lr"] = f"{report.get('learning_rate', float('nan')):.2e}"
    acc = report.get("accuracy") or {}
    if report.get("evaluated") and acc:
        for k in [k for k in shown if k.startswith("acc")]:
            del shown[k]
        if len(acc) == 1:
            shown["acc"] = f"{next(iter(acc.values())):.3f}"
        else:
            for g, v in acc.items():
                shown[f"acc_{g}"] = f"{v:.3f}"
    tps = report.get("tokens_per_second")
    if isinstance(tps, (int, float)):
        shown.pop("tok/s", None)
        shown["tok/s"] = f"{tps:,.0f}"
    return dict(shown)


def capacity_search(spec: Spec = None, /, *, dataset: Optional[Mapping[str, Any]] = None,
                    model: Optional[Mapping[str, Any]] = None, training: Optional[Mapping[str, Any]] = None,
                    search: Optional[Mapping[str, Any]] = None, progress: bool = True) -> dict:
    """bh_capacity_search: binary search for the largest subject count a model config learns to a
    target accuracy. Each part is a spec dict: dataset (DatasetSpec), model (ModelConfig), training
    (TrainSpec), search {"min_subjects", "max_subjects", "target_accuracy", "relative_tolerance",
    "max_probes", "print_progress"}. Returns the report, which lists every probe. One blocking call:
    with progress=True (unless search sets print_progress) each probe is printed to stderr."""
    if progress and spec is None:
        search = dict(search or {})
        search.setdefault("print_progress", True)
    text = spec_json(spec, dict(dataset=dataset, model=model, training=training, search=search),
                     "capacity search spec")
    return json.loads(_string_call("bh_capacity_search", text))
