"""Sampling from a next-symbol model, one kernel step per layer per symbol (private; see Sequential.generate).

The prompt runs once through every layer as a whole sequence (``lstm_forward``
without a cache), which leaves each LSTM's (h, c); after that every new symbol
costs one ``lstm_step`` per LSTM layer, never a re-run of the prefix.  The
model's carried (stateful) state is not touched.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .layers import LSTM, Dense, Embedding

__all__ = ["generate", "sample"]


def sample(logits: np.ndarray, temperature: float, top_k: int | None, greedy: bool,
           rng: np.random.Generator) -> np.ndarray:
    """One symbol per row of ``logits`` (B, C): argmax, or a draw from softmax(logits / temperature)
    restricted to the ``top_k`` largest."""
    z = np.asarray(logits, dtype=np.float64)
    if greedy or temperature == 0:
        return z.argmax(axis=1)
    z = z / temperature
    C = z.shape[1]
    if top_k is not None and top_k < C:
        kth = np.partition(z, C - top_k, axis=1)[:, C - top_k: C - top_k + 1]
        z = np.where(z < kth, -np.inf, z)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    cdf = np.cumsum(p, axis=1)
    u = rng.random((z.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), C - 1)  # first index with cdf > u (inverse-CDF draw)


def _check_args(steps: Any, temperature: Any, top_k: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 or None, got {top_k!r}")


def generate(model, prompt: Any, steps: int, temperature: float = 1.0, top_k: int | None = None,
             greedy: bool = False, seed: int | None = None) -> Any:
    _check_args(steps, temperature, top_k)
    layers = model.layers
    if not layers:
        raise ValueError("the model has no layers")
    head = layers[-1]
    if not isinstance(head, Dense) or head.activation not in ("softmax", None):
        raise ValueError("generate needs a model ending in Dense(activation='softmax') (or linear logits) over "
                         f"the symbols; this one ends in {head!r}")
    as_text = isinstance(prompt, str)
    if as_text:
        if model.vocab is None:
            raise ValueError("a str prompt needs model.vocab (e.g. model.vocab = corpus.vocab); or pass token ids")
        index = {s: k for k, s in enumerate(model.vocab)}
        unknown = sorted(set(prompt) - set(index))
        if unknown:
            raise ValueError(f"prompt has symbols not in model.vocab: {''.join(unknown)!r}")
        ids = np.array([[index[s] for s in prompt]], dtype=np.int64)
    else:
        ids = np.asarray(prompt)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"prompt must be a str or integer token ids, got dtype {ids.dtype}")
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2:
            raise ValueError(f"prompt ids must have shape (T0,) or (B, T0), got {ids.shape}")
    if ids.shape[1] == 0:
        raise ValueError("the prompt must hold at least one symbol")

    first = layers[0]
    ids_input = isinstance(first, Embedding) or (isinstance(first, LSTM) and first.vocab_size is not None)
    if ids_input:
        x = model._check_x(ids, what="prompt")
        n_symbols = first.vocab_size if isinstance(first, LSTM) else first.vocab
    else:  # a one-hot input model: the symbols are its input features
        model._ensure_built()
        n_symbols = model.input_shape[-1]
        if ids.min() < 0 or ids.max() >= n_symbols:
            raise ValueError(f"prompt ids must lie in [0, {n_symbols}) (the model's input features)")
        eye = np.eye(n_symbols, dtype=model.dtype)
        x = model._check_x(eye[ids], what="prompt")
    if head.units != n_symbols:
        raise ValueError(f"generate feeds each sampled symbol back in: the output has {head.units} units but "
                         f"the input takes {n_symbols} symbols")

    # the prompt, once, as whole sequences
    states: list[Any] = [None] * len(layers)
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, LSTM):
            x, states[i] = layer._run_sequence(x)
        else:
            x = layer.forward(x, training=False)
    logits = head.forward(x[:, -1], logits=True)

    rng = np.random.default_rng(seed)
    B = ids.shape[0]
    out = np.empty((B, steps), dtype=np.int64)
    for s in range(steps):
        tok = sample(logits, temperature, top_k, greedy, rng)
        out[:, s] = tok
        if s == steps - 1:
            break
        x_t = tok if ids_input else eye[tok]
        for i, layer in enumerate(layers[:-1]):
            x_t, states[i] = layer.step(x_t, states[i])
        logits = head.forward(x_t, logits=True)

    if as_text:
        return "".join(model.vocab[k] for k in out[0].tolist())
    return out[0] if np.asarray(prompt).ndim == 1 else out
