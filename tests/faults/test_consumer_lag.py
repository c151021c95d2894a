"""Consumer lag from the group's committed offsets (issue 18.7): before, it came from this process's own
commits, so a restarted worker reported everything as lag (601 messages for minutes after all was consumed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from driftline.config import Settings
from driftline.producer import Producer
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.streams.ingest import BatchIngestor
from tests.integration.conftest import ingested, run_ingestor
from tests.unit.test_events import make_prediction


def test_lag_after_a_restart_is_what_the_group_has_not_consumed(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
        for i in range(300):
            p.send(make_prediction(i))
    run_ingestor(BatchIngestor(settings, sink), ingested(300))  # consumed and committed, then stopped

    restarted = BatchIngestor(settings, sink)

    async def main() -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
        task = asyncio.create_task(restarted.run())
        deadline = time.monotonic() + 60
        while len(restarted.consumer.assignment() if restarted.consumer else []) < 4:  # 2 topics x 2 partitions
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        after_restart = await asyncio.to_thread(restarted.lag)
        restarted.stop()
        await task
        return after_restart, restarted.lag()

    after_restart, stopped = asyncio.run(main())
    assert sorted(p for _, p, _ in after_restart) == [0, 0, 1, 1]
    assert [lag for _, _, lag in after_restart] == [0, 0, 0, 0], after_restart  # nothing left to consume
    assert stopped == []  # a stopped ingestor holds no partitions
