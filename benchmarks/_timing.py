"""Timing and machine description shared by the benchmark scripts.

One harness for every implementation (the house rule): ``interleaved_medians``
times a set of callables round robin, so a slow drift of the machine (another
user, frequency changes) hits all of them alike, and reports per-call medians.
"""
from __future__ import annotations

import gc
import math
import os
import platform
import sys
import time
from typing import Any, Callable

import numpy as np

# Environment variables that change what is being measured. The first two are
# set on some of our machines and make OpenBLAS pick a slower kernel: we warn,
# never unset them (the run must measure the environment it was given).
SLOW_BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
REPORTED_VARS = SLOW_BLAS_VARS + (
    "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND", "OMP_PLACES",
    "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "MKL_NUM_THREADS", "PYLSTM_ISA", "KMP_BLOCKTIME",
)


def interleaved_medians(
    fns: dict[str, Callable[[], Any]],
    target_s: float = 2.0,
    min_rounds: int = 5,
    max_rounds: int = 400,
    sample_s: float = 2e-3,
    warmup: int = 2,
    lead_in_s: float = 0.0,
) -> dict[str, dict[str, float]]:
    """Time several callables round robin; per-call median over rounds.

    Each round times every callable once, as a batch of ``k`` back-to-back calls
    (``k`` chosen so a batch lasts at least ``sample_s``: tiny calls are then not
    dominated by the timer, and only the first call of a batch sees the caches
    another implementation left behind). The starting callable rotates every
    round so no implementation always runs right after the same one. The number
    of rounds makes the whole set take about ``target_s``. ``lead_in_s``: before
    each sample, the callable runs untimed for at least this long (once at
    least), so the sample sees what a loop calling it again and again sees: the
    worker threads of the implementation that ran before have stopped spinning
    (by default OpenBLAS's spin for ~0.1 s after a call: a 2-thread
    50,32,1024,1024 training step took 285 ms right after a NumPy product with
    a 20 ms pause between, 242 ms alone), and its own thread pool is awake.

    Returns ``{name: {"median_s", "min_s", "q1_s", "q3_s", "rounds", "calls_per_sample"}}``
    (times per call, in seconds).
    """
    names = list(fns)
    for name in names:  # warm-up: first-call costs (allocation, primitive creation, page faults)
        for _ in range(warmup):
            fns[name]()
    one = {}
    for name in names:  # a rough single-call time, to size the batches
        t0 = time.perf_counter()
        fns[name]()
        one[name] = max(time.perf_counter() - t0, 1e-7)
    k = {n: max(1, math.ceil(sample_s / one[n])) for n in names}
    lead = {n: max(lead_in_s, one[n]) if lead_in_s else 0.0 for n in names}  # (at least one call)
    round_s = sum(k[n] * one[n] + lead[n] for n in names)
    rounds = int(min(max_rounds, max(min_rounds, round(target_s / round_s))))

    samples: dict[str, list[float]] = {n: [] for n in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a sample would be charged to whoever ran then
    try:
        for r in range(rounds):
            for j in range(len(names)):
                name = names[(r + j) % len(names)]
                fn, kk = fns[name], k[name]
                if lead_in_s:
                    t_lead = time.perf_counter()
                    fn()
                    while time.perf_counter() - t_lead < lead_in_s:
                        fn()
                t0 = time.perf_counter()
                for _ in range(kk):
                    fn()
                samples[name].append((time.perf_counter() - t0) / kk)
            if gc_was_enabled:
                gc.collect(0)  # between rounds, outside every sample
    finally:
        if gc_was_enabled:
            gc.enable()
    out = {}
    for name in names:
        s = np.asarray(samples[name])
        q1, med, q3 = np.percentile(s, [25, 50, 75])
        out[name] = {"median_s": float(med), "min_s": float(s.min()), "q1_s": float(q1), "q3_s": float(q3),
                     "rounds": rounds, "calls_per_sample": k[name]}
    return out


def blas_limiter(threads: int):
    """Context manager limiting NumPy's BLAS (only BLAS, not any OpenMP runtime) to ``threads``."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def matmul_ceiling(threads: int, n: int = 2048, target_s: float = 2.0, min_rounds: int = 3,
                   have_torch: bool = True) -> dict[str, float]:
    """GFLOP/s of an n³ float32 product with numpy.matmul and torch.mm at ``threads`` threads.

    Returns ``{"numpy_gflops", "torch_gflops" (if torch), "ceiling_gflops"}`` from the
    best of the interleaved repeats (a ceiling is what the machine can reach, and
    the best repeat is the one least disturbed by anyone else), plus the same
    from the medians as ``*_median_gflops``. The ceiling is the higher library.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    fns: dict[str, Callable[[], Any]] = {"numpy": lambda: np.matmul(a, b, out=c)}
    if have_torch:
        import torch

        torch.set_num_threads(threads)
        ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.empty((n, n))
        fns["torch"] = lambda: torch.mm(ta, tb, out=tc)
    with blas_limiter(threads):
        t = interleaved_medians(fns, target_s=target_s, min_rounds=min_rounds, warmup=1, sample_s=0.0)
    flops = 2.0 * n ** 3
    out = {f"{k}_gflops": flops / v["min_s"] / 1e9 for k, v in t.items()}
    out["ceiling_gflops"] = max(out.values())
    out.update({f"{k}_median_gflops": flops / v["median_s"] / 1e9 for k, v in t.items()})
    return out


def background_busy(seconds: float = 0.5) -> float | None:
    """Fraction of all CPUs busy over ``seconds`` while this process sleeps (Linux), else None.

    Says how quiet the machine was: 0.0 means nobody else was computing.
    """
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle

    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except OSError:
        return None
    total = t1 - t0
    return None if total <= 0 else 1.0 - (i1 - i0) / total


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_report() -> dict[str, Any]:
    """What the numbers depend on: CPU, libraries, their thread pools, relevant environment."""
    from threadpoolctl import threadpool_info

    rep: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu_model(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "env": {k: os.environ[k] for k in REPORTED_VARS if k in os.environ},
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    pools = threadpool_info()
    rep["numpy_blas"] = [
        {k: p.get(k) for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads", "filepath")}
        for p in pools if p.get("user_api") == "blas"
    ]
    rep["openmp_runtimes"] = [p.get("filepath") for p in pools if p.get("user_api") == "openmp"]
    rep["warnings"] = [
        f"{k}={os.environ[k]} is set: it can make OpenBLAS (numpy) pick a slower kernel; "
        f"rerun with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` for a fair NumPy column"
        for k in SLOW_BLAS_VARS if k in os.environ
    ]
    return rep


def print_machine_report(rep: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    print(f"# {rep['date']}  {rep['cpu']}  ({rep['cpus_usable']} CPUs usable)  python {rep['python']}  numpy {rep['numpy']}")
    for b in rep["numpy_blas"]:
        print(f"# numpy BLAS: {b['internal_api']} {b['version']}  kernel/architecture={b['architecture']}  "
              f"threading={b['threading_layer']}")
    if rep["openmp_runtimes"]:
        print(f"# OpenMP runtimes loaded: {', '.join(rep['openmp_runtimes'])}")
    for k, v in (extra or {}).items():
        print(f"# {k}: {v}")
    if rep["env"]:
        print("# environment: " + "  ".join(f"{k}={v}" for k, v in rep["env"].items()))
    for w in rep["warnings"]:
        print(f"# WARNING: {w}")
