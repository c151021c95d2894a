"""One model version's predictions, as the monitoring engine reads them: column by column.

Two forms give the same columns. `EventBatch` wraps Prediction objects (single JSON events,
JSON arrays) and takes each column out of them with C-level getters; `ColumnBatch` holds
the columns of columnar envelopes as they were decoded, so the engine never makes one
object per event for them. The engine computes the same numbers from either (tested).
"""

from __future__ import annotations

import array
import itertools
import math
import operator
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from driftline.events import ColumnarEvents, Prediction

_FEATURES = operator.attrgetter("features")
_TS = operator.attrgetter("ts")
_EVENT_ID = operator.attrgetter("event_id")
_PREDICTION = operator.attrgetter("prediction")
_SCORE = operator.attrgetter("score")
_CLASS_SCORES = operator.attrgetter("class_scores")
_LATENCY = operator.attrgetter("latency_ms")
_KPIS = operator.attrgetter("kpis")
_MODEL = operator.attrgetter("model")
_VERSION = operator.attrgetter("version")

VersionKey = tuple[str, str]


def gather(values: Sequence[Any], index: list[int]) -> list[Any]:
    """``[values[i] for i in index]`` with the loop in C."""
    if len(index) == 1:
        return [values[index[0]]]
    return list(operator.itemgetter(*index)(values)) if index else []


def as_float(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    """Numbers as float64 (None -> NaN); strings count as type violations and become NaN."""
    x, bad = _floats(values)
    return x, 0 if bad is None else int(bad.sum())


#: The types `_floats` converts as a whole (None: NaN, a missing value); any other is a type violation.
_NUMBERS_OR_NONE = frozenset({float, int, bool, type(None)})


def _floats(values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """`as_float`, with where the values were not numbers (None: nowhere, the usual case).

    ``array.array`` takes numbers only: numpy would parse a text such as ``"1.5"`` into a number,
    so a numeric-looking text would count as a violation or not depending on the other values
    of its batch.
    """
    try:
        return np.frombuffer(array.array("d", values), dtype=np.float64), None
    except TypeError:  # None (a missing value), a text, a list
        pass
    if set(map(type, values)) <= _NUMBERS_OR_NONE:
        return np.array(values, dtype=np.float64), None
    bad = np.array([not (v is None or isinstance(v, (int, float))) for v in values], dtype=bool)
    clean = [np.nan if b else v for v, b in zip(values, bad.tolist(), strict=True)]
    return np.array(clean, dtype=np.float64), bad


#: Events per step of `EventBatch`'s reads: the maps and values of 512 events with a dozen
#: features (~0.6 MB) stay in a 2 MB L2 cache between a step's passes (256 and 2,048 measured
#: within noise of it: `bench/batch_reader_ab.py --sweep`).
_SWEEP = 512


#: What `EventBatch` takes out of every event, in one sweep: ts, event_id, prediction, score,
#: latency_ms and the KPI maps (`EventBatch._column` reads them by position).
_SCALARS = (_TS, _EVENT_ID, _PREDICTION, _SCORE, _LATENCY, _KPIS)


def _swept(items: Sequence[Any], getters: Sequence[operator.attrgetter[Any]]) -> list[list[Any]]:
    """``[list(map(get, items)) for get in getters]``, `_SWEEP` items at a time: each getter after
    the first reads objects the first brought into the CPU's cache."""
    out: list[list[Any]] = [[] for _ in getters]
    for start in range(0, len(items), _SWEEP):
        part = items[start : start + _SWEEP]
        for values, get in zip(out, getters, strict=True):
            values += map(get, part)
    return out


def _transposed(maps: list[dict[str, Any]], names: list[str]) -> list[Sequence[Any]]:
    """The values of `names` in each map, one tuple per name (None where a map lacks it)."""
    if len(names) == 1:
        return [tuple(map(operator.methodcaller("get", names[0]), maps))]
    try:
        rows = list(map(operator.itemgetter(*names), maps))
    except KeyError:  # some map lacks a name: None there
        rows = [tuple(map(m.get, names)) for m in maps]
    return list(zip(*rows, strict=True)) if rows else [() for _ in names]


def _split(models: list[str], versions: list[str]) -> dict[VersionKey, list[int]]:
    """The positions of each (model, version), in order of first appearance.

    Codes come from the texts (whose hashes Python keeps on each string), not from (model,
    version) tuples, which are hashed anew on every lookup: 5 instead of 13 ms per 20,000 events.

    >>> _split(["a", "b", "a", "a"], ["1", "1", "2", "1"])
    {('a', '1'): [0, 3], ('b', '1'): [1], ('a', '2'): [2]}
    """
    n = len(models)
    model_code = {m: i for i, m in enumerate(dict.fromkeys(models))}
    # One version among several models (usual): no pass hashes the versions (each event's is a
    # string object of its own, so every lookup hashes and compares it anew).
    one_version = versions.count(versions[0]) == n
    version_code = {versions[0]: 0} if one_version else {v: i for i, v in enumerate(dict.fromkeys(versions))}
    width = len(version_code)
    codes = np.fromiter(map(model_code.__getitem__, models), dtype=np.int64, count=n)
    if not one_version:
        codes *= width
        codes += np.fromiter(map(version_code.__getitem__, versions), dtype=np.int64, count=n)
    present, first = np.unique(codes, return_index=True)
    model_of, version_of = list(model_code), list(version_code)
    return {
        (model_of[c // width], version_of[c % width]): np.flatnonzero(codes == c).tolist()
        for c in present[np.argsort(first)].tolist()
    }


class PredictionBatch(Protocol):
    """What the engine reads of a batch; every column is in the batch's event order."""

    n: int

    def ts(self) -> np.ndarray: ...
    def take(self, index: list[int]) -> PredictionBatch: ...
    def head(self, k: int) -> PredictionBatch: ...
    def event_ids(self) -> list[str]: ...
    def predictions(self) -> list[Any]: ...
    def prediction_counts(self) -> Counter[Any]: ...
    def scores(self) -> list[float | None]: ...
    def class_scores(self) -> tuple[list[str], np.ndarray]: ...
    def latency(self) -> np.ndarray: ...
    def kpi_sums(self) -> dict[str, float]: ...
    def feature_names(self) -> set[str]: ...
    def feature_columns(self, names: list[str]) -> list[Sequence[Any]]: ...
    def typed_columns(
        self, numeric: list[str], other: list[str]
    ) -> tuple[list[tuple[np.ndarray, int]], list[Sequence[Any]]]: ...
    def feature_rows(self) -> list[dict[str, Any]]: ...
    def attribute(self, name: str) -> list[str | None]: ...


class _CountsPredictions:
    """`prediction_counts` from `predictions`, counted once per batch (several families read it)."""

    _prediction_counts: Counter[Any] | None = None

    def predictions(self) -> list[Any]:
        raise NotImplementedError

    def prediction_counts(self) -> Counter[Any]:
        """How many events predicted each value (None too), counted once: read it, do not change it."""
        if self._prediction_counts is None:
            self._prediction_counts = Counter(self.predictions())
        return self._prediction_counts


class EventBatch(_CountsPredictions):
    """Prediction objects; their columns are taken out of them in one sweep when first asked for."""

    def __init__(self, events: list[Prediction]):
        self.events = events
        self.n = len(events)
        self._columns: list[list[Any]] | None = None

    @staticmethod
    def by_version(events: Sequence[Prediction]) -> dict[VersionKey, EventBatch]:
        """The events of each (model, version), in arrival order (the loops over events run in C)."""
        if not events:
            return {}
        models, versions = _swept(events, (_MODEL, _VERSION))
        if models.count(models[0]) == len(models) and versions.count(versions[0]) == len(versions):
            return {(models[0], versions[0]): EventBatch(list(events))}  # one version (usual): no grouping
        return {key: EventBatch(gather(events, index)) for key, index in _split(models, versions).items()}

    def _column(self, position: int) -> list[Any]:
        """A column of `_SCALARS`; the first call takes them all (each family reads some of them)."""
        if self._columns is None:
            self._columns = _swept(self.events, _SCALARS)
        return self._columns[position]

    def ts(self) -> np.ndarray:
        return np.array(self._column(0), dtype=np.float64)

    def take(self, index: list[int]) -> EventBatch:
        return EventBatch(gather(self.events, index))

    def head(self, k: int) -> EventBatch:
        return EventBatch(self.events[:k])

    def event_ids(self) -> list[str]:
        """The event ids (the same list on every call: read it, do not change it)."""
        return self._column(1)

    def predictions(self) -> list[Any]:
        """The predictions (the same list on every call: read it, do not change it)."""
        return self._column(2)

    def scores(self) -> list[float | None]:
        """The scores (the same list on every call: read it, do not change it)."""
        return self._column(3)

    def class_scores(self) -> tuple[list[str], np.ndarray]:
        """The classes named in the events' class_scores and an events x classes matrix (NaN: not named)."""
        maps = list(map(_CLASS_SCORES, self.events))
        names = sorted(set().union(*maps))
        if not names:
            return [], np.empty((self.n, 0))
        try:
            rows = list(map(operator.itemgetter(*names), maps))  # every event names every class: in C
        except KeyError:
            rows = [tuple(m.get(c, math.nan) for c in names) for m in maps]
        return names, np.array(rows, dtype=np.float64).reshape(self.n, len(names))

    def latency(self) -> np.ndarray:
        return np.array(self._column(4), dtype=np.float64)  # None -> NaN

    def kpi_sums(self) -> dict[str, float]:
        """Each KPI summed in event order (Python's sum, carried from step to step: the same float
        as one sum over the batch), named in order of first appearance."""
        kpis = self._column(5)
        out: dict[str, float] = {}
        for start in range(0, self.n, _SWEEP):
            part = kpis[start : start + _SWEEP]
            first = part[0]
            if first and list(map(len, part)).count(len(first)) == len(part):
                # As many KPIs in every event as in the first (usual): if each has the first's, they
                # are all the same names, and no pass over every map's names is needed.
                try:
                    out.update({name: sum(map(operator.itemgetter(name), part), out.get(name, 0)) for name in first})
                    continue
                except KeyError:  # some event names others
                    pass
            for name in dict.fromkeys(itertools.chain.from_iterable(part)):  # in order of first appearance
                out[name] = sum(map(operator.methodcaller("get", name, 0.0), part), out.get(name, 0))
        return out

    def feature_names(self) -> set[str]:
        return {n for e in self.events for n in e.features}

    def attribute(self, name: str) -> list[str | None]:
        return [e.attributes.get(name) for e in self.events]

    def feature_columns(self, names: list[str]) -> list[Sequence[Any]]:
        """Feature columns as taken (None where absent), read as `typed_columns` reads them."""
        return self.typed_columns([], names)[1]

    def typed_columns(
        self, numeric: list[str], other: list[str]
    ) -> tuple[list[tuple[np.ndarray, int]], list[Sequence[Any]]]:
        """The `numeric` features as float64 with their count of non-numbers, the `other` as taken.

        Read `_SWEEP` events at a time: each feature map is read, its values transposed and the
        numbers converted while they are still in the CPU's cache (one pass of each step over
        the whole batch read every value from memory three times; BENCHMARKS.md). `as_float`
        reads each value on its own, so converting part by part gives what converting the
        whole column gives."""
        names = numeric + other
        if not names:
            return [], []
        features = list(map(_FEATURES, self.events))
        k = len(numeric)
        parts: list[list[np.ndarray]] = [[] for _ in numeric]
        bad = [0] * k
        others: list[list[Any]] = [[] for _ in other]
        for start in range(0, self.n, _SWEEP):
            columns = _transposed(features[start : start + _SWEEP], names)
            for j in range(k):
                x, b = as_float(columns[j])
                parts[j].append(x)
                bad[j] += b
            for values, column in zip(others, columns[k:], strict=True):
                values += column
        empty: np.ndarray = np.empty(0, dtype=np.float64)
        floats = [(np.concatenate(p) if p else empty, b) for p, b in zip(parts, bad, strict=True)]
        return floats, list(others)

    def feature_rows(self) -> list[dict[str, Any]]:
        return list(map(_FEATURES, self.events))


class ColumnBatch(_CountsPredictions):
    """Columns of columnar envelopes (one model version's events); nothing per event is made."""

    def __init__(
        self,
        ts: np.ndarray,
        event_id: list[str],
        prediction: list[Any],
        score: list[float | None],
        latency: list[float | None],
        kpis: dict[str, list[float]],
        features: dict[str, list[Any]],
        attributes: dict[str, list[Any]] | None = None,
        class_scores: dict[str, list[float]] | None = None,
    ):
        self.n = len(event_id)
        self._ts, self._event_id, self._prediction, self._score = ts, event_id, prediction, score
        self._latency, self._kpis, self._features = latency, kpis, features
        self._attributes = attributes or {}
        self._class_scores = class_scores or {}
        # numbers converted once: the views of several versions and windows gather from them
        self._floats: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        self._latency_array: np.ndarray | None = None

    @staticmethod
    def by_version(envelopes: Sequence[ColumnarEvents]) -> dict[VersionKey, ColumnBatch | ColumnSlice]:
        """The events of each (model, version) in the envelopes, in arrival order, as columns."""
        if not envelopes:
            return {}
        # An envelope usually holds one version (the SDK sends one per model): list.count (C) says
        # so, and its key is taken once, not zipped event by event (that loop was 0.08 s of 0.5 s
        # for 100,000 events). Such envelopes are grouped by version and joined, nothing gathered.
        envelopes = [e for e in envelopes if e.n]
        groups: dict[VersionKey, list[ColumnBatch]] = {}
        for envelope in envelopes:
            ms, vs, n = envelope.columns.model, envelope.columns.version, envelope.n
            if ms.count(ms[0]) != n or vs.count(vs[0]) != n:
                break  # this one mixes versions
            groups.setdefault((ms[0], vs[0]), []).append(ColumnBatch.of(envelope))
        else:
            return {key: p[0] if len(p) == 1 else ColumnBatch.concat(p) for key, p in groups.items()}
        # Envelopes that mix versions: one batch, then a view per version (`ColumnSlice`) that
        # gathers only the columns the engine reads, numbers with one numpy gather each.
        parts = [ColumnBatch.of(e) for e in envelopes]
        whole = parts[0] if len(parts) == 1 else ColumnBatch.concat(parts)
        models: list[str] = []
        versions: list[str] = []
        for envelope in envelopes:
            models += envelope.columns.model
            versions += envelope.columns.version
        return {
            key: ColumnSlice(whole, np.asarray(index, dtype=np.intp)) for key, index in _split(models, versions).items()
        }

    @staticmethod
    def of(envelope: ColumnarEvents) -> ColumnBatch:
        cols, n = envelope.columns, envelope.n
        return ColumnBatch(
            np.asarray(cols.ts, dtype=np.float64),
            cols.event_id,
            cols.prediction,
            cols.score if cols.score is not None else [None] * n,
            cols.latency_ms if cols.latency_ms is not None else [None] * n,
            cols.kpis,
            cols.features,
            cols.attributes,
            cols.class_scores,
        )

    @staticmethod
    def concat(parts: list[ColumnBatch]) -> ColumnBatch:
        """The parts one after the other; a feature or KPI some part lacks is None (0.0 for a KPI) there."""

        def joined(section: str, fill: Any) -> dict[str, list[Any]]:
            names = dict.fromkeys(name for p in parts for name in getattr(p, section))
            out: dict[str, list[Any]] = {}
            for name in names:
                column: list[Any] = []
                for p in parts:
                    values = getattr(p, section).get(name)
                    column += values if values is not None else [fill] * p.n
                out[name] = column
            return out

        def chain(attr: str) -> list[Any]:
            out: list[Any] = []
            for p in parts:
                out += getattr(p, attr)
            return out

        return ColumnBatch(
            np.concatenate([p._ts for p in parts]),
            chain("_event_id"),
            chain("_prediction"),
            chain("_score"),
            chain("_latency"),
            joined("_kpis", 0.0),
            joined("_features", None),
            joined("_attributes", None),
            joined("_class_scores", math.nan),  # an envelope without class scores: NaN, not scored
        )

    def ts(self) -> np.ndarray:
        return self._ts

    def take(self, index: list[int]) -> ColumnSlice:
        return ColumnSlice(self, np.asarray(index, dtype=np.intp))

    def head(self, k: int) -> ColumnSlice:
        return self.take(list(range(min(k, self.n))))

    def event_ids(self) -> list[str]:
        return self._event_id

    def predictions(self) -> list[Any]:
        return self._prediction

    def scores(self) -> list[float | None]:
        return self._score

    def class_scores(self) -> tuple[list[str], np.ndarray]:
        names = sorted(self._class_scores)
        if not names:
            return [], np.empty((self.n, 0))
        return names, np.array([self._class_scores[c] for c in names], dtype=np.float64).T

    def latency(self) -> np.ndarray:
        if self._latency_array is None:
            self._latency_array = np.array(self._latency, dtype=np.float64)  # None -> NaN
        return self._latency_array

    def kpi_sums(self) -> dict[str, float]:
        return {name: sum(values) for name, values in self._kpis.items()}

    def feature_names(self) -> set[str]:
        return set(self._features)

    def attribute(self, name: str) -> list[str | None]:
        return self._attributes.get(name, [None] * self.n)

    def feature_columns(self, names: list[str]) -> list[Sequence[Any]]:
        empty: list[None] = [None] * self.n
        return [self._features.get(name, empty) for name in names]

    def float_feature(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """A feature as float64 (NaN where absent or not a number) and where it was not a number
        (None: nowhere); converted once, so read it, do not change it."""
        got = self._floats.get(name)
        if got is None:
            values = self._features.get(name)
            got = self._floats[name] = _floats(values) if values is not None else (np.full(self.n, np.nan), None)
        return got

    def numbers(self, names: list[str], index: np.ndarray | None = None) -> list[tuple[np.ndarray, int]]:
        """Features as float64 with their count of non-numbers, of the events at `index` (None: all)."""
        out = []
        for name in names:
            x, bad = self.float_feature(name)
            if index is not None:
                x, bad = x[index], None if bad is None else bad[index]
            out.append((x, 0 if bad is None else int(bad.sum())))
        return out

    def typed_columns(
        self, numeric: list[str], other: list[str]
    ) -> tuple[list[tuple[np.ndarray, int]], list[Sequence[Any]]]:
        return self.numbers(numeric), self.feature_columns(other)

    def feature_rows(self) -> list[dict[str, Any]]:
        names = list(self._features)
        if not names:
            return [{} for _ in range(self.n)]
        return [dict(zip(names, values, strict=True)) for values in zip(*self._features.values(), strict=True)]


class ColumnSlice(_CountsPredictions):
    """Some events of a `ColumnBatch` (one version's, one window's), read through its index: a
    column is gathered only when the engine reads it, and a number column is one numpy gather
    of the batch's float64 conversion (made once for every version and window of the batch)."""

    def __init__(self, source: ColumnBatch, index: np.ndarray):
        self._source, self._index = source, index
        self._positions: list[int] = index.tolist()
        self.n = len(self._positions)
        self._event_ids: list[str] | None = None
        self._predictions: list[Any] | None = None

    def _gather(self, values: Sequence[Any]) -> list[Any]:
        return gather(values, self._positions)

    def ts(self) -> np.ndarray:
        ts: np.ndarray = self._source.ts()[self._index]
        return ts

    def take(self, index: list[int]) -> ColumnSlice:
        return ColumnSlice(self._source, self._index[np.asarray(index, dtype=np.intp)])

    def head(self, k: int) -> ColumnSlice:
        return self.take(list(range(min(k, self.n))))

    def event_ids(self) -> list[str]:
        if self._event_ids is None:
            self._event_ids = self._gather(self._source.event_ids())
        return self._event_ids

    def predictions(self) -> list[Any]:
        """The predictions (the same list on every call: read it, do not change it)."""
        if self._predictions is None:
            self._predictions = self._gather(self._source.predictions())
        return self._predictions

    def scores(self) -> list[float | None]:
        return self._gather(self._source.scores())

    def class_scores(self) -> tuple[list[str], np.ndarray]:
        names, scores = self._source.class_scores()
        return names, scores[self._index]

    def latency(self) -> np.ndarray:
        latency: np.ndarray = self._source.latency()[self._index]
        return latency

    def kpi_sums(self) -> dict[str, float]:
        # summed as the source sums (Python's sum in event order): the same floats as a batch of these events
        return {name: sum(self._gather(values)) for name, values in self._source._kpis.items()}

    def feature_names(self) -> set[str]:
        return self._source.feature_names()

    def attribute(self, name: str) -> list[str | None]:
        values = self._source._attributes.get(name)
        return self._gather(values) if values is not None else [None] * self.n

    def feature_columns(self, names: list[str]) -> list[Sequence[Any]]:
        return [self._gather(column) for column in self._source.feature_columns(names)]

    def typed_columns(
        self, numeric: list[str], other: list[str]
    ) -> tuple[list[tuple[np.ndarray, int]], list[Sequence[Any]]]:
        return self._source.numbers(numeric, self._index), self.feature_columns(other)

    def feature_rows(self) -> list[dict[str, Any]]:
        names = list(self._source._features)
        if not names:
            return [{} for _ in range(self.n)]
        columns = self.feature_columns(names)
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
