"""Drift over any time range from the stored sketches equals the engine's merged state and a direct
computation on the raw values; hourly/daily rollups equal a group-by over `metrics FINAL`, and a
recomputed window is not counted twice; the clustered schema parses on ClickHouse's own parser."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import pytest

from driftline.config import Settings
from driftline.events import Prediction
from driftline.metrics.drift import psi
from driftline.metrics.rows import MetricRow
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.sinks.migrations import SchemaOptions, load_migrations
from driftline.sinks.sketch_queries import DRIFT_OVER_RANGE
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine

pytestmark = pytest.mark.integration
W = 600


def _events(t0: float) -> list[Prediction]:
    rng = np.random.default_rng(4)
    return [
        Prediction(
            event_id=f"e{i}",
            model="m",
            version="v1",
            ts=t0 + i * 0.5,
            prediction=1,
            features={
                "x": float(rng.normal(3 if i > 6000 else 0, 1)),
                "c": str(rng.choice(["a", "b", "new"] if i > 6000 else ["a", "b"])),
            },
        )
        for i in range(12_000)
    ]


def test_drift_over_an_arbitrary_range_from_sketches(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time()) // W * W - 3 * 3600)
    events = _events(t0)
    engine = MonitoringEngine(MonitorSpec(), reference_events=2000, window_s=W, allowed_lateness_s=0)
    engine.update(events)
    engine.flush()
    sketches = engine.take_sketches()
    sink.write_sketches(sketches)
    profile = engine._state[("m", "v1")].profile  # the reference the engine built
    assert profile is not None
    # the first 2,000 events (windows 0-1) are the reference period: those windows have no drift sketch
    sketched = {s.window_start for s in sketches if s.feature == "x"}
    assert sketched == {t0 + w * W for w in range(2, 10)}
    for start, end in ((t0, t0 + 4 * W), (t0 + 3 * W, t0 + 10 * W), (t0, t0 + 12 * W)):
        got = {
            r[0]: r
            for r in sink.client.query(
                DRIFT_OVER_RANGE.replace("{db}", settings.clickhouse_database),
                parameters={"model": "m", "version": "v1", "start": start, "end": end},
            ).result_rows
        }
        chosen = [e for e in events if start <= e.ts // W * W < end and e.ts // W * W in sketched]
        x = np.array([e.features["x"] for e in chosen])
        ref = profile.features["x"]
        counts = np.bincount(np.searchsorted(ref.bin_edges, x, side="left"), minlength=len(ref.bin_edges) + 1)
        assert got["x"][3] == pytest.approx(psi(ref.bin_counts, counts), abs=1e-9)
        assert got["x"][2] == len(chosen)
        unseen = sum(e.features["c"] not in profile.features["c"].categories for e in chosen) / len(chosen)
        assert got["c"][4] == pytest.approx(unseen, abs=1e-12)


def _rows(t0: float) -> list[MetricRow]:
    rng = np.random.default_rng(2)
    return [
        MetricRow(t0 + i * 300, t0 + (i + 1) * 300, "m", "v1", "quality", "accuracy", "", "", float(rng.uniform()), 100)
        for i in range(30)
    ]


def _refresh(sink: ClickHouseSink, view: str) -> None:
    db = sink.database
    sink.client.command(f"SYSTEM REFRESH VIEW {db}.{view}")
    sink.client.command(f"SYSTEM WAIT VIEW {db}.{view}")


def test_hourly_and_daily_rollups_match_a_group_by_and_never_double_count(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time()) // 3600 * 3600 - 3 * 3600)
    rows = _rows(t0)
    sink.write_metrics(rows)
    time.sleep(1.1)  # the recomputation below must have a later computed_at / refreshed_at
    recomputed = MetricRow(rows[0].window_start, rows[0].window_end, "m", "v1", "quality", "accuracy", "", "", 0.0, 100)
    sink.write_metrics([recomputed])  # a late label recomputed the first window: it replaces, never adds
    rows[0] = recomputed
    _refresh(sink, "metrics_hourly_refresh")
    _refresh(sink, "metrics_daily_refresh")
    db = settings.clickhouse_database
    hourly = {
        int(r[0].timestamp()): r[1:]
        for r in sink.client.query(
            f"SELECT hour, value_avg, value_min, value_max, value_last, windows, n FROM {db}.metrics_hourly FINAL "
            "WHERE model = 'm' ORDER BY hour"
        ).result_rows
    }
    groups: dict[int, list[MetricRow]] = defaultdict(list)
    for r in rows:
        groups[int(r.window_start // 3600 * 3600)].append(r)
    assert set(hourly) == set(groups)
    for hour, items in groups.items():
        values = [r.value for r in items]
        avg, lo, hi, last, windows, n = hourly[hour]
        assert (windows, n) == (len(items), 100 * len(items))
        assert avg == pytest.approx(np.mean(values), abs=1e-12) and (lo, hi) == (min(values), max(values))
        assert last == items[-1].value
    daily = sink.client.query(
        f"SELECT day, value_avg, windows FROM {db}.metrics_daily FINAL WHERE model = 'm'"
    ).result_rows
    by_day: dict[object, list[float]] = defaultdict(list)
    for r in rows:
        by_day[time.strftime("%Y-%m-%d", time.gmtime(r.window_start))].append(r.value)
    assert {str(d): (pytest.approx(np.mean(by_day[str(d)]), abs=1e-12), w) for d, _, w in daily} == {
        d: (pytest.approx(np.mean(v), abs=1e-12), len(v)) for d, v in by_day.items()
    }


def test_clustered_schema_parses_and_names_replicated_and_distributed_tables(ch_client: object) -> None:
    options = SchemaOptions(cluster="prod")
    statements = [s for m in load_migrations() for s in m.statements(options, "driftline")]
    for s in statements:
        ch_client.query(f"EXPLAIN AST {s}")  # type: ignore[attr-defined]  # ClickHouse's parser accepts it
        assert " ON CLUSTER prod" in s, s
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    local = [s for s in creates if "_local ON CLUSTER" in s]
    dist = [s for s in creates if "ENGINE = Distributed(" in s]
    assert len(local) == len(dist) and all("ENGINE = Replicated" in s for s in local)
    assert any("Distributed(prod, driftline, predictions_local, cityHash64(model))" in s for s in dist)
    views = [s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")]
    assert views and all("metrics_hourly_local" in s or "metrics_daily_local" in s for s in views)
