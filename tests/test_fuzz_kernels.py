"""Fuzz the public kernel API: every call gives the reference's answer or a clear Python exception.

Hypothesis draws shapes (0 and 1 included, sizes off the SIMD width), dtypes (float16/32/64, signed and
unsigned ints, bool, complex, object), values (NaN, ±Inf, ±0, denormals, 1e30), memory layouts
(Fortran, strided, negative strides, zero-stride broadcasts, read-only, nested lists) and plain wrong
arguments (junk values, off-by-one shapes, missing/extra/unknown arguments) for ``lstm_forward``,
``lstm_forward_ids``, ``lstm_backward``, ``lstm_step`` and ``lstm_step_ids``, on every ISA.  The same
call goes to :mod:`pylstm.reference`, the oracle, and the kernel must

- return what the reference returns (same shapes and dtype, NaN and ±Inf in the same places, the
  rest within the tolerance table), or
- raise exactly when the reference raises, the same class (TypeError/ValueError/MemoryError/
  RuntimeError), with a message naming the argument the fuzzer broke;

never crash (that kills the run), hang (a watchdog aborts with every thread's traceback) or return an
uninitialized value: the heap is filled with NaN right before each kernel call, so an output element
the kernel forgets to write comes back as NaN where the reference has a number.

Profiles, from the environment variable ``PYLSTM_FUZZ_PROFILE``: ``ci`` (default; a few hundred
derandomized examples per target), ``sanitize`` (fewer, for the ASan build in .ci/sanitize.sh) and
``long`` (random, ``PYLSTM_FUZZ_EXAMPLES`` per target; run by benchmarks/fuzz_long.py).
"""
from __future__ import annotations

import collections
import contextlib
import faulthandler
import inspect
import os
import re
import subprocess
import tempfile
import sys
import textwrap
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pylstm import kernels
from pylstm import reference as ref
from tolerances import rel_err, tol

# --------------------------------------------------------------------------- #
# profiles, watchdog, bookkeeping
# --------------------------------------------------------------------------- #
PROFILE = os.environ.get("PYLSTM_FUZZ_PROFILE", "ci")
_EXAMPLES = {"ci": 300, "sanitize": 150, "long": int(os.environ.get("PYLSTM_FUZZ_EXAMPLES", "5000"))}
if PROFILE not in _EXAMPLES:
    raise ValueError(f"PYLSTM_FUZZ_PROFILE must be one of {sorted(_EXAMPLES)}, got {PROFILE!r}")

FUZZ = settings(
    max_examples=_EXAMPLES[PROFILE],
    deadline=None,  # timings on a shared 2-core machine (and under ASan) say nothing; the watchdog catches hangs
    derandomize=PROFILE != "long",  # CI: the same examples every run, so a red CI is reproducible
    database=None,  # no .hypothesis/ folder in the work tree
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# Examples run per target in this process, and how many of the kernel's answers were results rather
# than errors (benchmarks/fuzz_long.py reports them).
COUNTS: collections.Counter[str] = collections.Counter()

# NaN, 1e30 and complex values cast to ints, float16 or reals warn, as they should; not the subject here.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore:Casting complex values")

# One kernel call on these sizes takes microseconds (seconds under ASan): a call still running after
# this long is a hang, and the process is ended with every thread's stack rather than stalling CI.
WATCHDOG_S = 120.0

ALLOWED_ERRORS = (TypeError, ValueError, MemoryError, RuntimeError)

# pybind11's own messages: an argument got past kernels.py's checks to the binding.
_BINDING_LEAK = re.compile(r"incompatible function arguments|Unable to cast|TypeError: \(\)")


@contextlib.contextmanager
def watchdog(seconds: float = WATCHDOG_S) -> Iterator[None]:
    """Abort the process with every thread's traceback if the block runs longer than ``seconds``."""
    # sys.__stderr__: pytest's captured sys.stderr may have no file descriptor.
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


_POISON_SIZES = (8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536)


def poison_heap(extra_bytes: tuple[int, ...] = ()) -> None:
    """Leave NaN in the heap's free lists, so buffers allocated next start as NaN, not zeros.

    NumPy's small-buffer cache and malloc's bins hand freed blocks of a size back to the next request
    of that size: output and workspace buffers then begin full of NaN, and a value the kernel never
    writes cannot pass for a computed one.
    """
    blocks = [np.full(max(n // 8, 1), np.nan) for n in (*_POISON_SIZES, *extra_bytes) for _ in range(2)]
    del blocks


def outcome(fn: Callable, args: list, kwargs: dict, *, kernel: bool) -> tuple[str, Any]:
    """``("ok", result)`` or ``("raise", exception)``; a kernel call runs on a poisoned heap under the watchdog."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # casts of NaN/1e30 to ints or float16 warn; not what is tested here
        if kernel:
            poison_heap()
        with watchdog() if kernel else contextlib.nullcontext():
            try:
                return "ok", fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the class is checked by the caller
                return "raise", e


def assert_same_values(got: Any, want: Any, what: str, mode: str = "strict",
                       precise: tuple[Any, Any] | None = None) -> None:
    """``got`` (kernel) equals ``want`` (reference): dtype, shape, NaN/±Inf positions, the rest to tolerance.

    ``precise``: for a float32 call, the reference's float64 answers on the same (rounded) inputs and on
    inputs jittered by one float32 rounding: the finite values are compared with the first, as the
    tolerance table expects, and the second measures how ill-conditioned the problem is.

    ``mode`` (see comparison_mode): "strict"; "nan_may_vanish": the kernel may have numbers where the
    reference has NaN, never the other way round; "shape_only": known approximations or bugs make
    the values arbitrary.
    """
    if want is None:
        assert got is None, f"{what}: expected None, got {type(got).__name__}"
        return
    assert isinstance(got, np.ndarray), f"{what}: expected an ndarray, got {type(got).__name__}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, the reference gives {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, the reference gives {want.shape}"
    if mode == "shape_only":
        return
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    assert not (nan_g & ~nan_w).any(), (f"{what}: NaN at {np.argwhere(nan_g & ~nan_w)[:3].tolist()} where the "
                                        "reference has a number (an uninitialized output?)")
    assert mode == "nan_may_vanish" or not (nan_w & ~nan_g).any(), (
        f"{what}: numbers at {np.argwhere(nan_w & ~nan_g)[:3].tolist()} where the reference has NaN")
    both = ~nan_g & ~nan_w
    inf_w = np.isinf(want) & both
    assert np.array_equal(np.isinf(got) & both, inf_w) and np.array_equal(got[inf_w], want[inf_w]), \
        f"{what}: ±Inf differ"
    finite = both & ~inf_w
    exact = want if precise is None else precise[0]
    finite &= np.isfinite(exact)
    err = rel_err(got[finite], exact[finite])
    bound = tol(got.dtype)
    if precise is not None and finite.any():
        # Errors are relative to the tensor's largest value, but to no less than 1e-3: the gradient of a
        # saturated gate, σ(1 - σ) with σ(20) = 1 - 2e-9, keeps ~1 ulp of absolute accuracy only (5e-8
        # relative in float64) in both implementations, so a tensor of such tiny gradients differs
        # relatively by far more than the table allows. And a problem can be ill-conditioned
        # (saturated gates with large weights, or a clip far below the gradients' rounding noise, which
        # turns the noise's sign into ±clip): the bound is the table's or 10x the change that one
        # rounding of the inputs makes (or the float32 reference's own error), whichever is larger.
        # Accuracy is test_kernels.py's job; a wrong or unwritten element is off by O(1) and fails here.
        scale = max(float(np.max(np.abs(exact[finite]))), 1e-3)
        err = float(np.max(np.abs(got[finite] - exact[finite]))) / scale
        jittered = precise[1][finite]
        jittered = np.where(np.isfinite(jittered), jittered, exact[finite])
        own = max(float(np.max(np.abs(want[finite] - exact[finite]))),
                  float(np.max(np.abs(jittered - exact[finite])))) / scale
        bound = max(bound, 10 * own)
    assert err < bound, f"{what}: relative error {err:.3e} > {bound:.1e}"


def promoted(a: Any, jitter: np.random.Generator | None = None, dtype: Any = np.float32) -> Any:
    """A float argument as a ``dtype`` kernel sees it (rounded to ``dtype``), in float64; ``jitter``: every
    finite element first moved one ``dtype`` ulp up or down at random (1e30 - 1e30 + 0.07 then shows how
    much the summation order may matter)."""
    if isinstance(a, (np.ndarray, list)):
        with np.errstate(all="ignore"):
            a = np.asarray(a).astype(dtype)
            if jitter is not None and a.dtype.kind == "f":
                moved = np.nextafter(a, np.where(jitter.random(a.shape) < 0.5, -np.inf, np.inf).astype(dtype))
                a = np.where(np.isfinite(a), moved, a)
            return a.astype(np.float64)
    return a


def precise_calls(name: str, args: list, kwargs: dict, grads: tuple[list, dict] | None = None,
                  dtype: Any = np.float32) -> tuple[Any, Any]:
    """The reference's float64 answers to a valid ``dtype`` call: on the rounded inputs and jittered ones.

    ``grads``: also run ``lstm_backward`` with these (dy, ...) and keywords; return its gradients.
    """
    first = 1 if name.endswith("_ids") else 0  # ids stay ids
    out = []
    for jitter in (None, np.random.default_rng(0)):
        a = args[:first] + [promoted(x, jitter, dtype) for x in args[first:5]] + args[5:]
        kw = {k: promoted(v, jitter, dtype) if k in ("h0", "c0", "h", "c") else v for k, v in kwargs.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = getattr(ref, name)(*a, **kw)
            if grads is not None:
                g_args, g_kw = grads
                result = ref.lstm_backward(result[3], *[promoted(x, jitter, dtype) for x in g_args],
                                           **{k: promoted(v, jitter, dtype) for k, v in g_kw.items()})
        out.append(result)
    return out[0], out[1]


def comparison_mode(args: list, kwargs: dict, state_names: tuple[str, str], grads: tuple = ()) -> str:
    """How strictly assert_same_values may compare, given the call's inputs: "strict", unless they hold
    magnitudes beyond 1e3 or infinities (the two documented differences below).

    ``args``, ``kwargs``: the forward call; ``grads``: the incoming gradients of a backward call."""
    arrays = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in [*args[:5], *(kwargs.get(s) for s in state_names), *grads]:
            try:
                arrays.append(np.asarray(a, dtype=np.float64))
            except (TypeError, ValueError):
                return "strict"
    # Magnitudes above 1e3 (the fuzzer's 1e30s): 1e30 - 1e30 + 0.07 is 0 or 0.07 by summation order, and
    # a saturated gate's derivative, known to a few digits only (σ(1 - σ) near σ = 1), times a 1e30
    # weight sets the gradient's scale; both implementations are right within that. What is checked
    # there: no crash, the shapes and dtypes.
    if any(np.any(np.abs(a) > 1e3) for a in arrays if a.size):
        return "shape_only"
    if any(np.isinf(a).any() for a in arrays if a.size):
        # The float32 SIMD σ(-inf) is 5e-39, not 0 (vexp clamps its argument at -87): 0·inf = NaN in
        # the reference is tiny·inf = ±inf in the kernel. Garbage in, garbage out: only NaNs differ.
        return "nan_may_vanish"
    return "strict"


def check_call(name: str, args: list, kwargs: dict, broken: str | None, compare: Callable[[Any, Any], None]) -> Any:
    note(f"{name}(*{args!r}, **{kwargs!r}); broken: {broken}")
    """Call ``name`` on the kernel and the reference; apply the contract. Returns the kernel's result or None.

    ``broken``: the argument the fuzzer broke on an otherwise valid call (its name must be in the
    message), or None.
    """
    k = outcome(getattr(kernels, name), args, kwargs, kernel=True)
    r = outcome(getattr(ref, name), args, kwargs, kernel=False)
    precise = None
    if k[0] == r[0] == "ok":
        precise = precise_calls(name, args, kwargs, dtype=r[1][0].dtype)
    judge(name, k, r, broken, lambda got, want: compare(got, want, precise))  # type: ignore[call-arg]
    return k[1] if k[0] == "ok" else None


def judge(name: str, k: tuple[str, Any], r: tuple[str, Any], broken: str | None,
          compare: Callable[[Any, Any], None]) -> None:
    """The contract, given the kernel's and the reference's outcomes of one call."""
    COUNTS[name] += 1
    (k_kind, k_val), (r_kind, r_val) = k, r
    COUNTS[f"{name}: returned"] += k_kind == "ok"
    if k_kind == "raise":
        assert isinstance(k_val, ALLOWED_ERRORS), f"{name} raised {type(k_val).__name__}: {k_val}"
        msg = str(k_val)
        assert len(msg) >= 10 and not _BINDING_LEAK.search(msg), f"{name}: unclear message {msg!r}"
        assert r_kind == "raise", f"{name} refused ({type(k_val).__name__}: {msg}) a call the reference accepts"
        if broken is not None:  # one fault, on an otherwise valid call (with several, either may be reported)
            same = type(k_val) is type(r_val) or broken.endswith("?") and {type(k_val), type(r_val)} <= {
                TypeError, ValueError}
            assert same, (f"{name}: the kernel raised {type(k_val).__name__} ({msg}), "
                          f"the reference {type(r_val).__name__} ({r_val})")
            broken = broken.rstrip("?")
            assert broken.endswith("*") or re.search(rf"(?<![A-Za-z0-9_]){re.escape(broken)}(?![A-Za-z0-9_])", msg), \
                f"{name}: {broken!r} not named in {msg!r}"
        return
    assert r_kind == "ok", f"{name} accepted a call the reference refuses ({type(r_val).__name__}: {r_val})"
    compare(k_val, r_val)


# --------------------------------------------------------------------------- #
# strategies: sizes, dtypes, values, layouts, junk
# --------------------------------------------------------------------------- #
POSITIVE_SIZES = st.one_of(st.integers(1, 4), st.sampled_from([7, 8, 9, 16, 17]))  # 1 and SIMD tails
SIZES = st.one_of(POSITIVE_SIZES, st.just(0))
WEIGHT_DTYPES = st.sampled_from([np.float32, np.float64] * 4 + [np.float16, np.int64, np.complex128, object])
ANY_DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int8, np.int64, np.uint8, np.uint64,
                              np.bool_, np.complex64, np.complex128, object])
# Mostly the float dtypes a caller would pass; every other dtype regularly.
INPUT_DTYPES = st.one_of(st.sampled_from([np.float32, np.float64]), ANY_DTYPES)
REAL_DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int8, np.int64, np.uint8, np.uint64, np.bool_])
ID_DTYPES = st.sampled_from([np.int64, np.int32, np.int8, np.uint8, np.uint16, np.uint64, np.float64, np.bool_,
                             np.complex64, object])
SPECIALS = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 1e-310, 1e-40)
LAYOUTS = ("c", "c", "c", "fortran", "strided", "reversed", "broadcast", "readonly", "list")
# Values that are not arrays of the right kind at all.
JUNK = st.sampled_from([None, 0, 1, -1, 2.5, np.nan, True, "x", b"\x00", [], [[]], [1.0, "a"], (1, 2), {},
                        object(), np.float64(1.0), np.zeros(()), np.zeros((2, 3, 4, 5)), np.zeros((0,)),
                        np.array(["a", "b"]), np.zeros(3, dtype="datetime64[s]"), np.zeros(2, dtype="V8"),
                        np.zeros(2, dtype=[("a", "f8"), ("b", "i4")])])
# np.int64(2) is left out: see test_numpy_int_num_threads_is_accepted (a known difference)
GOOD_NUM_THREADS = st.sampled_from([None, 1, 2, 3, 10**4])
NUM_THREADS = st.one_of(GOOD_NUM_THREADS, st.sampled_from([0, -1, 2.0, True, "2"]))


@st.composite
def values(draw, shape: tuple[int, ...], dtype: Any, scale: float = 1.0) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype``: normal values, sometimes with specials sprinkled in."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.standard_normal(shape) * scale
    if a.size and draw(st.integers(0, 3)) == 0:
        where = rng.integers(0, a.size, draw(st.integers(1, 3)))
        a.flat[where] = draw(st.lists(st.sampled_from(SPECIALS), min_size=len(where), max_size=len(where)))
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dt.kind in "iu":
            info = np.iinfo(dt)
            a = np.nan_to_num(np.rint(a * 3), posinf=info.max, neginf=info.min)
            return np.clip(a, info.min, info.max).astype(dt)
        if dt.kind == "b":
            return a > 0
        if dt.kind == "c":
            return (a + 1j * rng.standard_normal(shape)).astype(dt)
        return a.astype(dt)


def relayout(draw, a: Any, lists: bool = True) -> Any:
    """``a`` in a memory layout the fuzzer draws (the same values unless broadcast); maybe a nested list."""
    if not isinstance(a, np.ndarray) or a.ndim == 0:
        return a
    how = draw(st.sampled_from(LAYOUTS if lists else LAYOUTS[:-1]))
    ax = draw(st.integers(0, a.ndim - 1))
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "strided":  # every other element of a larger buffer
        return np.repeat(a, 2, axis=ax)[(slice(None),) * ax + (slice(None, None, 2),)]
    if how == "reversed":  # negative stride on one axis
        return np.flip(np.flip(a, ax).copy(), ax)
    if how == "broadcast" and a.shape[ax] > 0:  # zero stride: one slice repeated along an axis
        return np.broadcast_to(np.take(a, [0], axis=ax), a.shape)
    if how == "readonly":
        a = a.copy()
        a.flags.writeable = False
        return a
    if how == "list":
        return a.tolist()
    return a


def perturbed_shape(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A wrong shape near ``shape``: one axis off by one, or an axis added or dropped."""
    how = draw(st.sampled_from(["off", "off", "add", "drop"]))
    if how == "add" or not shape:
        return shape + (1,)
    if how == "drop":
        return shape[:-1]
    ax = draw(st.integers(0, len(shape) - 1))
    return tuple(n + draw(st.sampled_from([-1, 1])) if i == ax and n + 1 > 1 else (n + 1 if i == ax else n)
                 for i, n in enumerate(shape))


def maybe_break(draw, call: dict[str, Any], shapes: dict[str, tuple], dtypes: dict[str, Any],
                optional: tuple[str, ...] = ()) -> str | None:
    """Sometimes replace one argument of ``call`` by junk or a wrong shape; return its name (or None).

    An argument in ``optional`` may also be set to None, which is valid (not counted as broken).  Junk
    that is not an array may be refused as the wrong type or the wrong shape: the name gets a ``?``
    (judge then accepts TypeError for ValueError and back).  A wrong shape for an argument the sizes
    come from (x: B and T, W_hh: H, ...) may be reported on another argument: the name gets a ``*``.
    """
    what = draw(st.sampled_from(["none", "junk", "shape"]))
    if what == "none":
        return None
    # need_cache: the reference takes any truthy value (test_need_cache_must_be_a_bool pins the kernel's rule)
    name = draw(st.sampled_from(sorted(k for k in call if k != "need_cache")))
    if what == "junk":
        junk = draw(JUNK)
        call[name] = junk
        return None if (junk is None and name in optional) else name + ("" if isinstance(junk, np.ndarray) else "?")
    if name not in shapes:
        return None
    call[name] = relayout(draw, draw(values(perturbed_shape(draw, shapes[name]), dtypes[name])))
    return name + ("*" if name in ("x", "x_t", "ids", "ids_t", "W_ih", "W_hh") else "") + \
        ("?" if isinstance(call[name], list) else "")


def arity(draw, fn: Callable, args: list, kwargs: dict) -> tuple[list, dict, bool]:
    """Sometimes a wrong argument count: one positional too few or too many, or an unknown keyword."""
    how = draw(st.sampled_from(["ok"] * 5 + ["fewer", "more", "unknown"]))
    n_params = len(inspect.signature(fn).parameters)
    if how == "fewer":
        return args[:4], {}, True  # one short of the required five (an input and four weights)
    if how == "more":
        return args + [None] * (n_params - len(args)) + [1], kwargs, True
    if how == "unknown":
        return args, dict(kwargs, nonsense=1), True
    return args, kwargs, False


def weights(draw, H: int, I: int, clean: bool) -> tuple[dict[str, Any], dict[str, tuple]]:
    """W_ih (4H, I), W_hh (4H, H), b_ih, b_hh (4H,): one float dtype, or (unless ``clean``) any dtypes."""
    dtype = draw(st.sampled_from([np.float32, np.float64]) if clean else WEIGHT_DTYPES)
    shapes = {"W_ih": (4 * H, I), "W_hh": (4 * H, H), "b_ih": (4 * H,), "b_hh": (4 * H,)}
    scale = draw(st.sampled_from([1.0, 1.0, 0.3, 30.0])) / np.sqrt(max(H, 1))
    w = {}
    for name, shape in shapes.items():
        dt = draw(WEIGHT_DTYPES) if not clean and draw(st.integers(0, 15)) == 0 else dtype
        w[name] = relayout(draw, draw(values(shape, dt, scale)), lists=not clean)
    return w, shapes


def forward_like(draw, name: str, *, ids: bool, step: bool) -> tuple[list, dict, str | None, bool]:
    """A call of ``lstm_forward``/``_ids``/``lstm_step``/``_ids``: positional args, keywords, broken name, bad arity.

    Half the calls are "clean" (sizes >= 1, float weights of one dtype, real inputs, ids in range, no
    deliberate fault: they must return the reference's answer); the others draw from every fault.
    """
    clean = draw(st.booleans())
    sizes = POSITIVE_SIZES if clean else SIZES
    B, T, I, H = draw(sizes), (1 if step else min(draw(sizes), 5)), draw(sizes), draw(sizes)
    w, shapes = weights(draw, H, I, clean)
    dtypes = {k: np.float64 for k in shapes}
    xname = ("ids_t" if step else "ids") if ids else ("x_t" if step else "x")
    xshape = ((B,) if step else (B, T)) if ids else ((B, I) if step else (B, T, I))
    if ids:  # token ids in [0, V), V = I; sometimes out of range or of a non-integer dtype
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        lo, hi = (0, max(I, 1)) if clean else draw(st.sampled_from([(0, max(I, 1)), (-1, max(I, 1)), (0, I + 1)]))
        x = rng.integers(lo, hi, xshape).astype(draw(st.sampled_from([np.int64, np.uint8, np.int32]) if clean
                                                     else ID_DTYPES))
        dtypes[xname] = np.int64
    else:
        x = draw(values(xshape, draw(REAL_DTYPES if clean else INPUT_DTYPES)))
        dtypes[xname] = np.float64
    call = {xname: relayout(draw, x), **w}
    shapes[xname] = xshape
    s0, s1 = ("h", "c") if step else ("h0", "c0")
    for s in (s0, s1):
        if draw(st.booleans()):
            call[s] = relayout(draw, draw(values((B, H), draw(REAL_DTYPES if clean else INPUT_DTYPES))))
            shapes[s], dtypes[s] = (B, H), np.float64
    if not step and draw(st.integers(0, 3)) == 0:
        # Only bools: the reference takes any truthy value, the kernel only bools (test_need_cache_must_be_a_bool)
        call["need_cache"] = draw(st.sampled_from([False, True, np.bool_(True), np.bool_(False)]))
    if draw(st.integers(0, 3)) == 0:
        call["num_threads"] = draw(GOOD_NUM_THREADS if clean else NUM_THREADS)
    base = dict(call)
    broken = None if clean else maybe_break(draw, call, shapes, dtypes, optional=(s0, s1, "num_threads"))
    order = [xname, "W_ih", "W_hh", "b_ih", "b_hh"]
    args = [call.pop(k) for k in order]
    args, kwargs, bad_arity = (args, call, False) if clean else arity(draw, getattr(kernels, name), args, call)
    if bad_arity or not valid(getattr(ref, name), [base.pop(k) for k in order], base):
        broken = None  # the message may name any of the call's faults
    return args, kwargs, broken, bad_arity


def valid(ref_fn: Callable, args: list, kwargs: dict) -> bool:
    """Whether the reference accepts the call."""
    return outcome(ref_fn, args, kwargs, kernel=False)[0] == "ok"


def compare_tuples(fields: tuple[str, ...], mode: str = "strict") -> Callable[[Any, Any, Any], None]:
    def compare(got: Any, want: Any, precise: Any) -> None:
        assert isinstance(got, tuple) and len(got) == len(want), f"expected a {len(want)}-tuple"
        for i, (f, g, w) in enumerate(zip(fields, got, want)):
            if f == "cache":
                assert (g is None) == (w is None), "a cache exactly when the reference gives one"
            else:
                assert_same_values(g, w, f, mode, None if precise is None else (precise[0][i],
                                                                                          precise[1][i]))
    return compare


# --------------------------------------------------------------------------- #
# the targets
# --------------------------------------------------------------------------- #
ISAS = st.sampled_from(kernels._available_isas())


def _fuzz_forward(data: st.DataObject, name: str, ids: bool) -> None:
    args, kwargs, broken, _ = forward_like(data.draw, name, ids=ids, step=False)
    with kernels._use_isa(data.draw(ISAS)):
        mode = comparison_mode(args, kwargs, ("h0", "c0"))
        got = check_call(name, args, kwargs, broken, compare_tuples(("y", "h_T", "c_T", "cache"), mode))
        if got is None or got[3] is None:
            return
        # The cache holds what backward needs, whatever the inputs' layout and dtype were.
        H = got[0].shape[2]
        dy = np.random.default_rng(0).standard_normal(got[0].shape).astype(got[0].dtype)
        dh = np.ones((got[0].shape[0], H), got[0].dtype)
        poison_heap()
        with watchdog():
            g = kernels.lstm_backward(got[3], dy, dh)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = ref.lstm_backward(getattr(ref, name)(*args, **kwargs)[3], dy, dh)
            p = precise_calls(name, args, kwargs, grads=([dy, dh], {}), dtype=dy.dtype)
        for f in r._fields:
            assert_same_values(getattr(g, f), getattr(r, f), f"backward after {name}: {f}", mode,
                               None if p is None else (getattr(p[0], f), getattr(p[1], f)))


@FUZZ
@given(st.data())
def test_fuzz_lstm_forward(data):
    _fuzz_forward(data, "lstm_forward", ids=False)


@FUZZ
@given(st.data())
def test_fuzz_lstm_forward_ids(data):
    _fuzz_forward(data, "lstm_forward_ids", ids=True)


def _fuzz_step(data: st.DataObject, name: str, ids: bool) -> None:
    args, kwargs, broken, _ = forward_like(data.draw, name, ids=ids, step=True)
    with kernels._use_isa(data.draw(ISAS)):
        check_call(name, args, kwargs, broken, compare_tuples(("h", "c"), comparison_mode(args, kwargs, ("h", "c"))))


@FUZZ
@given(st.data())
def test_fuzz_lstm_step(data):
    _fuzz_step(data, "lstm_step", ids=False)


@FUZZ
@given(st.data())
def test_fuzz_lstm_step_ids(data):
    _fuzz_step(data, "lstm_step_ids", ids=True)


# No tiny clips (< 1e-3): a clip far below the gradients' size turns which gate gradients are exactly
# 0 (σ' of a saturated gate: the reference rounds σ to 1, the kernel keeps e^-40) into differences of
# ±clip, as large as the clipped gradients themselves; nothing to compare. The float32 bug they hit is
# pinned by test_clip_below_the_dtypes_smallest_number_still_clips.
GOOD_CLIPS = st.one_of(st.none(), st.floats(1e-3, 1e3), st.sampled_from([np.inf, 1e300, np.float32(0.5)]))
CLIPS = st.one_of(GOOD_CLIPS, st.sampled_from([0.0, -1.0, np.nan, True, "1", [1.0], np.array([1.0])]))


def _valid_forward(draw, ids: bool) -> tuple[list, dict]:
    """A forward call that must succeed (the layouts and values still fuzzed)."""
    B, T, I, H = (draw(st.one_of(st.integers(1, 4), st.sampled_from([7, 9, 17]))) for _ in range(4))
    T = min(T, 5)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    scale = draw(st.sampled_from([1.0, 0.3, 30.0])) / np.sqrt(H)
    shapes = {"W_ih": (4 * H, I), "W_hh": (4 * H, H), "b_ih": (4 * H,), "b_hh": (4 * H,)}
    w = [relayout(draw, draw(values(s, dtype, scale)), lists=False) for s in shapes.values()]
    if ids:
        x = np.random.default_rng(draw(st.integers(0, 99))).integers(0, I, (B, T))
    else:
        x = draw(values((B, T, I), draw(st.sampled_from([np.float32, np.float64, np.int8, np.bool_]))))
    kwargs = {s: relayout(draw, draw(values((B, H), dtype)), lists=False) for s in ("h0", "c0") if draw(st.booleans())}
    return [relayout(draw, x), *w], kwargs


@FUZZ
@given(st.data())
def test_fuzz_lstm_backward(data):
    draw = data.draw
    ids = draw(st.booleans())
    fwd_name = "lstm_forward_ids" if ids else "lstm_forward"
    f_args, f_kwargs = _valid_forward(draw, ids)
    with kernels._use_isa(draw(ISAS)):
        y, _, _, k_cache = getattr(kernels, fwd_name)(*f_args, **f_kwargs)
        B, T, H = y.shape
        dt = y.dtype
        shapes = {"dy": (B, T, H), "dh_T": (B, H), "dc_T": (B, H)}
        clean = draw(st.booleans())  # as in forward_like: half the calls without a deliberate fault
        call: dict[str, Any] = {}
        for g, shape in shapes.items():
            if g == "dy" or draw(st.booleans()):
                # Mostly the cache's dtype (anything else must be refused), any layout, any values.
                # Not lists: they have no dtype, the kernel refuses them and the reference casts them.
                gdt = dt if clean or draw(st.integers(0, 4)) else draw(ANY_DTYPES)
                call[g] = relayout(draw, draw(values(shape, gdt)), lists=False)
        if draw(st.booleans()):
            call["clip"] = draw(GOOD_CLIPS if clean else CLIPS)
        if draw(st.integers(0, 3)) == 0:
            call["num_threads"] = draw(GOOD_NUM_THREADS if clean else NUM_THREADS)
        base = dict(call)
        broken = None if clean else maybe_break(draw, call, shapes, {g: dt for g in shapes},
                                                optional=("dy", "dh_T", "dc_T", "clip", "num_threads"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r_fwd = getattr(ref, fwd_name)
            if broken and not valid(ref.lstm_backward, [r_fwd(*f_args, **f_kwargs)[3], base.pop("dy", None)], base):
                broken = None  # the message may name any of the call's faults
            dy = call.pop("dy", None)
            mode = comparison_mode(f_args, f_kwargs, ("h0", "c0"), (dy, call.get("dh_T"), call.get("dc_T")))
            note(f"{fwd_name}(*{f_args!r}, **{f_kwargs!r}); lstm_backward(cache, {dy!r}, **{call!r})")
            k = outcome(kernels.lstm_backward, [k_cache, dy], call, kernel=True)
            r = outcome(ref.lstm_backward, [r_fwd(*f_args, **f_kwargs)[3], dy], call, kernel=False)
            p = None
            if k[0] == r[0] == "ok":
                p = precise_calls(fwd_name, f_args, f_kwargs, grads=([dy], call), dtype=dt)

        def compare(got: Any, want: Any) -> None:
            for f in ref.LSTMGrads._fields:
                assert_same_values(getattr(got, f), getattr(want, f), f, mode, None if p is None else (getattr(p[0], f), getattr(p[1], f)))

        judge("lstm_backward", k, r, broken, compare)
        # A cache serves one backward pass: a second one is refused, whatever the first did.
        second, err = outcome(kernels.lstm_backward, [k_cache, None], {}, kernel=True)
        if k[0] == "ok":
            assert second == "raise" and isinstance(err, RuntimeError), "a second backward must be refused"


# Fields of the kernel's cache and junk for them: a tampered cache must be refused, never crash.
CACHE_FIELDS = ("gates", "cs", "y", "x", "ids", "W_ih", "W_hh", "h0", "c0")
CACHE_JUNK = st.one_of(JUNK.filter(lambda v: not isinstance(v, (int, float, np.floating))),
                       st.sampled_from(["<other dtype>", "<fortran>", "<extra axis>", "<read-only>"]))


@FUZZ
@given(st.data())
def test_fuzz_tampered_cache_is_refused_not_a_crash(data):
    draw = data.draw
    ids = draw(st.booleans())
    f_args, f_kwargs = _valid_forward(draw, ids)
    fwd = kernels.lstm_forward_ids if ids else kernels.lstm_forward
    cache = fwd(*f_args, **f_kwargs)[3]
    field = draw(st.sampled_from(CACHE_FIELDS))
    junk = draw(CACHE_JUNK)
    old = getattr(cache, field)
    remake = {"<other dtype>": lambda a: a.astype(np.float32 if a.dtype != np.float32 else np.float64),
              "<fortran>": lambda a: np.asfortranarray(a) if a.ndim > 1 and a.shape[0] > 1 else a[..., None],
              "<extra axis>": lambda a: np.zeros(a.shape + (2,), a.dtype),
              "<read-only>": lambda a: np.broadcast_to(a, a.shape)}
    if isinstance(junk, str) and junk in remake:
        junk = remake[junk](old) if isinstance(old, np.ndarray) else None
    setattr(cache, field, junk)
    COUNTS["tampered cache"] += 1
    kind, val = outcome(kernels.lstm_backward, [cache, None], {}, kernel=True)
    if kind == "raise":
        # AttributeError: kernels.py reads .shape/.dtype of a field before the binding checks it.
        assert isinstance(val, (*ALLOWED_ERRORS, AttributeError)), f"{type(val).__name__}: {val}"


@pytest.mark.parametrize("name", ["lstm_forward", "lstm_forward_ids", "lstm_backward", "lstm_step",
                                  "lstm_step_ids"])
def test_no_arguments_or_far_too_many_is_a_type_error(name):
    fn = getattr(kernels, name)
    with pytest.raises(TypeError):
        fn()
    with pytest.raises(TypeError):
        fn(*range(12))


# --------------------------------------------------------------------------- #
# regressions: one test per bug the fuzzer and the sanitizer found (all fixed)
# --------------------------------------------------------------------------- #
def _in_subprocess(code: str) -> subprocess.CompletedProcess:
    # From a neutral folder: `python -c` puts the working folder first on sys.path, and the repository's own
    # pylstm/ (no compiled _core) must not shadow the installed package.
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120, cwd=tempfile.gettempdir())


def test_cache_gates_replaced_by_an_int_is_refused_not_a_segfault():
    done = _in_subprocess("""
        import numpy as np, pylstm
        w = [np.ones(s) for s in [(8, 3), (8, 2), (8,), (8,)]]
        cache = pylstm.lstm_forward(np.ones((1, 2, 3)), *w)[3]
        cache.gates = 3  # an int's digits sit where an ndarray keeps nd: nd == 3, then garbage dimensions
        try:
            pylstm.lstm_backward(cache, None)
        except (TypeError, ValueError) as e:
            print("refused:", e)
    """)
    assert done.returncode == 0 and "refused" in done.stdout, f"rc {done.returncode}: {done.stderr[-2000:]}"


def test_clip_below_the_dtypes_smallest_number_still_clips():
    rng = np.random.default_rng(0)
    w = [rng.standard_normal(s).astype(np.float32) for s in [(8, 3), (8, 2), (8,), (8,)]]
    x = rng.standard_normal((2, 3, 3)).astype(np.float32)
    dy = np.ones((2, 3, 2), np.float32)
    got = kernels.lstm_backward(kernels.lstm_forward(x, *w)[3], dy, clip=1e-300)
    want = ref.lstm_backward(ref.lstm_forward(x, *w)[3], dy, clip=1e-300)
    assert np.abs(got.dW_hh).max() <= np.abs(want.dW_hh).max() + 1e-30


def test_num_threads_beyond_int32_is_named():
    w = [np.ones(s) for s in [(8, 3), (8, 2), (8,), (8,)]]
    with pytest.raises((TypeError, ValueError), match=r"^num_threads"):
        kernels.lstm_forward(np.ones((1, 2, 3)), *w, num_threads=2**31)


def test_avx2_float32_sigmoid_saturates_to_exactly_one():
    if "avx2" not in kernels._available_isas():
        pytest.skip("no AVX2 here")
    v = np.array([0.126, -0.132, 0.640, 0.105], np.float32)
    W_ih, W_hh = v[:, None].copy(), v[:, None].copy()
    W_hh[0, 0] = 1e20  # the input gate's recurrent weight: the gate saturates at i = 1
    x = np.array([0.126, -0.132, 0.640, 0.105, -0.536, 0.362], np.float32).reshape(2, 3, 1)
    dy = x.copy()
    want = ref.lstm_backward(ref.lstm_forward(x, W_ih, W_hh, v, v)[3], dy)
    with kernels._use_isa("avx2"):
        got = kernels.lstm_backward(kernels.lstm_forward(x, W_ih, W_hh, v, v)[3], dy)
    np.testing.assert_allclose(got.dx, want.dx, rtol=1e-4, atol=1e-6)  # avx2 gives ~1e22 instead of ~1e-2


def test_float32_tanh_of_tiny_values_is_relatively_accurate():
    f = np.float32
    W_ih = np.array([[3.77], [-3.96], [19.2], [3.15]], f)
    W_hh = W_ih.copy()
    W_hh[0, 0] = 1e30  # the input gate reads h_{t-1} = 4.6e-10 times this: 1e30·0 or 1e30·4.6e-10
    b_ih = W_ih[:, 0].copy()
    b_hh = np.array([-29.0, 3.82, 14.6, 23.95], f)
    ids = np.array([[0, 0]])
    want = ref.lstm_forward_ids(ids, W_ih, W_hh, b_ih, b_hh, need_cache=False)[0]  # [4.6e-10, 0.76]
    for isa in kernels._available_isas():
        with kernels._use_isa(isa):
            got = kernels.lstm_forward_ids(ids, W_ih, W_hh, b_ih, b_hh, need_cache=False)[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, err_msg=isa)  # avx512: [0, 0]


def test_missing_state_with_nan_weights_gives_nan():
    w = [np.full(s, 0.1) for s in [(4, 1), (4, 1), (4,), (4,)]]
    w[1][0, 0] = np.nan  # W_hh: a broken weight
    x = np.ones((1, 1, 1))
    zeros = np.zeros((1, 1))
    explicit = kernels.lstm_forward(x, *w, h0=zeros, c0=zeros, need_cache=False)[0]
    missing = kernels.lstm_forward(x, *w, need_cache=False)[0]
    assert np.isnan(explicit).all() and np.isnan(ref.lstm_forward(x, *w)[0]).all()
    assert np.isnan(missing).all(), "None must mean zeros: a NaN weight must show"


@pytest.mark.parametrize("shape", [(8, 1, 1, 1), (8, 1, 1, 2), (32, 3, 1, 15)], ids=["B8T1H1", "B8T1H2", "B32T3H15"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_missing_state_keeps_a_nan_of_the_first_step_in_dW_hh(shape, dtype):
    # dW_hh = Σ_t dG_tᵀ·h_{t-1} with h_{-1} = 0: a NaN in dG_0 makes 0·NaN = NaN (the reference's
    # answer). The small-H batch-in-lanes path skipped step 0 without h0 and returned numbers there
    # (found by fuzz_long). These shapes take that path on some ISA.
    B, T, I, H = shape
    rng = np.random.default_rng(1)
    w = [rng.uniform(-0.5, 0.5, s).astype(dtype) for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]
    w[0][0, 0] = np.nan  # W_ih: unit 0's input gate is NaN at every step
    x = rng.standard_normal((B, T, I)).astype(dtype)
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    want = ref.lstm_backward(ref.lstm_forward(x, *w)[3], dy).dW_hh
    assert np.isnan(want).any()
    for isa in kernels._available_isas():
        with kernels._use_isa(isa):
            got = kernels.lstm_backward(kernels.lstm_forward(x, *w)[3], dy).dW_hh
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=isa)


def test_unpickled_arrays_are_accepted():
    import pickle

    w = [pickle.loads(pickle.dumps(np.full(s, 0.1))) for s in [(8, 3), (8, 2), (8,), (8,)]]
    y, _, _, cache = kernels.lstm_forward(np.ones((1, 2, 3)), *w)
    kernels.lstm_backward(cache, pickle.loads(pickle.dumps(np.ones_like(y))))


def test_numpy_int_num_threads_is_accepted():
    w = [np.full(s, 0.1) for s in [(8, 3), (8, 2), (8,), (8,)]]
    kernels.lstm_forward(np.ones((1, 2, 3)), *w, num_threads=np.int64(2))


@pytest.mark.parametrize("need_cache", [1, 0, None, "yes", np.array([True])])
def test_need_cache_must_be_a_bool(need_cache):
    # The fuzzer draws only bools here: the reference takes any truthy value (a difference reported).
    w = [np.full(s, 0.1) for s in [(8, 3), (8, 2), (8,), (8,)]]
    with pytest.raises(TypeError, match="need_cache"):
        kernels.lstm_forward(np.ones((1, 2, 3)), *w, need_cache=need_cache)
