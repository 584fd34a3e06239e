"""Parity of a bit sequence: is the number of ones odd?

People tried two stacked ``LSTM(40)`` read at the last step, a ``softmax(2)`` head,
every weight drawn from N(0, 0.01), Adagrad at lr 0.1 and gradient clipping at
100, on T = 7 bits: accuracy stuck at 50%, the score of a constant guess.

The working configuration trains on per-step targets, the running parity of
the prefix (the label at step t is the parity of bits 1..t; the last step's
label is the task's label): every step gives a gradient that needs one step
of memory, so T = 7, 20 and 50 all learn in a few hundred optimizer steps.
It is scored on the last step only, on fresh test sequences.  (Training on the
last step alone is known to stall on some seeds, even with a good
initialization: it is one bit of signal for a T-step computation.)
"""
from __future__ import annotations

import time

import numpy as np

from .. import initializers, layers, optim
from ..model import Sequential
from . import _evidence as ev
from ._runner import Measurement, Monitor, TaskResult, fmt_pct, fit_verbose, make_result, train_timed
from ._seeds import check_count, split_seeds

__all__ = ["make_data", "working_model", "naive_model", "run", "explain_naive"]


def make_data(n: int, seed: int, steps: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random bit sequences and their parity.

    Returns
    -------
    x : float32 (n, steps, 1)
        The bits.
    y : int64 (n,)
        Parity of all ``steps`` bits (1 when the number of ones is odd).
    running : int64 (n, steps)
        Parity of the prefix ending at each step (``running[:, -1] == y``).
    """
    n, steps = check_count("n", n), check_count("steps", steps)
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, steps), dtype=np.int64)
    running = np.cumsum(bits, axis=1) % 2
    return bits[..., None].astype(np.float32), running[:, -1].copy(), running


def working_model(seed: int, units: int = 16) -> Sequential:
    """One LSTM read at every step (per-step softmax over {even, odd}), Adam with clipping."""
    model = Sequential([layers.LSTM(units, return_sequences=True), layers.Dense(2, activation="softmax")],
                       input_shape=(None, 1), seed=seed)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optim.Adam(lr=1e-2, clipnorm=1.0))
    return model


def naive_model(seed: int) -> Sequential:
    """What people tried: 2 x LSTM(40), last step, softmax(2), N(0, 0.01) weights, Adagrad lr 0.1, clip 100."""
    small = initializers.Normal(std=0.01)
    model = Sequential([
        layers.LSTM(40, return_sequences=True, kernel_initializer=small, recurrent_initializer=small),
        layers.LSTM(40, kernel_initializer=small, recurrent_initializer=small),
        layers.Dense(2, activation="softmax", kernel_initializer=small),
    ], input_shape=(None, 1), seed=seed)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optim.Adagrad(lr=0.1, clipnorm=100.0))
    return model


def _measure(x: np.ndarray, y: np.ndarray):
    """Last-step accuracy on the test sequences, the last step's cross-entropy, P(odd)'s spread."""

    def measure(model) -> Measurement:
        p = np.asarray(model.predict(x), dtype=np.float64)
        last = p[:, -1] if p.ndim == 3 else p
        acc = float(np.mean(last.argmax(axis=1) == y))
        loss = float(-np.mean(np.log(np.clip(last[np.arange(len(y)), y], 1e-12, None))))
        return Measurement(acc, loss, {"p_odd_std": ev.spread(last[:, 1]), "p_odd_mean": float(last[:, 1].mean())})

    return measure


_TRAIN_N = {True: 10_000, False: 100_000}  # quick, full
_TEST_N = 2_000


def run(seed: int = 0, *, naive: bool = False, quick: bool = True, verbose: int = 1, steps: int = 7,
        epochs: int | None = None) -> TaskResult:
    """Train at sequence length ``steps``; score last-step accuracy on 2000 fresh sequences every 25 steps.

    Target: 100% at T = 7, >= 99% at T = 20 and 50.  Working: per-step running-parity
    targets, batch 64, stops at the target (budget 3 epochs of 10000 sequences, quick;
    100000 full).  Naive: last-step labels, batch 100, budget 10 epochs (quick) or 3 (full).
    """
    t0 = time.perf_counter()
    steps = check_count("steps", steps, 2)
    s_data, s_test, s_model = split_seeds(seed)
    x, y, running = make_data(_TRAIN_N[bool(quick)], s_data, steps)
    xt, yt, _ = make_data(_TEST_N, s_test, steps)
    target = 1.0 if steps <= 7 else 0.99
    if naive:
        model, labels, batch = naive_model(s_model), y, 100
        budget = epochs or (10 if quick else 3)
    else:
        model, labels, batch = working_model(s_model), running, 64
        budget = epochs or 3
    monitor = Monitor(_measure(xt, yt), lambda m: m.value >= target, every=25, stop_at_target=not naive,
                      progress=verbose >= 1, show=lambda m: f"test accuracy {fmt_pct(m.value)}  loss {m.loss:.4g}")
    train_s = train_timed(model, monitor, dict(x=x, y=labels, batch_size=batch, epochs=budget,
                                               verbose=fit_verbose(verbose), seed=s_model))
    name = "parity" if steps == 7 else f"parity-{steps}"
    res = make_result(name, "naive" if naive else "working", seed, model, monitor,
                      metric=f"last-step test accuracy, T={steps}", metric_short="accuracy",
                      target_text=fmt_pct(target) if target == 1 else f">={fmt_pct(target, 0)}", t_start=t0,
                      train_seconds=train_s, loss_name="cross-entropy (last step)",
                      extra={"method": "last-step labels" if naive else "per-step running-parity targets"})
    if naive:
        res.explanation = explain_naive(res, yt)
    return res


def explain_naive(res: TaskResult, y_test: np.ndarray) -> str:
    """Why the people's parity setup sits at 50%, from what this run measured."""
    cls, const = ev.constant_accuracy(y_test)
    curve = res.curve
    flat = ev.steps_at_level(curve, const, 0.02)
    opt = res.model.optimizer
    h = res.history
    norms = ev.layer_grad_norms(h)
    max_norm = float(np.max(h.steps["grad_norm"])) if h.num_steps else float("nan")
    names = h.layer_names
    parts = [f"A constant guess ('{'odd' if cls else 'even'}' for everything) scores {fmt_pct(const)} on these "
             f"test sequences; this run ended at {fmt_pct(res.value)} after {res.steps} optimizer steps, and its "
             f"test accuracy stayed within 2 points of the constant guess for {flat} of them."]
    parts.append(f"Its P(odd) varies across the test sequences by a standard deviation of "
                 f"{ev.num(res.extra.get('p_odd_std', float('nan')))} (mean "
                 f"{ev.num(res.extra.get('p_odd_mean', float('nan')))}): the output ignores the input.")
    if norms and len(names) >= 2:
        first, head = norms.get(names[0], float("nan")), norms.get(names[-1], float("nan"))
        parts.append(f"Median gradient norm per layer: {ev.ratio_text(names, norms)}. With every weight drawn "
                     f"from N(0, 0.01), each layer shrinks the signal passing through it, forwards and backwards, "
                     f"so the first LSTM gets {ev.num(first / head if head else float('nan'))} times the head's "
                     "gradient: the layers that must compute the parity barely move.")
    parts.append(f"The largest global gradient norm in the run was {ev.num(max_norm)}, so clipping at "
                 f"{opt.clipnorm:g} never acted; Adagrad divides lr {ev.num(opt.current_lr())} by the root of "
                 "the summed squared gradients, so the steps only shrink while the model waits.")
    parts.append("Only the last step carries a label, one bit of signal for a computation over every step. "
                 "The working configuration (per-step running-parity targets, Glorot/orthogonal init, Adam lr 1e-2) "
                 "gets 100% in a few hundred steps.")
    return " ".join(parts)
