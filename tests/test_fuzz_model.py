"""Fuzz the model API: layers, predict, fit, generate and load_model never crash, hang or return garbage.

Small on purpose (the kernels' own fuzzing is tests/test_fuzz_kernels.py). Random architectures and
random, often wrong, arguments; every call must either

- return a sound result: ``predict`` equal to the same model on the NumPy reference backend, ``fit``
  a History with weights still finite and one History record per step, ``generate`` symbols of the
  vocabulary in the right shape (the same ones again for the same seed), ``load_model`` a model
  that predicts exactly as the saved one; or
- raise TypeError/ValueError/RuntimeError/MemoryError (fit: also NonFiniteLossError; load_model: also
  OSError for a path that is not a file) with a message.

Same profiles as test_fuzz_kernels.py (``PYLSTM_FUZZ_PROFILE``), fewer examples per target.
"""
from __future__ import annotations

import collections
import os
import tempfile
import warnings
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import pylstm as pl
from pylstm import layers, optim
from pylstm.model import NonFiniteLossError
from test_fuzz_kernels import JUNK, PROFILE, relayout, values, watchdog

_EXAMPLES = {"ci": 60, "sanitize": 20, "long": int(os.environ.get("PYLSTM_FUZZ_EXAMPLES", "5000"))}
FUZZ = settings(max_examples=_EXAMPLES[PROFILE], deadline=None, derandomize=PROFILE != "long", database=None,
                print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
COUNTS: collections.Counter[str] = collections.Counter()
ALLOWED = (TypeError, ValueError, RuntimeError, MemoryError)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:Casting complex values")


def _call(name: str, fn: Callable[[], Any], allowed: tuple[type, ...] = ALLOWED) -> tuple[str, Any]:
    """("ok", result) or ("raise", error) after checking the error's class and message."""
    COUNTS[name] += 1
    with warnings.catch_warnings(), watchdog():
        warnings.simplefilter("ignore")
        try:
            result = fn()
        except allowed as e:
            assert len(str(e)) >= 10, f"{name}: unclear message {str(e)!r}"
            return "raise", e
    COUNTS[f"{name}: returned"] += 1
    return "ok", result


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Kernel backend vs reference backend: same NaN places, values to a float-width tolerance."""
    assert got.dtype == want.dtype and got.shape == want.shape, f"{what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN in different places"
    ok = ~np.isnan(want)
    scale = max(float(np.max(np.abs(want[ok]), initial=0)), 1.0)
    err = float(np.max(np.abs(got[ok] - want[ok]), initial=0)) / scale
    # Two float32 implementations (fused vs plain ops, SIMD exp) of a few layers: 1e-3 is wide of their
    # rounding and far below the O(1) error of a wrong or unwritten value.
    assert err < (1e-3 if got.dtype == np.float32 else 1e-9), f"{what}: error {err:.2e}"


# --------------------------------------------------------------------------- layer constructors
_LAYER_ARGS = {
    layers.LSTM: {"units": [1, 3, 0, -1, 2.5, "4", None, True], "return_sequences": [True, False, 1, "yes"],
                  "return_state": [False, True], "stateful": [False, True], "vocab_size": [None, 5, 0, 2.0],
                  "dropout": [0.0, 0.5, 1.0, -0.1, np.nan, "0.1"], "grad_clip": [None, 1.0, 0.0, -1.0, np.inf],
                  "kernel_initializer": ["glorot_uniform", "nope", 3], "forget_bias": [1.0, np.nan, "1"]},
    layers.Dense: {"units": [1, 4, 0, -2, 1.5], "activation": [None, "softmax", "sigmoid", "tanh", "relu",
                                                                 "nope", 3]},
    layers.Embedding: {"vocab": [5, 1, 0, -3, 2.0], "dim": [3, 0, "3"]},
    layers.Dropout: {"rate": [0.0, 0.3, 1.0, -0.5, np.nan, None]},
}


@FUZZ
@given(st.data())
def test_fuzz_layer_constructors(data):
    cls = data.draw(st.sampled_from(list(_LAYER_ARGS)))
    kwargs = {k: data.draw(st.sampled_from(v)) for k, v in _LAYER_ARGS[cls].items() if data.draw(st.booleans())}
    if cls in (layers.Dense, layers.Embedding, layers.LSTM) and data.draw(st.integers(0, 3)):
        kwargs.setdefault(next(iter(_LAYER_ARGS[cls])), 3)  # the required first argument, mostly present
    if cls is layers.Embedding and "vocab" in kwargs:
        kwargs.setdefault("dim", 2)
    if cls is layers.Dropout and data.draw(st.integers(0, 3)):
        kwargs.setdefault("rate", 0.1)
    note(f"{cls.__name__}(**{kwargs!r})")
    kind, layer = _call("layer constructors", lambda: cls(**kwargs))
    if kind == "ok":
        assert cls.__name__ in repr(layer)


# --------------------------------------------------------------------------- predict
@st.composite
def models(draw, ids: bool | None = None) -> tuple[pl.Sequential, dict]:
    """A random valid architecture, built, with what its inputs look like."""
    ids = draw(st.booleans()) if ids is None else ids
    V, F = draw(st.integers(2, 7)), draw(st.integers(1, 4))
    stack: list = []
    if ids and draw(st.booleans()):
        stack.append(layers.Embedding(V, draw(st.integers(1, 4))))
        first_lstm_vocab = None
    else:
        first_lstm_vocab = V if ids else None
    n_lstm = draw(st.integers(1, 2))
    for k in range(n_lstm):
        last = k == n_lstm - 1
        stack.append(layers.LSTM(draw(st.sampled_from([1, 2, 3, 5, 8])), vocab_size=first_lstm_vocab if k == 0 else None,
                                 return_sequences=(not last) or draw(st.booleans()),
                                 dropout=draw(st.sampled_from([0.0, 0.0, 0.3]))))
        if not last and draw(st.integers(0, 3)) == 0:
            stack.append(layers.Dropout(0.2))
    head = draw(st.sampled_from([None, "softmax", "sigmoid"]))
    stack.append(layers.Dense(draw(st.integers(1, 3)) if head != "softmax" else V, activation=head))
    T = draw(st.sampled_from([None, None, 1, 4]))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    model = pl.Sequential(stack, input_shape=(T,) if ids else (T, F), dtype=dtype, seed=draw(st.integers(0, 9)))
    return model, {"ids": ids, "V": V, "F": F, "T": T, "dtype": dtype, "head": head}


@st.composite
def inputs(draw, spec: dict, clean: bool) -> Any:
    """x for a model of ``spec``: valid (values fuzzed) when ``clean``, else anything near valid."""
    N = draw(st.integers(1, 5) if clean else st.integers(0, 5))
    T = spec["T"] or draw(st.integers(1, 6) if clean else st.integers(0, 6))
    if spec["ids"]:
        V = spec["V"] if clean else spec["V"] + draw(st.integers(0, 1))
        x = np.random.default_rng(draw(st.integers(0, 99))).integers(0, V, (N, T))
        if not clean:
            x = x.astype(draw(st.sampled_from([np.int64, np.uint8, np.float64, np.bool_])))
    else:
        F = spec["F"] if clean else draw(st.sampled_from([spec["F"], spec["F"], spec["F"] + 1]))
        dt = draw(st.sampled_from([np.float32, np.float64] + ([] if clean else [np.int8, np.bool_, np.complex64,
                                                                                  object])))
        x = draw(values((N, T, F), dt))
    x = relayout(draw, x)
    if not clean and draw(st.integers(0, 5)) == 0:
        x = draw(JUNK)
    return x


@FUZZ
@given(st.data())
def test_fuzz_predict(data):
    model, spec = data.draw(models())
    clean = data.draw(st.booleans())
    x = data.draw(inputs(spec, clean))
    batch_size = data.draw(st.sampled_from([None, None, 1, 2, 3] + ([] if clean else [0, -1, 1.5, "2", True])))
    note(f"{model!r} {spec}; predict({x!r}, batch_size={batch_size!r})")
    kind, got = _call("predict", lambda: model.predict(x, batch_size=batch_size))
    with layers._use_backend("reference"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            want = model.predict(x, batch_size=batch_size)
        except Exception as e:  # noqa: BLE001
            want = e
    if kind == "raise":
        assert isinstance(want, Exception), f"the kernel backend refused ({got!r}) what the reference computes"
        return
    assert not clean or not isinstance(want, Exception), want
    assert not isinstance(want, Exception), f"the kernel backend computed what the reference refuses ({want!r})"
    for k, (g, w) in enumerate(zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,))):
        _close(g, w, f"output {k}")


# --------------------------------------------------------------------------- fit
@FUZZ
@given(st.data())
def test_fuzz_fit(data):
    draw = data.draw
    model, spec = draw(models(ids=False))
    sparse = spec["head"] == "softmax"
    model.compile(loss="sparse_categorical_crossentropy" if sparse else "mse",
                  optimizer=draw(st.sampled_from([optim.SGD(0.1), optim.Adam(1e-2)])))
    clean = draw(st.booleans())
    x = draw(inputs(spec, clean))
    N = x.shape[0] if isinstance(x, np.ndarray) and x.ndim else len(x) if isinstance(x, list) else 1
    out = model.output_shape((spec["T"], spec["F"]))  # per sample: (units,) or (T, units)
    if sparse:
        y = np.random.default_rng(0).integers(0, spec["V"] + (0 if clean else draw(st.integers(0, 1))),
                                               (N,) + tuple(1 if d is None else d for d in out[:-1]))
    else:
        y = draw(values((N,) + tuple(1 if d is None else d for d in out), np.float64))
    if not clean and draw(st.integers(0, 3)) == 0:
        y = draw(st.one_of(JUNK, st.just(y[:-1] if len(y) else y)))
    kwargs: dict[str, Any] = {"verbose": 0, "epochs": draw(st.sampled_from([1, 2] + ([] if clean else [0, -1, "1"]))),
                              "batch_size": draw(st.sampled_from([1, 2, 32] + ([] if clean else [0, 1.5, None])))}
    if draw(st.booleans()):
        kwargs["shuffle"] = draw(st.booleans())
    if not clean and draw(st.integers(0, 3)) == 0:
        kwargs["sample_weight"] = draw(st.one_of(JUNK, st.just(np.ones(N)), st.just(np.full(N, np.nan))))
    if not clean and draw(st.integers(0, 3)) == 0:
        kwargs["validation_data"] = draw(st.one_of(JUNK, st.just((x, y))))
    before = model.get_weights()
    note(f"{model!r}; fit({x!r}, {y!r}, **{kwargs!r})")
    kind, result = _call("fit", lambda: model.fit(x, y, **kwargs), allowed=(*ALLOWED, NonFiniteLossError))
    # Whatever happened: one History record per optimizer step, and finite weights (a non-finite
    # loss or gradient stops fit before the update).
    assert model.step == model.history.num_steps
    assert all(np.isfinite(w).all() for w in model.get_weights()), "fit left non-finite weights"
    if kind == "raise" and not isinstance(result, NonFiniteLossError) and model.step == 0:
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)  # refused before the first step: nothing changed


# --------------------------------------------------------------------------- generate
@FUZZ
@given(st.data())
def test_fuzz_generate(data):
    draw = data.draw
    model, spec = draw(models(ids=True))
    if spec["head"] != "softmax" or model.layers[-2].return_sequences:
        model = pl.Sequential([layers.Embedding(spec["V"], 3), layers.LSTM(4), layers.Dense(spec["V"],
                                                                                                activation="softmax")],
                              input_shape=(None,), seed=0)
    vocab = "abcdefg"[: spec["V"]]
    model.vocab = vocab
    clean = draw(st.booleans())  # half the calls valid (values still fuzzed), half anything
    V = spec["V"]
    if clean:
        prompt = draw(st.one_of(st.text(alphabet=vocab, min_size=1, max_size=5),
                                st.lists(st.integers(0, V - 1), min_size=1, max_size=5).map(np.array),
                                st.lists(st.lists(st.integers(0, V - 1), min_size=2, max_size=2), min_size=1,
                                         max_size=3).map(np.array)))
    else:
        prompt = draw(st.one_of(st.text(alphabet=vocab + "z", max_size=5),
                                st.lists(st.integers(-1, V), max_size=5).map(np.array),
                                st.lists(st.integers(0, V - 1), min_size=1, max_size=8).map(
                                    lambda a: np.array(a, dtype=np.float64)),
                                JUNK))
    steps = draw(st.sampled_from([0, 1, 5] + ([] if clean else [-1, 2.0, True])))
    kw = {"temperature": draw(st.sampled_from([1.0, 0.0, 0.5, 100.0, np.inf] + ([] if clean else [-1.0, np.nan]))),
          "top_k": draw(st.sampled_from([None, 1, 3, 100] + ([] if clean else [0, -1]))),
          "greedy": draw(st.booleans()), "seed": draw(st.sampled_from([None, 0, 7]))}
    note(f"generate({prompt!r}, {steps!r}, **{kw!r})")
    kind, out = _call("generate", lambda: model.generate(prompt, steps, **kw))
    if kind == "raise":
        return
    if isinstance(prompt, str):
        assert isinstance(out, str) and len(out) == steps and set(out) <= set(vocab), repr(out)
    else:
        assert out.shape == np.shape(prompt)[:-1] + (steps,), (out.shape, np.shape(prompt))
        assert out.dtype.kind in "iu" and ((0 <= out) & (out < spec["V"])).all(), out
    if kw["seed"] is not None:
        again = model.generate(prompt, steps, **kw)
        assert (again == out) if isinstance(out, str) else np.array_equal(again, out), "same seed, other symbols"


# --------------------------------------------------------------------------- load_model
_SAVED: dict[str, Any] = {}


def _saved_checkpoint() -> tuple[bytes, np.ndarray, np.ndarray]:
    """A small trained model's checkpoint bytes, an input and its predictions (made once)."""
    if not _SAVED:
        model = pl.Sequential([layers.LSTM(3, return_sequences=True), layers.LSTM(2), layers.Dense(2)],
                              input_shape=(None, 2), seed=0)
        model.compile(loss="mse", optimizer=optim.Adam(1e-2))
        x = np.random.default_rng(0).standard_normal((4, 3, 2)).astype(np.float32)
        model.fit(x, np.zeros((4, 2)), batch_size=2, epochs=1, verbose=0)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "m.pylstm")
            model.save(path)
            with open(path, "rb") as f:
                _SAVED.update(data=f.read(), x=x, y=model.predict(x))
    return _SAVED["data"], _SAVED["x"], _SAVED["y"]


@FUZZ
@given(st.data())
def test_fuzz_load_model(data):
    raw, x, y = _saved_checkpoint()
    buf = bytearray(raw)
    how = data.draw(st.sampled_from(["bytes", "bytes", "cut", "insert", "append", "foreign", "empty", "intact"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    if how == "bytes":  # a few bytes anywhere set to random values
        for i in rng.integers(0, len(buf), data.draw(st.integers(1, 8))):
            buf[i] = int(rng.integers(0, 256))
    elif how == "cut":
        a = int(rng.integers(0, len(buf)))
        del buf[a: a + data.draw(st.integers(1, 64))]
    elif how == "insert":
        a = int(rng.integers(0, len(buf)))
        buf[a:a] = rng.integers(0, 256, data.draw(st.integers(1, 16))).astype(np.uint8).tobytes()
    elif how == "append":
        buf += b"\x00" * data.draw(st.integers(1, 100))
    elif how == "foreign":
        buf = bytearray(rng.integers(0, 256, data.draw(st.integers(1, 4096))).astype(np.uint8).tobytes())
    elif how == "empty":
        buf = bytearray()
    note(f"{how}: {len(buf)} bytes")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.pylstm")
        with open(path, "wb") as f:
            f.write(bytes(buf))
        kind, model = _call("load_model", lambda: pl.load_model(path))
    if kind == "ok":
        # Accepted: it must be the saved model (a change no checksum covers must not matter).
        np.testing.assert_array_equal(model.predict(x), y)
    elif bytes(buf) == raw:
        raise AssertionError(f"an intact checkpoint was refused: {model!r}")


@pytest.mark.parametrize("path", [None, 3, b"\xff", "", "/nonexistent/m.pylstm", "."])
def test_load_model_of_a_path_that_is_no_checkpoint_file(path):
    with pytest.raises((TypeError, ValueError, OSError)):
        pl.load_model(path)


def test_load_model_refuses_a_device_at_once():
    import subprocess
    import sys
    import tempfile

    # In a child with 1 GB of address space, so that reading /dev/zero ends in MemoryError, not the OOM killer.
    code = ("import resource, time, pylstm\n"
            "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "t = time.perf_counter()\n"
            "try:\n    pylstm.load_model('/dev/zero')\n"
            "except MemoryError:\n    print('memory error after', time.perf_counter() - t)\n"
            "except (ValueError, OSError) as e:\n    print('refused:', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tempfile.gettempdir())  # not the repository root: its pylstm/ has no _core
    assert "refused" in done.stdout, done.stdout + done.stderr[-2000:]
