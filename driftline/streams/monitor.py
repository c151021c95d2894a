"""The monitoring engine: event-time windows of drift and data-quality metrics per (model, version).

Pure (no I/O): the worker hands it each ingested batch and stores the metric rows it
returns. Windows are tumbling, on event time; a window closes when the watermark (the
largest event time seen for the model version, minus the allowed lateness) passes its
end. An event for a window that has closed is counted as dropped, not silently merged.

A model version without a registered reference profile gets one from its first
``reference_events`` predictions, so every model gets drift and data-quality metrics
without configuration.

State is bounded: per open window, fixed-size count arrays per feature and a fixed
latency histogram; the reference buffer holds at most ``reference_events`` rows.

>>> from driftline.events import ColumnarEvents, Prediction, canonical_target
>>> eng = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=100)
>>> batch = [Prediction(event_id=str(i), model="m", version="v1", ts=1_700_000_000.0 + i,
...                     features={"x": float(i % 10)}, prediction=1) for i in range(300)]
>>> rows = eng.update(batch)
>>> sorted({r.metric for r in rows if r.feature == "x"})[:4]
['js', 'ks', 'ks_error_bound', 'ks_pvalue']
"""

from __future__ import annotations

import copy
import logging
import math
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from driftline.events import ColumnarEvents, Prediction, canonical_target
from driftline.metrics.cbpe import EstimatedClassQuality, EstimatedQuality
from driftline.metrics.data_quality import DuplicateTracker
from driftline.metrics.detectors import MeanShiftDetector, WindowSignalDetector
from driftline.metrics.drift import CategoricalDrift, NumericDrift, drift_share
from driftline.metrics.embeddings import EmbeddingDrift, vectors_of
from driftline.metrics.plugins import FAMILY as PLUGIN_FAMILY
from driftline.metrics.plugins import PluginBatch, PluginSpec, rows_of
from driftline.metrics.profiles import PREDICTION, SCORE, ReferenceProfile, reconstruction_error_sum
from driftline.metrics.rows import MetricRow, SketchRow
from driftline.metrics.segments import TopK
from driftline.spec import ModelSpec, MonitorSpec
from driftline.streams import state_codec
from driftline.streams.prediction_batch import ColumnBatch, EventBatch, PredictionBatch, as_float

#: Latency histogram: log-spaced bins from 1 us to ~17 min; percentiles within +-2.4 %.
_LAT_EDGES = np.logspace(-3, 6, 901)
#: Bumped when the engine state changes shape; older checkpoints are then ignored. 3: MessagePack
#: (state_codec.py) instead of pickle, without the spec (the running spec applies on restore).
CHECKPOINT_FORMAT = 3
#: Sketches of closed windows kept for take_sketches(): the worker takes them after every
#: batch; a driver that never does still has bounded memory (the oldest are dropped).
MAX_PENDING_SKETCHES = 50_000

log = logging.getLogger(__name__)


@dataclass
class _Window:
    start: float = 0.0
    n: int = 0
    drift: dict[str, NumericDrift | CategoricalDrift] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    type_violations: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    out_of_range: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency: np.ndarray = field(default_factory=lambda: np.zeros(_LAT_EDGES.size + 1, dtype=np.int64))
    latency_n: int = 0
    kpi_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    predicted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    value_sum: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # numeric features with drift
    value_n: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pca_error_sum: float = 0.0  # multivariate drift: reconstruction error against the reference's PCA
    pca_rows: int = 0
    plugins: dict[str, Any] = field(default_factory=dict)  # custom metrics (metrics/plugins.py) by name
    # quality estimated from calibrated scores (metrics/cbpe.py): binary, or multiclass one vs the rest
    estimated: EstimatedQuality | EstimatedClassQuality | None = None
    segments: dict[str, _Window] = field(default_factory=dict)  # per segment label (metrics/segments.py)
    embeddings: dict[str, EmbeddingDrift] = field(default_factory=dict)  # vector features (metrics/embeddings.py)
    segment_top: dict[str, list[str]] = field(default_factory=dict)  # attribute values with a segment here
    # False for a window that opened before its version had a reference profile (the bootstrap
    # period): it gets data-quality metrics but no drift, since drift of the part after the
    # profile appeared would be computed from a handful of events and look like a shift.
    profiled: bool = True
    complete: bool = True  # spread models' parts: False for a share closed at shutdown (flush)


def _merge(panes: list[_Window]) -> _Window:
    """A new window holding the sum of `panes` (which are left as they are)."""
    out = _Window(start=panes[0].start, profiled=all(p.profiled for p in panes))
    for p in panes:
        out.n += p.n
        for name, drift in p.drift.items() if out.profiled else ():
            if name in out.drift:
                out.drift[name].merge(drift)  # type: ignore[arg-type]
            else:
                out.drift[name] = copy.deepcopy(drift)
        for target, source in (
            (out.missing, p.missing),
            (out.type_violations, p.type_violations),
            (out.out_of_range, p.out_of_range),
            (out.kpi_sum, p.kpi_sum),
            (out.predicted, p.predicted),
            (out.value_sum, p.value_sum),
            (out.value_n, p.value_n),
        ):
            for key, value in source.items():
                target[key] += value  # type: ignore[index,assignment]
        out.latency = out.latency + p.latency
        out.latency_n += p.latency_n
        out.duplicates += p.duplicates
        out.pca_error_sum += p.pca_error_sum
        out.pca_rows += p.pca_rows
        if p.estimated is not None and out.profiled:
            if out.estimated is None:
                out.estimated = copy.deepcopy(p.estimated)
            else:
                out.estimated.merge(p.estimated)  # type: ignore[arg-type]
        for name, top in p.segment_top.items():
            out.segment_top.setdefault(name, top)
        for name, emb in p.embeddings.items() if out.profiled else ():
            if name in out.embeddings:
                out.embeddings[name].merge(emb)
            else:
                out.embeddings[name] = copy.deepcopy(emb)
        for name, plugin in p.plugins.items():
            if name in out.plugins:
                out.plugins[name].merge(plugin)
            else:
                out.plugins[name] = copy.deepcopy(plugin)
    for label in sorted({label for p in panes for label in p.segments}):
        out.segments[label] = _merge([p.segments[label] for p in panes if label in p.segments])
    return out


@dataclass
class _VersionState:
    spec: ModelSpec = field(default_factory=ModelSpec)
    profile: ReferenceProfile | None = None
    reference_rows: list[dict[str, Any]] = field(default_factory=list)
    windows: dict[float, _Window] = field(default_factory=dict)  # open panes by start (a pane = a slide)
    closed: deque[_Window] = field(default_factory=deque)  # the last closed panes, for sliding windows
    detectors: dict[str, WindowSignalDetector] = field(default_factory=dict)  # per feature
    mean_detectors: dict[str, MeanShiftDetector] = field(default_factory=dict)  # per numeric feature
    watermark: float = -math.inf
    dropped_late: int = 0
    duplicates: DuplicateTracker = field(default_factory=DuplicateTracker)
    segment_counts: dict[str, TopK] = field(default_factory=dict)  # per attribute segment: its largest values
    parts_from: float = -math.inf  # spread models: the start of the first pane not yet sent as a part


state_codec.allow(_Window, _VersionState)


@dataclass(frozen=True)
class WindowPart:
    """One worker's share of a spread model's window (spec ``partition_key``): its pane state, to be
    merged with the other workers' shares by the window's owner (streams/window_parts.py).
    ``n == 0`` says this worker's partitions had no event in the window (so the owner knows)."""

    model: str
    version: str
    start: float
    end: float
    n: int
    complete: bool
    state: bytes


#: At most this many empty parts per version and close (a worker idle for longer reports the newest).
MAX_EMPTY_PARTS = 1000


_FACTORIES: dict[tuple[str, str, bool, str], Callable[[], Any]] = {}


def _plugin_factory(plugin: PluginSpec) -> Callable[[], Any]:
    """The plugin's constructor, loaded once; its class may then appear in checkpoints."""
    key = (plugin.name, plugin.target, plugin.entry_point, repr(sorted(plugin.params.items())))
    factory = _FACTORIES.get(key)
    if factory is None:
        factory = _FACTORIES[key] = plugin.factory()
        state_codec.allow(plugin.load())
    return factory


def _counts_by_text(counts: Mapping[Any, int], text: Callable[[Any], str] = str) -> dict[str, int]:
    """Counts per value's text, None left out, from counts per value (loops over distinct values).

    `str` for the prediction shares; `canonical_target` for the prediction's drift, as
    `_target_columns` gives (values that compare equal, 1, 1.0 and True, were counted as one and
    share one canonical text anyway)."""
    out: dict[str, int] = {}
    for value, count in counts.items():
        if value is not None:
            key = value if isinstance(value, str) else text(value)
            out[key] = out.get(key, 0) + count
    return out


def _target_kinds(spec: ModelSpec) -> dict[str, str]:
    return {SCORE: "numeric", PREDICTION: "numeric" if spec.task == "regression" else "categorical"}


def _target_columns(batch: PredictionBatch, spec: ModelSpec) -> dict[str, list[Any]]:
    """The score and the prediction as columns, profiled and drift-checked like features."""
    raw = batch.predictions()
    if spec.task == "regression":
        prediction: list[Any] = [None if isinstance(p, str) else p for p in raw]
    else:
        # Few distinct classes: compute each one's text once. Values that compare equal (1, 1.0, True)
        # share one text anyway, so keying the memo by value is safe.
        memo = {p: canonical_target(p) for p in set(raw)}
        prediction = list(map(memo.__getitem__, raw))
    return {SCORE: batch.scores(), PREDICTION: prediction}


def _nones(values: Sequence[Any]) -> int:
    """How many values are None, in a list or tuple (list.count, C) or an object array (one ufunc)."""
    if isinstance(values, np.ndarray):
        return int(np.equal(values, None).sum())
    return values.count(None)


class MonitoringEngine:
    """Windows of drift and data-quality metrics; `update()` returns rows of windows that closed."""

    def __init__(
        self,
        spec: MonitorSpec | None = None,
        reference_events: int = 2000,
        profiles: Mapping[tuple[str, str], ReferenceProfile] | None = None,
        window_s: int | None = None,
        allowed_lateness_s: int | None = None,
        checkpoints: Callable[[str, str], bytes | None] | None = None,
    ):
        """`window_s` and `allowed_lateness_s`, when given, replace the spec's defaults."""
        if (window_s is not None and window_s <= 0) or (allowed_lateness_s is not None and allowed_lateness_s < 0):
            raise ValueError("window_s > 0 and allowed_lateness_s >= 0 are required")
        if reference_events < 50:
            raise ValueError("reference_events >= 50 is required")
        spec = spec or MonitorSpec()
        if window_s is not None or allowed_lateness_s is not None:
            spec = MonitorSpec(
                defaults=replace(
                    spec.defaults,
                    window_s=window_s or spec.defaults.window_s,
                    allowed_lateness_s=spec.defaults.allowed_lateness_s
                    if allowed_lateness_s is None
                    else allowed_lateness_s,
                ),
                models=spec.models,
            )
        self.spec = spec
        self.reference_events = reference_events
        self._state: dict[tuple[str, str], _VersionState] = {}
        self._sketches: deque[SketchRow] = deque(maxlen=MAX_PENDING_SKETCHES)  # closed since take_sketches()
        self.sketches_dropped = 0  # oldest pending sketches dropped because nobody took them
        self._new_profiles: list[ReferenceProfile] = []  # built from first events since take_profiles()
        self._parts: list[WindowPart] = []  # spread models' closed panes since take_parts()
        self._checkpoints = checkpoints  # (model, version) -> a state saved by checkpoint(), once
        for model_spec in (spec.defaults, *spec.models.values()):
            for plugin in model_spec.plugins:
                _plugin_factory(plugin)  # loaded now: a restored checkpoint may hold its states
        for key, profile in (profiles or {}).items():
            self._version(key).profile = profile

    def _version(self, key: tuple[str, str]) -> _VersionState:
        state = self._state.get(key)
        if state is None:
            state = self._restored(key) or _VersionState(spec=self.spec.for_model(key[0]))
            self._state[key] = state
        return state

    def checkpoint(self) -> dict[tuple[str, str], bytes]:
        """Every version's state, open windows included, as bytes for `restore` (take it before `flush`).

        MessagePack of plain values (state_codec.py): reading it back cannot execute anything."""
        out = {}
        for key, state in self._state.items():
            attrs = {f.name: getattr(state, f.name) for f in fields(state) if f.name != "spec"}
            shape = [state.spec.window_s, state.spec.slide_s]
            out[key] = state_codec.encode({"format": CHECKPOINT_FORMAT, "window": shape, "state": attrs})
        return out

    def snapshot(self) -> bytes:
        """The whole engine (every version's state) as one blob for `load`: what a crash-safe
        checkpoint stores beside the offsets it covers (streams/engine_checkpoint.py)."""
        versions = {f"{m}\x00{v}": blob for (m, v), blob in self.checkpoint().items()}
        return state_codec.encode({"format": CHECKPOINT_FORMAT, "versions": versions})

    def load(self, blob: bytes) -> int:
        """Take every version's state from a `snapshot`; returns how many. Only before any event."""
        data = state_codec.decode(blob)
        if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
            raise state_codec.StateError("an engine snapshot of another format")
        loaded = 0
        for name, version_blob in data["versions"].items():
            model, version = name.split("\x00", 1)
            state = self._decode_state((model, version), version_blob)
            if state is not None:
                self._state[(model, version)] = state
                loaded += 1
        return loaded

    def _restored(self, key: tuple[str, str]) -> _VersionState | None:
        if self._checkpoints is None:
            return None
        payload = self._checkpoints(*key)
        if payload is None:
            return None
        return self._decode_state(key, payload)

    def _decode_state(self, key: tuple[str, str], payload: bytes) -> _VersionState | None:
        spec = self.spec.for_model(key[0])
        try:
            data = state_codec.decode(payload)
            if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
                log.warning("checkpoint of %s %s is of another format; its open windows start afresh", *key)
                return None
            state = _VersionState(spec=spec, **data["state"])
        except (state_codec.StateError, TypeError) as exc:
            log.error("checkpoint of %s %s is unusable, ignored: %s", *key, exc)
            return None
        if list(data["window"]) != [spec.window_s, spec.slide_s]:
            state.windows.clear()  # the windows changed shape: the open ones cannot continue
            state.closed.clear()
        return state

    def set_profile(self, profile: ReferenceProfile) -> None:
        """Use `profile` as the reference of its model version from now on."""
        self._version((profile.model, profile.version)).profile = profile

    def take_profiles(self) -> list[ReferenceProfile]:
        """The reference profiles built from versions' first events since the last call, to store:
        a restarted worker then loads them instead of building new ones from later, maybe drifted,
        traffic (at most one per version; a version with a stored profile never builds one)."""
        out, self._new_profiles = self._new_profiles, []
        return out

    def take_sketches(self) -> list[SketchRow]:
        """The drift sketches of the windows closed since the last call (for ``drift_sketches``)."""
        out = list(self._sketches)
        self._sketches.clear()
        return out

    def take_parts(self) -> list[WindowPart]:
        """The window shares of spread models closed since the last call (the worker sends them to
        the window's owner, which merges them with `merge_parts`)."""
        out, self._parts = self._parts, []
        return out

    def merge_parts(
        self, model: str, version: str, start: float, end: float, states: Sequence[bytes]
    ) -> list[MetricRow]:
        """The metric rows of one window of a spread model from every worker's share (`WindowPart.state`):
        the same rows one worker that saw every event would write, where the metrics merge exactly."""
        key, spec = (model, version), self.spec.for_model(model)
        self._version(key)  # the owner may never have seen an event of this version: its profile is here
        panes = [state_codec.decode(blob) for blob in states]
        if not panes or not all(isinstance(p, _Window) for p in panes):
            raise state_codec.StateError("window parts hold no window state")
        window = _merge(panes)
        if window.n == 0:
            return []
        complete = all(p.complete for p in panes)
        rows = self._rows(key, spec, start, end, window, complete)
        for label, sub in sorted(window.segments.items()):
            rows.extend(self._rows(key, spec, start, end, sub, complete, segment=label))
        return rows

    def dropped_late(self) -> int:
        # a copy: /stats may ask while an engine snapshot is loaded in the consumer's thread
        return sum(s.dropped_late for s in list(self._state.values()))

    def update(self, predictions: Sequence[Prediction]) -> list[MetricRow]:
        """Add a batch of predictions; the rows of the windows that closed."""
        return self._update(EventBatch.by_version(predictions))

    def update_columns(self, envelopes: Sequence[ColumnarEvents]) -> list[MetricRow]:
        """Add the events of checked columnar envelopes, read as columns (no object per event)."""
        return self._update(ColumnBatch.by_version(envelopes))

    def _update(self, groups: Mapping[tuple[str, str], PredictionBatch]) -> list[MetricRow]:
        rows: list[MetricRow] = []
        for key, batch in groups.items():
            state = self._version(key)
            # Reference events also count in their windows (data quality), but a window that holds
            # any of them is a reference-period window: no drift, even when the profile completes
            # inside this batch (a drift of its remaining events alone would look like a shift).
            # a spread model's profile must be the same in every worker: built beforehand, never from traffic
            bootstrap = state.profile is None and not state.spec.spread
            reference = self._collect_reference(key, state, batch) if bootstrap else 0
            if batch.n:
                self._add(state, batch, reference_events=reference)
            rows.extend(self._close(key, state, final=False))
        return rows

    def flush(self) -> list[MetricRow]:
        """Close every open window (at shutdown); their rows are marked incomplete."""
        rows: list[MetricRow] = []
        for key, state in self._state.items():
            rows.extend(self._close(key, state, final=True))
        return rows

    def _collect_reference(self, key: tuple[str, str], state: _VersionState, batch: PredictionBatch) -> int:
        """Take the batch's first events into the reference (at most what it lacks); how many it took."""
        room = self.reference_events - len(state.reference_rows)
        head = batch.head(room)
        targets = _target_columns(head, state.spec)
        declared = state.spec.features
        columns: dict[str, Any]
        if not state.reference_rows and head.n >= self.reference_events:
            # the whole reference in this batch (usual at start-up): its columns, no dict per event
            names = sorted(set(declared) | set(targets)) if declared else sorted(head.feature_names() | set(targets))
            features = [n for n in names if n not in targets]
            taken = dict(zip(features, head.feature_columns(features), strict=True))
            columns = {n: targets[n] if n in targets else taken[n] for n in names}
        else:
            state.reference_rows.extend(
                {**f, **{name: col[i] for name, col in targets.items()}} for i, f in enumerate(head.feature_rows())
            )
            if len(state.reference_rows) < self.reference_events:
                return head.n
            names = (
                sorted(set(declared) | set(targets))
                if declared
                else sorted({n for row in state.reference_rows for n in row})
            )
            columns = {n: [row.get(n) for row in state.reference_rows] for n in names}
        kinds = {**declared, **_target_kinds(state.spec)} if declared else _target_kinds(state.spec)
        columns = {n: c for n, c in columns.items() if any(v is not None for v in c)}  # e.g. no scores sent
        kinds = {n: k for n, k in kinds.items() if n in columns}
        state.profile = ReferenceProfile.build(key[0], key[1], columns, kinds=kinds or None)
        state.reference_rows = []
        self._new_profiles.append(state.profile)  # stored by the worker: a restart reuses it
        return head.n

    def _add(self, state: _VersionState, batch: PredictionBatch, reference_events: int = 0) -> None:
        """Add the batch to its windows; windows opened here by the first `reference_events` get no drift."""
        size = state.spec.slide_s or state.spec.window_s  # the pane
        ts = batch.ts()
        starts = np.floor(ts / size) * size
        closed_before = state.watermark  # windows ending at or before it were closed by earlier batches
        state.watermark = max(state.watermark, float(ts.max()) - state.spec.allowed_lateness_s)
        unique = np.unique(starts).tolist()
        for start in unique:
            idx = np.nonzero(starts == start)[0] if len(unique) > 1 else None
            if start + size <= closed_before and start not in state.windows:
                state.dropped_late += batch.n if idx is None else int(idx.size)  # too late: counted, never merged
                continue
            chunk = batch if idx is None else batch.take(idx.tolist())
            win = state.windows.get(start)
            if win is None:
                opened_by_reference = reference_events > 0 and (idx is None or int(idx[0]) < reference_events)
                profiled = state.profile is not None and not opened_by_reference
                win = state.windows[start] = _Window(start=start, profiled=profiled)
            self._add_window(state, win, chunk, ts if idx is None else ts[idx])

    def _add_window(self, state: _VersionState, win: _Window, batch: PredictionBatch, ts: np.ndarray) -> None:
        win.n += batch.n
        spec = state.spec
        profile = state.profile if spec.on("drift") else None
        if spec.on("data_quality") or spec.on("drift"):
            self._add_features(state, win, batch, profile)
        if spec.on("kpi"):
            lat = batch.latency()
            lat = lat[~np.isnan(lat)]
            if lat.size:
                win.latency += np.bincount(np.searchsorted(_LAT_EDGES, lat), minlength=win.latency.size)
                win.latency_n += int(lat.size)
            for name, total in batch.kpi_sums().items():
                win.kpi_sum[name] += total
        if spec.on("data_quality"):
            for cls, count in _counts_by_text(batch.prediction_counts()).items():
                win.predicted[cls] += count
            win.duplicates += int(state.duplicates.update_many(batch.event_ids(), ts).sum())
        if win.profiled and spec.on("estimated_quality") and spec.task != "regression":
            self._add_estimates(state, win, batch)
        if spec.segments and (spec.on("drift") or spec.on("data_quality")):
            self._add_segments(state, win, batch)
        if spec.plugins:
            view = PluginBatch(batch)
            for plugin in spec.plugins:
                if plugin.name not in win.plugins:
                    win.plugins[plugin.name] = _plugin_factory(plugin)()
                win.plugins[plugin.name].update_many(view)

    def _add_estimates(self, state: _VersionState, win: _Window, batch: PredictionBatch) -> None:
        """CBPE (metrics/cbpe.py): one versus the rest where the profile calibrated every class's
        score, else the one score (binary: the positive class's; multiclass: the predicted one's)."""
        profile, spec = state.profile, state.spec
        if profile is None:
            return
        preds = batch.predictions()
        if profile.class_calibrations and spec.task == "multiclass":
            if win.estimated is None:
                win.estimated = EstimatedClassQuality(profile.class_calibrations)
            if isinstance(win.estimated, EstimatedClassQuality):
                names, scores = batch.class_scores()
                text = {p: canonical_target(p) for p in set(preds)}  # once per class
                win.estimated.update_many(names, scores, list(map(text.__getitem__, preds)))
        elif profile.calibration is not None:
            if win.estimated is None:
                win.estimated = EstimatedQuality(profile.calibration, spec.task)
            if isinstance(win.estimated, EstimatedQuality):
                is_positive = {p: canonical_target(p) == spec.positive_class for p in set(preds)}  # once per class
                win.estimated.update_many(batch.scores(), list(map(is_positive.__getitem__, preds)))

    def _add_segments(self, state: _VersionState, win: _Window, batch: PredictionBatch) -> None:
        """Drift and data quality per segment: each segment's events go into its own sub-window."""
        profile = state.profile if state.spec.on("drift") else None
        for seg in state.spec.segments:
            if seg.attribute:
                values = batch.attribute(seg.attribute)
                counts = state.segment_counts.setdefault(seg.name, TopK(seg.top_k))
                counts.update_many(values)
                top = win.segment_top.setdefault(seg.name, sorted(counts.top()))  # fixed when the window opens
                labels = np.array(seg.labels(values, set(top)), dtype=object)
            else:
                mask = seg.mask(batch.feature_columns([seg.feature])[0])
                labels = np.full(mask.size, None, dtype=object)
                labels[mask] = seg.name
            present = labels != None  # noqa: E711 - elementwise, on an object array
            if not present.any():
                continue
            names, inverse = np.unique(labels[present].astype(str), return_inverse=True)
            positions = np.nonzero(present)[0]
            for g, label in enumerate(names.tolist()):
                idx = positions[inverse == g].tolist()
                sub = win.segments.get(label)
                if sub is None:
                    sub = win.segments[label] = _Window(start=win.start, profiled=win.profiled)
                part = batch if len(idx) == batch.n else batch.take(idx)
                sub.n += part.n
                self._add_features(state, sub, part, profile)

    def _add_features(
        self, state: _VersionState, win: _Window, batch: PredictionBatch, profile: ReferenceProfile | None
    ) -> None:
        declared = state.spec.features
        names = set(state.profile.features) if state.profile is not None else (set(declared) or batch.feature_names())
        # A class prediction is drift-checked from the batch's counts per value (shared with the
        # prediction shares): no text per event. A regression's is a number column like a score.
        counted = state.spec.task != "regression" and PREDICTION in names
        targets = {SCORE: batch.scores()} if counted else _target_columns(batch, state.spec)
        ordered = sorted(n for n in names if n not in targets and n != PREDICTION)
        order = [*ordered, *(n for n in (SCORE, PREDICTION) if n in names)]
        kinds = {n: profile.features[n].kind if profile and n in profile.features else None for n in order}
        # the numbers converted by the batch: a columnar batch converts each column once for all its views
        numbers = [n for n in ordered if kinds[n] == "numeric"]
        others = [n for n in ordered if kinds[n] != "numeric"]
        typed, other_columns = batch.typed_columns(numbers, others)
        as_numbers = dict(zip(numbers, typed, strict=True))
        as_values: dict[str, Sequence[Any]] = dict(zip(others, other_columns, strict=True))
        for name in order[len(ordered) :]:
            if counted and name == PREDICTION:
                continue
            if kinds[name] == "numeric":
                as_numbers[name] = as_float(targets[name])
            else:
                as_values[name] = targets[name]
        numeric: dict[str, np.ndarray] = {}
        for name in order:
            kind = kinds[name]
            if kind == "numeric":
                x, bad = as_numbers[name]
                numeric[name] = x
                win.type_violations[name] += bad
                missing = int(np.isnan(x).sum()) - bad
                ref = profile.features[name] if profile else None
                if ref is not None:
                    win.out_of_range[name] += int(np.sum((x < ref.minimum) | (x > ref.maximum)))
                drift = win.drift.get(name)
                if drift is None and ref is not None and profile is not None and win.profiled:
                    drift = win.drift[name] = NumericDrift(ref)
                if drift is not None:
                    drift.update_many(x)
                    win.value_sum[name] += float(np.nansum(x))
                    win.value_n[name] += x.size - missing - bad
            else:
                from_counts = counted and name == PREDICTION  # the class prediction: no column of it
                values = () if from_counts else as_values[name]
                missing = batch.prediction_counts().get(None, 0) if from_counts else _nones(values)
                if kind == "categorical" and profile and win.profiled:
                    drift = win.drift.get(name)
                    if drift is None:
                        drift = win.drift[name] = CategoricalDrift(profile.features[name])
                    if not from_counts:
                        drift.update_many(values)
                    elif isinstance(drift, CategoricalDrift):
                        drift.update_counts(_counts_by_text(batch.prediction_counts(), canonical_target))
            win.missing[name] += missing
        for name, reference in profile.vectors.items() if profile is not None else ():
            vectors, missing, bad = vectors_of(batch.feature_columns([name])[0], reference.dim)
            win.missing[name] += missing
            win.type_violations[name] += bad
            if win.profiled:
                if name not in win.embeddings:
                    win.embeddings[name] = EmbeddingDrift(reference)
                win.embeddings[name].update_many(vectors)
        if (
            win.profiled
            and profile is not None
            and profile.pca is not None
            and all(n in numeric for n in profile.pca.features)
        ):
            pca = profile.pca
            z = np.column_stack([numeric[n] for n in pca.features])
            z -= pca.mean  # in place: the block is 100,000 x features for a large batch
            z /= pca.std
            incomplete = np.isnan(z).any(axis=1)
            if incomplete.any():
                z = z[~incomplete]
            if z.shape[0]:
                win.pca_error_sum += reconstruction_error_sum(z, np.asarray(pca.components))
                win.pca_rows += int(z.shape[0])

    def _close(self, key: tuple[str, str], state: _VersionState, final: bool) -> list[MetricRow]:
        """Close the panes the watermark passed; each closes the window that ends with it.

        Tumbling windows are windows of one pane. A sliding window of k panes merges the
        pane that closes with the k-1 closed before it (copies: each pane is in k windows).
        """
        spec = state.spec
        if spec.spread:
            self._close_parts(key, state, final)
            return []
        pane = spec.slide_s or spec.window_s
        k = spec.window_s // pane
        rows: list[MetricRow] = []
        for start in sorted(state.windows):
            end = start + pane
            if not final and end > state.watermark:
                continue
            closing = state.windows.pop(start)
            if k > 1:
                while state.closed and len(state.closed) >= k:
                    state.closed.popleft()
                # panes that are too old for this window (gaps in event time) are left out
                members = [p for p in state.closed if p.start >= end - spec.window_s] + [closing]
                state.closed.append(closing)
                window = _merge(members)
            else:
                window = closing
            window_rows = self._rows(key, spec, end - spec.window_s, end, window, complete=not final)
            if not final:
                window_rows.extend(self._detect(state, window_rows))
            rows.extend(window_rows)
            for label, sub in sorted(window.segments.items()):  # after _detect: detectors watch the whole
                rows.extend(self._rows(key, spec, end - spec.window_s, end, sub, not final, segment=label))
        return rows

    def _close_parts(self, key: tuple[str, str], state: _VersionState, final: bool) -> None:
        """Spread models: each pane the watermark passed becomes a part for its owner, an empty one
        where this worker saw no event in it (the owner then knows these partitions are done)."""
        size = state.spec.window_s
        if state.windows and state.parts_from == -math.inf:
            state.parts_from = min(state.windows)
        last = max(state.windows) if final and state.windows else math.floor(state.watermark / size) * size - size
        if state.parts_from == -math.inf or last < state.parts_from:
            return
        starts = np.arange(state.parts_from, last + size / 2, size).tolist()
        keep = set(starts[-MAX_EMPTY_PARTS:]) | set(state.windows)
        for start in starts:
            win = state.windows.pop(start, None)
            if win is None:
                if start not in keep:
                    continue
                win = _Window(start=start, profiled=state.profile is not None)
            win.complete = not final
            blob = state_codec.encode(win)
            self._parts.append(WindowPart(key[0], key[1], start, start + size, win.n, not final, blob))
        state.parts_from = last + size

    def _detect(self, state: _VersionState, rows: list[MetricRow]) -> list[MetricRow]:
        """Page-Hinkley per feature on the window's PSI (numeric) or JS (categorical); ADWIN and
        KSWIN on a numeric feature's mean-shift z-statistic."""
        numeric = {r.feature for r in rows if r.metric == "ks"}  # categorical features have a PSI too
        signals = [r for r in rows if (r.metric == "psi") == (r.feature in numeric) and r.metric in ("psi", "js")]
        out = []
        for row in signals:
            detector = state.detectors.setdefault(row.feature, WindowSignalDetector())
            if detector.update(row.value):
                out.append(replace(row, metric="page_hinkley_alarm", value=1.0))
        for row in rows:
            if row.metric == "mean_shift_z":
                shift = state.mean_detectors.setdefault(row.feature, MeanShiftDetector())
                out.extend(replace(row, metric=f"{name}_alarm", value=1.0) for name in shift.update(row.value))
        return out

    def _rows(
        self,
        key: tuple[str, str],
        spec: ModelSpec,
        start: float,
        end: float,
        win: _Window,
        complete: bool,
        segment: str = "",
    ) -> list[MetricRow]:
        model, version = key
        limits = spec.thresholds
        out: list[MetricRow] = []

        def add(family: str, metric: str, value: float, feature: str = "", n: int = win.n) -> None:
            out.append(
                MetricRow(start, end, model, version, family, metric, feature, segment, float(value), n, complete)
            )

        pvalues: dict[str, float] = {}
        large: set[str] = set()  # features whose effect size passes the threshold
        for name, drift in sorted(win.drift.items()):
            if drift.n and not segment:  # the rollups' sketches are of the whole traffic
                if len(self._sketches) == self._sketches.maxlen:
                    if not self.sketches_dropped:
                        log.warning("drift sketches are not being taken (take_sketches); dropping the oldest")
                    self.sketches_dropped += 1
                self._sketches.append(
                    SketchRow(start, end, model, version, name, "", drift.n, complete, drift.sketch())
                )
            values = drift.get()
            for metric, value in values.items():
                add("drift", metric, value, name, drift.n)
            n = win.value_n.get(name, 0)
            ref = drift.reference
            if isinstance(drift, NumericDrift) and n and ref.std > 0 and ref.count:
                # two-sample z of the window mean against the reference mean: about N(0, 1) while nothing changes
                z = (win.value_sum[name] / n - ref.mean) / (ref.std * math.sqrt(1 / n + 1 / ref.count))
                add("drift", "mean_shift_z", z, name, n)
            p = values.get("ks_pvalue", values.get("chi2_pvalue"))
            if p is not None:
                pvalues[name] = p
            numeric = "ks_pvalue" in values  # the effect size: PSI for numeric features, JS for categorical ones
            effect = values.get("psi", 0.0) >= limits.psi if numeric else values.get("js", 0.0) >= limits.js
            if effect:
                large.add(name)
        for name, emb in sorted(win.embeddings.items()):
            if emb.n:
                values = emb.get()
                for metric, value in values.items():
                    add("drift", metric, value, name, emb.n)
                pvalues[name] = values["embedding_chi2_pvalue"]
                if values["embedding_error_psi"] >= limits.psi:
                    large.add(name)
        if win.pca_rows and self._state[key].profile is not None:
            pca = self._state[key].profile.pca  # type: ignore[union-attr]
            if pca is not None:
                error = win.pca_error_sum / win.pca_rows
                add("drift", "pca_reconstruction_error", error, "[multivariate]", win.pca_rows)
                add("drift", "pca_error_ratio", error / max(pca.error_mean, 1e-12), "[multivariate]", win.pca_rows)
        if pvalues:
            # drifted = significant after Benjamini-Hochberg across features AND a large enough effect
            _, significant = drift_share(pvalues, limits.fdr)
            drifted = [name for name in significant if name in large]
            add("drift", "drift_share", len(drifted) / len(pvalues))
            for name in drifted:
                add("drift", "drifted", 1.0, name)
        if spec.on("data_quality"):
            for name in sorted(win.missing):
                add("data_quality", "missing_rate", win.missing[name] / win.n, name)
                add("data_quality", "type_violation_rate", win.type_violations.get(name, 0) / win.n, name)
                if name in win.out_of_range:
                    add("data_quality", "out_of_range_rate", win.out_of_range[name] / win.n, name)
            for name, drift in sorted(win.drift.items()):
                if isinstance(drift, CategoricalDrift):
                    add("data_quality", "unseen_category_rate", drift.get().get("unseen_rate", 0.0), name)
            if not segment:  # duplicates are tracked over the whole stream
                add("data_quality", "duplicate_rate", win.duplicates / win.n)
            for cls, count in sorted(win.predicted.items()):
                add("data_quality", "prediction_share", count / win.n, f"class={cls}")
        if spec.on("kpi"):
            if win.latency_n:
                cdf = np.cumsum(win.latency) / win.latency_n
                for q in (50, 95, 99):
                    i = int(np.searchsorted(cdf, q / 100))
                    edge = _LAT_EDGES[min(i, _LAT_EDGES.size - 1)]
                    add("kpi", f"latency_p{q}_ms", edge, n=win.latency_n)
            for name, total in sorted(win.kpi_sum.items()):
                add("kpi", "sum", total, name)
                add("kpi", "mean", total / win.n, name)
        if win.estimated is not None and win.estimated.n:
            for metric, value in sorted(win.estimated.get().items()):
                name, _, cls = metric.partition("/")  # one-vs-rest: "<metric>/<class>" per class
                add("estimated_quality", name, value, f"class={cls}" if cls else "", n=win.estimated.n)
        for name, plugin in sorted(win.plugins.items()):
            try:
                values = plugin.get()
            except Exception:  # a user's metric must not stop the built-in ones
                log.exception("metric plugin %s failed in its get(); its rows are left out", name)
                continue
            for metric, value in rows_of(name, values):
                add(PLUGIN_FAMILY, metric, value)
        add("volume", "predictions", win.n)
        return out
