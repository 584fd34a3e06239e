"""A fast NumPy LSTM: the peer pylstm's kernel is timed against.

Not the oracle (that is ``pylstm.reference``, written to be obviously right):
this one is written to be quick while staying plain NumPy, so that the
benchmark's "vs NumPy" column measures the kernel against the best a careful
NumPy user would do, not against a strawman.

What makes it fast (all of it valid NumPy, nothing the kernel does not also do):

* the input projection ``x W_ihᵀ + b`` is one product over the whole sequence;
  only ``h_{t-1} W_hhᵀ`` stays in the time loop;
* the weight gradients and ``dx`` are whole-sequence products after the loop;
* every per-step operation writes into a preallocated buffer (``out=``);
* the gates are kept internally in the order (g, i, f, o) with the sigmoid rows
  of the weights pre-scaled by 0.5, so one ``tanh`` over the whole gate row
  gives all four gates (``sigmoid(z) = 0.5 * tanh(z / 2) + 0.5``) and the three
  sigmoid gates are one contiguous block; in the backward the three gates driven
  by ``dc`` (g, i, f) are one contiguous block too;
* the backward's per-step factors (activation derivatives times the values they
  multiply) are computed for the whole sequence before the loop, so the loop is
  seven array operations and one product.

The public layout is pylstm's: batch-first arrays, PyTorch's weight layout and
gate order (i, f, g, o). Same signatures as ``pylstm.lstm_forward`` /
``lstm_backward`` (without ``clip`` and ``num_threads``: the thread count of
NumPy's BLAS is set by the caller with threadpoolctl).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["NumpyGrads", "lstm_forward", "lstm_backward"]


class NumpyGrads(NamedTuple):
    """Gradients of one layer, in the same order as ``pylstm.LSTMGrads``."""

    dx: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dW_ih: np.ndarray
    dW_hh: np.ndarray
    db_ih: np.ndarray
    db_hh: np.ndarray


def _internal_rows(H: int) -> np.ndarray:
    """Row permutation from the public gate order (i, f, g, o) to the internal (g, i, f, o)."""
    i, f, g, o = (np.arange(k * H, (k + 1) * H) for k in range(4))
    return np.concatenate([g, i, f, o])


def lstm_forward(
    x: np.ndarray,
    W_ih: np.ndarray,
    W_hh: np.ndarray,
    b_ih: np.ndarray,
    b_hh: np.ndarray,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    need_cache: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any] | None]:
    """Run one LSTM layer over a batch-first sequence.

    Parameters
    ----------
    x : ndarray, shape (B, T, I)
        Inputs; cast to the weights' dtype.
    W_ih, W_hh, b_ih, b_hh : ndarray
        Shapes (4H, I), (4H, H), (4H,), (4H,); gate order (i, f, g, o); one float dtype.
    h0, c0 : ndarray, shape (B, H), optional
        Initial state (zeros when None).
    need_cache : bool
        Keep what ``lstm_backward`` needs (False: inference).

    Returns
    -------
    y : ndarray, shape (B, T, H)
    h_T, c_T : ndarray, shape (B, H)
    cache : dict or None
    """
    dtype = W_ih.dtype
    if dtype not in (np.float32, np.float64) or any(a.dtype != dtype for a in (W_hh, b_ih, b_hh)):
        raise TypeError("W_ih, W_hh, b_ih, b_hh must all be float32 or all float64")
    if x.ndim != 3:
        raise ValueError(f"x must have shape (B, T, I), got {x.shape}")
    B, T, I = x.shape
    H = W_hh.shape[1]
    if W_ih.shape != (4 * H, I) or W_hh.shape != (4 * H, H) or b_ih.shape != (4 * H,) or b_hh.shape != (4 * H,):
        raise ValueError(f"weights must be W_ih (4H, I)=({4 * H}, {I}), W_hh ({4 * H}, {H}), b_ih/b_hh ({4 * H},)")

    rows = _internal_rows(H)
    W_ih_int = W_ih[rows]  # (4H, I), internal order, unscaled: the backward's weights
    W_hh_int = W_hh[rows]  # (4H, H)
    # Pre-scale the sigmoid rows by 0.5 (exact in binary floating point) so one
    # tanh over the row gives tanh(z_g) and tanh(z/2) for i, f, o.
    scale = np.ones((4 * H, 1), dtype)
    scale[H:] = 0.5
    W_ihT_s = np.ascontiguousarray((W_ih_int * scale).T)  # (I, 4H)
    W_hhT_s = np.ascontiguousarray((W_hh_int * scale).T)  # (H, 4H)
    b_s = (b_ih + b_hh)[rows] * scale[:, 0]               # (4H,)

    # Time-major copy of x so that every step reads contiguous rows.
    X2 = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype).reshape(T * B, I)
    acts = X2 @ W_ihT_s                      # (T*B, 4H): input projection, one product
    acts += b_s
    acts = acts.reshape(T, B, 4 * H)         # pre-activations, then (in place) activations

    hs = np.empty((T + 1, B, H), dtype)      # hs[0] = h0, hs[t + 1] = h_t
    cs = np.empty((T + 1, B, H), dtype)      # cs[0] = c0, cs[t + 1] = c_t
    hs[0] = 0 if h0 is None else h0
    cs[0] = 0 if c0 is None else c0
    tcs = np.empty((T, B, H), dtype) if need_cache else np.empty((1, B, H), dtype)
    rec = np.empty((B, 4 * H), dtype)        # h_{t-1} W_hhᵀ
    ig = np.empty((B, H), dtype)

    for t in range(T):
        a = acts[t]
        np.matmul(hs[t], W_hhT_s, out=rec)
        a += rec
        np.tanh(a, out=a)
        sig = a[:, H:]
        sig *= 0.5
        sig += 0.5                           # i, f, o = sigmoid
        g, i, f, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c = cs[t + 1]
        np.multiply(i, g, out=ig)
        np.multiply(f, cs[t], out=c)
        c += ig                              # c_t = f*c_{t-1} + i*g
        tc = tcs[t] if need_cache else tcs[0]
        np.tanh(c, out=tc)
        np.multiply(o, tc, out=hs[t + 1])    # h_t = o*tanh(c_t)

    y = np.ascontiguousarray(hs[1:].transpose(1, 0, 2))
    h_T, c_T = hs[T].copy(), cs[T].copy()
    if not need_cache:
        return y, h_T, c_T, None
    cache = {"X2": X2, "acts": acts, "hs": hs, "cs": cs, "tcs": tcs,
             "W_ih_int": W_ih_int, "W_hh_int": W_hh_int, "rows": rows, "dims": (B, T, I, H)}
    return y, h_T, c_T, cache


def lstm_backward(
    cache: dict[str, Any],
    dy: np.ndarray | None,
    dh_T: np.ndarray | None = None,
    dc_T: np.ndarray | None = None,
) -> NumpyGrads:
    """Gradients of a scalar loss through the layer whose ``cache`` is given.

    Parameters
    ----------
    cache : dict
        From ``lstm_forward(..., need_cache=True)`` of this module; not modified.
    dy : ndarray, shape (B, T, H), or None (zeros)
        Gradient with respect to ``y``.
    dh_T, dc_T : ndarray, shape (B, H), optional
        Gradients with respect to the final state.

    Returns
    -------
    NumpyGrads
        ``dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh`` in the public layout.
    """
    B, T, I, H = cache["dims"]
    acts, hs, cs, tcs = cache["acts"], cache["hs"], cache["cs"], cache["tcs"]
    W_hh_int, W_ih_int = cache["W_hh_int"], cache["W_ih_int"]
    dtype = acts.dtype
    a4 = acts.reshape(T, B, 4, H)
    g, i, f, o = a4[:, :, 0], a4[:, :, 1], a4[:, :, 2], a4[:, :, 3]

    # Whole-sequence factors, so the loop only multiplies by them:
    #   dz_g = dc * i*(1-g²)   dz_i = dc * g*i*(1-i)   dz_f = dc * c_{t-1}*f*(1-f)
    #   dz_o = dh * tanh(c)*o*(1-o)                    dc  += dh * o*(1-tanh(c)²)
    # P becomes dz (the pre-activation gradient) in place, step by step.
    P = np.empty((T, B, 4, H), dtype)
    np.multiply(g, g, out=P[:, :, 0])
    np.subtract(1, P[:, :, 0], out=P[:, :, 0])
    P[:, :, 0] *= i
    for k, v, w in ((1, i, g), (2, f, cs[:-1]), (3, o, tcs)):
        np.subtract(1, v, out=P[:, :, k])
        P[:, :, k] *= v
        P[:, :, k] *= w
    Q = np.multiply(tcs, tcs)
    np.subtract(1, Q, out=Q)
    Q *= o

    dh = np.empty((B, H), dtype)
    dc = np.empty((B, H), dtype)
    dh_next = np.zeros((B, H), dtype) if dh_T is None else np.array(dh_T, dtype, copy=True)
    dc_next = np.zeros((B, H), dtype) if dc_T is None else np.array(dc_T, dtype, copy=True)
    tmp = np.empty((B, H), dtype)
    for t in range(T - 1, -1, -1):
        if dy is None:
            dh[...] = dh_next
        else:
            np.add(dy[:, t], dh_next, out=dh)
        np.multiply(dh, Q[t], out=tmp)
        np.add(dc_next, tmp, out=dc)
        p = P[t]
        np.multiply(p[:, :3], dc[:, None, :], out=p[:, :3])   # dz_g, dz_i, dz_f
        np.multiply(p[:, 3], dh, out=p[:, 3])                 # dz_o
        np.multiply(dc, f[t], out=dc_next)
        np.matmul(p.reshape(B, 4 * H), W_hh_int, out=dh_next)

    dZ = P.reshape(T * B, 4 * H)
    inv = np.argsort(cache["rows"])          # back to the public (i, f, g, o) rows
    dW_hh = (dZ.T @ hs[:-1].reshape(T * B, H))[inv]
    dW_ih = (dZ.T @ cache["X2"])[inv]
    db = dZ.sum(axis=0)[inv]
    dx = np.ascontiguousarray((dZ @ W_ih_int).reshape(T, B, I).transpose(1, 0, 2))
    return NumpyGrads(dx, dh_next, dc_next, dW_ih, dW_hh, db, db.copy())
