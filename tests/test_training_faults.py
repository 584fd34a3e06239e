"""A real Ctrl-C (SIGINT) during fit: the batch in flight finishes, then KeyboardInterrupt, model consistent.

tests/test_model.py covers a KeyboardInterrupt raised by a callback and a non-finite loss. This file
covers the signal itself: ``fit`` defers SIGINT to the end of the batch (weights never half-updated),
a second SIGINT stops at once, and the previous handler is back afterwards.  The signal is sent from
a callback, i.e. from inside the batch loop, to this very process.
"""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import pylstm as pl
from pylstm import callbacks, layers, optim

BATCH = 8


def _model() -> pl.Sequential:
    model = pl.Sequential([layers.LSTM(6), layers.Dense(1)], input_shape=(None, 2), seed=0)
    model.compile(loss="mse", optimizer=optim.Adam(lr=1e-2))
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((64, 5, 2)), rng.standard_normal((64, 1))


class _CtrlC(callbacks.Callback):
    """Send SIGINT to this process ``times`` times at the start of batch ``at`` of the first epoch."""

    def __init__(self, at: int, times: int = 1):
        super().__init__()
        self.at, self.times = at, times

    def on_batch_begin(self, batch, logs=None):
        if batch == self.at and logs["step"] == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture
def restores_sigint():
    # Python's own Ctrl-C handler for the test (a shell starts background jobs with SIGINT ignored).
    outside = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "fit did not put the SIGINT handler back"
    signal.signal(signal.SIGINT, outside)


def test_ctrl_c_finishes_the_batch_then_raises(restores_sigint):
    x, y = _data()
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[_CtrlC(at=3)])
    # Batches 0-3 ran to the end (3 was in flight when the signal came), nothing after.
    assert model.step == 4 and model.history.num_steps == 4 and len(model.history) == 0
    alone = _model()
    alone.fit(x[: 4 * BATCH], y[: 4 * BATCH], batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), alone.get_weights()):
        np.testing.assert_array_equal(a, b)
    # and the model trains on from there
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert model.step == 4 + len(x) // BATCH


def test_a_second_ctrl_c_stops_at_once(restores_sigint):
    x, y = _data()
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[_CtrlC(at=2, times=2)])
    # The second signal raised inside the callback, before batch 2 started: two whole steps.
    assert model.step == 2 and model.history.num_steps == 2
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_after_fit_ctrl_c_is_an_ordinary_keyboard_interrupt(restores_sigint):
    x, y = _data()
    _model().fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the handler runs at the next bytecode; the sleep is interrupted
