"""pylstm vs a fast NumPy LSTM vs PyTorch: one training step and one inference forward.

Validate first, then time (ducc's fft_bench): for every shape the three
implementations get the same weights and inputs and must agree before any
clock starts. Then they run interleaved (round robin), after warm-up, and the
table shows per-call medians, GFLOP/s, speedups (peer time / pylstm time) and
the fraction of the machine's matrix-product ceiling, each next to the target of
issue 3 with PASS/FAIL.

    python benchmarks/bench_lstm.py --threads 1 --out bench.json
    python benchmarks/bench_lstm.py --threads 1 2 --shapes classic 64,32,65,128 --quick

FLOPs: forward = Σ over layers 2·T·B·(I+H)·4H; training step = 3 × forward.
Ceiling: the higher of numpy.matmul and torch.mm GFLOP/s on a 2048³ float32
product, at the row's thread count, measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

# Before NumPy loads: OpenBLAS's idle workers spin (sched_yield) for 2^28 cycles,
# about 0.1 s, after each product. At 16 threads they kept the cores from
# whatever ran next, pylstm or PyTorch, through the 20 ms pause between them
# (PyTorch's own 2048³ product: best 1479, median 268 GFLOP/s). 2^22 cycles, a
# few ms, still spans the gaps between the products of one NumPy LSTM call.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "22")

import _impls  # noqa: E402
import _timing  # noqa: E402

# Shapes of issue 3, as (T, B, I, H, layers), grouped.
SHAPES: dict[str, list[tuple[int, int, int, int, int]]] = {
    "classic": [(5, 100, 2, 5, 1), (7, 100, 1, 40, 1), (3, 32, 1, 15, 1), (30, 1, 3, 10, 1), (64, 32, 65, 128, 1)],
    "medium": [(100, 64, 128, 256, 1)],
    "large": [(100, 64, 512, 512, 1), (50, 32, 1024, 1024, 1)],
    "stack": [(100, 64, 128, 256, 2)],
}
MODES = ("train", "forward")

# Targets of issue 3 (minimum speedup = peer time / pylstm time; "ceiling" is the
# minimum fraction of the matmul ceiling). Keyed by (shape id, mode).
_OVERHEAD = {"torch": 10.0, "numpy": 10.0}
_LARGE = {"train": {"torch": 0.95, "numpy": 1.1, "ceiling": 0.80}, "forward": {"torch": 0.85, "numpy": 1.1}}
TARGETS: dict[tuple[str, str], dict[str, float]] = {}
for _sid in ("5,100,2,5", "3,32,1,15", "30,1,3,10"):
    TARGETS.update({(_sid, m): _OVERHEAD for m in MODES})
TARGETS.update({("7,100,1,40", m): {"torch": 1.5} for m in MODES})
# The 2-layer stack is at the medium size: the issue gives it no target of its
# own, so it is held to the medium one (our reading, said in the README).
for _sid in ("64,32,65,128", "100,64,128,256", "100,64,128,256x2"):
    TARGETS.update({(_sid, m): {"torch": 1.0} for m in MODES})
for _sid in ("100,64,512,512", "50,32,1024,1024"):
    TARGETS.update({(_sid, m): _LARGE[m] for m in MODES})

# Agreement check: float32 implementations against pylstm, max|a-r|/max|r| per tensor.
CHECK_TOL = 1e-4  # the float32 bound of tests/tolerances.py; measured errors are ~1e-6


def shape_id(T: int, B: int, I: int, H: int, layers: int) -> str:
    return f"{T},{B},{I},{H}" + (f"x{layers}" if layers > 1 else "")


def select_shapes(filters: list[str] | None) -> list[tuple[int, int, int, int, int]]:
    """Shapes matching any filter: a group name, a shape id ("T,B,I,H", "...x2" for the stack)."""
    all_shapes = [s for group in SHAPES.values() for s in group]
    if not filters:
        return all_shapes
    chosen = []
    for f in filters:
        f = f.strip().replace(" ", "")
        hits = SHAPES.get(f) or [s for s in all_shapes if f in (shape_id(*s), shape_id(*s[:4], 1))]
        if not hits:
            known = ", ".join(list(SHAPES) + [shape_id(*s) for s in all_shapes])
            raise SystemExit(f"--shapes: unknown shape or group {f!r}; known: {known}")
        chosen += [s for s in hits if s not in chosen]
    return chosen


def judge(value: float | None, target: float | None) -> str:
    if target is None or value is None:
        return ""
    return "PASS" if value >= target else "FAIL"


def run_threads(threads: int, shapes, modes, args, pylstm_mod, have_torch: bool) -> dict[str, Any]:
    """Ceiling and every (shape, mode) row at one thread count; prints progress, then the table."""
    quick = args.quick
    busy = _timing.background_busy()
    print(f"\n## threads={threads}  (background CPU use before the run: "
          f"{'?' if busy is None else f'{100 * busy:.0f}%'} of all CPUs)", flush=True)

    def ceiling_now() -> dict[str, float]:
        return _timing.matmul_ceiling(threads, target_s=0.5 if quick else 2.0, min_rounds=2 if quick else 5,
                                      have_torch=have_torch)

    # Measured before and after the rows, and again right before each row with a ceiling target; the highest
    # counts. (A busy moment lowers it, which flatters "% of ceiling": on the 2-core VM one day's 2-thread runs
    # measured 380, 393 and 438 GFLOP/s before their rows, while pylstm's large steps took the same time.)
    ceilings = [ceiling_now()]
    rows = []
    with _timing.blas_limiter(threads):
        for (T, B, I, H, L) in shapes:
            p = _impls.Problem(T, B, I, H, L, seed=args.seed)
            impls = [_impls.PylstmImpl(p, threads, pylstm_mod), _impls.NumpyImpl(p, threads)]
            if have_torch:
                impls.append(_impls.TorchImpl(p, threads))
            check = _impls.agreement(impls, CHECK_TOL)
            if not check["ok"]:
                print("\n".join(f"DISAGREE {shape_id(T, B, I, H, L)}: {t}" for t in check["failures"]), flush=True)
                raise SystemExit("implementations disagree: refusing to time them")
            for mode in modes:
                if "ceiling" in TARGETS.get((shape_id(T, B, I, H, L), mode), {}):
                    ceilings.append(ceiling_now())
                fns = {im.name: getattr(im, mode) for im in impls}
                # With several threads, run each peer untimed for 0.1 s before each of its samples: the workers
                # of the one that ran before (OpenBLAS's spin for tens of ms) are then idle, and its own pool is
                # awake (on this VM a pool idle for more than a few ms runs slowly for the next ~25 ms: a
                # 2-thread 64,32,65,128 forward took 1.9 ms back to back, 7.9 ms for each of the first 3 calls
                # after a 20 ms pause), as in a training loop. Batches of at least 0.2 s for the same reason.
                t = _timing.interleaved_medians(fns, target_s=args.seconds, min_rounds=3 if quick else 5,
                                                lead_in_s=0.1 if threads > 1 else 0.0,
                                                sample_s=0.2 if threads > 1 else 2e-3)
                rows.append((p, L, mode, t, check))
                print(f"  {shape_id(T, B, I, H, L):<18} {mode:<8}"
                      + "  ".join(f"{n} {1e3 * v['median_s']:.4g} ms" for n, v in t.items()), flush=True)
    ceilings.append(ceiling_now())
    ceiling = max(ceilings, key=lambda c: c["ceiling_gflops"])
    busy_after = _timing.background_busy()
    rows = [_make_row(p, L, mode, threads, t, ceiling["ceiling_gflops"], check) for p, L, mode, t, check in rows]

    print(f"\nthreads={threads}: ceiling {ceiling['ceiling_gflops']:.1f} GFLOP/s (2048³ float32, best repeat; "
          + ", ".join(f"{k.replace('_gflops', '')} {v:.1f}" for k, v in ceiling.items() if k != "ceiling_gflops")
          + "; measured before, among and after the rows: "
          + "/".join(f"{c['ceiling_gflops']:.1f}" for c in ceilings) + ")")
    for when, b in (("before", busy), ("after", busy_after)):
        if b is not None and b > 0.10:
            print(f"# WARNING: {100 * b:.0f}% of the CPUs were busy with others' work {when} the rows: "
                  f"these numbers include contention (2-thread rows above all)")
    impl_names = ["pylstm", "numpy"] + (["torch"] if have_torch else [])
    _print_header(impl_names)
    for row in rows:
        _print_row(row, impl_names)
    return {"threads": threads, "background_busy": busy, "background_busy_after": busy_after, "ceiling": ceiling,
            "ceilings_measured": ceilings, "rows": rows, "loadavg_after": list(os.getloadavg())}


def _make_row(p, L, mode, threads, t, ceiling_gflops, check) -> dict[str, Any]:
    sid = shape_id(p.T, p.B, p.I, p.H, L)
    flops = p.forward_flops() * (3 if mode == "train" else 1)
    res = {n: {**v, "ms": 1e3 * v["median_s"], "gflops": flops / v["median_s"] / 1e9} for n, v in t.items()}
    targets = TARGETS.get((sid, mode), {})
    ratios = {}
    for peer in res:
        if peer == "pylstm":
            continue
        value = res[peer]["median_s"] / res["pylstm"]["median_s"]
        ratios[peer] = {"speedup": value, "target": targets.get(peer), "result": judge(value, targets.get(peer))}
    frac = res["pylstm"]["gflops"] / ceiling_gflops
    ratios["ceiling"] = {"fraction": frac, "target": targets.get("ceiling"),
                         "result": judge(frac, targets.get("ceiling"))}
    return {"shape": sid, "T": p.T, "B": p.B, "I": p.I, "H": p.H, "layers": L, "mode": mode, "threads": threads,
            "flops": flops, "results": res, "ratios": ratios, "check_max_rel_err": check["max_rel_err"]}


def _cell(r: dict[str, Any], key: str, fmt: str) -> str:
    tgt = r["target"]
    s = format(r[key] * (100 if key == "fraction" else 1), fmt) + ("%" if key == "fraction" else "x")
    if tgt is not None:
        s += f" >={tgt * (100 if key == 'fraction' else 1):g}{'%' if key == 'fraction' else ''} {r['result']}"
    return s


def _print_header(impl_names: list[str]) -> None:
    cols = "".join(f"{n + ' ms':>11}{'GF/s':>7}" for n in impl_names)
    peers = "".join(f"  {'vs ' + n:<20}" for n in impl_names[1:])
    print(f"{'shape T,B,I,H':<18}{'L':>2} {'mode':<8}{cols}{peers}  {'% ceiling':<16}")


def _print_row(row: dict[str, Any], impl_names: list[str]) -> None:
    res, ratios = row["results"], row["ratios"]
    cols = "".join(f"{res[n]['ms']:>11.4g}{res[n]['gflops']:>7.1f}" for n in impl_names)
    peers = "".join(f"  {_cell(ratios[n], 'speedup', '.2f'):<20}" for n in impl_names[1:])
    print(f"{row['shape'].split('x')[0]:<18}{row['layers']:>2} {row['mode']:<8}{cols}{peers}  "
          f"{_cell(ratios['ceiling'], 'fraction', '.0f'):<16}", flush=True)


def _summary(runs: list[dict[str, Any]]) -> None:
    fails = [f"threads={r['threads']} {row['shape']} {row['mode']} {peer}: "
             + (f"{v['speedup']:.2f}x < {v['target']:g}x" if "speedup" in v else
                f"{100 * v['fraction']:.0f}% < {100 * v['target']:.0f}%")
             for r in runs for row in r["rows"] for peer, v in row["ratios"].items() if v["result"] == "FAIL"]
    judged = sum(1 for r in runs for row in r["rows"] for v in row["ratios"].values() if v["result"])
    print(f"\ntargets: {judged - len(fails)}/{judged} PASS" + ("" if not fails else "; FAIL:\n  " + "\n  ".join(fails)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1], help="thread counts (e.g. --threads 1 2)")
    ap.add_argument("--shapes", nargs="+", help="subset: groups (classic medium large stack) or ids like 64,32,65,128 "
                                                "(100,64,128,256x2 is the 2-layer stack)")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--quick", action="store_true", help="short rows (~0.3 s), for development")
    ap.add_argument("--seconds", type=float, help="target time per row (default 2, 0.3 with --quick)")
    ap.add_argument("--out", help="write the results as JSON to this file")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    ap.add_argument("--pylstm", choices=("kernel", "reference"), default="kernel",
                    help="what runs in the pylstm column (reference: the NumPy oracle, to test the harness)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 2.0
    if any(n < 1 for n in args.threads):
        ap.error("--threads must be >= 1")
    shapes = select_shapes(args.shapes)

    # torch before pylstm: PyTorch's wheel brings a libgomp.so.1 and pylstm uses
    # libgomp.so.1, a process keeps one runtime of a name, and the first to load
    # it sets how its threads wait. So PyTorch runs with its own defaults, as in
    # a program that imports it first, and pylstm shares them (the header's
    # pylstm.info() says so). Loaded after pylstm, torch's threads spun as
    # briefly as pylstm's: its 2-thread 64,32,65,128 training step and
    # 100,64,512,512 forward took 7.73 and 89.7 ms instead of 6.86 and 79.3.
    have_torch = False
    torch_version = None
    if not args.no_torch:
        try:
            import torch

            have_torch, torch_version = True, torch.__version__
        except ImportError:
            pass
    pylstm_mod, pylstm_info = _impls.load_pylstm(args.pylstm)
    rep = _timing.machine_report()
    rep.update({"pylstm_info": pylstm_info, "torch": torch_version, "quick": args.quick})
    _timing.print_machine_report(rep, {"pylstm.info()": pylstm_info,
                                       "torch": torch_version or "not installed (no PyTorch column)"})

    runs = [run_threads(n, shapes, args.modes, args, pylstm_mod, have_torch) for n in args.threads]
    _summary(runs)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": rep, "runs": runs, "targets_note": "issue 3; the 2-layer stack uses the medium target",
                       "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, f, indent=1, default=str)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
