"""What every task run shares: the target monitor, the result record, the summary table.

A task's ``run()`` builds its model, trains it with ``fit`` and a :class:`Monitor`
callback, and returns a :class:`TaskResult`.  The monitor measures the task's own
metric on held-out data every ``every`` optimizer steps (the same numbers the
plots draw against steps) and stops training as soon as the target is met, so
"epochs" and "optimizer steps" in the results are time to target.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..callbacks import Callback
from ..history import History

__all__ = ["Measurement", "Monitor", "TimeLimit", "TaskResult", "summary_table", "fmt_pct"]


@dataclass
class Measurement:
    """One look at the model on held-out data.

    ``value`` is the task's target metric (e.g. per-bit accuracy), ``loss`` the
    held-out loss, ``extra`` anything else worth keeping (n=16 accuracy...).
    """

    value: float
    loss: float = math.nan
    extra: dict[str, float] = field(default_factory=dict)


class Monitor(Callback):
    """Measure every ``every`` optimizer steps and at each epoch end; stop once ``reached``.

    Parameters
    ----------
    measure : callable(model) -> Measurement
        Runs on held-out data (its cost is timed apart from training: ``eval_seconds``).
    reached : callable(Measurement) -> bool
        The target test.
    every : int
        Optimizer steps between measurements.
    stop_at_target : bool
        Stop ``fit`` once reached (time-to-target runs); False keeps training
        (to see where a run ends up).
    train_metric : str, optional
        Batch log key recorded at every step (the training curve of the metric).
    progress : bool
        Print a line per measurement (at most one a second, and the one that reaches the target).
    show : callable(Measurement) -> str, optional
        How a progress line shows a measurement.
    """

    def __init__(self, measure: Callable[[Any], Measurement], reached: Callable[[Measurement], bool],
                 every: int, stop_at_target: bool = True, train_metric: str | None = None,
                 progress: bool = False, show: Callable[[Measurement], str] | None = None):
        self.progress = progress
        self.show = show or (lambda m: f"metric {m.value:.4g}  held-out loss {m.loss:.4g}")
        self._last_print = -math.inf
        self.measure = measure
        self.reached = reached
        self.every = int(every)
        self.stop_at_target = stop_at_target
        self.train_metric = train_metric
        self.curve: dict[str, list] = {"step": [], "loss": [], "value": [], "extra": []}
        self.train_curve: dict[str, list] = {"step": [], "value": []}
        self.last: Measurement | None = None
        self.reached_step: int | None = None
        self.reached_epoch: int | None = None
        self.eval_seconds = 0.0
        self._last_step = -1

    def _look(self) -> None:
        step = self.model.step
        if step == self._last_step:
            return
        t0 = time.perf_counter()
        m = self.measure(self.model)
        self.eval_seconds += time.perf_counter() - t0
        self._last_step = step
        self.last = m
        self.curve["step"].append(step)
        self.curve["loss"].append(float(m.loss))
        self.curve["value"].append(float(m.value))
        self.curve["extra"].append(dict(m.extra))
        hit = self.reached_step is None and self.reached(m)
        now = time.perf_counter()
        if self.progress and (hit or now - self._last_print >= 1.0):
            self._last_print = now
            print(f"  step {step:>6}  epoch {self._epoch + 1:>4}  {self.show(m)}"
                  + ("  <- target reached" if hit else ""), flush=True)
        if hit:
            self.reached_step = step
            self.reached_epoch = self._epoch
            if self.stop_at_target:
                self.model.stop_training = True
        elif self.reached_step is not None and not self.reached(m) and not self.stop_at_target:
            self.reached_step = self.reached_epoch = None  # it fell back: the run has not settled

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_begin(self, logs=None):
        self._epoch = len(self.model.history.epoch)
        if self.model.step == 0:
            self._look()  # the untrained model: where every curve starts

    def on_batch_end(self, batch, logs=None):
        if self.train_metric is not None and logs and self.train_metric in logs:
            self.train_curve["step"].append(self.model.step)
            self.train_curve["value"].append(float(logs[self.train_metric]))
        if self.model.step % self.every == 0:
            self._look()

    def on_epoch_end(self, epoch, logs=None):
        self._look()


@dataclass
class TaskResult:
    """One run of one task: what was asked, what was reached, and how fast.

    ``steps`` and ``epochs`` are those taken (until the target when it was
    reached: the monitor stops training then); ``seconds`` is wall time of the
    whole run (data, training, measurements), ``train_seconds`` without the
    measurements.  ``history`` holds the per-step training log; ``curve`` the
    held-out measurements against optimizer steps.
    """

    task: str
    config: str  # "working" or "naive"
    seed: int
    metric: str
    target_text: str
    value: float
    reached: bool
    epochs: int
    steps: int
    seconds: float
    train_seconds: float
    history: History
    curve: dict[str, list]
    train_curve: dict[str, list]
    reached_step: int | None = None
    value_text: str | None = None
    metric_short: str = "metric"
    loss_name: str = "loss"
    extra: dict[str, Any] = field(default_factory=dict)
    explanation: str | None = None
    sample: str | None = None
    model: Any = None

    def line(self) -> str:
        """The final results line printed by the CLI and the examples."""
        got = self.value_text if self.value_text is not None else f"{self.value:.4g}"
        verdict = "reached" if self.reached else "NOT reached"
        return (f"{self.task} [{self.config}, seed {self.seed}]: {self.metric} = {got} (target {self.target_text}: "
                f"{verdict}) after {self.epochs} epoch(s), {self.steps} optimizer steps, {self.seconds:.1f} s")

    def summary_row(self) -> dict[str, str]:
        return {
            "task": self.task + (" (naive)" if self.config == "naive" else ""),
            "metric": self.metric,
            "target": self.target_text,
            "reached": (self.value_text or f"{self.value:.4g}") + (" yes" if self.reached else " NO"),
            "epochs": str(self.epochs),
            "optimizer steps": str(self.steps),
            "seconds": f"{self.seconds:.1f}",
        }


def summary_table(results: list[TaskResult]) -> str:
    """A plain-text table: task, metric, target, reached, epochs, optimizer steps, seconds."""
    rows = [r.summary_row() for r in results]
    cols = ["task", "metric", "target", "reached", "epochs", "optimizer steps", "seconds"]
    width = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in cols}
    right = {"epochs", "optimizer steps", "seconds"}

    def fmt(r: dict[str, str]) -> str:
        return "  ".join(r[c].rjust(width[c]) if c in right else r[c].ljust(width[c]) for c in cols).rstrip()

    lines = [fmt({c: c for c in cols}), "  ".join("-" * width[c] for c in cols)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def fmt_pct(x: float, digits: int = 2) -> str:
    """0.99734 -> '99.73%'; exact 1.0 -> '100%' (so '100%' means every item right)."""
    if x == 1.0:
        return "100%"
    return f"{100 * x:.{digits}f}%"


class TimeLimit(Callback):
    """Stop ``fit`` after the batch during which ``seconds`` of wall time have passed."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.hit = False

    def on_train_begin(self, logs=None):
        self._t0 = time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        if time.perf_counter() - self._t0 >= self.seconds:
            self.hit = True
            self.model.stop_training = True


def train_timed(model, monitor: Monitor, fit_kwargs: dict, extra_callbacks: list | None = None) -> float:
    """Run ``model.fit(**fit_kwargs)`` with the monitor; returns training seconds (measurements excluded)."""
    t0 = time.perf_counter()
    model.fit(callbacks=[monitor, *(extra_callbacks or [])], **fit_kwargs)
    return time.perf_counter() - t0 - monitor.eval_seconds


def fit_verbose(verbose: int) -> int:
    """A task's verbose=1 prints the monitor's lines; verbose=2 adds fit's per-epoch progress bars."""
    return 1 if verbose >= 2 else 0


def make_result(task: str, config: str, seed: int, model, monitor: Monitor, *, metric: str, metric_short: str,
                target_text: str, t_start: float, train_seconds: float, value_text: Callable[[float], str] = fmt_pct,
                loss_name: str = "loss", extra: dict | None = None) -> TaskResult:
    """Assemble a TaskResult from a finished run (the monitor's last measurement is the final value)."""
    last = monitor.last
    assert last is not None, "the monitor never measured"
    reached = monitor.reached(last)
    history = model.history
    return TaskResult(
        task=task, config=config, seed=seed, metric=metric, metric_short=metric_short, target_text=target_text,
        value=float(last.value), value_text=value_text(float(last.value)), reached=bool(reached),
        epochs=len(history.epoch), steps=int(model.step), seconds=time.perf_counter() - t_start,
        train_seconds=train_seconds, history=history, curve=monitor.curve, train_curve=monitor.train_curve,
        reached_step=monitor.reached_step if reached else None, loss_name=loss_name,
        extra={**last.extra, **(extra or {})}, model=model,
    )
