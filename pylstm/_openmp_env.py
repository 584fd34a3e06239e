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


@contextlib.contextmanager
def brief_spinning() -> Iterator[None]:
    """Inside the block, a newly loaded libgomp spins briefly at barriers."""
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        yield
    finally:
        os.environ.pop("GOMP_SPINCOUNT", None)
