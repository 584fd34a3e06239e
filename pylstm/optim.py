"""Optimizers: SGD (momentum, Nesterov), RMSprop, Adagrad, Adam, AdamW.

Each works on one flat vector of parameters and one of gradients (the model
keeps every weight as a view into a single buffer), so an update is a dozen
NumPy calls whatever the number of layers.  ``apply_gradients(params, grads)``
does the same on lists of arrays.

Order inside one update (g = gradient, t = update number from 1, lr = the
learning rate of this update, ``lr(t - 1)`` for a schedule):

1. ``clipvalue``: g = clip(g, -clipvalue, clipvalue) elementwise;
2. ``clipnorm``: if ‖g‖ > clipnorm (global L2 norm over every parameter),
   g *= clipnorm / ‖g‖;
3. the rule::

    SGD        v = μ v - lr g;  p += v            (Nesterov: p += μ v - lr g);  μ = 0: p -= lr g
    RMSprop    a = ρ a + (1 - ρ) g²;  p -= lr g / (sqrt(a) + ε)
    Adagrad    a += g²;  p -= lr g / (sqrt(a) + ε)        (a starts at initial_accumulator_value)
    Adam       m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²
               p -= lr m̂ / (sqrt(v̂) + ε),  m̂ = m / (1 - β1ᵗ), v̂ = v / (1 - β2ᵗ)   (Kingma & Ba; PyTorch)
    AdamW      p -= lr λ p, then Adam                  (decoupled weight decay, Loshchilov & Hutter)

Defaults are Keras' (Adam ε = 1e-7, Adagrad's accumulator starts at 0.1).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np

from ._registry import class_from_config
from . import schedules as _schedules
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "SGD", "RMSprop", "Adagrad", "Adam", "AdamW", "get", "optimizer_from_config"]


def _number(name: str, value: Any, lo: float, hi: float = math.inf, *, lo_open: bool = False,
            hi_open: bool = False) -> float:
    ok = (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
          and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi))
    if not ok:
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be a number in {left}{lo:g}, {hi:g}{right}, got {value!r}")
    return float(value)


def _optional_positive(name: str, value: Any) -> float | None:
    return None if value is None else _number(name, value, 0.0, lo_open=True)


_ALIGN = 64  # bytes: a cache line, one AVX-512 vector


def _aligned_empty(size: int, dtype: Any) -> np.ndarray:
    """An uninitialized 1-D array whose data starts on a 64-byte boundary.

    NumPy only promises 16 bytes; the whole-buffer passes of an update run a
    little faster (1-3 us of Adam's ~30 on the 20k-weight parity model) when no
    vector load straddles two cache lines.  Used for the optimizer's slots and
    scratch and the model's flat weight and gradient buffers.
    """
    dtype = np.dtype(dtype)
    nbytes = int(size) * dtype.itemsize
    raw = np.empty(nbytes + _ALIGN, np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start: start + nbytes].view(dtype)


class Optimizer:
    """Base class.

    Parameters
    ----------
    lr : float, LearningRateSchedule or callable(step) -> float
        The learning rate (``learning_rate=`` is accepted too).
    clipnorm : float, optional
        Rescale the gradient when its global L2 norm exceeds this.
    clipvalue : float, optional
        Clip every gradient element to [-clipvalue, clipvalue].

    Attributes
    ----------
    iterations : int
        Updates done so far (the model's ``step``).
    """

    _slots: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init__(self, lr: Any = 0.01, clipnorm: float | None = None, clipvalue: float | None = None,
                 *, learning_rate: Any = None):
        if learning_rate is not None:
            lr = learning_rate
        self.lr = lr
        self.clipnorm = _optional_positive("clipnorm", clipnorm)
        self.clipvalue = _optional_positive("clipvalue", clipvalue)
        self.iterations = 0
        self._shapes: list[tuple[int, ...]] | None = None
        self._state: dict[str, np.ndarray] = {}  # slot name -> flat array
        self._pending: dict[str, Any] | None = None
        self._tmp: np.ndarray | None = None

    # ------------------------------------------------------------------ learning rate
    @property
    def lr(self) -> float | LearningRateSchedule | Callable[[int], float]:
        return self._lr

    @lr.setter
    def lr(self, value: Any) -> None:
        if isinstance(value, LearningRateSchedule) or (callable(value) and not isinstance(value, numbers.Real)):
            self._lr = value
        else:
            self._lr = _number("lr", value, 0.0, lo_open=True)

    learning_rate = lr

    def current_lr(self) -> float:
        """The learning rate the next update will use."""
        if isinstance(self._lr, float):
            return self._lr
        value = self._lr(self.iterations)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise ValueError(f"the learning-rate schedule gave {value!r} at step {self.iterations}; "
                             "it must return a finite number >= 0")
        return float(value)

    # ------------------------------------------------------------------ building
    def build(self, shapes: list[tuple[int, ...]], dtype: Any) -> None:
        """Allocate the slots for parameters of these shapes (in this order), flat, in ``dtype``.

        Called by the model at its first update; calling it again with the same
        shapes keeps the state.

        Raises
        ------
        ValueError
            The optimizer already holds state for other shapes (another model).
        """
        shapes = [tuple(int(d) for d in s) for s in shapes]
        dtype = np.dtype(dtype)
        if self._shapes is not None:
            if shapes != self._shapes:
                raise ValueError("this optimizer already holds state for parameters of other shapes "
                                 "(another model?): give each model its own optimizer")
            return
        self._shapes = shapes
        size = sum(math.prod(s) for s in shapes)
        self._state = {name: self._slot_init(size, dtype) for name in self._slots}
        self._tmp = _aligned_empty(size, dtype)  # scratch for the update's passes
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self.set_state(pending)

    def _slot_init(self, size: int, dtype: np.dtype) -> np.ndarray:
        slot = _aligned_empty(size, dtype)
        slot.fill(0)
        return slot

    @property
    def built(self) -> bool:
        return self._shapes is not None

    # ------------------------------------------------------------------ updates
    def apply_gradients(self, params: list[np.ndarray], grads: list[np.ndarray]) -> float:
        """Update the arrays ``params`` in place from ``grads`` (same shapes). Returns the lr used."""
        if len(params) != len(grads):
            raise ValueError(f"got {len(params)} parameters and {len(grads)} gradients")
        for k, (p, g) in enumerate(zip(params, grads)):
            if np.shape(p) != np.shape(g):
                raise ValueError(f"parameter {k} has shape {np.shape(p)} but its gradient {np.shape(g)}")
        self.build([p.shape for p in params], params[0].dtype)
        flat_p = np.concatenate([p.ravel() for p in params])
        flat_g = np.concatenate([np.asarray(g, flat_p.dtype).ravel() for g in grads])
        lr = self._step_flat(flat_p, flat_g)
        offset = 0
        for p in params:
            p[...] = flat_p[offset: offset + p.size].reshape(p.shape)
            offset += p.size
        return lr

    def _step_flat(self, p: np.ndarray, g: np.ndarray, grad_norm: float | None = None) -> float:
        """One update of the flat parameters ``p`` from the flat gradient ``g`` (clipped in place).

        ``grad_norm`` is ‖g‖ if the caller has it already.  Returns the learning rate used.
        """
        lr = self.current_lr()
        if self.clipvalue is not None:
            np.clip(g, -self.clipvalue, self.clipvalue, out=g)
            grad_norm = None
        if self.clipnorm is not None:
            if grad_norm is None:
                grad_norm = math.sqrt(float(np.dot(g, g)))
            if grad_norm > self.clipnorm:
                g *= self.clipnorm / grad_norm
        self.iterations += 1
        self._update(p, g, lr, self.iterations)
        return lr

    def _update(self, p: np.ndarray, g: np.ndarray, lr: float, t: int) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def _layout(self) -> list[tuple[int, tuple[int, ...]]]:
        out, offset = [], 0
        for s in self._shapes or []:
            out.append((offset, s))
            offset += math.prod(s)
        return out

    def get_state(self) -> dict[str, np.ndarray | int | float]:
        """``{"iterations": int, "lr": float (if a plain float), "<slot>.<k>": array}``, k in weight order (copies)."""
        state: dict[str, Any] = {"iterations": int(self.iterations)}
        if isinstance(self._lr, float):
            state["lr"] = self._lr
        if self._shapes is None:
            if self._pending:  # set but not yet built: hand back what we were given
                state.update({k: v for k, v in self._pending.items() if k not in ("iterations", "lr")})
            return state
        for name, flat in self._state.items():
            for k, (offset, shape) in enumerate(self._layout()):
                state[f"{name}.{k}"] = flat[offset: offset + math.prod(shape)].reshape(shape).copy()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore ``get_state()``'s dict; before ``build`` the slots are kept and checked at build.

        Raises
        ------
        ValueError
            A slot array of the wrong shape or count, or an unknown key.
        """
        state = dict(state)
        if "iterations" in state:
            it = np.asarray(state["iterations"])
            if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
                raise ValueError(f"iterations must be an int >= 0, got {state['iterations']!r}")
            self.iterations = int(it)
        if "lr" in state and isinstance(self._lr, float):
            self.lr = float(state["lr"])
        slots = {k: v for k, v in state.items() if k not in ("iterations", "lr")}
        for key in slots:
            name = key.rsplit(".", 1)[0]
            if name not in self._slots:
                raise ValueError(f"optimizer state key {key!r} is not a slot of {type(self).__name__} "
                                 f"(slots: {', '.join(self._slots) or 'none'})")
        if self._shapes is None:
            self._pending = slots or None
            return
        layout = self._layout()
        for name in self._slots:
            keys = [f"{name}.{k}" for k in range(len(layout))]
            present = [k for k in keys if k in slots]
            if not present:
                continue
            if len(present) != len(keys):
                raise ValueError(f"optimizer state has {len(present)} arrays for slot {name!r}, "
                                 f"the model has {len(keys)} parameters")
            for key, (offset, shape) in zip(keys, layout):
                a = np.asarray(slots[key])
                if a.shape != shape:
                    raise ValueError(f"optimizer state {key!r} has shape {a.shape}, the parameter is {shape}")
                self._state[name][offset: offset + a.size] = a.ravel()

    # ------------------------------------------------------------------ config
    def _hyper(self) -> dict[str, Any]:
        return {}

    def get_config(self) -> dict:
        """Flat JSON-able dict: class_name, lr (float or schedule config), hyper-parameters, clipping."""
        return {"class_name": type(self).__name__, "lr": _schedules.serialize(self._lr), **self._hyper(),
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue}

    def __repr__(self) -> str:
        parts = [f"lr={self._lr!r}"] + [f"{k}={v!r}" for k, v in self._hyper().items()]
        parts += [f"{k}={v!r}" for k, v in (("clipnorm", self.clipnorm), ("clipvalue", self.clipvalue)) if v is not None]
        return f"{type(self).__name__}({', '.join(parts)}, step={self.iterations})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    def __init__(self, lr: Any = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 clipnorm: float | None = None, clipvalue: float | None = None, *, learning_rate: Any = None):
        super().__init__(lr, clipnorm, clipvalue, learning_rate=learning_rate)
        self.momentum = _number("momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self._slots = ("momentum",) if self.momentum > 0 else ()

    def _update(self, p, g, lr, t):
        if not self._slots:
            g *= lr
            p -= g
            return
        v = self._state["momentum"]
        v *= self.momentum
        g *= lr
        v -= g  # v = μ v - lr g
        if self.nesterov:
            p -= g
            np.multiply(v, self.momentum, out=g)
            p += g  # p += μ v - lr g
        else:
            p += v

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


def _scaled_step(p, g, a, tmp, lr, epsilon) -> None:
    """p -= lr · g / (sqrt(a) + ε), in place through ``tmp`` (RMSprop's and Adagrad's shared last step)."""
    np.sqrt(a, out=tmp)
    tmp += epsilon
    np.divide(g, tmp, out=tmp)
    tmp *= lr
    p -= tmp


class RMSprop(Optimizer):
    """Divide by a running RMS of the gradient (Hinton's lecture 6e)."""

    _slots = ("rms",)

    def __init__(self, lr: Any = 0.001, rho: float = 0.9, epsilon: float = 1e-7,
                 clipnorm: float | None = None, clipvalue: float | None = None, *, learning_rate: Any = None):
        super().__init__(lr, clipnorm, clipvalue, learning_rate=learning_rate)
        self.rho = _number("rho", rho, 0.0, 1.0, hi_open=True)
        self.epsilon = _number("epsilon", epsilon, 0.0, lo_open=True)

    def _update(self, p, g, lr, t):
        a, tmp = self._state["rms"], self._tmp
        a *= self.rho
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.rho
        a += tmp
        _scaled_step(p, g, a, tmp, lr, self.epsilon)

    def _hyper(self):
        return {"rho": self.rho, "epsilon": self.epsilon}


class Adagrad(Optimizer):
    """Divide by the root of the summed squared gradients (Duchi et al. 2011)."""

    _slots = ("accumulator",)

    def __init__(self, lr: Any = 0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 clipnorm: float | None = None, clipvalue: float | None = None, *, learning_rate: Any = None):
        super().__init__(lr, clipnorm, clipvalue, learning_rate=learning_rate)
        self.initial_accumulator_value = _number("initial_accumulator_value", initial_accumulator_value, 0.0)
        self.epsilon = _number("epsilon", epsilon, 0.0, lo_open=True)

    def _slot_init(self, size, dtype):
        slot = _aligned_empty(size, dtype)
        slot.fill(self.initial_accumulator_value)
        return slot

    def _update(self, p, g, lr, t):
        a, tmp = self._state["accumulator"], self._tmp
        np.multiply(g, g, out=tmp)
        a += tmp
        _scaled_step(p, g, a, tmp, lr, self.epsilon)

    def _hyper(self):
        return {"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon}


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba 2015), ε added to sqrt(v̂) as in PyTorch."""

    _slots = ("m", "v")

    def __init__(self, lr: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 clipnorm: float | None = None, clipvalue: float | None = None, *, learning_rate: Any = None):
        super().__init__(lr, clipnorm, clipvalue, learning_rate=learning_rate)
        self.beta_1 = _number("beta_1", beta_1, 0.0, 1.0, hi_open=True)
        self.beta_2 = _number("beta_2", beta_2, 0.0, 1.0, hi_open=True)
        self.epsilon = _number("epsilon", epsilon, 0.0, lo_open=True)

    def _update(self, p, g, lr, t):
        m, v, tmp = self._state["m"], self._state["v"], self._tmp
        b1, b2 = self.beta_1, self.beta_2
        m *= b1
        np.multiply(g, 1.0 - b1, out=tmp)
        m += tmp  # m = β1 m + (1-β1) g
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp  # v = β2 v + (1-β2) g²
        # lr m̂ / (sqrt(v̂) + ε) = lr k / (1-β1ᵗ) · m / (sqrt(v) + ε k),  k = sqrt(1-β2ᵗ)  (Kingma & Ba,
        # section 2's ordering, with ε k for their ε̂ so the maths stays PyTorch's): one pass fewer.
        k = math.sqrt(1.0 - b2 ** t)
        np.sqrt(v, out=tmp)
        tmp += self.epsilon * k
        np.divide(m, tmp, out=tmp)
        tmp *= lr * k / (1.0 - b1 ** t)
        p -= tmp

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p -= lr * weight_decay * p`` before the Adam step (all weights)."""

    def __init__(self, lr: Any = 0.001, weight_decay: float = 0.004, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, clipnorm: float | None = None, clipvalue: float | None = None,
                 *, learning_rate: Any = None):
        super().__init__(lr, beta_1, beta_2, epsilon, clipnorm, clipvalue, learning_rate=learning_rate)
        self.weight_decay = _number("weight_decay", weight_decay, 0.0)

    def _update(self, p, g, lr, t):
        if self.weight_decay:
            p *= 1.0 - lr * self.weight_decay
        super()._update(p, g, lr, t)

    def _hyper(self):
        return {"weight_decay": self.weight_decay, **super()._hyper()}


_BY_CLASS: dict[str, type[Optimizer]] = {c.__name__: c for c in (SGD, RMSprop, Adagrad, Adam, AdamW)}
_BY_NAME = {name.lower(): cls for name, cls in _BY_CLASS.items()}


def get(identifier: Any) -> Optimizer:
    """An optimizer from a name (with its defaults) or an Optimizer (returned as is).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}; known: {', '.join(sorted(_BY_NAME))}")
        return cls()
    if isinstance(identifier, dict):
        return optimizer_from_config(identifier)
    raise TypeError(f"optimizer must be a name or a pylstm.optim.Optimizer, got {identifier!r}")


def optimizer_from_config(config: dict, custom_objects: dict | None = None) -> Optimizer:
    """Rebuild an optimizer from ``get_config()``: custom optimizers, schedules and lr functions come by name
    from ``custom_objects``.

    Raises
    ------
    ValueError
        Unknown class or lr function name.
    """
    cls, kwargs = class_from_config(config, "an optimizer", _BY_CLASS, custom_objects)
    kwargs["lr"] = _schedules.deserialize(kwargs.get("lr", 0.01), custom_objects)
    return cls(**kwargs)


# the schedules live in their own module; re-exported here so ``pl.optim.ExponentialDecay`` works
from .schedules import CosineDecay, ExponentialDecay, StepDecay  # noqa: E402

__all__ += ["LearningRateSchedule", "ExponentialDecay", "StepDecay", "CosineDecay"]
