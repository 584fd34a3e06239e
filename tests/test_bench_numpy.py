"""The benchmark's NumPy peer (benchmarks/numpy_lstm.py) against the NumPy oracle.

The "vs NumPy" column of the benchmark is only fair if the peer computes the
same thing: forward outputs and every gradient must match ``pylstm.reference``
in float64 to the float64 tolerance, and in float32 to the float32 one.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from pylstm import reference as ref
from tolerances import rel_err, tol

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "numpy_lstm.py"
_spec = importlib.util.spec_from_file_location("_bench_numpy_lstm", _PATH)
nl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nl)

GRADS = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")
# (B, T, I, H): sizes off every SIMD width, a single step, a single unit.
SHAPES = [(1, 1, 1, 1), (3, 7, 2, 5), (2, 17, 33, 7), (4, 3, 1, 40)]


def _problem(B: int, T: int, I: int, H: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = {"x": rng.standard_normal((B, T, I)),
         "W_ih": rng.uniform(-0.6, 0.6, (4 * H, I)), "W_hh": rng.uniform(-0.6, 0.6, (4 * H, H)),
         "b_ih": rng.uniform(-0.6, 0.6, 4 * H), "b_hh": rng.uniform(-0.6, 0.6, 4 * H),
         "h0": rng.standard_normal((B, H)), "c0": rng.standard_normal((B, H)),
         "dy": rng.standard_normal((B, T, H)), "dh_T": rng.standard_normal((B, H)),
         "dc_T": rng.standard_normal((B, H))}
    return p


def _run(mod, p, dtype, state: bool, final_grads: bool):
    w = [p[k].astype(dtype) for k in ("W_ih", "W_hh", "b_ih", "b_hh")]
    h0, c0 = (p["h0"].astype(dtype), p["c0"].astype(dtype)) if state else (None, None)
    y, h_T, c_T, cache = mod.lstm_forward(p["x"].astype(dtype), *w, h0=h0, c0=c0)
    dh_T, dc_T = (p["dh_T"].astype(dtype), p["dc_T"].astype(dtype)) if final_grads else (None, None)
    g = mod.lstm_backward(cache, p["dy"].astype(dtype), dh_T, dc_T)
    return {"y": y, "h_T": h_T, "c_T": c_T, **{k: getattr(g, k) for k in GRADS}}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B,T,I,H=" + ",".join(map(str, s)))
@pytest.mark.parametrize("state,final_grads", [(True, True), (False, False)], ids=["state", "no-state"])
def test_numpy_peer_matches_reference_float64(shape, state, final_grads):
    p = _problem(*shape)
    got = _run(nl, p, np.float64, state, final_grads)
    want = _run(ref, p, np.float64, state, final_grads)
    for k, r in want.items():
        assert got[k].dtype == np.float64 and got[k].shape == r.shape, k
        assert rel_err(got[k], r) <= tol(np.float64), k


@pytest.mark.parametrize("shape", SHAPES[1:], ids=lambda s: "B,T,I,H=" + ",".join(map(str, s)))
def test_numpy_peer_float32_within_float32_tolerance(shape):
    p = _problem(*shape, seed=1)
    got = _run(nl, p, np.float32, True, True)
    want = _run(ref, p, np.float64, True, True)  # the float64 oracle on the same (rounded) inputs is close enough
    for k, r in want.items():
        assert got[k].dtype == np.float32, k
        assert rel_err(got[k], r) <= tol(np.float32), k


def test_inference_forward_equals_training_forward_and_cache_is_reusable():
    p = _problem(3, 7, 2, 5, seed=2)
    w = [p[k] for k in ("W_ih", "W_hh", "b_ih", "b_hh")]
    y, h_T, c_T, cache = nl.lstm_forward(p["x"], *w)
    y2, h2, c2, none = nl.lstm_forward(p["x"], *w, need_cache=False)
    assert none is None
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(h_T, h2)
    np.testing.assert_array_equal(c_T, c2)
    g1 = nl.lstm_backward(cache, p["dy"])
    g2 = nl.lstm_backward(cache, p["dy"])  # the backward must not consume or modify the cache
    for k in GRADS:
        np.testing.assert_array_equal(getattr(g1, k), getattr(g2, k))
