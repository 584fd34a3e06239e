"""Learning-rate schedules: pure functions of the optimizer step, with a JSON config.

``schedule(step)`` is the learning rate of update number ``step`` (0 for the
first update), so a schedule has no state beyond the optimizer's step count,
and a resumed run picks up exactly where it stopped.  Any callable
``f(step) -> float`` works as a schedule too; it is saved by its name and
passed again at load time (``load_model(path, custom_objects={"f": f})``).
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable

__all__ = ["LearningRateSchedule", "ExponentialDecay", "StepDecay", "CosineDecay", "serialize", "deserialize"]


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float`` and ``get_config()`` (the constructor's arguments)."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()


class ExponentialDecay(LearningRateSchedule):
    """``initial_lr * decay_rate ** (step / decay_steps)`` (the exponent floored with ``staircase``)."""

    def __init__(self, initial_lr: float, decay_steps: int, decay_rate: float, staircase: bool = False):
        self.initial_lr = _positive("initial_lr", initial_lr)
        self.decay_steps = _positive_int("decay_steps", decay_steps)
        self.decay_rate = _positive("decay_rate", decay_rate)
        self.staircase = bool(staircase)

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_lr * self.decay_rate ** p

    def get_config(self) -> dict:
        return {"initial_lr": self.initial_lr, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase}


class StepDecay(LearningRateSchedule):
    """``initial_lr * gamma ** (step // step_size)``: drop by ``gamma`` every ``step_size`` updates."""

    def __init__(self, initial_lr: float, step_size: int, gamma: float = 0.1):
        self.initial_lr = _positive("initial_lr", initial_lr)
        self.step_size = _positive_int("step_size", step_size)
        self.gamma = _positive("gamma", gamma)

    def __call__(self, step: int) -> float:
        return self.initial_lr * self.gamma ** (step // self.step_size)

    def get_config(self) -> dict:
        return {"initial_lr": self.initial_lr, "step_size": self.step_size, "gamma": self.gamma}


class CosineDecay(LearningRateSchedule):
    """Cosine from ``initial_lr`` down to ``alpha * initial_lr`` over ``decay_steps``, then flat.

    ``lr = initial_lr * ((1 - alpha) * (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2 + alpha)``,
    after an optional linear warm-up from 0 over ``warmup_steps`` (counted before the decay).
    """

    def __init__(self, initial_lr: float, decay_steps: int, alpha: float = 0.0, warmup_steps: int = 0):
        self.initial_lr = _positive("initial_lr", initial_lr)
        self.decay_steps = _positive_int("decay_steps", decay_steps)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Integral) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial_lr * (step + 1) / self.warmup_steps
        t = min(step - self.warmup_steps, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * t))
        return self.initial_lr * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict:
        return {"initial_lr": self.initial_lr, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "warmup_steps": self.warmup_steps}


_BUILTIN = {cls.__name__: cls for cls in (ExponentialDecay, StepDecay, CosineDecay)}
_CALLABLE = "callable"  # class_name that marks a plain function, saved by name


def serialize(lr: float | LearningRateSchedule | Callable[[int], float]) -> float | dict:
    """A float as is; a schedule as ``{"class_name", "config"}``; a function as ``{"class_name": "callable", "name"}``."""
    if isinstance(lr, LearningRateSchedule):
        return {"class_name": type(lr).__name__, "config": lr.get_config()}
    if callable(lr):
        name = getattr(lr, "__name__", None) or type(lr).__name__
        return {"class_name": _CALLABLE, "name": name}
    return float(lr)


def deserialize(value: Any, custom_objects: dict | None = None) -> float | LearningRateSchedule | Callable:
    """Inverse of ``serialize``; custom schedules and functions are looked up by name in ``custom_objects``.

    Raises
    ------
    ValueError
        A name that is neither built in nor in ``custom_objects``.
    """
    if not isinstance(value, dict):
        return float(value)
    custom_objects = custom_objects or {}
    name = value.get("class_name")
    if name == _CALLABLE:
        fn_name = value.get("name")
        if fn_name not in custom_objects:
            raise ValueError(f"the learning rate was the function {fn_name!r}: pass it again with "
                             f"custom_objects={{{fn_name!r}: {fn_name}}}")
        return custom_objects[fn_name]
    cls = custom_objects.get(name) or _BUILTIN.get(name)
    if cls is None:
        raise ValueError(f"unknown learning-rate schedule {name!r}; built in: {', '.join(sorted(_BUILTIN))} "
                         "(pass custom ones through custom_objects)")
    return cls.from_config(value.get("config", {}))
