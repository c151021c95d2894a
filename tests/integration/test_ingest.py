"""The ingest loop against the real embedded broker and chdb: exact counts, dead letters,
crash-and-replay without doubles, ClickHouse outages without loss."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from confluent_kafka import Producer as RawProducer

from driftline.config import Settings
from driftline.dev.demo import BAD_MESSAGES
from driftline.events import Label, encode_json
from driftline.exceptions import SinkError
from driftline.producer import Producer
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch, SourcedDeadLetter
from driftline.streams.ingest import BatchIngestor
from tests.integration.conftest import ingested, run_ingestor
from tests.unit.test_events import BASE_TS, make_prediction

pytestmark = pytest.mark.integration


def produce_mix(settings: Settings, n: int = 600) -> tuple[int, int, Counter[str]]:
    """n predictions and n/2 labels in all three envelopes, plus every kind of bad message."""
    preds = [make_prediction(i, model=f"m{i % 3}") for i in range(n)]
    labels = [Label(event_id=f"e{i}", label=i % 2, ts=BASE_TS + 100, annotator=f"a{i % 2}") for i in range(n // 2)]
    third = n // 3
    for envelope, chunk in (
        ("json", preds[:third]),
        ("columnar", preds[third : 2 * third]),
        ("none", preds[2 * third :]),
    ):
        with Producer(settings.broker, topic_prefix=settings.topic_prefix, envelope=envelope, batch_size=97) as p:  # type: ignore[arg-type]
            for event in chunk:
                p.send(event)
    with Producer(settings.broker, topic_prefix=settings.topic_prefix, envelope="columnar") as p:
        for label in labels:
            p.send(label)
    raw = RawProducer({"bootstrap.servers": settings.broker, "message.max.bytes": 16 * 1024 * 1024})
    bad: Counter[str] = Counter()
    for code, payload in BAD_MESSAGES:
        topic = "labels" if b'"label"' in payload[:200] else "predictions"
        raw.produce(settings.topic(topic), payload)
        bad[code] += 1
    assert raw.flush(30) == 0
    return n, n // 2, bad


def consume_dlq(settings: Settings, expected: int) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    async def main() -> list[Any]:
        consumer = AIOKafkaConsumer(
            settings.topic("dlq"), bootstrap_servers=settings.broker, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        out: list[Any] = []
        try:
            for _ in range(100):
                batch = await consumer.getmany(timeout_ms=200)
                out.extend(m for msgs in batch.values() for m in msgs)
                if len(out) >= expected:
                    break
        finally:
            await consumer.stop()
        return out

    return asyncio.run(main())


def test_end_to_end_exact_counts_and_dead_letters(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    n_pred, n_lab, bad = produce_mix(settings)
    n_bad = sum(bad.values())
    ingestor = run_ingestor(BatchIngestor(settings, sink), ingested(n_pred + n_lab + n_bad))

    assert ingestor.stats.predictions == n_pred
    assert ingestor.stats.labels == n_lab
    assert dict(ingestor.stats.dead_letter_codes) == dict(bad)
    assert sink.counts() == {"predictions": n_pred, "labels": n_lab, "dead_letters": n_bad}
    db = settings.clickhouse_database
    # Not just counts: the stored values are the sent ones.
    row = sink.client.query(
        f"SELECT model, version, route, prediction, score, JSONExtractFloat(features, 'age'), attributes['sex'],"
        f" kpis['revenue'], toUnixTimestamp64Milli(ts) FROM {db}.predictions WHERE event_id = 'e7'"
    ).result_rows
    assert row == [("m1", "v1", "canary", "1", 0.75, 37.0, "F", 12.0, int((BASE_TS + 7) * 1000))]
    codes = dict(sink.client.query(f"SELECT code, count() FROM {db}.dead_letters GROUP BY code").result_rows)
    assert codes == dict(bad)

    dlq = consume_dlq(settings, n_bad)
    assert len(dlq) == n_bad
    sent_payloads = {payload for _, payload in BAD_MESSAGES}
    for msg in dlq:
        headers = dict(msg.headers)
        assert headers["code"].decode() in bad
        assert headers["reason"]
        assert headers["source_topic"].decode().startswith(settings.topic_prefix)
        assert msg.value in sent_payloads


class Crash(Exception):
    """Stands for the process dying: any error that is not a SinkError ends the ingest loop."""


class CrashAfterWrite:
    """Stores the batch, then dies before the offsets are committed (like a kill -9 there)."""

    def __init__(self, inner: ClickHouseSink):
        self.inner = inner

    def write(self, *args: Any) -> list[SourcedDeadLetter]:
        self.inner.write(*args)
        raise Crash("simulated crash after insert, before commit")

    def close(self) -> None:
        pass


def test_crash_between_insert_and_commit_neither_loses_nor_doubles(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    n_pred, n_lab, bad = produce_mix(settings, n=300)
    total = n_pred + n_lab + sum(bad.values())

    with pytest.raises(Crash):
        run_ingestor(BatchIngestor(settings, CrashAfterWrite(sink)), ingested(total), timeout=60)
    stored_before = sink.counts()
    assert sum(stored_before.values()) > 0  # the crash happened after a real insert

    second = run_ingestor(BatchIngestor(settings, sink), ingested(total))
    assert second.stats.predictions + second.stats.labels > 0  # the uncommitted batch was replayed
    assert sink.counts() == {"predictions": n_pred, "labels": n_lab, "dead_letters": sum(bad.values())}
    db = settings.clickhouse_database
    dupes = sink.client.command(
        f"SELECT count() - uniqExact(event_id) FROM (SELECT event_id FROM {db}.predictions FINAL)"
    )
    assert int(dupes) == 0


class FlakySink:
    """ClickHouse is down for the first `failures` writes."""

    def __init__(self, inner: ClickHouseSink, failures: int):
        self.inner, self.failures = inner, failures

    def write(self, *args: Any) -> list[SourcedDeadLetter]:
        if self.failures > 0:
            self.failures -= 1
            raise SinkError("connection refused (simulated outage)")
        return self.inner.write(*args)

    def close(self) -> None:
        pass


def test_clickhouse_outage_is_retried_without_loss(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    n_pred, n_lab, bad = produce_mix(settings, n=120)
    ingestor = BatchIngestor(settings, FlakySink(sink, failures=2), retry_backoff=(0.01, 0.05))
    run_ingestor(ingestor, ingested(n_pred + n_lab + sum(bad.values())))
    assert ingestor.stats.sink_retries == 2
    assert sink.counts() == {"predictions": n_pred, "labels": n_lab, "dead_letters": sum(bad.values())}


def test_identical_retry_is_deduplicated_by_token(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    preds = [make_prediction(i) for i in range(50)]
    sink.write(SinkBatch(preds, [], [], token="abc"))
    sink.write(SinkBatch(preds, [], [], token="abc"))
    raw = sink.client.command(f"SELECT count() FROM {settings.clickhouse_database}.predictions")
    assert int(raw) == 50  # without FINAL: the second insert never landed


def test_json_that_clickhouse_reads_differently_is_stored_from_the_checked_events(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    good = encode_json(make_prediction(1))
    # msgspec keeps the last of two equal keys; ClickHouse refuses the row: the sink re-encodes the checked events
    twice = good.replace(b'"model":"churn"', b'"model":"first","model":"churn"')
    preds = [make_prediction(1), make_prediction(2)]
    rejected = sink.write(SinkBatch(preds, [], [], token="t", prediction_json=[twice, encode_json(make_prediction(2))]))
    assert rejected == []
    db = settings.clickhouse_database
    assert sink.client.query(f"SELECT event_id, model FROM {db}.predictions ORDER BY event_id").result_rows == [
        ("e1", "churn"),
        ("e2", "churn"),
    ]


def test_events_clickhouse_refuses_become_dead_letters(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    db = settings.clickhouse_database
    sink.client.command(f"ALTER TABLE {db}.predictions ADD CONSTRAINT no_poison CHECK event_id != 'e13'")
    with Producer(settings.broker, topic_prefix=settings.topic_prefix, batch_size=50) as p:
        for i in range(100):
            p.send(make_prediction(i))
    ingestor = run_ingestor(BatchIngestor(settings, sink), ingested(100))
    assert (ingestor.stats.predictions, ingestor.stats.dead_letters) == (99, 1)
    assert dict(ingestor.stats.dead_letter_codes) == {"rejected_by_clickhouse": 1}
    assert sink.counts() == {"predictions": 99, "labels": 0, "dead_letters": 1}
    [msg] = consume_dlq(settings, 1)
    assert dict(msg.headers)["code"] == b"rejected_by_clickhouse"
    assert msgspec.json.decode(msg.value)["event_id"] == "e13"


def test_stopping_during_an_outage_commits_nothing_and_the_next_start_stores_everything(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    n_pred, n_lab, bad = produce_mix(settings, n=90)
    down = BatchIngestor(settings, FlakySink(sink, failures=10**6), retry_backoff=(0.01, 0.02))
    run_ingestor(down, lambda i: i.stats.sink_retries >= 3)  # returns: stop() ends the retry loop
    assert sink.counts() == {"predictions": 0, "labels": 0, "dead_letters": 0}
    run_ingestor(BatchIngestor(settings, sink), ingested(n_pred + n_lab + sum(bad.values())))
    assert sink.counts() == {"predictions": n_pred, "labels": n_lab, "dead_letters": sum(bad.values())}


def test_hooks_get_every_event_once_columnar_envelopes_as_columns(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    from driftline.events import ColumnarEvents

    settings = settings_factory()
    sink = sink_factory(settings)
    n_pred, n_lab, bad = produce_mix(settings, n=300)
    as_objects: list[str] = []
    as_columns: list[str] = []
    labels: list[str] = []

    def on_batch(predictions: Any, batch_labels: Any) -> None:
        as_objects.extend(p.event_id for p in predictions)
        labels.extend(lab.event_id for lab in batch_labels)

    def on_columns(envelopes: list[ColumnarEvents]) -> None:
        as_columns.extend(eid for e in envelopes for eid in e.columns.event_id)

    ingestor = BatchIngestor(settings, sink, on_batch=on_batch, on_columns=on_columns)
    run_ingestor(ingestor, ingested(n_pred + n_lab + sum(bad.values())))
    assert len(as_columns) == 100  # the columnar third, never made into objects
    assert sorted(as_objects + as_columns) == sorted(f"e{i}" for i in range(n_pred))
    assert len(labels) == n_lab
    assert sink.counts() == {"predictions": n_pred, "labels": n_lab, "dead_letters": sum(bad.values())}


def test_embeddings_are_stored_as_they_came_in_both_envelopes(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """Issue 20.4: a vector feature goes to ClickHouse's `features` JSON as a list, from single events and
    from columnar envelopes (which take the row-by-row insert when a column holds vectors)."""
    import json

    from driftline.events import decode_columnar, encode_columnar

    settings = settings_factory()
    sink = sink_factory(settings)
    single = [make_prediction(i, features={"emb": [0.5, -1.25, float(i)], "age": 30.0}) for i in range(3)]
    columnar = [make_prediction(i, event_id=f"c{i}", features={"emb": [1.0, 2.0, 3.0]}) for i in range(4)]
    envelope = decode_columnar(encode_columnar(columnar), "prediction")
    sink.write(SinkBatch(single, [], [], token="emb", prediction_columns=[envelope]))  # type: ignore[list-item]
    db = settings.clickhouse_database
    stored = dict(sink.client.query(f"SELECT event_id, features FROM {db}.predictions FINAL").result_rows)
    assert json.loads(stored["e2"])["emb"] == [0.5, -1.25, 2.0] and json.loads(stored["e2"])["age"] == 30.0
    assert json.loads(stored["c3"])["emb"] == [1.0, 2.0, 3.0] and len(stored) == 7


def test_the_hooks_run_while_the_next_batch_is_written(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """The engine (a hook) holds the loop's thread; the next batch's write runs in another. Found
    for issue 21.2: the hooks of a stored batch started before the next write, which waited for
    them, so no write ran while the engine did (a fifth of the time with every family on)."""
    import time

    settings = settings_factory(batch_max_records=50, insert_max_events=50, partitions=1)
    sink = sink_factory(settings)
    with Producer(settings.broker, topic_prefix=settings.topic_prefix, envelope="none") as p:
        for i in range(300):
            p.send(make_prediction(i))
    writes: list[tuple[float, float]] = []
    hooks: list[tuple[float, float]] = []
    write = sink.write

    def slow_write(*args: Any, **kwargs: Any) -> Any:  # runs in the write thread, as ClickHouse's insert
        started = time.monotonic()
        time.sleep(0.15)
        try:
            return write(*args, **kwargs)
        finally:
            writes.append((started, time.monotonic()))

    def engine(predictions: Any, _labels: Any) -> None:  # holds the loop's thread, as the engine
        started = time.monotonic()
        time.sleep(0.15)
        hooks.append((started, time.monotonic()))

    sink.write = slow_write  # type: ignore[method-assign]
    run_ingestor(BatchIngestor(settings, sink, on_batch=engine), ingested(300))
    assert sink.counts()["predictions"] == 300
    overlapping = [h for h in hooks if any(w0 < h[1] and h[0] < w1 for w0, w1 in writes)]
    assert len(hooks) >= 3
    assert len(overlapping) >= len(hooks) // 2, (hooks, writes)
