"""Real services for integration tests: one Tansu broker and one chdb engine per session;
each test gets its own topics (prefix), consumer group and ClickHouse database."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.config import Settings
from driftline.dev.broker import EmbeddedBroker
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.streams.ingest import BatchIngestor
from driftline.streams.topics import ensure_topics

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder is an integration test, marked or not: `-m "not integration"` leaves them all out.

    (A `pytestmark` in a conftest marks nothing: pytest reads it from test modules only.)
    """
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b


@pytest.fixture(scope="session")
def ch_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The one chdb engine this process may have (chdb allows one per process)."""
    import clickhouse_connect

    path = tmp_path_factory.mktemp("chdb")
    return clickhouse_connect.get_client(interface="chdb", path=str(path))


@pytest.fixture
def settings_factory(broker: EmbeddedBroker, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        tag = uuid.uuid4().hex[:10]
        base: dict[str, Any] = dict(
            broker=broker.bootstrap,
            clickhouse=f"chdb://{tmp_path / 'ch'}",
            clickhouse_database=f"t_{tag}",
            topic_prefix=f"t{tag}.",
            group_id=f"g{tag}",
            partitions=2,
            data_dir=str(tmp_path / "data"),
        )
        base.update(overrides)
        settings = Settings(**base)
        asyncio.run(ensure_topics(settings))
        return settings

    return make


@pytest.fixture
def sink_factory(ch_client: Any) -> Callable[[Settings], ClickHouseSink]:
    def make(settings: Settings) -> ClickHouseSink:
        sink = ClickHouseSink(settings, client=ch_client)
        sink.migrate()
        return sink

    return make


def run_ingestor(
    ingestor: BatchIngestor, until: Callable[[BatchIngestor], bool], timeout: float = 60.0
) -> BatchIngestor:
    """Run the ingest loop on a real broker until `until(ingestor)` holds; then stop it cleanly."""

    async def main() -> None:
        task = asyncio.create_task(ingestor.run())
        deadline = time.monotonic() + timeout
        while not until(ingestor):
            if task.done():
                await task  # surfaces the exception that ended the loop
            if time.monotonic() > deadline:
                ingestor.stop()
                await task
                raise AssertionError(f"ingest did not get there within {timeout}s: {ingestor.stats.as_dict()}")
            await asyncio.sleep(0.05)
        ingestor.stop()
        await task

    asyncio.run(main())
    return ingestor


def ingested(n: int) -> Callable[[BatchIngestor], bool]:
    return lambda i: i.stats.predictions + i.stats.labels + i.stats.dead_letters >= n
