"""Command line: ``pylstm {tasks, run, gradcheck, info}`` (or ``python -m pylstm ...``).

    pylstm tasks                                     # the classic tasks, their metric and target
    pylstm run parity --seed 3                       # train the working configuration, print the results line
    pylstm run parity --naive                        # the people's configuration, and why it fails
    pylstm run parity --naive --plot parity.png      # working and naive side by side
    pylstm run all                                   # every task, quick form, and a summary table
    pylstm run char --full --text tinyshakespeare.txt --minutes 10
    pylstm gradcheck                                 # kernel vs NumPy reference vs finite differences
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence


def _cmd_tasks(args: argparse.Namespace) -> int:
    from . import tasks

    width = max(len(n) for n in tasks.names())
    print(f"{'task':<{width}}  {'metric':<30}  {'target':<26}  description")
    for t in tasks.TASKS.values():
        print(f"{t.name:<{width}}  {t.metric:<30}  {t.target:<26}  {t.summary}")
    print("\nrun one: pylstm run TASK [--seed N] [--naive] [--plot out.png] [--quick|--full]")
    return 0


def _task_options(args: argparse.Namespace, name: str) -> dict:
    opts = {}
    if name == "char":
        if args.text:
            from .tasks import char_model

            opts["text"] = char_model.read_text(args.text)
        if args.minutes:
            opts["minutes"] = args.minutes
    elif args.text or args.minutes:
        raise SystemExit(f"--text and --minutes apply to the char task only, not {name!r}")
    return opts


def _print_result(res, explain: bool = True) -> None:
    print(res.line())
    if res.sample and res.task == "char":
        print(f"sample (temperature 0.8):\n{res.sample}\n")
    elif res.sample:
        print(f"generated: {res.sample}")
    if explain and res.explanation:
        print(f"why: {res.explanation}")


def _cmd_run(args: argparse.Namespace) -> int:
    from . import tasks

    if args.threads:
        from . import set_num_threads

        set_num_threads(args.threads)
    quick = not args.full
    verbose = 0 if args.quiet else 1
    if args.task == "all":
        t0 = time.perf_counter()
        results = []
        for t in tasks.TASKS.values():
            print(f"== {t.name}: {t.summary}", flush=True)
            res = t.run(args.seed, naive=args.naive, quick=quick, verbose=0, **_task_options(args, t.name))
            _print_result(res, explain=args.naive)
            results.append(res)
        print()
        print(tasks.summary_table(results))
        ok = sum(r.reached for r in results)
        print(f"\n{ok}/{len(results)} targets reached in {time.perf_counter() - t0:.0f} s "
              f"({'quick' if quick else 'full'} form, seed {args.seed})")
        return 0 if args.naive or ok == len(results) else 1
    task = tasks.get(args.task)
    opts = _task_options(args, task.name)
    runs = []
    if not args.naive or args.plot:
        print(f"== {task.name}, working configuration (seed {args.seed}, {'quick' if quick else 'full'} form)")
        runs.append(task.run(args.seed, quick=quick, verbose=verbose, **opts))
        _print_result(runs[-1])
    if args.naive:
        print(f"== {task.name}, naive configuration (what people tried)")
        runs.append(task.run(args.seed, naive=True, quick=quick, verbose=verbose, **opts))
        _print_result(runs[-1])
    if args.plot:
        from .plot import plot_task

        plot_task(runs, args.plot)
        print(f"plot written to {args.plot}")
    return 0 if args.naive or runs[0].reached else 1


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import format_report, gradcheck

    for dtype in ("float64", "float32"):
        print(f"gradcheck, {dtype} kernel (B=3, T=5, I=4, H=7, seed {args.seed}):")
        print(format_report(gradcheck(dtype=dtype, seed=args.seed)))
        print()
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from . import info

    for k, v in info().items():
        print(f"{k}: {v}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pylstm", description="pylstm: fast LSTM training on the CPU.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("tasks", help="list the classic tasks").set_defaults(func=_cmd_tasks)
    r = sub.add_parser("run", help="train a task (or 'all') and report")
    r.add_argument("task", help="a task name from 'pylstm tasks', or 'all'")
    r.add_argument("--seed", type=int, default=0, help="seed of data, initialization and shuffling (default 0)")
    r.add_argument("--naive", action="store_true", help="run what people tried, and explain why it fails")
    r.add_argument("--plot", metavar="FILE", help="learning curves (working and, with --naive, naive side by side)")
    form = r.add_mutually_exclusive_group()
    form.add_argument("--quick", action="store_true", help="the quick form (default)")
    form.add_argument("--full", action="store_true", help="the full form (char: the stdlib's source, larger model)")
    r.add_argument("--text", metavar="FILE", help="char: train on this text file")
    r.add_argument("--minutes", type=float, help="char: wall-clock training budget")
    r.add_argument("--threads", type=int, help="kernel threads (default: pylstm's default)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    r.set_defaults(func=_cmd_run)
    g = sub.add_parser("gradcheck", help="check the kernel's gradients (float64 and float32)")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=_cmd_gradcheck)
    sub.add_parser("info", help="build and CPU information").set_defaults(func=_cmd_info)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "task", None) not in (None, "all"):
        from . import tasks

        if args.task not in tasks.TASKS:
            _parser().error(f"unknown task {args.task!r}; known: {', '.join(tasks.names())}, all")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
