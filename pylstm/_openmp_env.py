"""How pylstm's OpenMP threads wait, set while the OpenMP runtime starts.

The kernels meet at a barrier once or twice per time step. A thread that
spins there for long (libgomp's default is about 300,000 iterations) burns a
core another process may need, and when the machine is busy a descheduled
spinner makes every step wait for the scheduler: a 2-thread run then becomes
many times slower than a 1-thread one. So threads spin only briefly, then
sleep. libgomp reads this once, when it is loaded, so it is set around the
import of ``pylstm._core`` only, then the environment is put back (other
libraries and child processes keep their own defaults). A user's own
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` wins.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

# A few microseconds of spinning: enough to catch the next step's work when
# the machine is quiet, short enough to yield quickly when it is not. Measured
# on the 2-core VM (benchmarks/bench_load.py, 64,32,65,128 training step,
# 2 threads): 300 -> 18.3 ms quiet (threads fall asleep between steps) but
# 13.7 ms under a busy loop; 1000 -> 8.4 ms quiet, 17.1 ms loaded; 2000 ->
# 8.6 and 22.6 ms; 20000 -> 8.1 and 59 ms.
SPIN_COUNT = "1000"


# How pylstm's threads wait at barriers, for pylstm.info(): set by brief_spinning.
wait_policy = "not set"


def _libgomp_already_loaded() -> bool:
    """Whether this process already holds a libgomp.so (Linux; False where unknown).

    Its settings were then read when it loaded, and pylstm's extension will use
    it: PyTorch's wheel brings one under that name. (A renamed copy, the
    libgomp-<hash>.so that auditwheel makes, is a separate runtime and does not
    count.)
    """
    try:
        with open("/proc/self/maps") as maps:
            return any("/libgomp.so" in line for line in maps)
    except OSError:
        return False


@contextlib.contextmanager
def brief_spinning() -> Iterator[None]:
    """Inside the block, a newly loaded libgomp spins briefly at barriers."""
    global wait_policy
    user = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}
    if user:
        wait_policy = "the environment's (" + ", ".join(f"{k}={v}" for k, v in user.items()) + ")"
        yield
        return
    if _libgomp_already_loaded():
        # Too late to set: the runtime's default, longer spin stays (the 2-core VM, 64,32,65,128 training
        # step at 2 threads beside a busy loop: 1.45-1.55x the quiet 1-thread time after PyTorch's libgomp,
        # 1.58-2.02x after a bare one, 1.50-1.55x with the brief spin). Import pylstm first, or set
        # GOMP_SPINCOUNT before Python starts, to have it brief.
        wait_policy = "libgomp's default (it was loaded before pylstm)"
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        yield
        wait_policy = f"brief spin, then sleep (GOMP_SPINCOUNT={SPIN_COUNT}, set while pylstm loaded)"
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)
