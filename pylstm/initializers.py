"""Weight initializers, by name or as objects (Keras' names and defaults).

An initializer is called as ``init(shape, dtype, rng)`` with a NumPy
``Generator``; it draws in float64 and casts, so a float32 and a float64 model
built from the same seed start from the same values (up to rounding).

=================  ==========================================================
name               draws
=================  ==========================================================
``glorot_uniform`` U(-l, l), l = sqrt(6 / (fan_in + fan_out))
``orthogonal``     a matrix with orthonormal rows or columns (QR of a normal)
``uniform``        U(-limit, limit), ``Uniform(limit=0.05)``
``normal``         N(mean, std²), ``Normal(std=0.05)``
``zeros``          0
=================  ==========================================================

For a 2-D weight (out, in) in PyTorch's layout fan_in = in and fan_out = out,
which is the same limit as Keras' transposed (in, out) kernel.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["Initializer", "GlorotUniform", "Orthogonal", "Uniform", "Normal", "Zeros", "get", "serialize"]


class Initializer:
    """Base class: subclasses implement ``__call__`` and, for saving, ``get_config``."""

    def __call__(self, shape: tuple[int, ...], dtype: Any, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[1], shape[0]  # (out, in)
    raise ValueError(f"initializers take 1-D or 2-D shapes, got {shape}")


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


class GlorotUniform(Initializer):
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010; Keras' default kernel init)."""

    def __call__(self, shape, dtype, rng):
        fan_in, fan_out = _fans(tuple(shape))
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(dtype)


class Orthogonal(Initializer):
    """An (out, in) matrix with orthonormal columns (out >= in) or rows, times ``gain`` (Saxe et al. 2014).

    LSTM's W_hh (4H, H) gets orthonormal columns: the transpose of Keras' (H, 4H)
    recurrent kernel with orthonormal rows, the same distribution.
    """

    def __init__(self, gain: float = 1.0):
        self.gain = _non_negative("gain", gain)

    def __call__(self, shape, dtype, rng):
        shape = tuple(shape)
        if len(shape) != 2:
            raise ValueError(f"Orthogonal needs a 2-D shape, got {shape}")
        rows, cols = shape
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # makes the distribution uniform (Haar), not biased by QR's sign choice
        if rows < cols:
            q = q.T
        return (self.gain * q).astype(dtype)

    def get_config(self) -> dict:
        return {"gain": self.gain}


class Uniform(Initializer):
    """U(-limit, limit)."""

    def __init__(self, limit: float = 0.05):
        self.limit = _non_negative("limit", limit)

    def __call__(self, shape, dtype, rng):
        return rng.uniform(-self.limit, self.limit, tuple(shape)).astype(dtype)

    def get_config(self) -> dict:
        return {"limit": self.limit}


class Normal(Initializer):
    """N(mean, std²)."""

    def __init__(self, std: float = 0.05, mean: float = 0.0):
        self.std = _non_negative("std", std)
        if isinstance(mean, bool) or not isinstance(mean, numbers.Real):
            raise ValueError(f"mean must be a number, got {mean!r}")
        self.mean = float(mean)

    def __call__(self, shape, dtype, rng):
        return (self.mean + self.std * rng.standard_normal(tuple(shape))).astype(dtype)

    def get_config(self) -> dict:
        return {"std": self.std, "mean": self.mean}


class Zeros(Initializer):
    """All zeros (draws nothing from the generator)."""

    def __call__(self, shape, dtype, rng):
        return np.zeros(tuple(shape), dtype)


_BY_NAME: dict[str, type[Initializer]] = {
    "glorot_uniform": GlorotUniform,
    "orthogonal": Orthogonal,
    "uniform": Uniform,
    "normal": Normal,
    "zeros": Zeros,
}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier: Any, custom_objects: dict | None = None) -> Initializer:
    """An initializer from a name, a config dict, or an Initializer (returned as is).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    TypeError
        For anything else.
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in _BY_NAME:
            return _BY_NAME[key]()
        if identifier in _BY_CLASS:
            return _BY_CLASS[identifier]()
        raise ValueError(f"unknown initializer {identifier!r}; known: {', '.join(sorted(_BY_NAME))}")
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        config = identifier.get("config", {})
        cls = (custom_objects or {}).get(name) or _BY_CLASS.get(name) or _BY_NAME.get(str(name).lower())
        if cls is None:
            raise ValueError(f"unknown initializer class {name!r}; known: {', '.join(sorted(_BY_CLASS))} "
                             "(pass custom ones through custom_objects)")
        return cls.from_config(config)
    raise TypeError(f"an initializer must be a name, a config dict or an Initializer, got {identifier!r}")


def serialize(init: Initializer) -> dict:
    """``{"class_name": ..., "config": {...}}``: what ``get`` takes back."""
    return {"class_name": type(init).__name__, "config": init.get_config()}

