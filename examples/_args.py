"""The command line every example shares: --seed, --plot FILE, --naive (and --quiet)."""
from __future__ import annotations

import argparse


def parse(description: str, **extra: dict) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seed", type=int, default=0, help="seed of data, weights and shuffling")
    p.add_argument("--naive", action="store_true", help="also run what people tried, and print why it fails")
    p.add_argument("--plot", metavar="FILE", help="save the learning curves (working | naive) to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    for flag, kwargs in extra.items():
        p.add_argument(flag, **kwargs)
    return p.parse_args()


def finish(runs: list, args: argparse.Namespace) -> None:
    """Print the working model, each run's results line (and a naive run's explanation); plot them side by side."""
    runs[0].model.summary()
    for res in runs:
        print(res.line())
        if res.explanation:
            print("why:", res.explanation)
    if args.plot:
        from pylstm.plot import plot_task

        plot_task(runs, args.plot)
        print("learning curves saved to", args.plot)
