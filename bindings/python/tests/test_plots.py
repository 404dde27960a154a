"""Figures of the analysis files, and the notebook that opens the main job's files with h5py alone
(executed headless, so it never goes stale)."""
from __future__ import annotations

import os

import pytest

from conftest import repo_root

matplotlib = pytest.importorskip("matplotlib", reason="the figures need matplotlib (behemoth[plots])")
matplotlib.use("Agg")

from behemoth import plots  # noqa: E402


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The main job's files on the tiny preset (a few seconds): dataset, model, edits, rank, trace."""
    from behemoth.main_job import run
    out = tmp_path_factory.mktemp("job")
    run("tiny", str(out), progress=False)
    return out


def written(base) -> bool:
    return all(os.path.getsize(f"{base}.{ext}") > 1000 for ext in ("png", "pdf"))


def test_trace_figures(job, tmp_path):
    fig = plots.trace_heatmap(job / "trace.h5", out=tmp_path / "avg")
    assert written(tmp_path / "avg") and len(fig.axes) == 6          # 3 kinds + their colour bars
    assert len(fig.axes[0].images) == 1 and fig.axes[0].get_yticklabels()[0].get_text() == "before subject"
    fig = plots.trace_heatmap(job / "trace.h5", fact=0, kinds=["mlp"], out=tmp_path / "one")
    assert written(tmp_path / "one") and len(fig.axes) == 2
    assert any(label.get_text().endswith("*") for label in fig.axes[0].get_yticklabels()), "the subject is marked"
    fig = plots.causal_effect_curves(job / "trace.h5", out=tmp_path / "curves")
    assert written(tmp_path / "curves") and len(fig.axes) == 2 and len(fig.axes[0].lines) == 4   # 3 kinds + total
    with pytest.raises(IndexError):
        plots.trace_heatmap(job / "trace.h5", fact=10 ** 6)
    with pytest.raises(ValueError, match="token group"):
        plots.causal_effect_curves(job / "trace.h5", group="nowhere")


def test_spectra_and_localization_figures(job, tmp_path):
    fig = plots.spectra(job / "rank.h5", out=tmp_path / "spectra", top=3)
    assert written(tmp_path / "spectra") and len(fig.axes[0].lines) == 3
    assert "entropy rank" in fig.axes[0].get_legend().get_texts()[0].get_text()
    report = {"editors": ["rome"], "kind": "mlp", "group": "subject_last", "blocks": [0, 1],
              "facts": [{"fact": i, "trace_peak_block": i % 2, "best_edit_block": {"rome": 1}} for i in range(4)],
              "correlation": {"rome": {"pearson": None, "spearman": None, "n": 4}}}
    fig = plots.localization_vs_editing(report, out=tmp_path / "loc")
    assert written(tmp_path / "loc") and len(fig.axes[0].collections[0].get_offsets()) == 4


def test_notebook_runs_on_the_main_jobs_files(job):
    nbclient = pytest.importorskip("nbclient", reason="executing the notebook needs nbclient (requirements.txt)")
    nbformat = pytest.importorskip("nbformat", reason="executing the notebook needs nbformat (requirements.txt)")
    pytest.importorskip("ipykernel", reason="executing the notebook needs ipykernel (requirements.txt)")
    root = repo_root()
    if root is None:
        pytest.skip("the notebook lives in the repository's examples/ (this is an installed copy of the tests)")
    nb = nbformat.read(root / "examples" / "analysis.ipynb", as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "import behemoth" not in source and "from behemoth" not in source, "the notebook needs h5py alone"
    old = os.environ.get("BEHEMOTH_OUT")
    os.environ["BEHEMOTH_OUT"] = str(job)
    try:
        nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(root / "examples")}}).execute()
    finally:
        if old is None:
            os.environ.pop("BEHEMOTH_OUT", None)
        else:
            os.environ["BEHEMOTH_OUT"] = old
    for name in ("training", "trace", "spectrum"):
        assert os.path.getsize(job / f"notebook_{name}.png") > 1000
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "behemoth.trace" in text and "behemoth.rank" in text
