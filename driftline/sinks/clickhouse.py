"""The ClickHouse sink: columnar, idempotent inserts of events and dead letters.

Written once against clickhouse-connect's Client; only the DSN decides whether it talks
to the embedded engine (``chdb:///dir``) or a server (``http(s)://host:port``).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import numpy as np

from driftline.config import Settings, redact_dsn
from driftline.events import DeadLetter, Label, Prediction, canonical_target
from driftline.exceptions import SinkError
from driftline.sinks.migrations import migrate

_encode = msgspec.json.Encoder().encode

PREDICTION_COLUMNS = [
    "event_id", "model", "version", "ts", "route", "prediction",
    "score", "latency_ms", "features", "attributes", "kpis",
]  # fmt: skip
LABEL_COLUMNS = ["event_id", "label", "ts", "annotator"]
METRIC_COLUMNS = [
    "window_start", "window_end", "model", "version", "family", "metric",
    "feature", "segment", "value", "n", "complete",
]  # fmt: skip
DEAD_LETTER_COLUMNS = ["received_at", "topic", "partition", "offset", "event_index", "code", "reason", "payload"]


@dataclass(frozen=True, slots=True)
class SourcedDeadLetter:
    """A dead letter and where it came from."""

    letter: DeadLetter
    topic: str
    partition: int
    offset: int
    received_at: float


class EventSink(Protocol):
    """What the ingest loop needs from a store. `token` makes a retried write a no-op."""

    def write(
        self,
        predictions: Sequence[Prediction],
        labels: Sequence[Label],
        dead_letters: Sequence[SourcedDeadLetter],
        token: str,
    ) -> None: ...

    def close(self) -> None: ...


def _ms(ts: Sequence[float]) -> list[int]:
    ticks: list[int] = np.round(np.asarray(ts, dtype=np.float64) * 1000.0).astype(np.int64).tolist()
    return ticks


def prediction_columns(events: Sequence[Prediction]) -> list[list[Any]]:
    """Column lists in PREDICTION_COLUMNS order (one pass per column, no per-event branching)."""
    return [
        [e.event_id for e in events],
        [e.model for e in events],
        [e.version for e in events],
        _ms([e.ts for e in events]),
        [e.route for e in events],
        [canonical_target(e.prediction) for e in events],
        [e.score for e in events],
        [e.latency_ms for e in events],
        [_encode(e.features).decode() for e in events],
        [e.attributes for e in events],
        [e.kpis for e in events],
    ]


def label_columns(events: Sequence[Label]) -> list[list[Any]]:
    return [
        [e.event_id for e in events],
        [canonical_target(e.label) for e in events],
        _ms([e.ts for e in events]),
        [e.annotator or "" for e in events],
    ]


def dead_letter_columns(letters: Sequence[SourcedDeadLetter]) -> list[list[Any]]:
    return [
        _ms([d.received_at for d in letters]),
        [d.topic for d in letters],
        [d.partition for d in letters],
        [d.offset for d in letters],
        [d.letter.index for d in letters],
        [d.letter.code for d in letters],
        [d.letter.reason for d in letters],
        [d.letter.payload for d in letters],
    ]


def connect(settings: Settings) -> Any:
    """A clickhouse-connect client for the configured DSN (password from settings, never logged)."""
    import clickhouse_connect

    try:
        if settings.clickhouse.startswith("chdb:"):
            path = settings.clickhouse[len("chdb://") :] or None
            if path:
                from pathlib import Path

                Path(path).mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(interface="chdb", path=path)
        return clickhouse_connect.get_client(
            dsn=settings.clickhouse,
            username=settings.clickhouse_user,
            password=settings.clickhouse_password.get(),
            connect_timeout=10,
            autogenerate_session_id=False,  # ingest and the quality job query concurrently
        )
    except Exception as exc:
        raise SinkError(
            f"cannot connect to ClickHouse at {redact_dsn(settings.clickhouse)}: {exc}; "
            "check --clickhouse / DRIFTLINE_CLICKHOUSE and DRIFTLINE_CLICKHOUSE_USER/PASSWORD"
        ) from exc


class ClickHouseSink:
    """Stores events in ClickHouse. Each `write` is one insert per table, deduplicated by token."""

    def __init__(self, settings: Settings, client: Any | None = None):
        self.settings = settings
        self.database = settings.clickhouse_database
        self.client = client if client is not None else connect(settings)

    def migrate(self) -> list[int]:
        return migrate(self.client, self.database, self.settings.ttl_days)

    def _insert(self, table: str, columns: list[list[Any]], names: list[str], token: str) -> None:
        if not columns[0]:
            return
        self.client.insert(
            table,
            columns,
            column_names=names,
            database=self.database,
            column_oriented=True,
            settings={"insert_deduplication_token": f"{table}:{token}"},
        )

    def write(
        self,
        predictions: Sequence[Prediction],
        labels: Sequence[Label],
        dead_letters: Sequence[SourcedDeadLetter],
        token: str,
    ) -> None:
        try:
            self._insert("predictions", prediction_columns(predictions), PREDICTION_COLUMNS, token)
            self._insert("labels", label_columns(labels), LABEL_COLUMNS, token)
            self._insert("dead_letters", dead_letter_columns(dead_letters), DEAD_LETTER_COLUMNS, token)
        except Exception as exc:
            raise SinkError(f"ClickHouse insert failed: {exc}") from exc

    def write_metrics(self, rows: Sequence[Any]) -> None:
        """Store MetricRow objects (see driftline.streams.monitor)."""
        if not rows:
            return
        columns = [
            _ms([r.window_start for r in rows]),
            _ms([r.window_end for r in rows]),
            [r.model for r in rows],
            [r.version for r in rows],
            [r.family for r in rows],
            [r.metric for r in rows],
            [r.feature for r in rows],
            [r.segment for r in rows],
            [r.value for r in rows],
            [r.n for r in rows],
            [int(r.complete) for r in rows],
        ]
        try:
            self.client.insert(
                "metrics", columns, column_names=METRIC_COLUMNS, database=self.database, column_oriented=True
            )
        except Exception as exc:
            raise SinkError(f"ClickHouse insert of metrics failed: {exc}") from exc

    def counts(self) -> dict[str, int]:
        """Rows per table, each event counted once (FINAL collapses replays)."""
        out = {}
        for table in ("predictions", "labels", "dead_letters"):
            out[table] = int(self.client.command(f"SELECT count() FROM {self.database}.{table} FINAL"))
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            self.client.close()


def batch_token(offsets: dict[tuple[str, int], tuple[int, int]]) -> str:
    """A deterministic token for a batch: the offset range read from each partition."""
    text = ";".join(f"{t}/{p}/{a}-{b}" for (t, p), (a, b) in sorted(offsets.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def now() -> float:
    return time.time()
