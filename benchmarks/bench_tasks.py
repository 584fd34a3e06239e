"""Time to target of each task's working configuration: pylstm vs the same configuration in PyTorch.

Same initial weights (copied from the pylstm model), same batches in the same
order, same optimizer (Adam, ε = 1e-7, global-norm clipping), same
measurements on the same schedule (``pylstm.tasks``' own measure functions,
given a PyTorch model behind the same ``predict``/``generate``/``evaluate``
calls).  Validate first: before timing, one optimizer step on the first batch
must give the same loss and the same weights in both.  Then one timed run per
framework to the task's target; JSON out.

    python benchmarks/bench_tasks.py                     # or, alternating, copy-first, parity, parity-50, char
    python benchmarks/bench_tasks.py --tasks or,char --threads 1 --out bench_tasks.json
    python benchmarks/bench_tasks.py --tasks char --text tinyshakespeare.txt --minutes 10

Each timed run is a fresh process (PyTorch's and pylstm's OpenMP pools would otherwise compete for the cores);
each framework runs ``--repeat`` times, interleaved; the fastest run is reported, all are kept in the JSON.
"to target" is wall time including the held-out measurements (the same ones in both), "train s" without them.

Notes: the runs' step counts can differ a little (float32 rounding takes the two
trajectories apart after a few hundred steps), so the JSON gives steps and
seconds per step as well as the time to target.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from typing import Any

import numpy as np

import pylstm as pl
from pylstm import layers as L
from pylstm.tasks import alternating, binary_or, char_model, copy_first, parity
from pylstm.tasks._runner import Monitor, TimeLimit
from pylstm.tasks._seeds import split_seeds


# --------------------------------------------------------------------------- the same model in PyTorch
class TorchTwin:
    """A PyTorch copy of a pylstm Sequential (LSTM stack + Dense head), with pylstm's inference calls."""

    def __init__(self, model: pl.Sequential, torch):
        self.torch = torch
        nn = torch.nn
        self.lstms, self.head, self.ids_vocab, self.stateful = [], None, None, False
        self.returns_sequences, self.dropout, self.training = True, 0.0, False
        for layer in model.layers:
            w = [torch.from_numpy(np.array(a)) for a in layer.get_weights()]
            if isinstance(layer, L.Dropout):  # on the last LSTM's outputs (the char model's only use)
                self.dropout = layer.rate
            elif isinstance(layer, L.LSTM):
                W_ih, W_hh, b_ih, b_hh = w
                m = nn.LSTM(W_ih.shape[1], W_hh.shape[1], batch_first=True)
                with torch.no_grad():
                    m.weight_ih_l0.copy_(W_ih)
                    m.weight_hh_l0.copy_(W_hh)
                    m.bias_ih_l0.copy_(b_ih)
                    m.bias_hh_l0.copy_(b_hh)
                self.lstms.append(m)
                if layer.vocab_size is not None:
                    self.ids_vocab = layer.vocab_size
                self.stateful |= layer.stateful
                self.returns_sequences = layer.return_sequences
            elif isinstance(layer, L.Dense):
                W, b = w
                self.head = nn.Linear(W.shape[1], W.shape[0])
                with torch.no_grad():
                    self.head.weight.copy_(W)
                    self.head.bias.copy_(b)
                self.activation = layer.activation
            else:  # pragma: no cover
                raise TypeError(f"no PyTorch twin for {layer!r}")
        self.params = [p for m in self.lstms for p in m.parameters()] + list(self.head.parameters())
        self.states = None

    def _input(self, x: np.ndarray):
        t = self.torch.from_numpy(np.array(x))  # a writable copy (pylstm hands out read-only batches)
        if self.ids_vocab is not None:
            t = self.torch.nn.functional.one_hot(t.long(), self.ids_vocab).float()
        return t

    def logits(self, x: np.ndarray, states=None):
        h = self._input(x)
        new = []
        for k, m in enumerate(self.lstms):
            h, s = m(h, None if states is None else states[k])
            new.append(s)
        if not self.returns_sequences:
            h = h[:, -1]
        if self.dropout and self.training:
            h = self.torch.nn.functional.dropout(h, self.dropout, training=True)
        return self.head(h), new

    def _prob(self, z):
        if self.activation == "sigmoid":
            return self.torch.sigmoid(z)
        if self.activation == "softmax":
            return self.torch.softmax(z, dim=-1)
        return z

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self._prob(self.logits(x)[0]).numpy()

    def generate(self, prompt: np.ndarray, steps: int, greedy: bool = True) -> np.ndarray:
        """Greedy generation, one step at a time with the state carried (as pylstm's generate)."""
        eye = np.eye(self.head.out_features, dtype=np.float32)
        ids = np.asarray(prompt)[None]
        x = ids if self.ids_vocab is not None else eye[ids]
        out = []
        with self.torch.no_grad():
            z, st = self.logits(x)
            for _ in range(steps):
                tok = int(z[0, -1].argmax())
                out.append(tok)
                x = np.array([[tok]]) if self.ids_vocab is not None else eye[[[tok]]]
                z, st = self.logits(x, st)
        return np.array(out)

    def evaluate(self, batches) -> dict[str, float]:
        """Mean per-character cross-entropy and accuracy over stream batches, state carried from zeros."""
        F = self.torch.nn.functional
        total = correct = n = 0.0
        st = None
        with self.torch.no_grad():
            for xb, yb in batches:
                z, st = self.logits(xb, st)
                y = self.torch.from_numpy(np.array(yb)).long()
                total += float(F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), reduction="sum"))
                correct += float((z.argmax(-1) == y).sum())
                n += y.numel()
        return {"loss": total / n, "accuracy": correct / n}

    def loss(self, x, y):
        F = self.torch.nn.functional
        states = None
        if self.stateful and self.states is not None:
            states = [(h.detach(), c.detach()) for h, c in self.states]
        self.training = True
        z, new = self.logits(x, states)
        self.training = False
        if self.stateful:
            self.states = new
        y = self.torch.from_numpy(np.array(y))
        if self.activation == "sigmoid":
            return F.binary_cross_entropy_with_logits(z, y.float())
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.long().reshape(-1))


# --------------------------------------------------------------------------- batches both frameworks see
class EpochBatches:
    """Re-iterable shuffled batches of arrays: epoch e uses permutation e of a seeded generator."""

    def __init__(self, x, y, batch_size: int, seed: int, shuffle: bool = True):
        self.x, self.y, self.bs, self.shuffle = x, y, batch_size, shuffle
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return -(-len(self.x) // self.bs)

    def __iter__(self):
        idx = self.rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        for i in range(0, len(idx), self.bs):
            j = idx[i: i + self.bs]
            yield self.x[j], self.y[j]


def _spec(name: str, seed: int, text: str | None) -> dict[str, Any]:
    """Model, data (a factory of identical batch streams), measure and target of one task's working config."""
    s_data, s_test, s_model = split_seeds(seed)
    if name == "or":
        x, y = binary_or.make_or_data(binary_or.OR_TRAIN, s_data)
        xt, yt = binary_or.make_or_data(binary_or.OR_TEST, s_test)
        return dict(model=binary_or.working_model(s_model), batches=lambda: EpochBatches(x, y, 32, s_model),
                    measure=binary_or._measure_bits(xt, yt, linear=False), reached=lambda m: m.value == 1.0,
                    every=25, epochs=1)
    if name == "alternating":
        seq = alternating.make_sequence(30)
        x, y = alternating.encode(seq[:-1])[None], seq[1:][None]
        return dict(model=alternating.working_model(s_model), batches=lambda: [(x, y)],
                    measure=alternating._measure(seq), reached=lambda m: m.value == 1.0, every=10, epochs=3000)
    if name == "copy-first":
        x, y = copy_first.make_data(copy_first.TRAIN_N, s_data, 3)
        xt, yt = copy_first.make_data(copy_first.TEST_N, s_test, 3)
        return dict(model=copy_first.working_model(s_model), batches=lambda: EpochBatches(x, y, 20, s_model),
                    measure=copy_first._measure(xt, yt), reached=lambda m: m.value == 1.0, every=5, epochs=40)
    if name.startswith("parity"):
        T = 7 if name == "parity" else int(name.split("-")[1])
        x, _, running = parity.make_data(10_000, s_data, T)
        xt, yt, _ = parity.make_data(2_000, s_test, T)
        target = 1.0 if T <= 7 else 0.99
        return dict(model=parity.working_model(s_model), batches=lambda: EpochBatches(x, running, 64, s_model),
                    measure=parity._measure(xt, yt), reached=lambda m: m.value >= target, every=25, epochs=3)
    if name == "char":
        corpus = pl.TextCorpus(text if text is not None else char_model.quick_corpus())
        train, valid = corpus.split(0.9)
        cfg = char_model._WORKING[text is None]
        target = char_model.QUICK_TARGET if text is None else char_model.FULL_TARGET
        model = char_model.working_model(corpus.vocab_size, s_model, units=cfg["units"], depth=cfg["depth"],
                                         lr=cfg["lr"], decay_steps=cfg["decay_steps"], dropout=cfg["dropout"])
        every = max(cfg["every"], len(train) // (cfg["batch_size"] * cfg["seq_len"]) // 8)
        return dict(model=model, batches=lambda: train.batches(cfg["batch_size"], cfg["seq_len"]),
                    measure=char_model._measure(valid, 32), reached=lambda m: m.value < target, every=every,
                    epochs=cfg["epochs"], stateful=True)
    raise ValueError(f"unknown task {name!r}")


def _torch_optimizer(model: pl.Sequential, twin: TorchTwin, torch):
    """Adam with pylstm's hyperparameters; ``lr_at(step)`` gives pylstm's learning rate (schedules too)."""
    opt = model.optimizer
    assert isinstance(opt, pl.optim.Adam), "the benchmark mirrors Adam only"
    t_opt = torch.optim.Adam(twin.params, lr=opt.current_lr(), betas=(opt.beta_1, opt.beta_2), eps=opt.epsilon)
    sched = opt.lr
    t_opt.lr_at = sched if callable(sched) else (lambda step: sched)
    t_opt.steps_done = 0
    return t_opt, opt.clipnorm


def _torch_step(twin, t_opt, clipnorm, xb, yb, torch) -> float:
    for group in t_opt.param_groups:
        group["lr"] = t_opt.lr_at(t_opt.steps_done)
    t_opt.steps_done += 1
    t_opt.zero_grad()
    loss = twin.loss(xb, yb)
    loss.backward()
    if clipnorm is not None:
        torch.nn.utils.clip_grad_norm_(twin.params, clipnorm)
    t_opt.step()
    return float(loss.detach())


def validate(name: str, seed: int, text: str | None, torch) -> dict[str, float]:
    """One step on the first batch in both: the losses and the updated weights must agree (float32).

    With dropout the two draw different masks, so there the check is the inference output instead.
    """
    spec = _spec(name, seed, text)
    model = spec["model"]
    twin = TorchTwin(model, torch)
    if twin.dropout:
        xb, _ = next(iter(spec["batches"]()))
        ours, theirs = model.predict(xb), twin.predict(xb)
        err = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
        if not err < 1e-4:
            raise AssertionError(f"{name}: pylstm and PyTorch predictions disagree before timing: {err:.2e}")
        return {"predict_rel_err": err}
    t_opt, clip = _torch_optimizer(model, twin, torch)
    xb, yb = next(iter(spec["batches"]()))
    logs = model.train_on_batch(xb, yb)
    t_loss = _torch_step(twin, t_opt, clip, xb, yb, torch)
    ours = np.concatenate([w.ravel() for w in model.get_weights()])
    theirs = np.concatenate([p.detach().numpy().ravel() for m in twin.lstms for p in
                             (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0, m.bias_hh_l0)]
                            + [twin.head.weight.detach().numpy().ravel(), twin.head.bias.detach().numpy()])
    loss_err = abs(logs["loss"] - t_loss) / max(abs(t_loss), 1e-12)
    w_err = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
    if not (loss_err < 1e-4 and w_err < 1e-4):
        raise AssertionError(f"{name}: pylstm and PyTorch disagree before timing: loss rel err {loss_err:.2e}, "
                             f"weights rel err {w_err:.2e}")
    return {"loss_rel_err": loss_err, "weights_rel_err": w_err}


def time_pylstm(name: str, seed: int, text: str | None, minutes: float | None) -> dict[str, Any]:
    spec = _spec(name, seed, text)
    model = spec["model"]
    mon = Monitor(spec["measure"], spec["reached"], every=spec["every"])
    cbs = [TimeLimit(60 * minutes)] if minutes else []
    t0 = time.perf_counter()
    model.fit(spec["batches"](), epochs=spec["epochs"], verbose=0, callbacks=[mon, *cbs])
    wall = time.perf_counter() - t0
    return {"reached": mon.reached_step is not None, "steps": int(model.step), "seconds": wall,
            "train_seconds": wall - mon.eval_seconds, "value": float(mon.last.value)}


def time_torch(name: str, seed: int, text: str | None, minutes: float | None, torch) -> dict[str, Any]:
    spec = _spec(name, seed, text)
    twin = TorchTwin(spec["model"], torch)
    t_opt, clip = _torch_optimizer(spec["model"], twin, torch)
    batches = spec["batches"]()
    measure, reached, every = spec["measure"], spec["reached"], spec["every"]
    eval_s, step, hit, last = 0.0, 0, False, None
    t0 = time.perf_counter()

    def look():
        nonlocal eval_s, hit, last
        te = time.perf_counter()
        last = measure(twin)
        eval_s += time.perf_counter() - te
        hit = reached(last)

    look()
    for _ in range(spec["epochs"]):
        twin.states = None  # pylstm resets a stateful model's state at each epoch
        for xb, yb in batches:
            _torch_step(twin, t_opt, clip, xb, yb, torch)
            step += 1
            if step % every == 0:
                look()
            if hit or (minutes and time.perf_counter() - t0 > 60 * minutes):
                break
        if hit or (minutes and time.perf_counter() - t0 > 60 * minutes):
            break
        if step % every:
            look()
    wall = time.perf_counter() - t0
    return {"reached": hit, "steps": step, "seconds": wall, "train_seconds": wall - eval_s, "value": float(last.value)}


def _one_run(name: str, fw: str, args: argparse.Namespace) -> dict[str, Any]:
    """One timed run in a fresh process: PyTorch's and pylstm's OpenMP thread pools never share one."""
    cmd = [sys.executable, __file__, "--one", f"{name}:{fw}", "--seed", str(args.seed)]
    for flag in ("threads", "text", "minutes"):
        if getattr(args, flag):
            cmd += [f"--{flag}", str(getattr(args, flag))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _child(args: argparse.Namespace) -> int:
    name, fw = args.one.split(":")
    text = char_model.read_text(args.text) if args.text else None
    if args.threads:
        pl.set_num_threads(args.threads)
    if fw == "torch":
        import torch

        torch.set_num_threads(pl.get_num_threads())
        res = time_torch(name, args.seed, text, args.minutes, torch)
    else:
        res = time_pylstm(name, args.seed, text, args.minutes)
    print(json.dumps(res))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="or,alternating,copy-first,parity,parity-50,char")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="threads for both (default: pylstm's default)")
    p.add_argument("--text", help="char: this text file instead of the quick corpus (target 1.55)")
    p.add_argument("--minutes", type=float, help="char: wall-clock cap per framework")
    p.add_argument("--repeat", type=int, default=3,
                   help="timed runs per framework, alternating pylstm/torch; the fastest is reported (shared "
                        "machines: the minimum is the least disturbed run)")
    p.add_argument("--out", default="bench_tasks.json")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: one timed run, JSON on stdout
    args = p.parse_args(argv)
    if args.one:
        return _child(args)
    try:
        import torch
    except ImportError:
        torch = None
    if args.threads:
        pl.set_num_threads(args.threads)
    threads = pl.get_num_threads()
    if torch is not None:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
    text = None
    if args.text:
        text = char_model.read_text(args.text)
    rows = []
    print(f"{'task':<12} {'framework':<9} {'reached':<7} {'steps':>6} {'to target s':>11} {'train s':>8} "
          f"{'ms/step':>8}  speedup")
    for name in args.tasks.split(","):
        row: dict[str, Any] = {"task": name, "seed": args.seed}
        if torch is not None:
            row["validation"] = validate(name, args.seed, text, torch)
        runs: dict[str, list] = {"pylstm": [], "torch": []}
        for _ in range(max(1, args.repeat)):  # interleaved, so a busy spell hits both
            runs["pylstm"].append(_one_run(name, "pylstm", args))
            if torch is not None:
                runs["torch"].append(_one_run(name, "torch", args))
        for fw, rs in runs.items():
            if rs:
                best = min(rs, key=lambda r: r["seconds"])
                row[fw] = {**best, "all_seconds": [r["seconds"] for r in rs],
                           "all_train_seconds": [r["train_seconds"] for r in rs]}
        for fw in ("pylstm", "torch"):
            if fw not in row:
                continue
            r = row[fw]
            r["ms_per_step"] = 1000 * r["train_seconds"] / max(1, r["steps"])
            speed = ""
            if fw == "torch":
                row["speedup_to_target"] = r["seconds"] / row["pylstm"]["seconds"]
                row["speedup_train_to_target"] = r["train_seconds"] / row["pylstm"]["train_seconds"]
                row["speedup_per_step"] = r["ms_per_step"] / row["pylstm"]["ms_per_step"]
                speed = (f"{row['speedup_to_target']:.1f}x to target ({row['speedup_train_to_target']:.1f}x "
                         f"training only), {row['speedup_per_step']:.1f}x per step")
            print(f"{name:<12} {fw:<9} {str(r['reached']):<7} {r['steps']:>6} {r['seconds']:>11.2f} "
                  f"{r['train_seconds']:>8.2f} {r['ms_per_step']:>8.2f}  {speed}", flush=True)
        rows.append(row)
    meta = {"pylstm": pl.__version__, "isa": pl.info()["isa"], "threads": threads,
            "python": sys.version.split()[0], "torch": None if torch is None else torch.__version__,
            "machine": platform.processor() or platform.machine(), "text": args.text, "minutes": args.minutes}
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=1)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
