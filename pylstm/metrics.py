"""Metrics, accumulated as (numerator, denominator) sums over batches.

A metric sees the normalised labels (``Loss.prepare_labels``), the model's
probabilities (or raw outputs for mse), the optional weights, and the boolean
``correct`` array the model computes once per batch:

* ``accuracy``: threshold 0.5 for a 1-unit output, argmax otherwise; averaged
  over every (sample, step) pair of a sequence output, weighted by
  ``sample_weight`` (so an (N, T) 0/1 mask leaves out the masked steps).
* ``sequence_accuracy``: a sample counts as right when all its (unmasked) steps
  are right; for a last-step output it equals ``accuracy``.

Subclass :class:`Metric` (``name`` and ``batch_sums``) for your own.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Metric", "Accuracy", "SequenceAccuracy", "get", "correct_predictions"]


def correct_predictions(y: np.ndarray, probs: np.ndarray, sparse: bool) -> np.ndarray:
    """Boolean (N,) or (N, T): is the predicted class the labelled one?"""
    if sparse:
        return probs.argmax(axis=-1) == y
    if probs.shape[-1] == 1:
        return (probs[..., 0] > 0.5) == (y[..., 0] > 0.5)
    return probs.argmax(axis=-1) == y.argmax(axis=-1)


class Metric:
    """Base class: ``batch_sums`` returns (numerator, denominator) for one batch; the value is Σnum / Σden."""

    name = "metric"

    def batch_sums(self, y: np.ndarray, probs: np.ndarray, w: np.ndarray | None,
                   correct: np.ndarray) -> tuple[float, float]:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Accuracy(Metric):
    """Fraction of right (sample, step) predictions, weighted by sample_weight."""

    name = "accuracy"

    def batch_sums(self, y, probs, w, correct):
        if w is None:
            return float(np.count_nonzero(correct)), float(correct.size)
        if w.ndim < correct.ndim:
            w = np.broadcast_to(w[:, None], correct.shape)
        return float(np.dot(correct.ravel(), w.ravel())), float(w.sum())


class SequenceAccuracy(Metric):
    """Fraction of samples with every (unmasked) step right."""

    name = "sequence_accuracy"

    def batch_sums(self, y, probs, w, correct):
        if correct.ndim == 1:
            return Accuracy().batch_sums(y, probs, w, correct)
        if w is None:
            return float(np.count_nonzero(correct.all(axis=1))), float(correct.shape[0])
        if w.ndim == 1:
            ok = correct.all(axis=1)
            return float(np.dot(ok, w)), float(w.sum())
        unmasked = w > 0
        ok = np.all(correct | ~unmasked, axis=1)
        counted = unmasked.any(axis=1)  # a sample with every step masked is left out
        return float(np.count_nonzero(ok & counted)), float(np.count_nonzero(counted))


_BY_NAME: dict[str, type[Metric]] = {
    "accuracy": Accuracy,
    "acc": Accuracy,
    "sequence_accuracy": SequenceAccuracy,
}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier: Any, custom_objects: dict | None = None) -> Metric:
    """A Metric from a name, a ``{"class_name": ...}`` dict, or a Metric (returned as is).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _BY_CLASS.get(identifier)
        if cls is None:
            cls = (custom_objects or {}).get(identifier)
        if cls is None:
            raise ValueError(f"unknown metric {identifier!r}; known: {', '.join(sorted(_BY_NAME))}")
        return cls()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        cls = (custom_objects or {}).get(name) or _BY_CLASS.get(name)
        if cls is None:
            raise ValueError(f"unknown metric class {name!r}; known: {', '.join(sorted(_BY_CLASS))} "
                             "(pass custom ones through custom_objects)")
        return cls(**{k: v for k, v in identifier.items() if k != "class_name"})
    raise TypeError(f"a metric must be a name or a pylstm.metrics.Metric, got {identifier!r}")
