"""Losses and metrics: values against direct formulas, gradients against finite differences,
stability for large logits, label/weight shapes, and the errors."""
from __future__ import annotations

import numpy as np
import pytest

from pylstm import losses, metrics
from pylstm.gradcheck import _central_differences
from tolerances import FINITE_DIFF_EPS, FINITE_DIFF_TOL, rel_err, tol

F64 = np.float64


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _case(name, out_shape, rng):
    """(loss, labels) for an output of out_shape."""
    if name == "sparse":
        return losses.SparseCategoricalCrossentropy(), rng.integers(0, out_shape[-1], out_shape[:-1])
    if name == "categorical":
        y = np.eye(out_shape[-1])[rng.integers(0, out_shape[-1], out_shape[:-1])]
        return losses.CategoricalCrossentropy(), y
    if name == "binary":
        return losses.BinaryCrossentropy(), (rng.random(out_shape) > 0.5).astype(F64)
    return losses.MeanSquaredError(), rng.standard_normal(out_shape)


def _direct(name, y, z, w=None):
    """The per-unit loss written the obvious way, then the weighted mean."""
    if name == "sparse":
        l = -np.log(np.take_along_axis(_softmax(z), y[..., None], -1)[..., 0])
    elif name == "categorical":
        l = -(y * np.log(_softmax(z))).sum(-1)
    elif name == "binary":
        p = _sigmoid(z)
        l = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(-1)
    else:
        l = ((z - y) ** 2).mean(-1)
    if w is None:
        return l.mean()
    w = np.broadcast_to(w if w.ndim == l.ndim else w[:, None], l.shape)
    return (w * l).sum() / w.sum()


NAMES = ["sparse", "categorical", "binary", "mse"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("out_shape,w_shape", [((5, 3), None), ((4, 6, 3), None), ((5, 3), (5,)),
                                               ((4, 6, 3), (4, 6)), ((4, 6, 3), (4,))])
def test_value_and_gradient(name, out_shape, w_shape):
    rng = np.random.default_rng(0)
    loss, y = _case(name, out_shape, rng)
    z = rng.standard_normal(out_shape) * 2
    w = None if w_shape is None else rng.random(w_shape) * (rng.random(w_shape) > 0.3)
    y = loss.prepare_labels(y, out_shape, F64)
    total, wsum, dz, _ = loss._compute(y, z, w)
    assert rel_err(total / wsum, _direct(name, y, z, w)) < tol(F64)
    fd = _central_differences(lambda: _direct(name, y, z, w), {"z": z}, FINITE_DIFF_EPS)["z"]
    assert rel_err(dz, fd) < FINITE_DIFF_TOL


@pytest.mark.parametrize("name", ["sparse", "categorical", "binary"])
def test_large_logits_are_stable(name):
    rng = np.random.default_rng(1)
    loss, y = _case(name, (4, 3), rng)
    z = rng.choice([-1000.0, 1000.0], (4, 3))
    y = loss.prepare_labels(y, (4, 3), F64)
    total, wsum, dz, p = loss._compute(y, z, None)
    assert np.isfinite(total) and np.all(np.isfinite(dz)) and np.all(np.isfinite(p))
    assert total > 100  # confidently wrong somewhere: a big, finite loss


def test_public_call_on_probabilities_and_logits():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    expected = _direct("sparse", y, z)
    assert np.isclose(losses.SparseCategoricalCrossentropy()(y, _softmax(z)), expected)
    assert np.isclose(losses.SparseCategoricalCrossentropy(from_logits=True)(y, z), expected)
    yb = (rng.random((6, 1)) > 0.5).astype(float)
    assert np.isclose(losses.BinaryCrossentropy()(yb, _sigmoid(z[:, :1])), _direct("binary", yb, z[:, :1]))


@pytest.mark.parametrize("name,shape,ok", [
    ("sparse", (7,), True), ("sparse", (7, 1), True), ("sparse", (7, 3), False),
    ("binary", (7,), False), ("mse", (7, 3), True),
])
def test_last_step_label_shapes(name, shape, ok):
    loss, _ = _case(name, (7, 3), np.random.default_rng(0))
    y = np.zeros(shape, int)
    if ok:
        loss.prepare_labels(y, (7, 3), F64)
    else:
        with pytest.raises(ValueError, match=r"do not match the model output \(7, 3\)") as e:
            loss.prepare_labels(y, (7, 3), F64)
        assert str(shape) in str(e.value)


def test_sequence_label_shapes():
    sp = losses.SparseCategoricalCrossentropy()
    assert sp.prepare_labels(np.zeros((2, 5, 1), int), (2, 5, 4), F64).shape == (2, 5)
    assert sp.prepare_labels(np.zeros((2, 5), int), (2, 5, 4), F64).shape == (2, 5)
    bce = losses.BinaryCrossentropy()
    assert bce.prepare_labels(np.zeros((2, 5)), (2, 5, 1), F64).shape == (2, 5, 1)
    assert bce.prepare_labels(np.zeros(2), (2, 1), F64).shape == (2, 1)
    with pytest.raises(ValueError, match=r"\(2, 4\).*\(2, 5, 4\)"):
        sp.prepare_labels(np.zeros((2, 4), int), (2, 5, 4), F64)


def test_label_range_errors():
    sp = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\).*\[0, 3\]"):
        sp.prepare_labels(np.array([0, 3, 1]), (3, 3), F64)
    with pytest.raises(ValueError, match="integer class ids"):
        sp.prepare_labels(np.array([0.5, 1, 1]), (3, 3), F64)
    assert sp.prepare_labels(np.array([0.0, 2.0]), (2, 3), F64).dtype.kind == "i"
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        losses.BinaryCrossentropy().prepare_labels(np.array([[2.0]]), (1, 1), F64)


def test_sample_weight_shapes_and_mask():
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3, 2\)"):
        losses.prepare_sample_weight(np.ones((3, 2)), (3, 4), F64)
    with pytest.raises(ValueError, match=">= 0"):
        losses.prepare_sample_weight(-np.ones(3), (3, 4), F64)
    # an all-zero mask gives zero loss and zero gradient, not NaN
    loss = losses.SparseCategoricalCrossentropy()
    total, wsum, dz, _ = loss._compute(np.zeros((2, 3), int), np.ones((2, 3, 4)), np.zeros((2, 3)))
    assert total == 0 and wsum == 0 and not dz.any()


def test_unknown_loss_and_config():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
    loss = losses.get({"class_name": "BinaryCrossentropy", "from_logits": True})
    assert loss.from_logits and losses.get(loss.get_config()) == loss


# --------------------------------------------------------------------------- metrics
def test_accuracy_threshold_and_argmax():
    acc = metrics.Accuracy()
    p1 = np.array([[0.6], [0.4], [0.9]])
    y1 = np.array([[1.0], [1.0], [0.0]])
    c = metrics.correct_predictions(y1, p1, sparse=False)
    assert acc.batch_sums(y1, p1, None, c) == (1.0, 3.0)
    p = np.array([[0.1, 0.9], [0.8, 0.2]])
    c = metrics.correct_predictions(np.array([1, 1]), p, sparse=True)
    assert acc.batch_sums(None, p, None, c) == (1.0, 2.0)
    c = metrics.correct_predictions(np.array([[0.0, 1.0], [1.0, 0.0]]), p, sparse=False)
    assert acc.batch_sums(None, p, None, c) == (2.0, 2.0)


def test_sequence_accuracy_and_masks():
    correct = np.array([[True, True, False], [True, True, True]])
    mask = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    acc, seq = metrics.Accuracy(), metrics.SequenceAccuracy()
    assert acc.batch_sums(None, None, None, correct) == (5.0, 6.0)
    assert seq.batch_sums(None, None, None, correct) == (1.0, 2.0)
    assert acc.batch_sums(None, None, mask, correct) == (3.0, 3.0)  # masked steps left out
    assert seq.batch_sums(None, None, mask, correct) == (2.0, 2.0)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        metrics.get("f1")
