"""Losses, with labels checked once and cross-entropies computed from logits.

A model's output is (N, C) (last step) or (N, T, C) (every step).  A loss
averages a per-unit value (one per sample, or per (sample, step)) with optional
weights: ``sum(w * l) / sum(w)`` (the plain mean without weights), so an
(N, T) ``sample_weight`` of 0/1 is a mask and the loss is the mean over the
unmasked steps.

``compile`` pairs a final ``Dense(activation="sigmoid")`` with
``binary_crossentropy`` and ``Dense(activation="softmax")`` with the two
categorical ones, and then computes the loss from the Dense's logits z with the
stable forms below (no log of a rounded-to-0 probability); the gradient w.r.t.
z is simply ``p - y``::

    binary:       l = mean_C( max(z, 0) - z y + log(1 + exp(-|z|)) )      dz = (σ(z) - y) / C
    categorical:  l = Σ_C y (logsumexp(z) - z)                             dz = softmax(z) Σ_C y - y
    sparse:       l = logsumexp(z) - z[label]                              dz = softmax(z) - onehot(label)
    mse:          l = mean_C (p - y)²                                      dp = 2 (p - y) / C

(each then times the unit's weight / sum of weights).  ``from_logits=True``
losses take a linear final layer's output as z directly.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .activations import log_softmax, sigmoid

__all__ = [
    "Loss",
    "MeanSquaredError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "get",
    "prepare_sample_weight",
]

_EPS_PROB = 1e-7  # only for cross-entropy on probabilities (public __call__ with from_logits=False)

# Up to this many classes, a row-wise max / sum is a loop of ufunc calls over the columns: NumPy runs an
# axis=-1 reduction's inner loop once per row (~3 us for a (100, 2) batch, against ~0.5 us per column
# op).  The results are bit-identical: max is exact, and NumPy adds fewer than 8 elements left to right.
_FEW_CLASSES = 4


def _row_max(a: np.ndarray) -> np.ndarray:
    """max over the last axis of a 2-D array, shape (R,)."""
    C = a.shape[1]
    if C > _FEW_CLASSES:
        return np.maximum.reduce(a, axis=1)
    out = a[:, 0].copy() if C == 1 else np.maximum(a[:, 0], a[:, 1])
    for c in range(2, C):
        np.maximum(out, a[:, c], out=out)
    return out


def _row_sum(a: np.ndarray) -> np.ndarray:
    """sum over the last axis of a 2-D array, shape (R,), added in NumPy's order."""
    C = a.shape[1]
    if C > _FEW_CLASSES:
        return np.add.reduce(a, axis=1)
    out = a[:, 0].copy() if C == 1 else np.add(a[:, 0], a[:, 1])
    for c in range(2, C):
        np.add(out, a[:, c], out=out)
    return out


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("N" if k == 0 else str(d) for k, d in enumerate(shape)) + ("," if len(shape) == 1 else "") + ")"


class Loss:
    """Base class.  Subclasses define ``_unit_loss_and_grad`` on logits (or outputs for mse).

    Attributes
    ----------
    name : str
        The registry name (``"mse"``, ...).
    from_logits : bool
        The model's output is z (logits), not probabilities.
    activation : str or None
        The final activation this loss fuses with ("sigmoid" or "softmax"); None for mse.
    sparse : bool
        Labels are integer class ids.
    """

    name = "loss"
    activation: str | None = None
    sparse = False

    def __init__(self, from_logits: bool = False):
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {from_logits!r}")
        self.from_logits = bool(from_logits)

    # ------------------------------------------------------------------ labels
    def prepare_labels(self, y: Any, out_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Check labels against the model's output shape (N, C) or (N, T, C) and normalise them.

        Returns class ids of shape ``out_shape[:-1]`` (sparse) or an array of ``out_shape`` in ``dtype``.

        Raises
        ------
        ValueError
            Shape mismatch (naming both shapes), or labels out of range.
        TypeError
            Non-numeric labels.
        """
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"labels must be numeric, got dtype {y.dtype}")
        out_shape = tuple(out_shape)
        unit_shape = out_shape[:-1]
        C = out_shape[-1]
        if self.sparse:
            if y.shape == unit_shape + (1,):
                y = y[..., 0]
            if y.shape != unit_shape:
                raise ValueError(
                    f"labels of shape {y.shape} do not match the model output {out_shape}: {self.name} wants "
                    f"integer class ids of shape {_shape_text(unit_shape)} or {_shape_text(unit_shape + (1,))}")
            if y.dtype.kind == "f":
                if y.size and not np.all(np.floor(y) == y):
                    raise ValueError(f"{self.name} labels must be integer class ids, got non-integer values")
            if y.size:
                lo, hi = y.min(), y.max()
                if lo < 0 or hi >= C:
                    raise ValueError(f"{self.name} labels must lie in [0, {C}) (the output has {C} units), "
                                     f"got values in [{lo:g}, {hi:g}]")
            return np.ascontiguousarray(y, dtype=np.intp)
        if y.shape == unit_shape and C == 1:
            y = y[..., None]
        if y.shape != out_shape:
            extra = f" or {_shape_text(unit_shape)}" if C == 1 else ""
            raise ValueError(f"labels of shape {y.shape} do not match the model output {out_shape}: {self.name} "
                             f"wants labels of shape {_shape_text(out_shape)}{extra}")
        if self.activation is not None and y.size:
            lo, hi = y.min(), y.max()
            if lo < 0 or hi > 1:
                raise ValueError(f"{self.name} labels must lie in [0, 1], got values in [{lo:g}, {hi:g}]")
        return np.ascontiguousarray(y, dtype=dtype)

    # ------------------------------------------------------------------ values
    def _unit_loss_and_grad(self, y: np.ndarray, z: np.ndarray, grad: bool):
        """Per-unit loss (shape z.shape[:-1]), dl/dz per unit (or None), and the probabilities."""
        raise NotImplementedError

    def _compute(self, y: np.ndarray, z: np.ndarray, w: np.ndarray | None, grad: bool = True):
        """Weighted sum and weight total, plus d(mean loss)/dz and the probabilities.

        ``y`` from ``prepare_labels``; ``w`` from ``prepare_sample_weight`` (or None).

        Returns
        -------
        total : float
        weight_sum : float
        dz : ndarray or None
            Gradient of ``total / weight_sum`` w.r.t. ``z``.
        probs : ndarray
            The final activation's output (what ``predict`` returns; ``z`` itself for mse).
        """
        l, dz, probs = self._unit_loss_and_grad(y, z, grad)
        if w is None:
            total, wsum = float(np.add.reduce(l, axis=None)), float(l.size)
            if dz is not None:
                dz *= 1.0 / wsum
        else:
            if w.ndim < l.ndim:  # (N,) weights on a sequence output: the same weight at every step
                w = np.broadcast_to(w[:, None], l.shape)
            total, wsum = float(np.dot(l.ravel(), w.ravel())), float(w.sum())
            if dz is not None:
                if wsum > 0:
                    dz *= (w * (1.0 / wsum))[..., None]
                else:  # every unit masked: no loss, no gradient
                    dz[...] = 0
        return total, wsum, dz, probs

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
        """The loss of predictions ``y_pred`` (probabilities, or logits with from_logits=True).

        ``y_pred`` is (N, C) or (N, T, C); labels and weights as for ``fit``.
        """
        z = np.asarray(y_pred, dtype=np.float64)
        if z.ndim not in (2, 3):
            raise ValueError(f"y_pred must have shape (N, C) or (N, T, C), got {z.shape}")
        y = self.prepare_labels(y_true, z.shape, np.float64)
        w = prepare_sample_weight(sample_weight, z.shape, np.float64)
        if self.activation is not None and not self.from_logits:
            z = self._logits_from_probs(z)
        total, wsum, _, _ = self._compute(y, z, w, grad=False)
        return total / wsum if wsum > 0 else 0.0

    def _logits_from_probs(self, p: np.ndarray) -> np.ndarray:
        # log-probabilities are valid logits for both softmax and (via log-odds) sigmoid.
        p = np.clip(p, _EPS_PROB, 1 - _EPS_PROB)
        if self.activation == "sigmoid":
            return np.log(p) - np.log1p(-p)
        return np.log(p)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        return {"class_name": type(self).__name__, "from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})" if self.activation else f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()


class MeanSquaredError(Loss):
    """mean over the C outputs of (p - y)², on the final layer's output (any activation)."""

    name = "mse"

    def __init__(self, from_logits: bool = False):
        super().__init__(False)  # no logits for a regression loss: the argument is accepted and ignored

    def _unit_loss_and_grad(self, y, p, grad):
        d = p - y
        C = p.shape[-1]
        l = np.einsum("...c,...c->...", d, d) * (1.0 / C)
        if grad:
            d *= 2.0 / C
            return l, d, p
        return l, None, p

    def get_config(self) -> dict:
        return {"class_name": type(self).__name__}


class BinaryCrossentropy(Loss):
    """Binary cross-entropy, averaged over the C independent sigmoid outputs; fuses with sigmoid."""

    name = "binary_crossentropy"
    activation = "sigmoid"

    def _unit_loss_and_grad(self, y, z, grad):
        C = z.shape[-1]
        # max(z,0) - z y + log(1 + exp(-|z|)): = -y log σ(z) - (1-y) log(1-σ(z)), finite for any z
        l = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        l = l.sum(axis=-1) * (1.0 / C) if C > 1 else l[..., 0]
        p = sigmoid(z)
        if not grad:
            return l, None, p
        dz = p - y
        if C > 1:
            dz *= 1.0 / C
        return l, dz, p


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot (or soft) labels of shape (..., C); fuses with softmax."""

    name = "categorical_crossentropy"
    activation = "softmax"

    def _unit_loss_and_grad(self, y, z, grad):
        logp = log_softmax(z)
        l = -np.einsum("...c,...c->...", y, logp)
        p = np.exp(logp)
        if not grad:
            return l, None, p
        ysum = y.sum(axis=-1, keepdims=True)
        dz = p * ysum - y
        return l, dz, p


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against integer class ids of shape (N,) or (N, T); fuses with softmax."""

    name = "sparse_categorical_crossentropy"
    activation = "softmax"
    sparse = True
    _offsets: np.ndarray | None = None  # 0, C, 2C, ...: row starts in the flattened (R, C) logits, cached

    def _label_index(self, y: np.ndarray, C: int) -> np.ndarray:
        """Flat index of each unit's label in the (R, C) logits (labels checked by prepare_labels)."""
        idx = y.reshape(-1)
        offsets = self._offsets
        if offsets is None or offsets.shape[0] != idx.shape[0] or (idx.shape[0] > 1 and offsets[1] != C):
            offsets = self._offsets = np.arange(0, idx.shape[0] * C, C)
        return offsets + idx

    def _unit_loss_and_grad(self, y, z, grad):
        C = z.shape[-1]
        zf = z.reshape(-1, C)
        label = self._label_index(y, C)  # one take / put on the flat array instead of [rows, idx]
        s = zf - _row_max(zf)[:, None]  # shifted logits: exp never overflows
        e = np.exp(s)
        se = _row_sum(e)
        # l = logsumexp(z) - z[label] = log Σ exp(s) - s[label]: exact even where p[label] underflows
        l = np.log(se)
        l -= s.reshape(-1).take(label)
        l = l.reshape(y.shape)
        e /= se[:, None]
        p = e.reshape(z.shape)
        if not grad:
            return l, None, p
        dz = e.copy()
        dz.reshape(-1)[label] -= 1
        return l, dz.reshape(z.shape), p


_BY_NAME: dict[str, type[Loss]] = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_BY_CLASS = {cls.__name__: cls for cls in _BY_NAME.values()}


def get(identifier: Any, custom_objects: dict | None = None) -> Loss:
    """A Loss from a name, a config dict (``get_config()``'s), or a Loss (returned as is).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.lower()) or _BY_CLASS.get(identifier)
        if cls is None:
            raise ValueError(f"unknown loss {identifier!r}; known: {', '.join(sorted(_BY_NAME))}")
        return cls()
    if isinstance(identifier, dict):
        name = identifier.get("class_name")
        cls = (custom_objects or {}).get(name) or _BY_CLASS.get(name)
        if cls is None:
            raise ValueError(f"unknown loss class {name!r}; known: {', '.join(sorted(_BY_CLASS))} "
                             "(pass custom ones through custom_objects)")
        kwargs = {k: v for k, v in identifier.items() if k != "class_name"}
        return cls(**kwargs)
    raise TypeError(f"loss must be a name, a config dict or a pylstm.losses.Loss, got {identifier!r}")


def prepare_sample_weight(w: Any, out_shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
    """Check ``sample_weight`` (N,) or, for a sequence output (N, T, C), (N, T); returns it in ``dtype``.

    Raises
    ------
    ValueError
        Wrong shape (naming both shapes) or negative / non-finite weights.
    """
    if w is None:
        return None
    w = np.asarray(w)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must be numeric, got dtype {w.dtype}")
    unit_shape = tuple(out_shape[:-1])
    if w.shape != unit_shape and w.shape != unit_shape[:1]:
        allowed = "(N,)" + (" or (N, T)" if len(unit_shape) == 2 else "")
        raise ValueError(f"sample_weight of shape {w.shape} does not match the model output {tuple(out_shape)}: "
                         f"expected {allowed} with N = {unit_shape[0]}")
    if w.size and (not np.all(np.isfinite(w)) or w.min() < 0):
        raise ValueError("sample_weight must be finite and >= 0")
    return np.ascontiguousarray(w, dtype=dtype)
