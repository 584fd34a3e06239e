"""Stateful training on a stream: chunks with the state carried equal the whole sequence;
the batch size is fixed; evaluate/predict use a fresh state and leave the carried one alone."""
from __future__ import annotations

import numpy as np
import pytest

import pylstm as pl
from pylstm import layers, optim
from tolerances import rel_err, tol

F32 = np.float32


def _pair(T=None, H=5, C=4, dtype="float32"):
    """A stateful model and a plain one with the same weights."""
    def make(stateful):
        model = pl.Sequential([layers.LSTM(H, return_sequences=True, stateful=stateful),
                               layers.LSTM(H, return_sequences=True, stateful=stateful),
                               layers.Dense(C, activation="softmax")], input_shape=(T, 3), seed=0, dtype=dtype)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=optim.SGD(lr=lambda step: 0.0),
                      metrics=["accuracy"])
        return model
    return make(True), make(False)


def _stream(N=4, T=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T, 3)).astype(F32), rng.integers(0, 4, (N, T))


def test_chunks_with_carried_state_equal_the_whole_sequence():
    x, _ = _stream()
    stateful, plain = _pair()
    whole = plain.predict(x)
    chunks = [stateful(x[:, k:k + 4]) for k in range(0, 12, 4)]
    assert rel_err(np.concatenate(chunks, axis=1), whole) < tol(F32)
    stateful.reset_states()
    again = stateful(x[:, :4])
    np.testing.assert_array_equal(again, chunks[0])


def test_fit_on_chunks_sees_the_whole_sequence_forward():
    x, y = _stream()
    stateful, plain = _pair()
    p = plain.predict(x)
    expected = [-np.mean(np.log(np.take_along_axis(p[:, k:k + 4], y[:, k:k + 4, None], -1))) for k in (0, 4, 8)]
    batches = [(x[:, k:k + 4], y[:, k:k + 4]) for k in (0, 4, 8)]
    stateful.fit(batches, epochs=2, verbose=0)  # lr = 0: the weights stay; each epoch restarts the stream
    assert rel_err(np.array(stateful.history.steps["loss"]), np.array(expected * 2)) < tol(F32)


def test_stateful_arrays_keep_row_order_and_batch_size():
    # arrays: batch k+1's rows continue batch k's rows, so no shuffling even with shuffle=True
    x, y = _stream(N=6, T=4)
    stateful, plain = _pair()
    stateful.fit(x, y, batch_size=2, epochs=1, shuffle=True, verbose=0)
    p = [plain.predict(x[i:i + 2]) for i in (0, 2, 4)]
    # the carried state links rows 0-1 -> 2-3 -> 4-5 as one stream each (truncated BPTT)
    xs = np.concatenate([x[0:2], x[2:4], x[4:6]], axis=1)
    ys = np.concatenate([y[0:2], y[2:4], y[4:6]], axis=1)
    pw = plain.predict(xs)
    expected = [-np.mean(np.log(np.take_along_axis(pw[:, k:k + 4], ys[:, k:k + 4, None], -1))) for k in (0, 4, 8)]
    assert rel_err(np.array(stateful.history.steps["loss"]), np.array(expected)) < tol(F32)
    fresh = -np.mean(np.log(np.take_along_axis(p[1], y[2:4, :, None], -1)))  # batch 2 without the carried state
    assert rel_err(stateful.history.steps["loss"][1], fresh) > 3 * tol(F32)
    with pytest.raises(ValueError, match="batch_size=4 does not divide 6"):
        stateful.fit(x, y, batch_size=4, verbose=0)


def test_batch_size_fixed_by_first_batch():
    x, y = _stream(N=4, T=6)
    stateful, _ = _pair()
    stateful.train_on_batch(x, y)
    with pytest.raises(ValueError, match="fixed at 4 by the first batch, got a batch of 2"):
        stateful.train_on_batch(x[:2], y[:2])
    with pytest.raises(ValueError, match="fixed at 4 by the first batch, got a batch of 3 at epoch 1/1, batch 1"):
        stateful.fit([(x[:3], y[:3])], verbose=0)
    stateful.reset_states()
    with pytest.raises(ValueError, match="fixed at 4"):
        stateful.train_on_batch(x[:2], y[:2])


def test_evaluate_predict_use_a_fresh_state_and_leave_the_carried_one():
    x, y = _stream(N=4, T=6)
    stateful, plain = _pair()
    stateful(x)  # carry some state
    carried = stateful.get_states()
    assert all(s is not None for s in carried)
    np.testing.assert_array_equal(stateful.predict(x[:3]), plain.predict(x[:3]))  # any batch size, fresh state
    res, ref = stateful.evaluate(x, y), plain.evaluate(x, y)
    assert rel_err(res["loss"], ref["loss"]) < tol(F32) and res["accuracy"] == ref["accuracy"]
    for (h, c), (h2, c2) in zip(carried, stateful.get_states()):
        np.testing.assert_array_equal(h, h2)
        np.testing.assert_array_equal(c, c2)


def test_get_set_states_round_trip():
    x, _ = _stream(N=2, T=5)
    a, _ = _pair()
    b, _ = _pair()
    a(x)
    b.set_states(a.get_states())
    np.testing.assert_array_equal(a(x), b(x))
    with pytest.raises(ValueError, match="2 stateful LSTM layers, got 1"):
        b.set_states(a.get_states()[:1])


def test_text_corpus_stream_training():
    corpus = pl.data.TextCorpus("the quick brown fox jumps over the lazy dog. " * 8)
    V = corpus.vocab_size
    model = pl.Sequential([layers.LSTM(16, vocab_size=V, return_sequences=True, stateful=True),
                           layers.Dense(V, activation="softmax")], seed=0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optim.Adam(lr=0.02), metrics=["accuracy"])
    model.vocab = corpus
    batches = corpus.batches(batch_size=4, seq_len=10)
    h = model.fit(batches, epochs=8, verbose=0, validation_data=batches)
    assert h.history["loss"][-1] < 0.7 * h.history["loss"][0]
    assert model.vocab == corpus.vocab and model.get_config()["stateful_batch_size"] == 4
