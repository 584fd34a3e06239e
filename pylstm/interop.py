"""Weights in and out of PyTorch and Keras.

pylstm's layout *is* PyTorch's (gate order i, f, g, o; ``W_ih`` (4H, I),
``W_hh`` (4H, H), ``b_ih``, ``b_hh`` (4H,)), so PyTorch conversion only copies
arrays; Keras stores the transposes and one bias.

=======================================  =======================================================
function                                 does
=======================================  =======================================================
``from_torch(lstm or state_dict)``       list of :class:`LSTMWeights` (W_ih, W_hh, b_ih, b_hh), one per layer
``sequential_from_torch(lstm)``          a ready ``Sequential`` of ``LSTM`` layers with those weights
``to_torch(model or layers)``            a ``torch.nn.LSTM`` (``batch_first=True``) with the same weights
``from_keras(kernel, recurrent, bias)``  :class:`LSTMWeights` of one Keras LSTM layer
``to_keras(W_ih, W_hh, b_ih, b_hh)``     ``[kernel, recurrent_kernel, bias]`` for ``keras_layer.set_weights``
=======================================  =======================================================

Why ``from_torch`` returns arrays, not a model: a torch LSTM is usually one part
of a bigger network (an embedding before it, a head after it), so the arrays are
what composes -- ``model.layers[k].set_weights(list(w))`` puts them anywhere.
``sequential_from_torch`` is the shortcut when the LSTM stack is the whole model.

Only what pylstm computes converts: a bidirectional LSTM or one with
``proj_size > 0`` is refused (ValueError).  ``bias=False`` becomes zero biases.
torch's inter-layer ``dropout`` is a training setting, not a weight: it is not
carried over (set it on the pylstm layers if you want it).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["LSTMWeights", "from_torch", "sequential_from_torch", "to_torch", "from_keras", "to_keras"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_KEY = re.compile(r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(?P<k>\d+)"
                  r"(?P<rev>_reverse)?$")
_CELL_KEYS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class LSTMWeights(NamedTuple):
    """One LSTM layer's weights in pylstm's (= PyTorch's) layout, gate order i, f, g, o."""

    W_ih: np.ndarray  # (4H, I)
    W_hh: np.ndarray  # (4H, H)
    b_ih: np.ndarray  # (4H,)
    b_hh: np.ndarray  # (4H,)

    @property
    def hidden_size(self) -> int:
        return self.W_hh.shape[1]

    @property
    def input_size(self) -> int:
        return self.W_ih.shape[1]


# --------------------------------------------------------------------------- #
# checks
# --------------------------------------------------------------------------- #
def _to_numpy(name: str, t: Any, dtype: Any) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor: no gradient tracking, on the CPU
        t = t.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16",):  # numpy has no bfloat16
            t = t.float()
        t = t.numpy()
    a = np.array(t, copy=True)
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    if a.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {a.dtype}; pylstm computes in float32 or float64: pass "
                        "dtype=np.float32 (or np.float64) to convert")
    return a


def _check_layer(W_ih: np.ndarray, W_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray,
                 layer: str) -> LSTMWeights:
    if W_hh.ndim != 2 or W_hh.shape[0] != 4 * W_hh.shape[1] or W_hh.shape[1] == 0:
        raise ValueError(f"{layer}: W_hh must be (4H, H), got shape {W_hh.shape}")
    H = W_hh.shape[1]
    if W_ih.ndim != 2 or W_ih.shape[0] != 4 * H:
        raise ValueError(f"{layer}: W_ih must be (4H, I) = ({4 * H}, I), got shape {W_ih.shape}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b.shape != (4 * H,):
            raise ValueError(f"{layer}: {name} must be (4H,) = ({4 * H},), got shape {b.shape}")
    if len({W_ih.dtype, W_hh.dtype, b_ih.dtype, b_hh.dtype}) != 1:
        raise TypeError(f"{layer}: weights must share one dtype, got "
                        f"{W_ih.dtype}, {W_hh.dtype}, {b_ih.dtype}, {b_hh.dtype}")
    return LSTMWeights(W_ih, W_hh, b_ih, b_hh)


# --------------------------------------------------------------------------- #
# PyTorch
# --------------------------------------------------------------------------- #
def _state_dict_of(module_or_state_dict: Any) -> tuple[Mapping[str, Any], str]:
    obj = module_or_state_dict
    if isinstance(obj, Mapping):
        return obj, "state_dict"
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        if getattr(obj, "bidirectional", False):
            raise ValueError(f"{type(obj).__name__}(bidirectional=True) cannot be converted: pylstm's LSTM "
                             "is unidirectional")
        if getattr(obj, "proj_size", 0):
            raise ValueError(f"{type(obj).__name__}(proj_size={obj.proj_size}) cannot be converted: pylstm's "
                             "LSTM has no projection")
        return obj.state_dict(), type(obj).__name__
    raise TypeError("from_torch takes a torch.nn.LSTM, torch.nn.LSTMCell or a state_dict (a mapping), "
                    f"got {type(obj).__name__}")


def from_torch(module_or_state_dict: Any, *, prefix: str | None = None, dtype: Any = None) -> list[LSTMWeights]:
    """The weights of a PyTorch LSTM, one :class:`LSTMWeights` per layer.

    Parameters
    ----------
    module_or_state_dict : torch.nn.LSTM, torch.nn.LSTMCell, or a mapping
        The module, or a ``state_dict`` (tensors or arrays) holding
        ``weight_ih_l{k}``, ``weight_hh_l{k}`` and (unless ``bias=False``)
        ``bias_ih_l{k}``, ``bias_hh_l{k}`` for k = 0, 1, ...; an LSTMCell's keys
        (``weight_ih``, ...) give one layer.
    prefix : str, optional
        Key prefix inside a bigger model's state_dict (e.g. ``"encoder.rnn."``).
        Default: found from the keys, which must then name a single LSTM.
    dtype : dtype, optional
        Convert to this dtype (float32 or float64); default: keep the tensors'
        dtype, which must then be float32 or float64.

    Returns
    -------
    list of LSTMWeights
        Fresh NumPy arrays (never sharing memory with the tensors), layer 0 first.
        ``pylstm.lstm_forward(x, *weights[0])`` computes torch's first layer with
        ``batch_first=True``.

    Raises
    ------
    ValueError
        Bidirectional or projected LSTMs, missing layers or keys, inconsistent shapes.
    """
    sd, what = _state_dict_of(module_or_state_dict)
    if dtype is not None and np.dtype(dtype) not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    keys = [k for k in sd if isinstance(k, str)]

    # An LSTMCell (or its state_dict): keys without the _l{k} suffix.
    cells = sorted({k[: -len("weight_ih")] for k in keys if k.endswith("weight_ih")})
    cells = [p for p in cells if prefix is None or p == prefix]
    if cells and not any(_KEY.match(k) for k in keys):
        if len(cells) > 1:
            raise ValueError(f"{what} holds several LSTM cells, with key prefixes {cells}: pass prefix= to "
                             "choose one")
        return [_layer_from(lambda kind: sd.get(cells[0] + kind), 0, what, dtype, cell=True)]

    layers: dict[str, dict[int, dict[str, Any]]] = {}
    for k in keys:
        m = _KEY.match(k)
        if not m or (prefix is not None and m["prefix"] != prefix):
            continue
        if m["rev"]:
            raise ValueError(f"{what} holds {k!r}: a bidirectional LSTM cannot be converted (pylstm's LSTM "
                             "is unidirectional)")
        if m["kind"] == "weight_hr":
            raise ValueError(f"{what} holds {k!r}: an LSTM with proj_size > 0 cannot be converted")
        layers.setdefault(m["prefix"], {}).setdefault(int(m["k"]), {})[m["kind"]] = sd[k]
    if not layers:
        raise ValueError(f"{what} holds no LSTM weights (expected keys like "
                         f"'{prefix or ''}weight_ih_l0'); keys: {keys[:8]}")
    if len(layers) > 1:
        raise ValueError(f"{what} holds several LSTMs, with key prefixes {sorted(layers)}: "
                         "pass prefix= to choose one")
    (found_prefix, by_layer), = layers.items()
    if sorted(by_layer) != list(range(len(by_layer))):
        raise ValueError(f"{what}: LSTM layers must be numbered 0..L-1, found {sorted(by_layer)}")
    out = []
    for k in range(len(by_layer)):
        get = lambda kind, k=k: by_layer[k].get(kind)  # noqa: E731
        out.append(_layer_from(get, k, what, dtype, cell=False))
    for k in range(1, len(out)):
        if out[k].input_size != out[k - 1].hidden_size:
            raise ValueError(f"{what}: layer {k} takes {out[k].input_size} inputs but layer {k - 1} gives "
                             f"{out[k - 1].hidden_size}")
    return out


def _layer_from(get: Any, k: int, what: str, dtype: Any, cell: bool) -> LSTMWeights:
    suffix = "" if cell else f"_l{k}"
    W_ih, W_hh = get("weight_ih"), get("weight_hh")
    if W_ih is None or W_hh is None:
        raise ValueError(f"{what}: layer {k} lacks weight_ih{suffix} or weight_hh{suffix}")
    W_ih = _to_numpy(f"weight_ih{suffix}", W_ih, dtype)
    W_hh = _to_numpy(f"weight_hh{suffix}", W_hh, W_ih.dtype)
    b = [get("bias_ih"), get("bias_hh")]
    if (b[0] is None) != (b[1] is None):
        raise ValueError(f"{what}: layer {k} has only one of bias_ih{suffix}, bias_hh{suffix}")
    if b[0] is None:  # bias=False
        b = [np.zeros(W_hh.shape[0], W_ih.dtype), np.zeros(W_hh.shape[0], W_ih.dtype)]
    else:
        b = [_to_numpy(f"bias_ih{suffix}", b[0], W_ih.dtype), _to_numpy(f"bias_hh{suffix}", b[1], W_ih.dtype)]
    return _check_layer(W_ih, W_hh, b[0], b[1], f"{what} layer {k}")


def _is_lstm_layer(obj: Any) -> bool:
    from . import layers as _layers  # late: interop's array functions work without the trainer

    return isinstance(obj, _layers.LSTM)


def _weights_of(model_or_layers: Any) -> list[LSTMWeights]:
    """LSTMWeights for a pylstm Sequential of LSTM layers, a list of LSTM layers, or a list of weight tuples."""
    obj = model_or_layers
    if hasattr(obj, "layers") and not isinstance(obj, (list, tuple)):
        items = list(obj.layers)
        if hasattr(obj, "built") and not obj.built:
            raise ValueError("the model is not built yet: give it input_shape= or call it on data first")
    elif isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
        items = list(obj)
    else:
        raise TypeError(f"to_torch takes a pylstm Sequential, a list of LSTM layers or a list of "
                        f"(W_ih, W_hh, b_ih, b_hh), got {type(obj).__name__}")
    if not items:
        raise ValueError("nothing to convert: no layers given")
    out = []
    for k, item in enumerate(items):
        if isinstance(item, (tuple, list)) and len(item) == 4:
            w = item
        elif _is_lstm_layer(item):
            # With vocab_size=V, W_ih is (4H, V): the torch LSTM computes the same on one-hot input.
            w = item.get_weights()
            if not w:
                raise ValueError(f"layer {k} ({item!r}) is not built yet")
        else:
            raise ValueError(f"layer {k} is {type(item).__name__}, not an LSTM: torch.nn.LSTM holds only LSTM "
                             f"layers (convert model.layers[:{k}] and the rest separately)")
        w = [_to_numpy(n, a, None) for n, a in zip(("W_ih", "W_hh", "b_ih", "b_hh"), w)]
        out.append(_check_layer(*w, layer=f"layer {k}"))
    return out


def to_torch(model_or_layers: Any, *, batch_first: bool = True) -> Any:
    """A ``torch.nn.LSTM`` computing what the given pylstm LSTM stack computes.

    Parameters
    ----------
    model_or_layers : Sequential, list of LSTM layers, or list of (W_ih, W_hh, b_ih, b_hh)
        Every layer must be an LSTM (a Dense head has no place in an nn.LSTM:
        pass ``model.layers[:k]``), all with the same hidden size (nn.LSTM's rule).
    batch_first : bool, default True
        pylstm is batch-first; ``False`` gives torch's (T, B, F) default.

    Returns
    -------
    torch.nn.LSTM
        ``num_layers`` = number of layers, in float32 or float64 as the weights,
        with ``weight_ih_l{k}`` etc. holding exact copies.  Stateful carried states,
        dropout and gradient clipping are not part of it.
    """
    import torch

    ws = _weights_of(model_or_layers)
    H = ws[0].hidden_size
    if any(w.hidden_size != H for w in ws):
        raise ValueError("torch.nn.LSTM needs one hidden size for all layers, got "
                         f"{[w.hidden_size for w in ws]}: convert the layers one at a time")
    for k in range(1, len(ws)):
        if ws[k].input_size != H:
            raise ValueError(f"layer {k} takes {ws[k].input_size} inputs but layer {k - 1} gives {H}")
    dtypes = {w.W_ih.dtype for w in ws}
    if len(dtypes) != 1:
        raise TypeError(f"all layers must share one dtype, got {sorted(map(str, dtypes))}")
    tdtype = torch.float64 if dtypes.pop() == np.float64 else torch.float32
    lstm = torch.nn.LSTM(ws[0].input_size, H, num_layers=len(ws), batch_first=batch_first, dtype=tdtype)
    with torch.no_grad():
        for k, w in enumerate(ws):
            for kind, a in zip(_CELL_KEYS, w):
                getattr(lstm, f"{kind}_l{k}").copy_(torch.from_numpy(np.ascontiguousarray(a)))
    return lstm


def sequential_from_torch(module_or_state_dict: Any, *, return_sequences: bool = True, prefix: str | None = None,
                          dtype: Any = None, **lstm_kwargs: Any) -> Any:
    """A ``Sequential`` of ``LSTM`` layers holding a PyTorch LSTM's weights.

    Parameters
    ----------
    module_or_state_dict, prefix, dtype
        As in :func:`from_torch`.
    return_sequences : bool, default True
        For the last layer (torch's LSTM returns every step; the inner layers
        always do).  ``False`` gives the last step's h, like ``output[:, -1]``.
    **lstm_kwargs
        Passed on to every ``pylstm.layers.LSTM`` (e.g. ``stateful=True``).

    Returns
    -------
    pylstm.Sequential
        Built for input (B, T, I) with any T, not compiled.  ``predict(x)``
        equals torch's output for ``x`` (batch_first) to float rounding.
    """
    from . import layers as _layers
    from .model import Sequential

    ws = from_torch(module_or_state_dict, prefix=prefix, dtype=dtype)
    stack = [_layers.LSTM(w.hidden_size, return_sequences=(k < len(ws) - 1) or return_sequences, **lstm_kwargs)
             for k, w in enumerate(ws)]
    model = Sequential(stack, input_shape=(None, ws[0].input_size), dtype=ws[0].W_ih.dtype.name)
    for layer, w in zip(model.layers, ws):
        layer.set_weights(list(w))
    return model


# --------------------------------------------------------------------------- #
# Keras
# --------------------------------------------------------------------------- #
def from_keras(kernel: Any, recurrent_kernel: Any | None = None, bias: Any | None = None, *,
               dtype: Any = None) -> LSTMWeights:
    """pylstm weights of one Keras LSTM layer.

    Parameters
    ----------
    kernel : array (I, 4H), or the list ``keras_layer.get_weights()``
        Keras' input kernel; gate order i, f, c, o (the same as i, f, g, o: c is g).
    recurrent_kernel : array (H, 4H)
    bias : array (4H,), (8H,) or None
        Keras' one bias (``use_bias=False``: None).  An (8H,) bias (the old
        CuDNNLSTM: input bias then recurrent bias) is split in two.
    dtype : dtype, optional
        float32 or float64; default: the kernel's (which must be one of them).

    Returns
    -------
    LSTMWeights
        ``W_ih = kernel.T``, ``W_hh = recurrent_kernel.T``, ``b_ih = bias``,
        ``b_hh = 0``.  Since Keras adds one bias and pylstm adds two, the sums are equal.
    """
    if recurrent_kernel is None and isinstance(kernel, (list, tuple)):
        if len(kernel) not in (2, 3):
            raise ValueError(f"a Keras LSTM's get_weights() has 2 or 3 arrays, got {len(kernel)}")
        kernel, recurrent_kernel, bias = (list(kernel) + [None])[:3]
    if recurrent_kernel is None:
        raise TypeError("from_keras needs kernel and recurrent_kernel (or the list layer.get_weights())")
    k = _to_numpy("kernel", kernel, dtype)
    r = _to_numpy("recurrent_kernel", recurrent_kernel, k.dtype)
    if r.ndim != 2 or r.shape[1] != 4 * r.shape[0] or r.shape[0] == 0:
        raise ValueError(f"recurrent_kernel must be (H, 4H), got shape {r.shape}")
    H = r.shape[0]
    if k.ndim != 2 or k.shape[1] != 4 * H:
        raise ValueError(f"kernel must be (I, 4H) = (I, {4 * H}), got shape {k.shape}")
    if bias is None:
        b_ih, b_hh = np.zeros(4 * H, k.dtype), np.zeros(4 * H, k.dtype)
    else:
        b = _to_numpy("bias", bias, k.dtype)
        if b.shape == (8 * H,):
            b_ih, b_hh = b[: 4 * H].copy(), b[4 * H :].copy()
        elif b.shape == (4 * H,):
            b_ih, b_hh = b, np.zeros(4 * H, k.dtype)
        else:
            raise ValueError(f"bias must be (4H,) = ({4 * H},) (or (8H,)), got shape {b.shape}")
    return LSTMWeights(np.ascontiguousarray(k.T), np.ascontiguousarray(r.T), b_ih, b_hh)


def to_keras(W_ih: Any, W_hh: Any | None = None, b_ih: Any | None = None, b_hh: Any | None = None) -> list[np.ndarray]:
    """``[kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)]`` for ``keras_layer.set_weights``.

    Takes the four arrays, or one :class:`LSTMWeights` / 4-sequence, or an
    LSTM layer.  ``bias = b_ih + b_hh`` (Keras has one bias; the sum is rounded
    once, so outputs agree to float rounding, not bit for bit).
    """
    if W_hh is None:
        obj = W_ih
        if hasattr(obj, "get_weights") and not isinstance(obj, (list, tuple)):
            obj = obj.get_weights()
        if not isinstance(obj, (list, tuple)) or len(obj) != 4:
            raise TypeError("to_keras takes (W_ih, W_hh, b_ih, b_hh), an LSTMWeights or an LSTM layer")
        W_ih, W_hh, b_ih, b_hh = obj
    if b_ih is None or b_hh is None:
        raise TypeError("to_keras needs W_ih, W_hh, b_ih and b_hh")
    w = _check_layer(*[_to_numpy(n, a, None) for n, a in
                       zip(("W_ih", "W_hh", "b_ih", "b_hh"), (W_ih, W_hh, b_ih, b_hh))], layer="to_keras")
    return [np.ascontiguousarray(w.W_ih.T), np.ascontiguousarray(w.W_hh.T), w.b_ih + w.b_hh]
