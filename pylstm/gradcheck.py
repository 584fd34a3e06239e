"""Check the C++ kernel against the NumPy reference and against finite differences.

``gradcheck()`` runs one small random problem through ``pylstm.kernels`` and
reports, for every output and every gradient, the relative error
``max|a - r| / max|r|`` against

* the NumPy reference (``pylstm.reference``), run in float64 on the very same
  inputs (for a float32 check the inputs are rounded to float32 first), and
* central finite differences of the scalar loss
  ``L = sum(y * R_y) + sum(h_T * R_h) + sum(c_T * R_c)`` (fixed random R's, so
  every output matters), always taken in float64 with the kernel's float64 path.

``pylstm gradcheck`` prints ``format_report(gradcheck())``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import reference

__all__ = ["gradcheck", "format_report", "rel_err"]

_FORWARD = ("y", "h_T", "c_T")
_GRADIENTS = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")


def rel_err(a: np.ndarray, r: np.ndarray) -> float:
    """``max|a - r| / max|r|`` over the whole tensor (``max|a|`` when r is all zeros).

    Compared in float64; NaN anywhere gives NaN, which fails every ``<`` test.
    """
    a = np.asarray(a, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    if a.shape != r.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {r.shape}")
    if a.size == 0:
        return 0.0
    scale = np.max(np.abs(r))
    diff = np.max(np.abs(a - r))
    return float(diff / scale) if scale > 0 else float(diff)


def _central_differences(
    loss: Callable[[], float], arrays: dict[str, np.ndarray], eps: float
) -> dict[str, np.ndarray]:
    """dloss/darray for each array, one element at a time: (L(a+eps) - L(a-eps)) / 2eps.

    ``loss`` reads the arrays, which are perturbed in place and restored.
    """
    grads = {}
    for name, a in arrays.items():
        g = np.zeros_like(a, dtype=np.float64)
        flat, gflat = a.reshape(-1), g.reshape(-1)  # views: a must be contiguous
        assert np.shares_memory(flat, a), name
        for k in range(flat.size):
            saved = flat[k]
            flat[k] = saved + eps
            plus = loss()
            flat[k] = saved - eps
            minus = loss()
            flat[k] = saved
            gflat[k] = (plus - minus) / (2 * eps)
        grads[name] = g
    return grads


def _random_problem(B: int, T: int, I: int, H: int, seed: int) -> dict[str, np.ndarray]:
    """float64 inputs of a typical scale (weights ~ 1/sqrt(H), like PyTorch's init)."""
    rng = np.random.default_rng(seed)
    s = 1.0 / np.sqrt(H)
    return {
        "x": rng.standard_normal((B, T, I)),
        "W_ih": rng.uniform(-s, s, (4 * H, I)) * 2,
        "W_hh": rng.uniform(-s, s, (4 * H, H)) * 2,
        "b_ih": rng.uniform(-s, s, 4 * H),
        "b_hh": rng.uniform(-s, s, 4 * H),
        "h0": rng.standard_normal((B, H)) * 0.5,
        "c0": rng.standard_normal((B, H)) * 0.5,
        "R_y": rng.standard_normal((B, T, H)),
        "R_h": rng.standard_normal((B, H)),
        "R_c": rng.standard_normal((B, H)),
    }


def gradcheck(
    B: int = 3,
    T: int = 5,
    I: int = 4,
    H: int = 7,
    dtype: str = "float64",
    clip: float | None = None,
    seed: int = 0,
    with_state: bool = True,
    eps: float = 1e-6,
    num_threads: int | None = None,
) -> dict[str, dict[str, float]]:
    """Compare the kernel's forward and backward with the reference and finite differences.

    Parameters
    ----------
    B, T, I, H : int
        Problem size (keep it small: finite differences cost two forwards per input element).
    dtype : {"float64", "float32"}
        The kernel path under test.
    clip : float, optional
        Passed to ``lstm_backward``.  Where clipping binds, the clipped gradient is
        no longer the loss's gradient, so ``vs_finite_diff`` grows; ``vs_reference``
        stays meaningful.
    seed : int
        Seed of the random problem.
    with_state : bool
        Give random h0, c0 (else None; dh0, dc0 are then checked at h0 = c0 = 0).
    eps : float
        Finite-difference step (float64).
    num_threads : int, optional
        Threads for the kernel calls.

    Returns
    -------
    dict
        ``{name: {"vs_reference": err, "vs_finite_diff": err}}`` for the gradients
        dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, and ``{name: {"vs_reference": err}}``
        for the outputs y, h_T, c_T; err = max|a - r| / max|r|.
    """
    from . import kernels  # lazily: the reference side must work without the extension

    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    p = _random_problem(B, T, I, H, seed)
    # The inputs under test, and the same values in float64 for the reference.
    p = {k: v.astype(dt).astype(np.float64) for k, v in p.items()}
    names = ("x", "W_ih", "W_hh", "b_ih", "b_hh")

    def run(impl, cast):
        args = [p[k].astype(cast) for k in names]
        h0 = p["h0"].astype(cast) if with_state else None
        c0 = p["c0"].astype(cast) if with_state else None
        y, h_T, c_T, cache = impl.lstm_forward(*args, h0=h0, c0=c0, num_threads=num_threads)
        g = impl.lstm_backward(
            cache, p["R_y"].astype(cast), p["R_h"].astype(cast), p["R_c"].astype(cast),
            clip=clip, num_threads=num_threads,
        )
        return {"y": y, "h_T": h_T, "c_T": c_T, **g._asdict()}

    got = run(kernels, dt)
    ref = run(reference, np.float64)

    # Finite differences of the float64 kernel.  Without state, differentiate at zeros.
    fd_inputs = {k: p[k].copy() for k in names}
    fd_inputs["h0"] = p["h0"].copy() if with_state else np.zeros((B, H))
    fd_inputs["c0"] = p["c0"].copy() if with_state else np.zeros((B, H))

    def loss() -> float:
        a = fd_inputs
        y, h_T, c_T, _ = kernels.lstm_forward(
            a["x"], a["W_ih"], a["W_hh"], a["b_ih"], a["b_hh"], h0=a["h0"], c0=a["c0"],
            need_cache=False, num_threads=num_threads,
        )
        return float(np.sum(y * p["R_y"]) + np.sum(h_T * p["R_h"]) + np.sum(c_T * p["R_c"]))

    fd = _central_differences(loss, fd_inputs, eps)
    fd = {"d" + k: v for k, v in fd.items()}  # dx, dW_ih, ..., dh0, dc0

    result: dict[str, dict[str, float]] = {}
    for name in _FORWARD:
        result[name] = {"vs_reference": rel_err(got[name], ref[name])}
    for name in _GRADIENTS:
        result[name] = {
            "vs_reference": rel_err(got[name], ref[name]),
            "vs_finite_diff": rel_err(got[name], fd[name]),
        }
    return result


def format_report(result: dict[str, dict[str, float]]) -> str:
    """A small table of ``gradcheck()``'s errors, one row per tensor."""
    columns = ("vs_reference", "vs_finite_diff")
    lines = [f"{'tensor':<8} {'vs reference':>14} {'vs finite diff':>16}"]
    lines.append("-" * len(lines[0]))
    for name, errs in result.items():
        cells = [f"{errs[c]:.3e}" if c in errs else "-" for c in columns]
        lines.append(f"{name:<8} {cells[0]:>14} {cells[1]:>16}")
    lines.append("errors are max|a - r| / max|r| per tensor")
    return "\n".join(lines)
