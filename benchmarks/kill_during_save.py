"""Kill a process while it saves a checkpoint, many times; the file at the path must always load.

Each trial starts a fresh Python process that saves version after version of a
model over one path (``save_model``: temporary file, fsync, rename, fsync the
folder), waits a random time, SIGKILLs it, then loads the path and checks that it
is one complete version (every weight equals the saved step).  Separate
interpreters, not forks, so nothing is shared with the parent.

    python benchmarks/kill_during_save.py --trials 200 --out kill_during_save.json

Prints and writes JSON: trials, how many kills landed inside a save (a temporary
file was left behind), how many files loaded, failures (must be 0), wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

_CHILD = r"""
import sys, numpy as np, pylstm as pl
path, units = sys.argv[1], int(sys.argv[2])
model = pl.Sequential([pl.layers.LSTM(units, return_sequences=True), pl.layers.LSTM(units), pl.layers.Dense(2)],
                      input_shape=(None, 32), seed=0)
model.compile(loss="mse", optimizer=pl.optim.SGD(lr=0.1))
shapes = [w.shape for w in model.get_weights()]
print("ready", flush=True)
v = int(sys.argv[3])
while True:
    model.set_weights([np.full(s, v, np.float32) for s in shapes])
    model.step = v
    model.save(path)
    v += 1
"""


def _check(path: str) -> int:
    import pylstm as pl

    model = pl.load_model(path)
    step = model.step
    for w in model.get_weights():
        if not np.all(w == step):
            raise AssertionError(f"weights of two versions mixed: step {step}, weights {np.unique(w)[:5]}")
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--units", type=int, default=256, help="LSTM units (checkpoint size grows as units²)")
    ap.add_argument("--max-delay", type=float, default=0.2, help="kill after uniform(0, this) s of saving")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the JSON result here too")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    stats = {"trials": 0, "killed_mid_save": 0, "loaded": 0, "failures": [], "versions_seen": set()}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "run.pylstm")
        version = 0
        for trial in range(args.trials):
            child = subprocess.Popen([sys.executable, "-c", _CHILD, path, str(args.units), str(version + 1)],
                                     stdout=subprocess.PIPE, text=True)
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("child failed to start")
            if trial == 0:  # let the first child write an initial checkpoint
                while not os.path.exists(path):
                    time.sleep(0.01)
            time.sleep(float(rng.uniform(0.0, args.max_delay)))
            child.send_signal(signal.SIGKILL)
            child.wait()
            leftovers = [f for f in os.listdir(folder) if f.endswith(".tmp")]
            stats["trials"] += 1
            stats["killed_mid_save"] += bool(leftovers)
            try:
                version = _check(path)
                stats["loaded"] += 1
                stats["versions_seen"].add(version)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and reported
                stats["failures"].append(f"trial {trial}: {type(exc).__name__}: {exc}")
            for f in leftovers:
                os.unlink(os.path.join(folder, f))
        stats["checkpoint_bytes"] = os.path.getsize(path)
    stats["versions_seen"] = len(stats["versions_seen"])
    stats["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(stats, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    sys.exit(1 if stats["failures"] else 0)


if __name__ == "__main__":
    main()
