"""Threads: the kernels run concurrently (the GIL is released) with the serial results, bit for bit;
separate models train side by side; one model or one cache shared by two threads is refused clearly.

What is shared decides the outcome:

- different weights, caches and models in each thread: safe, and identical to running one after
  the other (tested here with 4 threads on the kernels, 2 on ``fit``);
- one LSTMCache given to ``lstm_backward`` from two threads: exactly one may run (the backward
  reuses the cache's buffers), the other must get the RuntimeError a second call gets;
- one model used by two threads at once (``fit`` and ``fit``, or ``fit`` and ``predict``): the layers
  keep the forward's cache for the backward, so this cannot work; it must be refused with a clear
  RuntimeError, not fail later with an unrelated message or, worse, mix the two threads' batches.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import numpy as np
import pytest

import pylstm as pl
from pylstm import layers, optim

N_THREADS = 4


def _problem(seed: int, dtype, B=8, T=40, I=16, H=64, V=20) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    return {
        "w": [rng.uniform(-k, k, s).astype(dtype) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]],
        "wv": [rng.uniform(-k, k, s).astype(dtype) for s in [(4 * H, V), (4 * H, H), (4 * H,), (4 * H,)]],
        "x": rng.standard_normal((B, T, I)).astype(dtype),
        "ids": rng.integers(0, V, (B, T)),
        "h0": rng.standard_normal((B, H)).astype(dtype),
        "dy": rng.standard_normal((B, T, H)).astype(dtype),
    }


def _all_outputs(p: dict[str, Any], num_threads: int) -> list[np.ndarray]:
    """Every kernel entry point on problem ``p``: forward, backward, ids, step."""
    y, h, c, cache = pl.lstm_forward(p["x"], *p["w"], h0=p["h0"], c0=p["h0"], num_threads=num_threads)
    g = pl.lstm_backward(cache, p["dy"], dh_T=p["h0"], clip=0.5, num_threads=num_threads)
    yv, _, _, cache_v = pl.lstm_forward_ids(p["ids"], *p["wv"], num_threads=num_threads)
    gv = pl.lstm_backward(cache_v, p["dy"], num_threads=num_threads)
    hs, cs = pl.lstm_step(p["x"][:, 0], *p["w"], p["h0"], p["h0"], num_threads=num_threads)
    return [y, h, c, *(a for a in g if a is not None), yv, *(a for a in gv if a is not None), hs, cs]


def _in_threads(targets: list[Callable[[], Any]]) -> list[Any]:
    """Run the targets in threads started together; their results, or re-raise the first error."""
    start = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = targets[i]()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a thread hung"
    return results


@pytest.mark.parametrize("num_threads", [1, 2], ids=["omp=1", "omp=2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_kernels_in_4_threads_equal_serial_bit_for_bit(dtype, num_threads):
    problems = [_problem(seed, dtype) for seed in range(N_THREADS)]
    serial = [_all_outputs(p, num_threads) for p in problems]
    repeats = 10

    def worker(i: int) -> Callable[[], list]:
        return lambda: [_all_outputs(problems[i], num_threads) for _ in range(repeats)]

    results = _in_threads([worker(i) for i in range(N_THREADS)])
    for i, runs in enumerate(results):
        if isinstance(runs, BaseException):
            raise runs
        for r, outputs in enumerate(runs):
            for k, (a, b) in enumerate(zip(outputs, serial[i])):
                assert np.array_equal(a, b), f"thread {i}, repeat {r}, output {k} differs from the serial run"


def test_the_gil_is_released_during_a_kernel_call():
    # While one thread is inside a long kernel call, another runs Python: its loop iterations land
    # inside the call's time window. (Holding the GIL would leave none there.)
    p = _problem(0, np.float64, B=32, T=400, I=64, H=128)
    window: dict[str, float] = {}

    def long_call() -> None:
        window["start"] = time.perf_counter()
        pl.lstm_forward(p["x"], *p["w"], need_cache=False, num_threads=1)
        window["end"] = time.perf_counter()

    ticks = []
    t = threading.Thread(target=long_call)
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0)
    t.join()
    start, end = window["start"], window["end"]
    margin = 0.2 * (end - start)
    inside = sum(start + margin < s < end - margin for s in ticks)
    assert end - start > 0.02, "the call is too short to tell"
    assert inside > 0, f"the main thread did not run once during a {end - start:.3f} s kernel call"


def _fit_model(seed: int) -> pl.Sequential:
    model = pl.Sequential([layers.LSTM(16, return_sequences=True), layers.LSTM(16),
                           layers.Dense(2, activation="softmax")], input_shape=(None, 3), seed=seed)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optim.Adam(lr=1e-2))
    return model


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((96, 10, 3)).astype(np.float32)
    return x, (x[..., 0].sum(1) > 0).astype(np.int64)


def test_separate_models_train_in_2_threads_as_they_do_alone():
    x, y = _data()
    alone = []
    for seed in (0, 1):
        m = _fit_model(seed)
        m.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=seed)
        alone.append(m.get_weights())
    models = [_fit_model(0), _fit_model(1)]
    results = _in_threads([lambda m=m, s=s: m.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=s)
                           for s, m in enumerate(models)])
    for r in results:
        if isinstance(r, BaseException):
            raise r
    for m, want in zip(models, alone):
        for a, b in zip(m.get_weights(), want):
            np.testing.assert_array_equal(a, b)


def test_one_cache_in_two_threads_gives_one_backward_and_one_refusal():
    p = _problem(0, np.float64, T=30)
    want = pl.lstm_backward(pl.lstm_forward(p["x"], *p["w"])[3], p["dy"])
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within a few trials
    try:
        for trial in range(100):
            cache = pl.lstm_forward(p["x"], *p["w"])[3]
            results = _in_threads([lambda: pl.lstm_backward(cache, p["dy"], num_threads=1)] * 2)
            done = [r for r in results if not isinstance(r, BaseException)]
            refused = [r for r in results if isinstance(r, RuntimeError)]
            assert len(done) == 1 and len(refused) == 1, f"trial {trial}: {len(done)} backward passes ran on one cache"
            np.testing.assert_array_equal(done[0].dW_hh, want.dW_hh)
    finally:
        sys.setswitchinterval(interval)



def _meanwhile(model: pl.Sequential, action: Callable[[], Any]) -> dict[str, Any]:
    """Make ``action`` run in another thread in the middle of the model's first training step.

    The loss is computed between the layers' forward and their backward, the very moment when a
    second user of the model does harm; it waits there until the other thread is done. Deterministic,
    unlike two threads left to race. Returns {"result": ...} or {"error": ...} of ``action``.
    """
    outcome: dict[str, Any] = {}
    compute = model.loss._compute
    started = threading.Event()

    def run() -> None:
        try:
            outcome["result"] = action()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome["error"] = e

    def compute_and_meanwhile(*args: Any, **kwargs: Any) -> Any:
        if not started.is_set():  # once, from the first thread to get here
            started.set()
            other = threading.Thread(target=run)
            other.start()
            other.join(timeout=120)
            assert not other.is_alive(), "the other thread hung (a lock waiting for this one?)"
        return compute(*args, **kwargs)

    model.loss._compute = compute_and_meanwhile
    return outcome


def _fit_alone_weights(x, y) -> list[np.ndarray]:
    alone = _fit_model(0)
    alone.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=0)
    return alone.get_weights()


def test_two_threads_training_one_model_is_refused_clearly():
    x, y = _data()
    model = _fit_model(0)
    other = _meanwhile(model, lambda: model.fit(x, y, batch_size=8, epochs=1, verbose=0, seed=1))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=0)
    assert isinstance(other.get("error"), RuntimeError) and "another thread" in str(other["error"]), other
    for a, b in zip(model.get_weights(), _fit_alone_weights(x, y)):  # the fit that ran was not disturbed
        np.testing.assert_array_equal(a, b)


def test_predict_while_another_thread_trains_the_model_is_refused_or_harmless():
    x, y = _data()
    model = _fit_model(0)
    other = _meanwhile(model, lambda: model.predict(x[:8]))
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, seed=0)  # must not fail because of the predict
    error = other.get("error")
    assert error is None or isinstance(error, RuntimeError) and "another thread" in str(error), repr(error)
    for a, b in zip(model.get_weights(), _fit_alone_weights(x, y)):
        np.testing.assert_array_equal(a, b)
