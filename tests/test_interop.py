"""pylstm.interop: weights from and to PyTorch and Keras.

Array-level tests run everywhere; the ones against torch itself skip when torch
is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

import pylstm
from pylstm import reference
from pylstm.interop import LSTMWeights, from_keras, from_torch, to_keras, to_torch
from tolerances import rel_err, tol

FORWARDS = {"reference": reference.lstm_forward, "kernel": pylstm.lstm_forward}


def _random_layers(sizes, H, dtype=np.float32, seed=0):
    """[(W_ih, W_hh, b_ih, b_hh)] for stacked layers with the given input sizes."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    return [tuple(rng.uniform(-k, k, s).astype(dtype) for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,)))
            for I in sizes]


def _stack_forward(forward, x, layers):
    for w in layers:
        x, h, c, _ = forward(x, *w, need_cache=False)
    return x, h, c


# --------------------------------------------------------------------------- #
# state_dict level (no torch needed: numpy arrays in a mapping)
# --------------------------------------------------------------------------- #
def _state_dict(layers, prefix="", bias=True):
    sd = {}
    for k, (W_ih, W_hh, b_ih, b_hh) in enumerate(layers):
        sd[f"{prefix}weight_ih_l{k}"], sd[f"{prefix}weight_hh_l{k}"] = W_ih, W_hh
        if bias:
            sd[f"{prefix}bias_ih_l{k}"], sd[f"{prefix}bias_hh_l{k}"] = b_ih, b_hh
    return sd


def test_from_state_dict_of_arrays_copies_exactly():
    layers = _random_layers([3, 5, 5], 5)
    got = from_torch(_state_dict(layers))
    assert len(got) == 3 and all(isinstance(w, LSTMWeights) for w in got)
    for w, ref in zip(got, layers):
        for a, r in zip(w, ref):
            assert a.dtype == r.dtype and np.array_equal(a, r) and not np.shares_memory(a, r)
    assert got[0].input_size == 3 and got[0].hidden_size == 5


def test_from_state_dict_prefix_bias_false_and_dtype():
    layers = _random_layers([2], 3, dtype=np.float64)
    sd = {"embed.weight": np.zeros((4, 2)), **_state_dict(layers, "rnn.", bias=False)}
    (w,) = from_torch(sd)  # prefix found from the keys
    assert np.array_equal(w.W_ih, layers[0][0]) and not w.b_ih.any() and not w.b_hh.any()
    (w32,) = from_torch(sd, prefix="rnn.", dtype=np.float32)
    assert w32.W_hh.dtype == np.float32


@pytest.mark.parametrize(
    "sd, match",
    [
        ({"foo": np.zeros(3)}, "no LSTM weights"),
        ({**_state_dict(_random_layers([2], 3)), "weight_ih_l0_reverse": np.zeros((12, 2))}, "bidirectional"),
        ({**_state_dict(_random_layers([2], 3)), "weight_hr_l0": np.zeros((2, 3))}, "proj_size"),
        ({**_state_dict(_random_layers([2], 3), "a."), **_state_dict(_random_layers([2], 3), "b.")}, "prefix="),
        (_state_dict(_random_layers([2, 4], 3)), "layer 1 takes 4 inputs but layer 0 gives 3"),
        ({"weight_ih_l1": np.zeros((12, 2)), "weight_hh_l1": np.zeros((12, 3))}, "numbered 0..L-1"),
        ({"weight_ih_l0": np.zeros((9, 2)), "weight_hh_l0": np.zeros((9, 3))}, r"W_hh must be \(4H, H\)"),
        ({"weight_ih_l0": np.zeros((12, 2)), "weight_hh_l0": np.zeros((12, 3)), "bias_ih_l0": np.zeros(12)},
         "only one of"),
    ],
)
def test_from_state_dict_errors(sd, match):
    with pytest.raises(ValueError, match=match):
        from_torch(sd)


def test_from_torch_refuses_non_float_and_non_mapping():
    sd = {"weight_ih_l0": np.zeros((12, 2), np.int64), "weight_hh_l0": np.zeros((12, 3), np.int64)}
    with pytest.raises(TypeError, match="float32 or float64"):
        from_torch(sd)
    with pytest.raises(TypeError, match="torch.nn.LSTM"):
        from_torch([1, 2])


# --------------------------------------------------------------------------- #
# Keras (pure arrays)
# --------------------------------------------------------------------------- #
def _keras_lstm(x, kernel, recurrent_kernel, bias):
    """Keras' LSTM forward written from its documentation (gates i, f, c, o; x @ kernel)."""
    B, T, _ = x.shape
    H = recurrent_kernel.shape[0]
    h, c = np.zeros((B, H), x.dtype), np.zeros((B, H), x.dtype)
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    ys = []
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent_kernel + bias
        i, f, cc, o = sig(z[:, :H]), sig(z[:, H : 2 * H]), np.tanh(z[:, 2 * H : 3 * H]), sig(z[:, 3 * H :])
        c = f * c + i * cc
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys, 1)


@pytest.mark.parametrize("backend", sorted(FORWARDS))
def test_from_keras_matches_keras_maths(backend):
    rng = np.random.default_rng(1)
    I, H = 3, 7
    kernel, rec, bias = rng.normal(0, 0.5, (I, 4 * H)), rng.normal(0, 0.5, (H, 4 * H)), rng.normal(0, 0.5, 4 * H)
    x = rng.standard_normal((2, 5, I))
    w = from_keras(kernel, rec, bias)
    assert w.W_ih.shape == (4 * H, I) and w.W_hh.shape == (4 * H, H) and not w.b_hh.any()
    y, *_ = FORWARDS[backend](x, *w, need_cache=False)
    assert rel_err(y, _keras_lstm(x, kernel, rec, bias)) < tol(np.float64)
    # the list from keras_layer.get_weights() works as well, and back again
    w2 = from_keras([kernel, rec, bias])
    assert all(np.array_equal(a, b) for a, b in zip(w, w2))
    k2, r2, b2 = to_keras(w)
    assert np.array_equal(k2, kernel) and np.array_equal(r2, rec) and np.array_equal(b2, bias)


def test_keras_bias_variants_and_to_keras_sums_biases():
    I, H = 2, 3
    kernel, rec = np.ones((I, 4 * H), np.float32), np.ones((H, 4 * H), np.float32)
    w = from_keras(kernel, rec)  # use_bias=False
    assert w.b_ih.dtype == np.float32 and not w.b_ih.any()
    b8 = np.arange(8 * H, dtype=np.float32)
    w = from_keras(kernel, rec, b8)  # CuDNNLSTM: input bias then recurrent bias
    assert np.array_equal(w.b_ih, b8[: 4 * H]) and np.array_equal(w.b_hh, b8[4 * H :])
    assert np.array_equal(to_keras(*w)[2], b8[: 4 * H] + b8[4 * H :])
    with pytest.raises(ValueError, match=r"kernel must be \(I, 4H\)"):
        from_keras(np.ones((I, 4 * H + 1)), rec)
    with pytest.raises(ValueError, match=r"recurrent_kernel must be \(H, 4H\)"):
        from_keras(kernel, np.ones((H, H)))
    with pytest.raises(ValueError, match="bias must be"):
        from_keras(kernel, rec, np.ones(5))


# --------------------------------------------------------------------------- #
# against torch
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("I, H, L", [(1, 1, 1), (3, 7, 2), (5, 17, 3)])
def test_from_torch_outputs_equal_torchs(I, H, L, dtype):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    m = torch.nn.LSTM(I, H, num_layers=L, batch_first=True, dtype=tdtype)
    x = np.random.default_rng(2).standard_normal((4, 6, I)).astype(dtype)
    with torch.no_grad():
        ref, (h_n, c_n) = m(torch.from_numpy(x))
    for source in (m, m.state_dict()):
        layers = from_torch(source)
        assert len(layers) == L and layers[0].W_ih.dtype == dtype
        for forward in FORWARDS.values():
            y, h, c = _stack_forward(forward, x, layers)
            assert y.dtype == dtype
            assert rel_err(y, ref.numpy()) < tol(dtype)
            assert rel_err(h, h_n[-1].numpy()) < tol(dtype)
            assert rel_err(c, c_n[-1].numpy()) < tol(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_round_trip_is_bit_identical(dtype):
    torch = pytest.importorskip("torch")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    m = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True, dtype=tdtype)
    back = to_torch(from_torch(m))
    assert isinstance(back, torch.nn.LSTM) and back.batch_first and back.num_layers == 2
    sd, sd2 = m.state_dict(), back.state_dict()
    assert list(sd) == list(sd2)
    for k in sd:
        assert sd2[k].dtype == sd[k].dtype and torch.equal(sd[k], sd2[k]), k
    # and from pylstm's side: arrays -> torch -> arrays
    layers = _random_layers([4, 6], 6, dtype=dtype)
    again = from_torch(to_torch(layers))
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for w, r in zip(again, layers) for a, b in zip(w, r))


def test_torch_bias_false_and_lstmcell():
    torch = pytest.importorskip("torch")
    m = torch.nn.LSTM(2, 3, bias=False)
    (w,) = from_torch(m)
    assert not w.b_ih.any() and not w.b_hh.any()
    cell = torch.nn.LSTMCell(4, 5)
    (w,) = from_torch(cell)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        h_ref, c_ref = cell(torch.from_numpy(x))
    h, c = reference.lstm_step(x, *w, None, None)
    assert rel_err(h, h_ref.numpy()) < tol(np.float32) and rel_err(c, c_ref.numpy()) < tol(np.float32)


def test_from_torch_refuses_what_pylstm_cannot_compute():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="bidirectional"):
        from_torch(torch.nn.LSTM(2, 3, bidirectional=True))
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(torch.nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(TypeError, match="float32 or float64"):
        from_torch(torch.nn.LSTM(2, 3, dtype=torch.float16))
    (w,) = from_torch(torch.nn.LSTM(2, 3, dtype=torch.bfloat16), dtype=np.float32)
    assert w.W_ih.dtype == np.float32


def test_to_torch_errors():
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="one hidden size"):
        to_torch(_random_layers([2], 3) + _random_layers([3], 4))
    with pytest.raises(TypeError, match="to_torch takes"):
        to_torch(42)
    with pytest.raises(ValueError, match="no layers"):
        to_torch([])


# --------------------------------------------------------------------------- #
# whole models (needs the trainer: pylstm.layers / pylstm.model)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("return_sequences", [True, False])
def test_sequential_from_torch_predicts_like_torch(return_sequences):
    torch = pytest.importorskip("torch")
    from pylstm.interop import sequential_from_torch

    torch.manual_seed(1)
    m = torch.nn.LSTM(3, 8, num_layers=2, batch_first=True)
    model = sequential_from_torch(m, return_sequences=return_sequences)
    x = np.random.default_rng(3).standard_normal((5, 9, 3)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.from_numpy(x))[0].numpy()
    got = model.predict(x)
    assert rel_err(got, ref if return_sequences else ref[:, -1]) < tol(np.float32)


def test_to_torch_of_a_pylstm_model_round_trips():
    torch = pytest.importorskip("torch")
    from pylstm import layers

    model = pylstm.Sequential([layers.LSTM(6, return_sequences=True), layers.LSTM(6, return_sequences=True)],
                              input_shape=(None, 4), seed=0, dtype="float64")
    lstm = to_torch(model)
    assert lstm.weight_ih_l0.dtype == torch.float64 and lstm.num_layers == 2
    x = np.random.default_rng(0).standard_normal((3, 7, 4))
    with torch.no_grad():
        ref = lstm(torch.from_numpy(x))[0].numpy()
    assert rel_err(model.predict(x), ref) < tol(np.float64)
    back = [w for layer in from_torch(lstm) for w in layer]
    assert all(np.array_equal(a, b) for a, b in zip(back, model.get_weights()))
    to_torch(model.layers[:1])  # a list of layers works too
    head = pylstm.Sequential([layers.LSTM(6), layers.Dense(1)], input_shape=(None, 4), seed=0)
    with pytest.raises(ValueError, match="layer 1 is Dense, not an LSTM"):
        to_torch(head)
    with pytest.raises(ValueError, match="not built"):
        to_torch(pylstm.Sequential([layers.LSTM(6)]))
