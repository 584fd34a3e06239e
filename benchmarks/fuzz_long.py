"""The long fuzzing profile, run by hand: the CI fuzz targets with many random examples each.

CI runs tests/test_fuzz_kernels.py and tests/test_fuzz_model.py with a few hundred derandomized
examples per target; this runs the very same targets with fresh random examples, as many as asked,
and reports how many ran, how many of the calls returned a result (the rest raised a clear error),
and every failure with Hypothesis' reproduction blob.

    python benchmarks/fuzz_long.py --examples 5000 --out fuzz_long.json
    python benchmarks/fuzz_long.py --examples 200 --only lstm_step --seed 3

Exit status 1 when any target failed.  A crash kills the run (that is a finding too: rerun the
target alone to see which example); a hang ends it after the watchdog's timeout with a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent / "tests"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=5000, help="examples per target")
    ap.add_argument("--only", default=None, help="run the targets whose name contains this")
    ap.add_argument("--no-model", action="store_true", help="skip tests/test_fuzz_model.py's targets")
    ap.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random)")
    ap.add_argument("--out", default=None, help="write the JSON result here too")
    args = ap.parse_args()

    # The profile is read when the test modules are imported.
    os.environ["PYLSTM_FUZZ_PROFILE"] = "long"
    os.environ["PYLSTM_FUZZ_EXAMPLES"] = str(args.examples)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the reference's small matmuls (see tests/conftest.py)
    sys.path.insert(0, str(_TESTS))
    import hypothesis

    import test_fuzz_kernels

    modules = [test_fuzz_kernels]
    if not args.no_model:
        import test_fuzz_model

        modules.append(test_fuzz_model)

    report: dict = {"examples_per_target": args.examples, "seed": args.seed, "targets": {}, "failures": []}
    t0 = time.perf_counter()
    for module in modules:
        for name in sorted(n for n in dir(module) if n.startswith("test_fuzz")):
            if args.only and args.only not in name:
                continue
            test = getattr(module, name)
            if args.seed is not None:
                test = hypothesis.seed(args.seed)(test)
            before = dict(module.COUNTS)
            start = time.perf_counter()
            try:
                test()
                status = "passed"
            except BaseException as e:  # noqa: BLE001 - every failure is recorded, then the next target runs
                if isinstance(e, KeyboardInterrupt):
                    raise
                status = "failed"
                report["failures"].append({"target": name, "error": "".join(traceback.format_exception(e))[-6000:]})
            ran = {k: v - before.get(k, 0) for k, v in module.COUNTS.items() if v != before.get(k, 0)}
            report["targets"][name] = {"status": status, "wall_s": round(time.perf_counter() - start, 1),
                                       "calls": ran}
            print(f"{name}: {status} in {report['targets'][name]['wall_s']} s, {ran}", flush=True)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
