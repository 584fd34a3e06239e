"""What training recorded: per-epoch values and a per-optimizer-step log.

``history.history["loss"][e]`` is epoch e's mean training loss (likewise every
metric, ``val_*`` and ``lr``); ``history.epoch`` holds the epoch numbers
(0-based, continuing across ``fit`` calls).  ``history.steps`` holds one entry
per optimizer update, so curves can be drawn against steps::

    steps["step"]            1, 2, ...     update number (the model's step after it)
    steps["epoch"]           epoch of the update
    steps["loss"]            the batch's loss
    steps["lr"]              learning rate used
    steps["grad_norm"]       global L2 norm of the gradient (before clipping)
    steps["layer_grad_norm"] [norm per layer with weights], names in ``layer_names``

A History holds only numbers and names: the same seeds give equal Histories.
"""
from __future__ import annotations

from typing import Any

__all__ = ["History"]

_STEP_KEYS = ("step", "epoch", "loss", "lr", "grad_norm", "layer_grad_norm")


class History:
    """Per-epoch and per-step training records (see the module docstring)."""

    def __init__(self) -> None:
        self.epoch: list[int] = []
        self.history: dict[str, list[float]] = {}
        self.steps: dict[str, list] = {k: [] for k in _STEP_KEYS}
        self.layer_names: list[str] = []

    # ------------------------------------------------------------------ recording (called by fit)
    def _log_step(self, step: int, epoch: int, loss: float, lr: float, grad_norm: float,
                  layer_norms: list[float]) -> None:
        s = self.steps
        s["step"].append(step)
        s["epoch"].append(epoch)
        s["loss"].append(loss)
        s["lr"].append(lr)
        s["grad_norm"].append(grad_norm)
        s["layer_grad_norm"].append(layer_norms)

    def _log_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        n = len(self.epoch)
        self.epoch.append(epoch)
        for key, value in logs.items():
            # a key first seen late (e.g. val_loss once validation starts) is padded with None
            self.history.setdefault(key, [None] * n).append(float(value))
        for key, values in self.history.items():
            if len(values) < n + 1:
                values.append(None)

    # ------------------------------------------------------------------ access
    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def num_steps(self) -> int:
        return len(self.steps["step"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists of numbers and names)."""
        return {"epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()},
                "steps": {k: list(v) for k, v in self.steps.items()}, "layer_names": list(self.layer_names)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """Inverse of ``to_dict``."""
        h = cls()
        h.epoch = [int(e) for e in d.get("epoch", [])]
        h.history = {k: list(v) for k, v in d.get("history", {}).items()}
        steps = d.get("steps", {})
        h.steps = {k: list(steps.get(k, [])) for k in _STEP_KEYS}
        h.steps["layer_grad_norm"] = [list(v) for v in h.steps["layer_grad_norm"]]
        h.layer_names = list(d.get("layer_names", []))
        return h

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        keys = ", ".join(self.history) or "-"
        return f"History(epochs={len(self.epoch)}, steps={self.num_steps}, keys=[{keys}])"
