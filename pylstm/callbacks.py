"""Callbacks for ``fit``: a plain interface, EarlyStopping, ModelCheckpoint, LearningRateScheduler.

``fit`` calls, in order: ``on_train_begin``, then per epoch ``on_epoch_begin``,
per batch ``on_batch_begin`` / ``on_batch_end``, ``on_epoch_end``, and finally
``on_train_end``.  ``epoch`` and ``batch`` are 0-based.  Epoch logs hold the
epoch's means (``loss``, metrics, ``val_*``, ``lr``); batch logs hold the batch's
own values plus ``step`` (the model's step after the update) and ``lr``.  Set
``self.model.stop_training = True`` to stop after the current batch.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler"]


class Callback:
    """Base class: override the hooks you need (the others cost nothing per batch)."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitored(logs: dict | None, monitor: str, who: str) -> float:
    if not logs or monitor not in logs:
        have = ", ".join(sorted(logs or {})) or "nothing"
        raise ValueError(f"{who} monitors {monitor!r}, but the logs have: {have}")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` stops improving, or as soon as it reaches ``target``.

    Parameters
    ----------
    monitor : str
        A log key: ``"val_loss"`` (needs validation data), ``"loss"``, ``"accuracy"``, ``"val_accuracy"``...
    min_delta : float
        Smaller changes do not count as an improvement.
    patience : int
        Epochs without improvement before stopping.
    mode : {"auto", "min", "max"}
        "auto" is "max" for accuracies, else "min".
    baseline : float, optional
        The value to beat from the start.
    restore_best_weights : bool
        At the end of training, put back the weights of the best epoch.
    target : float, optional
        Stop once the monitored value reaches it (>= in max mode, <= in min mode).
    check_every : int, optional
        Also check ``target`` every ``check_every`` optimizer steps (on the batch's value, or, for
        a ``val_*`` monitor, on a full evaluation of the validation data) instead of only per epoch.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, mode: str = "auto",
                 baseline: float | None = None, restore_best_weights: bool = False, target: float | None = None,
                 check_every: int | None = None, verbose: int = 0):
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        if not isinstance(min_delta, numbers.Real) or min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta!r}")
        self.min_delta = float(min_delta)
        if isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        self.patience = int(patience)
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.target = None if target is None else float(target)
        if check_every is not None:
            if isinstance(check_every, bool) or not isinstance(check_every, numbers.Integral) or check_every < 1:
                raise ValueError(f"check_every must be an int >= 1 (optimizer steps), got {check_every!r}")
            if self.target is None:
                raise ValueError("check_every checks a target: give target= too")
        self.check_every = None if check_every is None else int(check_every)
        self.verbose = verbose
        self.stopped_epoch: int | None = None
        self.stopped_step: int | None = None
        self.best: float | None = None

    def _better(self, value: float, than: float | None) -> bool:
        if than is None:
            return True
        return value < than - self.min_delta if self.mode == "min" else value > than + self.min_delta

    def _reached(self, value: float) -> bool:
        return value <= self.target if self.mode == "min" else value >= self.target

    def on_train_begin(self, logs=None):
        if self.monitor.startswith("val_") and not self.model._has_validation():
            raise ValueError(f"EarlyStopping monitors {self.monitor!r} but fit has no validation_data")
        self.wait = 0
        self.best = self.baseline
        self.best_weights = None
        self.stopped_epoch = self.stopped_step = None

    def _stop(self, epoch: int, why: str) -> None:
        self.model.stop_training = True
        self.stopped_epoch = epoch
        self.stopped_step = self.model.step
        if self.verbose:
            print(f"EarlyStopping: {why} (epoch {epoch + 1}, step {self.model.step})")

    def on_batch_end(self, batch, logs=None):
        if self.check_every is None or self.model.step % self.check_every:
            return
        if self.monitor.startswith("val_"):
            logs = self.model._validation_logs()
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self._reached(value):
            self._stop(self.model._current_epoch, f"{self.monitor} = {value:.6g} reached target {self.target:g}")

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self._better(value, self.best):
            self.best = value
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
        if self.target is not None and self._reached(value):
            self._stop(epoch, f"{self.monitor} = {value:.6g} reached target {self.target:g}")
        elif self.wait > self.patience:
            self._stop(epoch, f"no improvement of {self.monitor} in {self.wait} epochs")

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def __repr__(self):
        extra = f", target={self.target}" if self.target is not None else ""
        return f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, mode={self.mode!r}{extra})"


class ModelCheckpoint(Callback):
    """Save the model (``model.save``) at the end of an epoch, by default only when ``monitor`` improved.

    ``filepath`` may use ``{epoch}`` (1-based) and any log key, e.g. ``"ckpt-{epoch:03d}-{val_loss:.3f}.pylstm"``.
    """

    def __init__(self, filepath: str, monitor: str = "val_loss", save_best_only: bool = True, mode: str = "auto",
                 verbose: int = 0):
        self.filepath = str(filepath)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _mode(monitor, mode)
        self.verbose = verbose
        self.best: float | None = None
        self.last_saved: str | None = None

    def on_train_begin(self, logs=None):
        if self.save_best_only and self.monitor.startswith("val_") and not self.model._has_validation():
            raise ValueError(f"ModelCheckpoint monitors {self.monitor!r} but fit has no validation_data")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            better = self.best is None or (value < self.best if self.mode == "min" else value > self.best)
            if not better or math.isnan(value):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        self.last_saved = path
        if self.verbose:
            print(f"ModelCheckpoint: saved {path}")

    def __repr__(self):
        return f"ModelCheckpoint({self.filepath!r}, monitor={self.monitor!r}, save_best_only={self.save_best_only})"


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate at each epoch start to ``schedule(epoch, lr)`` (epoch 0-based).

    It replaces the optimizer's lr (a float from then on, saved with the optimizer's state).
    """

    def __init__(self, schedule: Callable[[int, float], float], verbose: int = 0):
        if not callable(schedule):
            raise TypeError(f"schedule must be callable (epoch, lr) -> lr, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = self.schedule(epoch, opt.current_lr())
        opt.lr = float(lr)
        if self.verbose:
            print(f"LearningRateScheduler: epoch {epoch + 1}, lr = {float(lr):.6g}")

    def __repr__(self):
        return f"LearningRateScheduler({getattr(self.schedule, '__name__', self.schedule)!r})"
