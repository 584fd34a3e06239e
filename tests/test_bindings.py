"""Bad input gets a clear ValueError/TypeError, odd-but-valid input gets the right answer.

Each test runs against both implementations, the C++ kernel and the NumPy
reference, so that the two keep the same rules.  Error messages must name the
offending argument and, for shapes, the expected shape (symbolic like
``(4H, H)`` or concrete like ``(28, 7)``).
"""
from __future__ import annotations

import inspect
import re

import numpy as np
import pytest

from pylstm import kernels
from pylstm import reference as ref

B, T, I, H, V = 2, 3, 4, 7, 5
F64, F32 = np.float64, np.float32
IMPLS = {"kernels": kernels, "reference": ref}


@pytest.fixture(params=list(IMPLS), ids=[f"impl={n}" for n in IMPLS])
def impl(request):
    return IMPLS[request.param]


def _weights(dtype=F64, *, inputs=I, seed=0):
    rng = np.random.default_rng(seed)
    k = 2 / np.sqrt(H)
    return {
        "W_ih": rng.uniform(-k, k, (4 * H, inputs)).astype(dtype),
        "W_hh": rng.uniform(-k, k, (4 * H, H)).astype(dtype),
        "b_ih": rng.uniform(-k, k, 4 * H).astype(dtype),
        "b_hh": rng.uniform(-k, k, 4 * H).astype(dtype),
    }


def _args(dtype=F64, seed=0):
    """Keyword arguments of a valid lstm_forward call, with initial state."""
    rng = np.random.default_rng(seed + 1)
    return {
        "x": rng.standard_normal((B, T, I)).astype(dtype),
        **_weights(dtype, seed=seed),
        "h0": rng.standard_normal((B, H)).astype(dtype),
        "c0": rng.standard_normal((B, H)).astype(dtype),
    }


def _grads_in(dtype=F64, seed=0):
    rng = np.random.default_rng(seed + 2)
    return {
        "dy": rng.standard_normal((B, T, H)).astype(dtype),
        "dh_T": rng.standard_normal((B, H)).astype(dtype),
        "dc_T": rng.standard_normal((B, H)).astype(dtype),
    }


def _everything(impl, fwd: dict, bwd: dict, *, ids=False) -> dict:
    """All outputs of a forward + backward, by name."""
    forward = impl.lstm_forward_ids if ids else impl.lstm_forward
    y, h_T, c_T, cache = forward(**fwd)
    g = impl.lstm_backward(cache, **bwd)
    return {"y": y, "h_T": h_T, "c_T": c_T, **g._asdict()}


def _assert_identical(a: dict, b: dict) -> None:
    for name in a:
        if a[name] is None:
            assert b[name] is None, name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _assert_names(excinfo, name: str, shapes: tuple[str, ...] = ()) -> None:
    msg = str(excinfo.value)
    assert re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", msg), f"{name!r} not named in: {msg}"
    if shapes:
        assert any(s in msg for s in shapes), f"none of {shapes} in: {msg}"


# --------------------------------------------------------------------------- #
# shapes
# --------------------------------------------------------------------------- #

# argument -> (bad value's shape, expected-shape spellings the message may use)
BAD_FORWARD_SHAPES = {
    "W_hh rows": ("W_hh", (4 * H - 1, H), ("(4H, H)", f"({4 * H}, {H})")),
    "W_hh ndim": ("W_hh", (4 * H, H, 1), ("(4H, H)", f"({4 * H}, {H})")),
    "W_ih rows": ("W_ih", (4 * H - 4, I), ("(4H, I)", f"({4 * H}, {I})", f"({4 * H}, I)")),
    "W_ih ndim": ("W_ih", (4 * H * I,), ("(4H, I)", f"({4 * H}, {I})", f"({4 * H}, I)")),
    "b_ih": ("b_ih", (4 * H - 1,), ("(4H,)", f"({4 * H},)")),
    "b_hh ndim": ("b_hh", (4 * H, 1), ("(4H,)", f"({4 * H},)")),
    "x ndim": ("x", (B, I), ("(B, T, I)", f"({B}, {T}, {I})")),
    "h0": ("h0", (B, H - 1), ("(B, H)", f"({B}, {H})")),
    "c0": ("c0", (B + 1, H), ("(B, H)", f"({B}, {H})")),
}


@pytest.mark.parametrize("case", list(BAD_FORWARD_SHAPES))
def test_bad_forward_shapes_name_argument_and_shape(impl, case):
    name, shape, spellings = BAD_FORWARD_SHAPES[case]
    args = _args()
    args[name] = np.zeros(shape)
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_forward(**args)
    _assert_names(excinfo, name, spellings)


def test_input_size_mismatch_names_x_or_W_ih(impl):
    args = _args()
    args["x"] = np.zeros((B, T, I + 1))
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_forward(**args)
    msg = str(excinfo.value)
    assert "x" in msg or "W_ih" in msg, msg


@pytest.mark.parametrize(
    "name, shape", [("dy", (B, T, H + 1)), ("dy", (B, H)), ("dh_T", (B, H + 1)), ("dc_T", (B - 1, H))]
)
def test_bad_gradient_shapes(impl, name, shape):
    cache = impl.lstm_forward(**_args())[3]
    bwd = _grads_in()
    bwd[name] = np.zeros(shape)
    expected = {"dy": ("(B, T, H)", f"({B}, {T}, {H})")}.get(name, ("(B, H)", f"({B}, {H})"))
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_backward(cache, **bwd)
    _assert_names(excinfo, name, expected)


@pytest.mark.parametrize("bad_dy", [np.zeros((B, T, H + 1)), np.zeros((B, T, H), np.float32), "zeros"],
                         ids=["shape", "dtype", "not-an-array"])
def test_a_refused_backward_leaves_the_cache_usable(bad_dy):
    # The refusal comes from the binding's own checks (the fast path) or from Python's: either way
    # the kernel never ran, so the cache still serves its one backward pass, with the same result.
    bwd = _grads_in()
    want = kernels.lstm_backward(kernels.lstm_forward(**_args())[3], bwd["dy"])
    cache = kernels.lstm_forward(**_args())[3]
    with pytest.raises((TypeError, ValueError)):
        kernels.lstm_backward(cache, bad_dy)
    assert not cache.used
    got = kernels.lstm_backward(cache, bwd["dy"])
    assert cache.used
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="already used"):
        kernels.lstm_backward(cache, bwd["dy"])


def test_a_strided_dy_gives_the_contiguous_answer():
    bwd = _grads_in()
    want = kernels.lstm_backward(kernels.lstm_forward(**_args())[3], bwd["dy"])
    strided = np.repeat(bwd["dy"], 2, axis=2)[:, :, ::2]  # same values, not C-contiguous
    assert not strided.flags.c_contiguous
    got = kernels.lstm_backward(kernels.lstm_forward(**_args())[3], strided)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_bad_step_and_ids_shapes(impl):
    w = _weights()
    h = c = np.zeros((B, H))
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_step(np.zeros((B, T, I)), **w, h=h, c=c)
    _assert_names(excinfo, "x_t", ("(B, I)", f"({B}, {I})", f"(B, {I})"))
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_step(np.zeros((B, I)), **w, h=np.zeros((B, H + 1)), c=c)
    _assert_names(excinfo, "h", ("(B, H)", f"({B}, {H})"))
    wv = _weights(inputs=V)
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_forward_ids(np.zeros((B, T, 1), np.int64), **wv)
    _assert_names(excinfo, "ids", ("(B, T)",))
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_step_ids(np.zeros((B, 1), np.int64), **wv, h=None, c=None)
    _assert_names(excinfo, "ids_t", ("(B,)",))


@pytest.mark.parametrize("shape", [(0, T, I), (B, 0, I)], ids=["B=0", "T=0"])
def test_empty_batch_or_sequence_is_a_value_error(impl, shape):
    args = _args()
    args["x"] = np.zeros(shape)
    args["h0"] = args["c0"] = None
    with pytest.raises(ValueError):
        impl.lstm_forward(**args)
    with pytest.raises(ValueError):
        impl.lstm_forward_ids(np.zeros(shape[:2], np.int64), **_weights(inputs=V))


def test_empty_step_batch_is_a_value_error(impl):
    with pytest.raises(ValueError):
        impl.lstm_step(np.zeros((0, I)), **_weights(), h=None, c=None)
    with pytest.raises(ValueError):
        impl.lstm_step_ids(np.zeros((0,), np.int64), **_weights(inputs=V), h=None, c=None)


# --------------------------------------------------------------------------- #
# dtypes
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.complex128, object, np.bool_])
@pytest.mark.parametrize("name", ["W_ih", "W_hh", "b_ih", "b_hh"])
def test_unsupported_weight_dtype_is_a_type_error(impl, name, dtype):
    args = _args()
    args[name] = args[name].astype(dtype)
    with pytest.raises(TypeError) as excinfo:
        impl.lstm_forward(**args)
    _assert_names(excinfo, name)


@pytest.mark.parametrize("odd", ["W_ih", "b_hh"])
def test_mixed_weight_dtypes_are_a_type_error(impl, odd):
    args = _args()
    args[odd] = args[odd].astype(F32)
    with pytest.raises(TypeError):
        impl.lstm_forward(**args)
    with pytest.raises(TypeError):
        impl.lstm_step(args["x"][:, 0], args["W_ih"], args["W_hh"], args["b_ih"], args["b_hh"], None, None)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64, object, "U3"])
def test_complex_object_or_text_x_is_a_type_error(impl, dtype):
    args = _args()
    args["x"] = args["x"].astype(dtype)
    with pytest.raises(TypeError) as excinfo:
        impl.lstm_forward(**args)
    _assert_names(excinfo, "x")
    with pytest.raises(TypeError):
        impl.lstm_step(args["x"][:, 0], **_weights(), h=None, c=None)


@pytest.mark.parametrize("xdtype", [np.int64, np.int32, np.uint8, np.bool_, np.float32, np.float64, np.float16])
@pytest.mark.parametrize("wdtype", [F64, F32], ids=["w=float64", "w=float32"])
def test_any_real_x_is_cast_to_the_weights_dtype(impl, wdtype, xdtype):
    args = _args(wdtype)
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 2, (B, T, I)) if xdtype == np.bool_ else rng.integers(0, 4, (B, T, I))
    odd = dict(args, x=raw.astype(xdtype))
    plain = dict(args, x=raw.astype(xdtype).astype(wdtype))
    bwd = _grads_in(wdtype)
    got, want = _everything(impl, odd, bwd), _everything(impl, plain, bwd)
    assert got["y"].dtype == got["dx"].dtype == np.dtype(wdtype)
    _assert_identical(got, want)
    h, c = impl.lstm_step(raw[:, 0].astype(xdtype), **_weights(wdtype), h=None, c=None)
    h2, c2 = impl.lstm_step(raw[:, 0].astype(wdtype), **_weights(wdtype), h=None, c=None)
    np.testing.assert_array_equal(h, h2)
    np.testing.assert_array_equal(c, c2)


@pytest.mark.parametrize("name", ["dy", "dh_T", "dc_T"])
@pytest.mark.parametrize("cache_dtype", [F32, F64], ids=["cache=float32", "cache=float64"])
def test_gradient_of_the_wrong_dtype_is_a_type_error(impl, cache_dtype, name):
    cache = impl.lstm_forward(**_args(cache_dtype))[3]
    bwd = _grads_in(cache_dtype)
    bwd[name] = bwd[name].astype(F64 if cache_dtype == F32 else F32)
    with pytest.raises(TypeError) as excinfo:
        impl.lstm_backward(cache, **bwd)
    _assert_names(excinfo, name)


# --------------------------------------------------------------------------- #
# memory layouts: any strides give the contiguous answer, bit for bit
# --------------------------------------------------------------------------- #


def _fortran(a):
    return np.asfortranarray(a)


def _reversed(a):
    return a[::-1].copy()[::-1]  # same values, negative stride on axis 0


def _strided(a):
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]  # same values, every other element of a larger buffer


LAYOUTS = {"fortran": _fortran, "negative_stride": _reversed, "strided": _strided}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_any_memory_layout_gives_the_same_answer(impl, dtype, layout):
    relayout = LAYOUTS[layout]
    fwd, bwd = _args(dtype), _grads_in(dtype)
    want = _everything(impl, fwd, bwd)
    for name in fwd:
        _assert_identical(_everything(impl, dict(fwd, **{name: relayout(fwd[name])}), bwd), want)
    for name in bwd:
        _assert_identical(_everything(impl, fwd, dict(bwd, **{name: relayout(bwd[name])})), want)
    # all at once
    _assert_identical(
        _everything(impl, {k: relayout(v) for k, v in fwd.items()}, {k: relayout(v) for k, v in bwd.items()}), want
    )
    # the ids path and the steps
    rng = np.random.default_rng(4)
    ids = rng.integers(0, V, (B, T))
    wv = _weights(dtype, inputs=V)
    want_ids = _everything(impl, dict(ids=ids, **wv), bwd, ids=True)
    odd_w = {k: relayout(v) for k, v in wv.items()}
    _assert_identical(_everything(impl, dict(ids=relayout(ids), **odd_w), bwd, ids=True), want_ids)
    x_t, h, c = fwd["x"][:, 1], fwd["h0"], fwd["c0"]
    w = _weights(dtype)
    want_step = impl.lstm_step(x_t.copy(), **w, h=h, c=c)
    got_step = impl.lstm_step(x_t, **{k: relayout(v) for k, v in w.items()}, h=relayout(h), c=relayout(c))
    for a, b in zip(got_step, want_step):
        np.testing.assert_array_equal(a, b)
    want_step = impl.lstm_step_ids(ids[:, 0].copy(), **wv, h=h, c=c)
    got_step = impl.lstm_step_ids(ids[:, 0], **odd_w, h=relayout(h), c=relayout(c))  # ids[:, 0] is strided
    for a, b in zip(got_step, want_step):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ids_dtype", [np.int8, np.uint8, np.int32, np.uint32, np.int64, np.uint64])
def test_any_integer_ids_dtype(impl, ids_dtype):
    ids = np.random.default_rng(5).integers(0, V, (B, T))
    wv = _weights(inputs=V)
    want = impl.lstm_forward_ids(ids, **wv, need_cache=False)
    got = impl.lstm_forward_ids(ids.astype(ids_dtype), **wv, need_cache=False)
    for a, b in zip(got[:3], want[:3]):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- #
# values
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("bad", [-1, V, 10**6], ids=["negative", "V", "huge"])
def test_ids_out_of_range_is_a_value_error(impl, bad):
    ids = np.zeros((B, T), np.int64)
    ids[1, 2] = bad
    wv = _weights(inputs=V)
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_forward_ids(ids, **wv)
    _assert_names(excinfo, "ids")
    with pytest.raises(ValueError) as excinfo:
        impl.lstm_step_ids(ids[:, 2], **wv, h=None, c=None)
    _assert_names(excinfo, "ids_t")


@pytest.mark.parametrize("dtype", [np.float64, np.bool_, np.complex128])
def test_non_integer_ids_are_a_type_error(impl, dtype):
    ids = np.zeros((B, T), dtype)
    with pytest.raises(TypeError) as excinfo:
        impl.lstm_forward_ids(ids, **_weights(inputs=V))
    _assert_names(excinfo, "ids")


def test_nan_in_x_propagates(impl):
    args = _args()
    args["x"][0, 1, 2] = np.nan
    y, h_T, c_T, cache = impl.lstm_forward(**args)
    assert np.isfinite(y[0, 0]).all() and np.isnan(y[0, 1:]).all()
    assert np.isfinite(y[1]).all() and np.isfinite(h_T[1]).all() and np.isnan(c_T[0]).all()
    g = impl.lstm_backward(cache, **_grads_in())
    assert np.isnan(g.dW_ih).any() and np.isnan(g.dx[0]).any()
    assert np.isfinite(g.dh0[1]).all() and np.isfinite(g.dx[1]).all()


@pytest.mark.parametrize(
    "clip, error", [(0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), ("1", TypeError)]
)
def test_bad_clip(impl, clip, error):
    cache = impl.lstm_forward(**_args())[3]
    with pytest.raises(error) as excinfo:
        impl.lstm_backward(cache, **_grads_in(), clip=clip)
    _assert_names(excinfo, "clip")


# --------------------------------------------------------------------------- #
# caches
# --------------------------------------------------------------------------- #


def test_need_cache_false_gives_no_cache_and_backward_refuses_it(impl):
    y, h_T, c_T, cache = impl.lstm_forward(**_args(), need_cache=False)
    assert cache is None
    assert y.flags.writeable
    with pytest.raises(TypeError) as excinfo:
        impl.lstm_backward(cache, **_grads_in())
    _assert_names(excinfo, "cache")


@pytest.mark.parametrize("foreign", [{}, {"y": 1}, object(), "cache", (1, 2, 3), 42], ids=lambda f: type(f).__name__)
def test_foreign_cache_is_a_type_error(impl, foreign):
    with pytest.raises(TypeError):
        impl.lstm_backward(foreign, **_grads_in())


def test_caches_do_not_cross_implementations():
    args, bwd = _args(), _grads_in()
    with pytest.raises(TypeError):
        kernels.lstm_backward(ref.lstm_forward(**args)[3], **bwd)
    with pytest.raises(TypeError):
        ref.lstm_backward(kernels.lstm_forward(**args)[3], **bwd)


def test_y_is_read_only_when_cached(impl):
    y, h_T, c_T, cache = impl.lstm_forward(**_args())
    assert not y.flags.writeable
    with pytest.raises(ValueError):
        y[0, 0, 0] = 0.0
    h_T[...] = 0.0  # the final state is the caller's own
    c_T[...] = 0.0


def test_backward_returns_fresh_arrays_and_a_second_call_is_safe(impl):
    # The contract does not say whether a cache serves more than one backward pass (the kernel's
    # serves one: it reuses its gate buffer); either way a second call must never give garbage.
    cache = impl.lstm_forward(**_args())[3]
    a = impl.lstm_backward(cache, **_grads_in())
    for name in a._fields:
        assert getattr(a, name).flags.writeable, name
        for other in a._fields:
            if other != name:
                assert not np.shares_memory(getattr(a, name), getattr(a, other)), (name, other)
    try:
        b = impl.lstm_backward(cache, **_grads_in())
    except RuntimeError as e:
        assert "lstm_forward" in str(e)  # tells the user what to do
        return
    for name in a._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert not np.shares_memory(getattr(a, name), getattr(b, name)), name


# --------------------------------------------------------------------------- #
# threads and keywords
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "bad, error",
    [(0, ValueError), (-1, ValueError), (2**16 + 1, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)],
)
def test_bad_num_threads(impl, bad, error):
    args = _args()
    with pytest.raises(error):
        impl.lstm_forward(**args, num_threads=bad)
    cache = impl.lstm_forward(**args)[3]
    with pytest.raises(error):
        impl.lstm_backward(cache, **_grads_in(), num_threads=bad)
    with pytest.raises(error):
        impl.lstm_step(args["x"][:, 0], **_weights(), h=None, c=None, num_threads=bad)


CONTRACT_SIGNATURES = {
    "lstm_forward": ["x", "W_ih", "W_hh", "b_ih", "b_hh", "h0", "c0", "need_cache", "num_threads"],
    "lstm_forward_ids": ["ids", "W_ih", "W_hh", "b_ih", "b_hh", "h0", "c0", "need_cache", "num_threads"],
    "lstm_backward": ["cache", "dy", "dh_T", "dc_T", "clip", "num_threads"],
    "lstm_step": ["x_t", "W_ih", "W_hh", "b_ih", "b_hh", "h", "c", "num_threads"],
    "lstm_step_ids": ["ids_t", "W_ih", "W_hh", "b_ih", "b_hh", "h", "c", "num_threads"],
}


@pytest.mark.parametrize("fn", list(CONTRACT_SIGNATURES))
def test_parameter_names_follow_the_contract(impl, fn):
    params = inspect.signature(getattr(impl, fn)).parameters
    assert list(params) == CONTRACT_SIGNATURES[fn]


def test_every_argument_by_keyword(impl):
    a, g = _args(), _grads_in()
    y, h_T, c_T, cache = impl.lstm_forward(
        x=a["x"], W_ih=a["W_ih"], W_hh=a["W_hh"], b_ih=a["b_ih"], b_hh=a["b_hh"],
        h0=a["h0"], c0=a["c0"], need_cache=True, num_threads=1,
    )
    impl.lstm_backward(cache=cache, dy=g["dy"], dh_T=g["dh_T"], dc_T=g["dc_T"], clip=1.0, num_threads=1)
    w = _weights(inputs=V)
    ids = np.zeros((B, T), np.int64)
    impl.lstm_forward_ids(
        ids=ids, W_ih=w["W_ih"], W_hh=w["W_hh"], b_ih=w["b_ih"], b_hh=w["b_hh"],
        h0=None, c0=None, need_cache=False, num_threads=1,
    )
    h, c = impl.lstm_step(
        x_t=a["x"][:, 0], W_ih=a["W_ih"], W_hh=a["W_hh"], b_ih=a["b_ih"], b_hh=a["b_hh"],
        h=a["h0"], c=a["c0"], num_threads=1,
    )
    np.testing.assert_allclose(h, y[:, 0], rtol=1e-12, atol=1e-14)
    impl.lstm_step_ids(
        ids_t=ids[:, 0], W_ih=w["W_ih"], W_hh=w["W_hh"], b_ih=w["b_ih"], b_hh=w["b_hh"], h=None, c=None, num_threads=1
    )


def test_missing_state_means_zeros(impl):
    a = _args()
    zeros = np.zeros((B, H))
    w = {k: a[k] for k in ("W_ih", "W_hh", "b_ih", "b_hh")}
    for h0, c0 in [(None, a["c0"]), (a["h0"], None), (None, None)]:
        got = impl.lstm_forward(a["x"], **w, h0=h0, c0=c0, need_cache=False)
        want = impl.lstm_forward(
            a["x"], **w, h0=zeros if h0 is None else h0, c0=zeros if c0 is None else c0, need_cache=False
        )
        for u, v in zip(got[:3], want[:3]):
            np.testing.assert_array_equal(u, v)
        got = impl.lstm_step(a["x"][:, 0], **w, h=h0, c=c0)
        want = impl.lstm_step(a["x"][:, 0], **w, h=zeros if h0 is None else h0, c=zeros if c0 is None else c0)
        for u, v in zip(got, want):
            np.testing.assert_array_equal(u, v)
