"""The training loop behind ``Sequential.fit`` / ``evaluate`` (private).

One step: forward (the final sigmoid/softmax fused into the loss), loss and
dLoss/dz, backward through the layers into one flat gradient, the global and
per-layer gradient norms, the optimizer update, metrics, and a line in
``history.steps``.  Nothing here loops over samples: all the work is a few
array operations per layer plus the kernel calls.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import signal
import threading
import time
from typing import Any, Iterator

import numpy as np

from . import losses as _losses
from .callbacks import Callback
from .metrics import correct_predictions

__all__ = ["NonFiniteLossError", "run_fit", "train_step", "evaluate_data", "make_data", "prepare_batch"]


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient) became NaN or infinite; training stopped before updating the weights.

    Attributes ``epoch`` and ``batch`` are 1-based within the ``fit`` call (None
    for ``train_on_batch``); ``step`` is the model's step count (unchanged).
    """

    def __init__(self, message: str, epoch: int | None, batch: int | None, step: int):
        super().__init__(message)
        self.epoch, self.batch, self.step = epoch, batch, step


# --------------------------------------------------------------------------- #
# Ctrl-C: finish the current batch, then raise (weights never half-updated)
# --------------------------------------------------------------------------- #
_interrupt = {"pending": False}


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _interrupt["pending"]:  # a second Ctrl-C: stop right now
            raise KeyboardInterrupt
        _interrupt["pending"] = True

    try:
        old = signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):  # pragma: no cover - no signals here (embedded interpreter)
        yield
        return
    _interrupt["pending"] = False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        _interrupt["pending"] = False


def _check_interrupt() -> None:
    if _interrupt["pending"]:
        _interrupt["pending"] = False
        raise KeyboardInterrupt


# --------------------------------------------------------------------------- #
# data: arrays (checked once) or an iterable of batches (checked per batch)
# --------------------------------------------------------------------------- #
def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def prepare_batch(model, x: Any, y: Any, w: Any = None, what: str = "") -> tuple:
    """Check one batch against the model and the loss; returns (x, labels, weights) ready for a step."""
    x = model._check_x(x, what=f"x{what}")
    y = np.asarray(y)
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(f"x{what} has {x.shape[0]} samples but y{what} has "
                         f"{y.shape[0] if y.ndim else 'a scalar'}")
    out_shape = model._full_output_shape(x.shape)
    y = model.loss.prepare_labels(y, out_shape, model.dtype)
    if w is not None:
        w = _losses.prepare_sample_weight(w, out_shape, model.dtype)
    return x, y, w


class _ArrayData:
    """Arrays checked once, served in (optionally shuffled) batches."""

    def __init__(self, x, y, w, batch_size: int, shuffle: bool):
        self.x, self.y, self.w = x, y, w
        self.batch_size, self.shuffle = batch_size, shuffle

    def n_batches(self) -> int:
        return -(-self.x.shape[0] // self.batch_size)

    def batches(self, rng: np.random.Generator | None) -> Iterator[tuple]:
        x, y, w = self.x, self.y, self.w
        if self.shuffle and rng is not None:
            perm = rng.permutation(x.shape[0])
            x, y = x[perm], y[perm]  # one gather per epoch; batches are then contiguous slices
            w = None if w is None else w[perm]
        bs = self.batch_size
        for i in range(0, x.shape[0], bs):
            yield x[i: i + bs], y[i: i + bs], (None if w is None else w[i: i + bs])


class _IterData:
    """An iterable of (x, y) or (x, y, w) batches, each checked as it comes."""

    def __init__(self, model, iterable: Any):
        try:
            iter(iterable)
        except TypeError:
            raise TypeError(f"data must be arrays x, y or an iterable of (x, y) batches, got "
                            f"{type(iterable).__name__}") from None
        self.model, self.iterable = model, iterable

    def n_batches(self) -> int | None:
        try:
            return len(self.iterable)
        except TypeError:
            return None

    def batches(self, rng: np.random.Generator | None) -> Iterator[tuple]:
        for k, batch in enumerate(self.iterable):
            if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
                raise ValueError(f"batch {k + 1} must be a tuple (x, y) or (x, y, sample_weight), got "
                                 f"{type(batch).__name__}")
            yield prepare_batch(self.model, *batch, what=f" (batch {k + 1})")


def make_data(model, x: Any, y: Any, w: Any, batch_size: int | None, for_eval: bool = False,
              shuffle: bool = False):
    """Arrays -> checked _ArrayData; an iterable (y None) -> _IterData."""
    if y is None:
        if isinstance(x, np.ndarray):
            raise ValueError("y is missing: pass labels y, or x as an iterable of (x, y) batches")
        if w is not None:
            raise ValueError("sample_weight goes inside the batches, (x, y, sample_weight), when x is an iterable")
        return _IterData(model, x)
    x, y, w = prepare_batch(model, x, y, w)
    if w is not None and w.shape[0] != x.shape[0]:  # pragma: no cover - prepare_sample_weight checks N
        raise ValueError(f"x has {x.shape[0]} samples but sample_weight has {w.shape[0]}")
    N = x.shape[0]
    if batch_size is None:
        batch_size = N
    batch_size = _positive_int("batch_size", batch_size)
    if model.stateful:
        if for_eval and batch_size > N:
            batch_size = N
        if N % batch_size:
            raise ValueError(f"stateful model: the {N} samples must split into equal batches (row i of batch k+1 "
                             f"continues row i of batch k), but batch_size={batch_size} does not divide {N}")
        shuffle = False
    return _ArrayData(x, y, w, min(batch_size, N), shuffle)


def _validation(model, validation_data: Any):
    if validation_data is None:
        return None
    if isinstance(validation_data, tuple):
        if len(validation_data) not in (2, 3):
            raise ValueError(f"validation_data must be (x, y) or (x, y, sample_weight), got a tuple of "
                             f"{len(validation_data)}")
        xv, yv = validation_data[:2]
        wv = validation_data[2] if len(validation_data) == 3 else None
        try:
            return make_data(model, xv, yv, wv, None if model.stateful else 4096, for_eval=True)
        except (ValueError, TypeError) as e:
            raise type(e)(f"validation_data: {e}") from None
    return _IterData(model, validation_data)


# --------------------------------------------------------------------------- #
# one step, one evaluation
# --------------------------------------------------------------------------- #
def _metric_sums(model, y, probs, w) -> list[tuple[float, float]]:
    if not model.metrics:
        return []
    correct = correct_predictions(y, probs, model.loss.sparse)
    return [m.batch_sums(y, probs, w, correct) for m in model.metrics]


def _where(epoch_no: int | None, epochs: int | None, batch_no: int | None, n_batches: int | None) -> str:
    """Where a step is, for error messages: " at epoch 1/3, batch 7/100", or " in train_on_batch"."""
    if epoch_no is None:
        return " in train_on_batch"
    return f" at epoch {epoch_no}/{epochs}, batch {batch_no}" + (f"/{n_batches}" if n_batches else "")


def _train_step(model, x, y, w, epoch: int, epoch_no: int | None = None, batch_no: int | None = None,
                epochs: int | None = None, n_batches: int | None = None):
    """Forward, backward, update; returns (loss, total, weight_sum, metric sums, lr).

    ``epoch_no`` of ``epochs`` and ``batch_no`` of ``n_batches`` (1-based; None in ``train_on_batch``) only
    name the step in error messages, whose text is built when one is raised (not at every step).
    """
    stateful = model._stateful_layers
    if stateful:
        model._check_stateful_batch(x.shape[0], fix=True, where=_where(epoch_no, epochs, batch_no, n_batches))
    saved_states = [l.states for l in stateful]
    z = model._forward(x, training=True, logits=model._fused, use_carried=True)
    if isinstance(z, tuple):  # a final return_state LSTM: the loss sees its output only
        z = z[0]
    total, wsum, dz, probs = model.loss._compute(y, z, w, grad=True)
    loss = total / wsum if wsum > 0 else 0.0

    def fail(what: str):
        for l, s in zip(stateful, saved_states):
            l.states = s
        where = _where(epoch_no, epochs, batch_no, n_batches)
        raise NonFiniteLossError(f"{what} is not finite{where} (step {model.step + 1}); training stopped, the "
                                 "weights are those from before this batch", epoch_no, batch_no, model.step)

    if not math.isfinite(loss):
        fail(f"the loss ({loss})")
    model._backward(dz)
    g = model._flat_grad
    squares = [float(np.dot(v, v)) for v in model._layer_grads]  # per layer: views of g made at build
    grad_norm = math.sqrt(sum(squares))
    if not math.isfinite(grad_norm):
        fail("the gradient")
    opt = model.optimizer
    if not opt.built:
        opt.build([p.shape for l in model._param_layers for p in l._params.values()], model.dtype)
    lr = opt._step_flat(model._flat, g, grad_norm)
    msums = _metric_sums(model, y, probs, w)
    model.history._log_step(model.step, epoch, loss, lr, grad_norm, [math.sqrt(s) for s in squares])
    return loss, total, wsum, msums, lr


def train_step(model, x, y, w, epoch: int, batch: int) -> dict[str, float]:
    """``train_on_batch``: one step, its logs."""
    loss, _, _, msums, lr = _train_step(model, x, y, w, epoch)
    logs = {"loss": loss}
    logs.update({m.name: (n / d if d else 0.0) for m, (n, d) in zip(model.metrics, msums)})
    logs["lr"] = lr
    return logs


def _logs(model, total: float, wsum: float, msums: list, prefix: str = "") -> dict[str, float]:
    logs = {prefix + "loss": total / wsum if wsum > 0 else 0.0}
    for m, (n, d) in zip(model.metrics, msums):
        logs[prefix + m.name] = n / d if d > 0 else 0.0
    return logs


def evaluate_data(model, data) -> dict[str, float]:
    """Loss and metrics over ``data`` from a fresh state (the carried state is put back)."""
    total = wsum = 0.0
    sums = [[0.0, 0.0] for _ in model.metrics]
    n = 0
    with model._fresh_states():
        for x, y, w in data.batches(None):
            z = model._forward(x, training=False, logits=model._fused, use_carried=True)
            if isinstance(z, tuple):
                z = z[0]
            t, ws, _, probs = model.loss._compute(y, z, w, grad=False)
            total, wsum = total + t, wsum + ws
            for s, (a, b) in zip(sums, _metric_sums(model, y, probs, w)):
                s[0] += a
                s[1] += b
            n += 1
            _check_interrupt()
    if n == 0:
        raise ValueError("no batches to evaluate (an exhausted iterator?)")
    return _logs(model, total, wsum, sums)


# --------------------------------------------------------------------------- #
# progress display
# --------------------------------------------------------------------------- #
def _fmt(logs: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in logs.items())


class _Progress:
    """verbose=1: a tqdm bar per epoch (loss, metrics, ETA); 2: one line per epoch; 0: nothing."""

    _EVERY_S = 0.2  # refresh the bar's numbers at most this often (formatting costs)

    def __init__(self, verbose: int, epoch: int, epochs: int, total: int | None):
        self.verbose = verbose
        self.t0 = self.last = time.perf_counter()  # first numbers after _EVERY_S, not batch 1's
        self.desc = f"Epoch {epoch}/{epochs}"
        self.bar = None
        if verbose == 1:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="batch", leave=True, dynamic_ncols=True)

    def update(self, running: Any) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.perf_counter()
        if now - self.last >= self._EVERY_S:
            self.last = now
            self.bar.set_postfix_str(_fmt(running()), refresh=False)

    def close(self, logs: dict[str, float] | None) -> None:
        if self.bar is not None:
            if logs is not None:
                self.bar.set_postfix_str(_fmt(logs), refresh=False)
            self.bar.close()
            self.bar = None
        elif self.verbose == 2 and logs is not None:
            print(f"{self.desc} - {time.perf_counter() - self.t0:.1f}s - {_fmt(logs)}")


# --------------------------------------------------------------------------- #
# fit
# --------------------------------------------------------------------------- #
def _overrides(cb: Callback, hook: str) -> bool:
    return getattr(type(cb), hook) is not getattr(Callback, hook)


def run_fit(model, x, y, *, batch_size, epochs, verbose, validation_data, shuffle, seed, callbacks,
            sample_weight):
    from .model import _check_seed

    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs must be an int >= 0, got {epochs!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    batch_size = _positive_int("batch_size", batch_size)
    callbacks = list(callbacks or [])
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be pylstm.callbacks.Callback objects, got {type(cb).__name__}")
    seed = _check_seed(seed)
    data = make_data(model, x, y, sample_weight, batch_size, shuffle=bool(shuffle))
    model._val = _validation(model, validation_data)
    if seed is not None:
        model._rng = np.random.default_rng(seed)
    for cb in callbacks:
        cb.set_model(model)
    on_begin = [cb for cb in callbacks if _overrides(cb, "on_batch_begin")]
    on_end = [cb for cb in callbacks if _overrides(cb, "on_batch_end")]
    model.stop_training = False
    first = len(model.history.epoch)
    n_batches = data.n_batches()
    progress = None
    try:
        with _deferred_sigint():
            for cb in callbacks:
                cb.on_train_begin({})
            for k in range(epochs):
                e = first + k
                model._current_epoch = e
                if model.stateful:
                    model.reset_states()  # each epoch walks the stream from its start
                for cb in callbacks:
                    cb.on_epoch_begin(e, {})
                total = wsum = 0.0
                sums = [[0.0, 0.0] for _ in model.metrics]
                progress = _Progress(verbose, k + 1, epochs, n_batches)
                running = lambda: _logs(model, total, wsum, sums)  # noqa: E731
                nb = 0
                for b, (xb, yb, wb) in enumerate(data.batches(model._rng)):
                    for cb in on_begin:
                        cb.on_batch_begin(b, {"step": model.step})
                    loss, t, ws, msums, lr = _train_step(model, xb, yb, wb, e, k + 1, b + 1, epochs, n_batches)
                    total, wsum, nb = total + t, wsum + ws, nb + 1
                    for s, (a, c) in zip(sums, msums):
                        s[0] += a
                        s[1] += c
                    progress.update(running)
                    if on_end:
                        blogs = {"loss": loss, **{m.name: (a / c if c else 0.0) for m, (a, c) in
                                                  zip(model.metrics, msums)}, "step": model.step, "lr": lr}
                        for cb in on_end:
                            cb.on_batch_end(b, blogs)
                    _check_interrupt()
                    if model.stop_training:
                        break
                if nb == 0:
                    raise ValueError(f"epoch {k + 1} got no batches: pass arrays, or a re-iterable (a list, "
                                     "TextCorpus.batches(...)) rather than a one-shot iterator")
                logs = running()
                if model._val is not None:
                    logs.update(model._validation_logs())
                logs["lr"] = model.optimizer.current_lr()
                model.history._log_epoch(e, logs)
                progress.close(logs)
                progress = None
                for cb in callbacks:
                    cb.on_epoch_end(e, logs)
                if model.stop_training:
                    break
            for cb in callbacks:
                cb.on_train_end({})
    finally:
        if progress is not None:
            progress.close(None)
        model._val = None
    return model.history
