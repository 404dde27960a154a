"""The `behemoth` command line: the Python API's workflow as commands.

    behemoth run --preset demo --out out          the main job (make run)
    behemoth generate preset=tiny --out ds.h5     a dataset from a spec
    behemoth train ds.h5 model.preset=tiny epochs=150 --out model.h5
    behemoth edit model.h5 ds.h5 --method lora.json set.kind=single --out edit.h5
    behemoth info edit.h5                         what any Behemoth file holds

Specs are JSON files (--spec, --config, --edit-set, --method) with `key=value` overrides on top:
values are parsed as JSON when they parse (3, 1e-3, true, [1], "3") and taken as strings otherwise
(mlp); dotted keys nest (optimizer.learning_rate=1e-3). Errors are one line on stderr,
`behemoth: error: <message>`, with exit code 1 (library, file and spec errors) or 2 (usage).
`main(argv)` returns the exit code; docs/cli.md is the reference.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any, Optional, Sequence

import behemoth
from ._lib import LibraryError
from .dataset import Dataset
from .edit import EditSet
from .errors import BehemothError
from .main_job import PRESETS, JobFailed
from .model import Model

__all__ = ["main"]

PROG = "behemoth"


# ---- errors ----------------------------------------------------------------------------------------

class UsageError(Exception):
    """A bad command line (exit code 2): what argparse reports, and malformed key=value overrides."""


class CommandError(Exception):
    """A command that cannot be carried out (exit code 1): a missing file, a bad spec file."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line instead of the usage text plus the error."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


# ---- specs: JSON files and key=value overrides -------------------------------------------------------

def read_spec_file(path: str, what: str = "spec") -> dict:
    """A JSON object from a file; a missing file, bad JSON (with line and column) or a JSON value
    that is not an object is a CommandError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise CommandError(f"{what} file not found: {path}") from None
    except IsADirectoryError:
        raise CommandError(f"{what} file {path} is a folder") from None
    except UnicodeDecodeError:
        raise CommandError(f"{what} file {path} is not UTF-8 text") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise CommandError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(spec, dict):
        raise CommandError(f"{path}: a {what} must be a JSON object {{...}}, not {type(spec).__name__}")
    return spec


def parse_value(text: str) -> Any:
    """A key=value value: JSON when it parses (numbers, true, null, [1], {"a": 1}, "quoted"), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def set_dotted(spec: dict, key: str, value: Any) -> None:
    """spec["a"]["b"] = value for key "a.b", creating objects on the way."""
    parts = key.split(".")
    if any(not p for p in parts):
        raise UsageError(f"bad key {key!r} in {key}=...: empty part")
    node = spec
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"cannot set {key}: {'.'.join(parts[:i + 1])} is {json.dumps(child)}, not an object")
        node = child
    node[parts[-1]] = value


def deep_merge(base: dict, top: dict) -> dict:
    """`top` over `base`, merging nested objects (so optimizer.epochs=3 keeps the file's optimizer.learning_rate)."""
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def split_overrides(items: Sequence[str], prefixes: Sequence[str] = ()) -> dict:
    """key=value strings -> {prefix: spec}; a key starting with one of `prefixes` (e.g. "model.")
    goes, without it, to that prefix's spec, every other key to the "" spec."""
    specs: dict = {p: {} for p in ("", *prefixes)}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {item!r}")
        prefix = next((p for p in prefixes if key.startswith(p)), "")
        set_dotted(specs[prefix], key[len(prefix):], parse_value(value))
    return specs


def build_spec(file: Optional[str], overrides: dict, what: str) -> dict:
    """The spec file (if any) with the overrides merged on top."""
    base = read_spec_file(file, what) if file else {}
    return deep_merge(base, overrides)


# ---- printing ----------------------------------------------------------------------------------------

def format_spec(spec: Any, width: int = 100, indent: str = "  ") -> str:
    """A spec as wrapped `key=value` pairs (dotted keys for nested objects), the form the commands
    take; long lists (a method's trained_tensors) are shortened to their first item and count."""
    pairs = []

    def walk(prefix, value):
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
            return
        if isinstance(value, list) and len(value) > 1 and len(json.dumps(value)) > 60:
            pairs.append(f"{prefix}=[{json.dumps(value[0])}, ... ({len(value)} items)]")
            return
        pairs.append(f"{prefix}={json.dumps(value, separators=(',', ':'))}" if not isinstance(value, str)
                     else f"{prefix}={value if value and ' ' not in value else json.dumps(value)}")

    walk("", spec)
    # Wrapped between pairs, never inside one (a quoted string may hold spaces).
    lines = [""]
    for pair in pairs:
        if lines[-1] and len(indent) + len(lines[-1]) + 1 + len(pair) > width:
            lines.append(pair)
        else:
            lines[-1] = f"{lines[-1]} {pair}" if lines[-1] else pair
    return "\n".join(indent + line for line in lines)


def format_bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _fmt(value: Any) -> str:
    """A metric value: 4 decimals for floats, scientific notation for tiny ones."""
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


# ---- array listings (behemoth info) ------------------------------------------------------------------

_INDEX = re.compile(r"(?<=[./])\d+(?=[./]|$)")  # a numeric path part: the 3 of layers.3.mlp


def _index_range(values: list) -> str:
    values = sorted(set(values))
    if values == list(range(values[0], values[-1] + 1)):
        return f"{{{values[0]}..{values[-1]}}}"
    return "{" + ",".join(str(v) for v in values) + "}"


def collapse_arrays(contents: list, mirrors: dict) -> list:
    """(name, dtype, shape, count, note) rows for an array listing, shortened for reading:
    - arrays that differ only in numeric parts (per-layer weights) with equal dtype and shape become
      one row, `gpt_neox.layers.{0..5}.mlp.dense_h_to_4h.weight`;
    - a folder in `mirrors` ({"/optimizer/m/": "/weights/"}) that holds the same names, dtypes and
      shapes as its model folder becomes one row saying so;
    - three or more plain-named arrays (no dots) in one folder with one shape become one row,
      `folder/*`, naming them the first time a folder has that set of names."""
    rows = [(c["name"], c["dtype"], tuple(c["shape"])) for c in contents]

    # Mirrored folders (optimizer moments have exactly the weights' names and shapes).
    out_mirrors = []
    for folder, model_folder in mirrors.items():
        inside = sorted((n[len(folder):], d, s) for n, d, s in rows if n.startswith(folder))
        reference = sorted((n[len(model_folder):], d, s) for n, d, s in rows if n.startswith(model_folder))
        if inside and inside == reference:
            rows = [r for r in rows if not r[0].startswith(folder)]
            out_mirrors.append((f"{folder}*", "", f"as {model_folder}*", len(inside), ""))

    # Per-layer arrays.
    groups: dict = {}
    for name, dtype, shape in rows:
        pattern = _INDEX.sub("#", name)
        groups.setdefault((pattern, dtype, shape), []).append(name)
    merged = []
    for (pattern, dtype, shape), names in groups.items():
        if len(names) == 1:
            merged.append((names[0], dtype, list(shape), 1, ""))
            continue
        columns = list(zip(*(map(int, _INDEX.findall(n)) for n in names)))
        label = pattern
        for column in columns:
            label = label.replace("#", _index_range(list(column)), 1)
        merged.append((label, dtype, list(shape), len(names), ""))

    # Same-shape siblings (an edit file's /groups/<g>/{correct,probability}_{before,after}).
    by_folder: dict = {}
    final = []
    for row in merged:
        folder, _, leaf = row[0].rpartition("/")
        if folder and row[3] == 1 and "." not in leaf:
            by_folder.setdefault((folder, tuple(row[2])), []).append((leaf, row))
        else:
            final.append(row)
    named = set()
    for (folder, shape), items in by_folder.items():
        if len(items) >= 3:
            leaves = ", ".join(leaf for leaf, _ in items)
            note = "names as above" if leaves in named else leaves
            named.add(leaves)
            dtypes = {row[1] for _, row in items}
            final.append((f"{folder}/*", dtypes.pop() if len(dtypes) == 1 else "mixed", list(shape), len(items), note))
        else:
            final.extend(row for _, row in items)
    return sorted(final + out_mirrors, key=lambda r: r[0])


def print_arrays(contents: list, collapse: bool) -> None:
    if collapse:
        rows = collapse_arrays(contents, {"/optimizer/m/": "/weights/", "/optimizer/v/": "/weights/"})
    else:
        rows = [(c["name"], c["dtype"], list(c["shape"]), 1, "") for c in contents]
    width = min(max((len(r[0]) for r in rows), default=0), 72)
    dtype_width = max((len(r[1]) for r in rows), default=0)
    for name, dtype, shape, count, note in rows:
        shape_text = shape if isinstance(shape, str) else "[" + ", ".join(str(d) for d in shape) + "]"
        times = f"{count} arrays" if count > 1 else ""
        extra = "; ".join(t for t in (times, note) if t)
        print(f"    {name:<{width}}  {dtype:<{dtype_width}}  {shape_text}" + (f"  ({extra})" if extra else ""))


# ---- behemoth info --------------------------------------------------------------------------------------

KINDS = {"behemoth.dataset": "dataset", "behemoth.model": "model", "behemoth.edit": "edit result"}


def is_checkpoint(verified: dict) -> bool:
    names = [c["name"] for c in verified.get("contents", [])]
    return any(n.startswith("/optimizer/") for n in names)


def trainer_state(verified: dict) -> Optional[dict]:
    """A checkpoint's /trainer `state` attribute (steps taken, total steps, training spec), as
    bh_file_verify reports it."""
    state = verified.get("group_attributes", {}).get("/trainer", {}).get("state")
    return state if isinstance(state, dict) else None


def file_summary(path: str, verified: dict) -> dict:
    """What info shows beyond the file's layout: a dataset's counts, a model's training history,
    an edit's metrics (loaded through the Python API; the file has just been verified)."""
    fmt = verified.get("format")
    if fmt == "behemoth.dataset":
        with Dataset.load(path) as ds:
            info = ds.info
        return {"origin": info.get("origin"), "counts": info.get("counts", {}),
                "eval_groups": info.get("eval_groups", []), "relations": info.get("relations", [])}
    if fmt == "behemoth.model":
        with Model.load(path) as m:
            info = m.info
        summary = {"parameters": info.get("parameters"), "history": info.get("history"),
                   "checkpoint": is_checkpoint(verified)}
        if summary["checkpoint"]:
            summary["trainer"] = trainer_state(verified)
        return summary
    report = verified.get("attributes", {}).get("report")
    if isinstance(report, dict) and isinstance(report.get("metrics"), dict):
        return {"metrics": {k: (v.get("value") if isinstance(v, dict) else v) for k, v in report["metrics"].items()},
                "run": {k: report.get(k) for k in ("steps", "final_loss", "stopped_early", "seconds")}}
    return {}


def print_info(path: str, verified: dict, summary: dict, collapse: bool) -> None:
    fmt = verified.get("format", "?")
    attrs = verified.get("attributes", {})
    kind = KINDS.get(fmt, fmt)
    if fmt == "behemoth.model" and summary.get("checkpoint"):
        kind = "training checkpoint (resumable; Model.load reads its weights)"
    print(f"{path}: {kind}")
    print(f"  format    {fmt}, format version {verified.get('format_version')}")
    print(f"  written   by behemoth {verified.get('library_version') or attrs.get('library_version', '?')}"
          + (f", origin {attrs['origin']}" if attrs.get("origin") else ""))
    print(f"  digest    {verified.get('digest')}" + (f" (file {attrs['file_digest']})" if attrs.get("file_digest") else ""))

    spec = attrs.get("spec")
    if fmt == "behemoth.edit":
        if isinstance(spec, dict):
            print("  method")
            print(format_spec(spec, indent="    "))
        edit_set = attrs.get("edit_set")
        if isinstance(edit_set, dict):
            print_edit_set(edit_set)
    elif isinstance(spec, dict):
        print("  spec" if fmt != "behemoth.model" else "  config")
        print(format_spec(spec, indent="    "))

    if fmt == "behemoth.dataset":
        print_dataset_summary(summary)
    elif fmt == "behemoth.model":
        print_model_summary(summary)

    contents = verified.get("contents")
    count, size = verified.get("arrays"), verified.get("array_bytes")
    print(f"  arrays    {count} ({format_bytes(size) if isinstance(size, int) else '?'})")
    if contents is not None:
        print_arrays(contents, collapse)

    run = summary.get("run")
    if run and run.get("steps") is not None:
        loss = f", final loss {run['final_loss']:.4f}" if isinstance(run.get("final_loss"), (int, float)) else ""
        seconds = f" in {run['seconds']:.1f} s" if isinstance(run.get("seconds"), (int, float)) else ""
        print(f"  editing   {run['steps']} steps{seconds}{loss}" + (" (stopped early)" if run.get("stopped_early") else ""))
    if summary.get("metrics"):
        print_metrics(summary["metrics"])


def print_dataset_summary(summary: dict) -> None:
    c = summary.get("counts", {})
    if c:
        print(f"  counts    {c.get('subjects')} subjects × {c.get('relations')} relations × {c.get('objects')} objects"
              f" = {c.get('facts'):,} facts; {c.get('sequences'):,} sequences, {c.get('tokens'):,} tokens,"
              f" vocabulary {c.get('vocab_size'):,}")
    groups = summary.get("eval_groups", [])
    if groups:
        print("  eval      " + ", ".join(f"{g['name']} ({g['prompts']:,} prompts)" for g in groups))


def print_model_summary(summary: dict) -> None:
    if summary.get("parameters") is not None:
        print(f"  params    {summary['parameters']:,}")
    h = summary.get("history") or {}
    if h.get("steps"):
        line = f"  training  {h['steps']:,} steps"
        state = summary.get("trainer")
        if state and state.get("total_steps"):
            line += f" of {state['total_steps']:,}" + (" (finished)" if state.get("finished") else " (not finished)")
        if h.get("final_loss") is not None:
            line += f", final loss {h['final_loss']:.4f}"
        n = h.get("evaluations", 0)
        line += f", {n} evaluation{'' if n == 1 else 's'}"
        accuracy = h.get("final_accuracy")
        if accuracy:
            shown = ", ".join(f"{g} {a:.4f}" for g, a in zip(h.get("eval_groups", []), accuracy))
            line += f"; final accuracy {shown}"
        print(line)
    else:
        print("  training  none recorded (an untrained or plain model)")
    state = summary.get("trainer")
    if state and isinstance(state.get("spec"), dict):
        print("  training spec")
        print(format_spec(state["spec"], indent="    "))


def print_edit_set(edit_set: dict) -> None:
    spec = edit_set.get("spec")
    if isinstance(spec, dict):
        print("  edit set")
        print(format_spec(spec, indent="    "))
    edits = edit_set.get("edits") or []
    for e in edits[:5]:
        print(f"    edit: subject {e.get('subject')}, relation {e.get('relation')}: "
              f"object {e.get('old_object')} -> {e.get('new_object')}")
    if len(edits) > 5:
        print(f"    ... {len(edits)} edits in all")
    if edit_set.get("training"):
        print("    training sentences " + ", ".join(f"{k} {v}" for k, v in edit_set["training"].items()))


def print_metrics(metrics: dict) -> None:
    """Metrics as a table: value after the edit, and before it where the report has `<name>_before`."""
    names = [k for k in metrics if not k.endswith("_before")]
    width = max((len(n) for n in names), default=0)
    print(f"  metrics   {'':<{width - 6}}{'after':>10} {'before':>10}")
    for name in names:
        before = metrics.get(f"{name}_before")
        print(f"    {name:<{width}}  {_fmt(metrics[name]):>10} {_fmt(before) if before is not None else '':>10}".rstrip())


def cmd_info(args) -> int:
    failed = False
    for path in args.files:
        try:
            verified = behemoth.verify_file(path)
            summary = file_summary(path, verified)
        except BehemothError as e:
            _error(e.message)
            failed = True
            continue
        if args.json:
            print(json.dumps(dict(verified, summary=summary), indent=1))
        else:
            print_info(path, verified, summary, collapse=not args.all)
    return 1 if failed else 0


# ---- the other commands ------------------------------------------------------------------------------

def _prepare_output(path: str) -> str:
    """Creates the folder an output file goes into (the library writes the file itself)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise CommandError(f"cannot create the folder {folder} for {path}: {e.strerror}") from None
    return path


def _write_json(path: str, value: Any) -> None:
    _prepare_output(path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
        f.write("\n")


def cmd_run(args) -> int:
    from .main_job import run
    run(args.preset, args.out, seed=args.seed, progress=not args.quiet, command=args.command_line)
    return 0


def cmd_generate(args) -> int:
    spec = build_spec(args.spec, split_overrides(args.overrides)[""], "dataset spec")
    with Dataset.generate(spec) as ds:
        ds.save(_prepare_output(args.out))
        info = ds.info
    print_dataset_line(args.out, info)
    return 0


def print_dataset_line(path: str, info: dict) -> None:
    c = info["counts"]
    print(f"{path}: {c['subjects']} subjects × {c['relations']} relations × {c['objects']} objects = "
          f"{c['facts']:,} facts, {c['sequences']:,} sequences, vocabulary {c['vocab_size']:,} ({info['digest']})")


def cmd_import_official(args) -> int:
    with Dataset.import_reference(args.folder) as ds:
        ds.save(_prepare_output(args.out))
        info = ds.info
    print_dataset_line(args.out, info)
    return 0


def cmd_export_official(args) -> int:
    with Dataset.load(args.dataset) as ds:
        os.makedirs(args.out, exist_ok=True)
        ds.export_reference(args.out)
    print(f"{args.out}: the official generator's folder for {args.dataset}")
    return 0


def cmd_train(args) -> int:
    specs = split_overrides(args.overrides, ("model.",))
    train_spec = build_spec(args.spec, specs[""], "training spec")
    starting_from = args.model or args.resume
    if starting_from and (args.config or specs["model."]):
        raise UsageError("--config and model.* set up a new model; they cannot be combined with --model or --resume")
    if args.model and args.resume:
        raise UsageError("give --model (train further) or --resume (continue a checkpoint's run), not both")

    # The output file is the trainer's checkpoint: written at evaluation points and at the end, resumable.
    given = train_spec.get("checkpoint_path")
    if given and os.path.abspath(given) != os.path.abspath(args.out):
        raise UsageError(f"the training spec's checkpoint_path ({given}) differs from --out ({args.out}); --out sets it")
    train_spec["checkpoint_path"] = _prepare_output(args.out)
    if args.report:
        _prepare_output(args.report)  # before training, not after
    if args.resume:
        train_spec["resume_from"] = args.resume

    with Dataset.load(args.dataset) as ds:
        if starting_from:
            model = Model.load(starting_from)
        else:
            model = Model.create(dataset=ds, config=build_spec(args.config, specs["model."], "model config"))
        with model:
            what = f"from {starting_from}" if starting_from else f"a new model, {model.num_parameters:,} parameters"
            print(f"training on {args.dataset} ({what})", flush=True)
            report = model.train(ds, train_spec, progress=not args.quiet)
    if args.report:
        _write_json(args.report, report)
    accuracy = ", ".join(f"{g} {a:.4f}" for g, a in (report.get("final_accuracy") or {}).items())
    print(f"{args.out}: {report['steps']:,} of {report['total_steps']:,} steps"
          f"{'' if report.get('finished') else ' (not finished)'} in {report['seconds']:.1f} s, "
          f"final loss {report['final_loss']:.4f}" + (f", accuracy {accuracy}" if accuracy else ""))
    return 0


def cmd_evaluate(args) -> int:
    groups = [g for g in args.groups.split(",") if g] if args.groups else None
    with Model.load(args.model) as model, Dataset.load(args.dataset) as ds:
        report = model.evaluate(ds, groups=groups, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{args.model} on {args.dataset}")
    print(f"  {'group':<24} {'prompts':>8} {'accuracy':>9} {'p(target)':>10} {'rank':>8}")
    for name, g in report["groups"].items():
        print(f"  {name:<24} {g['count']:>8,} {g['accuracy']:>9.4f} {g['mean_target_probability']:>10.4f} "
              f"{g['mean_target_rank']:>8.2f}")
    return 0


def cmd_edit(args) -> int:
    specs = split_overrides(args.overrides, ("set.",))
    method = build_spec(args.method, specs[""], "edit method")
    # The method goes to Model.edit as keyword arguments: its spec= argument loses keys such as
    # layers and optimizer to the keywords' defaults. So no key may be one of its Python parameters.
    for key in ("editset", "spec", "progress", "callback"):
        if key in method:
            raise CommandError(f"edit method: unknown key '{key}'")
    if args.official_edit_set and (args.edit_set or specs["set."]):
        raise UsageError("--official-edit-set reads the edit set from a folder; --edit-set and set.* cannot be added")

    with Dataset.load(args.dataset) as ds, Model.load(args.model) as model:
        if args.official_edit_set:
            edit_set = EditSet.import_reference(ds, args.official_edit_set)
        else:
            edit_set = EditSet(ds, build_spec(args.edit_set, specs["set."], "edit set spec"))
        with edit_set:
            for e in edit_set.edits[:5]:
                s, r, old, new = (int(x) for x in e)
                print(f"edit: subject {s}, relation {r}: object {old} -> {new}")
            if len(edit_set) > 5:
                print(f"... {len(edit_set)} edits in all")
            for warning in edit_set.warnings:
                print(f"  note: {warning}")
            with model.edit(edit_set, progress=not args.quiet, **method) as result:
                result.save(_prepare_output(args.out))
                m = result.metrics
            if args.save_model:
                model.save(_prepare_output(args.save_model))
    shown = [f"{k} {m[k]:.3f} (before {m[k + '_before']:.3f})" for k in ("edit_success", "remaining_accuracy")
             if k in m and k + "_before" in m]
    print(f"{args.out}: " + ", ".join(shown) + (f"; edited model {args.save_model}" if args.save_model else ""))
    return 0


def cmd_verify(args) -> int:
    failed = False
    for path in args.files:
        try:
            v = behemoth.verify_file(path)
        except BehemothError as e:
            _error(e.message)
            failed = True
            continue
        if args.json:  # one JSON object per line and file, as the Swift tool prints
            print(json.dumps(v), flush=True)
        else:
            size = v.get("array_bytes")
            print(f"ok  {path}: {v.get('format')}, format version {v.get('format_version')}, {v.get('arrays')} arrays"
                  f" ({format_bytes(size) if isinstance(size, int) else '?'}), digest {v.get('digest')}", flush=True)
    return 1 if failed else 0


def cmd_upgrade(args) -> int:
    _prepare_output(args.new)
    behemoth.upgrade_file(args.old, args.new)
    v = behemoth.verify_file(args.new)
    print(f"{args.new}: {v.get('format')}, format version {v.get('format_version')} (from {args.old})")
    return 0


# ---- the parser ----------------------------------------------------------------------------------------

SPEC_HELP = """\
Specs: a JSON file plus key=value overrides on top. A value is JSON when it parses
(3, 1e-3, true, null, [1,2], "3") and a string otherwise (mlp); dotted keys nest
(optimizer.epochs=20 sets {"optimizer": {"epochs": 20}}). The keys are in
docs/formats.md (dataset) and docs/training-and-editing.md (training, edit set, method)."""

EPILOGS = {
    "run": """\
examples:
  behemoth run                               # the demo preset into out/ (a few minutes on 2 cores)
  behemoth run --preset tiny --out /tmp/t    # seconds
  behemoth run --seed 3 --quiet

Writes dataset.h5, model.h5 (a resumable checkpoint), edit_lora.h5, edit_full.h5, report.json
(every spec, seed, version, metric and this command line) and training.png (needs h5py and
matplotlib). Fails (exit 1) if the model ends below 95% fact accuracy.""",
    "generate": """\
examples:
  behemoth generate preset=tiny --out tiny.h5
  behemoth generate preset=demo seed=3 --out demo.h5
  behemoth generate --spec dataset.json num_nested_objects=2 --out nested.h5

""" + SPEC_HELP,
    "import-official": """\
examples:
  behemoth import-official official_out/ --out dataset.h5

Reads the official generator's folder (metadata/, data/, validations/) strictly; see docs/formats.md.""",
    "export-official": """\
examples:
  behemoth export-official dataset.h5 --out official_out/

Writes tokenizer.json, the text shards, validations and fine-tuning files of the official layout.""",
    "train": """\
examples:
  behemoth train ds.h5 model.preset=tiny epochs=150 batch_size=32 learning_rate=3e-3 --out model.h5
  behemoth train ds.h5 --config model.json --spec train.json --out model.h5 --report train.json
  behemoth train ds.h5 --resume model.h5 --spec train.json --out model.h5   # continue an interrupted run
  behemoth train ds.h5 --model base.h5 epochs=10 --out more.h5              # train a saved model further

Two specs: the training spec (--spec FILE, and key=value) and the model config of a new model
(--config FILE, and model.key=value, e.g. model.preset=tiny model.layers=3). The vocabulary comes
from the dataset. --out is the trainer's checkpoint (checkpoint_path): written at evaluation points
and at the end, resumable with --resume (give the same training spec and dataset).

""" + SPEC_HELP,
    "evaluate": """\
examples:
  behemoth evaluate model.h5 ds.h5
  behemoth evaluate model.h5 ds.h5 --groups sro --json > eval.json""",
    "edit": """\
examples:
  behemoth edit model.h5 ds.h5 set.kind=single set.seed=3 method=lora rank=32 alpha=32 \\
      layers.blocks=[1] layers.sublayers=mlp optimizer.epochs=20 --out edit.h5
  behemoth edit model.h5 ds.h5 --edit-set editset.json --method lora.json --out edit.h5
  behemoth edit model.h5 ds.h5 --method full.json --save-model edited.h5 --out edit.h5

Two specs: the edit method (--method FILE, and key=value: method, rank, alpha, layers.*,
optimizer.*, mode, ...) and the edit set (--edit-set FILE, and set.key=value: set.kind,
set.relation, set.count, set.seed, ...). The dataset must be the one the model was trained on.
--out gets the edit file (deltas, LoRA factors, per-prompt results, the report); the model file is
not changed (--save-model writes the edited model).

""" + SPEC_HELP,
    "info": """\
examples:
  behemoth info out/dataset.h5 out/model.h5 out/edit_lora.h5
  behemoth info out/model.h5 --all          # every array, no collapsing
  behemoth info out/edit_lora.h5 --json     # bh_file_verify's description plus the summary

Checks the file first (as verify does), then prints its format and version, the library version
that wrote it, the digest, the spec, the arrays with their shapes (per-layer arrays collapsed into
one line, e.g. layers.{0..5}), and a summary: a dataset's counts, a model's training (a
checkpoint's position), an edit's metrics after and before.""",
    "verify": """\
examples:
  behemoth verify out/*.h5
  behemoth verify out/model.h5 --json       # one JSON object per file and line

Checks layout, attributes and content digest (datasets and models are loaded in full). A damaged
file gives the library's one-line message and exit code 1.""",
    "upgrade": """\
examples:
  behemoth upgrade old.h5 new.h5

Writes NEW in the current format (version 2) from a file of Behemoth 0.1 (format version 1), which
the library reads in a separate process.""",
}


def _common(p: argparse.ArgumentParser, quiet_help: str = "no progress bars") -> None:
    g = p.add_argument_group("common options")
    g.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    g.add_argument("--threads", type=int, metavar="N", help="threads for matrix products and kernels")


def build_parser() -> tuple:
    """(the parser, {command: its subparser})."""
    parser = _Parser(prog=PROG, description="Behemoth: synthetic knowledge, training, editing and evaluation "
                     "on the CPU. Run 'behemoth COMMAND --help' for a command's options and examples.",
                     epilog="docs/cli.md has every command with examples.")
    parser.add_argument("--version", action="version", version=f"{PROG} (Python binding {behemoth.__version__})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    commands = {}

    def add(name, help_text, function):
        p = sub.add_parser(name, help=help_text.replace("%", "%%"), description=help_text, epilog=EPILOGS[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(function=function)
        commands[name] = p
        return p

    p = add("run", "the main job: generate, train to 95%, evaluate, edit one fact with LoRA and full fine-tuning",
            cmd_run)
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS), help="tiny (seconds) or demo (default)")
    p.add_argument("--out", default="out", metavar="DIR", help="output folder (default: out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the dataset, the model and the edits (default 0)")
    _common(p)

    p = add("generate", "generate a synthetic dataset and save it (Dataset.generate, .save)", cmd_generate)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dataset spec keys (preset=tiny seed=3 ...)")
    p.add_argument("--spec", metavar="FILE.json", help="dataset spec file")
    p.add_argument("-o", "--out", required=True, metavar="FILE.h5", help="the dataset file to write")
    _common(p)

    p = add("import-official", "import the official generator's output folder as a dataset file "
            "(Dataset.import_reference)", cmd_import_official)
    p.add_argument("folder", metavar="DIR", help="the official generator's output folder")
    p.add_argument("-o", "--out", required=True, metavar="FILE.h5", help="the dataset file to write")
    _common(p)

    p = add("export-official", "write a dataset in the official generator's folder layout "
            "(Dataset.export_reference)", cmd_export_official)
    p.add_argument("dataset", metavar="DATASET.h5")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="the folder to write")
    _common(p)

    p = add("train", "train a model on a dataset (Model.create or load, Model.train)", cmd_train)
    p.add_argument("dataset", metavar="DATASET.h5")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="training spec keys (epochs=150 ...); model.key=value for the model config")
    p.add_argument("--spec", metavar="FILE.json", help="training spec file")
    p.add_argument("--config", "--model-config", dest="config", metavar="FILE.json", help="model config file (new model)")
    p.add_argument("--model", metavar="MODEL.h5", help="start from this model's weights instead of a new model")
    p.add_argument("--resume", metavar="CHECKPOINT.h5", help="continue this checkpoint's run exactly (same spec)")
    p.add_argument("-o", "--out", required=True, metavar="MODEL.h5", help="the checkpoint to write (resumable)")
    p.add_argument("--report", metavar="FILE.json", help="also write the training report as JSON")
    _common(p)

    p = add("evaluate", "exact-match fact accuracy of a model on a dataset's evaluation groups (Model.evaluate)",
            cmd_evaluate)
    p.add_argument("model", metavar="MODEL.h5")
    p.add_argument("dataset", metavar="DATASET.h5")
    p.add_argument("--groups", metavar="G1,G2", help="evaluation groups (default: all of the dataset's)")
    p.add_argument("--batch-size", type=int, default=256, help="prompts per batch (default 256)")
    p.add_argument("--json", action="store_true", help="print the evaluation report as JSON")
    _common(p)

    p = add("edit", "edit a model with an edit set and measure it (EditSet, Model.edit, EditResult.save)", cmd_edit)
    p.add_argument("model", metavar="MODEL.h5")
    p.add_argument("dataset", metavar="DATASET.h5", help="the dataset the model was trained on")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="edit method keys (method=lora rank=32 ...); set.key=value for the edit set")
    p.add_argument("--method", metavar="FILE.json", help="edit method spec file")
    p.add_argument("--edit-set", metavar="FILE.json", help="edit set spec file")
    p.add_argument("--official-edit-set", metavar="DIR", help="an official fine-tuning folder instead of an edit set spec")
    p.add_argument("-o", "--out", required=True, metavar="EDIT.h5", help="the edit file to write")
    p.add_argument("--save-model", metavar="MODEL.h5", help="also write the edited model")
    _common(p)

    p = add("info", "a readable summary of any Behemoth file: format, version, spec, arrays, metrics", cmd_info)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--all", action="store_true", help="list every array (no collapsing)")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    _common(p)

    p = add("verify", "check files: HDF5 layout, attributes, content digest (behemoth.verify_file)", cmd_verify)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print bh_file_verify's JSON, one line per file")
    _common(p)

    p = add("upgrade", "write a Behemoth 0.1 file in the current format (behemoth.upgrade_file)", cmd_upgrade)
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    _common(p)

    return parser, commands


def parse_args(argv: Sequence[str]):
    parser, commands = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse takes a positional list in one run of arguments; key=value pairs after an option
    # (generate --out x.h5 seed=3) come back unrecognised and are overrides too.
    command = commands[args.command]
    for item in extra:
        if hasattr(args, "overrides") and "=" in item and not item.startswith("-"):
            args.overrides.append(item)
        else:
            command.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


# ---- main ----------------------------------------------------------------------------------------------

def _error(message: str) -> None:
    # One line: a library message could hold a newline (a file name, say).
    print(f"{PROG}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit code (0 ok, 1 failed, 2 usage, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except UsageError as e:
        _error(e)
        return 2
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0
    args.command_line = [PROG, *argv]
    try:
        if args.threads is not None:
            behemoth.set_num_threads(args.threads)
        return args.function(args)
    except UsageError as e:
        _error(e)
        return 2
    except BehemothError as e:
        _error(e.message)
        return 1
    except (CommandError, JobFailed, LibraryError) as e:
        _error(e)
        return 1
    except BrokenPipeError:  # `behemoth info x.h5 | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # files the command writes itself (report.json, output folders)
        _error(f"{e.strerror}: {e.filename}" if e.filename else e)
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
