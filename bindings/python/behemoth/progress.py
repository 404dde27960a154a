"""Driving the C API's begin/step/end state machines from Python, with an optional tqdm bar.

Long work (training, editing, tracing) is `*_begin`, then `*_step` until it returns BH_DONE, then
`*_end`. `run_steps` is the loop the handle classes use: it calls a step function, updates a progress
bar with the metrics it returns, lets the caller stop early (a callback or Ctrl-C) and always runs the
`end` function.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, Optional

from .errors import Status

__all__ = ["progress_bar", "run_steps", "StepResult"]


class _NoBar:
    """Stands in for tqdm when progress is off or tqdm is not installed."""

    def __init__(self, total=None, **_kw):
        self.total = total
        self.n = 0

    def update(self, n=1):
        self.n += n

    def set_postfix(self, *_a, **_kw):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_bar(total: Optional[int] = None, desc: Optional[str] = None, enabled: Optional[bool] = None,
                 unit: str = "step", **kwargs):
    """A tqdm bar, or a silent stand-in when `enabled` is False or tqdm is missing.

    `enabled=None` means: show the bar when stderr is a terminal or a notebook is running."""
    if enabled is None:
        enabled = sys.stderr.isatty() or "ipykernel" in sys.modules
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            enabled = False
    if not enabled:
        return _NoBar(total=total)
    return tqdm(total=total, desc=desc, unit=unit, **kwargs)


class StepResult:
    """What `run_steps` returns: how many steps ran, the last metrics, and whether it finished."""

    def __init__(self, steps: int, metrics: Mapping[str, Any], done: bool, stopped: bool):
        self.steps = steps
        self.metrics = dict(metrics)
        self.done = done
        self.stopped = stopped

    def __repr__(self) -> str:
        return f"StepResult(steps={self.steps}, done={self.done}, stopped={self.stopped}, metrics={self.metrics})"


def run_steps(step: Callable[[], tuple[int, Mapping[str, Any]]], *,
              end: Optional[Callable[[], Any]] = None,
              total: Optional[int] = None,
              desc: Optional[str] = None,
              progress: Optional[bool] = None,
              postfix: Optional[Callable[[Mapping[str, Any]], Mapping[str, Any]]] = None,
              should_stop: Optional[Callable[[int, Mapping[str, Any]], bool]] = None,
              max_steps: Optional[int] = None) -> StepResult:
    """Calls `step()` until it returns Status.DONE.

    step: returns (status, metrics); status is Status.STEP or Status.DONE (errors are raised by the
        step function itself, through _lib.check). (Status.DONE, {}) means no step was taken (the C
        *_step calls return BH_DONE without doing anything): it neither moves the bar nor counts. metrics may hold "step" (the absolute step, used to
        move the bar) and anything to show beside it.
    end: called once at the end, also after an exception or Ctrl-C (the *_end function).
    total: number of steps for the bar; postfix: picks what to show from the metrics.
    should_stop(steps, metrics) -> True stops early; so do max_steps and KeyboardInterrupt (which is
        re-raised after `end` ran).
    """
    steps = 0
    metrics: Mapping[str, Any] = {}
    done = stopped = False
    # The bar is drawn from the first step report on, which says how many steps there are (a bar
    # made before it would show a bare count, "0step", until then).
    bar = None
    try:
        while True:
            status, reported = step()
            if status == Status.DONE and not reported:
                done = True  # BH_DONE with nothing to report: no step was taken
                break
            metrics = reported
            steps += 1
            position = metrics.get("step") if isinstance(metrics, Mapping) else None
            total_now = metrics.get("total_steps") if isinstance(metrics, Mapping) else None
            if bar is None:
                known = total_now if isinstance(total_now, int) and not isinstance(total_now, bool) else total
                bar = progress_bar(total=known, desc=desc, enabled=progress)
            if isinstance(total_now, int) and not isinstance(total_now, bool) and total_now != bar.total:
                bar.total = total_now  # the C step reports say how many steps there are
                if hasattr(bar, "refresh"):
                    bar.refresh()
            if isinstance(position, int) and position >= bar.n:
                bar.update(position - bar.n)
            else:
                bar.update(1)
            shown = postfix(metrics) if postfix else {k: v for k, v in metrics.items()
                                                      if isinstance(v, (int, float)) and k not in ("step", "total_steps")}
            if shown:
                bar.set_postfix(shown, refresh=False)
            if status == Status.DONE:
                done = True
                break
            if status != Status.STEP:
                raise ValueError(f"step function returned status {status}, expected BH_STEP or BH_DONE")
            if (max_steps is not None and steps >= max_steps) or (should_stop and should_stop(steps, metrics)):
                stopped = True
                break
    finally:
        if bar is not None:
            bar.close()
        if end is not None:
            end()
    return StepResult(steps, metrics, done, stopped)
