"""Elementwise activations for Dense, each with its backward written beside it.

Backwards take the activation's *output* ``y`` (what the layer keeps) and the
incoming gradient ``dy``.  softmax acts on the last axis.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["get", "NAMES", "sigmoid", "softmax", "log_softmax"]


def sigmoid(z: np.ndarray) -> np.ndarray:
    # σ(z) = (1 + tanh(z/2)) / 2: no overflow for large |z|, unlike 1 / (1 + exp(-z)).
    y = np.tanh(z * 0.5)
    y *= 0.5
    y += 0.5
    return y


def _sigmoid_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * y * (1 - y)


def softmax(z: np.ndarray) -> np.ndarray:
    e = z - z.max(axis=-1, keepdims=True)  # exp of a shifted z never overflows
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def log_softmax(z: np.ndarray) -> np.ndarray:
    s = z - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def _softmax_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    # dz_j = y_j (dy_j - Σ_k dy_k y_k)
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _tanh_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * (1 - y * y)


def _relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def _relu_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return dy * (y > 0)


# name -> (forward, backward-from-output)
_TABLE: dict[str, tuple[Callable, Callable]] = {
    "sigmoid": (sigmoid, _sigmoid_backward),
    "softmax": (softmax, _softmax_backward),
    "tanh": (np.tanh, _tanh_backward),
    "relu": (_relu, _relu_backward),
}
NAMES = ("linear",) + tuple(_TABLE)


def get(name: str | None) -> tuple[str | None, tuple[Callable, Callable] | None]:
    """``(canonical name, (forward, backward))``; None / "linear" give ``(None, None)``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    if name is None or name == "linear":
        return None, None
    if not isinstance(name, str):
        raise TypeError(f"activation must be a name (one of {', '.join(NAMES)}) or None, got {name!r}")
    key = name.lower()
    if key not in _TABLE:
        raise ValueError(f"unknown activation {name!r}; known: None, {', '.join(NAMES)}")
    return key, _TABLE[key]
