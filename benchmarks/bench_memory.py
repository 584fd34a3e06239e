"""Memory of a training step: what the kernel allocates beyond its cache, outputs and gradients.

Target (issue 3): nothing allocated inside the time loop, and the bytes a
training step allocates beyond its documented cache, outputs and gradients at
most 10% of the cache.

Nothing is allocated inside the time loop by construction: a kernel gets every
buffer from its caller (csrc/lstm.h), and the binding allocates, per call, the
outputs, the cache and one workspace before the loop starts. This script
counts those allocations per call:

* the cache: ``LSTMCache.nbytes`` (gate activations, cell states, and on the
  small-H lanes path the h history), measured on a real call;
* the outputs and gradients: the arrays the calls return (sizes from shapes);
* the workspace of the forward (with a cache) and of the backward: the one
  allocation beyond those, as the binding sizes it (``_core.workspace_bytes``,
  the same functions the binding calls). The two are never alive together, so
  a step's extra memory is the larger one.

It also traces, with tracemalloc, everything Python and NumPy allocate in a
step and still hold at its end: the counted outputs, gradients and cache, plus
a few small Python objects (the cache object, tuples), shown apart.

    python benchmarks/bench_memory.py
    python benchmarks/bench_memory.py --threads 2 --out memory.json
"""
from __future__ import annotations

import argparse
import gc
import json
import tracemalloc

import numpy as np

import pylstm
from pylstm import _core, kernels

SHAPES = [  # T, B, I, H: the speed benchmark's shapes
    (5, 100, 2, 5), (7, 100, 1, 40), (3, 32, 1, 15), (30, 1, 3, 10), (64, 32, 65, 128),
    (100, 64, 128, 256), (100, 64, 512, 512), (50, 32, 1024, 1024),
]
TARGET = 0.10


def measure(T: int, B: int, I: int, H: int, threads: int) -> dict:
    rng = np.random.default_rng(0)
    f32 = np.float32
    k = 1.0 / np.sqrt(H)
    w = [rng.uniform(-k, k, s).astype(f32) for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    x = rng.standard_normal((B, T, I)).astype(f32)
    dy = rng.standard_normal((B, T, H)).astype(f32)

    # NumPy allocations of one step, traced (numpy reports its data buffers to tracemalloc).
    pylstm.lstm_backward(pylstm.lstm_forward(x, *w, num_threads=threads)[3], dy, num_threads=threads)  # warm
    gc.collect()
    tracemalloc.start()
    y, h_T, c_T, cache = pylstm.lstm_forward(x, *w, num_threads=threads)
    after_forward, peak_forward = tracemalloc.get_traced_memory()
    g = pylstm.lstm_backward(cache, dy, num_threads=threads)
    traced_total, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    item = 4
    cache_bytes = cache.nbytes
    outputs = (B * T * H + 2 * B * H) * item                           # y, h_T, c_T
    grads = (B * T * I + 2 * B * H + 4 * H * (I + H) + 2 * 4 * H) * item  # dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh
    isa = kernels._isa
    ws_forward = _core.workspace_bytes(isa, True, True, B, T, I, H, threads, 1, False)
    ws_backward = _core.workspace_bytes(isa, True, False, B, T, I, H, threads, 1, False)
    extra = max(ws_forward, ws_backward)
    counted_numpy = cache_bytes + outputs + grads
    del y, h_T, c_T, cache, g
    return {
        "shape": f"{T},{B},{I},{H}", "cache_bytes": cache_bytes, "outputs_bytes": outputs, "grads_bytes": grads,
        "workspace_forward_bytes": ws_forward, "workspace_backward_bytes": ws_backward,
        "extra_bytes": extra, "extra_over_cache": extra / cache_bytes,
        "traced_numpy_bytes": traced_total, "counted_numpy_bytes": counted_numpy,
        "pass": extra <= TARGET * cache_bytes,
    }


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the rows as JSON to this file")
    args = ap.parse_args()
    print(f"# pylstm {pylstm.info()}")
    print(f"# threads={args.threads}, float32; KiB; extra = the larger workspace (forward with cache, backward)")
    head = (f"{'T,B,I,H':<18} {'cache':>10} {'fwd ws':>10} {'bwd ws':>10} {'extra/cache':>12}  "
            f"{'traced':>10} {'counted':>10} {'py objects':>11}")
    print(head)
    rows = []
    for T, B, I, H in SHAPES:
        r = measure(T, B, I, H, args.threads)
        rows.append(r)
        verdict = "PASS" if r["pass"] else "FAIL"
        print(f"{r['shape']:<18} {_kib(r['cache_bytes']):>10} {_kib(r['workspace_forward_bytes']):>10} "
              f"{_kib(r['workspace_backward_bytes']):>10} {100 * r['extra_over_cache']:>10.1f}% {verdict}  "
              f"{_kib(r['traced_numpy_bytes']):>8} {_kib(r['counted_numpy_bytes']):>10} "
              f"{_kib(r['traced_numpy_bytes'] - r['counted_numpy_bytes']):>11}")
    failed = [r["shape"] for r in rows if not r["pass"]]
    print(f"target extra <= {TARGET:.0%} of the cache: {len(rows) - len(failed)}/{len(rows)} PASS"
          + (f"; FAIL: {', '.join(failed)}" if failed else ""))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"threads": args.threads, "info": pylstm.info(), "rows": rows}, f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
