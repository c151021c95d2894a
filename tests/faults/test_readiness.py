"""Ready means consuming, assigned and connected (issue 18.7): before, `/ready` said 200 while the broker
was down and seconds before any partition was assigned."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

from driftline.config import Settings
from driftline.dev.broker import EmbeddedBroker
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.streams.ingest import BatchIngestor
from driftline.streams.topics import ensure_topics


def test_ready_needs_assigned_partitions_and_a_broker_that_answers(tmp_path: Path, ch_client: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:  # its own broker: this test stops it
        settings = Settings(
            broker=broker.bootstrap,
            topic_prefix=f"r{tag}.",
            group_id=f"g{tag}",
            partitions=2,
            clickhouse_database=f"r_{tag}",
            data_dir=str(tmp_path),
        )
        asyncio.run(ensure_topics(settings))
        sink = ClickHouseSink(settings, client=ch_client)
        sink.migrate()
        ingestor = BatchIngestor(settings, sink)

        async def main() -> list[str]:
            reasons = [await ingestor.readiness()]
            task = asyncio.create_task(ingestor.run())
            deadline = time.monotonic() + 60
            while (reason := await ingestor.readiness()) != "":
                assert time.monotonic() < deadline, reasons
                if reason != reasons[-1]:
                    reasons.append(reason)
                await asyncio.sleep(0.05)
            reasons.append("ready")
            broker.stop()
            reasons.append(await ingestor.readiness())
            ingestor.stop()
            with contextlib.suppress(Exception):  # leaving a group without a broker may fail or time out
                await asyncio.wait_for(task, timeout=30)
            return reasons

        reasons = asyncio.run(main())
    assert reasons[0] == "starting"
    assert "no partitions assigned (yet)" in reasons
    assert reasons[-2:] == ["ready", "no Kafka broker answers"]
