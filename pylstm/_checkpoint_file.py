"""The checkpoint container: a JSON config and named arrays in one self-checking .npz file.

This module knows nothing of models (``pylstm.io`` maps a model to a config
and arrays and back); it only guarantees that what is read is exactly what was
written, or an error.

Layout: a plain, uncompressed zip that ``np.load`` opens (``allow_pickle=False``)::

    pylstm.json           the config, UTF-8 JSON; ``config["format"]`` names the
                          format and ``config["format_version"]`` its version
    <name>.npy            one member per array, in the manifest's order
    pylstm.sha256         sha256 over the config bytes and every array's
                          (name, dtype, shape, bytes): the content checksum
    zip comment           b"pylstm-sha256:" + hex sha256 of every byte before
                          the comment: the whole-file checksum

Two checksums because they catch different things: the whole-file one catches a
flip anywhere, including zip bookkeeping that no reader checks (timestamps,
attributes), and truncation; the content one is a check on what was decoded,
independent of the container.

Writing is atomic: the bytes go to a temporary file in the destination folder,
which is flushed and fsynced, then renamed over the destination, and the folder
is fsynced.  A process killed at any moment leaves either the old file or the new
one at ``path`` (plus, at worst, a stray ``.<name>.*.tmp`` file), never a mix.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from typing import Any

import numpy as np

__all__ = ["CheckpointError", "pack", "unpack", "atomic_write", "read_checkpoint", "write_checkpoint"]

CONFIG_MEMBER = "pylstm.json"
DIGEST_MEMBER = "pylstm.sha256"
_TRAILER_PREFIX = b"pylstm-sha256:"
_TRAILER_LEN = len(_TRAILER_PREFIX) + 64
_EOCD_LEN = 22  # zip end-of-central-directory record, without its comment
_EOCD_MAGIC = b"PK\x05\x06"
_LOCAL_MAGIC = b"PK\x03\x04"
# Fixed member timestamp: the same model always gives the same bytes.
_DATE_TIME = (1980, 1, 1, 0, 0, 0)
_MAX_CONFIG_BYTES = 256 * 1024 * 1024


class CheckpointError(ValueError):
    """A file that is not a valid pylstm checkpoint: foreign, truncated, altered, or of an unsupported version."""


# --------------------------------------------------------------------------- #
# checksums
# --------------------------------------------------------------------------- #
def content_digest(config_bytes: bytes, arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the config bytes and each array's name, dtype, shape and data, in order."""
    h = hashlib.sha256()
    h.update(b"config\0" + len(config_bytes).to_bytes(8, "little") + config_bytes)
    for name, a in arrays.items():
        head = json.dumps([name, a.dtype.str, list(a.shape)]).encode()
        h.update(b"array\0" + len(head).to_bytes(8, "little") + head)
        data = np.ascontiguousarray(a).view(np.uint8).reshape(-1) if a.size else b""
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


# --------------------------------------------------------------------------- #
# pack / unpack (bytes in memory)
# --------------------------------------------------------------------------- #
def _check_array(name: str, a: Any) -> np.ndarray:
    if not isinstance(name, str) or not name or name in (CONFIG_MEMBER, DIGEST_MEMBER) or "\\" in name \
            or name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"bad array name {name!r}")
    if not isinstance(a, np.ndarray):
        raise TypeError(f"array {name!r} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype.hasobject or a.dtype.fields is not None or a.dtype.kind not in "biufcSUV":
        raise TypeError(f"array {name!r} has dtype {a.dtype}, which cannot be stored without pickle")
    return a


def pack(config: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """The checkpoint bytes for ``config`` (JSON-able, standard JSON: no NaN) and ``arrays``."""
    arrays = {name: _check_array(name, a) for name, a in arrays.items()}
    config_bytes = json.dumps(config, allow_nan=False, ensure_ascii=False).encode("utf-8")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(zipfile.ZipInfo(CONFIG_MEMBER, _DATE_TIME), config_bytes)
        for name, a in arrays.items():
            # Streamed into the zip (no per-array copy); zip64 sizes for members that may pass 2 GiB.
            with zf.open(zipfile.ZipInfo(name + ".npy", _DATE_TIME), "w", force_zip64=a.nbytes > 2**30) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(a) if a.ndim else a, allow_pickle=False)
        digest = content_digest(config_bytes, arrays)
        zf.writestr(zipfile.ZipInfo(DIGEST_MEMBER, _DATE_TIME), digest.encode("ascii"))
        zf.comment = b"\0" * _TRAILER_LEN  # placeholder of the final length, filled in below
    view = buf.getbuffer()
    view[-_TRAILER_LEN:] = _TRAILER_PREFIX + hashlib.sha256(view[:-_TRAILER_LEN]).hexdigest().encode("ascii")
    del view  # release the export so that getvalue may copy out
    return buf.getvalue()


def _verify_file_bytes(data: bytes, where: str) -> None:
    # Foreign vs damaged: our files start with a zip local header naming pylstm.json.
    ours = data[:4] == _LOCAL_MAGIC and data[30 : 30 + len(CONFIG_MEMBER)] == CONFIG_MEMBER.encode()
    n = len(data)
    tail_ok = (
        n >= _EOCD_LEN + _TRAILER_LEN
        and data[n - _TRAILER_LEN - _EOCD_LEN : n - _TRAILER_LEN - _EOCD_LEN + 4] == _EOCD_MAGIC
        and data[n - _TRAILER_LEN - 2 : n - _TRAILER_LEN] == _TRAILER_LEN.to_bytes(2, "little")
        and data[n - _TRAILER_LEN : n - 64] == _TRAILER_PREFIX
    )
    if not tail_ok:
        if ours:
            raise CheckpointError(f"{where} is a damaged or truncated pylstm checkpoint ({n} bytes): "
                                  "its closing checksum record is missing")
        raise CheckpointError(f"{where} is not a pylstm checkpoint (no pylstm header or checksum record)")
    stored = bytes(data[n - 64 :])
    actual = hashlib.sha256(memoryview(data)[: n - _TRAILER_LEN]).hexdigest().encode("ascii")
    if stored != actual:
        raise CheckpointError(f"{where} is a corrupted pylstm checkpoint: file checksum mismatch "
                              "(the file was altered or damaged after it was written)")
    if not ours:  # intact trailer on a file that does not start like ours: not written by us
        raise CheckpointError(f"{where} is not a pylstm checkpoint (unexpected first member)")


def unpack(data: bytes, where: str = "checkpoint") -> tuple[dict, dict[str, np.ndarray]]:
    """``(config, arrays)`` from checkpoint bytes, or CheckpointError; arrays in manifest order.

    The config is only checked to be a JSON object holding ``format``; the
    caller checks the format's name and version.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    _verify_file_bytes(data, where)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = list(npz.files)
            if not names or names[0] != CONFIG_MEMBER or names[-1] != DIGEST_MEMBER:
                raise CheckpointError(f"{where} has an unexpected layout: members {names[:5]}...")
            config_bytes = npz[CONFIG_MEMBER]
            stored_digest = npz[DIGEST_MEMBER]
            if not isinstance(config_bytes, bytes) or not isinstance(stored_digest, bytes):
                raise CheckpointError(f"{where} has an unexpected layout: config or digest is an array")
            arrays = {name: npz[name] for name in names[1:-1]}
    except CheckpointError:
        raise
    except Exception as exc:  # the file checksum matched, so only a forged file gets here
        raise CheckpointError(f"{where} could not be read as a pylstm checkpoint: {exc}") from exc
    if any(not isinstance(a, np.ndarray) for a in arrays.values()):
        raise CheckpointError(f"{where} holds a member that is not a .npy array")
    if content_digest(config_bytes, arrays).encode("ascii") != stored_digest:
        raise CheckpointError(f"{where} is a corrupted pylstm checkpoint: content checksum mismatch")
    if len(config_bytes) > _MAX_CONFIG_BYTES:
        raise CheckpointError(f"{where} has an implausibly large config ({len(config_bytes)} bytes)")
    try:
        config = json.loads(config_bytes.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise CheckpointError(f"{where} has an unreadable config: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("format"), str):
        raise CheckpointError(f"{where} has a config without a format name")
    return config, arrays


def _refuse_constant(name: str) -> Any:
    # pack writes standard JSON (allow_nan=False); NaN/Infinity in a config means it was not ours.
    raise ValueError(f"non-standard JSON constant {name}")


# --------------------------------------------------------------------------- #
# files
# --------------------------------------------------------------------------- #
def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable.  Not possible on every OS (Windows cannot open a folder).
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` holds either the old or the new bytes, never a mix.

    A temporary file in the same folder (same file system, so the rename is
    atomic) is written, flushed and fsynced, renamed over ``path`` with
    ``os.replace``, and the folder fsynced.  The temporary file is created with
    mode 0o666 minus the umask, like a plain ``open(path, "wb")``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save a checkpoint to {path!r}: it is a directory")
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def write_checkpoint(path: str | os.PathLike, config: dict, arrays: dict[str, np.ndarray]) -> None:
    """``atomic_write(path, pack(config, arrays))``."""
    atomic_write(path, pack(config, arrays))


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """``unpack`` of the file at ``path`` (read once: what is checked is what is parsed)."""
    path = os.fspath(path)
    # Opened without blocking (a FIFO would wait for a writer), then refused
    # unless it is a regular file: a device such as /dev/zero never ends.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise CheckpointError(f"{path!r} is not a regular file, so not a pylstm checkpoint")
        data = f.read()
    return unpack(data, where=repr(path))
