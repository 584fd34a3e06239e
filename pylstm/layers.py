"""Layers: LSTM (on the C++ kernel), Dense, Embedding, Dropout.

Every layer has the same small protocol, forward and backward side by side:

* ``build(input_shape, dtype, rng)`` with the per-sample input shape (no batch
  axis, a ``None`` time axis allowed) creates ``params`` (named weights in a
  fixed order, PyTorch's shapes) and sets ``built``;
* ``forward(x, training=False, rng=None)`` returns the output and, when
  training, keeps what ``backward`` needs;
* ``backward(dy)`` fills ``grads`` (same keys as ``params``; inside a model,
  views of the model's flat gradient buffer, overwritten by the next backward)
  and returns dx (None for a layer that takes token ids);
* ``step(x_t, state)`` is one time step of inference, for ``generate``;
* ``get_config()`` / ``from_config()`` (JSON-able, flat, with ``class_name``).

Shapes are batch-first: (B, T, F) sequences, (B, F) vectors, (B, T) token ids.
"""
from __future__ import annotations

import contextlib
import numbers
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import numpy as np

from ._registry import class_from_config
from . import activations as _activations
from . import initializers as _initializers
from . import reference as _reference

__all__ = ["Layer", "LSTM", "Dense", "Embedding", "Dropout", "layer_from_config"]

# --------------------------------------------------------------------------- #
# backend: the C++ kernel, or the NumPy reference (same signatures)
# --------------------------------------------------------------------------- #
_backend_override: Any = None
_kernels: Any = None


def _backend() -> Any:
    """The module the LSTM layer calls: ``pylstm.kernels``, or ``pylstm.reference`` when forced (tests)."""
    global _kernels
    if _backend_override is not None:
        return _backend_override
    if _kernels is None:
        from . import kernels

        _kernels = kernels
    return _kernels


@contextlib.contextmanager
def _use_backend(name: str) -> Iterator[None]:
    """Run LSTM layers on ``"reference"`` (NumPy) or ``"kernels"`` (C++) inside the block (for tests)."""
    global _backend_override
    if name not in ("reference", "kernels"):
        raise ValueError(f"backend must be 'reference' or 'kernels', got {name!r}")
    saved = _backend_override
    _backend_override = _reference if name == "reference" else None
    try:
        yield
    finally:
        _backend_override = saved


def _backend_name() -> str:
    b = _backend()
    if b is _reference:
        return "numpy"
    try:
        return str(b.info().get("isa", "c++"))
    except Exception:  # pragma: no cover - info() is optional for a stand-in backend
        return "c++"


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _float_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in _FLOATS:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_ids(layer: str, ids: np.ndarray, vocab: int) -> np.ndarray:
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{layer} takes integer token ids, got dtype {ids.dtype}")
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"{layer}: token ids must lie in [0, {vocab}), got values in [{lo}, {hi}]")
    return ids


class Layer:
    """Base class (see the module docstring for the protocol)."""

    _param_names: tuple[str, ...] = ()
    # Where ``backward`` writes the gradients when the layer sits in a model: views of the model's flat
    # gradient buffer, keyed like ``params`` (None for a standalone layer: fresh arrays every backward).
    _grad_views: dict[str, np.ndarray] | None = None

    def __init__(self, name: str | None = None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self._name = name
        self._params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.built = False
        self.dtype: np.dtype | None = None
        self.input_shape: tuple | None = None  # per sample, as built

    # ------------------------------------------------------------------ naming / weights
    @property
    def name(self) -> str:
        return self._name or type(self).__name__.lower()

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    @property
    def params(self) -> Mapping[str, np.ndarray]:
        """Named weights in a fixed order (read-only mapping; change values with ``set_weights``)."""
        return MappingProxyType(self._params)

    def count_params(self) -> int:
        return int(sum(p.size for p in self._params.values()))

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights, in ``params`` order."""
        return [p.copy() for p in self._params.values()]

    def set_weights(self, weights: list[Any]) -> None:
        """Copy ``weights`` (``params`` order) into the layer, cast to its dtype.

        Raises
        ------
        ValueError
            Not built, wrong count or a wrong shape (naming the layer and weight).
        TypeError
            A non-float array.
        """
        if not self.built:
            raise ValueError(f"layer {self.name!r} is not built yet: build it (or its model) before set_weights")
        weights = list(weights)
        if len(weights) != len(self._params):
            raise ValueError(f"layer {self.name!r} has {len(self._params)} weights "
                             f"({', '.join(self._params) or 'none'}), got {len(weights)}")
        arrays = []
        for (key, p), w in zip(self._params.items(), weights):
            w = np.asarray(w)
            if w.dtype.kind != "f":
                raise TypeError(f"layer {self.name!r} weight {key}: expected a float array, got dtype {w.dtype}")
            if w.shape != p.shape:
                raise ValueError(f"layer {self.name!r} weight {key}: expected shape {p.shape}, got {w.shape}")
            arrays.append(w)
        for p, w in zip(self._params.values(), arrays):
            p[...] = w  # in place: the model's flat parameter buffer stays shared

    def _bind_params(self, views: dict[str, np.ndarray], grad_views: dict[str, np.ndarray] | None = None) -> None:
        # The model moves the weights into one flat buffer; the layer then works on views of it, and
        # writes its gradients into views of the model's flat gradient buffer (no concatenate per step).
        self._params = views
        self._grad_views = grad_views

    # ------------------------------------------------------------------ protocol
    def build(self, input_shape: tuple, dtype: Any = "float32", rng: np.random.Generator | None = None) -> None:
        self.input_shape = tuple(input_shape)
        self.dtype = _float_dtype(dtype)
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool = False, rng: np.random.Generator | None = None) -> Any:
        raise NotImplementedError

    def backward(self, dy: np.ndarray, need_dx: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    def step(self, x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """One time step of inference: (B, F) or (B,) ids in, (B, F') out; ``state`` is the layer's own."""
        raise NotImplementedError(f"{type(self).__name__} has no step(): it cannot be used by generate")

    def __call__(self, x: Any, training: bool = False, rng: np.random.Generator | None = None, **kwargs: Any) -> Any:
        """Forward (extra keywords go to ``forward``), building first if needed: from ``x``'s shape, in
        float32 unless x is float64."""
        x = np.asarray(x)
        if not self.built:
            dtype = x.dtype if x.dtype in _FLOATS else np.dtype(np.float32)
            self.build(x.shape[1:], dtype, np.random.default_rng())
        return self.forward(x, training=training, rng=rng, **kwargs)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        return {"class_name": type(self).__name__, "name": self._name}

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(**{k: v for k, v in config.items() if k != "class_name"})

    def _repr_extra(self) -> str:
        return ""

    def __repr__(self) -> str:
        parts = [p for p in (self._repr_extra(),) if p]
        if self.built:
            parts.append(str(self.dtype))
        return f"{type(self).__name__}({', '.join(parts)})"


# --------------------------------------------------------------------------- #
# LSTM
# --------------------------------------------------------------------------- #
class LSTM(Layer):
    """A long short-term memory layer running on ``pylstm.lstm_forward`` / ``lstm_backward``.

    Parameters
    ----------
    units : int
        H, the size of h and c.
    return_sequences : bool
        Output h at every step (B, T, H); else the last step's h (B, H).
    return_state : bool
        Also return the final (h, c): the output is then ``(out, h_T, c_T)``.  In a
        Sequential model only the last layer may do this (``predict`` returns the
        three arrays, the loss sees ``out``).
    stateful : bool
        Carry the final (h, c) of a batch over as the next batch's initial state
        (truncated BPTT on a stream); ``reset_states()`` zeroes it.  The batch size
        is then fixed by the first batch.
    vocab_size : int, optional
        Take integer token ids (B, T) in [0, V) instead of features; ``W_ih`` is
        (4H, V) and the kernel gathers its columns (no one-hot is built).
    dropout : float
        Drop inputs with this rate during training, with one mask per sequence
        (the same features at every step), scaled by 1 / (1 - rate).
    grad_clip : float, optional
        Clip the gradient w.r.t. the gate pre-activations at every step (the kernel's ``clip``).
    kernel_initializer, recurrent_initializer : str, dict or Initializer
        For ``W_ih`` (default glorot_uniform) and ``W_hh`` (default orthogonal).
    forget_bias : float
        Added to the forget block of ``b_ih``; other biases start at 0 (Keras' ``unit_forget_bias``).
    name : str, optional

    Weights: ``W_ih`` (4H, I), ``W_hh`` (4H, H), ``b_ih`` (4H,), ``b_hh`` (4H,), gate order i, f, g, o.
    """

    _param_names = ("W_ih", "W_hh", "b_ih", "b_hh")

    def __init__(self, units: int, return_sequences: bool = False, return_state: bool = False,
                 stateful: bool = False, vocab_size: int | None = None, dropout: float = 0.0,
                 grad_clip: float | None = None, kernel_initializer: Any = "glorot_uniform",
                 recurrent_initializer: Any = "orthogonal", forget_bias: float = 1.0, name: str | None = None):
        super().__init__(name)
        self.units = _positive_int("units", units)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.stateful = bool(stateful)
        self.vocab_size = None if vocab_size is None else _positive_int("vocab_size", vocab_size)
        self.dropout = _rate("dropout", dropout)
        if grad_clip is not None and (isinstance(grad_clip, bool) or not isinstance(grad_clip, numbers.Real)
                                      or not grad_clip > 0):
            raise ValueError(f"grad_clip must be a number > 0 or None, got {grad_clip!r}")
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self.recurrent_initializer = _initializers.get(recurrent_initializer)
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real):
            raise ValueError(f"forget_bias must be a number, got {forget_bias!r}")
        self.forget_bias = float(forget_bias)
        self.states: tuple[np.ndarray, np.ndarray] | None = None  # carried (h, c) when stateful
        self._cache: Any = None

    @property
    def input_dim(self) -> int | None:
        """I: the feature count (V for token ids), once built."""
        return self._params["W_ih"].shape[1] if self.built else self.vocab_size

    def build(self, input_shape, dtype="float32", rng=None):
        input_shape = tuple(input_shape)
        if self.vocab_size is not None:
            if len(input_shape) != 1:
                raise ValueError(f"LSTM {self.name!r} has vocab_size={self.vocab_size}: it takes token ids of shape "
                                 f"(B, T), got per-sample shape {_shape_text(input_shape)} (features?)")
            I = self.vocab_size
        else:
            if len(input_shape) != 2 or input_shape[-1] is None:
                raise ValueError(f"LSTM {self.name!r} takes sequences (B, T, features), got per-sample shape "
                                 f"{_shape_text(input_shape)} (token ids? give the LSTM vocab_size=V)")
            I = int(input_shape[-1])
        super().build(input_shape, dtype, rng)
        rng = rng if rng is not None else np.random.default_rng()
        H, dt = self.units, self.dtype
        b_ih = np.zeros(4 * H, dt)
        b_ih[H: 2 * H] = self.forget_bias
        self._params = {
            "W_ih": np.ascontiguousarray(self.kernel_initializer((4 * H, I), dt, rng)),
            "W_hh": np.ascontiguousarray(self.recurrent_initializer((4 * H, H), dt, rng)),
            "b_ih": b_ih,
            "b_hh": np.zeros(4 * H, dt),
        }
        self.states = None

    def compute_output_shape(self, input_shape):
        T = tuple(input_shape)[0]
        return (T, self.units) if self.return_sequences else (self.units,)

    # ------------------------------------------------------------------ state
    def reset_states(self) -> None:
        """Forget the carried state (the next batch starts from zeros)."""
        self.states = None

    def _initial(self, B: int, use_carried: bool, initial_state: Any):
        if initial_state is not None:
            h0, c0 = initial_state
            return h0, c0
        if self.stateful and use_carried and self.states is not None:
            h0, c0 = self.states
            if h0.shape[0] != B:
                raise ValueError(f"stateful LSTM {self.name!r}: the carried state is for batch size {h0.shape[0]}, "
                                 f"got a batch of {B}; a stateful model keeps the batch size of its first batch "
                                 "(call reset_states() to start a new stream)")
            return h0, c0
        return None, None

    # ------------------------------------------------------------------ forward / backward
    def _inputs(self, x: Any) -> np.ndarray:
        x = np.asarray(x)
        if self.vocab_size is not None:
            if x.ndim != 2:
                raise ValueError(f"LSTM {self.name!r} takes token ids of shape (B, T), got {x.shape}")
            return _check_ids(f"LSTM {self.name!r}", x, self.vocab_size)
        I = self._params["W_ih"].shape[1]
        if x.ndim != 3 or x.shape[2] != I:
            raise ValueError(f"LSTM {self.name!r} expects input of shape (B, T, {I}), got {x.shape}")
        return x

    def forward(self, x, training=False, rng=None, initial_state=None, use_carried=True):
        """Run the layer; returns out, or ``(out, h_T, c_T)`` with return_state.

        ``initial_state=(h0, c0)`` overrides the carried state; ``use_carried=False``
        makes a stateful layer start from zeros and leave its carried state alone.
        """
        x = self._inputs(x)
        p, backend = self._params, _backend()
        B = x.shape[0]
        h0, c0 = self._initial(B, use_carried, initial_state)
        ids = self.vocab_size is not None
        mask = None
        if training and self.dropout > 0:
            rng = rng if rng is not None else np.random.default_rng()
            I = p["W_ih"].shape[1]
            keep = rng.random((B, 1, I), dtype=self.dtype) >= self.dropout
            mask = keep.astype(self.dtype) * (1.0 / (1.0 - self.dropout))  # (B, 1, I): one mask per sequence
            if ids:  # one-hot × mask: the kernel's ids path cannot scale a gathered column
                onehot = np.zeros((B, x.shape[1], I), self.dtype)
                np.put_along_axis(onehot, x[..., None].astype(np.intp), 1, axis=-1)
                x, ids = onehot, False
            x = x * mask
        fwd = backend.lstm_forward_ids if ids else backend.lstm_forward
        y, h_T, c_T, cache = fwd(x, p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"], h0=h0, c0=c0, need_cache=training)
        self._cache = (backend, cache, mask) if training else None
        if self.stateful and use_carried and initial_state is None:
            self.states = (h_T, c_T)
        out = y if self.return_sequences else h_T
        return (out, h_T, c_T) if self.return_state else out

    def backward(self, dy, need_dx=True, dh_T=None, dc_T=None):
        """Gradients from dLoss/d(out) (and optionally dLoss/dh_T, dLoss/dc_T); returns dx (None for ids)."""
        if self._cache is None:
            raise RuntimeError(f"LSTM {self.name!r}: backward needs a forward with training=True first")
        backend, cache, mask = self._cache
        self._cache = None  # the kernel's cache is used once
        dt = self.dtype
        if dy is not None:
            dy = np.ascontiguousarray(dy, dtype=dt)
        if self.return_sequences:
            seq_grad = dy
        else:
            seq_grad = None
            if dy is not None:  # out = h_T: its gradient joins dh_T
                dh_T = dy if dh_T is None else dy + np.asarray(dh_T, dt)
        if dh_T is not None:
            dh_T = np.ascontiguousarray(dh_T, dtype=dt)
        if dc_T is not None:
            dc_T = np.ascontiguousarray(dc_T, dtype=dt)
        g = backend.lstm_backward(cache, seq_grad, dh_T, dc_T, clip=self.grad_clip)
        views = self._grad_views
        if views is None:
            self.grads = {"W_ih": g.dW_ih, "W_hh": g.dW_hh, "b_ih": g.db_ih, "b_hh": g.db_hh}
        else:  # the kernel returns fresh arrays: one copy into the model's buffer (as concatenate did)
            views["W_ih"][...] = g.dW_ih
            views["W_hh"][...] = g.dW_hh
            views["b_ih"][...] = g.db_ih
            views["b_hh"][...] = g.db_hh
            self.grads = dict(views)  # a dict of its own: the layer's bindings stay private
            # Hold the kernel's arrays until the next backward, as ``grads`` did when it was them: they are the
            # step's last allocations, and while they live glibc cannot trim the ~1.5 MB the step freed below
            # them, memory it otherwise hands back to the OS and page-faults in again at the next forward
            # (measured without torch loaded: 100-400 faults, 0.1-0.5 ms per parity-model step).
            self._kernel_grads = g
        self.initial_state_grads = (g.dh0, g.dc0)
        if self.vocab_size is not None or not need_dx or g.dx is None:
            return None
        return g.dx * mask if mask is not None else g.dx

    def step(self, x_t, state):
        """One step from (B, I) features or (B,) ids; ``state`` is (h, c) or None (zeros)."""
        p, backend = self._params, _backend()
        h, c = state if state is not None else (None, None)
        if self.vocab_size is not None:
            h, c = backend.lstm_step_ids(x_t, p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"], h, c)
        else:
            h, c = backend.lstm_step(x_t, p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"], h, c)
        return h, (h, c)

    def _run_sequence(self, x, state=None):
        """Inference over a whole sequence with an explicit state: (y (B, T, H), (h_T, c_T))."""
        x = self._inputs(x)
        p, backend = self._params, _backend()
        h0, c0 = state if state is not None else (None, None)
        fwd = backend.lstm_forward_ids if self.vocab_size is not None else backend.lstm_forward
        y, h_T, c_T, _ = fwd(x, p["W_ih"], p["W_hh"], p["b_ih"], p["b_hh"], h0=h0, c0=c0, need_cache=False)
        return y, (h_T, c_T)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "stateful": self.stateful, "vocab_size": self.vocab_size,
                "dropout": self.dropout, "grad_clip": self.grad_clip,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": _initializers.serialize(self.recurrent_initializer),
                "forget_bias": self.forget_bias}

    def _repr_extra(self):
        parts = [f"units={self.units}"]
        if self.built:
            parts.append(f"vocab={self.vocab_size}" if self.vocab_size else f"input={self.input_dim}")
        for flag in ("return_sequences", "return_state", "stateful"):
            if getattr(self, flag):
                parts.append(f"{flag}=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout:g}")
        if self.grad_clip:
            parts.append(f"grad_clip={self.grad_clip:g}")
        return ", ".join(parts)

    def __repr__(self):
        r = super().__repr__()
        return r[:-1] + f", {_backend_name()})" if self.built else r


# --------------------------------------------------------------------------- #
# Dense
# --------------------------------------------------------------------------- #
class Dense(Layer):
    """``activation(x Wᵀ + b)`` on (B, F) input, or at every step of (B, T, F) input.

    Parameters
    ----------
    units : int
    activation : {None, "linear", "sigmoid", "softmax", "tanh", "relu"}
    kernel_initializer : str, dict or Initializer
        For ``W`` (units, F); ``b`` starts at 0.
    """

    _param_names = ("W", "b")

    def __init__(self, units: int, activation: str | None = None, kernel_initializer: Any = "glorot_uniform",
                 name: str | None = None):
        super().__init__(name)
        self.units = _positive_int("units", units)
        self.activation, self._act = _activations.get(activation)
        self.kernel_initializer = _initializers.get(kernel_initializer)
        self._cache: Any = None

    def build(self, input_shape, dtype="float32", rng=None):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (1, 2) or input_shape[-1] is None:
            raise ValueError(f"Dense {self.name!r} takes (B, F) or (B, T, F) input, got per-sample shape "
                             f"{_shape_text(input_shape)}")
        super().build(input_shape, dtype, rng)
        rng = rng if rng is not None else np.random.default_rng()
        F = int(input_shape[-1])
        self._params = {"W": np.ascontiguousarray(self.kernel_initializer((self.units, F), self.dtype, rng)),
                        "b": np.zeros(self.units, self.dtype)}

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)

    def forward(self, x, training=False, rng=None, logits=False):
        """``logits=True`` skips the activation (the model fuses it with the loss)."""
        W, b = self._params["W"], self._params["b"]
        x = np.asarray(x)
        F = W.shape[1]
        if x.ndim not in (2, 3) or x.shape[-1] != F:
            raise ValueError(f"Dense {self.name!r} expects input of shape (B, {F}) or (B, T, {F}), got {x.shape}")
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        x2 = x.reshape(-1, F)
        z = x2 @ W.T
        z += b
        z = z.reshape(x.shape[:-1] + (self.units,))
        apply = self._act is not None and not logits
        out = self._act[0](z) if apply else z
        self._cache = (x2, out if apply else None) if training else None
        return out

    def backward(self, dy, need_dx=True):
        if self._cache is None:
            raise RuntimeError(f"Dense {self.name!r}: backward needs a forward with training=True first")
        x2, out = self._cache
        self._cache = None
        if out is not None:  # through the activation (not taken when the loss got the logits)
            dy = self._act[1](out, dy)
        W = self._params["W"]
        dz = dy.reshape(-1, self.units)
        views = self._grad_views
        if views is None:
            self.grads = {"W": dz.T @ x2, "b": dz.sum(axis=0)}
        else:  # straight into the model's gradient buffer
            np.matmul(dz.T, x2, out=views["W"])
            np.add.reduce(dz, axis=0, out=views["b"])
            self.grads = dict(views)  # a dict of its own: the layer's bindings stay private
        if not need_dx:
            return None
        return (dz @ W).reshape(dy.shape[:-1] + (W.shape[1],))

    def step(self, x_t, state):
        return self.forward(x_t), state

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "kernel_initializer": _initializers.serialize(self.kernel_initializer)}

    def _repr_extra(self):
        parts = [f"units={self.units}"]
        if self.activation:
            parts.append(self.activation)
        if self.built:
            parts.append(f"input={self._params['W'].shape[1]}")
        return ", ".join(parts)


# --------------------------------------------------------------------------- #
# Embedding
# --------------------------------------------------------------------------- #
class Embedding(Layer):
    """Token ids (B, T) -> vectors (B, T, dim): row ``id`` of ``W`` (vocab, dim).

    (An ``LSTM(vocab_size=V)`` does the same inside the kernel without the extra layer.)
    """

    _param_names = ("W",)

    def __init__(self, vocab: int, dim: int, embeddings_initializer: Any = "uniform", name: str | None = None):
        super().__init__(name)
        self.vocab = _positive_int("vocab", vocab)
        self.dim = _positive_int("dim", dim)
        self.embeddings_initializer = _initializers.get(embeddings_initializer)
        self._cache: Any = None

    def build(self, input_shape, dtype="float32", rng=None):
        input_shape = tuple(input_shape)
        if len(input_shape) != 1:
            raise ValueError(f"Embedding {self.name!r} takes token ids of shape (B, T), got per-sample shape "
                             f"{_shape_text(input_shape)}")
        super().build(input_shape, dtype, rng)
        rng = rng if rng is not None else np.random.default_rng()
        self._params = {"W": np.ascontiguousarray(
            self.embeddings_initializer((self.vocab, self.dim), self.dtype, rng))}

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.dim,)

    def forward(self, x, training=False, rng=None):
        ids = _check_ids(f"Embedding {self.name!r}", np.asarray(x), self.vocab)
        self._cache = ids if training else None
        return self._params["W"][ids]

    def backward(self, dy, need_dx=True):
        if self._cache is None:
            raise RuntimeError(f"Embedding {self.name!r}: backward needs a forward with training=True first")
        ids, self._cache = self._cache, None
        views = self._grad_views
        if views is None:
            dW = np.zeros_like(self._params["W"])
        else:
            dW = views["W"]
            dW.fill(0)
        np.add.at(dW, ids.reshape(-1), dy.reshape(-1, self.dim))  # repeated ids add up
        self.grads = {"W": dW}
        return None

    def step(self, x_t, state):
        ids = _check_ids(f"Embedding {self.name!r}", np.asarray(x_t), self.vocab)
        return self._params["W"][ids], state

    def get_config(self):
        return {**super().get_config(), "vocab": self.vocab, "dim": self.dim,
                "embeddings_initializer": _initializers.serialize(self.embeddings_initializer)}

    def _repr_extra(self):
        return f"vocab={self.vocab}, dim={self.dim}"


# --------------------------------------------------------------------------- #
# Dropout
# --------------------------------------------------------------------------- #
class Dropout(Layer):
    """Zero each input element with probability ``rate`` during training, scaling the rest by 1 / (1 - rate)."""

    def __init__(self, rate: float, name: str | None = None):
        super().__init__(name)
        self.rate = _rate("rate", rate)
        self._mask: np.ndarray | None = None

    def forward(self, x, training=False, rng=None):
        x = np.asarray(x)
        if not training or self.rate == 0:
            self._mask = None
            return x
        rng = rng if rng is not None else np.random.default_rng()
        keep = rng.random(x.shape, dtype=self.dtype) >= self.rate
        self._mask = keep.astype(self.dtype) * (1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, dy, need_dx=True):
        return dy * self._mask if self._mask is not None else dy

    def step(self, x_t, state):
        return x_t, state

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}

    def _repr_extra(self):
        return f"rate={self.rate:g}"


_BY_CLASS: dict[str, type[Layer]] = {c.__name__: c for c in (LSTM, Dense, Embedding, Dropout)}


def layer_from_config(config: dict, custom_objects: dict | None = None) -> Layer:
    """Rebuild an (unbuilt) layer from ``get_config()``; custom layer classes come from ``custom_objects``.

    Raises
    ------
    ValueError
        Unknown ``class_name``.
    """
    cls, kwargs = class_from_config(config, "a layer", _BY_CLASS, custom_objects)
    for key in ("kernel_initializer", "recurrent_initializer", "embeddings_initializer"):
        if isinstance(kwargs.get(key), dict):
            kwargs[key] = _initializers.get(kwargs[key], custom_objects)
    return cls(**kwargs)
