"""Real services for the integration and fault suites: one Tansu broker and one chdb engine per session
(chdb allows one engine per process, so the fixtures live here, shared by both folders); each test
gets its own topics (prefix), consumer group and ClickHouse database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.config import Settings
from driftline.dev.broker import EmbeddedBroker
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.streams.topics import ensure_topics


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
