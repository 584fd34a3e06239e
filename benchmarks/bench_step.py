"""Generation speed: one ``pylstm.lstm_step`` call at B=1 against two NumPy mat-vecs.

Target (issue 3): at B=1, I=H=128, float32, the median of 10⁵ ``lstm_step``
calls is at most 3× the median time of ``W_ih @ x + W_hh @ h`` in NumPy
measured in the same run — i.e. a step costs about as much as the two products
it cannot avoid, plus small change.

Each call is timed on its own (``perf_counter_ns`` around it, the state carried
from call to call as in generation); the two are interleaved in blocks of
1000 calls so that both see the same machine.

    python benchmarks/bench_step.py
    python benchmarks/bench_step.py --calls 100000 --threads 1 --out step.json
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time

import numpy as np

import _impls
import _timing

TARGET_RATIO = 3.0


def run(calls: int, threads: int, B: int, I: int, H: int, block: int, pylstm_mod) -> dict:
    """Per-call times (ns) of the step and of the NumPy baseline, interleaved by blocks."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    k = 1.0 / np.sqrt(H)
    W_ih, W_hh = rng.uniform(-k, k, (4 * H, I)).astype(f32), rng.uniform(-k, k, (4 * H, H)).astype(f32)
    b_ih, b_hh = rng.uniform(-k, k, 4 * H).astype(f32), rng.uniform(-k, k, 4 * H).astype(f32)
    x_t = rng.standard_normal((B, I)).astype(f32)
    x_vec, h_vec = x_t[0].copy(), rng.standard_normal(H).astype(f32)
    step = pylstm_mod.lstm_step

    # The step must agree with a one-step forward of the NumPy peer before it is timed.
    h, c = step(x_t, W_ih, W_hh, b_ih, b_hh, None, None, num_threads=threads)
    _, h_ref, c_ref, _ = _impls.numpy_lstm.lstm_forward(x_t[:, None, :], W_ih, W_hh, b_ih, b_hh, need_cache=False)
    err = max(_impls.rel_err(h, h_ref), _impls.rel_err(c, c_ref))
    if not err <= 1e-4:
        raise SystemExit(f"lstm_step disagrees with the NumPy peer: rel err {err:.2e}")

    t_step = np.empty(calls, np.int64)
    t_np = np.empty(calls, np.int64)
    ns = time.perf_counter_ns
    for _ in range(block):  # warm-up
        h, c = step(x_t, W_ih, W_hh, b_ih, b_hh, h, c, num_threads=threads)
        W_ih @ x_vec + W_hh @ h_vec
    gc.disable()
    try:
        for start in range(0, calls, block):
            stop = min(calls, start + block)
            for j in range(start, stop):
                t0 = ns()
                h, c = step(x_t, W_ih, W_hh, b_ih, b_hh, h, c, num_threads=threads)
                t_step[j] = ns() - t0
            for j in range(start, stop):
                t0 = ns()
                W_ih @ x_vec + W_hh @ h_vec
                t_np[j] = ns() - t0
    finally:
        gc.enable()
    t0 = ns()  # the cost of the timer itself, for the reader (not subtracted)
    for _ in range(1000):
        ns()
    timer_ns = (ns() - t0) / 1000

    def stats(t):
        p10, p50, p90 = np.percentile(t, [10, 50, 90])
        return {"median_us": p50 / 1e3, "p10_us": p10 / 1e3, "p90_us": p90 / 1e3}

    s, n = stats(t_step), stats(t_np)
    ratio = s["median_us"] / n["median_us"]
    return {"B": B, "I": I, "H": H, "threads": threads, "calls": calls, "lstm_step": s, "numpy_matvecs": n,
            "ratio": ratio, "target": TARGET_RATIO, "result": "PASS" if ratio <= TARGET_RATIO else "FAIL",
            "timer_overhead_us": timer_ns / 1e3, "check_rel_err": err}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000, help="calls of each (default 1e5)")
    ap.add_argument("--threads", type=int, default=1, help="pylstm num_threads and NumPy BLAS threads")
    ap.add_argument("--B", type=int, default=1)
    ap.add_argument("--I", type=int, default=128)
    ap.add_argument("--H", type=int, default=128)
    ap.add_argument("--pylstm", choices=("kernel", "reference"), default="kernel")
    ap.add_argument("--out", help="write the result as JSON")
    args = ap.parse_args(argv)

    pylstm_mod, info = _impls.load_pylstm(args.pylstm)
    rep = _timing.machine_report()
    _timing.print_machine_report(rep, {"pylstm.info()": info})
    with _timing.blas_limiter(args.threads):
        r = run(args.calls, args.threads, args.B, args.I, args.H, 1000, pylstm_mod)
    s, n = r["lstm_step"], r["numpy_matvecs"]
    print(f"B={r['B']} I={r['I']} H={r['H']} float32, {r['calls']} calls each, threads={r['threads']}")
    print(f"  lstm_step                 median {s['median_us']:7.2f} us  (p10 {s['p10_us']:.2f}, p90 {s['p90_us']:.2f})")
    print(f"  W_ih @ x + W_hh @ h (np)  median {n['median_us']:7.2f} us  (p10 {n['p10_us']:.2f}, p90 {n['p90_us']:.2f})")
    print(f"  ratio {r['ratio']:.2f}x  (target <= {TARGET_RATIO:g}x: {r['result']});  "
          f"timer overhead {1e3 * r['timer_overhead_us']:.0f} ns per call, included in both")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": rep | {"pylstm_info": info}, "step": r}, f, indent=1, default=str)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
