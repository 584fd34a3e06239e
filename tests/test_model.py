"""Sequential: model-level gradient check (float64), compile rules, fit/evaluate/predict, History,
callbacks, configs and weights, and the bad-input errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

import pylstm as pl
from pylstm import callbacks, layers, losses, optim
from pylstm._training import prepare_batch
from pylstm.gradcheck import _central_differences
from pylstm.model import NonFiniteLossError
from tolerances import FINITE_DIFF_EPS, FINITE_DIFF_TOL, rel_err, tol

F64 = np.float64


# --------------------------------------------------------------------------- model-level gradcheck
def _model_gradcheck(model, x, y, w=None, dropout_seed=None):
    """d(mean loss)/d(every weight) from fit's own forward/backward vs central differences."""
    xb, yb, wb = prepare_batch(model, x, y, w)

    def forward(training):
        if dropout_seed is not None:
            model._rng = np.random.default_rng(dropout_seed)  # the same dropout masks every time
        z = model._forward(xb, training=training, logits=model._fused, use_carried=True)
        return z[0] if isinstance(z, tuple) else z

    z = forward(True)
    total, wsum, dz, _ = model.loss._compute(yb, z, wb)
    model._backward(dz)
    analytic = model._flat_grad.copy()

    def loss():
        t, ws, _, _ = model.loss._compute(yb, forward(dropout_seed is not None), wb, grad=False)
        return t / ws

    fd = _central_differences(loss, {"w": model._flat}, FINITE_DIFF_EPS)["w"]
    assert rel_err(analytic, fd) < FINITE_DIFF_TOL
    # and per layer, so a small layer's error is not hidden by a big one's scale
    for (a, b), layer in zip(model._slices, model._param_layers):
        assert rel_err(analytic[a:b], fd[a:b]) < FINITE_DIFF_TOL, layer.name


def _m(layer_list, input_shape, loss, seed=0):
    model = pl.Sequential(layer_list, input_shape=input_shape, seed=seed, dtype="float64")
    model.compile(loss=loss, optimizer=optim.SGD(0.1))
    return model


@pytest.mark.parametrize("backend", ["kernels", "reference"])
def test_gradcheck_two_lstms_softmax_sparse(backend):
    rng = np.random.default_rng(0)
    with layers._use_backend(backend):
        model = _m([layers.LSTM(4, return_sequences=True), layers.LSTM(3), layers.Dense(3, activation="softmax")],
                   (5, 2), "sparse_categorical_crossentropy")
        _model_gradcheck(model, rng.standard_normal((6, 5, 2)), rng.integers(0, 3, 6))


def test_gradcheck_sequence_sigmoid_bce_with_mask_and_dropout():
    rng = np.random.default_rng(1)
    model = _m([layers.LSTM(4, return_sequences=True, dropout=0.3), layers.Dropout(0.2),
                layers.Dense(2, activation="sigmoid")], (4, 3), "binary_crossentropy")
    mask = (rng.random((5, 4)) > 0.3).astype(F64)
    _model_gradcheck(model, rng.standard_normal((5, 4, 3)), (rng.random((5, 4, 2)) > 0.5).astype(F64), mask,
                     dropout_seed=3)


def test_gradcheck_embedding_mse_and_ids_lstm_from_logits():
    rng = np.random.default_rng(2)
    model = _m([layers.Embedding(7, 3), layers.LSTM(4, return_sequences=True), layers.Dense(2, activation="tanh")],
               (5,), "mse")
    _model_gradcheck(model, rng.integers(0, 7, (4, 5)), rng.standard_normal((4, 5, 2)))
    model = _m([layers.LSTM(5, vocab_size=6, return_sequences=True), layers.LSTM(3), layers.Dense(4)],
               (5,), losses.CategoricalCrossentropy(from_logits=True))
    _model_gradcheck(model, rng.integers(0, 6, (4, 5)), np.eye(4)[rng.integers(0, 4, 4)], rng.random(4))


# --------------------------------------------------------------------------- compile rules
@pytest.mark.parametrize("act,loss,match", [
    ("softmax", "binary_crossentropy", "needs a final Dense\\(activation='sigmoid'\\)"),
    (None, "categorical_crossentropy", "activation=None"),
    ("relu", "sparse_categorical_crossentropy", "activation='relu'"),
    ("sigmoid", losses.BinaryCrossentropy(from_logits=True), "expects logits"),
])
def test_bad_activation_loss_pairs(act, loss, match):
    model = pl.Sequential([layers.LSTM(3), layers.Dense(2, activation=act)], input_shape=(4, 1))
    with pytest.raises(ValueError, match=match):
        model.compile(loss=loss)


def test_cross_entropy_needs_a_dense_head_and_unknown_names():
    model = pl.Sequential([layers.LSTM(3)], input_shape=(4, 1))
    with pytest.raises(ValueError, match="ends in LSTM"):
        model.compile(loss="binary_crossentropy")
    model.compile(loss="mse")
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'"):
        model.compile(loss="crossentropy")
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(loss="mse", optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown metric"):
        model.compile(loss="mse", metrics=["auc"])


# --------------------------------------------------------------------------- data for the fit tests
def _sign_task(N=240, T=5, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, 2)).astype(dtype)
    y = (x[..., 0].sum(axis=1) > 0).astype(np.int64)
    return x, y


def _classifier(seed=0, dtype="float32", dropout=0.0, **compile_kw):
    model = pl.Sequential([layers.LSTM(8, return_sequences=True, dropout=dropout), layers.LSTM(8),
                           layers.Dense(2, activation="softmax")], input_shape=(None, 2), seed=seed, dtype=dtype)
    compile_kw.setdefault("optimizer", optim.Adam(lr=0.02))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], **compile_kw)
    return model


def test_fit_learns_and_evaluate_predict():
    x, y = _sign_task(400)
    model = _classifier()
    hist = model.fit(x, y, batch_size=40, epochs=6, verbose=0, seed=0, validation_data=(x[:100], y[:100]))
    assert hist is model.history and len(hist.history["loss"]) == 6
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    res = model.evaluate(x, y)
    assert set(res) == {"loss", "accuracy"} and res["accuracy"] > 0.85
    p = model.predict(x[:7])
    assert p.shape == (7, 2) and p.dtype == np.float32
    assert rel_err(p.sum(1), np.ones(7)) < tol(np.float32)
    assert rel_err(res["loss"], losses.SparseCategoricalCrossentropy()(y, model.predict(x))) < tol(np.float32)


def test_history_logs_every_step():
    x, y = _sign_task(100)
    model = _classifier(optimizer=optim.SGD(lr=optim.StepDecay(0.1, step_size=2, gamma=0.5), clipnorm=0.5))
    h = model.fit(x, y, batch_size=30, epochs=2, verbose=0, seed=0)
    s = h.steps
    assert s["step"] == list(range(1, 9)) and s["epoch"] == [0] * 4 + [1] * 4
    assert s["lr"] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125]
    assert h.layer_names == ["lstm", "lstm_1", "dense"]
    for g, per_layer in zip(s["grad_norm"], s["layer_grad_norm"]):
        assert np.isclose(g, np.sqrt(np.sum(np.square(per_layer))))
    assert h.history["lr"] == [0.025, 0.00625]
    assert History_round_trip(h)


def History_round_trip(h):
    d = json.loads(json.dumps(h.to_dict()))
    return pl.History.from_dict(d) == h


def test_same_seeds_identical_history_at_any_thread_count():
    x, y = _sign_task(120)
    runs = []
    try:
        for fit_seed, threads in ((5, 1), (5, 2), (6, 1)):
            pl.set_num_threads(threads)
            model = _classifier(seed=1, dropout=0.2)
            model.fit(x, y, batch_size=32, epochs=2, verbose=0, seed=fit_seed, validation_data=(x[:30], y[:30]))
            runs.append(model.history.to_dict())
    finally:
        pl.set_num_threads(None)
    assert runs[0] == runs[1]
    assert runs[0]["steps"]["loss"] != runs[2]["steps"]["loss"]  # the fit seed drives shuffling and dropout


def test_float64_end_to_end():
    x, y = _sign_task(60, dtype=np.float64)
    model = _classifier(dtype="float64")
    model.fit(x, y, batch_size=20, epochs=1, verbose=0, seed=0)
    assert model.predict(x).dtype == F64 and all(w.dtype == F64 for w in model.get_weights())
    assert np.isfinite(model.evaluate(x, y)["loss"])


def test_iterable_of_batches_equals_arrays():
    x, y = _sign_task(90)
    a = _classifier()
    a.fit(x, y, batch_size=30, epochs=2, verbose=0, shuffle=False)
    b = _classifier()
    b.fit([(x[i:i + 30], y[i:i + 30]) for i in range(0, 90, 30)], epochs=2, verbose=0)
    assert a.history == b.history
    with pytest.raises(ValueError, match="no batches"):
        _classifier().fit(iter([(x[:30], y[:30])]), epochs=2, verbose=0)


def test_sample_weight_zero_drops_samples():
    x, y = _sign_task(40)
    w = np.r_[np.ones(20), np.zeros(20)]
    model = _classifier()
    assert rel_err(model.evaluate(x, y, sample_weight=w)["loss"], model.evaluate(x[:20], y[:20])["loss"]) < tol(np.float32)


def test_progress_bar_and_silence(capsys):
    x, y = _sign_task(40)
    model = _classifier()
    model.fit(x, y, batch_size=20, epochs=1, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/1" in err and "loss=" in err and "accuracy=" in err
    model.fit(x, y, batch_size=20, epochs=1, verbose=0)
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- failures during fit
def test_non_finite_loss_names_epoch_and_batch_and_keeps_weights():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, 2))
    y = rng.standard_normal((40, 1))
    y[25] = np.nan  # batch 3 of 4 (batch_size 10, no shuffling)

    def make():
        model = pl.Sequential([layers.LSTM(4), layers.Dense(1)], input_shape=(3, 2), seed=0)
        model.compile(loss="mse", optimizer=optim.SGD(0.1))
        return model

    model = make()
    with pytest.raises(NonFiniteLossError, match=r"epoch 1/1, batch 3/4") as e:
        model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    assert (e.value.epoch, e.value.batch, e.value.step) == (1, 3, 2)
    ref = make()
    ref.fit(x[:20], y[:20], batch_size=10, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.history.num_steps == 2 and len(model.history) == 0


def test_keyboard_interrupt_keeps_what_finished():
    x, y = _sign_task(60)

    class Interrupt(callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if logs["step"] == 5:
                raise KeyboardInterrupt

    model = _classifier()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=20, epochs=3, verbose=1, callbacks=[Interrupt()])
    assert model.history.epoch == [0] and model.history.num_steps == 5 and model.step == 5


# --------------------------------------------------------------------------- callbacks
def test_callback_hooks_order():
    seen = []

    class Spy(callbacks.Callback):
        def on_train_begin(self, logs=None): seen.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): seen.append(f"epoch_begin {epoch}")
        def on_batch_begin(self, batch, logs=None): seen.append(f"batch_begin {batch}")
        def on_batch_end(self, batch, logs=None): seen.append(f"batch_end {batch} step {logs['step']}")
        def on_epoch_end(self, epoch, logs=None): seen.append(f"epoch_end {epoch} {sorted(logs)}")
        def on_train_end(self, logs=None): seen.append("train_end")

    x, y = _sign_task(20)
    _classifier().fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=[Spy()])
    assert seen == ["train_begin", "epoch_begin 0", "batch_begin 0", "batch_end 0 step 1", "batch_begin 1",
                    "batch_end 1 step 2", "epoch_end 0 ['accuracy', 'loss', 'lr']", "train_end"]


def test_early_stopping_patience_and_restore():
    x, y = _sign_task(40)
    model = _classifier(optimizer=optim.SGD(lr=lambda step: 0.0))  # nothing changes: no improvement
    es = callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    model.fit(x, y, batch_size=20, epochs=10, verbose=0, validation_data=(x, y), callbacks=[es])
    assert len(model.history) == 3 and es.stopped_epoch == 2
    with pytest.raises(ValueError, match="no validation_data"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_early_stopping_target_checked_every_k_steps():
    x, y = _sign_task(100)
    model = _classifier()
    es = callbacks.EarlyStopping(monitor="val_accuracy", target=0.0, check_every=3)
    model.fit(x, y, batch_size=10, epochs=5, verbose=0, validation_data=(x[:20], y[:20]), callbacks=[es])
    assert model.step == 3 and es.stopped_step == 3 and len(model.history) == 1


def test_model_checkpoint_best_only(monkeypatch, tmp_path):
    saved = []
    x, y = _sign_task(60)
    model = _classifier()
    monkeypatch.setattr(model, "save", lambda path: saved.append(path))
    vals = iter([0.5, 0.7, 0.4, 0.45])

    class FakeVal(callbacks.Callback):  # runs first: overwrite val_loss with a known sequence
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(vals)

    ck = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}-{val_loss:.2f}.pylstm"))
    model.fit(x, y, batch_size=30, epochs=4, verbose=0, validation_data=(x, y), callbacks=[FakeVal(), ck])
    assert [p.split("/")[-1] for p in saved] == ["m-1-0.50.pylstm", "m-3-0.40.pylstm"]


def test_learning_rate_scheduler():
    x, y = _sign_task(40)
    model = _classifier(optimizer=optim.SGD(0.1))
    model.fit(x, y, batch_size=20, epochs=3, verbose=0,
              callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))])
    assert np.allclose(model.history.steps["lr"], [0.1, 0.1, 0.05, 0.05, 0.1 / 3, 0.1 / 3])


# --------------------------------------------------------------------------- weights, config
def test_config_round_trip_gives_identical_predictions():
    x, y = _sign_task(40)
    model = _classifier()
    model.fit(x, y, batch_size=20, epochs=1, verbose=0)
    cfg = json.loads(json.dumps(model.get_config()))
    clone = pl.Sequential.from_config(cfg)
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    assert clone.get_config() == model.get_config()
    clone.optimizer.set_state(model.optimizer.get_state())
    clone._set_rng_state(json.loads(json.dumps(model._rng_state())))
    model.fit(x, y, batch_size=20, epochs=1, verbose=0)
    clone.fit(x, y, batch_size=20, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_errors_name_the_layer():
    model = _classifier()
    w = model.get_weights()
    with pytest.raises(ValueError, match=r"has 10 weight arrays \(lstm: 4, lstm_1: 4, dense: 2\), got 9"):
        model.set_weights(w[:-1])
    w[5] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="layer 'lstm_1' weight W_hh: expected shape \\(32, 8\\)"):
        model.set_weights(w)


def test_summary_and_repr(capsys):
    model = _classifier()
    model.summary()
    out = capsys.readouterr().out
    for text in ("lstm (LSTM)", "(None, None, 8)", "dense (Dense)", "(None, 2)", "Total params: 978"):
        assert text in out
    assert repr(model).startswith("Sequential(LSTM(units=8, input=2, return_sequences=True")


# --------------------------------------------------------------------------- bad input
def test_bad_inputs_are_named():
    x, y = _sign_task(20)
    model = _classifier()
    with pytest.raises(ValueError, match="x has 20 samples but y has 19"):
        model.fit(x, y[:19], verbose=0)
    with pytest.raises(ValueError, match=r"x has shape \(20, 5, 3\) but the model expects \(N, T, 2\)"):
        model.fit(np.zeros((20, 5, 3)), y, verbose=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        model.fit(x, y + 1, verbose=0)
    with pytest.raises(ValueError, match=r"labels of shape \(20, 2\)"):
        model.fit(x, np.zeros((20, 2), int), verbose=0)
    with pytest.raises(ValueError, match="validation_data: x has 5 samples but y has 4"):
        model.fit(x, y, verbose=0, validation_data=(x[:5], y[:4]))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        layers.Dense(2, activation="gelu")
    with pytest.raises(ValueError, match="unknown initializer 'xavier'"):
        layers.Dense(2, kernel_initializer="xavier")
    ids_model = pl.Sequential([layers.LSTM(3, vocab_size=5), layers.Dense(5, activation="softmax")], seed=0)
    ids_model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="takes integer token ids"):
        ids_model.fit(np.zeros((4, 3)), np.zeros(4, int), verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        pl.Sequential([layers.Dense(1)]).fit(np.zeros((2, 1)), np.zeros(2), verbose=0)


def test_architecture_errors():
    with pytest.raises(ValueError, match="return_sequences=True"):
        pl.Sequential([layers.LSTM(3), layers.LSTM(3)], input_shape=(4, 1))
    with pytest.raises(ValueError, match="must be the first layer"):
        pl.Sequential([layers.LSTM(3, return_sequences=True), layers.LSTM(3, vocab_size=4)], input_shape=(4, 1))
    with pytest.raises(ValueError, match="only the last layer"):
        pl.Sequential([layers.LSTM(3, return_sequences=True, return_state=True), layers.LSTM(2)],
                      input_shape=(4, 1))


def test_return_state_last_layer_predicts_three_arrays():
    model = pl.Sequential([layers.LSTM(3, return_sequences=True, return_state=True)], input_shape=(4, 2), seed=0)
    x = np.random.default_rng(0).standard_normal((5, 4, 2)).astype(np.float32)
    y, h, c = model.predict(x, batch_size=2)
    assert y.shape == (5, 4, 3) and h.shape == c.shape == (5, 3)
    np.testing.assert_array_equal(y[:, -1], h)
    model.compile(loss="mse", optimizer="sgd")
    model.fit(x, np.zeros((5, 4, 3)), verbose=0)


def test_model_checkpoint_writes_a_loadable_file(tmp_path):
    x, y = _sign_task(60)
    model = _classifier()
    path = tmp_path / "best.pylstm"
    ck = callbacks.ModelCheckpoint(str(path), monitor="loss")
    model.fit(x, y, batch_size=30, epochs=2, verbose=0, callbacks=[ck])
    assert ck.last_saved == str(path)
    loaded = pl.load_model(str(path))
    if model.history.history["loss"][1] < model.history.history["loss"][0]:  # the last epoch was the best
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config()["layers"] == model.get_config()["layers"]
