"""Draw a bench_lstm.py JSON file: pylstm's speedup over PyTorch and NumPy per shape.

One row of panels per thread count, one panel per mode (training step,
inference forward). Bars are speedups (peer time / pylstm time, log scale; above
1 means pylstm is faster); a short black tick over a bar is that row's target
from issue 3, and the dashed line is parity.

    python benchmarks/plot_bench.py bench.json -o bench.png
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

PEER_COLORS = {"torch": "#d62728", "numpy": "#1f77b4"}
MODE_TITLES = {"train": "training step (forward + full backward)", "forward": "inference forward"}


def plot(data: dict[str, Any], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = data["runs"]
    modes = [m for m in MODE_TITLES if any(r["mode"] == m for run in runs for r in run["rows"])]
    fig, axes = plt.subplots(len(runs), len(modes), figsize=(7 * len(modes), 4.2 * len(runs)),
                             squeeze=False, sharey=True)
    for ri, run in enumerate(runs):
        for mi, mode in enumerate(modes):
            ax = axes[ri][mi]
            rows = [r for r in run["rows"] if r["mode"] == mode]
            peers = [p for p in PEER_COLORS if rows and p in rows[0]["ratios"]]
            width = 0.8 / max(1, len(peers))
            for pi, peer in enumerate(peers):
                xs = [i + (pi - (len(peers) - 1) / 2) * width for i in range(len(rows))]
                vals = [r["ratios"][peer]["speedup"] for r in rows]
                ax.bar(xs, vals, width, color=PEER_COLORS[peer], label=f"vs {peer}")
                for x, r, v in zip(xs, rows, vals):
                    ax.annotate(f"{v:.2g}", (x, v), ha="center", va="bottom", fontsize=7)
                    tgt = r["ratios"][peer]["target"]
                    if tgt is not None:
                        ax.hlines(tgt, x - width / 2, x + width / 2, colors="black", linewidth=2.5)
            ax.axhline(1.0, color="gray", linestyle="--", linewidth=1)
            ax.set_yscale("log")
            ax.set_xticks(range(len(rows)))
            ax.set_xticklabels([r["shape"] for r in rows], rotation=35, ha="right", fontsize=8)
            ceil = run["ceiling"]["ceiling_gflops"]
            ax.set_title(f"{MODE_TITLES[mode]}, {run['threads']} thread(s); ceiling {ceil:.0f} GFLOP/s", fontsize=10)
            if mi == 0:
                ax.set_ylabel("speedup of pylstm (x, log)")
            ax.legend(fontsize=8, loc="upper right", title="black tick: target", title_fontsize=7)
    m = data.get("machine", {})
    fig.suptitle(f"pylstm vs peers (T,B,I,H; x2 = 2-layer stack) — {m.get('cpu', '?')}, {m.get('date', '')}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", help="output of bench_lstm.py --out")
    ap.add_argument("-o", "--out", help="PNG to write (default: the JSON's name with .png)")
    args = ap.parse_args(argv)
    with open(args.json) as f:
        data = json.load(f)
    out = args.out or (args.json.rsplit(".", 1)[0] + ".png")
    plot(data, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
