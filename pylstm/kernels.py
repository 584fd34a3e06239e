"""The C++ LSTM kernels, with the argument handling a user needs.

``lstm_forward`` runs one LSTM layer over a whole batch-first sequence,
``lstm_backward`` its gradients, ``lstm_step`` one timestep (for generation).
Same maths, signatures and layout as :mod:`pylstm.reference` (see there and
``csrc/lstm.h``): gate order i, f, g, o; ``W_ih`` (4H, I), ``W_hh`` (4H, H),
``b_ih``, ``b_hh`` (4H,).

The weights' dtype (float32 or float64) decides the precision; ``x``, ``h0``,
``c0`` are cast to it. Arrays are passed to C++ without copying when they are
already C-contiguous and of that dtype.
"""
from __future__ import annotations

import contextlib
import functools
import numbers
import os
import warnings
from typing import Any, Iterator

import numpy as np

from . import _core, _openmp_env
from ._config import MAX_THREADS, get_num_threads, resolve_num_threads
from .reference import LSTMGrads

__version__: str = _core.__version__
__all__ = [
    "LSTMCache",
    "LSTMGrads",
    "info",
    "lstm_backward",
    "lstm_forward",
    "lstm_forward_ids",
    "lstm_step",
    "lstm_step_ids",
    "release_memory",
]

# ------------------------------------------------------------------ ISA choice

_SUPPORTED: list[str] = list(_core.supported_isas())


def _isa_from_environment() -> str:
    wanted = os.environ.get("PYLSTM_ISA", "").strip().lower()
    best = _core.best_isa()
    if not wanted:
        return best
    if wanted in _SUPPORTED:
        return wanted
    why = "this CPU lacks it" if wanted in _core.compiled_isas() else "unknown name"
    warnings.warn(
        f"PYLSTM_ISA={wanted!r} cannot be used ({why}; supported: {', '.join(_SUPPORTED)}); using {best!r}",
        RuntimeWarning,
        stacklevel=2,
    )
    return best


_isa: str = _isa_from_environment()


def _available_isas() -> list[str]:
    """The kernel paths this CPU can run, worst first (for tests)."""
    return list(_SUPPORTED)


@contextlib.contextmanager
def _use_isa(name: str) -> Iterator[None]:
    """Run the kernels on one compiled path inside the block (for tests and benchmarks)."""
    global _isa
    if name not in _SUPPORTED:
        raise ValueError(f"ISA {name!r} is not available here; available: {_SUPPORTED}")
    previous, _isa = _isa, name
    try:
        yield
    finally:
        _isa = previous


def info() -> dict[str, Any]:
    """Version, compiled SIMD paths, the one in use, OpenMP on/off and how its threads wait, default threads."""
    return {
        "version": __version__,
        "compiled_isas": list(_core.compiled_isas()),
        "supported_isas": list(_SUPPORTED),
        "isa": _isa,
        "openmp": bool(_core.openmp),
        "openmp_wait": _openmp_env.wait_policy if _core.openmp else "no threads",
        "num_threads": get_num_threads(),
    }


def release_memory() -> int:
    """Free the memory pylstm keeps for reuse between calls; returns the bytes freed.

    Large output arrays (y, the cache, dx, weight gradients of 1 MiB and more)
    take their memory from a pool, and their memory goes back there when the
    array (and every view of it) is gone, so that the next call of that size
    finds it already mapped instead of having the operating system fault in
    and clear every page again (about 5% of a training step at T=100, B=64,
    H=512). The kernels' large workspaces (2 MiB and more) are recycled the
    same way. The pool holds at most 16 blocks and 1 GiB; this frees it, e.g.
    after training, before other work needs the memory.
    """
    return int(_core.release_memory())


# ----------------------------------------------------------- argument checks

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _weights(W_ih: Any, W_hh: Any, b_ih: Any, b_hh: Any, input_name: str = "I") -> tuple[np.ndarray, ...]:
    # Fast path (every training step and generation step takes it): four
    # C-contiguous arrays of one float dtype with consistent shapes.
    if (type(W_ih) is np.ndarray and type(W_hh) is np.ndarray and type(b_ih) is np.ndarray
            and type(b_hh) is np.ndarray):
        dt = W_hh.dtype
        if (dt in _FLOATS and W_ih.dtype == dt and b_ih.dtype == dt and b_hh.dtype == dt and W_hh.ndim == 2
                and W_ih.ndim == 2 and W_hh.shape[1] > 0 and W_ih.shape[1] > 0):
            G = W_hh.shape[0]
            if (G == 4 * W_hh.shape[1] and W_ih.shape[0] == G and b_ih.shape == (G,) and b_hh.shape == (G,)
                    and W_ih.flags.c_contiguous and W_hh.flags.c_contiguous and b_ih.flags.c_contiguous
                    and b_hh.flags.c_contiguous):
                return W_ih, W_hh, b_ih, b_hh
    return _weights_checked(W_ih, W_hh, b_ih, b_hh, input_name)


def _weights_checked(W_ih: Any, W_hh: Any, b_ih: Any, b_hh: Any, input_name: str) -> tuple[np.ndarray, ...]:
    named = {"W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih, "b_hh": b_hh}
    arrays = {}
    for name, w in named.items():
        if not isinstance(w, np.ndarray):
            w = np.asarray(w)
        if w.dtype not in _FLOATS:
            raise TypeError(f"{name} must be a float32 or float64 array, got dtype {w.dtype}")
        arrays[name] = w
    if len({w.dtype for w in arrays.values()}) != 1:
        listing = ", ".join(f"{n} {w.dtype}" for n, w in arrays.items())
        raise TypeError(f"W_ih, W_hh, b_ih, b_hh must all have the same dtype (float32 or float64); got {listing}")
    W_ih, W_hh, b_ih, b_hh = arrays.values()
    if W_hh.ndim != 2 or W_hh.shape[1] == 0 or W_hh.shape[0] != 4 * W_hh.shape[1]:
        raise ValueError(f"W_hh must have shape (4H, H) with H >= 1, got {W_hh.shape}")
    H = W_hh.shape[1]
    if W_ih.ndim != 2 or W_ih.shape[0] != 4 * H or W_ih.shape[1] == 0:
        raise ValueError(f"W_ih must have shape (4H, {input_name}) = ({4 * H}, {input_name}) with {input_name} >= 1, "
                         f"got {W_ih.shape}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b.shape != (4 * H,):
            raise ValueError(f"{name} must have shape (4H,) = ({4 * H},), got {b.shape}")
    return W_ih, W_hh, b_ih, b_hh  # made contiguous after the size check (_run_forward)


def _real(name: str, a: Any, dtype: np.dtype) -> np.ndarray:
    """``a`` as a C-contiguous array of ``dtype`` (no copy when it already is one)."""
    a = a if isinstance(a, np.ndarray) else np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real (bool, int or float) array, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _sequence(x: Any, I: int) -> np.ndarray:
    """``x`` checked (not yet cast: a huge broadcast view must be refused before it is copied)."""
    x = x if isinstance(x, np.ndarray) else np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x must be a real (bool, int or float) array, got dtype {x.dtype}")
    if x.ndim != 3 or x.shape[2] != I:
        raise ValueError(f"x must have shape (B, T, I) = (B, T, {I}), got {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must have B >= 1 and T >= 1, got shape {x.shape}")
    return x


def _token_ids(name: str, ids: Any, ndim: int, V: int) -> np.ndarray:
    ids = ids if isinstance(ids, np.ndarray) else np.asarray(ids)
    shape_text = "(B, T)" if ndim == 2 else "(B,)"
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of token ids {shape_text}, got dtype {ids.dtype}")
    if ids.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_text}, got {ids.shape}")
    if ids.size == 0:
        raise ValueError(f"{name} must not be empty (B >= 1" + (", T >= 1" if ndim == 2 else "") +
                         f"), got shape {ids.shape}")
    return ids


def _check_id_range(name: str, ids: np.ndarray, V: int) -> None:
    """Every id in [0, V): after the size check, since it reads every id."""
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= V:
        raise ValueError(f"{name} must lie in [0, V) = [0, {V}) (V = W_ih.shape[1]), got values in [{lo}, {hi}]")


def _state(name: str, s: Any, B: int, H: int, dtype: np.dtype) -> np.ndarray | None:
    if s is None:
        return None
    s = s if isinstance(s, np.ndarray) else np.asarray(s)
    if s.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real (bool, int or float) array, got dtype {s.dtype}")
    if s.shape != (B, H):  # before any cast: a wrong-shaped huge view is never copied
        raise ValueError(f"{name} must have shape (B, H) = ({B}, {H}), got {s.shape}")
    return s  # cast by _run_forward once the request's size is known to fit


def _incoming_grad(name: str, g: Any, shape: tuple[int, ...], shape_text: str, dtype: np.dtype) -> np.ndarray | None:
    if g is None:
        return None
    if not isinstance(g, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of dtype {dtype} or None, got {type(g).__name__}")
    if g.dtype != dtype:
        raise TypeError(f"{name} must have the cache's dtype {dtype}, got {g.dtype}")
    if g.shape != shape:
        raise ValueError(f"{name} must have shape {shape_text} = {shape}, got {g.shape}")
    return g if g.flags.c_contiguous else np.ascontiguousarray(g)


def _clip(clip: Any) -> float:
    if clip is None:
        return 0.0
    if isinstance(clip, bool) or not isinstance(clip, numbers.Real):
        raise TypeError(f"clip must be a positive float or None, got {clip!r}")
    if not clip > 0:  # also refuses NaN
        raise ValueError(f"clip must be > 0, got {clip}")
    return float(clip)


def _contiguous(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a`` as a C-contiguous array of ``dtype``; itself when it already is one (the common case,
    checked first: np.ascontiguousarray costs about as much as a small kernel call)."""
    if a.dtype == dtype and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, dtype=dtype)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not POSIX
        return None


_PHYSICAL_MEMORY = _physical_memory()
# Below this many bytes a request is never refused, so small calls (generation
# steps) skip the workspace query.
_ALWAYS_FITS = 1 << 28


_INT64_LIMIT = 2**62  # element counts at or above this overflow the kernel's int64 byte offsets


def _check_request(B: int, T: int, I: int, H: int, itemsize: int, forward: bool, need_cache: bool,
                   nthreads: int) -> None:
    """Refuse, before anything is allocated, a call whose buffers cannot exist.

    The sizes come from the user's arrays' shapes and may be absurd (a
    broadcast view of a huge shape costs nothing to make): an index product
    that overflows int64 is a ValueError, a total above physical memory a
    MemoryError, instead of a crash or the OOM killer.
    """
    elems = B * T * 4 * H + B * T * H + 4 * H * (I + H)  # gates, y, weights
    if need_cache or not forward:
        elems += B * T * H + B * T * I  # cell states, x or dx
    if max(elems, B * T * max(I, 4 * H)) >= _INT64_LIMIT:
        raise ValueError(f"sizes B={B}, T={T}, I={I}, H={H} are too large: their products overflow int64")
    if elems * itemsize < _ALWAYS_FITS:
        return
    work = _core.workspace_bytes(_isa, itemsize == 4, forward, B, T, I, H, nthreads)
    total = elems * itemsize + work
    physical = _PHYSICAL_MEMORY
    if physical is not None and total > physical:
        raise MemoryError(f"this call needs about {total / 2**30:.1f} GiB (B={B}, T={T}, I={I}, H={H}), "
                          f"more than this machine's {physical / 2**30:.1f} GiB of memory")


# ------------------------------------------------------------------- caches


# LSTMGrads from a 7-tuple without the namedtuple's Python-level __new__ (a
# few tenths of a microsecond, on every training step).
_as_grads = functools.partial(tuple.__new__, LSTMGrads)


class LSTMCache:
    """What ``lstm_backward`` needs from a forward pass (opaque to users).

    It holds references to the weights, the input and ``y``: they must not
    change between forward and backward (``y`` is returned read-only for that
    reason). ``lstm_backward`` reuses the cache's gate buffer for the gate
    gradients, so a cache serves exactly one backward pass.
    """

    __slots__ = ("gates", "cs", "y", "x", "ids", "W_ih", "W_hh", "h0", "c0", "_ticket")

    def __init__(self, gates, cs, y, x, ids, W_ih, W_hh, h0, c0):
        self.gates, self.cs, self.y, self.x, self.ids = gates, cs, y, x, ids
        self.W_ih, self.W_hh, self.h0, self.c0 = W_ih, W_hh, h0, c0
        # One ticket, taken by the backward that uses the cache: list.pop is
        # atomic, so two threads can never both take it (and it costs a
        # quarter of a lock's with-block, on every training step).
        self._ticket = [True]

    @property
    def used(self) -> bool:
        """Whether a backward pass has used (is using) this cache."""
        return not self._ticket

    def _claim(self) -> None:
        try:
            self._ticket.pop()
        except IndexError:
            raise RuntimeError("this cache was already used by lstm_backward (a cache serves one backward pass); "
                               "run lstm_forward again") from None

    def _unclaim(self) -> None:
        """Give the ticket back: only when the kernel never ran."""
        self._ticket.append(True)

    @property
    def dtype(self) -> np.dtype:
        return self.W_hh.dtype

    @property
    def nbytes(self) -> int:
        """Bytes the cache owns beyond the forward's outputs (gates and cell states)."""
        return self.gates.nbytes + self.cs.nbytes

    def __repr__(self) -> str:
        B, T, H = self.y.shape
        state = "used" if self.used else "ready"
        return f"LSTMCache(B={B}, T={T}, H={H}, {self.dtype}, {state})"


# ---------------------------------------------------------------- kernels


def _run_forward(x, ids, W_ih, W_hh, b_ih, b_hh, h0, c0, B, T, need_cache, num_threads, state_names=("h0", "c0"),
                 ids_name="ids"):
    nthreads = resolve_num_threads(num_threads)
    if not isinstance(need_cache, (bool, np.bool_)):
        raise TypeError(f"need_cache must be a bool, got {need_cache!r}")
    H = W_hh.shape[1]
    h0 = _state(state_names[0], h0, B, H, W_hh.dtype)
    c0 = _state(state_names[1], c0, B, H, W_hh.dtype)
    _check_request(B, T, W_ih.shape[1], H, W_hh.dtype.itemsize, True, bool(need_cache), nthreads)
    dt = W_hh.dtype
    W_ih, W_hh, b_ih, b_hh = _contiguous(W_ih, dt), _contiguous(W_hh, dt), _contiguous(b_ih, dt), _contiguous(b_hh, dt)
    h0 = None if h0 is None else _contiguous(h0, dt)
    c0 = None if c0 is None else _contiguous(c0, dt)
    if x is not None:
        x = _contiguous(x, dt)
    if ids is not None:
        _check_id_range(ids_name, ids, W_ih.shape[1])
        ids = np.ascontiguousarray(ids, dtype=np.int64)
    y, h_T, c_T, gates, cs = _core.forward(_isa, x, ids, W_ih, W_hh, b_ih, b_hh, h0, c0, B, T, bool(need_cache),
                                           nthreads)
    if not need_cache:
        return y, h_T, c_T, None
    return y, h_T, c_T, LSTMCache(gates, cs, y, x, ids, W_ih, W_hh, h0, c0)  # y: read-only (the binding)


def lstm_forward(x, W_ih, W_hh, b_ih, b_hh, h0=None, c0=None, need_cache=True, num_threads=None):
    """Run one LSTM layer over a whole sequence (C++ kernel).

    Parameters
    ----------
    x : array_like, (B, T, I)
        Batch-first input; any real dtype or bool, cast to the weights' dtype.
    W_ih, W_hh, b_ih, b_hh : ndarray
        (4H, I), (4H, H), (4H,), (4H,), all float32 or all float64 (PyTorch's
        layout, gate order i, f, g, o).
    h0, c0 : array_like, (B, H), optional
        Initial state; None means zeros.
    need_cache : bool
        Keep what ``lstm_backward`` needs. False is the inference path: less
        memory, faster, and no backward.
    num_threads : int, optional
        Threads for this call; None uses ``pylstm.get_num_threads()``.

    Returns
    -------
    y : ndarray (B, T, H)
        h at every step; read-only when a cache is returned (the cache shares it).
    h_T, c_T : ndarray (B, H)
        The final state.
    cache : LSTMCache or None
        For ``lstm_backward``. It references the weights, ``x`` and ``y``: they
        must not change before the backward pass. One backward per cache.
    """
    if type(x) is np.ndarray and type(W_hh) is np.ndarray and x.dtype == W_hh.dtype and x.ndim == 3:
        done = _forward_as_given(x, W_ih, W_hh, b_ih, b_hh, h0, c0, need_cache, num_threads)
        if done is not None:
            return done
    W_ih, W_hh, b_ih, b_hh = _weights(W_ih, W_hh, b_ih, b_hh)
    x = _sequence(x, W_ih.shape[1])
    return _run_forward(x, None, W_ih, W_hh, b_ih, b_hh, h0, c0, x.shape[0], x.shape[1], need_cache, num_threads)


def _forward_as_given(x, W_ih, W_hh, b_ih, b_hh, h0, c0, need_cache, num_threads):
    """The call straight to the binding when every array already is what the kernel takes.

    At small sizes the Python checks cost as much as the kernel; the binding
    checks every dtype, shape and layout itself (the last line of defence) and
    refuses the rest, which then goes the checked way (None returned) for a
    cast, a copy or a message that names the problem.
    """
    if type(need_cache) is not bool or W_hh.ndim != 2:
        return None
    if num_threads is None:
        nthreads = get_num_threads()
    elif type(num_threads) is int and 1 <= num_threads <= MAX_THREADS:
        nthreads = num_threads
    else:
        return None
    B, T, I = x.shape
    H = W_hh.shape[1]
    if (B * T * (I + 6 * H) + 4 * H * (I + H)) * 8 >= _ALWAYS_FITS:  # bounds every buffer of the call
        _check_request(B, T, I, H, W_hh.dtype.itemsize, True, need_cache, nthreads)
    try:
        y, h_T, c_T, gates, cs = _core.forward(_isa, x, None, W_ih, W_hh, b_ih, b_hh, h0, c0, B, T, need_cache,
                                               nthreads)
    except (TypeError, ValueError):
        return None
    if not need_cache:
        return y, h_T, c_T, None
    return y, h_T, c_T, LSTMCache(gates, cs, y, x, None, W_ih, W_hh, h0, c0)  # y: read-only (the binding)


def lstm_forward_ids(ids, W_ih, W_hh, b_ih, b_hh, h0=None, c0=None, need_cache=True, num_threads=None):
    """``lstm_forward`` on integer token ids (B, T) in [0, V), with ``W_ih`` (4H, V).

    Equals ``lstm_forward(one_hot(ids, V), ...)`` without building the one-hot:
    the input projection gathers columns of ``W_ih``. ``lstm_backward`` on its
    cache returns ``dx=None`` and ``dW_ih`` of shape (4H, V).
    """
    W_ih, W_hh, b_ih, b_hh = _weights(W_ih, W_hh, b_ih, b_hh, input_name="V")
    ids = _token_ids("ids", ids, 2, W_ih.shape[1])
    return _run_forward(None, ids, W_ih, W_hh, b_ih, b_hh, h0, c0, ids.shape[0], ids.shape[1], need_cache,
                        num_threads)


def lstm_backward(cache, dy, dh_T=None, dc_T=None, clip=None, num_threads=None) -> LSTMGrads:
    """Gradients of one LSTM layer (C++ kernel), given the forward's cache.

    Parameters
    ----------
    cache : LSTMCache
        From ``lstm_forward(..., need_cache=True)``; used up by this call.
    dy : ndarray (B, T, H) or None
        Gradient with respect to ``y`` (None = zero); the cache's dtype exactly.
    dh_T, dc_T : ndarray (B, H) or None
        Gradients with respect to the final state (None = zero).
    clip : float, optional
        Clip, elementwise and at every step, the gradient with respect to the
        gate pre-activations to [-clip, clip] (Graves' / Lasagne's
        ``grad_clipping``); the clipped value is what flows on.
    num_threads : int, optional
        Threads for this call; None uses ``pylstm.get_num_threads()``.

    Returns
    -------
    LSTMGrads
        ``(dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh)``, fresh arrays; ``dx`` is
        None for a cache made from token ids.
    """
    if not isinstance(cache, LSTMCache):
        raise TypeError(
            f"cache must be the LSTMCache returned by pylstm.lstm_forward(..., need_cache=True), "
            f"got {type(cache).__name__}"
        )
    nthreads = resolve_num_threads(num_threads)
    clip_value = 0.0 if clip is None else _clip(clip)
    if type(dy) is np.ndarray and dh_T is None and dc_T is None:
        # The training step's call: the binding checks dy's dtype, shape and
        # layout before the kernel runs; what it refuses (nothing has run
        # then) goes the checked way, to be cast or named in the message.
        cache._claim()
        try:
            return _run_backward(cache, dy, None, None, clip_value, nthreads)
        except (TypeError, ValueError):
            cache._unclaim()
    B, T, H = cache.y.shape
    dt = cache.W_hh.dtype
    dy = _incoming_grad("dy", dy, (B, T, H), "(B, T, H)", dt)
    if dh_T is not None:
        dh_T = _incoming_grad("dh_T", dh_T, (B, H), "(B, H)", dt)
    if dc_T is not None:
        dc_T = _incoming_grad("dc_T", dc_T, (B, H), "(B, H)", dt)
    cache._claim()  # after the checks: a refused call leaves the cache usable
    return _run_backward(cache, dy, dh_T, dc_T, clip_value, nthreads)


def _run_backward(cache, dy, dh_T, dc_T, clip_value, nthreads) -> LSTMGrads:
    dx, dh0, dc0, dW_ih, dW_hh, db = _core.backward(
        _isa, cache.gates, cache.cs, cache.y, cache.x, cache.ids, cache.W_ih, cache.W_hh, cache.h0, cache.c0,
        dy, dh_T, dc_T, clip_value, nthreads,
    )
    return _as_grads((dx, dh0, dc0, dW_ih, dW_hh, db, db.copy()))


def lstm_step(x_t, W_ih, W_hh, b_ih, b_hh, h=None, c=None, num_threads=None):
    """One LSTM timestep: x_t (B, I), state h, c (B, H) or None -> new (h, c)."""
    if type(x_t) is np.ndarray and type(W_hh) is np.ndarray and x_t.dtype == W_hh.dtype and x_t.ndim == 2:
        done = _forward_as_given(x_t[:, None, :], W_ih, W_hh, b_ih, b_hh, h, c, False, num_threads)
        if done is not None:
            return done[1], done[2]
    W_ih, W_hh, b_ih, b_hh = _weights(W_ih, W_hh, b_ih, b_hh)
    x_t = x_t if isinstance(x_t, np.ndarray) else np.asarray(x_t)
    if x_t.dtype.kind not in "biuf":
        raise TypeError(f"x_t must be a real (bool, int or float) array, got dtype {x_t.dtype}")
    I = W_ih.shape[1]
    if x_t.ndim != 2 or x_t.shape[1] != I or x_t.shape[0] == 0:
        raise ValueError(f"x_t must have shape (B, I) = (B, {I}) with B >= 1, got {x_t.shape}")
    B = x_t.shape[0]
    _, h_T, c_T, _ = _run_forward(x_t.reshape(B, 1, I), None, W_ih, W_hh, b_ih, b_hh, h, c, B, 1, False,
                                  num_threads, state_names=("h", "c"))
    return h_T, c_T


def lstm_step_ids(ids_t, W_ih, W_hh, b_ih, b_hh, h=None, c=None, num_threads=None):
    """One LSTM timestep on token ids_t (B,) with ``W_ih`` (4H, V) -> new (h, c)."""
    W_ih, W_hh, b_ih, b_hh = _weights(W_ih, W_hh, b_ih, b_hh, input_name="V")
    ids_t = _token_ids("ids_t", ids_t, 1, W_ih.shape[1])
    B = ids_t.shape[0]
    _, h_T, c_T, _ = _run_forward(None, ids_t.reshape(B, 1), W_ih, W_hh, b_ih, b_hh, h, c, B, 1, False,
                                  num_threads, state_names=("h", "c"), ids_name="ids_t")
    return h_T, c_T
