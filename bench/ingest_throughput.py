"""Ingest throughput of the driftline pipeline vs a raw aiokafka consumer, in one run.

    python bench/ingest_throughput.py [--events 200000] [--repeats 3]

Each variant reads the same events from the embedded broker, timed from its first
fetched batch to its last (the consumer-group join is excluded for all variants alike):

* raw: aiokafka ``getmany`` + ``orjson.loads`` per message, nothing stored (the baseline the
  targets are stated against), and the same with confluent-kafka ``consume`` (the client the
  worker reads with: the ratio to it is printed too);
* driftline worker loop on single JSON events, JSON-array envelopes and columnar envelopes
  (as the SDK sends them: 500 events of one model each, keyed by the model):
  decode + check + dead-letter + ClickHouse insert (chdb) + offset commit;
* the same loop with a sink that stores nothing (what the ClickHouse insert costs).

    python bench/ingest_throughput.py --pairs 5

Only what issue 21.2 compares: for single JSON events and for columnar envelopes, ingest ->
ClickHouse alone and with every monitoring family, run as adjacent pairs (in ABBA order: the
first of a pair alternates) so that each ratio divides two runs made seconds apart. On this VM
a variant's rate moves by +-25 % between runs minutes apart, which the sequential table above
mixes into its ratios. ``--mixed`` adds columnar envelopes that mix the four models of 500
consecutive events each (what this script produced before 2026-12-06; the SDK never does).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

from common import event, event_size, report

from driftline.config import Settings
from driftline.dev.broker import EmbeddedBroker
from driftline.events import Prediction, encode_columnar, encode_json
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.streams.ingest import BatchIngestor, tune_blas, tune_gc
from driftline.streams.monitor import MonitoringEngine
from driftline.streams.topics import ensure_topics

RAW_CONFLUENT = "raw confluent-kafka consume + orjson, single JSON events"


class NullSink:
    def write(self, *args: Any) -> None:
        pass

    def write_metrics(self, rows: Any) -> None:
        pass

    def write_sketches(self, rows: Any) -> None:
        pass

    def close(self) -> None:
        pass


def produce(settings: Settings, form: str, n: int) -> None:
    from confluent_kafka import Producer

    now = time.time() - 3600
    p = Producer({"bootstrap.servers": settings.broker, "linger.ms": 20, "queue.buffering.max.messages": 2_000_000})
    topic = settings.topic("predictions")
    step = 500
    buffers: dict[str, list[Prediction]] = {}

    def send(payload: bytes, key: str) -> None:
        while True:
            try:
                p.produce(topic, payload, key.encode())
                return
            except BufferError:
                p.poll(0.05)

    for start in range(0, n, step):
        chunk = [event(i, now) for i in range(start, min(n, start + step))]
        if form == "columnar":  # as the SDK sends them: an envelope of 500 events per model, keyed by it
            for e in chunk:
                bucket = buffers.setdefault(e.model, [])
                bucket.append(e)
                if len(bucket) == step:
                    send(encode_columnar(bucket), e.model)
                    buffers[e.model] = []
            continue
        if form == "single":
            payloads = [encode_json(e) for e in chunk]
        elif form == "array":
            payloads = [encode_json(chunk)]
        else:  # "columnar-mixed": every envelope holds the four models of 500 consecutive events
            payloads = [encode_columnar(chunk)]
        for payload in payloads:
            send(payload, chunk[0].model)
    for model, bucket in buffers.items():
        if bucket:
            send(encode_columnar(bucket), model)
    p.flush(120)


def raw_rate(settings: Settings, n_messages: int) -> float:
    import orjson
    from aiokafka import AIOKafkaConsumer

    async def go() -> float:
        c = AIOKafkaConsumer(
            settings.topic("predictions"),
            bootstrap_servers=settings.broker,
            group_id=f"raw{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await c.start()
        seen, first = 0, 0.0
        while seen < n_messages:
            batch = await c.getmany(timeout_ms=100, max_records=20_000)
            if batch and not first:
                first = time.perf_counter()
            for msgs in batch.values():
                for m in msgs:
                    orjson.loads(m.value)
                seen += len(msgs)
        elapsed = time.perf_counter() - first
        await c.stop()
        return n_messages / elapsed

    return asyncio.run(go())


def raw_confluent_rate(settings: Settings, n_messages: int) -> float:
    import orjson
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": settings.broker,
            "group.id": f"rawck{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10_000,  # the first join takes half of it on Tansu
            "fetch.queue.backoff.ms": 20,  # as the worker (streams/consumer.py)
        }
    )
    c.subscribe([settings.topic("predictions")])
    seen, first = 0, 0.0
    while seen < n_messages:
        msgs = c.consume(20_000, 0.1)
        if msgs and not first:
            first = time.perf_counter()
        for m in msgs:
            orjson.loads(m.value() or b"")
        seen += len(msgs)
    elapsed = time.perf_counter() - first
    c.close()
    return n_messages / elapsed


def pipeline_rate(settings: Settings, sink: Any, n_events: int, monitor: bool = False) -> float:
    on_batch = on_columns = None
    hooks_done_at = [0.0]  # the engine's work on the last batch counts: it runs after that batch's commit
    if monitor:
        engine = MonitoringEngine(window_s=300, allowed_lateness_s=60)

        def on_batch(predictions: Any, labels: Any) -> None:
            sink.write_metrics(engine.update(predictions))
            sink.write_sketches(engine.take_sketches())  # as the worker does
            hooks_done_at[0] = time.time()

        def on_columns(envelopes: Any) -> None:  # columnar envelopes, read as columns (as the worker does)
            sink.write_metrics(engine.update_columns(envelopes))
            sink.write_sketches(engine.take_sketches())
            hooks_done_at[0] = time.time()

    ingestor = BatchIngestor(
        settings.replace(group_id=f"g{uuid.uuid4().hex[:6]}"), sink, on_batch=on_batch, on_columns=on_columns
    )

    async def go() -> float:
        task = asyncio.create_task(ingestor.run())
        while ingestor.stats.predictions < n_events:
            if task.done():
                await task
            await asyncio.sleep(0.01)
        ingestor.stop()
        await task
        end = max(ingestor.stats.last_batch_at, hooks_done_at[0])
        return n_events / (end - ingestor.stats.first_batch_at)

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=0, help="only ingest alone vs with the engine, in adjacent pairs")
    ap.add_argument(
        "--mixed",
        action="store_true",
        help="with --pairs: also columnar envelopes that mix four models each (the SDK sends one model per envelope)",
    )
    args = ap.parse_args()
    n = args.events
    tune_gc()  # as the worker does; the raw baseline profits from it too
    tune_blas()  # one BLAS thread, as the worker (the engine's PCA; nothing else here uses BLAS)
    import clickhouse_connect

    client = clickhouse_connect.get_client(interface="chdb", path=tempfile.mkdtemp(prefix="bench-ch-"))
    rows: dict[str, list[float]] = {}
    with EmbeddedBroker() as broker:
        topics = {}
        for form in ("single", "array", "columnar", *(("columnar-mixed",) if args.mixed else ())):
            s = Settings(broker=broker.bootstrap, topic_prefix=f"b{uuid.uuid4().hex[:6]}.", partitions=2)
            asyncio.run(ensure_topics(s))
            produce(s, form, n)
            topics[form] = s
        print(f"produced {n:,} events x 3 forms", flush=True)
        if args.pairs:
            pairs(topics, client, n, args.pairs, mixed=args.mixed)
            return
        for r in range(args.repeats):
            runs: dict[str, Callable[[], float]] = {
                "raw aiokafka getmany + orjson, single JSON events": lambda: raw_rate(topics["single"], n),
                RAW_CONFLUENT: lambda: raw_confluent_rate(topics["single"], n),
                "driftline ingest -> ClickHouse, single JSON events": lambda: stored_rate(topics["single"], client, n),
                "driftline ingest -> ClickHouse, JSON arrays of 500": lambda: stored_rate(topics["array"], client, n),
                "driftline ingest -> ClickHouse, columnar envelopes of 500": lambda: stored_rate(
                    topics["columnar"], client, n
                ),
                "driftline ingest, no sink, single JSON events": lambda: pipeline_rate(topics["single"], NullSink(), n),
                "driftline ingest -> ClickHouse + monitoring engine, single JSON events": lambda: stored_rate(
                    topics["single"], client, n, monitor=True
                ),
                "driftline ingest -> ClickHouse + monitoring engine, columnar envelopes": lambda: stored_rate(
                    topics["columnar"], client, n, monitor=True
                ),
            }
            for label, fn in runs.items():
                rate = fn()
                rows.setdefault(label, []).append(rate)
                print(f"run {r + 1}: {label}: {rate:,.0f} events/s", flush=True)
    # This machine's speed drifts by +-30 % between runs: each run's rates are divided by the raw
    # rate of the same run, and the table shows the median of those per-run ratios.
    base_label = next(iter(rows))
    ratios = {k: [x / b for x, b in zip(v, rows[base_label], strict=True)] for k, v in rows.items()}
    base = statistics.median(rows[base_label])
    to_confluent = {k: [x / b for x, b in zip(v, rows[RAW_CONFLUENT], strict=True)] for k, v in rows.items()}
    report(
        "ingest_throughput",
        [(k, statistics.median(v), statistics.median(ratios[k])) for k, v in rows.items()],
        f"{base_label} ({base:,.0f} events/s); {n:,} events of {event_size()} bytes, 2 partitions, "
        f"median of {args.repeats} runs; ratio = median of the per-run ratios to that run's raw rate",
        notes="ratio to the raw confluent-kafka consumer (median of per-run ratios):\n"
        + "\n".join(f"- {k}: {statistics.median(v):.2f}" for k, v in to_confluent.items()),
    )


def pairs(topics: dict[str, Settings], client: Any, n: int, count: int, mixed: bool = False) -> None:
    """Ingest alone and with every family, as adjacent pairs; the ratio of each pair."""
    ratios: dict[str, list[float]] = {"single": [], "columnar": [], **({"columnar-mixed": []} if mixed else {})}
    for i in range(count):
        for form in ratios:
            order = (False, True) if i % 2 == 0 else (True, False)
            rate = {monitor: stored_rate(topics[form], client, n, monitor=monitor) for monitor in order}
            ratios[form].append(rate[True] / rate[False])
            print(
                f"pair {i + 1}, {form}: ingest {rate[False]:,.0f}, with every family {rate[True]:,.0f} events/s"
                f" = {ratios[form][-1]:.2f}",
                flush=True,
            )
    for form, values in ratios.items():
        print(f"{form}: ratios {[round(v, 2) for v in values]}, median {statistics.median(values):.2f}")
    report(
        "ingest_pairs",
        [
            (f"{form}: with every family / ingest alone", statistics.median(v), statistics.median(v))
            for form, v in ratios.items()
        ],
        f"adjacent pairs (ABBA), {count} per form, {n:,} events; value and ratio = the median pair ratio",
    )


def stored_rate(settings: Settings, client: Any, n_events: int, monitor: bool = False) -> float:
    """The pipeline into a fresh database, dropped afterwards: no run inserts into another run's
    parts, and no run's background merges are still going on while the next variant is timed."""
    sink = ClickHouseSink(settings.replace(clickhouse_database=f"bench_{uuid.uuid4().hex[:8]}"), client=client)
    sink.migrate()
    try:
        return pipeline_rate(settings, sink, n_events, monitor=monitor)
    finally:
        client.command(f"DROP DATABASE {sink.database} SYNC")


if __name__ == "__main__":
    main()
