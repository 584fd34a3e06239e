"""The NumPy oracle: a short, obviously-correct LSTM forward and backward.

Everything the C++ kernel computes is computed here first, in plain NumPy, so
that the kernel can be tested against it (``tests/test_kernels.py``) and this
file against central finite differences (``tests/test_reference.py``).  It is
written to be read, not to be fast, and never imports ``pylstm._core``.

Layout (written down once; PyTorch's, gate order i, f, g, o)::

    x     (B, T, I)    batch-first input
    W_ih  (4H, I)      rows [0:H) = i, [H:2H) = f, [2H:3H) = g, [3H:4H) = o
    W_hh  (4H, H)
    b_ih  (4H,)  b_hh (4H,)
    h, c  (B, H)

One step::

    a   = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh       (B, 4H) pre-activations
    i, f, g, o = σ(a_i), σ(a_f), tanh(a_g), σ(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

All arithmetic happens in the weights' dtype (float32 or float64): a float32
reference is float32 maths, never float64 maths rounded at the end.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from ._config import resolve_num_threads

__all__ = [
    "LSTMGrads",
    "lstm_forward",
    "lstm_forward_ids",
    "lstm_backward",
    "lstm_step",
    "lstm_step_ids",
]

# Marks a cache as ours: lstm_backward refuses every other object.
_CACHE_ORIGIN = "pylstm.reference"


class LSTMGrads(NamedTuple):
    """Gradients returned by ``lstm_backward`` (fresh arrays, the cache's dtype).

    ``dx`` is None for caches made by ``lstm_forward_ids`` (ids have no gradient);
    ``dW_ih`` then has shape (4H, V).  ``db_ih`` and ``db_hh`` are equal (both
    biases are added to the same pre-activations) but are separate arrays.
    """

    dx: np.ndarray | None  # (B, T, I)
    dh0: np.ndarray  # (B, H)
    dc0: np.ndarray  # (B, H)
    dW_ih: np.ndarray  # (4H, I) or (4H, V)
    dW_hh: np.ndarray  # (4H, H)
    db_ih: np.ndarray  # (4H,)
    db_hh: np.ndarray  # (4H,)


# --------------------------------------------------------------------------- #
# argument checking (the same rules and messages as the kernel's bindings)
# --------------------------------------------------------------------------- #

_WEIGHT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_num_threads(num_threads: Any) -> None:
    # Accepted and ignored, but checked by the kernels' own rule, so that a bad value fails here too.
    resolve_num_threads(num_threads)


def _check_weights(W_ih: Any, W_hh: Any, b_ih: Any, b_hh: Any) -> tuple[np.ndarray, ...]:
    """Return the four weights as arrays of one float dtype; H comes from W_hh's columns."""
    named = {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh}
    arrays = {}
    for name, w in named.items():
        w = np.asarray(w)
        if w.dtype not in _WEIGHT_DTYPES:
            raise TypeError(f"{name} must be float32 or float64, got dtype {w.dtype}")
        arrays[name] = w
    dtypes = {name: w.dtype for name, w in arrays.items()}
    if len(set(dtypes.values())) != 1:
        listing = ", ".join(f"{n} {d}" for n, d in dtypes.items())
        raise TypeError(f"W_ih, W_hh, b_ih, b_hh must all have the same dtype (float32 or float64); got {listing}")
    W_ih, W_hh, b_ih, b_hh = arrays.values()

    if W_hh.ndim != 2:
        raise ValueError(f"W_hh must be 2-D with shape (4H, H), got shape {W_hh.shape}")
    H = W_hh.shape[1]
    if H == 0 or W_hh.shape[0] != 4 * H:
        raise ValueError(f"W_hh must have shape (4H, H) = ({4 * H}, {H}), got {W_hh.shape}")
    if W_ih.ndim != 2 or W_ih.shape[0] != 4 * H or W_ih.shape[1] == 0:
        raise ValueError(f"W_ih must have shape (4H, I) = ({4 * H}, I) with I >= 1, got {W_ih.shape}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b.shape != (4 * H,):
            raise ValueError(f"{name} must have shape (4H,) = ({4 * H},), got {b.shape}")
    # Private copies: a cache must not change when the caller updates weights in place.
    return tuple(np.array(w, order="C") for w in (W_ih, W_hh, b_ih, b_hh))


def _check_real(name: str, a: Any, shape: tuple[int, ...], shape_text: str, dtype: np.dtype) -> np.ndarray:
    """Any real (or bool) array of the given shape, cast to ``dtype`` (a fresh copy)."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real (bool, int or float) array, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape_text} = {shape}, got {a.shape}")
    return np.array(a, dtype=dtype, order="C")


def _check_x(x: Any, I: int, dtype: np.dtype) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x must be a real (bool, int or float) array, got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[2] != I:
        raise ValueError(f"x must have shape (B, T, I) = (B, T, {I}), got {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must have B >= 1 and T >= 1, got shape {x.shape}")
    return np.array(x, dtype=dtype, order="C")


def _check_ids(name: str, ids: Any, ndim: int, V: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of token ids, got dtype {ids.dtype}")
    shape_text = "(B, T)" if ndim == 2 else "(B,)"
    if ids.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_text}, got {ids.shape}")
    if ids.size == 0:
        raise ValueError(f"{name} must have B >= 1" + (" and T >= 1" if ndim == 2 else "") + f", got shape {ids.shape}")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= V:
        raise ValueError(f"{name} must lie in [0, V) = [0, {V}) (V = W_ih.shape[1]), got values in [{lo}, {hi}]")
    return np.array(ids, dtype=np.int64, order="C")


def _initial_state(
    h0: Any, c0: Any, B: int, H: int, dtype: np.dtype, names: tuple[str, str] = ("h0", "c0")
) -> tuple[np.ndarray, np.ndarray]:
    """The state as given (checked, cast), or zeros for None; ``names`` are the caller's argument names."""
    h = np.zeros((B, H), dtype) if h0 is None else _check_real(names[0], h0, (B, H), "(B, H)", dtype)
    c = np.zeros((B, H), dtype) if c0 is None else _check_real(names[1], c0, (B, H), "(B, H)", dtype)
    return h, c


def _check_grad(name: str, a: Any, shape: tuple[int, ...], shape_text: str, dtype: np.dtype) -> np.ndarray:
    """An incoming gradient: exactly the cache's dtype (no silent casts), right shape."""
    a = np.asarray(a)
    if a.dtype != dtype:
        raise TypeError(f"{name} must have the cache's dtype {dtype}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape_text} = {shape}, got {a.shape}")
    return a


def _check_clip(clip: Any) -> float | None:
    if clip is None:
        return None
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
        raise TypeError(f"clip must be a positive float or None, got {clip!r}")
    if not clip > 0:  # also refuses NaN
        raise ValueError(f"clip must be > 0, got {clip}")
    return float(clip)


# --------------------------------------------------------------------------- #
# the maths
# --------------------------------------------------------------------------- #


def _sigmoid(a: np.ndarray) -> np.ndarray:
    # exp(-a) overflows to inf for very negative a; 1 / (1 + inf) = 0 is the right limit.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def _cell(xw_t: np.ndarray, h: np.ndarray, c: np.ndarray, W_hh: np.ndarray, b: np.ndarray):
    """One step given ``xw_t = x_t W_ihᵀ`` (B, 4H). Returns (h_t, c_t, ifgo, tanh(c_t))."""
    H = h.shape[1]
    a = xw_t + h @ W_hh.T + b  # (B, 4H) gate pre-activations
    ifgo = np.empty_like(a)
    ifgo[:, : 2 * H] = _sigmoid(a[:, : 2 * H])  # i, f
    ifgo[:, 2 * H : 3 * H] = np.tanh(a[:, 2 * H : 3 * H])  # g
    ifgo[:, 3 * H :] = _sigmoid(a[:, 3 * H :])  # o
    i, f, g, o = np.split(ifgo, 4, axis=1)
    c_t = f * c + i * g
    tanh_c = np.tanh(c_t)
    h_t = o * tanh_c
    return h_t, c_t, ifgo, tanh_c


def _forward(xw: np.ndarray, W_hh: np.ndarray, b: np.ndarray, h0: np.ndarray, c0: np.ndarray):
    """Run T steps given every ``x_t W_ihᵀ`` at once: xw (B, T, 4H)."""
    B, T, _ = xw.shape
    H = h0.shape[1]
    y = np.empty((B, T, H), xw.dtype)  # h_t for every t
    cs = np.empty((B, T, H), xw.dtype)  # c_t for every t
    tanh_cs = np.empty((B, T, H), xw.dtype)
    ifgo = np.empty((B, T, 4 * H), xw.dtype)  # gate activations (after σ / tanh)
    h, c = h0, c0
    for t in range(T):
        h, c, ifgo[:, t], tanh_cs[:, t] = _cell(xw[:, t], h, c, W_hh, b)
        y[:, t], cs[:, t] = h, c
    return y, cs, tanh_cs, ifgo


def _finish_forward(y, cs, tanh_cs, ifgo, need_cache: bool, **cache_fields):
    h_T = y[:, -1].copy()
    c_T = cs[:, -1].copy()
    if not need_cache:
        return y, h_T, c_T, None
    y.flags.writeable = False  # the cache shares y, as the kernel's does
    cache = dict(_origin=_CACHE_ORIGIN, y=y, cs=cs, tanh_cs=tanh_cs, ifgo=ifgo, **cache_fields)
    return y, h_T, c_T, cache


def lstm_forward(
    x: Any,
    W_ih: Any,
    W_hh: Any,
    b_ih: Any,
    b_hh: Any,
    h0: Any = None,
    c0: Any = None,
    need_cache: bool = True,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict | None]:
    """Run an LSTM over a batch of sequences.

    Parameters
    ----------
    x : array_like, shape (B, T, I)
        Any real or bool dtype; cast to the weights' dtype.
    W_ih, W_hh, b_ih, b_hh : ndarray
        Shapes (4H, I), (4H, H), (4H,), (4H,); all float32 or all float64.
    h0, c0 : array_like, shape (B, H), optional
        Initial state; zeros when None.
    need_cache : bool
        Keep what ``lstm_backward`` needs (and make ``y`` read-only, since the
        cache shares it).  With False, ``cache`` is None.
    num_threads : int, optional
        Accepted for the kernel's signature, and ignored.

    Returns
    -------
    y : ndarray, shape (B, T, H)
        h_t at every step.
    h_T, c_T : ndarray, shape (B, H)
        Final state.
    cache : dict or None
    """
    _check_num_threads(num_threads)
    W_ih, W_hh, b_ih, b_hh = _check_weights(W_ih, W_hh, b_ih, b_hh)
    dtype, H, I = W_hh.dtype, W_hh.shape[1], W_ih.shape[1]
    x = _check_x(x, I, dtype)
    h0, c0 = _initial_state(h0, c0, x.shape[0], H, dtype)

    xw = x @ W_ih.T  # (B, T, 4H): the input's share of every step, in one matmul
    y, cs, tanh_cs, ifgo = _forward(xw, W_hh, b_ih + b_hh, h0, c0)
    return _finish_forward(
        y, cs, tanh_cs, ifgo, need_cache, x=x, ids=None, W_ih=W_ih, W_hh=W_hh, h0=h0, c0=c0
    )


def lstm_forward_ids(
    ids: Any,
    W_ih: Any,
    W_hh: Any,
    b_ih: Any,
    b_hh: Any,
    h0: Any = None,
    c0: Any = None,
    need_cache: bool = True,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict | None]:
    """``lstm_forward(one_hot(ids, V), ...)`` without building the one-hot.

    ``ids`` is an integer array (B, T) with values in [0, V), and ``W_ih`` is
    (4H, V): one_hot(ids) @ W_ihᵀ is simply column ``ids`` of ``W_ih``.
    """
    _check_num_threads(num_threads)
    W_ih, W_hh, b_ih, b_hh = _check_weights(W_ih, W_hh, b_ih, b_hh)
    dtype, H, V = W_hh.dtype, W_hh.shape[1], W_ih.shape[1]
    ids = _check_ids("ids", ids, 2, V)
    h0, c0 = _initial_state(h0, c0, ids.shape[0], H, dtype)

    xw = W_ih.T[ids]  # (B, T, 4H): gather columns instead of multiplying by a one-hot
    y, cs, tanh_cs, ifgo = _forward(xw, W_hh, b_ih + b_hh, h0, c0)
    return _finish_forward(
        y, cs, tanh_cs, ifgo, need_cache, x=None, ids=ids, W_ih=W_ih, W_hh=W_hh, h0=h0, c0=c0
    )


def lstm_backward(
    cache: Any,
    dy: Any,
    dh_T: Any = None,
    dc_T: Any = None,
    clip: float | None = None,
    num_threads: int | None = None,
) -> LSTMGrads:
    """Backpropagate through a reference ``lstm_forward`` / ``lstm_forward_ids``.

    Parameters
    ----------
    cache : dict
        From a reference forward with ``need_cache=True`` (nothing else).
    dy : ndarray, shape (B, T, H), or None
        dLoss/dy; None means zeros.  Must have the cache's dtype exactly.
    dh_T, dc_T : ndarray, shape (B, H), optional
        dLoss/dh_T and dLoss/dc_T (the final state's own gradient); None means zeros.
    clip : float, optional
        Clip the gradient w.r.t. the gate pre-activations elementwise to
        [-clip, clip] at every step; the clipped value is what flows on (to
        h_{t-1}, the weights, the biases and x).  The cell path c_t -> c_{t-1}
        is not clipped (Graves 2013; Lasagne's grad_clipping).
    num_threads : int, optional
        Accepted and ignored.

    Returns
    -------
    LSTMGrads
        (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh); dx is None for an ids cache.
    """
    _check_num_threads(num_threads)
    if cache is None:
        raise TypeError("cache is None: run the forward with need_cache=True to be able to call lstm_backward")
    if not isinstance(cache, dict) or cache.get("_origin") != _CACHE_ORIGIN:
        raise TypeError(f"cache must come from pylstm.reference's lstm_forward; got {type(cache).__name__}")
    clip = _check_clip(clip)

    y, cs, tanh_cs, ifgo = cache["y"], cache["cs"], cache["tanh_cs"], cache["ifgo"]
    W_ih, W_hh, h0, c0 = cache["W_ih"], cache["W_hh"], cache["h0"], cache["c0"]
    B, T, H = y.shape
    dtype = y.dtype
    dy = np.zeros((B, T, H), dtype) if dy is None else _check_grad("dy", dy, (B, T, H), "(B, T, H)", dtype)
    dh = np.zeros((B, H), dtype) if dh_T is None else _check_grad("dh_T", dh_T, (B, H), "(B, H)", dtype).copy()
    dc = np.zeros((B, H), dtype) if dc_T is None else _check_grad("dc_T", dc_T, (B, H), "(B, H)", dtype).copy()

    # The recurrence: only dh and dc travel backwards through time.  The (clipped)
    # pre-activation gradients of every step are kept and turned into dW, db, dx
    # by single matmuls after the loop.
    da = np.empty((B, T, 4 * H), dtype)  # dLoss/d(pre-activations)
    for t in reversed(range(T)):
        i, f, g, o = np.split(ifgo[:, t], 4, axis=1)
        c_prev = cs[:, t - 1] if t > 0 else c0
        tanh_c = tanh_cs[:, t]

        dh = dh + dy[:, t]  # h_t feeds both y_t and the next step
        do = dh * tanh_c  # h_t = o * tanh(c_t)
        dc = dc + dh * o * (1 - tanh_c**2)
        di = dc * g  # c_t = f * c_{t-1} + i * g
        df = dc * c_prev
        dg = dc * i
        dc = dc * f  # -> dc_{t-1}

        da_t = np.concatenate(
            [di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1
        )  # σ' = σ(1-σ), tanh' = 1-tanh²
        if clip is not None:
            da_t = np.clip(da_t, -clip, clip)
        da[:, t] = da_t
        dh = da_t @ W_hh  # -> dh_{t-1}

    h_prev = np.concatenate([h0[:, None], y[:, :-1]], axis=1)  # (B, T, H): h_{t-1} for every t
    da2 = da.reshape(B * T, 4 * H)
    dW_hh = da2.T @ h_prev.reshape(B * T, H)
    db = da2.sum(axis=0)
    if cache["ids"] is None:
        x = cache["x"]
        dW_ih = da2.T @ x.reshape(B * T, -1)
        dx = da @ W_ih  # (B, T, I)
    else:
        # x_t W_ihᵀ was column ids[b, t] of W_ih: its gradient scatter-adds into that column.
        dW_ihT = np.zeros((W_ih.shape[1], 4 * H), dtype)  # (V, 4H)
        np.add.at(dW_ihT, cache["ids"].reshape(-1), da2)
        dW_ih = np.ascontiguousarray(dW_ihT.T)
        dx = None
    return LSTMGrads(dx=dx, dh0=dh, dc0=dc, dW_ih=dW_ih, dW_hh=dW_hh, db_ih=db, db_hh=db.copy())


def lstm_step(
    x_t: Any,
    W_ih: Any,
    W_hh: Any,
    b_ih: Any,
    b_hh: Any,
    h: Any = None,
    c: Any = None,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One step (inference, no cache): x_t (B, I); h, c (B, H) or None (zeros).

    Returns the new (h, c), fresh arrays in the weights' dtype.
    """
    _check_num_threads(num_threads)
    W_ih, W_hh, b_ih, b_hh = _check_weights(W_ih, W_hh, b_ih, b_hh)
    dtype, H, I = W_hh.dtype, W_hh.shape[1], W_ih.shape[1]
    x_t = np.asarray(x_t)
    if x_t.dtype.kind not in "biuf":
        raise TypeError(f"x_t must be a real (bool, int or float) array, got dtype {x_t.dtype}")
    if x_t.ndim != 2 or x_t.shape[1] != I:
        raise ValueError(f"x_t must have shape (B, I) = (B, {I}), got {x_t.shape}")
    if x_t.shape[0] == 0:
        raise ValueError(f"x_t must have B >= 1, got shape {x_t.shape}")
    x_t = np.array(x_t, dtype=dtype)
    h, c = _initial_state(h, c, x_t.shape[0], H, dtype, names=("h", "c"))
    h, c, _, _ = _cell(x_t @ W_ih.T, h, c, W_hh, b_ih + b_hh)
    return h, c


def lstm_step_ids(
    ids_t: Any,
    W_ih: Any,
    W_hh: Any,
    b_ih: Any,
    b_hh: Any,
    h: Any = None,
    c: Any = None,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One step from token ids: ids_t (B,) integers in [0, V); W_ih (4H, V)."""
    _check_num_threads(num_threads)
    W_ih, W_hh, b_ih, b_hh = _check_weights(W_ih, W_hh, b_ih, b_hh)
    dtype, H, V = W_hh.dtype, W_hh.shape[1], W_ih.shape[1]
    ids_t = _check_ids("ids_t", ids_t, 1, V)
    h, c = _initial_state(h, c, ids_t.shape[0], H, dtype, names=("h", "c"))
    h, c, _, _ = _cell(W_ih.T[ids_t], h, c, W_hh, b_ih + b_hh)
    return h, c
