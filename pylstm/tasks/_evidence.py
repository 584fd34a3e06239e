"""Numbers that explain a failed run: baselines, plateaus, gradient norms, output spread.

The naive configurations' explanations are sentences built from these
measurements of the run at hand (never a canned text): what a constant
predictor scores on this data, how long the held-out metric sat at that
score, how large each layer's gradient was meanwhile, how much the outputs
varied across samples, how many optimizer steps the run took.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..history import History

__all__ = ["constant_accuracy", "plateau_end", "layer_grad_norms", "spread", "num", "steps_at_level"]


def constant_accuracy(labels: np.ndarray) -> tuple[int, float]:
    """The best constant prediction and its accuracy: (class, fraction of labels equal to it)."""
    labels = np.asarray(labels).astype(np.int64).ravel()
    counts = np.bincount(labels)
    best = int(np.argmax(counts))
    return best, float(counts[best] / labels.size)


def steps_at_level(curve: dict, level: float, tol: float) -> int:
    """Optimizer steps during which the held-out metric stayed within ``tol`` of ``level`` from the start."""
    last = 0
    for step, value in zip(curve["step"], curve["value"]):
        if abs(value - level) > tol:
            break
        last = step
    return int(last)


def plateau_end(curve: dict, level: float, tol: float) -> int | None:
    """First step at which the metric left ``level`` for good (None if it never left)."""
    for step, value in zip(curve["step"], curve["value"]):
        if value > level + tol:
            return int(step)
    return None


def layer_grad_norms(history: History, first: int | None = None, last: int | None = None) -> dict[str, float]:
    """Median gradient norm of each layer with weights over optimizer steps [first, last] (1-based, inclusive).

    From ``History.steps["layer_grad_norm"]`` (the norm before clipping).
    """
    steps = np.asarray(history.steps["step"])
    norms = np.asarray(history.steps["layer_grad_norm"], dtype=np.float64)
    if norms.size == 0:
        return {}
    mask = np.ones(steps.shape, dtype=bool)
    if first is not None:
        mask &= steps >= first
    if last is not None:
        mask &= steps <= last
    if not mask.any():
        mask[:] = True
    med = np.median(norms[mask], axis=0)
    return {name: float(v) for name, v in zip(history.layer_names, med)}


def spread(outputs: np.ndarray) -> float:
    """Standard deviation of the outputs across samples (how far the model is from a constant)."""
    return float(np.std(np.asarray(outputs, dtype=np.float64)))


def num(x: float, digits: int = 2) -> str:
    """A number for a sentence: 3 significant digits, scientific when tiny or huge."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    if abs(x) < 1e-3 or abs(x) >= 1e5:
        return f"{x:.{digits}e}"
    return f"{x:.{digits + 1}g}"


def ratio_text(names: Sequence[str], norms: dict[str, float]) -> str:
    """'lstm 1.2e-05, lstm_1 3.4e-04, dense 2.1e-02' in model order."""
    return ", ".join(f"{n} {num(norms[n])}" for n in names if n in norms)
