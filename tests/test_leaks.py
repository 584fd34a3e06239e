"""No leaks: memory stays flat over 20,000 kernel forward+backward calls and 2,000 fit steps.

Each loop runs a warm-up (allocator pools, NumPy's caches, lazily built tables), then measures
resident memory (``/proc/self/statm``) and, for the kernel loops, CPython's count of allocated
blocks (``sys.getallocatedblocks``) before and after the measured calls.  RSS catches C++ buffers
that are never freed; the block count catches Python objects the binding forgets to release (one
per call would be thousands), which a small RSS bound can miss.  The error paths of the binding
(a refused call after its arrays were taken) are looped too: that is where leaks hide.
"""
from __future__ import annotations

import gc
import os
import sys
from typing import Callable

import numpy as np
import pytest

import pylstm as pl
from pylstm import layers, optim

RSS_BOUND = 4 * 2**20  # bytes of resident growth allowed after warm-up (measured: well under 1 MiB)
# History keeps one record per optimizer step by design (~300 bytes), well inside RSS_BOUND for 2,000.
BLOCKS_BOUND = 500  # CPython blocks: a per-call leak of even one object over 18,000 calls is far above


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _growth(run: Callable[[int], None], calls: int, warmup: int) -> tuple[int, int]:
    """Resident bytes and CPython blocks gained by ``run(calls)`` after ``run(warmup)``."""
    run(warmup)
    gc.collect()
    rss, blocks = _rss(), sys.getallocatedblocks()
    run(calls)
    gc.collect()
    return _rss() - rss, sys.getallocatedblocks() - blocks


def _problem(dtype, B=4, T=5, I=3, H=8, V=None, seed=0):
    rng = np.random.default_rng(seed)
    w = [rng.uniform(-0.3, 0.3, s).astype(dtype) for s in [(4 * H, V or I), (4 * H, H), (4 * H,), (4 * H,)]]
    x = rng.integers(0, V, (B, T)) if V else rng.standard_normal((B, T, I)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    return x, w, h0, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_backward_20000_calls_keep_memory_flat(dtype):
    x, w, h0, dy = _problem(dtype)
    ids, wv, _, _ = _problem(dtype, V=11)
    dh = h0.copy()

    def run(n: int) -> None:
        # Every entry point and option in turn: x and ids, states or not, clip, 1 or 2 threads.
        for k in range(n // 4):
            threads = 1 + k % 2
            cache = pl.lstm_forward(x, *w, h0=h0, c0=h0, num_threads=threads)[3]
            pl.lstm_backward(cache, dy, dh_T=dh, dc_T=dh, clip=1.0 if k % 3 == 0 else None, num_threads=threads)
            cache = pl.lstm_forward_ids(ids, *wv)[3]
            pl.lstm_backward(cache, dy)
            pl.lstm_forward(x, *w, need_cache=False)
            pl.lstm_step(x[:, 0], *w, h0, h0)

    rss, blocks = _growth(run, 20_000, warmup=2_000)
    assert rss < RSS_BOUND, f"resident memory grew by {rss / 2**20:.1f} MiB over 20,000 calls"
    assert blocks < BLOCKS_BOUND, f"{blocks} more Python blocks allocated after 20,000 calls"


def test_refused_calls_release_what_they_took():
    # Errors raised inside the binding, after it has taken references to the arrays (a tampered
    # cache), and errors raised in Python before it: neither may keep anything.
    x, w, h0, dy = _problem(np.float64)

    def run(n: int) -> None:
        for k in range(n // 2):
            cache = pl.lstm_forward(x, *w)[3]
            cache.cs = cache.cs[::2]  # refused by the binding: not C-contiguous, wrong size
            with pytest.raises(ValueError):
                pl.lstm_backward(cache, dy)
            with pytest.raises(TypeError):
                pl.lstm_backward(pl.lstm_forward(x, *w)[3], dy.astype(np.float32))

    rss, blocks = _growth(run, 10_000, warmup=1_000)
    assert rss < RSS_BOUND, f"resident memory grew by {rss / 2**20:.1f} MiB over 10,000 refused calls"
    assert blocks < BLOCKS_BOUND, f"{blocks} more Python blocks allocated after 10,000 refused calls"


def test_2000_fit_steps_keep_memory_flat():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5, 3)).astype(np.float32)
    y = rng.integers(0, 2, 64)
    model = pl.Sequential([layers.LSTM(8, return_sequences=True), layers.LSTM(8), layers.Dense(2, activation="softmax")],
                          input_shape=(None, 3), seed=0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optim.Adam(lr=1e-3), metrics=["accuracy"])

    def run(steps: int) -> None:
        model.fit(x, y, batch_size=8, epochs=steps // 8, verbose=0)  # 8 steps per epoch

    rss, _ = _growth(run, 2_000, warmup=200)
    assert model.step == 2_200
    assert rss < RSS_BOUND, f"resident memory grew by {rss / 2**20:.1f} MiB over 2,000 fit steps"
