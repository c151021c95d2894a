"""The ClickHouse sink: idempotent inserts of events, dead letters and metrics.

Written once against clickhouse-connect's Client; only the DSN decides whether it talks
to the embedded engine (``chdb:///dir``) or a server (``http(s)://host:port``).

Events are inserted as the JSON they arrived in (``FORMAT JSONEachRow``), after the worker
checked them: ClickHouse parses them in C++, so the worker's Python thread only joins
bytes, and chdb releases the GIL while it parses, sorts and writes — the next batch is
fetched and checked meanwhile. Should ClickHouse refuse the JSON as sent (a shape it reads
differently from msgspec, e.g. a repeated key), the batch is re-encoded from the checked
events; should it refuse an event even then, halves are retried until the single refused
events are known, and those become dead letters (``rejected_by_clickhouse``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import numpy as np

from driftline.config import Settings, redact_dsn
from driftline.events import ColumnarEvents, DeadLetter, Label, Prediction, rows_of
from driftline.exceptions import SinkError
from driftline.metrics.rows import MetricRow, SketchRow
from driftline.sinks import columnar
from driftline.sinks.client import ClickHouseClient, is_embedded
from driftline.sinks.migrations import SchemaOptions, migrate

_encode = msgspec.json.Encoder().encode

PREDICTION_COLUMNS = [
    "event_id",
    "model",
    "version",
    "ts",
    "route",
    "prediction",
    "score",
    "class_scores",
    "latency_ms",
    "features",
    "attributes",
    "kpis",
    "request_id",
]
LABEL_COLUMNS = ["event_id", "label", "ts", "annotator", "guideline_version"]
#: How ClickHouse reads the JSON rows: objects (features) and numbers or booleans (prediction,
#: label) into String columns as their JSON text; fields it has no column for are skipped.
#: Parallel parsing and the insert-time merge are off: on two cores shared with the consumer
#: and the broker they cost more than they save (ingest 110k -> 158k events/s, BENCHMARKS.md);
#: without the insert-time merge, a key repeated inside one insert is collapsed by background
#: merges, and FINAL counts it once meanwhile.
JSON_SETTINGS = {
    "input_format_parallel_parsing": 0,
    "optimize_on_insert": 0,
    "input_format_skip_unknown_fields": 1,
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "input_format_null_as_default": 1,
    "date_time_input_format": "best_effort",
}
METRIC_COLUMNS = [
    "window_start",
    "window_end",
    "model",
    "version",
    "family",
    "metric",
    "feature",
    "segment",
    "value",
    "n",
    "complete",
]
DEAD_LETTER_COLUMNS = ["received_at", "topic", "partition", "offset", "event_index", "code", "reason", "payload"]


#: ClickHouse error codes that the content of one event can cause (parse errors, types, ranges,
#: constraints): only these make ClickHouseSink bisect a batch to find the event and dead-letter it.
#: Every other error (disk full, read-only, memory limit, too many parts, timeouts, a lost
#: connection, ...) is a fault of the server, the disk or the network: `write` raises SinkError,
#: ingest retries the whole batch with consumption paused, and no event becomes a dead letter.
EVENT_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        469,  # VIOLATED_CONSTRAINT
        691,  # UNKNOWN_ELEMENT_OF_ENUM
    }
)
_CODE = re.compile(r"Code: (\d+)\.")


def caused_by_events(exc: Exception) -> bool:
    """Whether ClickHouse refused the insert because of what the rows hold (see EVENT_ERROR_CODES).

    >>> caused_by_events(Exception("Code: 469. DB::Exception: Constraint `c` ... is violated at row 1"))
    True
    >>> caused_by_events(Exception("Code: 243. DB::Exception: Cannot reserve 1.00 MiB (NOT_ENOUGH_SPACE)"))
    False
    """
    match = _CODE.search(str(exc))
    return match is not None and int(match.group(1)) in EVENT_ERROR_CODES


def refused_key(payload: bytes) -> int:
    """The `offset` column of a refused event's dead letter (its source offset is not known after
    decoding): a stable 63-bit hash of the event, so each refused event has its own row and a
    replay of the same event replaces it instead of adding one."""
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "big") >> 1


@dataclass(frozen=True, slots=True)
class SourcedDeadLetter:
    """A dead letter and where it came from."""

    letter: DeadLetter
    topic: str
    partition: int
    offset: int
    received_at: float


@dataclass(frozen=True, slots=True)
class SinkBatch:
    """What one `EventSink.write` stores. `token` makes a retried write a no-op.

    `*_json` are the events' JSON as received (objects, or objects joined by commas), when
    the caller has them; `*_columns` are more events, as checked columnar envelopes.
    """

    predictions: Sequence[Prediction]
    labels: Sequence[Label]
    dead_letters: Sequence[SourcedDeadLetter]
    token: str
    prediction_json: Sequence[bytes] | None = None
    label_json: Sequence[bytes] | None = None
    prediction_columns: Sequence[ColumnarEvents] = ()
    label_columns: Sequence[ColumnarEvents] = ()


class EventSink(Protocol):
    """What the ingest loop needs from a store: write a batch (returning the events the store
    refused, as dead letters), and close."""

    def write(self, batch: SinkBatch) -> list[SourcedDeadLetter]: ...

    def close(self) -> None: ...


def _ms(ts: Sequence[float]) -> list[int]:
    ticks: list[int] = np.round(np.asarray(ts, dtype=np.float64) * 1000.0).astype(np.int64).tolist()
    return ticks


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


def connect(settings: Settings) -> ClickHouseClient:
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
        path = settings.clickhouse[len("chdb://") :] if settings.clickhouse.startswith("chdb:") else ""
        if path and _held_by_another_process(path):
            raise SinkError(
                f"{settings.clickhouse} is open in another process (a running `driftline worker`?): chdb is one "
                "process's embedded database. Stop that process first, or run a ClickHouse server "
                "(`docker compose up -d clickhouse`) and give both its URL"
            ) from None
        raise SinkError(
            f"cannot connect to ClickHouse at {redact_dsn(settings.clickhouse)}: {exc}; "
            "check --clickhouse / DRIFTLINE_CLICKHOUSE and DRIFTLINE_CLICKHOUSE_USER/PASSWORD"
        ) from exc


def _held_by_another_process(path: str) -> bool:
    """chdb, like clickhouse-server, holds an exclusive flock on `<path>/status` while it runs."""
    import fcntl
    from pathlib import Path

    status = Path(path) / "status"
    if not status.exists():
        return False
    with open(status, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


class ClickHouseSink:
    """Stores events in ClickHouse. Each `write` is one insert per table, deduplicated by token."""

    def __init__(self, settings: Settings, client: ClickHouseClient | None = None):
        self.settings = settings
        self.database = settings.clickhouse_database
        self.client: ClickHouseClient = client if client is not None else connect(settings)
        self._embedded = is_embedded(self.client)  # chdb: the engine is in this process

    def migrate(self) -> list[int]:
        return migrate(self.client, self.database, SchemaOptions.from_settings(self.settings))

    def _insert_json(self, table: str, names: list[str], body: bytes, token: str) -> None:
        self.client.raw_insert(
            f"{self.database}.{table}",
            names,
            insert_block=body,
            settings={**JSON_SETTINGS, "insert_deduplication_token": f"{table}:{token}"},
            fmt="JSONEachRow",
        )

    def _write_events(
        self, table: str, names: list[str], events: Sequence[Any], as_sent: Sequence[bytes] | None, token: str
    ) -> list[SourcedDeadLetter]:
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        if not events:
            return []
        if as_sent:
            try:
                self._insert_json(table, names, b"\n".join(as_sent), token)
                return []
            except OperationalError:
                raise
            except DatabaseError as exc:
                if not caused_by_events(exc):
                    raise
                # ClickHouse reads the JSON as sent differently: store the checked events instead
        return self._write_encoded(table, names, events, token)

    def _write_encoded(
        self, table: str, names: list[str], events: Sequence[Any], token: str
    ) -> list[SourcedDeadLetter]:
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        try:
            self._insert_json(table, names, _encode(list(events))[1:-1], token)
            return []
        except OperationalError:
            raise
        except DatabaseError as exc:
            if not caused_by_events(exc):
                raise
            if len(events) == 1:
                payload = _encode(events[0])
                letter = DeadLetter("rejected_by_clickhouse", f"ClickHouse refused the event: {exc}"[:2000], payload)
                return [SourcedDeadLetter(letter, self.settings.topic(table), -1, refused_key(payload), time.time())]
        half = len(events) // 2  # find the refused events; each half has its own deterministic token
        return self._write_encoded(table, names, events[:half], f"{token}/a") + self._write_encoded(
            table, names, events[half:], f"{token}/b"
        )

    def _write_columns(
        self, table: str, names: list[str], kind: str, envelopes: Sequence[ColumnarEvents], token: str
    ) -> list[SourcedDeadLetter]:
        """Columnar envelopes: as columns on chdb (see sinks/columnar.py), row by row elsewhere."""
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        if not envelopes:
            return []
        # A server would take the columns as the body of `INSERT ... FROM input()`; that path has
        # not run against a server here (no Docker engine), so servers get the events as rows.
        inserts, rest = columnar.plan(kind, envelopes) if self._embedded else ([], list(envelopes))
        rejected = []
        for i, insert in enumerate(inserts):
            part_token = f"{token}/columns{i}"
            try:
                self._insert_columns(table, insert, part_token)
            except OperationalError:
                raise
            except DatabaseError as exc:
                if not caused_by_events(exc):
                    raise
                # refused because of some rows: find them row by row
                rejected += self._write_encoded(table, names, rows_of(insert.events), part_token)
        if rest:
            rejected += self._write_encoded(table, names, rows_of(rest), f"{token}/rows")
        return rejected

    def _insert_columns(self, table: str, insert: columnar.ColumnarInsert, token: str) -> None:
        # chdb reads the input from a file; the engine runs in this process, so it sees this one.
        fd, path = tempfile.mkstemp(prefix="driftline-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(insert.body)
            source = f"file({columnar.literal(path)}, 'JSONColumns', {columnar.literal(insert.structure)})"
            settings = {**JSON_SETTINGS, "insert_deduplication_token": f"{table}:{token}"}
            self.client.command(insert.sql(f"{self.database}.{table}", source, settings))
        finally:
            os.unlink(path)

    def write(self, batch: SinkBatch) -> list[SourcedDeadLetter]:
        b, token = batch, batch.token
        try:
            rejected = self._write_events("predictions", PREDICTION_COLUMNS, b.predictions, b.prediction_json, token)
            rejected += self._write_columns(
                "predictions", PREDICTION_COLUMNS, "prediction", b.prediction_columns, token
            )
            rejected += self._write_events("labels", LABEL_COLUMNS, b.labels, b.label_json, token)
            rejected += self._write_columns("labels", LABEL_COLUMNS, "label", b.label_columns, token)
            letters = [*b.dead_letters, *rejected]
            if letters:
                self.client.insert(
                    "dead_letters",
                    dead_letter_columns(letters),
                    column_names=DEAD_LETTER_COLUMNS,
                    database=self.database,
                    column_oriented=True,
                    settings={"insert_deduplication_token": f"dead_letters:{token}"},
                )
        except Exception as exc:
            raise SinkError(f"ClickHouse insert failed: {exc}") from exc
        return rejected

    def write_metrics(self, rows: Sequence[MetricRow]) -> None:
        """Store metric rows."""
        if not rows:
            return
        columns: list[list[Any]] = [
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

    def write_sketches(self, rows: Sequence[SketchRow]) -> None:
        """Store the windows' drift sketches in ``drift_sketches``."""
        if not rows:
            return
        body = b"\n".join(
            _encode(
                {
                    "window_start": r.window_start,
                    "window_end": r.window_end,
                    "model": r.model,
                    "version": r.version,
                    "feature": r.feature,
                    "segment": r.segment,
                    "n": r.n,
                    "complete": int(r.complete),
                    **r.state,
                }
            )
            for r in rows
        )
        names = [
            "window_start",
            "window_end",
            "model",
            "version",
            "feature",
            "segment",
            "n",
            "complete",
            "kind",
            "bins",
            "counts",
            "reference",
            "grid_counts",
        ]
        try:
            self.client.raw_insert(
                f"{self.database}.drift_sketches",
                names,
                insert_block=body,
                settings={"date_time_input_format": "best_effort"},
                fmt="JSONEachRow",
            )
        except Exception as exc:
            raise SinkError(f"ClickHouse insert of drift sketches failed: {exc}") from exc

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
