"""Shared fixtures: run kernel tests on every ISA this CPU has, single- and multi-threaded.

A test that takes ``isa`` runs once per ISA in ``kernels._available_isas()``
(ids ``isa=scalar``, ``isa=avx2``, ...), with that ISA forced for its duration;
a test that takes ``num_threads`` runs with 1 and 2 threads.  The kernel is
imported lazily, so tests that need neither (the reference's) never touch it.
``make_problem`` builds the random problems every test file uses.
"""
from __future__ import annotations

import os
import sys

# NumPy's OpenBLAS would start a thread per core for the reference's matmuls; on a small,
# shared machine two spinning BLAS threads made one reference run ~20x slower (0.4 s -> 8 s).
# The oracle is small and sequential by nature: one BLAS thread (unless the caller set it).
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

THREADS = (1, 2)


def _available_isas() -> list[str]:
    from pylstm import kernels

    return list(kernels._available_isas())


def _explicitly_parametrized(metafunc: pytest.Metafunc, name: str) -> bool:
    # A test may pin its own values with @pytest.mark.parametrize (e.g. one ISA for a large case).
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0]
        if isinstance(argnames, str):
            argnames = [a.strip() for a in argnames.split(",")]
        if name in argnames:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "isa" in metafunc.fixturenames and not _explicitly_parametrized(metafunc, "isa"):
        names = _available_isas()
        metafunc.parametrize("isa", names, indirect=True, ids=[f"isa={n}" for n in names])
    if "num_threads" in metafunc.fixturenames and not _explicitly_parametrized(metafunc, "num_threads"):
        metafunc.parametrize("num_threads", THREADS, ids=[f"threads={n}" for n in THREADS])


@pytest.fixture
def isa(request: pytest.FixtureRequest):
    """The ISA name, forced (``kernels._use_isa``) while the test runs."""
    from pylstm import kernels

    with kernels._use_isa(request.param):
        yield request.param


def _make_problem(B, T, I, H, *, seed=0, V=None, scale=1.0, init="wide", dtype=np.float64):
    """A random LSTM problem as a dict of arrays (float64 unless ``dtype`` says otherwise).

    x (B, T, I) ~ N(0, scale²); weights ~ U(-k, k) with k = 2/sqrt(H) ("wide": gates busy,
    not saturated) or 1/sqrt(H) ("torch": PyTorch's init); h0, c0 ~ N(0, 0.25); the
    loss weights R_y (B, T, H), R_h, R_c (B, H) ~ N(0, scale²).  With ``V``, W_ih is
    (4H, V) and ``ids`` (B, T) are drawn from [0, V) (small V makes ids repeat).
    ``dtype="float32"`` rounds every float to float32 and returns it as float64 again, so the
    float64 reference sees exactly the values a float32 kernel sees.
    """
    rng = np.random.default_rng(seed)
    k = {"wide": 2.0, "torch": 1.0}[init] / np.sqrt(H)
    p = {
        "x": rng.standard_normal((B, T, I)) * scale,
        "W_ih": rng.uniform(-k, k, (4 * H, V if V else I)),
        "W_hh": rng.uniform(-k, k, (4 * H, H)),
        "b_ih": rng.uniform(-k, k, 4 * H),
        "b_hh": rng.uniform(-k, k, 4 * H),
        "h0": rng.standard_normal((B, H)) * 0.5,
        "c0": rng.standard_normal((B, H)) * 0.5,
        "R_y": rng.standard_normal((B, T, H)) * scale,
        "R_h": rng.standard_normal((B, H)) * scale,
        "R_c": rng.standard_normal((B, H)) * scale,
    }
    if V:
        p["ids"] = rng.integers(0, V, (B, T))
    return {n: (a.astype(dtype).astype(np.float64) if a.dtype.kind == "f" else a) for n, a in p.items()}


@pytest.fixture
def make_problem():
    """``make_problem(B, T, I, H, seed=0, V=None, scale=1.0, init="wide", dtype=float64) -> dict``."""
    return _make_problem
