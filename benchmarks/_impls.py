"""The implementations the benchmarks time, behind one interface.

Every implementation gets the same problem (weights, input ``x``, output
gradient ``R``) and offers

* ``train()``: forward over the sequence keeping what the backward needs, then
  the full backward (incl. ``dx`` and the weight gradients) of
  ``loss = sum(y * R)``, i.e. ``dy = R``; stacked layers chain ``dx`` down;
* ``forward()``: inference only (no cache; PyTorch under ``torch.no_grad()``);
* ``results()``: the outputs of one ``train()`` and one ``forward()``, as NumPy
  arrays keyed alike for every implementation, for the agreement check.
"""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import numpy as np

import numpy_lstm


@dataclass
class Problem:
    """One benchmark case: a stack of ``layers`` LSTM layers of width H over (B, T, I) inputs."""

    T: int
    B: int
    I: int
    H: int
    layers: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        k = 1.0 / np.sqrt(self.H)  # PyTorch's default init range
        f32 = np.float32
        self.weights = []  # per layer: (W_ih, W_hh, b_ih, b_hh), PyTorch layout, float32
        for layer in range(self.layers):
            n_in = self.I if layer == 0 else self.H
            shapes = [(4 * self.H, n_in), (4 * self.H, self.H), (4 * self.H,), (4 * self.H,)]
            self.weights.append(tuple(rng.uniform(-k, k, s).astype(f32) for s in shapes))
        self.x = rng.standard_normal((self.B, self.T, self.I)).astype(f32)
        self.R = rng.standard_normal((self.B, self.T, self.H)).astype(f32)

    @property
    def name(self) -> str:
        return f"{self.T},{self.B},{self.I},{self.H}"

    def forward_flops(self) -> float:
        """Σ over layers 2·T·B·(I+H)·4H (the products; elementwise work not counted)."""
        total = 0
        for layer in range(self.layers):
            n_in = self.I if layer == 0 else self.H
            total += 2 * self.T * self.B * (n_in + self.H) * 4 * self.H
        return float(total)


def _grad_dict(dx: np.ndarray, per_layer: list[tuple[np.ndarray, ...]]) -> dict[str, np.ndarray]:
    out = {"dx": dx}
    for layer, (dW_ih, dW_hh, db_ih, db_hh) in enumerate(per_layer):
        out.update({f"dW_ih{layer}": dW_ih, f"dW_hh{layer}": dW_hh, f"db_ih{layer}": db_ih, f"db_hh{layer}": db_hh})
    return out


class _FunctionalImpl:
    """pylstm and the NumPy peer: a module of free functions with pylstm's signatures."""

    def __init__(self, name: str, mod: Any, p: Problem, threads: int | None):
        self.name, self.mod, self.p = name, mod, p
        # num_threads only for modules that take it (pylstm); NumPy's BLAS is limited by the caller.
        self.kw = {} if threads is None else {"num_threads": threads}

    def train(self) -> tuple[np.ndarray, np.ndarray, list]:
        """The timed step: (y, dx, per-layer LSTMGrads bottom-up); no bookkeeping beyond that."""
        f, b, kw = self.mod.lstm_forward, self.mod.lstm_backward, self.kw
        h, caches = self.p.x, []
        for w in self.p.weights:
            h, _, _, cache = f(h, *w, need_cache=True, **kw)
            caches.append(cache)
        dy, grads = self.p.R, []
        for cache in reversed(caches):
            g = b(cache, dy, **kw)
            grads.append(g)
            dy = g.dx
        return h, dy, grads

    def _train(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        y, dx, grads = self.train()
        return y, _grad_dict(dx, [(g.dW_ih, g.dW_hh, g.db_ih, g.db_hh) for g in reversed(grads)])

    def forward(self) -> np.ndarray:
        h = self.p.x
        for w in self.p.weights:
            h = self.mod.lstm_forward(h, *w, need_cache=False, **self.kw)[0]
        return h

    def results(self) -> dict[str, np.ndarray]:
        y_train, grads = self._train()
        return {"y": self.forward(), "y_train": np.array(y_train), **grads}


class PylstmImpl(_FunctionalImpl):
    def __init__(self, p: Problem, threads: int, module: Any = None):
        if module is None:
            import pylstm as module
        super().__init__("pylstm", module, p, threads)


class NumpyImpl(_FunctionalImpl):
    def __init__(self, p: Problem, threads: int):
        super().__init__("numpy", numpy_lstm, p, None)


class TorchImpl:
    """torch.nn.LSTM(batch_first=True), float32, the problem's weights; threads set by the caller."""

    name = "torch"

    def __init__(self, p: Problem, threads: int):
        import torch

        self.torch = torch
        torch.set_num_threads(threads)
        self.p = p
        self.m = torch.nn.LSTM(p.I, p.H, num_layers=p.layers, batch_first=True)
        with torch.no_grad():
            for layer, w in enumerate(p.weights):
                for pname, arr in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), w):
                    getattr(self.m, f"{pname}_l{layer}").copy_(torch.from_numpy(arr))
        self.params = list(self.m.parameters())
        self.x = torch.from_numpy(p.x).requires_grad_()
        self.x_nograd = torch.from_numpy(p.x)
        self.R = torch.from_numpy(p.R)

    def train(self) -> Any:
        self.x.grad = None  # fresh gradients each call, like the other implementations
        for q in self.params:
            q.grad = None
        y, _ = self.m(self.x)
        y.backward(self.R)
        return y

    def forward(self) -> Any:
        with self.torch.no_grad():
            return self.m(self.x_nograd)[0]

    def results(self) -> dict[str, np.ndarray]:
        y_train = self.train().detach().numpy().copy()
        per_layer = []
        for layer in range(self.p.layers):
            per_layer.append(tuple(getattr(self.m, f"{n}_l{layer}").grad.numpy().copy()
                                   for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        return {"y": self.forward().numpy().copy(), "y_train": y_train,
                **_grad_dict(self.x.grad.numpy().copy(), per_layer)}


def rel_err(a: np.ndarray, r: np.ndarray) -> float:
    """``max|a - r| / max|r|`` in float64 (``max|a - r|`` when r is all zeros)."""
    a, r = np.asarray(a, np.float64), np.asarray(r, np.float64)
    if a.shape != r.shape:
        return float("inf")
    scale = float(np.max(np.abs(r))) if r.size else 0.0
    diff = float(np.max(np.abs(a - r))) if r.size else 0.0
    return diff / scale if scale > 0 else diff


def agreement(impls: list[Any], tol: float) -> dict[str, Any]:
    """Compare every implementation's outputs and gradients with the first one's.

    Returns ``{"ok": bool, "max_rel_err": {name: worst}, "failures": [text, ...]}``.
    """
    ref = impls[0].results()
    out: dict[str, Any] = {"ok": True, "max_rel_err": {}, "failures": []}
    for impl in impls[1:]:
        res = impl.results()
        worst = 0.0
        for key, r in ref.items():
            e = rel_err(res[key], r)
            worst = max(worst, e)
            if not e <= tol:  # NaN fails too
                out["ok"] = False
                out["failures"].append(f"{impl.name} vs {impls[0].name}: {key} rel err {e:.2e} > {tol:.0e}")
        out["max_rel_err"][impl.name] = worst
    return out


def load_pylstm(which: str) -> tuple[Any, dict[str, Any]]:
    """The pylstm functions to time and a description: the C++ kernel or the NumPy reference.

    ``which="reference"`` times ``pylstm.reference`` under the pylstm name (to
    exercise the harness before the kernel exists; its numbers mean nothing).
    """
    import pylstm

    if which == "reference":
        mod = types.SimpleNamespace(lstm_forward=pylstm.reference.lstm_forward,
                                    lstm_backward=pylstm.reference.lstm_backward,
                                    lstm_step=pylstm.reference.lstm_step)
        return mod, {"module": "pylstm.reference (stand-in, NOT the kernel)"}
    info = dict(pylstm.info()) if hasattr(pylstm, "info") else {}
    return pylstm, info
