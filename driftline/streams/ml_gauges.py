"""The ML signals as Prometheus gauges: the newest window's value per model version (and per feature
for PSI), so a team's Prometheus can alert on ``driftline_drift_share > 0.1`` beside its other alerts.

=============================== ===================== =========================================
gauge                           labels                from the metric row
=============================== ===================== =========================================
driftline_drift_share           model, version        drift / drift_share (after FDR control)
driftline_feature_psi           model, version,       drift / psi of one feature
                                feature
driftline_accuracy, _roc_auc,   model, version        quality / the same metric, once labels
_f1, _precision, _recall,                             arrive (overall rows only, no segment)
_mae, _rmse
driftline_label_coverage        model, version        quality / label_coverage
=============================== ===================== =========================================

Each series keeps the value of the newest window it has seen (a replayed older window does
not overwrite it). The number of series is capped (``max_series``, 5,000 by default,
``DRIFTLINE_PROMETHEUS_MAX_SERIES``): a new series past the cap is dropped and counted in
``driftline_ml_series_dropped_total``, so a model with 100,000 features cannot swamp
Prometheus; a series not updated for ``expire_s`` (a day) is removed, as a retired version's.

>>> from driftline.metrics.rows import MetricRow
>>> g = MlGauges(max_series=10, clock=lambda: 0.0)
>>> g.observe([MetricRow(0, 60, "loan", "v1", "drift", "drift_share", "", "", 0.25, 500)])
>>> [(m.name, s.labels, s.value) for m in g.collect() for s in m.samples if m.name == "driftline_drift_share"]
[('driftline_drift_share', {'model': 'loan', 'version': 'v1'}, 0.25)]
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

#: (family, metric) -> (gauge name, help); PSI is per feature, the rest per model version.
GAUGES = {
    ("drift", "drift_share"): ("driftline_drift_share", "Share of features drifted in the newest window"),
    ("drift", "psi"): ("driftline_feature_psi", "PSI of a feature against the reference, newest window"),
    ("quality", "accuracy"): ("driftline_accuracy", "Accuracy on the labelled predictions, newest window"),
    ("quality", "roc_auc"): ("driftline_roc_auc", "ROC AUC on the labelled predictions, newest window"),
    ("quality", "f1"): ("driftline_f1", "F1 on the labelled predictions, newest window"),
    ("quality", "precision"): ("driftline_precision", "Precision on the labelled predictions, newest window"),
    ("quality", "recall"): ("driftline_recall", "Recall on the labelled predictions, newest window"),
    ("quality", "mae"): ("driftline_mae", "Mean absolute error (regression), newest window"),
    ("quality", "rmse"): ("driftline_rmse", "Root mean squared error (regression), newest window"),
    ("quality", "label_coverage"): ("driftline_label_coverage", "Share of predictions with a label, newest window"),
}
PER_FEATURE = {"driftline_feature_psi"}

Key = tuple[str, tuple[tuple[str, str], ...]]  # gauge name, label pairs


class MlGauges(Collector):
    def __init__(self, max_series: int = 5000, expire_s: float = 86_400.0, clock: Callable[[], float] = time.time):
        self.max_series = max_series
        self.expire_s = expire_s
        self.clock = clock
        self.dropped = 0
        self._series: dict[Key, tuple[float, float, float]] = {}  # -> (value, window start, updated at)
        self._lock = threading.Lock()  # rows arrive on the event loop, scrapes on a thread

    def observe(self, rows: Iterable[Any]) -> None:
        """Take metric rows as the worker stores them (any family; the others are skipped)."""
        with self._lock:
            self._observe(rows, self.clock())

    def _observe(self, rows: Iterable[Any], now: float) -> None:
        for row in rows:
            gauge = GAUGES.get((row.family, row.metric))
            if gauge is None or row.segment or not math.isfinite(row.value):
                continue
            name = gauge[0]
            if (name in PER_FEATURE) != bool(row.feature):
                continue
            labels = [("model", row.model), ("version", row.version)]
            if name in PER_FEATURE:
                labels.append(("feature", row.feature))
            key = (name, tuple(labels))
            old = self._series.get(key)
            if old is None and len(self._series) >= self.max_series:
                self._expire(now)
                if len(self._series) >= self.max_series:
                    self.dropped += 1
                    continue
            if old is None or row.window_start >= old[1]:
                self._series[key] = (float(row.value), float(row.window_start), now)

    def _expire(self, now: float) -> None:
        self._series = {k: v for k, v in self._series.items() if now - v[2] < self.expire_s}

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self._lock:
            self._expire(self.clock())
            series = sorted(self._series.items())
        families: dict[str, GaugeMetricFamily] = {}
        for name, help_text in GAUGES.values():
            names = ["model", "version", "feature"] if name in PER_FEATURE else ["model", "version"]
            families[name] = GaugeMetricFamily(name, help_text, labels=names)
        for (name, pairs), (value, _, _) in series:
            families[name].add_metric([v for _, v in pairs], value)
        yield from families.values()
        dropped = CounterMetricFamily(
            "driftline_ml_series_dropped", "ML gauge series not exported: over the series cap"
        )
        dropped.add_metric([], float(self.dropped))
        yield dropped
