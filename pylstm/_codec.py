"""An exact codec between Python/NumPy values and (standard JSON, named arrays).

``encode`` turns a nested value into JSON-able data plus a dict of arrays;
``decode`` undoes it.  The round trip is exact, which is what lets a checkpoint
resume training bit for bit:

=================================  =============================================
value                              stored as
=================================  =============================================
None, bool, int, str, finite float  itself (Python's float repr round-trips)
NaN / ±inf float                   ``{"__float__": "nan" | "inf" | "-inf"}``
numpy bool/int/float16-64 scalar   ``{"__scalar__": dtype.str, "value": v}``
other numpy scalar                 a 0-d array, ``{"__ndarray__": name, "scalar": true}``
ndarray                            ``{"__ndarray__": name}``, bytes in the .npz
list                               a list; 32+ plain floats (ints) as one float64 (int64) array
tuple                              ``{"__tuple__": [...]}``
dict with str keys, none "__..."   a dict
any other dict                     ``{"__dict__": [[key, value], ...]}``
=================================  =============================================

Anything else (a function, an object) is a TypeError naming where it was found.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["encode", "decode"]

_EXACT_SCALAR_KINDS = "biu"
_EXACT_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_PACK_MIN_LEN = 32
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _pack_list(x: list) -> np.ndarray | None:
    # Long per-step logs (History) would make a huge JSON text: a list of plain Python floats
    # (or ints that fit int64) is stored as one float64 (int64) array instead -- exactly, as
    # float64 is what a Python float is.
    if len(x) < _PACK_MIN_LEN:
        return None
    if all(type(v) is float for v in x):
        return np.array(x, dtype=np.float64)
    if all(type(v) is int for v in x) and all(-(2**63) <= v < 2**63 for v in x):
        return np.array(x, dtype=np.int64)
    return None


def _float_json(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"__float__": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def encode(obj: Any, arrays: dict[str, np.ndarray], prefix: str, where: str | None = None) -> Any:
    """JSON-able form of ``obj``; its arrays are added to ``arrays`` as ``prefix/0``, ``prefix/1``, ...

    ``where`` names ``obj`` in error messages (default: ``prefix``).
    """
    counter = [sum(1 for k in arrays if k.startswith(prefix + "/"))]

    def add(a: np.ndarray) -> str:
        name = f"{prefix}/{counter[0]}"
        while name in arrays:  # the prefix was used before: skip taken names
            counter[0] += 1
            name = f"{prefix}/{counter[0]}"
        counter[0] += 1
        arrays[name] = a
        return name

    def enc(x: Any, at: str) -> Any:
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, np.ndarray):
            if x.dtype.hasobject or x.dtype.fields is not None:
                raise TypeError(f"{at}: cannot save an array of dtype {x.dtype}")
            return {"__ndarray__": add(np.array(x, copy=True))}
        if isinstance(x, np.generic):
            if isinstance(x, np.bool_):
                return {"__scalar__": x.dtype.str, "value": bool(x)}
            if x.dtype.kind in _EXACT_SCALAR_KINDS:
                return {"__scalar__": x.dtype.str, "value": int(x)}
            if x.dtype in _EXACT_FLOAT_DTYPES:
                return {"__scalar__": x.dtype.str, "value": _float_json(float(x))}
            if x.dtype.hasobject or x.dtype.fields is not None:
                raise TypeError(f"{at}: cannot save a numpy scalar of dtype {x.dtype}")
            return {"__ndarray__": add(np.array(x)), "scalar": True}
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return _float_json(float(x))
        if isinstance(x, list):
            packed = _pack_list(x)
            if packed is not None:
                return {"__list__": add(packed)}
            return [enc(v, f"{at}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, tuple):
            return {"__tuple__": [enc(v, f"{at}[{i}]") for i, v in enumerate(x)]}
        if isinstance(x, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in x):
                return {k: enc(v, f"{at}[{k!r}]") for k, v in x.items()}
            return {"__dict__": [[enc(k, f"{at} key {k!r}"), enc(v, f"{at}[{k!r}]")] for k, v in x.items()]}
        raise TypeError(f"{at}: cannot save an object of type {type(x).__name__} ({x!r:.80}); "
                        "only None, bool, int, float, str, list, tuple, dict and numpy values can be saved")

    return enc(obj, where or prefix)


def decode(data: Any, arrays: dict[str, np.ndarray], used: set[str] | None = None) -> Any:
    """The value ``encode`` was given.  Names of the arrays taken are added to ``used``.

    Raises ValueError on data ``encode`` cannot have written (a missing array,
    an unknown marker).
    """
    if used is None:
        used = set()

    def dec(x: Any) -> Any:
        if isinstance(x, list):
            return [dec(v) for v in x]
        if not isinstance(x, dict):
            return x
        if "__ndarray__" in x:
            name = x["__ndarray__"]
            if not isinstance(name, str) or name not in arrays:
                raise ValueError(f"config refers to an array {name!r} that the file does not hold")
            if name in used:
                raise ValueError(f"config refers to array {name!r} twice")
            used.add(name)
            a = arrays[name]
            return a[()] if x.get("scalar") else a
        if "__list__" in x:  # a long list of plain floats or ints, stored as one array
            return dec({"__ndarray__": x["__list__"]}).tolist()
        if "__scalar__" in x:
            dt = np.dtype(x["__scalar__"])
            if dt.kind not in "biuf":
                raise ValueError(f"config holds a scalar of unsupported dtype {dt}")
            v = x["value"]
            return dt.type(_NONFINITE[v["__float__"]] if isinstance(v, dict) else v)
        if "__float__" in x:
            return _NONFINITE[x["__float__"]]
        if "__tuple__" in x:
            return tuple(dec(v) for v in x["__tuple__"])
        if "__dict__" in x:
            return {_hashable(dec(k)): dec(v) for k, v in x["__dict__"]}
        return {k: dec(v) for k, v in x.items()}

    return dec(data)


def _hashable(k: Any) -> Any:
    if isinstance(k, np.ndarray):
        raise ValueError("a dict key cannot be an array")
    return k
