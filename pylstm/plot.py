"""Learning curves of task runs (matplotlib, imported only when a plot is drawn).

``plot_task(results, path)`` draws one column per run (the working
configuration and, when given, the naive one, side by side): the loss against
optimizer steps (training batches, light, with a running mean; held-out
measurements as dots) over the task's metric against optimizer steps (held-out,
and the training batches' metric where the run logged one).  For the character
model the second row shows a generated sample beside the curve instead.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["plot_task", "running_mean"]


def running_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (shorter at the start)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or window <= 1:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install matplotlib (or pip install 'pylstm[plot]')") from e
    return plt


def _loss_panel(ax, res) -> None:
    h = res.history
    steps = np.asarray(h.steps["step"])
    loss = np.asarray(h.steps["loss"], dtype=np.float64)
    if steps.size:
        ax.plot(steps, loss, color="tab:blue", alpha=0.25, lw=0.8)
        ax.plot(steps, running_mean(loss, max(1, steps.size // 50)), color="tab:blue", lw=1.5, label="training")
    c = res.curve
    if c["step"]:
        ax.plot(c["step"], c["loss"], "o-", color="tab:orange", ms=3, lw=1, label="held-out")
    if np.all(loss[np.isfinite(loss)] > 0) and loss.size and np.nanmax(loss) / max(np.nanmin(loss), 1e-12) > 50:
        ax.set_yscale("log")
    ax.set_ylabel(res.loss_name)
    ax.set_title(f"{res.task}, {res.config} (seed {res.seed})")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)


def _metric_panel(ax, res) -> None:
    c, t = res.curve, res.train_curve
    if t["step"]:
        ax.plot(t["step"], running_mean(t["value"], max(1, len(t["step"]) // 50)), color="tab:blue", lw=1.2,
                label="training batches")
    if c["step"]:
        ax.plot(c["step"], c["value"], "o-", color="tab:orange", ms=3, lw=1, label="held-out")
    if res.reached_step is not None:
        ax.axvline(res.reached_step, color="tab:green", ls="--", lw=1, label=f"target at step {res.reached_step}")
    ax.set_xlabel("optimizer steps")
    ax.set_ylabel(res.metric_short)
    ax.set_title(f"{res.metric}: {res.value_text or res.value} (target {res.target_text})", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)


def _sample_panel(ax, res) -> None:
    ax.axis("off")
    text = (res.sample or "")[:700]
    lines = []
    for raw in text.splitlines()[:26]:
        lines.append(raw[:70])
    ax.text(0.0, 1.0, "\n".join(lines), family="monospace", fontsize=7, va="top", ha="left",
            transform=ax.transAxes)
    ax.set_title(f"sample at temperature 0.8 ({res.value_text} nats/char held out)", fontsize=9)


def plot_task(results: Any, path: str | None = None, dpi: int = 110):
    """Learning curves of one or more runs of a task, side by side; saved to ``path`` when given.

    Parameters
    ----------
    results : TaskResult or list of TaskResult
        Typically ``[working, naive]``.
    path : str, optional
        Image file (the extension picks the format).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    runs = list(results) if isinstance(results, (list, tuple)) else [results]
    if not runs:
        raise ValueError("plot_task needs at least one TaskResult")
    # Side by side on one step axis: a plateau of 100 steps looks as long as it was.
    fig, axes = plt.subplots(2, len(runs), figsize=(5.5 * len(runs), 7), squeeze=False, sharex="row")
    for col, res in enumerate(runs):
        _loss_panel(axes[0, col], res)
        if res.task == "char":
            _sample_panel(axes[1, col], res)
            axes[0, col].set_xlabel("optimizer steps")
        else:
            _metric_panel(axes[1, col], res)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
    return fig
