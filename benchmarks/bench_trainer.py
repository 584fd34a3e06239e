"""The trainer's speed on the 2×LSTM(40) parity model (issue 4, "Speed").

Model: ``Sequential([LSTM(40, return_sequences=True), LSTM(40), Dense(2, activation="softmax")])`` on
(N, 7, 1) bit sequences, ``sparse_categorical_crossentropy``, ``Adam(lr=1e-2, clipnorm=1.0)``, batch 100.

1. **Profile**: ``fit`` over ``--profile-steps`` batches with perf_counter accumulators wrapped around
   the pieces of a step (``kernels._core.forward/backward``, ``kernels.lstm_forward/lstm_backward``,
   ``LSTM``/``Dense`` forward/backward, the loss, the optimizer, the model's forward/backward), then
   the same steps under cProfile as a cross-check. Target: ≥ 70% of a step inside the C++ kernels.
2. **Epoch**: ``fit(x, y, epochs=1, batch_size=100, verbose=0, shuffle=False)`` on 100000 samples
   against the PyTorch twin (``_trainer_torch.py``): same initial weights, the same batches in the
   same order (one permutation drawn up front and applied to the arrays both get), same thread count.
   Validate first (step-1 loss and gradient norm must agree to float32 tolerance), then time: the
   two alternate epoch by epoch (``--repeats`` each, a fresh model from the same weights every time,
   the garbage collector off inside a timed epoch as in ``_timing``) and the wall-clock medians are
   compared; process CPU time is reported beside them (at 1 thread it does not count the time the
   process was descheduled, a cross-check on a shared machine). numpy's BLAS gets the same thread
   count as pylstm and torch. Target: pylstm's epoch ≤ ½ of PyTorch's.

    python benchmarks/bench_trainer.py --threads 1 --out trainer.json
    python benchmarks/bench_trainer.py --threads 1 2 --repeats 5
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import sys
import time
from collections import defaultdict
from typing import Any, Callable

import numpy as np

import _timing

# Issue 4's targets.
KERNEL_SHARE_TARGET = 0.70  # fraction of a training step inside the C++ kernels
EPOCH_RATIO_TARGET = 0.5  # pylstm epoch / PyTorch epoch
# Agreement before timing: relative error of float32 scalars (the float32 bound of tests/tolerances.py).
CHECK_TOL = 1e-4
# Steps 2-3 follow Adam updates, which amplify rounding where a gradient is ~ε: a looser bound.
LATER_STEP_TOL = 1e-3

T, F, H, C = 7, 1, 40, 2
LR, CLIPNORM = 1e-2, 1.0


# --------------------------------------------------------------------------- #
# the problem
# --------------------------------------------------------------------------- #
def parity_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random bit sequences (n, T, 1) float32 and their parity (n,) int64, already in batch order.

    The rows are drawn i.i.d. and then permuted once by the same generator: that
    permutation is the batch order both trainers see (pylstm with shuffle=False).
    """
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=(n, T), dtype=np.int64)
    order = rng.permutation(n)
    bits = bits[order]
    return bits[..., None].astype(np.float32), bits.sum(axis=1) % 2


def make_model(pl: Any, seed: int, weights: list[np.ndarray] | None = None) -> Any:
    """The compiled pylstm model (fresh optimizer), with ``weights`` if given."""
    from pylstm.layers import LSTM, Dense

    model = pl.Sequential([LSTM(H, return_sequences=True), LSTM(H), Dense(C, activation="softmax")],
                          input_shape=(T, F), seed=seed)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=pl.optim.Adam(lr=LR, clipnorm=CLIPNORM))
    if weights is not None:
        model.set_weights(weights)
    return model


def rel(a: float, r: float) -> float:
    return abs(a - r) / abs(r) if r else abs(a)


# --------------------------------------------------------------------------- #
# 1. profile of a training step
# --------------------------------------------------------------------------- #
class _Accumulators:
    """Inclusive perf_counter time and call count per name, for wrapped callables."""

    def __init__(self) -> None:
        self.s: dict[str, float] = defaultdict(float)
        self.n: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable) -> Callable:
        clock, s, n = time.perf_counter, self.s, self.n

        def timed(*args, **kwargs):
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                s[name] += clock() - t0
                n[name] += 1

        return timed


class _CoreProxy:
    """Stands in for ``pylstm._core`` inside ``pylstm.kernels``: times forward/backward, delegates the rest."""

    def __init__(self, core: Any, acc: _Accumulators):
        self._core = core
        self.forward = acc.wrap("cpp_forward", core.forward)
        self.backward = acc.wrap("cpp_backward", core.backward)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


class _Instrumented:
    """Context: wrap the pieces of a training step with accumulators (class attributes restored on exit)."""

    def __init__(self, model: Any, acc: _Accumulators):
        self.model, self.acc = model, acc
        self.saved: list[tuple[Any, str, Any]] = []

    def _patch(self, owner: Any, attr: str, name: str) -> None:
        self.saved.append((owner, attr, owner.__dict__.get(attr, _MISSING)))
        setattr(owner, attr, self.acc.wrap(name, getattr(owner, attr)))

    def __enter__(self) -> _Accumulators:
        from pylstm import kernels, layers

        self.saved.append((kernels, "_core", kernels._core))
        kernels._core = _CoreProxy(kernels._core, self.acc)
        self._patch(kernels, "lstm_forward", "api_forward")  # the layer looks these up on the module per call
        self._patch(kernels, "lstm_backward", "api_backward")
        for cls, prefix in ((layers.LSTM, "lstm"), (layers.Dense, "dense")):
            self._patch(cls, "forward", f"{prefix}_forward")
            self._patch(cls, "backward", f"{prefix}_backward")
        m = self.model
        self._patch(m, "_forward", "model_forward")  # instance attributes shadow the methods
        self._patch(m, "_backward", "model_backward")
        self._patch(m.loss, "_compute", "loss")
        self._patch(m.optimizer, "_step_flat", "optimizer")
        return self.acc

    def __exit__(self, *exc: Any) -> bool:
        for owner, attr, old in reversed(self.saved):
            if old is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, old)
        return False


_MISSING = object()


def _breakdown(acc: _Accumulators, total: float, steps: int) -> list[tuple[str, float]]:
    """Exclusive seconds per part of a step, in display order (they sum to ``total``)."""
    s = acc.s
    cpp_f, cpp_b = s["cpp_forward"], s["cpp_backward"]
    api = s["api_forward"] + s["api_backward"]
    lstm = s["lstm_forward"] + s["lstm_backward"]
    dense = s["dense_forward"] + s["dense_backward"]
    model_fb = s["model_forward"] + s["model_backward"]
    parts = [
        ("C++ kernels: _core.forward (2 layers)", cpp_f),
        ("C++ kernels: _core.backward (2 layers)", cpp_b),
        ("kernels.py wrappers (argument checks, cache)", api - cpp_f - cpp_b),
        ("LSTM layer glue (layers.py LSTM.forward/backward)", lstm - api),
        ("Dense forward/backward", dense),
        ("loss: fused softmax + cross-entropy (+ dz)", s["loss"]),
        ("model glue (layer loop, flat-gradient concatenate)", model_fb - lstm - dense),
        ("optimizer: clipnorm + Adam (_step_flat)", s["optimizer"]),
        ("fit loop (batches, grad norms, history, checks)", total - model_fb - s["loss"] - s["optimizer"]),
    ]
    return parts


def profile_step(pl: Any, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray], seed: int, steps: int,
                 batch: int) -> dict[str, Any]:
    """Accumulator breakdown and cProfile cross-check of ``steps`` training steps inside ``fit``."""
    n = steps * batch
    xs, ys = x[:n], y[:n]

    def fresh():
        m = make_model(pl, seed, weights)
        m.fit(xs[: 5 * batch], ys[: 5 * batch], epochs=1, batch_size=batch, verbose=0, shuffle=False)  # warm
        return m

    def timed_fit(m) -> tuple[float, float]:
        gc.collect()
        gc.disable()
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            m.fit(xs, ys, epochs=1, batch_size=batch, verbose=0, shuffle=False)
            return time.perf_counter() - t0, time.process_time() - c0
        finally:
            gc.enable()

    plain, plain_cpu = timed_fit(fresh())  # the same steps uninstrumented: what the wrappers cost
    model = fresh()
    acc = _Accumulators()
    with _Instrumented(model, acc):
        total, total_cpu = timed_fit(model)
    parts = _breakdown(acc, total, steps)
    kernel = acc.s["cpp_forward"] + acc.s["cpp_backward"]
    api = acc.s["api_forward"] + acc.s["api_backward"]

    prof = cProfile.Profile()
    model = fresh()
    prof.enable()
    model.fit(xs, ys, epochs=1, batch_size=batch, verbose=0, shuffle=False)
    prof.disable()
    st = pstats.Stats(prof)
    core_tt = sum(v[2] for k, v in st.stats.items()
                  if "pylstm._core.forward" in k[2] or "pylstm._core.backward" in k[2])
    top = sorted(((v[2], v[1], f"{os.path.basename(k[0])}:{k[1]}({k[2]})") for k, v in st.stats.items()),
                 reverse=True)[:10]
    return {
        "steps": steps, "batch": batch,
        "step_ms": 1e3 * total / steps, "step_ms_uninstrumented": 1e3 * plain / steps,
        "step_cpu_ms": 1e3 * total_cpu / steps, "step_cpu_ms_uninstrumented": 1e3 * plain_cpu / steps,
        "parts_ms_per_step": {name: 1e3 * v / steps for name, v in parts},
        "kernel_share": kernel / total, "kernel_api_share": api / total,
        "calls_per_step": {k: v / steps for k, v in acc.n.items()},
        "cprofile": {"total_s": st.total_tt, "core_s": core_tt, "kernel_share": core_tt / st.total_tt,
                     "top_tottime": [{"tottime_s": t, "calls": c, "function": f} for t, c, f in top]},
    }


def print_profile(p: dict[str, Any], threads: int) -> None:
    print(f"\n## 1. one training step inside fit: threads={threads}, {p['steps']} steps of batch {p['batch']}, "
          f"T={T}: {p['step_ms']:.3f} ms/step instrumented ({p['step_ms_uninstrumented']:.3f} ms plain); "
          f"process CPU {p['step_cpu_ms']:.3f} ms ({p['step_cpu_ms_uninstrumented']:.3f} ms plain)")
    print(f"{'part':<54}{'ms/step':>9}{'share':>8}")
    total = sum(p["parts_ms_per_step"].values())
    for name, ms in p["parts_ms_per_step"].items():
        print(f"{name:<54}{ms:>9.3f}{100 * ms / total:>7.1f}%")
    print(f"{'total':<54}{total:>9.3f}{100.0:>7.1f}%")
    share = p["kernel_share"]
    verdict = "PASS" if share >= KERNEL_SHARE_TARGET else "FAIL"
    print(f"inside the C++ kernels (_core.forward + _core.backward): {100 * share:.1f}%   "
          f"target >= {100 * KERNEL_SHARE_TARGET:.0f}%  {verdict}")
    print(f"inside the kernel entry points (lstm_forward/lstm_backward incl. their Python checks): "
          f"{100 * p['kernel_api_share']:.1f}%")
    cp = p["cprofile"]
    print(f"cProfile cross-check: _core.forward + _core.backward = {cp['core_s']:.3f} s of {cp['total_s']:.3f} s "
          f"= {100 * cp['kernel_share']:.1f}% (cProfile slows Python calls only: a lower bound)")
    print("cProfile top by tottime:")
    for e in cp["top_tottime"][:8]:
        print(f"  {e['tottime_s']:8.4f} s {e['calls']:>6} calls  {e['function']}")


# --------------------------------------------------------------------------- #
# 2. epoch: pylstm vs PyTorch
# --------------------------------------------------------------------------- #
def validate(pl: Any, twin_cls: Any, x: np.ndarray, y: np.ndarray, weights: list[np.ndarray], seed: int,
             batch: int, adam: str) -> dict[str, Any]:
    """Three steps on the first three batches in both; step 1 must agree before anything is timed."""
    import torch

    model = make_model(pl, seed, weights)
    twin = twin_cls(model, LR, model.optimizer.epsilon, CLIPNORM, adam)
    losses_pl, losses_t, norms_pl, norms_t = [], [], [], []
    upd = None
    for k in range(3):
        xb, yb = x[k * batch: (k + 1) * batch], y[k * batch: (k + 1) * batch]
        losses_pl.append(model.train_on_batch(xb, yb)["loss"])
        norms_pl.append(model.history.steps["grad_norm"][-1])
        tx, ty = torch.from_numpy(xb), torch.from_numpy(yb)
        twin.opt.zero_grad(set_to_none=True)
        loss = twin.loss_fn(twin.logits(tx), ty)
        loss.backward()
        norms_t.append(float(torch.nn.utils.clip_grad_norm_(twin.params, CLIPNORM)))
        twin.opt.step()
        losses_t.append(loss.item())
        if k == 0:  # weights after one update, in units of lr (Adam moves each weight by about lr)
            upd = max(float(np.max(np.abs(a - b))) for a, b in zip(model.get_weights(), twin.weights())) / LR
    errs = {"loss_step1": rel(losses_pl[0], losses_t[0]), "grad_norm_step1": rel(norms_pl[0], norms_t[0]),
            "loss_step2": rel(losses_pl[1], losses_t[1]), "loss_step3": rel(losses_pl[2], losses_t[2])}
    ok = (errs["loss_step1"] <= CHECK_TOL and errs["grad_norm_step1"] <= CHECK_TOL
          and errs["loss_step2"] <= LATER_STEP_TOL and errs["loss_step3"] <= LATER_STEP_TOL)
    return {"ok": ok, "losses_pylstm": losses_pl, "losses_torch": losses_t, "grad_norms_pylstm": norms_pl,
            "grad_norms_torch": norms_t, "rel_errors": errs, "weights_after_step1_max_diff_in_lr": upd}


def print_validation(v: dict[str, Any]) -> None:
    e = v["rel_errors"]
    print(f"validate: step-1 loss pylstm {v['losses_pylstm'][0]:.7f} torch {v['losses_torch'][0]:.7f} "
          f"(rel err {e['loss_step1']:.1e}, tol {CHECK_TOL:g}); step-1 grad norm {v['grad_norms_pylstm'][0]:.6f} vs "
          f"{v['grad_norms_torch'][0]:.6f} ({e['grad_norm_step1']:.1e}); steps 2, 3 loss rel err "
          f"{e['loss_step2']:.1e}, {e['loss_step3']:.1e} (tol {LATER_STEP_TOL:g}); weights after step 1 differ by "
          f"<= {v['weights_after_step1_max_diff_in_lr']:.1e} lr  -> {'OK' if v['ok'] else 'DISAGREE'}")


def time_epochs(pl: Any, twin_cls: Any, batches_fn: Callable, x: np.ndarray, y: np.ndarray,
                weights: list[np.ndarray], seed: int, batch: int, repeats: int, adam: str) -> dict[str, Any]:
    """Alternate one pylstm epoch and one PyTorch epoch ``repeats`` times (who goes first alternates too)."""
    tbatches = batches_fn(x, y, batch)

    def timed(fn: Callable[[], float]) -> tuple[float, float, float]:
        """(wall s, process CPU s, epoch loss) of one epoch, the garbage collector off inside."""
        gc.collect()
        gc.disable()
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            loss = fn()
            return time.perf_counter() - t0, time.process_time() - c0, loss
        finally:
            gc.enable()

    def run_pylstm() -> tuple[float, float, float]:
        model = make_model(pl, seed, weights)
        return timed(lambda: model.fit(x, y, epochs=1, batch_size=batch, verbose=0,
                                       shuffle=False).history["loss"][-1])

    def run_torch() -> tuple[float, float, float]:
        m = make_model(pl, seed, weights)
        twin = twin_cls(m, LR, m.optimizer.epsilon, CLIPNORM, adam)
        return timed(lambda: twin.epoch(tbatches))

    # warm-up: first-call costs (allocations, torch's primitive choice) out of the timed epochs
    warm = make_model(pl, seed, weights)
    warm.fit(x[: 20 * batch], y[: 20 * batch], epochs=1, batch_size=batch, verbose=0, shuffle=False)
    twin_cls(warm, LR, warm.optimizer.epsilon, CLIPNORM, adam).epoch(tbatches[:20])

    runners = {"pylstm": run_pylstm, "torch": run_torch}
    samples: dict[str, list[float]] = {"pylstm": [], "torch": []}
    cpu: dict[str, list[float]] = {"pylstm": [], "torch": []}
    final_loss: dict[str, list[float]] = {"pylstm": [], "torch": []}
    for r in range(repeats):
        for name in (("pylstm", "torch") if r % 2 == 0 else ("torch", "pylstm")):
            dt, dc, loss = runners[name]()
            samples[name].append(dt)
            cpu[name].append(dc)
            final_loss[name].append(loss)
            print(f"  repeat {r + 1}/{repeats} {name:<6} {dt:7.3f} s wall {dc:7.3f} s CPU  (epoch loss {loss:.4f})",
                  flush=True)
    med = {k: float(np.median(v)) for k, v in samples.items()}
    med_cpu = {k: float(np.median(v)) for k, v in cpu.items()}
    ratio = med["pylstm"] / med["torch"]
    return {"samples_s": samples, "cpu_samples_s": cpu, "median_s": med, "median_cpu_s": med_cpu,
            "min_s": {k: min(v) for k, v in samples.items()}, "max_s": {k: max(v) for k, v in samples.items()},
            "epoch_loss": final_loss, "ratio": ratio, "cpu_ratio": med_cpu["pylstm"] / med_cpu["torch"],
            "ratio_target": EPOCH_RATIO_TARGET, "result": "PASS" if ratio <= EPOCH_RATIO_TARGET else "FAIL",
            "steps": len(tbatches)}


def print_epochs(e: dict[str, Any], n: int, threads: int) -> None:
    print(f"{'impl':<8}{'median s':>10}{'min s':>9}{'max s':>9}{'ms/step':>9}{'CPU s':>9}   wall samples (s)")
    for name in ("pylstm", "torch"):
        s = e["samples_s"][name]
        print(f"{name:<8}{e['median_s'][name]:>10.3f}{e['min_s'][name]:>9.3f}{e['max_s'][name]:>9.3f}"
              f"{1e3 * e['median_s'][name] / e['steps']:>9.3f}{e['median_cpu_s'][name]:>9.3f}   "
              + " ".join(f"{v:.3f}" for v in s))
    print(f"ratio pylstm / torch (wall medians) = {e['ratio']:.3f}   target <= {EPOCH_RATIO_TARGET}  {e['result']}"
          f"   (torch / pylstm = {1 / e['ratio']:.2f}x)")
    print(f"cross-check, process CPU time (immune to being descheduled; at >1 thread it counts spinning too): "
          f"ratio {e['cpu_ratio']:.3f}")


# --------------------------------------------------------------------------- #
def run_threads(threads: int, pl: Any, twin_mod: Any, x, y, weights, args) -> dict[str, Any]:
    import torch

    pl.set_num_threads(threads)
    torch.set_num_threads(threads)
    busy = _timing.background_busy(1.0)
    load = os.getloadavg()
    print(f"\n# ===== threads={threads}   background CPU use before the run: "
          f"{'?' if busy is None else f'{100 * busy:.0f}%'} of all CPUs; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    if busy is not None and busy > 0.10:
        print("# WARNING: the machine is not quiet: others' work is in these numbers (the 2-thread ones above all)")
    with _timing.blas_limiter(threads):  # numpy's BLAS (Dense, gradient norms) gets the same thread count
        return _run_limited(threads, pl, twin_mod, x, y, weights, args, busy, load)


def _run_limited(threads: int, pl: Any, twin_mod: Any, x, y, weights, args, busy, load) -> dict[str, Any]:
    prof = profile_step(pl, x, y, weights, args.seed, args.profile_steps, args.batch_size)
    print_profile(prof, threads)

    print(f"\n## 2. epoch of {x.shape[0]} samples, batch {args.batch_size}: pylstm fit vs PyTorch, threads={threads}, "
          f"torch Adam '{args.torch_adam}'", flush=True)
    val = validate(pl, twin_mod.TorchTwin, x, y, weights, args.seed, args.batch_size, args.torch_adam)
    print_validation(val)
    if not val["ok"]:
        raise SystemExit("pylstm and PyTorch disagree on the first steps: refusing to time them")
    ep = time_epochs(pl, twin_mod.TorchTwin, twin_mod.torch_batches, x, y, weights, args.seed, args.batch_size,
                     args.repeats, args.torch_adam)
    print_epochs(ep, x.shape[0], threads)
    return {"threads": threads, "background_busy": busy, "loadavg_before": list(load),
            "loadavg_after": list(os.getloadavg()), "profile": prof, "validation": val, "epoch": ep}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1], help="thread counts to run (default 1)")
    ap.add_argument("--n", type=int, default=100_000, help="samples per epoch (default 100000)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs per implementation (default 3)")
    ap.add_argument("--profile-steps", type=int, default=300, help="steps in the profile (default 300)")
    ap.add_argument("--torch-adam", choices=("default", "foreach", "fused"), default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    if any(t < 1 for t in args.threads) or args.repeats < 1 or args.n < 20 * args.batch_size:
        ap.error("--threads and --repeats must be >= 1, --n at least 20 batches")
    if args.profile_steps * args.batch_size > args.n:
        ap.error("--profile-steps × --batch-size must not exceed --n")

    # pylstm before torch: both may bring an OpenMP runtime, only one gets loaded, and
    # pylstm's settings (_openmp_env) must be the first to reach it.
    import pylstm as pl
    import torch

    import _trainer_torch as twin_mod

    rep = _timing.machine_report()
    rep.update({"pylstm_info": pl.info(), "torch": torch.__version__})
    _timing.print_machine_report(rep, {"pylstm.info()": pl.info(), "torch": torch.__version__})
    x, y = parity_data(args.n, args.seed)
    weights = make_model(pl, args.seed).get_weights()  # the initial weights everyone starts from
    print(f"# model: LSTM({H}, return_sequences) -> LSTM({H}) -> Dense({C}, softmax); input (N, {T}, {F}); "
          f"Adam(lr={LR:g}, clipnorm={CLIPNORM:g}); {sum(w.size for w in weights)} params; N={args.n}")
    runs = [run_threads(t, pl, twin_mod, x, y, weights, args) for t in args.threads]

    print("\n# summary")
    print(f"{'threads':>7}{'kernel share':>14}{'pylstm s':>10}{'torch s':>9}{'ratio':>7}{'CPU ratio':>11}  verdicts")
    for r in runs:
        e, p = r["epoch"], r["profile"]
        v_share = "PASS" if p["kernel_share"] >= KERNEL_SHARE_TARGET else "FAIL"
        print(f"{r['threads']:>7}{100 * p['kernel_share']:>13.1f}%{e['median_s']['pylstm']:>10.3f}"
              f"{e['median_s']['torch']:>9.3f}{e['ratio']:>7.3f}{e['cpu_ratio']:>11.3f}  "
              f"share {v_share}, ratio {e['result']}"
              f"   (background {100 * (r['background_busy'] or 0):.0f}%)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": rep, "args": vars(args), "runs": runs,
                       "targets": {"kernel_share_min": KERNEL_SHARE_TARGET, "epoch_ratio_max": EPOCH_RATIO_TARGET},
                       "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, f, indent=1, default=str)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
