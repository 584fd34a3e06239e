"""How pylstm's OpenMP threads wait, set before the OpenMP runtime starts.

The kernels meet at a barrier once or twice per time step. A thread that
spins there for long (libgomp's default is about 300,000 iterations) burns a
core another process may need, and when the machine is busy a descheduled
spinner makes every step wait for the scheduler: a 2-thread run then becomes
many times slower than a 1-thread one. So threads spin only briefly, then
sleep. libgomp reads this once, when it is loaded: it must be set before
``pylstm._core`` is imported, and a user's own setting wins.
"""
from __future__ import annotations

import os

# About 10-50 microseconds of spinning: enough to catch the next step's work
# when the machine is quiet, short enough to yield quickly when it is not.
SPIN_COUNT = "2000"

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
