"""Prometheus metrics of a worker, served on ``/metrics``.

Everything is counted per batch, window or notification, never per event, so the
instrumentation costs nothing measurable on the hot path. Consumer lag is computed at
scrape time from the broker's high watermarks and the group's committed offsets (both asked
of the broker, so a restarted worker reports the group's lag, not its own).

Metric names (all prefixed ``driftline_``):

=================================== ========= ==============================================
name                                type      labels
=================================== ========= ==============================================
events_total                        counter   kind (prediction, label)
messages_total                      counter   —
messages_in_total                   counter   topic
messages_out_total                  counter   topic (dlq, metrics, alerts)
dead_letters_total                  counter   code
batch_messages                      histogram — (messages per batch)
batch_seconds                       histogram — (decode + store + commit of one batch)
sink_insert_seconds                 histogram — (the ClickHouse insert of one batch)
sink_errors_total                   counter   —
sink_failing                        gauge     — (1 while ClickHouse writes fail and are retried)
consumer_lag                        gauge     topic, partition
metric_rows_total                   counter   family
alerts_total                        counter   state, severity
webhook_attempts_total              counter   status (delivered, retrying, failed)
rollout_decisions_total             counter   action
alertmanager_posts_total            counter   status (delivered, failed)
build_info                          gauge     version, python (always 1)
drift_share, feature_psi, accuracy, gauge     model, version (feature): the ML signals, see
roc_auc, f1, precision, recall, mae,          ``streams/ml_gauges.py`` (capped number of series)
rmse, label_coverage
ml_series_dropped_total             counter   —
=================================== ========= ==============================================

Plus the standard ``process_*`` (CPU, memory, file descriptors) and ``python_*`` (GC,
interpreter) collectors of prometheus_client.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from driftline.streams.ml_gauges import MlGauges

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("driftline")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


class _Lag(Collector):
    def __init__(self, source: Callable[[], Iterable[tuple[str, int, int]]]):
        self.source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "driftline_consumer_lag", "Messages behind the partition's high watermark", labels=["topic", "partition"]
        )
        for topic, partition, lag in self.source():
            gauge.add_metric([topic, str(partition)], float(lag))
        yield gauge


class WorkerMetrics:
    def __init__(self, max_ml_series: int = 5000) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Gauge("driftline_build_info", "driftline's version (always 1)", ["version", "python"], registry=r).labels(
            _version(), platform.python_version()
        ).set(1)
        self.ml = MlGauges(max_series=max_ml_series)
        r.register(self.ml)
        self.events = Counter("driftline_events", "Events stored", ["kind"], registry=r)
        self.messages = Counter("driftline_messages", "Kafka messages consumed", registry=r)
        self.messages_in = Counter("driftline_messages_in", "Kafka messages consumed, by topic", ["topic"], registry=r)
        self.messages_out = Counter(
            "driftline_messages_out", "Kafka messages produced, by topic", ["topic"], registry=r
        )
        self.dead_letters = Counter("driftline_dead_letters", "Dead letters by reason", ["code"], registry=r)
        self.batch_messages = Histogram(
            "driftline_batch_messages",
            "Messages per batch",
            registry=r,
            buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000, 50_000),
        )
        self.batch_seconds = Histogram(
            "driftline_batch_seconds",
            "Decode, store and commit of one batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.sink_seconds = Histogram(
            "driftline_sink_insert_seconds",
            "ClickHouse insert of one batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.sink_errors = Counter("driftline_sink_errors", "Failed ClickHouse inserts (retried)", registry=r)
        self.sink_failing = Gauge(
            "driftline_sink_failing", "1 while ClickHouse writes fail and are retried (consumption paused)", registry=r
        )
        self.metric_rows = Counter("driftline_metric_rows", "Metric rows written", ["family"], registry=r)
        self.alerts = Counter("driftline_alerts", "Alert state changes", ["state", "severity"], registry=r)
        self.webhooks = Counter("driftline_webhook_attempts", "Webhook delivery attempts", ["status"], registry=r)
        self.alertmanager_posts = Counter(
            "driftline_alertmanager_posts", "Alerts posted to an Alertmanager, by outcome", ["status"], registry=r
        )
        self.decisions = Counter("driftline_rollout_decisions", "Canary analysis decisions", ["action"], registry=r)
        self._lag_source: Callable[[], Iterable[tuple[str, int, int]]] = list
        r.register(_Lag(lambda: self._lag_source()))

    def lag_from(self, source: Callable[[], Iterable[tuple[str, int, int]]]) -> None:
        self._lag_source = source

    def batch(
        self,
        messages: int,
        predictions: int,
        labels: int,
        dead_letter_codes: Iterable[str],
        seconds: float,
        per_topic: dict[str, int] | None = None,
    ) -> None:
        self.messages.inc(messages)
        for topic, n in (per_topic or {}).items():
            self.messages_in.labels(topic).inc(n)
        self.events.labels("prediction").inc(predictions)
        self.events.labels("label").inc(labels)
        for code in dead_letter_codes:
            self.dead_letters.labels(code).inc()
        self.batch_messages.observe(messages)
        self.batch_seconds.observe(seconds)

    def rows(self, rows: Iterable[Any]) -> None:
        rows = list(rows)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.family] = counts.get(row.family, 0) + 1
        for family, n in counts.items():
            self.metric_rows.labels(family).inc(n)
        self.ml.observe(rows)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
