"""Save and load a whole training run in one file: ``save_model`` / ``load_model``.

A checkpoint holds everything needed to predict bit-identically and to resume
training exactly where it stopped:

- the architecture and compile settings (``model.get_config()``: layers, input
  shape, dtype, loss, metrics, optimizer and learning-rate schedule config,
  vocabulary, the stateful batch size),
- the weights, the optimizer's state (iteration count, moments, current lr),
  the training RNG state, the step count, the carried states of stateful
  layers, and the History.

The file is an uncompressed .npz (``np.load(path, allow_pickle=False)`` opens it;
the config is the member ``pylstm.json``) with two sha256 checksums, written
atomically; see ``pylstm._checkpoint_file``.  Anything wrong with a file -- not
ours, truncated, a flipped byte, a format version this pylstm does not read -- is
a :class:`CheckpointError` (a ``ValueError``) with a message that says which.

Format versions
---------------
``config["format"] == "pylstm.checkpoint"`` and ``config["format_version"]`` is
an int.  This pylstm writes version ``FORMAT_VERSION`` and reads every version in
``[MIN_FORMAT_VERSION, FORMAT_VERSION]`` (older ones are upgraded in memory by
``_UPGRADES``); any other version is refused by name.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _codec
from ._checkpoint_file import CheckpointError, pack, read_checkpoint, unpack, write_checkpoint

__all__ = ["save_model", "load_model", "CheckpointError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "pylstm.checkpoint"
FORMAT_VERSION = 1
MIN_FORMAT_VERSION = 1
# version v -> function(config, arrays) -> (config, arrays) of version v + 1.  Add one
# entry each time FORMAT_VERSION grows, so that old checkpoints keep loading.
_UPGRADES: dict[int, Any] = {}

_MODEL_METHODS = ("get_config", "from_config", "get_weights", "set_weights", "get_states", "set_states",
                  "_rng_state", "_set_rng_state")


def _check_model(model: Any) -> None:
    missing = [m for m in _MODEL_METHODS if not hasattr(model, m)]
    if missing:
        raise TypeError(f"save_model needs a pylstm Sequential, got {type(model).__name__} "
                        f"(no {', '.join(missing)})")


# --------------------------------------------------------------------------- #
# model <-> (config, arrays)
# --------------------------------------------------------------------------- #
def _to_checkpoint(model: Any) -> tuple[dict, dict[str, np.ndarray]]:
    """The checkpoint config and arrays of ``model``."""
    _check_model(model)
    from . import __version__

    arrays: dict[str, np.ndarray] = {}
    optimizer = getattr(model, "optimizer", None)
    history = getattr(model, "history", None)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pylstm_version": str(__version__),
        "model": _codec.encode(model.get_config(), arrays, "config", "model.get_config()"),
        "built": bool(getattr(model, "built", True)),
        "weights": _codec.encode(list(model.get_weights()), arrays, "weights", "model.get_weights()")
        if getattr(model, "built", True) else None,
        "optimizer_state": None if optimizer is None
        else _codec.encode(optimizer.get_state(), arrays, "optimizer", "model.optimizer.get_state()"),
        "step": int(getattr(model, "step", 0)),
        "rng": _codec.encode(model._rng_state(), arrays, "rng", "model._rng_state()"),
        "states": _codec.encode(model.get_states(), arrays, "states", "model.get_states()"),
        "history": None if history is None
        else _codec.encode(history.to_dict(), arrays, "history", "model.history.to_dict()"),
    }
    return config, arrays


def _check_version(config: dict, where: str) -> dict:
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{where} is a {config.get('format')!r} file, not a {FORMAT!r} file")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{where} has no valid format_version (got {version!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has checkpoint format version {version}, written by a newer pylstm "
            f"({config.get('pylstm_version', '?')}); this pylstm reads versions {MIN_FORMAT_VERSION} to "
            f"{FORMAT_VERSION}: upgrade pylstm to load it")
    if version < MIN_FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has checkpoint format version {version}, older than the oldest this pylstm reads "
            f"({MIN_FORMAT_VERSION}); load and re-save it with the pylstm that wrote it "
            f"({config.get('pylstm_version', '?')})")
    return config


def _upgrade(config: dict, arrays: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    while config["format_version"] < FORMAT_VERSION:
        config, arrays = _UPGRADES[config["format_version"]](config, arrays)
    return config, arrays


def _from_checkpoint(config: dict, arrays: dict[str, np.ndarray], custom_objects: dict | None,
                     where: str, compile: bool) -> Any:
    """The model a checked, current-version config and its arrays describe."""
    from .model import Sequential  # late: io must import without the trainer (and vice versa)
    from .history import History

    used: set[str] = set()

    def dec(key: str) -> Any:
        try:
            return _codec.decode(config.get(key), arrays, used)
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{where} has an inconsistent config at {key!r}: {exc}") from exc

    model_config = dec("model")
    if not compile and isinstance(model_config, dict):
        model_config = dict(model_config, compile=None)
    model = Sequential.from_config(model_config, custom_objects=custom_objects)
    weights = dec("weights")
    if weights is not None:
        model.set_weights(weights)
    optimizer_state = dec("optimizer_state")
    if compile and optimizer_state is not None and model.optimizer is not None:
        model.optimizer.set_state(optimizer_state)
        if model.step != config["step"]:
            model.step = config["step"]
    model._set_rng_state(dec("rng"))
    model.set_states(dec("states"))
    history = dec("history")
    if history is not None:
        model.history = History.from_dict(history)
    unused = set(arrays) - used
    if unused and compile:
        raise CheckpointError(f"{where} holds arrays its config never refers to: {sorted(unused)[:5]}")
    return model


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #
def save_model(model: Any, path: str | os.PathLike) -> None:
    """Write ``model`` (architecture, weights, optimizer, training position) to ``path``, atomically.

    Parameters
    ----------
    model : pylstm.Sequential
        Built or not, compiled or not.
    path : str or os.PathLike
        The file to write (any name; ``.pylstm`` by convention).  An existing
        file is replaced only once the new one is complete on disk: a crash or
        a kill during the save leaves the previous file intact.

    Raises
    ------
    TypeError
        If something in the model cannot be saved (e.g. a custom object whose
        config holds a function); the message says where.

    Notes
    -----
    A learning-rate schedule or loss given as a plain callable is saved by
    name; pass it again as ``custom_objects`` to :func:`load_model`.
    """
    config, arrays = _to_checkpoint(model)
    write_checkpoint(path, config, arrays)


def load_model(path: str | os.PathLike, custom_objects: dict[str, Any] | None = None, *,
               compile: bool = True) -> Any:
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    custom_objects : dict, optional
        ``{name: object}`` for everything the model uses that pylstm does not
        define: custom layer, loss or optimizer classes, and learning-rate
        schedules given as plain callables (looked up by their ``__name__``).
    compile : bool, default True
        Restore the loss, metrics, optimizer and its state, so that ``fit``
        continues exactly where the saved run stopped.  ``False`` gives an
        uncompiled model with the saved weights (enough for ``predict``).

    Returns
    -------
    pylstm.Sequential
        Predicts bit-identically to the saved model (same SIMD path), and its
        next training step equals the saved model's next step.

    Raises
    ------
    CheckpointError
        The file is not a pylstm checkpoint, is truncated or altered (checksum
        mismatch), or has a format version this pylstm does not read.
    FileNotFoundError
        No file at ``path``.
    """
    where = repr(os.fspath(path))
    config, arrays = read_checkpoint(path)
    return _load(config, arrays, custom_objects, where, compile)


def _load(config: dict, arrays: dict[str, np.ndarray], custom_objects: dict | None, where: str,
          compile: bool) -> Any:
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict or None, got {type(custom_objects).__name__}")
    config, arrays = _upgrade(_check_version(config, where), arrays)
    try:
        return _from_checkpoint(config, arrays, custom_objects, where, compile)
    except (KeyError, IndexError, AttributeError) as exc:
        # The checksums passed, so the file is as written: a config this code cannot interpret.
        raise CheckpointError(f"{where} has a config this pylstm cannot interpret: "
                              f"{type(exc).__name__}: {exc}") from exc


def _save_bytes(model: Any) -> bytes:
    """The bytes ``save_model`` would write (for tests and in-memory copies)."""
    return pack(*_to_checkpoint(model))


def _load_bytes(data: bytes, custom_objects: dict | None = None, compile: bool = True) -> Any:
    """``load_model`` from bytes in memory."""
    config, arrays = unpack(data, where="checkpoint bytes")
    return _load(config, arrays, custom_objects, "checkpoint bytes", compile)
