"""Seeds and counts shared by the task generators."""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["split_seeds", "check_count"]


def check_count(name: str, value, minimum: int = 1) -> int:
    """An int >= ``minimum`` (TypeError / ValueError naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def split_seeds(seed: int) -> tuple[int, int, int]:
    """Three independent seeds (training data, test data, model and shuffling) from one user seed."""
    ss = np.random.SeedSequence(check_count("seed", seed, 0))
    return tuple(int(s.generate_state(1)[0]) for s in ss.spawn(3))  # type: ignore[return-value]
