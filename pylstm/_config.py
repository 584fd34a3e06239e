"""Package-wide defaults, kept on the Python side.

The compiled extension holds no mutable global state: every kernel call is
given its thread count explicitly, and this module is where the default lives.
"""
from __future__ import annotations

import numbers
import os

# More threads than this is never useful and would not fit OpenMP's int.
MAX_THREADS = 1 << 16

_default_threads: int | None = None


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int | None) -> None:
    """Set the default number of threads for every kernel call.

    ``None`` restores the default: ``OMP_NUM_THREADS`` if set when pylstm was
    imported, else the CPUs this process may run on.
    """
    global _default_threads
    if n is None:
        _default_threads = None
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"num_threads must be a positive int or None, got {n!r}")
    if n < 1:
        raise ValueError(f"num_threads must be >= 1, got {n}")
    _default_threads = n


def _environment_default() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return _cpu_count()


# Read once: it is asked on every kernel call, and the affinity query is a syscall.
_ENVIRONMENT_DEFAULT = _environment_default()


def get_num_threads() -> int:
    """The thread count a kernel call with ``num_threads=None`` uses."""
    if _default_threads is not None:
        return _default_threads
    return _ENVIRONMENT_DEFAULT


def resolve_num_threads(num_threads: int | None) -> int:
    """``num_threads`` as given to a kernel entry, checked, with None resolved."""
    if num_threads is None:
        return get_num_threads()
    if type(num_threads) is int and 1 <= num_threads <= MAX_THREADS:  # the common case, without the ABC check
        return num_threads
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads must be a positive int or None, got {num_threads!r}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be >= 1, got {num_threads}")
    if num_threads > MAX_THREADS:
        raise ValueError(f"num_threads must be <= {MAX_THREADS}, got {num_threads}")
    return int(num_threads)
