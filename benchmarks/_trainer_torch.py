"""The PyTorch twin of the 2×LSTM(40) parity model, for ``bench_trainer.py``.

Same architecture as the pylstm model, same weights (copied with
``pylstm.interop.to_torch``), the same batches in the same order, and the same
update rule:

* ``nn.LSTM(1, 40, batch_first=True)`` → ``nn.LSTM(40, 40, batch_first=True)``
  → last step → ``nn.Linear(40, 2)``; ``CrossEntropyLoss`` on the logits (pylstm
  fuses ``Dense(softmax)`` with ``sparse_categorical_crossentropy`` the same way);
* ``torch.optim.Adam(lr, betas=(0.9, 0.999), eps)`` with pylstm's ε (1e-7, Keras'
  default, added to sqrt(v̂) in both, so the rule is the same formula);
* ``clip_grad_norm_(params, clipnorm)`` before the step. Torch scales by
  ``clipnorm / (‖g‖ + 1e-6)``, pylstm by ``clipnorm / ‖g‖``: a relative
  difference of 1e-6, below float32 rounding of the update.

Imported only after pylstm (both may bring an OpenMP runtime; pylstm's settings
must reach it first).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


class TorchTwin:
    """The torch model holding a pylstm Sequential's current weights, with its own Adam.

    Parameters
    ----------
    model : pylstm.Sequential
        Built ``[LSTM(H, return_sequences=True), LSTM(H), Dense(C)]``.
    lr, epsilon, clipnorm : float
        The pylstm optimizer's settings.
    adam : {"default", "foreach", "fused"}
        Which of torch's Adam implementations to use ("default": torch picks,
        which on CPU is the per-tensor loop).
    """

    def __init__(self, model: Any, lr: float, epsilon: float, clipnorm: float, adam: str = "default"):
        from pylstm import interop

        lstm1, lstm2, dense = model.layers
        # Two one-layer modules (the brief's architecture), each an exact copy of a pylstm layer.
        self.lstm1 = interop.to_torch([lstm1], batch_first=True)
        self.lstm2 = interop.to_torch([lstm2], batch_first=True)
        W, b = dense.get_weights()
        self.linear = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(W))
            self.linear.bias.copy_(torch.from_numpy(b))
        self.params = [*self.lstm1.parameters(), *self.lstm2.parameters(), *self.linear.parameters()]
        self.loss_fn = torch.nn.CrossEntropyLoss()
        kwargs = {} if adam == "default" else {adam: True}
        self.opt = torch.optim.Adam(self.params, lr=lr, betas=(0.9, 0.999), eps=epsilon, **kwargs)
        self.clipnorm = clipnorm

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        y1, _ = self.lstm1(x)
        y2, _ = self.lstm2(y1)
        return self.linear(y2[:, -1])

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One update on one batch; returns the batch's loss before the update."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.logits(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.clipnorm)
        self.opt.step()
        return loss.item()

    def epoch(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """One pass over ``batches``; returns the mean batch loss (as pylstm's epoch loss, equal batches)."""
        total = 0.0
        for x, y in batches:
            total += self.step(x, y)
        return total / len(batches)

    def weights(self) -> list[np.ndarray]:
        """Current weights in pylstm's ``get_weights()`` order."""
        return [p.detach().numpy().copy() for p in self.params]


def torch_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Contiguous slices of the (already ordered) arrays, as tensors sharing their memory."""
    tx, ty = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    return [(tx[i: i + batch_size], ty[i: i + batch_size]) for i in range(0, x.shape[0], batch_size)]
