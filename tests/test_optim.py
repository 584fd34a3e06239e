"""Optimizers against updates computed by hand (plain Python floats), clipping, schedules, state, config."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pylstm import optim, schedules
from tolerances import rel_err, tol

P0 = [1.0, -2.0, 0.5]
GRADS = [[0.5, -1.0, 0.0], [0.25, 2.0, -0.5], [-1.0, 0.1, 0.3]]


def _run(opt, grads=GRADS, p0=P0):
    """Apply the gradients one at a time to two arrays (to check the flat layout too)."""
    a = np.array(p0[:2], np.float64)
    b = np.array(p0[2:], np.float64)
    for g in grads:
        opt.apply_gradients([a, b], [np.array(g[:2]), np.array(g[2:])])
    return list(a) + list(b)


def _hand(rule, grads=GRADS, p0=P0):
    """The same updates, element by element, with Python floats."""
    out = []
    for i, p in enumerate(p0):
        state = {}
        for t, g_all in enumerate(grads, start=1):
            p = rule(p, g_all[i], t, state)
        out.append(p)
    return out


def test_sgd_first_steps_by_hand():
    # p = 1, g = 0.5, lr 0.1, momentum 0.9: v = -0.05, p = 0.95; again: v = -0.095, p = 0.855
    opt = optim.SGD(lr=0.1, momentum=0.9)
    assert np.allclose(_run(opt, [[0.5, 0, 0]] * 2)[0], 0.855)
    # Nesterov: p = 1 + 0.9(-0.05) - 0.05 = 0.905; then 0.905 + 0.9(-0.095) - 0.05 = 0.7695
    opt = optim.SGD(lr=0.1, momentum=0.9, nesterov=True)
    assert np.allclose(_run(opt, [[0.5, 0, 0]] * 2)[0], 0.7695)
    assert np.allclose(_run(optim.SGD(lr=0.1), [[0.5, 0, 0]])[0], 0.95)


def _sgd(lr, mu, nesterov):
    def rule(p, g, t, s):
        v = mu * s.get("v", 0.0) - lr * g
        s["v"] = v
        return p + mu * v - lr * g if nesterov else p + v
    return rule


def _rmsprop(lr, rho, eps):
    def rule(p, g, t, s):
        s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g * g
        return p - lr * g / (math.sqrt(s["a"]) + eps)
    return rule


def _adagrad(lr, a0, eps):
    def rule(p, g, t, s):
        s["a"] = s.get("a", a0) + g * g
        return p - lr * g / (math.sqrt(s["a"]) + eps)
    return rule


def _adam(lr, b1, b2, eps, wd=0.0):
    def rule(p, g, t, s):
        p = p - lr * wd * p
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        mhat, vhat = s["m"] / (1 - b1 ** t), s["v"] / (1 - b2 ** t)
        return p - lr * mhat / (math.sqrt(vhat) + eps)
    return rule


@pytest.mark.parametrize("opt,rule", [
    (optim.SGD(lr=0.1), _sgd(0.1, 0.0, False)),
    (optim.SGD(lr=0.1, momentum=0.8), _sgd(0.1, 0.8, False)),
    (optim.SGD(lr=0.1, momentum=0.8, nesterov=True), _sgd(0.1, 0.8, True)),
    (optim.RMSprop(lr=0.01, rho=0.8, epsilon=1e-3), _rmsprop(0.01, 0.8, 1e-3)),
    (optim.Adagrad(lr=0.1, initial_accumulator_value=0.2, epsilon=1e-3), _adagrad(0.1, 0.2, 1e-3)),
    (optim.Adam(lr=0.05, beta_1=0.8, beta_2=0.9, epsilon=1e-3), _adam(0.05, 0.8, 0.9, 1e-3)),
    (optim.AdamW(lr=0.05, weight_decay=0.1, beta_1=0.8, beta_2=0.9, epsilon=1e-3), _adam(0.05, 0.8, 0.9, 1e-3, 0.1)),
], ids=lambda v: repr(v)[:30] if isinstance(v, optim.Optimizer) else "")
def test_updates_match_hand_computation(opt, rule):
    assert rel_err(np.array(_run(opt)), np.array(_hand(rule))) < tol(np.float64)
    assert opt.iterations == 3


def test_clipnorm_is_global_and_clipvalue_elementwise():
    # g = (3, 4) over two parameters: norm 5 -> scaled to norm 1: (0.6, 0.8)
    opt = optim.SGD(lr=1.0, clipnorm=1.0)
    np.testing.assert_allclose(_run(opt, [[3.0, 0.0, 4.0]], [0.0, 0.0, 0.0]), [-0.6, 0.0, -0.8])
    opt = optim.SGD(lr=1.0, clipnorm=10.0)  # below the threshold: untouched
    np.testing.assert_allclose(_run(opt, [[3.0, 0.0, 4.0]], [0.0, 0.0, 0.0]), [-3.0, 0.0, -4.0])
    opt = optim.SGD(lr=1.0, clipvalue=0.5)
    np.testing.assert_allclose(_run(opt, [[3.0, -0.2, -4.0]], [0.0, 0.0, 0.0]), [-0.5, 0.2, 0.5])
    # value first, then the norm of the clipped gradient: (0.5, 0.5) has norm 0.707 -> scaled to 0.5
    opt = optim.SGD(lr=1.0, clipvalue=0.5, clipnorm=0.5)
    np.testing.assert_allclose(_run(opt, [[3.0, 0.0, 4.0]], [0.0, 0.0, 0.0]),
                               [-0.5 / math.sqrt(2), 0.0, -0.5 / math.sqrt(2)])


def test_float32_update_stays_float32():
    opt = optim.Adam(lr=0.1)
    p = np.ones(4, np.float32)
    opt.apply_gradients([p], [np.ones(4, np.float32)])
    assert p.dtype == np.float32 and opt._state["m"].dtype == np.float32


# --------------------------------------------------------------------------- schedules
def test_schedules_values():
    e = schedules.ExponentialDecay(1.0, decay_steps=10, decay_rate=0.5)
    assert e(0) == 1.0 and math.isclose(e(10), 0.5) and math.isclose(e(5), 0.5 ** 0.5)
    es = schedules.ExponentialDecay(1.0, 10, 0.5, staircase=True)
    assert es(9) == 1.0 and es(10) == 0.5
    s = schedules.StepDecay(0.1, step_size=3, gamma=0.5)
    assert [s(k) for k in range(7)] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]
    c = schedules.CosineDecay(1.0, decay_steps=4, alpha=0.1)
    assert c(0) == 1.0 and math.isclose(c(2), 0.55) and math.isclose(c(4), 0.1) and math.isclose(c(100), 0.1)
    w = schedules.CosineDecay(1.0, decay_steps=4, warmup_steps=2)
    assert w(0) == 0.5 and w(1) == 1.0 and w(2) == 1.0


def test_schedule_drives_the_optimizer_and_round_trips_json():
    sched = schedules.StepDecay(0.1, step_size=1, gamma=0.5)
    opt = optim.SGD(lr=sched)
    p = _run(opt, [[1.0, 0, 0]] * 3, [0.0, 0.0, 0.0])
    assert np.isclose(p[0], -(0.1 + 0.05 + 0.025))
    cfg = json.loads(json.dumps(opt.get_config()))
    clone = optim.optimizer_from_config(cfg)
    assert clone.lr == sched and clone.get_config() == opt.get_config()


def test_callable_lr_by_name():
    def warmup(step):
        return 0.01 * min(1.0, (step + 1) / 10)

    opt = optim.Adam(lr=warmup, clipnorm=2.0)
    cfg = json.loads(json.dumps(opt.get_config()))
    assert cfg["lr"] == {"class_name": "callable", "name": "warmup"}
    with pytest.raises(ValueError, match="custom_objects"):
        optim.optimizer_from_config(cfg)
    clone = optim.optimizer_from_config(cfg, custom_objects={"warmup": warmup})
    assert clone.lr is warmup and clone.clipnorm == 2.0 and clone.current_lr() == 0.001


def test_learning_rate_alias_and_errors():
    assert optim.Adam(learning_rate=0.5).lr == 0.5
    with pytest.raises(ValueError, match="lr must be"):
        optim.SGD(lr=-1.0)
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        optim.get("adamax")
    with pytest.raises(ValueError, match="beta_1"):
        optim.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="clipnorm"):
        optim.SGD(clipnorm=0.0)


# --------------------------------------------------------------------------- state
@pytest.mark.parametrize("make", [lambda: optim.SGD(0.1, momentum=0.9), lambda: optim.RMSprop(0.01),
                                  lambda: optim.Adagrad(0.1), lambda: optim.Adam(0.05), lambda: optim.AdamW(0.05)])
def test_state_round_trip_resumes_exactly(make):
    full = make()
    expected = _run(full)
    first = make()
    p = _run(first, GRADS[:2])
    state = first.get_state()
    assert state["iterations"] == 2
    resumed = make()
    resumed.set_state(state)  # before build: kept and applied at the first update
    a, b = np.array(p[:2]), np.array(p[2:])
    resumed.apply_gradients([a, b], [np.array(GRADS[2][:2]), np.array(GRADS[2][2:])])
    np.testing.assert_array_equal(list(a) + list(b), expected)


def test_state_errors():
    opt = optim.Adam()
    _run(opt, GRADS[:1])
    state = opt.get_state()
    assert sorted(state) == ["iterations", "lr", "m.0", "m.1", "v.0", "v.1"]
    bad = dict(state, **{"m.0": np.zeros(5)})
    with pytest.raises(ValueError, match=r"'m.0' has shape \(5,\)"):
        opt.set_state(bad)
    with pytest.raises(ValueError, match="not a slot"):
        opt.set_state({"momentum.0": np.zeros(2)})
    with pytest.raises(ValueError, match="other shapes"):
        opt.apply_gradients([np.zeros(7)], [np.zeros(7)])
