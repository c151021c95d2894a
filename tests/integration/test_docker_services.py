"""The same ingest path against Apache Kafka (KRaft) and a ClickHouse server in containers.

These run where a Docker engine runs (testcontainers); elsewhere they skip and say why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.config import Settings
from driftline.producer import Producer
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
from driftline.streams.ingest import BatchIngestor
from driftline.streams.topics import ensure_topics
from tests.integration.conftest import ingested, run_ingestor
from tests.unit.test_events import make_prediction

pytestmark = [pytest.mark.integration, pytest.mark.docker]

KAFKA_IMAGE = "apache/kafka:3.9.1"
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.3"  # as docker-compose.yml
ROOT = Path(__file__).resolve().parents[2]


def _docker_or_skip() -> None:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine reachable ({type(exc).__name__}): testcontainers tests need one")


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    _docker_or_skip()
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as container:
        yield container.get_bootstrap_server()


@pytest.fixture(scope="module")
def clickhouse_server() -> Iterator[Any]:
    _docker_or_skip()
    from testcontainers.clickhouse import ClickHouseContainer

    with ClickHouseContainer(CLICKHOUSE_IMAGE, port=8123, username="driftline", password="s3cret") as container:
        yield container


def test_ingest_into_apache_kafka_and_clickhouse_server(kafka: str, clickhouse_server: Any) -> None:
    host = clickhouse_server.get_container_host_ip()
    port = clickhouse_server.get_exposed_port(8123)
    settings = Settings.from_env(
        {},
        broker=kafka,
        clickhouse=f"http://{host}:{port}",
        clickhouse_user="driftline",
        clickhouse_password="s3cret",
        clickhouse_database="dockertest",
        partitions=2,
    )
    asyncio.run(ensure_topics(settings))
    sink = ClickHouseSink(settings)
    sink.migrate()
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
        for i in range(500):
            p.send(make_prediction(i))
    run_ingestor(BatchIngestor(settings, sink), ingested(500), timeout=120)
    assert sink.counts()["predictions"] == 500


def test_compose_users_writer_least_privilege_and_grafana_read_only() -> None:
    """The users file docker-compose mounts, on the real server: the writer migrates and writes, Grafana only reads."""
    _docker_or_skip()
    import clickhouse_connect
    from testcontainers.clickhouse import ClickHouseContainer

    container = (
        ClickHouseContainer(CLICKHOUSE_IMAGE, port=8123, username="admin", password="admin-pw")
        .with_env("DRIFTLINE_CLICKHOUSE_PASSWORD", "writer-pw")
        .with_env("GRAFANA_CLICKHOUSE_PASSWORD", "reader-pw")
        .with_volume_mapping(
            str(ROOT / "infra/clickhouse/users.d/driftline.xml"), "/etc/clickhouse-server/users.d/driftline.xml"
        )
    )
    with container:
        host, port = container.get_container_host_ip(), int(container.get_exposed_port(8123))
        settings = Settings.from_env(
            {}, clickhouse=f"http://{host}:{port}", clickhouse_user="driftline", clickhouse_password="writer-pw"
        )
        sink = ClickHouseSink(settings)
        sink.migrate()  # CREATE DATABASE/TABLE, ALTER on driftline.* are enough
        sink.write(SinkBatch([make_prediction(1)], [], [], token="t"))
        reader = clickhouse_connect.get_client(host=host, port=port, username="grafana", password="reader-pw")
        assert reader.command("SELECT count() FROM driftline.predictions") == 1
        with pytest.raises(Exception, match=r"(?i)readonly|not enough privileges"):
            reader.command("INSERT INTO driftline.labels (event_id, label, ts) VALUES ('x', '1', now())")
        with pytest.raises(Exception, match=r"(?i)readonly|not enough privileges"):
            sink.client.command("CREATE DATABASE elsewhere")
