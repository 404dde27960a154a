"""Figures of the analysis files (behemoth.plots) and the notebook that opens the files with h5py alone
(examples/analysis.ipynb, executed headless so it never goes stale).

Nothing here needs libbehemoth: the trace, rank, model, dataset and edit files are written with h5py
in the documented layouts (docs/formats.md), small (3 prompts, 6 tokens, 4 blocks) and with known
peaks, so the tests check that each figure draws what it claims."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import repo_root, subprocess_env

h5py = pytest.importorskip("h5py", reason="the figures read HDF5 files with h5py (behemoth[plots])")
matplotlib = pytest.importorskip("matplotlib", reason="the figures need matplotlib (behemoth[plots])")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from behemoth import plots  # noqa: E402

GROUPS = ["before_subject", "subject_first", "subject_middle", "subject_last", "first_after_subject", "relation",
          "further", "last"]
KINDS = ["block", "mlp", "attn", "block_severed_mlp"]
SITES = {"block": "block_output", "mlp": "mlp_output", "attn": "attn_output", "block_severed_mlp": "block_output"}
F, T, L = 3, 6, 4
LENGTHS = [6, 5, 4]
SUBJECTS = [(1, 3), (1, 2), (0, 2)]   # [b, e): a two-token subject, a one-token subject, one at the start
LOW = np.array([0.10, 0.15, 0.20], np.float32)
HIGH = np.array([0.90, 0.80, 0.30], np.float32)
CORRECT = np.array([1, 1, 0], np.uint8)   # the third prompt is answered wrongly: left out of /average
MLP_PEAK_BLOCK = 1                        # where restoring the MLP at the subject's last token helps most
MATRICES = {"gpt_neox.layers.1.mlp.dense_4h_to_h.weight": (16, 32, 2, 1.0),   # rows, cols, rank, scale
            "gpt_neox.layers.1.mlp.dense_h_to_4h.weight": (32, 16, 3, 0.3),
            "gpt_neox.layers.0.attention.dense.weight": (16, 16, 5, 0.05)}


# ---------------------------------------------------------------------------------------------- writers

def put_text(obj, key: str, value: str) -> None:
    """A fixed-length UTF-8 string attribute, as the library writes them."""
    data = value.encode("utf-8")
    obj.attrs.create(key, data, dtype=h5py.string_dtype("utf-8", max(len(data), 1)))


def root_attrs(f, fmt: str, version: int, spec: dict) -> None:
    put_text(f, "format", fmt)
    f.attrs["format_version"] = np.int64(version)
    put_text(f, "spec", json.dumps(spec))
    put_text(f, "library_version", "0.1.0")
    put_text(f, "digest", "xxh64:0123456789abcdef")
    put_text(f, "file_digest", "xxh64:fedcba9876543210")


def token_groups(n: int, b: int, e: int) -> list:
    out = []
    for i in range(n):
        if i == n - 1:
            out.append(GROUPS.index("last"))
        elif i < b:
            out.append(GROUPS.index("before_subject"))
        elif i == e - 1:
            out.append(GROUPS.index("subject_last"))
        elif i == b:
            out.append(GROUPS.index("subject_first"))
        elif i < e:
            out.append(GROUPS.index("subject_middle"))
        elif i == e:
            out.append(GROUPS.index("first_after_subject"))
        elif i == e + 1:
            out.append(GROUPS.index("relation"))
        else:
            out.append(GROUPS.index("further"))
    return out


def effect(kind: str, group: str, block: int) -> float:
    """The synthetic indirect effect (as a fraction of high − low): the MLP at the subject's last token
    peaks at MLP_PEAK_BLOCK, attention at the last token in late blocks, the block output is both."""
    mlp = {"subject_last": [0.3, 0.7, 0.2, 0.0], "subject_first": [0.2, 0.3, 0.1, 0.0]}.get(group, [0.0] * L)[block]
    attn = {"last": [0.0, 0.1, 0.5, 0.6]}.get(group, [0.0] * L)[block]
    if kind == "mlp":
        return mlp
    if kind == "attn":
        return attn
    late = (block + 1) / L if group == "last" else 0.0
    subject = {"subject_last": [0.9, 0.8, 0.4, 0.1], "subject_first": [0.5, 0.3, 0.1, 0.0]}.get(group, [0.0] * L)[block]
    if kind == "block":
        return max(late, subject)
    return max(late, subject - mlp)   # block_severed_mlp: the subject's effect without its MLPs


def write_trace(path) -> dict:
    """A behemoth.trace file; returns what the figures should show."""
    groups = np.full((F, T), -1, np.int32)
    scores = {k: np.full((F, T, L), np.nan, np.float32) for k in KINDS}
    prompts, offsets = [], [0]
    for p, (n, (b, e)) in enumerate(zip(LENGTHS, SUBJECTS)):
        prompts += list(range(100 + 10 * p, 100 + 10 * p + n))
        offsets.append(offsets[-1] + n)
        groups[p, :n] = token_groups(n, b, e)
        for k in KINDS:
            for i in range(n):
                for layer in range(L):
                    scores[k][p, i, layer] = LOW[p] + (HIGH[p] - LOW[p]) * effect(k, GROUPS[groups[p, i]], layer)
    average = {k: np.full((len(GROUPS), L), np.nan, np.float32) for k in KINDS}
    for k in KINDS:
        for g in range(len(GROUPS)):
            per_prompt = [np.mean(scores[k][p][groups[p] == g] - LOW[p], axis=0)
                          for p in range(F) if CORRECT[p] and (groups[p] == g).any()]
            if per_prompt:
                average[k][g] = np.mean(per_prompt, axis=0)
    total = float(np.mean((HIGH - LOW)[CORRECT.astype(bool)]))
    target = np.array([7, 8, 9], np.int32)
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        root_attrs(f, "behemoth.trace", 1, {"samples": 10, "noise": 3.0, "noise_scale": "subject_std", "sigma": 0.1,
                                            "replace": False, "window": 1, "kinds": ["block", "mlp", "attn"],
                                            "severed": ["mlp"], "seed": 1, "model_digest": "xxh64:1",
                                            "dataset_digest": "xxh64:2"})
        f["prompts"] = np.array(prompts, np.int32)
        f["offsets"] = np.array(offsets, np.int64)
        f["facts"] = np.array([4, 5, -1], np.int32)
        f["target"] = target
        f["answer"] = np.where(CORRECT == 1, target, 3).astype(np.int32)
        f["correct"] = CORRECT
        f["subject_range"] = np.array(SUBJECTS, np.int32)
        f["low"], f["high"] = LOW, HIGH
        for k in KINDS:
            f[f"scores/{k}"] = scores[k]
            put_text(f[f"scores/{k}"], "site", SITES[k])
        f["token_groups"] = groups
        put_text(f["token_groups"], "names", json.dumps(GROUPS))
        for k in KINDS:
            f[f"average/{k}"] = average[k]
        f["average/total_effect"] = np.array([total], np.float32)
        f["average"].attrs["count"] = np.int64(CORRECT.sum())
    return {"average": average, "total": total, "scores": scores}


def low_rank(rows: int, cols: int, rank: int, scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((rows, rank)))
    v, _ = np.linalg.qr(rng.standard_normal((cols, rank)))
    s = scale * 0.5 ** np.arange(rank)
    return ((u * s) @ v.T + 1e-4 * scale * rng.standard_normal((rows, cols))).astype(np.float32)


def rank_measures(delta: np.ndarray) -> dict:
    d = delta.astype(np.float64)
    s = np.linalg.svd(d, compute_uv=False)
    p = s / s.sum()
    energy = np.cumsum(s ** 2) / (s ** 2).sum()
    return {"s": s, "effective_rank": float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum())),
            "energy_rank_90": float(np.searchsorted(energy, 0.9) + 1), "energy_rank_99": float(np.searchsorted(energy, 0.99) + 1),
            "stable_rank": float((s ** 2).sum() / s[0] ** 2),
            "numerical_rank": float((s > s[0] * max(d.shape) * np.finfo(np.float32).eps).sum()),
            "frobenius_norm": float(np.linalg.norm(d)), "spectral_norm": float(s[0]),
            "rows": float(d.shape[0]), "cols": float(d.shape[1])}


def write_rank(path, deltas: dict, source: str = "edit") -> dict:
    """A behemoth.rank file of `deltas` ({name: ΔW}); returns each matrix's measures."""
    measures = {n: rank_measures(d) for n, d in deltas.items()}
    names = list(deltas)
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        root_attrs(f, "behemoth.rank", 1, {"source": source, "method": "full", "matrices": len(names)})
        for n in names:
            f[f"singular_values/{n}"] = measures[n]["s"].astype(np.float32)
            f[f"singular_values/{n}"].attrs["rows"] = np.int64(deltas[n].shape[0])
            f[f"singular_values/{n}"].attrs["cols"] = np.int64(deltas[n].shape[1])
        table = f.create_group("table")
        put_text(table, "names", json.dumps(names))
        for metric in ("effective_rank", "energy_rank_90", "energy_rank_99", "stable_rank", "numerical_rank",
                       "frobenius_norm", "spectral_norm", "rows", "cols"):
            table[metric] = np.array([measures[n][metric] for n in names], np.float64)
    return measures


def deltas(names) -> dict:
    return {n: low_rank(*MATRICES[n], seed=i) for i, n in enumerate(names)}


def write_model(path) -> None:
    steps = np.arange(1, 41, dtype=np.int64)
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        root_attrs(f, "behemoth.model", 2, {"preset": "tiny", "layers": L, "hidden": 16, "heads": 2})
        h = f.create_group("history")
        put_text(h, "groups", json.dumps(["sro", "questions"]))
        h["step"] = steps
        h["loss"] = (5.0 * np.exp(-steps / 10) + 0.1).astype(np.float32)
        h["learning_rate"] = np.full(len(steps), 3e-3, np.float32)
        h["eval_step"] = np.array([10, 20, 30, 40], np.int64)
        h["eval_accuracy"] = np.array([[0.2, 0.1], [0.6, 0.4], [0.9, 0.7], [1.0, 0.8]], np.float32)


def write_dataset(path) -> None:
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        root_attrs(f, "behemoth.dataset", 2, {"preset": "tiny", "subjects": 8, "relationships": 2, "seed": 0})


def write_edit(path, changed: dict, method: str = "full") -> None:
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        root_attrs(f, "behemoth.edit", 2, {"method": method, "trained_tensors": list(changed) * 5})
        for n, d in changed.items():
            f[f"deltas/{n}"] = d
        f["deltas/gpt_neox.layers.1.mlp.dense_4h_to_h.bias"] = np.full(16, 10.0, np.float32)   # 1-D: not a matrix


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "trace.h5"
    return path, write_trace(path)


@pytest.fixture(scope="module")
def rank(tmp_path_factory):
    path = tmp_path_factory.mktemp("rank") / "rank.h5"
    return path, write_rank(path, deltas(MATRICES))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def written(base) -> bool:
    return all(os.path.getsize(f"{base}.{ext}") > 1000 for ext in ("png", "pdf"))


def colour_bar_label(fig, i: int) -> str:
    return fig.axes[i].get_ylabel()


# ---------------------------------------------------------------------------------------------- figures

def test_trace_heatmap_average_by_token_group(trace, tmp_path):
    path, expected = trace
    fig = plots.trace_heatmap(path, out=tmp_path / "average")
    assert written(tmp_path / "average")
    panels = fig.axes[:len(KINDS)]
    assert len(fig.axes) == 2 * len(KINDS), "one panel and one colour bar per kind"
    assert all(len(ax.images) == 1 for ax in panels)
    # subject_middle and further hold no position of a correct prompt: those rows are left out
    shown = ["before_subject", "subject_first", "subject_last", "first_after_subject", "relation", "last"]
    assert [t.get_text() for t in panels[0].get_yticklabels()] == [g.replace("_", " ") for g in shown]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == [str(b) for b in range(L)]
    assert panels[0].get_xlabel() == "block"
    rows = [GROUPS.index(g) for g in shown]
    for ax, k in zip(panels, KINDS):
        np.testing.assert_allclose(ax.images[0].get_array(), expected["average"][k][rows], rtol=1e-6)
        assert plots.KIND_TITLES[k] in ax.get_title()
    mlp = panels[KINDS.index("mlp")].images[0].get_array()
    assert np.unravel_index(np.nanargmax(mlp), mlp.shape) == (shown.index("subject_last"), MLP_PEAK_BLOCK)
    assert "average indirect effect" in colour_bar_label(fig, len(fig.axes) - 1)
    assert "2 correctly answered" in fig._suptitle.get_text()


def test_trace_heatmap_one_prompt(trace, tmp_path):
    path, expected = trace
    fig = plots.trace_heatmap(path, fact=0, out=tmp_path / "prompt0")
    assert written(tmp_path / "prompt0") and len(fig.axes) == 2 * len(KINDS)
    image = fig.axes[0].images[0]
    assert image.get_array().shape == (LENGTHS[0], L)
    np.testing.assert_allclose(image.get_array(), expected["scores"]["block"][0, :LENGTHS[0]])
    assert image.norm.vmin == pytest.approx(float(LOW[0])), "the colour starts at the prompt's low score"
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["100", "101*", "102*", "103", "104", "105"], "token ids, the subject's marked"
    assert colour_bar_label(fig, len(fig.axes) - 1) == "p(answer)"
    assert "answer 7 (correct)" in fig._suptitle.get_text()

    # a shorter prompt: only its own tokens (no NaN rows); labels given; one kind
    fig = plots.trace_heatmap(path, fact=1, kinds=["mlp"], labels=["The", "Eiffel", "is", "in", "?"],
                              out=tmp_path / "prompt1")
    assert written(tmp_path / "prompt1") and len(fig.axes) == 2
    assert fig.axes[0].images[0].get_array().shape == (LENGTHS[1], L)
    assert not np.isnan(fig.axes[0].images[0].get_array()).any()
    assert fig.axes[0].get_yticklabels()[1].get_text() == "Eiffel"

    # the wrongly answered prompt of no fact (explicit prompt)
    fig = plots.trace_heatmap(path, fact=2, kinds=["attn", "block"])
    assert "expected 9" in fig._suptitle.get_text() and "fact" not in fig._suptitle.get_text().split(":")[0]

    with pytest.raises(IndexError):
        plots.trace_heatmap(path, fact=F)
    with pytest.raises(ValueError, match="labels"):
        plots.trace_heatmap(path, fact=0, labels=["a"])
    with pytest.raises(ValueError, match="block_severed_attn"):
        plots.trace_heatmap(path, fact=0, kinds=["block_severed_attn"])


def test_trace_heatmap_takes_an_open_file(trace):
    path, _ = trace
    with h5py.File(path, "r") as f:
        fig = plots.trace_heatmap(f, kinds=["mlp"])
        assert len(fig.axes) == 2
        assert f["low"].shape == (F,), "the caller's file stays open"


def test_causal_effect_curves(trace, tmp_path):
    path, expected = trace
    fig = plots.causal_effect_curves(path, out=tmp_path / "curves")
    assert written(tmp_path / "curves") and len(fig.axes) == 2
    at_subject, at_last = fig.axes
    assert "subject last" in at_subject.get_title() and "last token" in at_last.get_title()
    for ax, group in ((at_subject, "subject_last"), (at_last, "last")):
        assert len(ax.lines) == len(KINDS) + 1, "one line per kind and the total effect"
        for line, k in zip(ax.lines, KINDS):
            np.testing.assert_allclose(line.get_ydata(), expected["average"][k][GROUPS.index(group)], rtol=1e-6)
        total = ax.lines[-1]
        assert total.get_linestyle() == "--" and np.allclose(total.get_ydata(), expected["total"])
    assert int(np.argmax(at_subject.lines[KINDS.index("mlp")].get_ydata())) == MLP_PEAK_BLOCK
    labels = [t.get_text() for t in at_last.get_legend().get_texts()]
    assert "MLP output" in labels and any(t.startswith("total effect") for t in labels)

    fig = plots.causal_effect_curves(path, group="last", kinds=["block", "attn"])
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3
    with pytest.raises(ValueError, match="token group"):
        plots.causal_effect_curves(path, group="nowhere")


def test_spectra(rank, tmp_path):
    path, measures = rank
    by_norm = sorted(measures, key=lambda n: -measures[n]["frobenius_norm"])
    fig = plots.spectra(path, out=tmp_path / "spectra", top=2)
    assert written(tmp_path / "spectra") and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), measures[by_norm[0]]["s"], rtol=1e-5)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    first = measures[by_norm[0]]
    assert legend[0].startswith("L1.mlp.dense_4h_to_h")
    assert f"entropy rank {first['effective_rank']:.1f}" in legend[0] and f"90% energy {int(first['energy_rank_90'])}" in legend[0]

    fig = plots.spectra(path)                       # top 8 of 3: all of them
    assert len(fig.axes[0].lines) == len(MATRICES)
    with h5py.File(path, "r") as f:
        fig = plots.spectra(f, names=[by_norm[-1]])
    assert len(fig.axes[0].lines) == 1
    with pytest.raises(ValueError, match="no matrix"):
        plots.spectra(path, names=["gpt_neox.layers.9.mlp.dense_4h_to_h.weight"])


def test_localization_vs_editing(tmp_path):
    facts = [{"fact": i, "trace_peak_block": i % 3, "best_edit_block": {"rome": i % 3, "lora": 2}} for i in range(6)]
    report = {"editors": ["rome", "lora"], "kind": "mlp", "group": "subject_last", "blocks": [0, 1, 2, 3], "facts": facts,
              "correlation": {"rome": {"pearson": 1.0, "spearman": 1.0, "n": 6}, "lora": {"pearson": None, "spearman": None, "n": 6}}}
    fig = plots.localization_vs_editing(report, out=tmp_path / "localization")
    assert written(tmp_path / "localization") and len(fig.axes) == 2
    rome, lora = fig.axes
    points = rome.collections[0].get_offsets()
    assert len(points) == len(facts)
    assert np.abs(points[:, 0] - [r["trace_peak_block"] for r in facts]).max() <= 0.15 + 1e-9, "jittered, not moved"
    assert "Pearson 1.00" in rome.get_title() and "Spearman 1.00" in rome.get_title()
    assert "Pearson n/a" in lora.get_title()
    assert "tracing peaks" in rome.get_xlabel() and "edit works best" in rome.get_ylabel()

    path = tmp_path / "localization.json"
    path.write_text(json.dumps({k: v for k, v in report.items() if k not in ("blocks", "kind", "group")}))
    fig = plots.localization_vs_editing(str(path))
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2"]


def test_importing_behemoth_does_not_import_matplotlib():
    code = "import sys, behemoth\nassert 'matplotlib' not in sys.modules\nprint(behemoth.plots.trace_heatmap.__name__)"
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "trace_heatmap"


# ---------------------------------------------------------------------------------------------- the notebook

NOTEBOOK_IMPORTS = {"h5py", "numpy", "json", "os", "matplotlib", "matplotlib.pyplot"}


def notebook_path():
    root = repo_root()
    if root is None:
        pytest.skip("the notebook lives in the repository's examples/ (this is an installed copy of the tests)")
    return root / "examples" / "analysis.ipynb"


def test_notebook_is_committed_clean():
    nbformat = pytest.importorskip("nbformat", reason="reading the notebook needs nbformat (requirements.txt)")
    nb = nbformat.read(notebook_path(), as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "outputs are cleared"
    imported = set()
    for c in code:
        for node in ast.walk(ast.parse(c.source)):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
    assert imported <= NOTEBOOK_IMPORTS, f"the notebook imports {sorted(imported - NOTEBOOK_IMPORTS)}"
    assert not any("behemoth" in m for m in imported)


def test_notebook_runs_on_files_written_with_h5py(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="executing the notebook needs nbclient (requirements.txt)")
    nbformat = pytest.importorskip("nbformat", reason="executing the notebook needs nbformat (requirements.txt)")
    pytest.importorskip("ipykernel", reason="executing the notebook needs ipykernel (requirements.txt)")
    path = notebook_path()
    out = tmp_path / "out"
    out.mkdir()
    write_dataset(out / "dataset.h5")
    write_model(out / "model.h5")
    changed = deltas(list(MATRICES)[:2])
    write_edit(out / "edit_full.h5", changed)
    write_rank(out / "rank.h5", changed)
    write_edit(out / "edit_lora.h5", {"gpt_neox.layers.1.mlp.dense_h_to_4h.weight": low_rank(32, 16, 1, 0.1, seed=7)},
               method="lora")
    write_trace(out / "trace.h5")
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("BEHEMOTH_OUT", str(out))
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    for name in ("training", "trace", "spectrum"):
        assert os.path.getsize(out / f"notebook_{name}.png") > 1000, name
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    for fmt in ("behemoth.dataset", "behemoth.model", "behemoth.edit", "behemoth.trace", "behemoth.rank"):
        assert f"format {fmt}, format_version" in text, fmt
    assert "edit_lora.h5: format behemoth.edit" in text and '"method": "lora"' in text
    assert '"noise_scale": "subject_std"' in text, "the trace's spec is printed"
    assert "2 answered correctly" in text
    assert "the largest delta is gpt_neox.layers.1.mlp.dense_4h_to_h.weight" in text, "the largest matrix, not the 1-D bias"
    diff = float(text.split("largest |σ(rank.h5) − σ(numpy)| = ")[1].split()[0])
    assert diff < 1e-5, "rank.h5's singular values and numpy's SVD of the edit file agree"
    images = [o for o in outputs if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) == 3, "each figure is shown too"


# ---- on files the library wrote: the tiny main job's trace, rank and sweep ------------------------

@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The main job's files on the tiny preset (a few seconds): dataset, model, edits, rank, trace, sweep."""
    from behemoth.main_job import run
    out = tmp_path_factory.mktemp("job")
    run("tiny", str(out), progress=False)
    return out


def test_figures_of_the_main_jobs_files(job, tmp_path):
    fig = plots.trace_heatmap(job / "trace.h5", out=tmp_path / "avg")
    assert all(os.path.getsize(tmp_path / f"avg.{e}") > 1000 for e in ("png", "pdf"))
    assert sum(len(a.images) for a in fig.axes) == 3                 # block, mlp, attn
    fig = plots.trace_heatmap(job / "trace.h5", fact=0, out=tmp_path / "one")
    assert any(t.get_text().endswith("*") for t in fig.axes[0].get_yticklabels()), "the subject is marked"
    plots.causal_effect_curves(job / "trace.h5", out=tmp_path / "curves")
    fig = plots.spectra(job / "rank.h5", out=tmp_path / "spectra", top=3)
    assert len(fig.axes[0].lines) == 3
    figs = plots.sweep(job / "sweep" / "results.csv", out=tmp_path / "sweep")
    assert len([a for a in figs["heatmaps"].axes if a.images]) == 2    # one edit kind × (edit success, remaining)
    assert os.path.getsize(tmp_path / "sweep_tradeoff.png") > 1000
    plt.close("all")


def test_notebook_runs_on_the_main_jobs_files(job, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="executing the notebook needs nbclient (requirements.txt)")
    nbformat = pytest.importorskip("nbformat", reason="executing the notebook needs nbformat (requirements.txt)")
    pytest.importorskip("ipykernel", reason="executing the notebook needs ipykernel (requirements.txt)")
    root = repo_root()
    if root is None:
        pytest.skip("the notebook lives in the repository's examples/ (this is an installed copy of the tests)")
    nb = nbformat.read(root / "examples" / "analysis.ipynb", as_version=4)
    monkeypatch.setenv("BEHEMOTH_OUT", str(job))
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(root / "examples")}}).execute()
    for name in ("training", "trace", "spectrum"):
        assert os.path.getsize(job / f"notebook_{name}.png") > 1000
