"""Columnar envelopes are stored as columns (sinks/columnar.py): the rows must equal the rows
stored for the same events sent as JSON, replays must be no-ops, refusals must be isolated."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from driftline.config import Settings
from driftline.events import ColumnarEvents, Label, Prediction, decode_columnar, encode_columnar, encode_json
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
from driftline.sinks.columnar import plan
from tests.unit.test_events import make_prediction

PREDICTION_QUERY = (
    "SELECT event_id, model, version, ts, route, prediction, prediction_norm, score, latency_ms, features, "
    "attributes, kpis, request_id, class_scores FROM {db}.predictions ORDER BY event_id"
)
LABEL_QUERY = "SELECT event_id, label, label_norm, ts, annotator, guideline_version FROM {db}.labels ORDER BY event_id"


def envelope(events: list[Any]) -> ColumnarEvents:
    checked = decode_columnar(encode_columnar(events), "label" if isinstance(events[0], Label) else "prediction")
    assert isinstance(checked, ColumnarEvents)
    return checked


def rows(sink: ClickHouseSink, query: str) -> list[tuple[Any, ...]]:
    """The stored rows, with the features JSON parsed (ClickHouse writes 0.0 as 0: the same number)."""
    out = []
    for row in sink.client.query(query.format(db=sink.database)).result_rows:
        row = list(row)
        if query is PREDICTION_QUERY:
            row[9] = json.loads(row[9])
        out.append(tuple(row))
    return out


def varied_predictions() -> list[list[Prediction]]:
    """Envelopes of different shapes: optional columns absent, missing values, odd names and values."""
    plain = [make_prediction(i) for i in range(20)]
    sparse = [
        make_prediction(
            100 + i,
            score=None,
            latency_ms=None if i % 2 else 1.0,
            attributes={},
            kpis={},
            route="primary",
            prediction=["yes", 1.5, True, 0][i % 4],
            features={"age": None if i % 3 else 40.0 + i, 'it\'s \\ "odd"': "x'y", "flag": i % 2 == 0},
            request_id=f"r{i}" if i % 2 else None,
        )
        for i in range(10)
    ]
    mixed = [make_prediction(200 + i, features={"age": "unknown" if i == 0 else float(i)}) for i in range(5)]
    multiclass = [  # every class's probability (issue 20.1: one-vs-rest estimation), an odd class name
        make_prediction(
            300 + i, prediction="cat", score=0.5, class_scores={"cat": 0.5, "dog": 0.25 + i / 100, "o'x": 0.0}
        )
        for i in range(6)
    ]
    return [plain, sparse, mixed, multiclass]


def test_columnar_envelopes_store_the_rows_json_events_store(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    groups = varied_predictions()
    labels = [
        Label(
            event_id=f"e{i}",
            label=[1, 0.0, "cat", True][i % 4],
            ts=1_700_000_100.0 + i,
            annotator="ann" if i % 2 else None,
        )
        for i in range(12)
    ]
    as_json = sink_factory(settings_factory())
    as_columns = sink_factory(settings_factory())
    every = [e for g in groups for e in g]
    as_json.write(SinkBatch(every, labels, [], "t", [encode_json(e) for e in every], [encode_json(x) for x in labels]))
    envelopes = [envelope(g) for g in groups]
    inserts, rest = plan("prediction", envelopes)
    assert (len(inserts), len(rest)) == (3, 1)  # the feature with a text and numbers goes row by row
    batch = SinkBatch([], [], [], "t", prediction_columns=envelopes, label_columns=[envelope(labels)])
    assert as_columns.write(batch) == []
    assert rows(as_columns, PREDICTION_QUERY) == rows(as_json, PREDICTION_QUERY)
    assert len(rows(as_columns, PREDICTION_QUERY)) == len(every)
    stored = {r[0]: r[13] for r in rows(as_columns, PREDICTION_QUERY)}
    assert stored["e302"] == {"cat": 0.5, "dog": 0.27, "o'x": 0.0} and stored["e0"] == {}
    assert rows(as_columns, LABEL_QUERY) == rows(as_json, LABEL_QUERY)


def test_a_replayed_columnar_batch_is_stored_once(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    sink = sink_factory(settings_factory())
    envelopes = [envelope(g) for g in varied_predictions()]
    for _ in range(2):
        sink.write(SinkBatch([], [], [], "same", prediction_columns=envelopes))
    raw = sink.client.command(f"SELECT count() FROM {sink.database}.predictions")
    assert int(raw) == sum(e.n for e in envelopes)  # without FINAL: the second insert never landed


def test_a_refused_event_of_an_envelope_becomes_a_dead_letter_and_the_rest_is_stored(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    sink = sink_factory(settings_factory())
    sink.client.command(f"ALTER TABLE {sink.database}.predictions ADD CONSTRAINT no_poison CHECK event_id != 'e13'")
    batch = SinkBatch([], [], [], "t", prediction_columns=[envelope([make_prediction(i) for i in range(40)])])
    rejected = sink.write(batch)
    assert [r.letter.code for r in rejected] == ["rejected_by_clickhouse"]
    assert json.loads(rejected[0].letter.payload)["event_id"] == "e13"
    assert sink.counts() == {"predictions": 39, "labels": 0, "dead_letters": 1}


def test_rfc3339_times_are_stored_as_the_instant_they_name(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """Issue 17.7: the JSON as sent (a string `ts`) goes to ClickHouse as is; it must store the same instant."""
    from driftline.events import decode_message

    sink = sink_factory(settings_factory())
    sent = [
        b'{"event_id":"z1","model":"m","version":"v","features":{},"prediction":1,"ts":"2026-01-01T00:00:00.250Z"}',
        b'{"event_id":"z2","model":"m","version":"v","features":{},"prediction":1,"ts":"2026-01-01T02:00:00.5+02:00"}',
    ]
    events = [e for raw in sent for e in decode_message(raw, "prediction").events]
    assert [e.ts for e in events] == [1767225600.25, 1767225600.5]
    assert sink.write(SinkBatch(events, [], [], "rfc", prediction_json=sent)) == []
    stored = sink.client.query(
        f"SELECT event_id, toUnixTimestamp64Milli(ts) FROM {sink.database}.predictions FINAL ORDER BY event_id"
    ).result_rows
    assert [tuple(r) for r in stored] == [("z1", 1767225600250), ("z2", 1767225600500)]
