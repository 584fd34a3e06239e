"""Which kernel path runs: the CPU's best by default, ``PYLSTM_ISA`` forces one,
a name this CPU cannot run warns and falls back to the best, and no path uses
an instruction the CPU lacks.

The path is chosen at import, so every case runs in a fresh interpreter. The
CPU without AVX-512 is valgrind's: it runs x86-64 code up to AVX2 and reports
no AVX-512 to cpuid, as an AVX2-only machine (an older Intel, an AMD Zen 2 or 3)
does; those cases skip where valgrind is not installed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import pylstm

SUPPORTED = pylstm.kernels._available_isas()
BEST = SUPPORTED[-1]
COMPILED = pylstm.info()["compiled_isas"]

# Imports pylstm, runs every kernel entry once in float32 and float64 on the chosen path (checked against the
# NumPy reference), prints what happened as JSON.
_PROBE = """
import json, warnings
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import pylstm
from pylstm import reference
rng = np.random.default_rng(0)
worst = 0.0
for dt in (np.float32, np.float64):
    for (T, B, I, H) in [(3, 1, 2, 3), (3, 16, 2, 5), (2, 4, 3, 20)]:  # batch 1, small H in lanes, the rest
        W = [(0.3 * rng.standard_normal(s)).astype(dt) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]
        x = rng.standard_normal((B, T, I)).astype(dt)
        dy = rng.standard_normal((B, T, H)).astype(dt)
        y, h, c, cache = pylstm.lstm_forward(x, *W)
        g = pylstm.lstm_backward(cache, dy)
        y_ref, _, _, cache_ref = reference.lstm_forward(x, *W)
        g_ref = reference.lstm_backward(cache_ref, dy)
        worst = max(worst, float(np.abs(y - y_ref).max()), float(np.abs(g.dW_hh - g_ref.dW_hh).max()))
        pylstm.lstm_step(x[:, 0], *W, h=h, c=c)
        ids = rng.integers(0, I, (B, T))
        yi, _, _, cache_ids = pylstm.lstm_forward_ids(ids, *W)
        pylstm.lstm_backward(cache_ids, dy)
print(json.dumps({"isa": pylstm.info()["isa"], "supported": pylstm.info()["supported_isas"],
                  "warnings": [str(w.message) for w in caught], "worst": worst}))
"""


def _probe(tmp_path, isa: str | None, under_valgrind: bool = False) -> dict:
    env = dict(os.environ)
    env.pop("PYLSTM_ISA", None)
    if isa is not None:
        env["PYLSTM_ISA"] = isa
    wrapper = ["valgrind", "--tool=none", "-q"] if under_valgrind else []
    # From an empty folder: the checkout's own pylstm/ (no compiled extension) must not be the one imported.
    run = subprocess.run([*wrapper, sys.executable, "-c", textwrap.dedent(_PROBE)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["worst"] < 1e-4, report  # float32 tolerance; float64 is far below it
    return report


def test_the_default_is_the_best_path_this_cpu_runs(tmp_path):
    report = _probe(tmp_path, None)
    assert report["isa"] == BEST
    assert report["warnings"] == []


@pytest.mark.parametrize("isa", SUPPORTED)
def test_pylstm_isa_forces_a_supported_path(tmp_path, isa):
    report = _probe(tmp_path, isa)
    assert report["isa"] == isa
    assert report["warnings"] == []


def test_an_unknown_name_warns_and_runs_the_best_path(tmp_path):
    report = _probe(tmp_path, "sse9")
    assert report["isa"] == BEST
    assert len(report["warnings"]) == 1
    assert "PYLSTM_ISA='sse9'" in report["warnings"][0] and "unknown name" in report["warnings"][0]


def _need_a_cpu_without_avx512():
    if "avx512" not in COMPILED:
        pytest.skip("no x86 paths compiled here")
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (it stands in for a CPU without AVX-512)")


def test_a_cpu_without_avx512_runs_its_best_path(tmp_path):
    # Regression: the AVX-512 kernel table was built on the first call of any vector path, with AVX-512
    # instructions the compiler chose for building it: every AVX2-only CPU died of an illegal instruction.
    _need_a_cpu_without_avx512()
    report = _probe(tmp_path, None, under_valgrind=True)
    assert "avx512" not in report["supported"]
    assert report["isa"] == "avx2"
    assert report["warnings"] == []


def test_a_path_this_cpu_lacks_warns_and_runs_the_best_one(tmp_path):
    _need_a_cpu_without_avx512()
    report = _probe(tmp_path, "avx512", under_valgrind=True)
    assert report["isa"] == "avx2"
    assert len(report["warnings"]) == 1
    assert "PYLSTM_ISA='avx512'" in report["warnings"][0] and "this CPU lacks it" in report["warnings"][0]
