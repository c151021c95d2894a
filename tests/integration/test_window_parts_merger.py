"""The owner of spread windows on a real broker: shares it held but had not merged when it died are
read again by the next owner (offsets are committed only below them), and a share replayed after a
merge merges the window again into the same rows."""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec
from confluent_kafka import Producer

from driftline.config import Settings
from driftline.metrics.rows import MetricRow
from driftline.spec import MonitorSpec
from driftline.streams.consumer import BatchConsumer
from driftline.streams.monitor import MonitoringEngine, WindowPart
from driftline.streams.window_parts import TOPIC, PartsMerger, encode_share
from tests.unit.test_window_parts import SPEC, comparable, events, profile


def shares(workers: int) -> list[tuple[int, WindowPart]]:
    """(worker, share) of three engines that each saw the events of their partitions."""
    engines = [MonitoringEngine(MonitorSpec.from_yaml(SPEC), profiles={("m", "v1"): profile()}) for _ in range(workers)]
    split: dict[int, list] = defaultdict(list)  # type: ignore[type-arg]
    for e in events(3000):
        split[zlib.crc32(e.event_id.encode()) % workers].append(e)
    out = []
    for i, engine in enumerate(engines):
        engine.update(split[i])
        engine.update([msgspec.structs.replace(split[i][0], ts=split[i][0].ts + 3600)])  # passes every window
        out += [(i, part) for part in engine.take_parts()]
    return out


def produce(settings: Settings, items: list[tuple[int, WindowPart]], workers: int) -> None:
    producer = Producer({"bootstrap.servers": settings.broker})
    for i, part in items:
        key, value = encode_share(part, [i], workers)  # worker i held prediction partition i
        producer.produce(settings.topic(TOPIC), value, key)
    assert producer.flush(30) == 0


async def run_merger(
    settings: Settings, until: Callable[[PartsMerger], bool], **options: Any
) -> tuple[PartsMerger, list[MetricRow]]:
    rows: list[MetricRow] = []

    async def publish(batch: list[MetricRow]) -> None:
        rows.extend(batch)

    consumer = BatchConsumer(settings.broker, f"{settings.group_id}.parts", [settings.topic(TOPIC)])
    await consumer.start()
    engine = MonitoringEngine(MonitorSpec.from_yaml(SPEC), profiles={("m", "v1"): profile()})
    merger = PartsMerger(engine, consumer, publish, **options)
    for _ in range(300):
        await merger.step(timeout_ms=100)
        if until(merger):
            break
    await consumer.close()
    return merger, rows


def test_an_owner_that_dies_before_a_window_is_complete_loses_no_share(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(partitions=2)
    items = shares(3)
    windows = {p.start for _, p in items}
    assert len(windows) >= 2
    # the owner sees the shares of workers 0 and 1 only, then dies (nothing merged: none complete)
    produce(settings, [x for x in items if x[0] < 2], 3)
    first, rows = asyncio.run(run_merger(settings, lambda m: len(m.pending) == len(windows)))
    assert rows == [] and first.windows_merged == 0 and len(first.pending) == len(windows)
    # worker 2's shares come; the next owner reads the first two again from the committed offsets
    produce(settings, [x for x in items if x[0] == 2], 3)
    second, rows = asyncio.run(run_merger(settings, lambda m: m.windows_merged == len(windows)))
    assert second.windows_merged == len(windows) and not second.pending
    owner = MonitoringEngine(MonitorSpec.from_yaml(SPEC), profiles={("m", "v1"): profile()})
    expected = []
    for start in sorted(windows):
        states = [p.state for _, p in items if p.start == start]
        end = next(p.end for _, p in items if p.start == start)
        expected += owner.merge_parts("m", "v1", start, end, states)
    assert comparable(rows) == comparable(expected) and len(rows) > 50
    # a share replayed after its window was merged, read by an owner that restarted since: it never
    # completes; at the timeout it is dropped, since the window's complete rows are stored already
    produce(settings, items[:1], 3)
    third, again = asyncio.run(
        run_merger(settings, lambda m: m.windows_replayed == 1, timeout_s=0.5, written=lambda *key: True)
    )
    assert third.windows_replayed == 1 and again == [] and not third.pending
    # without rows stored (a worker that stopped for good), the window is merged from what came, incomplete
    produce(settings, items[:1], 3)
    fourth, partial = asyncio.run(
        run_merger(settings, lambda m: m.windows_timed_out == 1, timeout_s=0.5, written=lambda *key: False)
    )
    assert fourth.windows_timed_out == 1 and partial and not any(r.complete for r in partial)


def test_an_owner_knows_a_window_whose_complete_rows_are_stored(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], Any]
) -> None:
    from driftline.streams.worker import _window_written

    sink = sink_factory(settings_factory())
    start = 1_800_000_000.0
    row = MetricRow(start, start + 300, "m", "v1", "volume", "predictions", "", "", 10.0, 10, True)
    sink.write_metrics(
        [row, MetricRow(start + 300, start + 600, "m", "v1", "volume", "predictions", "", "", 4.0, 4, False)]
    )
    assert _window_written(sink, "m", "v1", start)
    assert not _window_written(sink, "m", "v1", start + 300)  # incomplete rows (a shutdown's flush) do not count
    assert not _window_written(sink, "m", "v2", start)
