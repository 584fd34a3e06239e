"""How pylstm's OpenMP threads wait at barriers, as ``pylstm.info()["openmp_wait"]`` reports it.

The spin is set while the extension loads libgomp; when libgomp is already in the process (another extension
brought it, PyTorch's wheel among them) it keeps its own setting, and info() says so. Fresh interpreters: the
setting is made at import.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import pylstm

pytestmark = pytest.mark.skipif(not pylstm.info()["openmp"], reason="built without OpenMP")


def _wait_policy(tmp_path, code: str, **env_extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    run = subprocess.run([sys.executable, "-c", code + "\nimport pylstm; print(pylstm.info()['openmp_wait'])"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip().splitlines()[-1]


def test_brief_spin_by_default(tmp_path):
    assert _wait_policy(tmp_path, "").startswith("brief spin, then sleep (GOMP_SPINCOUNT=1000")


def test_the_users_setting_wins(tmp_path):
    assert _wait_policy(tmp_path, "", OMP_WAIT_POLICY="passive") == "the environment's (OMP_WAIT_POLICY=passive)"


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps (Linux)")
def test_a_libgomp_loaded_first_is_reported(tmp_path):
    try:
        import ctypes

        ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("no libgomp.so.1 to load here")
    got = _wait_policy(tmp_path, "import ctypes; ctypes.CDLL('libgomp.so.1')")
    assert got == "libgomp's default (it was loaded before pylstm)"
