"""The NumPy oracle against central finite differences, and against itself.

Everything else is tested against ``pylstm.reference``, so it is tested first,
in float64, with nothing but finite differences and algebra as the judge.
The loss ``sum(y * R_y) + sum(h_T * R_h) + sum(c_T * R_c)`` with fixed random
R's makes every output matter.
"""
from __future__ import annotations

import numpy as np
import pytest

from pylstm import reference as ref
from pylstm.gradcheck import _central_differences
from tolerances import FINITE_DIFF_EPS, FINITE_DIFF_TOL, rel_err, tol

F64 = np.float64
WEIGHTS = ("W_ih", "W_hh", "b_ih", "b_hh")
GRADS = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")


def _forward(p, *, ids=False, state=True, need_cache=True):
    w = [p[k] for k in WEIGHTS]
    h0, c0 = (p["h0"], p["c0"]) if state else (None, None)
    if ids:
        return ref.lstm_forward_ids(p["ids"], *w, h0=h0, c0=c0, need_cache=need_cache)
    return ref.lstm_forward(p["x"], *w, h0=h0, c0=c0, need_cache=need_cache)


def _loss(p, y, h_T, c_T, *, use_dy=True, use_dh=True, use_dc=True) -> float:
    return float(
        (np.sum(y * p["R_y"]) if use_dy else 0.0)
        + (np.sum(h_T * p["R_h"]) if use_dh else 0.0)
        + (np.sum(c_T * p["R_c"]) if use_dc else 0.0)
    )


# (name, kwargs): ids path, with/without initial state, which outputs the loss sees, clip.
CASES = {
    "full": dict(),
    "no_state": dict(state=False),
    "last_step_only": dict(use_dy=False, use_dc=False),  # dy None, dh_T given, dc_T None
    "c_T_only": dict(use_dy=False, use_dh=False),
    "ids": dict(ids=True),
    "ids_no_state": dict(ids=True, state=False),
    "clip_not_binding": dict(clip=1e3),
}
SHAPES = [(2, 4, 3, 5), (1, 1, 1, 1), (3, 2, 1, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}I{}H{}".format(*s))
@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_finite_differences(case, shape, make_problem):
    kw = CASES[case]
    ids, state, clip = kw.get("ids", False), kw.get("state", True), kw.get("clip")
    use = {k: kw.get(k, True) for k in ("use_dy", "use_dh", "use_dc")}
    B, T, I, H = shape
    p = make_problem(B, T, I, H, V=5 if ids else None)

    _, _, _, cache = _forward(p, ids=ids, state=state)
    g = ref.lstm_backward(
        cache,
        p["R_y"] if use["use_dy"] else None,
        dh_T=p["R_h"] if use["use_dh"] else None,
        dc_T=p["R_c"] if use["use_dc"] else None,
        clip=clip,
    )

    # Differentiate with respect to every input; without state, at h0 = c0 = 0.
    arrays = {k: p[k].copy() for k in WEIGHTS}
    if not ids:
        arrays["x"] = p["x"].copy()
    arrays["h0"] = p["h0"].copy() if state else np.zeros((B, H))
    arrays["c0"] = p["c0"].copy() if state else np.zeros((B, H))

    def loss():
        q = {**p, **arrays}
        return _loss(p, *_forward(q, ids=ids, need_cache=False)[:3], **use)

    fd = _central_differences(loss, arrays, FINITE_DIFF_EPS)
    for name, numeric in fd.items():
        err = rel_err(getattr(g, "d" + name), numeric)
        assert err < FINITE_DIFF_TOL, f"d{name}: rel err {err:.2e}"
    if ids:
        assert g.dx is None
    assert all(getattr(g, k).dtype == F64 for k in GRADS if getattr(g, k) is not None)


def test_biases_get_equal_but_separate_gradients(make_problem):
    p = make_problem(2, 3, 2, 4)
    g = ref.lstm_backward(_forward(p)[3], p["R_y"])
    np.testing.assert_array_equal(g.db_ih, g.db_hh)
    assert not np.shares_memory(g.db_ih, g.db_hh)


# --------------------------------------------------------------------------- #
# clipping
# --------------------------------------------------------------------------- #


def test_clip_that_never_binds_changes_nothing(make_problem):
    p = make_problem(2, 4, 3, 5)
    cache = _forward(p)[3]
    a = ref.lstm_backward(cache, p["R_y"], p["R_h"], p["R_c"])
    b = ref.lstm_backward(cache, p["R_y"], p["R_h"], p["R_c"], clip=1e6)
    for k in GRADS:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


def test_clip_one_step_exact_semantics(make_problem):
    """B = T = 1: db is the pre-activation gradient itself, so every gradient is known in closed form."""
    p = make_problem(1, 1, 3, 4, scale=5.0)  # large R's: gate gradients well above the clip
    cache = _forward(p)[3]
    free = ref.lstm_backward(cache, p["R_y"], p["R_h"], p["R_c"])
    da = free.db_ih  # (4H,) unclipped dL/d(pre-activations)
    c = 0.3 * np.max(np.abs(da))
    clipped_da = np.clip(da, -c, c)
    assert np.any(clipped_da != da) and np.any(clipped_da == da), "the clip should bind on some gates only"

    g = ref.lstm_backward(cache, p["R_y"], p["R_h"], p["R_c"], clip=c)
    x0, h0 = p["x"][0, 0], p["h0"][0]
    close = dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(g.db_ih, clipped_da, **close)
    np.testing.assert_allclose(g.db_hh, clipped_da, **close)
    np.testing.assert_allclose(g.dW_ih, np.outer(clipped_da, x0), **close)
    np.testing.assert_allclose(g.dW_hh, np.outer(clipped_da, h0), **close)
    np.testing.assert_allclose(g.dx[0, 0], clipped_da @ p["W_ih"], **close)
    np.testing.assert_allclose(g.dh0[0], clipped_da @ p["W_hh"], **close)
    # The cell path c_t -> c_{t-1} (dc * f) never goes through the gates: not clipped.
    np.testing.assert_array_equal(g.dc0, free.dc0)


def test_clip_bounds_gate_gradients_at_every_step(make_problem):
    """B = 1, chained one-step backward: each step's db is that step's clipped gate gradient."""
    T, H, c = 6, 4, 0.05
    p = make_problem(1, T, 3, H, scale=5.0)
    w = [p[k] for k in WEIGHTS]
    caches, h, cc = [], p["h0"], p["c0"]
    for t in range(T):
        _, h, cc, cache = ref.lstm_forward(p["x"][:, t : t + 1], *w, h0=h, c0=cc)
        caches.append(cache)
    dh, dc, db_steps = p["R_h"], p["R_c"], []
    for t in reversed(range(T)):
        g = ref.lstm_backward(caches[t], p["R_y"][:, t : t + 1], dh, dc, clip=c)
        dh, dc = g.dh0, g.dc0
        db_steps.append(g.db_ih)
    db_steps = np.array(db_steps)
    assert np.all(np.abs(db_steps) <= c)
    assert np.sum(np.abs(db_steps) == c) >= T, "the clip should bind at several steps"
    full = ref.lstm_backward(_forward(p)[3], p["R_y"], p["R_h"], p["R_c"], clip=c)
    np.testing.assert_allclose(full.db_ih, db_steps.sum(axis=0), rtol=1e-12, atol=1e-15)
    assert np.all(np.abs(full.db_ih) <= T * c)


# --------------------------------------------------------------------------- #
# T one-step calls == one T-step call
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("clip", [None, 0.05], ids=["noclip", "clip"])
@pytest.mark.parametrize("ids", [False, True], ids=["x", "ids"])
def test_one_step_calls_chain_to_one_sequence(ids, clip, make_problem):
    B, T, I, H = 3, 5, 2, 4
    p = make_problem(B, T, I, H, V=6 if ids else None, scale=3.0)
    w = [p[k] for k in WEIGHTS]
    y, h_T, c_T, cache = _forward(p, ids=ids)
    full = ref.lstm_backward(cache, p["R_y"], p["R_h"], p["R_c"], clip=clip)

    fwd = ref.lstm_forward_ids if ids else ref.lstm_forward
    inp = p["ids"] if ids else p["x"]
    h, c, ys, caches = p["h0"], p["c0"], [], []
    for t in range(T):
        y_t, h, c, cache_t = fwd(inp[:, t : t + 1], *w, h0=h, c0=c)
        ys.append(y_t)
        caches.append(cache_t)
    eq = tol(F64)
    assert rel_err(np.concatenate(ys, axis=1), y) < eq
    assert rel_err(h, h_T) < eq and rel_err(c, c_T) < eq

    dh, dc = p["R_h"], p["R_c"]
    sums = {k: 0.0 for k in ("dW_ih", "dW_hh", "db_ih", "db_hh")}
    dxs = []
    for t in reversed(range(T)):
        g = ref.lstm_backward(caches[t], p["R_y"][:, t : t + 1], dh_T=dh, dc_T=dc, clip=clip)
        dh, dc = g.dh0, g.dc0
        dxs.insert(0, g.dx)
        for k in sums:
            sums[k] = sums[k] + getattr(g, k)
    assert rel_err(dh, full.dh0) < eq and rel_err(dc, full.dc0) < eq
    for k, v in sums.items():
        assert rel_err(v, getattr(full, k)) < eq, k
    if ids:
        assert full.dx is None and all(d is None for d in dxs)
    else:
        assert rel_err(np.concatenate(dxs, axis=1), full.dx) < eq


@pytest.mark.parametrize("ids", [False, True], ids=["x", "ids"])
@pytest.mark.parametrize("state", [True, False], ids=["state", "no_state"])
def test_lstm_step_matches_forward(ids, state, make_problem):
    B, T, I, H = 3, 4, 2, 5
    p = make_problem(B, T, I, H, V=7 if ids else None)
    w = [p[k] for k in WEIGHTS]
    y, h_T, c_T, _ = _forward(p, ids=ids, state=state, need_cache=False)
    h, c = (p["h0"], p["c0"]) if state else (None, None)
    for t in range(T):
        if ids:
            h, c = ref.lstm_step_ids(p["ids"][:, t], *w, h, c)
        else:
            h, c = ref.lstm_step(p["x"][:, t], *w, h, c)
        assert rel_err(h, y[:, t]) < tol(F64)
    assert rel_err(h, h_T) < tol(F64) and rel_err(c, c_T) < tol(F64)


def test_ids_equal_one_hot_inputs(make_problem):
    B, T, H, V = 3, 4, 5, 6
    p = make_problem(B, T, 1, H, V=V)
    one_hot = np.eye(V)[p["ids"]]  # (B, T, V)
    w = [p[k] for k in WEIGHTS]
    a = ref.lstm_forward_ids(p["ids"], *w, h0=p["h0"], c0=p["c0"])
    b = ref.lstm_forward(one_hot, *w, h0=p["h0"], c0=p["c0"])
    for u, v in zip(a[:3], b[:3]):
        assert rel_err(u, v) < tol(F64)
    ga = ref.lstm_backward(a[3], p["R_y"], p["R_h"], p["R_c"])
    gb = ref.lstm_backward(b[3], p["R_y"], p["R_h"], p["R_c"])
    assert ga.dx is None and ga.dW_ih.shape == (4 * H, V)
    for k in GRADS[1:]:
        assert rel_err(getattr(ga, k), getattr(gb, k)) < tol(F64), k


# --------------------------------------------------------------------------- #
# dtypes and caches
# --------------------------------------------------------------------------- #


def test_float32_reference_computes_in_float32(make_problem):
    p64 = make_problem(3, 6, 4, 7, dtype=np.float32)  # float32 values, held in float64
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    out32, out64 = _forward(p32), _forward(p64)
    g32 = ref.lstm_backward(out32[3], p32["R_y"], p32["R_h"], p32["R_c"])
    g64 = ref.lstm_backward(out64[3], p64["R_y"], p64["R_h"], p64["R_c"])
    pairs = list(zip(out32[:3], out64[:3])) + [(getattr(g32, k), getattr(g64, k)) for k in GRADS]
    for a, b in pairs:
        assert a.dtype == np.float32
        assert rel_err(a, b) < tol(np.float32)
    # float32 maths, not float64 maths rounded at the end: rounding shows somewhere.
    assert any(np.any(a != b.astype(np.float32)) for a, b in pairs)


def test_cache_is_a_snapshot_and_y_is_read_only(make_problem):
    p = make_problem(2, 3, 2, 4)
    x, W_ih = p["x"].copy(), p["W_ih"].copy()
    y, _, _, cache = ref.lstm_forward(x, W_ih, p["W_hh"], p["b_ih"], p["b_hh"])
    assert isinstance(cache, dict)
    before = ref.lstm_backward(cache, p["R_y"])
    x += 1.0
    W_ih *= 2.0  # an optimizer step between forward and backward must not leak into the cache
    after = ref.lstm_backward(cache, p["R_y"])
    for k in GRADS:
        np.testing.assert_array_equal(getattr(before, k), getattr(after, k))
    assert not y.flags.writeable
    with pytest.raises(ValueError):
        y[0, 0, 0] = 1.0
    y2, _, _, none = ref.lstm_forward(x, W_ih, p["W_hh"], p["b_ih"], p["b_hh"], need_cache=False)
    assert none is None and y2.flags.writeable


def test_nan_propagates(make_problem):
    p = make_problem(2, 3, 2, 4)
    p["x"][0, 1, 0] = np.nan
    y, h_T, _, cache = _forward(p)
    assert np.isnan(y[0, 1:]).all() and np.isfinite(y[1]).all() and np.isfinite(y[0, 0]).all()
    g = ref.lstm_backward(cache, p["R_y"])
    assert np.isnan(g.dW_ih).any() and np.isfinite(g.dh0[1]).all()
