"""A spread model's windows (spec ``partition_key``): workers that each saw part of the events send
their window shares, and the merged rows equal the rows of one engine that saw every event."""

from __future__ import annotations

import zlib
from collections import defaultdict

import numpy as np
import pytest

from driftline.events import Prediction
from driftline.exceptions import ConfigError
from driftline.metrics.cbpe import Calibration
from driftline.metrics.profiles import ReferenceProfile
from driftline.metrics.rows import MetricRow
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine, WindowPart

T0 = 1_800_000_000.0
SEGMENTS = '[{name: high, where: "x >= 12"}]'
SPEC = f"""
defaults: {{window: 1m, allowed_lateness: 0s}}
models:
  m: {{partition_key: event_id, window: 1m, allowed_lateness: 0s, segments: {SEGMENTS}}}
"""
KEYED = f"defaults: {{window: 1m, allowed_lateness: 0s, segments: {SEGMENTS}}}"


def events(n: int, seed: int = 3) -> list[Prediction]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        shift = 3.0 if i > n // 2 else 0.0
        out.append(
            Prediction(
                event_id=f"e{i}",
                model="m",
                version="v1",
                ts=T0 + i * 0.05,
                features={
                    "x": float(rng.normal(10 + shift, 2)),
                    "u": float(rng.uniform()),
                    "c": str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2] if shift else [0.2, 0.3, 0.5])),
                    "gap": None if i % 7 == 0 else 1.0,
                },
                prediction=int(rng.uniform() < 0.4),
                score=float(rng.uniform()),
                latency_ms=float(rng.uniform(1, 9)),
                kpis={"revenue": float(rng.integers(0, 5))},
            )
        )
    return out


def profile() -> ReferenceProfile:
    """With a calibration of the scores: quality estimated before labels merges too."""
    rng = np.random.default_rng(1)
    n = 3000
    scores = rng.uniform(size=n)
    built = ReferenceProfile.build(
        "m",
        "v1",
        {
            "x": rng.normal(10, 2, n),
            "u": rng.uniform(size=n),
            "c": rng.choice(["a", "b", "c"], n, p=[0.2, 0.3, 0.5]).tolist(),
            "gap": [1.0] * n,
        },
    )
    calibration = Calibration.fit(scores, rng.uniform(size=n) < scores)
    return ReferenceProfile("m", "v1", built.features, pca=built.pca, calibration=calibration)


def comparable(rows: list[MetricRow]) -> list[tuple[object, ...]]:
    """Every row but the detectors' alarms (they watch one worker's window series: not spread)."""
    return sorted(
        (r.window_start, r.family, r.metric, r.feature, r.segment, round(r.value, 9), r.n, r.complete)
        for r in rows
        if not r.metric.endswith("_alarm")
    )


def spread_run(batches: list[list[Prediction]], workers: int) -> tuple[list[MetricRow], list[WindowPart]]:
    spec = MonitorSpec.from_yaml(SPEC)
    engines = [MonitoringEngine(spec, profiles={("m", "v1"): profile()}) for _ in range(workers)]
    parts: list[WindowPart] = []
    for batch in batches:
        share: dict[int, list[Prediction]] = defaultdict(list)
        for e in batch:  # as Kafka partitions by the event id's hash, one partition per worker here
            share[zlib.crc32(e.event_id.encode()) % workers].append(e)
        for i, engine in enumerate(engines):
            assert engine.update(share[i]) == []  # a spread model's rows come from its owner only
            parts += engine.take_parts()
    for engine in engines:
        engine.flush()
        parts += engine.take_parts()
    owner = MonitoringEngine(spec, profiles={("m", "v1"): profile()})
    by_window: dict[tuple[float, float], list[bytes]] = defaultdict(list)
    for part in parts:
        by_window[(part.start, part.end)].append(part.state)
    rows = []
    for (start, end), states in sorted(by_window.items()):
        rows += owner.merge_parts("m", "v1", start, end, states)
    return rows, parts


def test_three_workers_shares_merged_give_one_engines_rows() -> None:
    stream = events(6000)
    batches = [stream[i : i + 400] for i in range(0, len(stream), 400)]
    single = MonitoringEngine(MonitorSpec.from_yaml(KEYED), profiles={("m", "v1"): profile()})
    expected: list[MetricRow] = []
    for batch in batches:
        expected += single.update(batch)
    expected += single.flush()
    rows, parts = spread_run(batches, workers=3)
    assert comparable(rows) == comparable(expected)
    families = {r.family for r in rows}
    assert {"drift", "data_quality", "kpi", "volume", "estimated_quality"} <= families
    assert {r.segment for r in rows} >= {"", "high"}
    assert sum(r.value for r in rows if r.metric == "drifted") > 0  # the shift is seen
    windows = {(p.start, p.end) for p in parts}
    assert len(parts) == 3 * len(windows)  # every worker reports every window, with or without events


def test_a_worker_without_events_in_a_window_sends_an_empty_share() -> None:
    spec = MonitorSpec.from_yaml(SPEC)
    engine = MonitoringEngine(spec, profiles={("m", "v1"): profile()})
    stream = events(400)
    engine.update(stream[:10])  # the first seconds of window 0
    later = [
        Prediction(event_id=f"z{i}", model="m", version="v1", ts=T0 + 300 + i, features={"x": 1.0}, prediction=0)
        for i in range(3)
    ]
    engine.update(later)  # the watermark jumps four windows on: windows 1-4 had no event here
    parts = engine.take_parts()
    assert [(p.start - T0 // 60 * 60, p.n) for p in parts][:2] == [(0.0, 10), (60.0, 0)]
    assert [p.n for p in parts[1:]] == [0, 0, 0, 0] and all(p.complete for p in parts)


def test_spread_models_take_tumbling_windows_only() -> None:
    with pytest.raises(ConfigError, match="merge tumbling windows only"):
        MonitorSpec.from_yaml("models: {m: {partition_key: event_id, window: 10m, slide: 1m}}")
    with pytest.raises(ConfigError, match="partition_key"):
        MonitorSpec.from_yaml("models: {m: {partition_key: user}}")
