"""pylstm: fast, trustworthy LSTM training on the CPU.

The C++ kernel (``lstm_forward``, ``lstm_backward``, ``lstm_step``) runs one LSTM
layer over a whole sequence; ``pylstm.reference`` is the same maths in NumPy.
Arrays are batch-first (B, T, F); weights use PyTorch's layout and gate order
(i, f, g, o).
"""
from __future__ import annotations

from ._config import get_num_threads, set_num_threads
from ._openmp_env import brief_spinning

with brief_spinning():  # the OpenMP runtime starts when the extension loads
    try:
        from . import _core  # noqa: F401
    except ImportError as e:  # most often: the source checkout shadows the installed package
        raise ImportError(
            f"pylstm's compiled extension (pylstm._core) is not in {__path__[0]} ({e}). If that is the source "
            "checkout, it came first on sys.path (`python -m pytest` run from the checkout puts it there): run "
            "`pytest` instead, or run from another folder, or build it in place with "
            "`pip install -e . --no-build-isolation`."
        ) from e
from .kernels import (
    LSTMGrads,
    info,
    lstm_backward,
    lstm_forward,
    lstm_forward_ids,
    lstm_step,
    lstm_step_ids,
    release_memory,
)
from .kernels import __version__
from . import reference
from .gradcheck import gradcheck

# --- trainer API (helper-trainer) ---
from . import callbacks, initializers, layers, losses, metrics, optim
from .history import History
from .model import Sequential
# --- end trainer API ---

# --- io API (helper-io) ---
from . import data, interop
from .data import TextCorpus
from .io import CheckpointError, load_model, save_model
# --- end io API ---
