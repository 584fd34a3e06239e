"""The one table of tolerances (relative max-error ``max|a - r| / max|r|`` per tensor).

Keyed by the dtype of the path under test; the same bound serves forward
outputs and gradients.  A float32 kernel is compared with the float64
reference on the same inputs, so its bound covers float32 rounding, not
float32-vs-float32 agreement.
"""
from __future__ import annotations

import numpy as np

TOL: dict[np.dtype, float] = {
    np.dtype(np.float64): 1e-10,
    np.dtype(np.float32): 1e-4,
}

# Reference vs central finite differences (float64, eps = 1e-6): truncation
# (~eps²) and rounding (~1e-16 / eps) errors sit near 1e-10; 1e-6 leaves room.
FINITE_DIFF_TOL = 1e-6
FINITE_DIFF_EPS = 1e-6


def tol(dtype) -> float:
    """The bound for a path computing in ``dtype``."""
    return TOL[np.dtype(dtype)]


def rel_err(a, r) -> float:
    """``max|a - r| / max|r|`` in float64 (``max|a|`` when r is all zeros); NaN fails every bound."""
    a = np.asarray(a, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    assert a.shape == r.shape, f"shapes differ: {a.shape} vs {r.shape}"
    if a.size == 0:
        return 0.0
    scale = np.max(np.abs(r))
    diff = np.max(np.abs(a - r))
    return float(diff / scale) if scale > 0 else float(diff)
