"""Events older than the retention TTL are kept: raw rows expire on arrival (issue 17.3).

Before: raw tables expired on event time, so a backfill of events dated 11 months ago with the
default 90 days was counted as ingested by /stats, stored as 0 rows, and dead-lettered nowhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from driftline.config import Settings
from driftline.events import Label
from driftline.producer import Producer
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.spec import MonitorSpec
from driftline.streams.ingest import BatchIngestor
from driftline.streams.quality_job import QualityJob
from tests.integration.conftest import ingested, run_ingestor
from tests.unit.test_events import make_prediction

ELEVEN_MONTHS = 335 * 86_400


def test_a_backfill_of_last_years_events_is_stored_and_counted(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    assert settings.ttl_days == 90
    sink = sink_factory(settings)
    old = time.time() - ELEVEN_MONTHS
    preds = [make_prediction(i, ts=old + i) for i in range(200)]
    labels = [Label(event_id=f"e{i}", label=i % 2, ts=old + i + 60) for i in range(200)]
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
        for event in [*preds, *labels]:
            p.send(event)
    ingestor = run_ingestor(BatchIngestor(settings, sink), ingested(400))
    db = settings.clickhouse_database
    for table in ("predictions", "labels"):  # let ClickHouse apply its TTLs now, as a merge would later
        sink.client.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
    stats = ingestor.stats.as_dict()
    assert sink.counts() == {"predictions": 200, "labels": 200, "dead_letters": 0}
    assert (stats["predictions"], stats["labels"]) == (200, 200)  # /stats and `driftline counts` agree
    # and the label join (it reads ClickHouse) computes quality for those old windows
    spec = MonitorSpec.from_dict({"defaults": {"window": 300}})
    rows = QualityJob(sink.client, db, spec, overlap_s=0).run_once()
    accuracy = [r for r in rows if r.metric == "accuracy"]
    assert accuracy and all(r.window_start < time.time() - 300 * 86_400 for r in accuracy)
    assert sum(r.n for r in accuracy) == 200
    ttl = str(
        sink.client.command(
            f"SELECT create_table_query FROM system.tables WHERE database = '{db}' AND name = 'predictions'"
        )
    )
    assert "TTL toDateTime(ingested_at) + toIntervalDay(90)" in ttl
