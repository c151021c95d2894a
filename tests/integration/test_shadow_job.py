"""Shadow predictions compared with the primary's on the same request, in ClickHouse, against numpy."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from driftline.config import Settings
from driftline.events import Prediction, decode_message, encode_columnar
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
from driftline.spec import MonitorSpec
from driftline.streams.shadow_job import ShadowJob

pytestmark = pytest.mark.integration
W = 300


def test_shadow_disagreement_divergence_and_latency(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    rng = np.random.default_rng(3)
    t0 = float(int(time.time()) // W * W - 4 * W)
    primary, shadow = [], []
    for i in range(900):
        ts = t0 + i * (2 * W / 900)
        ps, ss = float(rng.uniform()), float(rng.uniform())
        primary.append(
            Prediction(
                event_id=f"p{i}",
                model="m",
                version="v1",
                ts=ts,
                prediction=int(ps >= 0.5),
                score=ps,
                latency_ms=float(rng.uniform(1, 2)),
                request_id=f"r{i}",
            )
        )
        if i % 3:  # a shadow for two requests in three
            shadow.append(
                Prediction(
                    event_id=f"s{i}",
                    model="m",
                    version="v3",
                    ts=ts + 0.01,
                    prediction=int(ss >= 0.5),
                    score=ss,
                    latency_ms=float(rng.uniform(2, 6)),
                    route="shadow",
                    request_id=f"r{i}",
                )
            )
    # the columnar envelope carries request_id too
    decoded = decode_message(encode_columnar(shadow), "prediction")
    assert [e.request_id for e in decoded.events] == [e.request_id for e in shadow]
    sink.write(SinkBatch(primary + decoded.events, [], [], token="shadow-test"))  # type: ignore[arg-type]
    job = ShadowJob(sink.client, settings.clickhouse_database, MonitorSpec())
    rows = job.run_once()
    assert job.run_once() == []  # nothing new since
    by = {(r.window_start, r.metric): r for r in rows}
    by_request = {p.request_id: p for p in primary}
    for w in range(2):
        start = t0 + w * W
        pairs = [(s, by_request[s.request_id]) for s in shadow if start <= s.ts < start + W]
        assert by[(start, "matched")].value == len(pairs) and all(r.version == "v3" for r in rows)
        disagree = np.mean([s.prediction != p.prediction for s, p in pairs])
        divergence = np.mean([abs((s.score or 0) - (p.score or 0)) for s, p in pairs])
        ratio = np.median([s.latency_ms for s, _ in pairs]) / np.median([p.latency_ms for _, p in pairs])
        assert by[(start, "disagreement_rate")].value == pytest.approx(disagree, abs=1e-12)
        assert by[(start, "score_divergence")].value == pytest.approx(divergence, abs=1e-9)
        assert by[(start, "latency_ratio_p50")].value == pytest.approx(ratio, rel=1e-9)
