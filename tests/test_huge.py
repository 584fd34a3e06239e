"""Impossible sizes are refused up front: MemoryError or ValueError, never a crash or the OOM killer.

A broadcast view costs nothing to make, whatever its shape, so a caller can hand the kernel a request
for terabytes (or for more elements than int64 counts) with a few bytes of real data.  The kernel
must see that from the shapes alone, before it allocates or copies anything: buffers above physical
memory are a MemoryError, index products that overflow int64 a ValueError, each naming the sizes.
Each case is checked for time (no walk over the view's elements) and for resident memory (nothing
large allocated) as well as for the exception.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

import pylstm as pl
from pylstm import layers

F32 = np.float32
RSS_SLACK = 64 * 2**20  # bytes: what a refused call may leave resident (nothing large)
FAST_S = 0.5  # a refusal reads shapes only (~1 ms); walking a 1e9-element view takes seconds


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _weights(I: int, H: int, dtype=F32) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.uniform(-0.1, 0.1, s).astype(dtype) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]


def _huge(shape: tuple[int, ...], dtype=F32) -> np.ndarray:
    """A read-only view of ``shape`` over one element (every stride zero)."""
    return np.broadcast_to(np.zeros((1,) * len(shape), dtype), shape)


def _refused(error: type, call, *, match: str) -> None:
    """``call()`` raises ``error`` quickly, without allocating anything large."""
    before = _rss()
    start = time.perf_counter()
    with pytest.raises(error, match=match):
        call()
    elapsed = time.perf_counter() - start
    assert _rss() - before < RSS_SLACK, f"resident memory grew by {(_rss() - before) / 2**20:.0f} MiB"
    assert elapsed < FAST_S, f"took {elapsed:.2f} s: the request was not refused from its shapes alone"


# --------------------------------------------------------------------------- beyond physical memory
# (10**6, 10**5) steps of H=16: y alone is 6 TB in float32.
BIG_B, BIG_T = 10**6, 10**5


@pytest.mark.parametrize("need_cache", [True, False])
def test_forward_beyond_memory_is_a_memory_error(need_cache):
    x = _huge((BIG_B, BIG_T, 3))
    _refused(MemoryError, lambda: pl.lstm_forward(x, *_weights(3, 16), need_cache=need_cache),
             match=r"GiB.*B=1000000, T=100000")


def test_forward_of_a_huge_float64_view_with_float32_weights_is_not_cast_first():
    # x must be refused before it is cast to the weights' dtype (the cast would copy 2.4 TB).
    x = _huge((BIG_B, BIG_T, 3), np.float64)
    _refused(MemoryError, lambda: pl.lstm_forward(x, *_weights(3, 16)), match="GiB")


def test_step_beyond_memory_is_a_memory_error():
    x_t = _huge((10**11, 3))
    _refused(MemoryError, lambda: pl.lstm_step(x_t, *_weights(3, 16)), match="GiB")
    h = _huge((10**11, 16))
    _refused(MemoryError, lambda: pl.lstm_step(x_t, *_weights(3, 16), h=h, c=h), match="GiB")


def test_forward_ids_beyond_memory_is_a_memory_error():
    # 1e9 steps (64 GB of float32 gates for H=16): refused from the shapes, before the [0, V) range check
    # reads every id (a scan that would take weeks for a (2**26, 2**25) view).
    ids = _huge((10**5, 10**4), np.int64)
    _refused(MemoryError, lambda: pl.lstm_forward_ids(ids, *_weights(5, 16)), match="GiB")


def test_step_ids_beyond_memory_is_a_memory_error():
    ids_t = _huge((10**9,), np.int64)
    _refused(MemoryError, lambda: pl.lstm_step_ids(ids_t, *_weights(5, 16)), match="GiB")


# --------------------------------------------------------------------------- int64 overflow
def test_index_products_beyond_int64_are_a_value_error():
    # B*T = 2**51 steps (a legal view: 2**51 elements), 4H = 4000 gates each: 9e18 > 2**62.
    x, w = _huge((2**26, 2**25, 1)), _weights(1, 1000)
    _refused(ValueError, lambda: pl.lstm_forward(x, *w), match="overflow int64")
    _refused(ValueError, lambda: pl.lstm_forward(x, *w, need_cache=False), match="overflow int64")


def test_step_products_beyond_int64_are_a_value_error():
    x_t, w = _huge((2**52, 1)), _weights(1, 1000)  # B * 4H = 2**52 * 4000
    _refused(ValueError, lambda: pl.lstm_step(x_t, *w), match="overflow int64")


def test_a_huge_state_with_a_small_input_is_a_shape_error_not_an_allocation():
    h = _huge((10**11, 16))
    _refused(ValueError, lambda: pl.lstm_forward(np.zeros((2, 3, 3), F32), *_weights(3, 16), h0=h), match="h0")


def test_huge_weights_are_refused_before_the_contiguous_copy():
    # W_hh (4H, H) with H = 2**20 as a broadcast view: the forward would need 16 TB of packed weights.
    H = 2**20
    w = [_huge((4 * H, 1)), _huge((4 * H, H)), _huge((4 * H,)), _huge((4 * H,))]
    before = _rss()
    with pytest.raises(MemoryError):
        pl.lstm_forward(np.zeros((1, 1, 1), F32), *w)
    assert _rss() - before < RSS_SLACK


# --------------------------------------------------------------------------- through the model
def _model(ids: bool = False) -> pl.Sequential:
    first = [layers.Embedding(7, 4)] if ids else []
    model = pl.Sequential([*first, layers.LSTM(16, return_sequences=True), layers.LSTM(8), layers.Dense(2)],
                          input_shape=(None,) if ids else (None, 3), seed=0)
    model.compile(loss="mse", optimizer="sgd")
    return model


def test_model_call_on_a_huge_batch_is_a_memory_error():
    # One forward of the whole batch (no chunking): the first LSTM must refuse it.
    model = _model()
    x = _huge((BIG_B, BIG_T, 3))
    before = _rss()
    with pytest.raises(MemoryError):
        model(x)
    assert _rss() - before < RSS_SLACK


def test_train_on_batch_with_a_huge_batch_is_a_memory_error_and_changes_nothing():
    model = _model()
    weights = model.get_weights()
    x = _huge((BIG_B, BIG_T, 3))
    y = _huge((BIG_B, 2))
    before = _rss()
    with pytest.raises(MemoryError):
        model.train_on_batch(x, y)
    assert _rss() - before < RSS_SLACK
    assert model.step == 0
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_predict_with_one_huge_sequence_is_a_memory_error():
    # predict chunks the rows, not the time axis: one row of 10**10 steps must be refused, not run.
    model = _model()
    x = _huge((1, 10**10, 3))
    before = _rss()
    with pytest.raises(MemoryError):
        model.predict(x)
    assert _rss() - before < RSS_SLACK
