"""The C++ kernel against the NumPy reference: ISA × dtype × threads × shapes.

A float64 kernel must match the float64 reference to ~1e-10; a float32 kernel is
compared with the float64 reference on the very same (float32-rounded) inputs,
to ~1e-4.  Bounds come from ``tolerances.TOL``; errors are max|a - r| / max|r|
per tensor.  Every forward output and every gradient is checked.
"""
from __future__ import annotations

import numpy as np
import pytest

from pylstm import _core, kernels
from pylstm import reference as ref
from tolerances import rel_err, tol

F64 = np.float64
DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["float64", "float32"]
WEIGHTS = ("W_ih", "W_hh", "b_ih", "b_hh")
OUTPUTS = ("y", "h_T", "c_T")
GRADS = ("dx", "dh0", "dc0", "dW_ih", "dW_hh", "db_ih", "db_hh")


def _run(impl, p, dtype, *, ids=False, state=True, dy=True, dh=True, dc=True, clip=None, num_threads=None):
    """Forward + backward of ``impl`` (kernels or reference) in ``dtype``: {name: array or None}."""
    w = [p[k].astype(dtype) for k in WEIGHTS]
    h0, c0 = (p["h0"].astype(dtype), p["c0"].astype(dtype)) if state else (None, None)
    if ids:
        y, h_T, c_T, cache = impl.lstm_forward_ids(p["ids"], *w, h0=h0, c0=c0, num_threads=num_threads)
    else:
        y, h_T, c_T, cache = impl.lstm_forward(p["x"].astype(dtype), *w, h0=h0, c0=c0, num_threads=num_threads)
    g = impl.lstm_backward(
        cache,
        p["R_y"].astype(dtype) if dy else None,
        dh_T=p["R_h"].astype(dtype) if dh else None,
        dc_T=p["R_c"].astype(dtype) if dc else None,
        clip=clip,
        num_threads=num_threads,
    )
    assert isinstance(g, ref.LSTMGrads)
    return {"y": y, "h_T": h_T, "c_T": c_T, **g._asdict()}


def _assert_close(got: dict, want: dict, dtype) -> None:
    """Every tensor of ``got`` (kernel, ``dtype``) within tol(dtype) of ``want`` (reference, float64)."""
    bad = []
    for name, r in want.items():
        a = got[name]
        if r is None:
            assert a is None, f"{name} should be None"
            continue
        assert a.dtype == np.dtype(dtype), f"{name} has dtype {a.dtype}, expected {np.dtype(dtype)}"
        assert a.shape == r.shape, f"{name} has shape {a.shape}, expected {r.shape}"
        err = rel_err(a, r)
        if not err < tol(dtype):
            bad.append(f"{name}: {err:.3e}")
    assert not bad, f"rel err above {tol(dtype):.0e}: " + ", ".join(bad)


def _shape_id(s) -> str:
    return "B{}T{}I{}H{}".format(*s)


# Not multiples of any SIMD width, plus the degenerate B = T = I = H = 1.  The last one has
# enough work per step for the kernel to really use 2 threads (asserted below).
# From (8, ...) to (100, ...): small H with B >= 8, the batch-in-lanes path (csrc/lstm_lanes.inl),
# with batches that leave whole and partial blocks of lanes.
# (13, 4, 6, 80): whole vectors of hidden units on the row path, a partial tile of batch rows.
SHAPES = [(1, 1, 1, 1), (3, 4, 7, 3), (2, 3, 3, 17), (4, 2, 17, 33), (1, 5, 33, 7), (5, 3, 1, 33),
          (8, 3, 2, 5), (19, 4, 3, 15), (37, 2, 5, 64), (100, 3, 1, 40), (13, 4, 6, 80), (20, 3, 5, 127)]
LANES_SHAPES = [s for s in SHAPES if s[0] >= 8 and s[3] <= 64]
THREADED_SHAPE = (26, 4, 24, 129)  # B, T, I, H: past the threading threshold for 3 threads
# 3 panels of H for 4 threads: the backward's per-step product splits its batch rows too.
THREADED_FEW_PANELS_SHAPE = (64, 3, 20, 96)
# B·T above the GEMM's row block (144) and I, 4H above its depth block (256): the large
# products' rows-first path, split over 3 threads.
THREADED_LARGE_SHAPE = (40, 5, 300, 129)
# Memory lent by the call instead of the workspace's (csrc/lstm_kernels.inl): H past the
# in-place recurrent product's threshold with B in one panel on every path (the forward reads
# W_hh where it lies); (4, 3, 300, 264): the input projection in ranges of columns, block by
# block, and W_hh packed in the workspace (H not a multiple of the panel width); (4, 70, 300,
# 288): the projection in ranges of all K rows in y's room, W_hh packed in dW_hh's room, dx in
# ranges there and dW_hh in the cell states' room; (20, 3, 40, 264): h_{t-1} in two panels of
# 16 rows (AVX2 float32, AVX-512 float64) for the in-place product.
LENT_ROOM_SHAPES = [(4, 3, 300, 264), (4, 70, 300, 288), (20, 3, 40, 264)]


def test_threaded_shapes_really_use_threads():
    B, T, I, H = SHAPES[-1]
    assert _core.team_size(B, T, I, H, 2) == 2
    for shape in LENT_ROOM_SHAPES:
        assert _core.team_size(*shape, 2) == 2
    for B, T, I, H in (THREADED_SHAPE, THREADED_LARGE_SHAPE):
        assert _core.team_size(B, T, I, H, 3) == 3
    for shape in (THREADED_LARGE_SHAPE, THREADED_FEW_PANELS_SHAPE):
        assert _core.team_size(*shape, 4) == 4


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_matches_reference(isa, num_threads, dtype, shape, make_problem):
    p = make_problem(*shape, dtype=dtype)
    got = _run(kernels, p, dtype, num_threads=num_threads)
    _assert_close(got, _run(ref, p, F64), dtype)


@pytest.mark.parametrize("shape", LENT_ROOM_SHAPES, ids=_shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("state", [True, False], ids=["state", "no_state"])
def test_lent_rooms_match_reference(isa, num_threads, dtype, state, shape, make_problem):
    p = make_problem(*shape, dtype=dtype)
    got = _run(kernels, p, dtype, state=state, num_threads=num_threads)
    _assert_close(got, _run(ref, p, F64, state=state), dtype)  # (summed into dW_hh's room, dW_hh would be off)


# (name, options of _run): initial state or not, gradient only from the last step, clip, ids.
VARIANTS = {
    "no_state": dict(state=False),
    "last_step_only": dict(dy=False, dc=False),  # dy None, dh_T given
    "c_T_only": dict(dy=False, dh=False),
    "clip": dict(clip=0.05),
    "ids": dict(ids=True),
    "ids_no_state_clip": dict(ids=True, state=False, clip=0.05),
}


# Batch sizes that take the row path and the batch-in-lanes path.
LAYOUT_BATCHES = pytest.mark.parametrize("B", [3, 19], ids=["rows", "lanes"])


def _padded(B: int) -> int:
    return -(-B // 16) * 16


@pytest.mark.parametrize("shape", LANES_SHAPES, ids=_shape_id)
def test_small_hidden_sizes_use_the_lanes_layout(shape, make_problem):
    # The cache's buffers show the layout: gate-major rows over (t, padded batch).
    B, T, I, H = shape
    p = make_problem(B, T, I, H, dtype=np.float32)
    *_, cache = kernels.lstm_forward(p["x"].astype(np.float32), *[p[k].astype(np.float32) for k in WEIGHTS])
    assert cache.gates.size == 4 * H * T * _padded(B)
    assert cache.cs.size == 2 * H * T * _padded(B)


@LAYOUT_BATCHES
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_variants_match_reference(isa, dtype, variant, B, make_problem):
    # Single-threaded: test_threads_bit_identical shows these paths give the same bits threaded.
    opts = VARIANTS[variant]
    p = make_problem(B, 5, 7, 17, V=11 if opts.get("ids") else None, scale=2.0, dtype=dtype)
    got = _run(kernels, p, dtype, num_threads=1, **opts)
    _assert_close(got, _run(ref, p, F64, **opts), dtype)


@pytest.mark.parametrize("B", [5, 21], ids=["rows", "lanes"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_saturated_gates(isa, dtype, B, make_problem):
    # |pre-activations| in the hundreds: exp overflows inside σ unless the kernel is careful.
    p = make_problem(B, 4, 9, 19, scale=1e3, dtype=dtype)
    got = _run(kernels, p, dtype, num_threads=1)
    assert all(np.isfinite(a).all() for a in got.values() if a is not None)
    _assert_close(got, _run(ref, p, F64), dtype)


def test_clip_variant_really_clips(make_problem):
    # Guards the variants above: at this scale, clip=0.05 must change the gradients.
    p = make_problem(3, 5, 7, 17, scale=2.0)
    a, b = _run(ref, p, F64), _run(ref, p, F64, clip=0.05)
    assert rel_err(b["dW_hh"], a["dW_hh"]) > 0.1


def test_large_float32(make_problem):
    """T=50, B=32, I=64, H=300, PyTorch's init: the default ISA, float32 only, one thread
    (threaded splits are checked on smaller shapes; on a busy 2-core machine a 2-thread team
    waiting at every step's barrier can take seconds here)."""
    p = make_problem(32, 50, 64, 300, init="torch", dtype=np.float32, seed=1)
    got = _run(kernels, p, np.float32, num_threads=1, clip=1.0)
    _assert_close(got, _run(ref, p, F64, clip=1.0), np.float32)


# Inference (need_cache=False) with B >= 4 and H past the staged gate math runs the input
# projection step by step, in the gates array's room: it must give the cached forward's bits.
# (64, 6, 20, 96): two steps per chunk, and on 2-4 threads each thread's batch rows in every product.
INFERENCE_SHAPES = [(5, 40, 33, 65), (26, 12, 24, 129), (64, 6, 20, 96)]


@pytest.mark.parametrize("shape", INFERENCE_SHAPES, ids=_shape_id)
@pytest.mark.parametrize("state", [True, False], ids=["state", "no_state"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_inference_forward_matches(isa, num_threads, dtype, state, shape, make_problem):
    p = make_problem(*shape, dtype=dtype)
    w = [p[k].astype(dtype) for k in WEIGHTS]
    if not state:
        w[1][3, 2] = np.nan  # a broken W_hh row must show through the zero initial state
    h0, c0 = (p["h0"].astype(dtype), p["c0"].astype(dtype)) if state else (None, None)
    x = p["x"].astype(dtype)
    cached = kernels.lstm_forward(x, *w, h0=h0, c0=c0, need_cache=True, num_threads=num_threads)
    got = kernels.lstm_forward(x, *w, h0=h0, c0=c0, need_cache=False, num_threads=num_threads)
    for name, a, b in zip(OUTPUTS, got[:3], cached[:3]):
        np.testing.assert_array_equal(a, b, err_msg=name)
    if state:
        want = ref.lstm_forward(p["x"], *(p[k] for k in WEIGHTS), h0=p["h0"], c0=p["c0"])
        _assert_close(dict(zip(OUTPUTS, got[:3])), dict(zip(OUTPUTS, want[:3])), dtype)
    else:
        assert np.isnan(got[0]).any()


# --------------------------------------------------------------------------- #
# threads: bit-identical results
# --------------------------------------------------------------------------- #


THREAD_VARIANTS = {
    "x_clip": dict(clip=0.5),
    "ids_clip": dict(ids=True, clip=0.5),
    "no_state_last_step_only": dict(state=False, dy=False, dc=False),
}


@pytest.mark.parametrize("shape", [THREADED_SHAPE, THREADED_LARGE_SHAPE, THREADED_FEW_PANELS_SHAPE,
                                   *LENT_ROOM_SHAPES], ids=_shape_id)
@pytest.mark.parametrize("variant", list(THREAD_VARIANTS))
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_threads_bit_identical(isa, dtype, variant, shape, make_problem):
    # The shapes really run 3 or 4 threads (test_threaded_shapes_really_use_threads).  Work is
    # split without atomics (weight gradients by rows), so bits must agree.
    opts = THREAD_VARIANTS[variant]
    p = make_problem(*shape, V=50 if opts.get("ids") else None, scale=2.0, dtype=dtype)
    runs = {n: _run(kernels, p, dtype, num_threads=n, **opts) for n in (1, 2, 3, 4, 1)}
    base = runs[1]
    for n, out in runs.items():
        for name, a in out.items():
            if a is None:
                assert base[name] is None
            else:
                np.testing.assert_array_equal(a, base[name], err_msg=f"{name}, {n} threads vs 1")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_inference_threads_bit_identical(isa, dtype, make_problem):
    # The inference forward's chunked input products and per-step products split batch rows by
    # thread where they fit in cache (gemm.inl, per_step_thread_rows): no bit may depend on it.
    shape = INFERENCE_SHAPES[-1]
    assert _core.team_size(*shape, 4) == 4
    p = make_problem(*shape, dtype=dtype)
    x, w = p["x"].astype(dtype), [p[k].astype(dtype) for k in WEIGHTS]
    base = kernels.lstm_forward(x, *w, need_cache=False, num_threads=1)
    for n in (2, 3, 4):
        got = kernels.lstm_forward(x, *w, need_cache=False, num_threads=n)
        for name, a, b in zip(OUTPUTS, got[:3], base[:3]):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}, {n} threads vs 1")


# --------------------------------------------------------------------------- #
# T one-step calls == one T-step call
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("state", [True, False], ids=["state", "no_state"])
@pytest.mark.parametrize("ids", [False, True], ids=["x", "ids"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("B", [3, 18], ids=["rows", "lanes"])
def test_lstm_step_chain(isa, num_threads, dtype, ids, state, B, make_problem):
    T, I, H = 6, 5, 9
    p = make_problem(B, T, I, H, V=13 if ids else None, dtype=dtype)
    want = _run(ref, p, F64, ids=ids, state=state)
    w = [p[k].astype(dtype) for k in WEIGHTS]
    h, c = (p["h0"].astype(dtype), p["c0"].astype(dtype)) if state else (None, None)
    ys = []
    for t in range(T):
        if ids:
            h, c = kernels.lstm_step_ids(p["ids"][:, t], *w, h, c, num_threads=num_threads)
        else:
            h, c = kernels.lstm_step(p["x"][:, t].astype(dtype), *w, h, c, num_threads=num_threads)
        assert h.dtype == c.dtype == np.dtype(dtype)
        ys.append(h)
    _assert_close({"y": np.stack(ys, axis=1), "h_T": h, "c_T": c}, {k: want[k] for k in OUTPUTS}, dtype)


@pytest.mark.parametrize("clip", [None, 0.05], ids=["noclip", "clip"])
@pytest.mark.parametrize("ids", [False, True], ids=["x", "ids"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("B", [3, 18], ids=["rows", "lanes"])
def test_one_step_calls_chain_to_one_sequence(isa, num_threads, dtype, ids, clip, B, make_problem):
    """T one-step lstm_forward calls (state carried), then T one-step backward calls
    (dh, dc carried, weight gradients summed) == one T-step forward and backward."""
    T, I, H = 5, 4, 7
    p = make_problem(B, T, I, H, V=6 if ids else None, scale=2.0, dtype=dtype)
    want = _run(ref, p, F64, ids=ids, clip=clip)
    cast = lambda a: a.astype(dtype)  # noqa: E731
    w = [cast(p[k]) for k in WEIGHTS]
    forward = kernels.lstm_forward_ids if ids else kernels.lstm_forward
    inputs = p["ids"] if ids else cast(p["x"])

    h, c, ys, caches = cast(p["h0"]), cast(p["c0"]), [], []
    for t in range(T):
        y_t, h, c, cache = forward(inputs[:, t : t + 1], *w, h0=h, c0=c, num_threads=num_threads)
        ys.append(y_t)
        caches.append(cache)

    dh, dc, dxs = cast(p["R_h"]), cast(p["R_c"]), []
    sums = {k: 0 for k in ("dW_ih", "dW_hh", "db_ih", "db_hh")}
    for t in reversed(range(T)):
        g = kernels.lstm_backward(
            caches[t], cast(p["R_y"][:, t : t + 1]), dh_T=dh, dc_T=dc, clip=clip, num_threads=num_threads
        )
        dh, dc = g.dh0, g.dc0
        dxs.insert(0, g.dx)
        for k in sums:
            sums[k] = sums[k] + getattr(g, k)

    got = {"y": np.concatenate(ys, axis=1), "h_T": h, "c_T": c, "dh0": dh, "dc0": dc, **sums}
    got["dx"] = None if ids else np.concatenate(dxs, axis=1)
    _assert_close(got, want, dtype)


# --------------------------------------------------------------------------- #
# PyTorch as a second, independent oracle
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("state", [True, False], ids=["state", "no_state"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_matches_torch(dtype, state, make_problem):
    torch = pytest.importorskip("torch")
    B, T, I, H = 3, 6, 5, 7
    p = make_problem(B, T, I, H, dtype=dtype)
    got = _run(kernels, p, dtype, state=state)

    lstm = torch.nn.LSTM(I, H, batch_first=True).double()
    with torch.no_grad():
        for ours, theirs in zip(WEIGHTS, ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")):
            getattr(lstm, theirs).copy_(torch.from_numpy(p[ours]))
    t = {k: torch.tensor(p[k], requires_grad=True) for k in ("x", "h0", "c0")}
    if not state:
        t["h0"] = torch.zeros(B, H, dtype=torch.float64, requires_grad=True)
        t["c0"] = torch.zeros(B, H, dtype=torch.float64, requires_grad=True)
    y, (h_T, c_T) = lstm(t["x"], (t["h0"][None], t["c0"][None]))
    loss = (
        (y * torch.from_numpy(p["R_y"])).sum()
        + (h_T[0] * torch.from_numpy(p["R_h"])).sum()
        + (c_T[0] * torch.from_numpy(p["R_c"])).sum()
    )
    loss.backward()
    want = {
        "y": y.detach().numpy(),
        "h_T": h_T[0].detach().numpy(),
        "c_T": c_T[0].detach().numpy(),
        "dx": t["x"].grad.numpy(),
        "dh0": t["h0"].grad.numpy(),
        "dc0": t["c0"].grad.numpy(),
        "dW_ih": lstm.weight_ih_l0.grad.numpy(),
        "dW_hh": lstm.weight_hh_l0.grad.numpy(),
        "db_ih": lstm.bias_ih_l0.grad.numpy(),
        "db_hh": lstm.bias_hh_l0.grad.numpy(),
    }
    _assert_close(got, want, dtype)


# --------------------------------------------------------------------------- #
# the gradcheck report (pylstm gradcheck)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gradcheck_report(dtype):
    from pylstm.gradcheck import format_report, gradcheck

    result = gradcheck(dtype=np.dtype(dtype).name, with_state=False, num_threads=1)
    assert list(result) == list(OUTPUTS + GRADS)
    for name, errs in result.items():
        assert errs["vs_reference"] < tol(dtype), name
        if name in GRADS:
            # the float32 kernel's own rounding dominates its distance to float64 differences
            assert errs["vs_finite_diff"] < max(tol(dtype), 1e-6), name
        else:
            assert "vs_finite_diff" not in errs
    report = format_report(result)
    assert all(name in report for name in result)
