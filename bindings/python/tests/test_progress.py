"""The begin/step/end driver that Model/Trainer classes will use (no library needed)."""
from __future__ import annotations

import pytest

from behemoth import Status
from behemoth.progress import progress_bar, run_steps


def fake_machine(n, fail_at=None):
    state = {"step": 0, "ended": 0}

    def step():
        if fail_at is not None and state["step"] == fail_at:
            raise RuntimeError("boom")
        state["step"] += 1
        status = Status.DONE if state["step"] == n else Status.STEP
        return status, {"step": state["step"], "loss": 1.0 / state["step"]}

    def end():
        state["ended"] += 1

    return step, end, state


def test_runs_to_done():
    step, end, state = fake_machine(5)
    r = run_steps(step, end=end, total=5, progress=False)
    assert (r.steps, r.done, r.stopped, state["ended"]) == (5, True, False, 1)
    assert r.metrics["loss"] == pytest.approx(0.2)


def test_stops_early():
    step, end, state = fake_machine(100)
    r = run_steps(step, end=end, should_stop=lambda n, m: m["loss"] < 0.1, progress=False)
    assert (r.steps, r.done, r.stopped, state["ended"]) == (11, False, True, 1)
    step, end, state = fake_machine(100)
    r = run_steps(step, end=end, max_steps=3, progress=False)
    assert (r.steps, r.stopped) == (3, True)


def test_end_runs_after_error():
    step, end, state = fake_machine(10, fail_at=4)
    with pytest.raises(RuntimeError):
        run_steps(step, end=end, progress=False)
    assert state["ended"] == 1


def test_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    step, end, _ = fake_machine(4)
    r = run_steps(step, end=end, total=4, desc="train", progress=True)
    assert r.done
    assert "train" in capsys.readouterr().err


def test_bad_status():
    with pytest.raises(ValueError):
        run_steps(lambda: (Status.OK, {}), progress=False)


def test_no_bar_stand_in():
    bar = progress_bar(total=3, enabled=False)
    bar.update(2)
    bar.set_postfix({"loss": 1.0}, refresh=False)
    bar.close()
    assert bar.n == 2


def test_bar_starts_with_the_reported_total(capsys):
    # The C step reports carry total_steps; the bar is drawn from the first report, so it never
    # shows a bare count ("0step") without its total.
    pytest.importorskip("tqdm")
    state = {"step": 0}

    def step():
        state["step"] += 1
        return (Status.DONE if state["step"] == 3 else Status.STEP), {"step": state["step"], "total_steps": 3}

    r = run_steps(step, desc="edit", progress=True)
    err = capsys.readouterr().err
    assert r.done and "3/3" in err
    # A bar without a total renders a bare count ("0step [00:00, ...]"); one with a total renders
    # "n/3". Every frame drawn must carry the total (the rate "...20step/s" is not a bare count).
    frames = [f for f in err.replace("\r", "\n").split("\n") if f.strip()]
    assert frames and all("/3" in f for f in frames), frames
