"""The monitoring engine's state as data: MessagePack that cannot execute anything when read.

Checkpoints used to be pickles: whoever could write a row of ``engine_checkpoints`` and sign it
(with no ClickHouse password the key was a constant) ran code in the worker at its next start.
Here a state is a tree of plain values (numbers, strings, bytes, lists, maps) with tags for the
few other shapes the engine holds: tuples, sets, deques, dicts with non-string keys, numpy
arrays (dtype, shape and raw bytes, object dtype refused), ``random.Random`` states, and objects
of the classes in `ALLOWED`. Reading builds an object of an allowed class with ``__new__`` and
sets its attributes (no ``__init__``, no ``__reduce__``, nothing named by the data is imported),
so a forged state can at worst hold wrong numbers, and its HMAC (checkpoints.py) stops even that.

Two allowed classes need more than attributes: River's Rust ADWIN window, which is rebuilt from
its constructor's numbers and its own byte state, and River detectors that keep a bound method
of themselves (PageHinkley's test for its mode), which is looked up again by name.

>>> from collections import deque
>>> decode(encode({"a": (1, 2.5), 3: deque([1], maxlen=4)}))
{'a': (1, 2.5), 3: deque([1], maxlen=4)}
"""

from __future__ import annotations

import random
import types
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
from river import drift, stats
from river.drift import binary

from driftline.metrics.cbpe import Calibration, EstimatedClassQuality, EstimatedQuality
from driftline.metrics.data_quality import DuplicateTracker
from driftline.metrics.detectors import ErrorStreamDetector, MeanShiftDetector, WindowSignalDetector
from driftline.metrics.drift import CategoricalDrift, NumericDrift
from driftline.metrics.embeddings import EmbeddingDrift, VectorProfile
from driftline.metrics.fairness import GroupFairness
from driftline.metrics.label_noise import ConfidentDisagreement
from driftline.metrics.profiles import FeatureProfile, PcaProfile, ReferenceProfile
from driftline.metrics.quality import BinaryQuality, MulticlassQuality, RegressionQuality
from driftline.metrics.segments import TopK


class StateError(ValueError):
    """A state that does not decode (not this format, or a class that is not allowed)."""


_RUST_ADWIN = type(drift.ADWIN()._helper)  # type: ignore[no-untyped-call]

#: The classes a state may hold, by a stable name. Nothing else is ever built from a state.
ALLOWED: dict[str, type] = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for cls in (
        EmbeddingDrift,
        VectorProfile,
        TopK,
        Calibration,
        EstimatedQuality,
        EstimatedClassQuality,
        DuplicateTracker,
        ErrorStreamDetector,
        MeanShiftDetector,
        WindowSignalDetector,
        CategoricalDrift,
        NumericDrift,
        FeatureProfile,
        PcaProfile,
        ReferenceProfile,
        GroupFairness,
        ConfidentDisagreement,
        BinaryQuality,
        MulticlassQuality,
        RegressionQuality,
        drift.ADWIN,
        drift.KSWIN,
        drift.PageHinkley,
        binary.HDDMA,
        stats.Mean,
        stats.Var,
    )
}
_NAMES = {cls: name for name, cls in ALLOWED.items()}
_FACTORIES: dict[str, Callable[[], Any]] = {"int": int, "float": float, "list": list, "dict": dict, "set": set}
_TAG = "__t"


def allow(*classes: type) -> None:
    """Let states hold objects of `classes` too (the engine registers its own window types)."""
    for cls in classes:
        name = f"{cls.__module__}.{cls.__qualname__}"
        ALLOWED[name] = cls
        _NAMES[cls] = name


def encode(value: Any) -> bytes:
    """`value` as MessagePack; raises StateError for anything outside the format."""
    return msgspec.msgpack.encode(_to_tree(value))


def decode(blob: bytes) -> Any:
    """The value `encode` wrote; raises StateError for anything else."""
    try:
        return _from_tree(msgspec.msgpack.decode(blob))
    except StateError:
        raise
    except Exception as exc:  # malformed bytes or shapes: the state is unusable, never half-used
        raise StateError(f"not an engine state: {type(exc).__name__}: {exc}") from exc


def _to_tree(v: Any) -> Any:
    if isinstance(v, np.generic):  # before the plain types: numpy.float64 is a float subclass
        return _to_tree(v.item())
    if v is None or isinstance(v, bool | int | float | str | bytes):
        return v
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject:
            raise StateError("numpy arrays of Python objects are not part of the state format")
        return {_TAG: "nd", "dtype": v.dtype.str, "shape": list(v.shape), "data": np.ascontiguousarray(v).tobytes()}
    if isinstance(v, list):
        return [_to_tree(x) for x in v]
    if isinstance(v, tuple):
        return {_TAG: "tuple", "v": [_to_tree(x) for x in v]}
    if isinstance(v, set | frozenset):
        return {_TAG: type(v).__name__, "v": [_to_tree(x) for x in v]}
    if isinstance(v, deque):
        return {_TAG: "deque", "v": [_to_tree(x) for x in v], "maxlen": v.maxlen}
    if isinstance(v, defaultdict):
        factory = next((k for k, f in _FACTORIES.items() if f is v.default_factory), None)
        if factory is None:
            raise StateError(f"a defaultdict of {v.default_factory!r} is not part of the state format")
        return {_TAG: "defaultdict", "factory": factory, "v": [[_to_tree(k), _to_tree(x)] for k, x in v.items()]}
    if isinstance(v, dict):
        if all(isinstance(k, str) and k != _TAG for k in v):
            return {k: _to_tree(x) for k, x in v.items()}
        return {_TAG: "dict", "v": [[_to_tree(k), _to_tree(x)] for k, x in v.items()]}
    if type(v) is random.Random:
        return {_TAG: "random", "state": _to_tree(v.getstate())}
    if isinstance(v, _RUST_ADWIN):
        reduced: Any = v.__reduce_ex__(2)  # (__newobj__, (class, *numbers), bytes)
        args, state = reduced[1], reduced[2]
        return {_TAG: "adwin", "args": _to_tree(tuple(args[1:])), "state": state}
    name = _NAMES.get(type(v))
    if name is None:
        raise StateError(f"{type(v).__module__}.{type(v).__qualname__} is not an allowed state class")
    return {_TAG: "obj", "cls": name, "attrs": {k: _attr(v, k, x) for k, x in _attributes(v).items()}}


def _attributes(v: Any) -> dict[str, Any]:
    if hasattr(v, "__dict__"):
        derived = getattr(type(v), "_state_derived", ())  # rebuilt by the object from the rest when read back
        return {k: x for k, x in vars(v).items() if k not in derived}
    slots = [s for cls in type(v).__mro__ for s in getattr(cls, "__slots__", ())]
    return {s: getattr(v, s) for s in slots if hasattr(v, s)}


def _attr(owner: Any, name: str, value: Any) -> Any:
    if isinstance(value, types.MethodType) and value.__self__ is owner:
        return {_TAG: "selfmethod", "name": value.__func__.__name__}
    return _to_tree(value)


def _from_tree(t: Any) -> Any:
    if isinstance(t, list):
        return [_from_tree(x) for x in t]
    if not isinstance(t, dict):
        return t
    tag = t.get(_TAG)
    if tag is None:
        return {k: _from_tree(x) for k, x in t.items()}
    if tag == "nd":
        return np.frombuffer(t["data"], dtype=_plain_dtype(t["dtype"])).reshape(t["shape"]).copy()
    if tag == "tuple":
        return tuple(_from_tree(x) for x in t["v"])
    if tag in ("set", "frozenset"):
        items = [_from_tree(x) for x in t["v"]]
        return set(items) if tag == "set" else frozenset(items)
    if tag == "deque":
        return deque((_from_tree(x) for x in t["v"]), maxlen=t["maxlen"])
    if tag == "defaultdict":
        out: defaultdict[Any, Any] = defaultdict(_FACTORIES[t["factory"]])
        out.update((_from_tree(k), _from_tree(x)) for k, x in t["v"])
        return out
    if tag == "dict":
        return {_from_tree(k): _from_tree(x) for k, x in t["v"]}
    if tag == "random":
        rng = random.Random()
        rng.setstate(_from_tree(t["state"]))
        return rng
    if tag == "adwin":
        args = _from_tree(t["args"])
        if not all(isinstance(a, int | float) for a in args):
            raise StateError("ADWIN's parameters must be numbers")
        window = _RUST_ADWIN(*args)
        window.__setstate__(bytes(t["state"]))
        return window
    if tag == "obj":
        return _build(t)
    raise StateError(f"unknown tag {tag!r}")


def _build(t: dict[str, Any]) -> Any:
    cls = ALLOWED.get(t["cls"])
    if cls is None:
        raise StateError(f"{t['cls']!r} is not an allowed state class")
    obj: Any = object.__new__(cls)
    methods = {}
    for name, raw in t["attrs"].items():
        if isinstance(raw, dict) and raw.get(_TAG) == "selfmethod":
            methods[name] = raw["name"]
        else:
            object.__setattr__(obj, name, _from_tree(raw))
    for name, method in methods.items():
        bound = getattr(obj, method, None)
        if not isinstance(bound, types.MethodType):
            raise StateError(f"{t['cls']} has no method {method!r}")
        object.__setattr__(obj, name, bound)
    return obj


def _plain_dtype(text: str) -> np.dtype[Any]:
    dtype = np.dtype(text)
    if dtype.hasobject:
        raise StateError("numpy arrays of Python objects are not part of the state format")
    return dtype
