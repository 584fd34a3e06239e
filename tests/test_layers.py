"""Layers: each backward against central finite differences (float64), initialization, configs, errors.

The loss is ``sum(out * R)`` with a fixed random R, so every output matters.
LSTM cases run on the C++ kernel and on the NumPy reference.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import pylstm as pl
from pylstm import initializers, layers
from pylstm.gradcheck import _central_differences
from tolerances import FINITE_DIFF_EPS, FINITE_DIFF_TOL, rel_err, tol

F64 = np.float64


def _fd_check(layer, x, *, training=False, seed=7, check_dx=True, **fwd):
    """Analytic grads (params, and dx) of sum(out * R) vs central differences."""
    rng0 = np.random.default_rng(123)

    def run(training_flag):
        # a fresh generator each call: the same dropout mask in every evaluation
        return layer.forward(x, training=training_flag, rng=np.random.default_rng(seed), **fwd)

    out = run(True)
    R = rng0.standard_normal(np.shape(out))
    layer.backward(R.astype(layer.dtype))
    analytic = {k: v.copy() for k, v in layer.grads.items()}
    dx = None
    if check_dx:
        out = run(True)
        dx = layer.backward(R.astype(layer.dtype))

    def loss():
        return float(np.sum(np.asarray(run(training)) * R))

    fd = _central_differences(loss, dict(layer._params), FINITE_DIFF_EPS)
    for k in layer._params:
        assert rel_err(analytic[k], fd[k]) < FINITE_DIFF_TOL, k
    if check_dx and dx is not None:
        fdx = _central_differences(loss, {"x": x}, FINITE_DIFF_EPS)["x"]
        assert rel_err(dx, fdx) < FINITE_DIFF_TOL, "dx"


def _built(layer, input_shape, dtype=F64, seed=0):
    layer.build(input_shape, dtype, np.random.default_rng(seed))
    return layer


@pytest.fixture(params=["kernels", "reference"])
def backend(request):
    with layers._use_backend(request.param):
        yield request.param


# --------------------------------------------------------------------------- LSTM
@pytest.mark.parametrize("return_sequences", [True, False])
def test_lstm_backward_matches_finite_differences(backend, return_sequences):
    rng = np.random.default_rng(1)
    layer = _built(layers.LSTM(5, return_sequences=return_sequences, kernel_initializer=initializers.Uniform(0.5)),
                   (4, 3))
    x = rng.standard_normal((3, 4, 3))
    _fd_check(layer, x)


def test_lstm_ids_backward_and_equals_one_hot(backend):
    rng = np.random.default_rng(2)
    V = 6
    lid = _built(layers.LSTM(4, vocab_size=V, return_sequences=True), (5,))
    ids = rng.integers(0, V, (3, 5))
    _fd_check(lid, ids, check_dx=False)
    dense = _built(layers.LSTM(4, return_sequences=True), (5, V))
    dense.set_weights(lid.get_weights())
    onehot = np.eye(V)[ids]
    assert rel_err(lid.forward(ids), dense.forward(onehot)) < tol(F64)


def test_lstm_dropout_one_mask_per_sequence_and_backward(backend):
    rng = np.random.default_rng(3)
    layer = _built(layers.LSTM(3, dropout=0.5, return_sequences=True), (6, 4))
    x = rng.standard_normal((5, 6, 4))
    _fd_check(layer, x, training=True)
    layer.forward(x, training=True, rng=np.random.default_rng(0))
    mask = layer._cache[2]
    assert mask.shape == (5, 1, 4)  # the same features dropped at every step
    assert set(np.unique(mask)) <= {0.0, 2.0}
    expected = pl.reference.lstm_forward(x * mask, *layer.get_weights())[0]
    assert rel_err(layer.forward(x, training=True, rng=np.random.default_rng(0)), expected) < tol(F64)
    # inference: no dropout
    assert rel_err(layer.forward(x), pl.reference.lstm_forward(x, *layer.get_weights())[0]) < tol(F64)


def test_lstm_ids_dropout_uses_masked_one_hot(backend):
    rng = np.random.default_rng(4)
    layer = _built(layers.LSTM(3, vocab_size=5, dropout=0.4), (4,))
    ids = rng.integers(0, 5, (6, 4))
    _fd_check(layer, ids, training=True, check_dx=False)


def test_lstm_grad_clip_is_the_kernels_clip():
    rng = np.random.default_rng(5)
    layer = _built(layers.LSTM(4, return_sequences=True, grad_clip=0.01), (5, 3))
    x = rng.standard_normal((2, 5, 3))
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape) * 10
    layer.backward(dy)
    _, _, _, cache = pl.reference.lstm_forward(x, *layer.get_weights())
    g = pl.reference.lstm_backward(cache, dy, clip=0.01)
    for k, ref in zip(("W_ih", "W_hh", "b_ih", "b_hh"), (g.dW_ih, g.dW_hh, g.db_ih, g.db_hh)):
        assert rel_err(layer.grads[k], ref) < tol(F64), k


def test_lstm_return_state_and_initial_state_grads():
    rng = np.random.default_rng(6)
    layer = _built(layers.LSTM(3, return_state=True), (4, 2))
    x = rng.standard_normal((2, 4, 2))
    out, h, c = layer.forward(x)
    np.testing.assert_array_equal(out, h)
    y_ref, h_ref, c_ref, _ = pl.reference.lstm_forward(x, *layer.get_weights())
    assert rel_err(c, c_ref) < tol(F64)


def test_lstm_init_keras_defaults():
    layer = _built(layers.LSTM(6, forget_bias=1.0), (3, 5), dtype=np.float32)
    p = layer.params
    assert [k for k in p] == ["W_ih", "W_hh", "b_ih", "b_hh"]
    assert p["W_ih"].shape == (24, 5) and p["W_hh"].shape == (24, 6) and p["W_ih"].dtype == np.float32
    np.testing.assert_array_equal(p["b_ih"][6:12], 1.0)
    assert not p["b_ih"][:6].any() and not p["b_ih"][12:].any() and not p["b_hh"].any()
    limit = np.sqrt(6 / (5 + 24))
    assert np.abs(p["W_ih"]).max() <= limit
    Whh = p["W_hh"].astype(F64)
    assert rel_err(Whh.T @ Whh, np.eye(6)) < tol(np.float32)  # orthonormal columns (float32 weights)


def test_lstm_same_seed_same_weights_and_repr():
    a = _built(layers.LSTM(4), (3, 2), seed=11)
    b = _built(layers.LSTM(4), (3, 2), seed=11)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert repr(a).startswith("LSTM(units=4, input=2, float64")


def test_lstm_input_errors():
    layer = _built(layers.LSTM(4), (3, 2))
    with pytest.raises(ValueError, match=r"\(B, T, 2\)"):
        layer.forward(np.zeros((1, 3, 5)))
    ids_layer = _built(layers.LSTM(4, vocab_size=5), (3,))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        ids_layer.forward(np.array([[0, 5, 1]]))
    with pytest.raises(TypeError, match="integer token ids"):
        ids_layer.forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="vocab_size"):
        layers.LSTM(4).build((3,), "float32")
    with pytest.raises(ValueError, match="units"):
        layers.LSTM(0)
    with pytest.raises(ValueError, match="dropout"):
        layers.LSTM(3, dropout=1.0)


# --------------------------------------------------------------------------- Dense
@pytest.mark.parametrize("activation", [None, "sigmoid", "softmax", "tanh", "relu"])
@pytest.mark.parametrize("shape", [(4,), (3, 4)], ids=["2d", "3d"])
def test_dense_backward_matches_finite_differences(activation, shape):
    rng = np.random.default_rng(7)
    layer = _built(layers.Dense(3, activation=activation), shape)
    x = rng.standard_normal((5,) + shape) + 0.05  # keep relu away from its kink
    _fd_check(layer, x)


def test_dense_per_step_equals_2d():
    rng = np.random.default_rng(8)
    layer = _built(layers.Dense(3, activation="softmax"), (4, 5))
    x = rng.standard_normal((2, 4, 5))
    out = layer.forward(x)
    assert out.shape == (2, 4, 3)
    assert rel_err(out[:, 2], layer.forward(x[:, 2])) < tol(F64)
    np.testing.assert_allclose(out.sum(-1), 1.0)


def test_dense_errors():
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        layers.Dense(3, activation="swish")
    layer = _built(layers.Dense(3), (4,))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        layer.forward(np.zeros((2, 5)))


# --------------------------------------------------------------------------- Embedding, Dropout
def test_embedding_backward_with_repeated_ids():
    layer = _built(layers.Embedding(5, 3), (4,))
    ids = np.array([[0, 1, 1, 4], [4, 4, 2, 0]])
    _fd_check(layer, ids, check_dx=False)
    np.testing.assert_array_equal(layer.forward(ids), layer.params["W"][ids])
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        layer.forward(np.array([[5]]))


def test_dropout_backward_and_inference_identity():
    layer = _built(layers.Dropout(0.3), (4, 3))
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 4, 3))
    _fd_check(layer, x, training=True)
    np.testing.assert_array_equal(layer.forward(x), x)
    y = layer.forward(x, training=True, rng=np.random.default_rng(0))
    assert np.isclose((y == 0).mean(), 0.3, atol=0.15)


# --------------------------------------------------------------------------- initializers, configs
@pytest.mark.parametrize("name", ["glorot_uniform", "orthogonal", "uniform", "normal", "zeros"])
def test_initializers_by_name_and_object(name):
    init = initializers.get(name)
    w = init((8, 3), np.float32, np.random.default_rng(0))
    assert w.shape == (8, 3) and w.dtype == np.float32
    assert initializers.get(initializers.serialize(init)) == init


def test_initializer_objects_and_errors():
    w = initializers.Uniform(limit=0.1)((100, 10), F64, np.random.default_rng(0))
    assert np.abs(w).max() <= 0.1
    w = initializers.Normal(std=2.0)((200, 50), F64, np.random.default_rng(0))
    assert 1.8 < w.std() < 2.2
    layer = layers.LSTM(3, kernel_initializer=initializers.Zeros())
    _built(layer, (2, 4))
    assert not layer.params["W_ih"].any()
    with pytest.raises(ValueError, match="unknown initializer 'he_magic'"):
        layers.LSTM(3, recurrent_initializer="he_magic")


@pytest.mark.parametrize("layer", [
    layers.LSTM(4, return_sequences=True, stateful=True, dropout=0.2, grad_clip=1.5,
                kernel_initializer=initializers.Uniform(0.2), forget_bias=2.0, name="enc"),
    layers.LSTM(3, vocab_size=7),
    layers.Dense(2, activation="softmax", kernel_initializer="normal"),
    layers.Embedding(9, 4),
    layers.Dropout(0.25),
], ids=lambda l: type(l).__name__)
def test_layer_config_round_trip(layer):
    cfg = layer.get_config()
    cfg2 = json.loads(json.dumps(cfg))
    assert cfg2["class_name"] == type(layer).__name__
    clone = layers.layer_from_config(cfg2)
    assert clone.get_config() == cfg


def test_layer_from_config_unknown_and_custom():
    with pytest.raises(ValueError, match="unknown layer class 'Conv1D'"):
        layers.layer_from_config({"class_name": "Conv1D"})

    class Twice(layers.Dropout):
        pass

    clone = layers.layer_from_config({"class_name": "Twice", "rate": 0.1}, custom_objects={"Twice": Twice})
    assert isinstance(clone, Twice)


def test_set_weights_checks():
    layer = _built(layers.Dense(3), (4,))
    with pytest.raises(ValueError, match="weight W: expected shape \\(3, 4\\)"):
        layer.set_weights([np.zeros((4, 3)), np.zeros(3)])
    with pytest.raises(ValueError, match="has 2 weights"):
        layer.set_weights([np.zeros((3, 4))])
    layer.set_weights([np.ones((3, 4), np.float32), np.zeros(3)])
    assert layer.params["W"].dtype == F64 and layer.params["W"].sum() == 12
