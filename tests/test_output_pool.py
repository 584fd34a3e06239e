"""The pool that recycles the memory of large output arrays (csrc/large_blocks.h).

Outputs of 1 MiB and more (y, the cache's buffers, dx, weight gradients)
take their memory from a pool and give it back when the array and every view
of it are gone. What must hold: a recycled block never shows through (every
element of a result is written by the call, whatever the block held), a view
keeps its block out of the pool, the pool stays bounded, and
``pylstm.release_memory`` empties it.
"""
from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

import pylstm
from pylstm import _core

# y, cs: 64·40·128·4 = 1.25 MiB; gates 5 MiB; dx 64·40·96·4 = 0.94 MiB (below the pool's 1 MiB: NumPy's).
T, B, I, H = 40, 64, 96, 128


def _problem(seed: int, dtype=np.float32):
    rng = np.random.default_rng(seed)
    w = [rng.uniform(-0.3, 0.3, s).astype(dtype) for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    x = rng.standard_normal((B, T, I)).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    return x, w, dy


def _step(x, w, dy, threads=1):
    y, h_T, c_T, cache = pylstm.lstm_forward(x, *w, num_threads=threads)
    g = pylstm.lstm_backward(cache, dy, num_threads=threads)
    return [a.copy() for a in (y, h_T, c_T, *g)]


@pytest.fixture(autouse=True)
def empty_pool():
    gc.collect()
    pylstm.release_memory()
    yield
    gc.collect()
    pylstm.release_memory()


def test_large_outputs_come_from_the_pool_and_go_back():
    x, w, dy = _problem(0)
    y, _, _, cache = pylstm.lstm_forward(x, *w, num_threads=1)
    assert _core.pooled_bytes() == 0
    assert not y.flags.owndata and type(y.base).__name__ == "PyCapsule"
    assert y.flags.c_contiguous and y.flags.aligned
    expected = y.nbytes + cache.nbytes  # y, gates and cell states: all pooled at this size
    del y, cache
    gc.collect()
    held = _core.pooled_bytes()
    assert held >= expected
    y, _, _, cache = pylstm.lstm_forward(x, *w, num_threads=1)  # the same sizes: served from the pool
    assert _core.pooled_bytes() < held
    del y, cache
    gc.collect()
    assert pylstm.release_memory() >= expected
    assert _core.pooled_bytes() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_recycled_block_never_shows_through(dtype, threads):
    # The same call on fresh blocks and on blocks that held another problem's
    # results (and NaN): bit-identical results.
    x, w, dy = _problem(1, dtype)
    fresh = _step(x, w, dy, threads)
    other = _problem(2, dtype)
    for _ in range(3):  # fill the pool with blocks that held other values
        y, _, _, cache = pylstm.lstm_forward(other[0], *other[1], num_threads=threads)
        cache.gates[:] = np.nan
        cache.cs[:] = np.nan
        del y, cache
    gc.collect()
    assert _core.pooled_bytes() > 0
    recycled = _step(x, w, dy, threads)
    for a, b in zip(fresh, recycled):
        np.testing.assert_array_equal(a, b)


def test_a_view_keeps_its_block():
    x, w, dy = _problem(3)
    y, _, _, cache = pylstm.lstm_forward(x, *w, num_threads=1)
    view = y[1:, 5:]
    kept = view.copy()
    del y, cache
    gc.collect()
    for seed in (4, 5, 6):  # calls that would reuse y's block if the view had let it go
        xo, wo, _ = _problem(seed)
        pylstm.lstm_forward(xo, *wo, num_threads=1)
    np.testing.assert_array_equal(view, kept)


def test_the_pool_is_bounded():
    # 24 calls of different sizes, their outputs alive at once, then all dropped: at most 16 blocks are kept.
    rng = np.random.default_rng(7)
    arrays = []
    for k in range(24):
        Bk = 52 + k
        w = [rng.uniform(-0.3, 0.3, s).astype(np.float32) for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
        xk = rng.standard_normal((Bk, T, I)).astype(np.float32)
        arrays.append(pylstm.lstm_forward(xk, *w, need_cache=False, num_threads=1)[0])  # y: 1-1.5 MiB
    largest = max(a.shape[0] for a in arrays) * T * 4 * H * 4  # the biggest block: a call's scratch gate array
    del arrays
    gc.collect()
    # (each block has room for a stagger of up to 60 KiB beyond its array)
    assert 0 < _core.pooled_bytes() <= 16 * (largest + (1 << 17))


def test_tracemalloc_sees_pooled_arrays():
    x, w, dy = _problem(8)
    tracemalloc.start()
    try:
        y, _, _, cache = pylstm.lstm_forward(x, *w, num_threads=1)
        traced, _ = tracemalloc.get_traced_memory()
        assert traced >= y.nbytes + cache.nbytes
        del y, cache
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
        assert after < traced / 10
    finally:
        tracemalloc.stop()


def test_release_memory_is_safe_while_arrays_live():
    x, w, dy = _problem(9)
    y, _, _, cache = pylstm.lstm_forward(x, *w, num_threads=1)
    kept = y.copy()
    pylstm.release_memory()  # frees only blocks no array uses
    g = pylstm.lstm_backward(cache, dy, num_threads=1)
    np.testing.assert_array_equal(y, kept)
    assert np.isfinite(g.dW_hh).all()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
# Forking a process with threads (OpenMP's, OpenBLAS's) is what this test is about; Python 3.12+ warns of it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_forked_child_can_use_the_pool():
    import os

    x, w, dy = _problem(10)
    want = _step(x, w, dy)  # the pool now holds blocks; the child inherits them
    pid = os.fork()
    if pid == 0:  # child: the same step, then report by exit status only
        try:
            got = _step(x, w, dy)
            same = all(np.array_equal(a, b) for a, b in zip(got, want))
            os._exit(0 if same and pylstm.release_memory() > 0 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def test_threads_sharing_the_pool_get_their_own_blocks():
    # Python threads calling at once take and give back blocks concurrently: each call's results must be
    # those of the same call alone.
    import threading

    problems = [_problem(20 + k) for k in range(4)]
    want = [_step(*p) for p in problems]
    errors = []

    def work(k):
        try:
            for _ in range(5):
                got = _step(*problems[k])
                for a, b in zip(got, want[k]):
                    np.testing.assert_array_equal(a, b)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_pooled_arrays_pickle_and_copy_like_any_array():
    import copy
    import pickle

    x, w, dy = _problem(11)
    y = pylstm.lstm_forward(x, *w, need_cache=False, num_threads=1)[0]
    assert y.nbytes >= 1 << 20 and not y.flags.owndata  # a pooled one
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(y)), y)
    for other in (copy.deepcopy(y), y.copy()):  # copies own their memory: NumPy's, not the pool's
        np.testing.assert_array_equal(other, y)
        assert other.flags.owndata
