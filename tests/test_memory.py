"""What a training step allocates beyond its cache, outputs and gradients (the kernel's workspace).

The workspace sizes are the binding's own (``_core.workspace_bytes`` runs the
functions the binding sizes its one allocation with); the cache is measured
on a real call. benchmarks/bench_memory.py prints the same figures for the
benchmark shapes.
"""
from __future__ import annotations

import numpy as np
import pytest

import pylstm
from pylstm import _core, kernels

# T, B, I, H: the classic small-H shapes (batch-in-lanes path) and a medium one (row path).
WITHIN_10_PERCENT = [(5, 100, 2, 5), (3, 32, 1, 15), (7, 100, 1, 40), (50, 64, 64, 128)]


def _cache_and_workspaces(T: int, B: int, I: int, H: int, dtype) -> tuple[int, int, int]:
    rng = np.random.default_rng(0)
    w = [rng.uniform(-0.3, 0.3, s).astype(dtype) for s in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,))]
    x = rng.standard_normal((B, T, I)).astype(dtype)
    cache = pylstm.lstm_forward(x, *w, num_threads=1)[3]
    f32 = dtype == np.float32
    forward = _core.workspace_bytes(kernels._isa, f32, True, B, T, I, H, 1, 1, False)
    backward = _core.workspace_bytes(kernels._isa, f32, False, B, T, I, H, 1, 1, False)
    return cache.nbytes, forward, backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", WITHIN_10_PERCENT, ids=lambda s: "T{}B{}I{}H{}".format(*s))
def test_workspace_within_a_tenth_of_the_cache(shape, dtype):
    cache, forward, backward = _cache_and_workspaces(*shape, dtype)
    assert max(forward, backward) <= 0.10 * cache, (cache, forward, backward)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_large_hidden_size_holds_no_copy_of_w_hh(isa, dtype):
    # H = 1024: a packed W_hh (16 MiB in float32) would exceed this cache. The training forward
    # reads W_hh in place (8 batch rows: at most two panels of the micro-kernel on every path)
    # and lends y's room to the input projection; the backward packs W_hh into dW_hh's room and
    # lends the cell states' to the products after its loop.
    T, B, I, H = 40, 8, 512, 1024
    cache = B * T * 5 * H * np.dtype(dtype).itemsize  # gates (4H) and cell states (H) per step and row
    f32 = dtype == np.float32
    forward = _core.workspace_bytes(isa, f32, True, B, T, I, H, 1, 1, False)
    backward = _core.workspace_bytes(isa, f32, False, B, T, I, H, 1, 1, False)
    assert max(forward, backward) <= 0.10 * cache, (cache, forward, backward)
    assert _core.workspace_bytes(isa, f32, True, B, T, I, H, 1, 0, False) > 4 * H * H * np.dtype(dtype).itemsize


def test_inference_keeps_no_gate_history_on_the_lanes_path():
    # need_cache=False: the lanes path allocates only per-block buffers, not (4H, T, B) gates.
    T, B, I, H = 200, 64, 3, 16
    inference = _core.workspace_bytes(kernels._isa, True, True, B, T, I, H, 1, 0, False)
    x_in_lanes = I * T * 64 * 4
    assert inference - x_in_lanes <= 4 * (3 * H * 64 + 4 * H)
