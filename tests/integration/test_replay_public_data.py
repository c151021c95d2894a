"""A replay of a real public data set through the broker, ingest and the monitoring engine (issue 17).

scikit-learn's Wisconsin breast-cancer data (569 tumours, 30 numeric measurements; shipped with the
package, no download): the rows are shuffled with a fixed seed, half becomes the reference profile
(as `driftline profile build --input` makes it), the other half is replayed as 10 windows of 500
predictions each (resampled). The control run changes nothing and must raise no drift flag in any
window; the shifted run scales two measurements by 1.25 from window 5 on and must flag exactly
those, from the first shifted window on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from driftline.config import Settings
from driftline.events import Prediction
from driftline.metrics.rows import MetricRow
from driftline.producer import Producer
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.sinks.profiles import profile_from_rows
from driftline.spec import MonitorSpec
from driftline.streams.ingest import BatchIngestor
from driftline.streams.monitor import MonitoringEngine
from tests.integration.conftest import ingested, run_ingestor

W, PER_WINDOW, WINDOWS, SHIFT_FROM = 60.0, 500, 10, 5
SHIFTED = ("mean radius", "worst texture")
T0 = 1_800_000_000.0


def _data() -> tuple[list[str], np.ndarray, np.ndarray]:
    data = load_breast_cancer()
    rows = np.random.default_rng(0).permutation(data.data)
    half = rows.shape[0] // 2
    return [str(n) for n in data.feature_names], rows[:half], rows[half:]


def _replay(settings: Settings, sink: ClickHouseSink, shift: bool) -> list[MetricRow]:
    names, reference, held_out = _data()
    profile = profile_from_rows("cancer", "v1", iter(dict(zip(names, map(float, r), strict=True)) for r in reference))
    engine = MonitoringEngine(
        MonitorSpec.from_dict({"defaults": {"window": int(W), "allowed_lateness": 0}}),
        profiles={("cancer", "v1"): profile},
    )
    rng = np.random.default_rng(1)
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as producer:
        for w in range(WINDOWS):
            for i, row in enumerate(held_out[rng.integers(0, held_out.shape[0], PER_WINDOW)]):
                features = dict(zip(names, map(float, row), strict=True))
                if shift and w >= SHIFT_FROM:
                    for name in SHIFTED:
                        features[name] *= 1.25
                producer.send(
                    Prediction(
                        event_id=f"{w}-{i}",
                        model="cancer",
                        version="v1",
                        ts=T0 + w * W + i * W / PER_WINDOW,
                        features=features,
                        prediction=int(features["mean radius"] > 15),
                    )
                )
    rows: list[MetricRow] = []

    async def on_batch(predictions: Any, _labels: Any) -> None:
        rows.extend(engine.update(predictions))

    run_ingestor(BatchIngestor(settings, sink, on_batch=on_batch), ingested(WINDOWS * PER_WINDOW))
    rows.extend(engine.flush())
    return rows


def _flags(rows: list[MetricRow]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for r in rows:
        if r.metric == "drifted" and r.value == 1.0:
            out.setdefault(int((r.window_start - T0) // W), set()).add(r.feature)
    return out


@pytest.mark.parametrize("shift", [False, True], ids=["control", "shifted"])
def test_a_public_data_set_replayed_flags_only_the_shift(
    shift: bool, settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    rows = _replay(settings, sink_factory(settings), shift)
    assert len({r.window_start for r in rows}) == WINDOWS
    flags = _flags(rows)
    if not shift:
        assert flags == {}  # no drift flag in any window
    else:
        assert set(flags) == set(range(SHIFT_FROM, WINDOWS))  # from the first shifted window on, every one
        assert all(features == set(SHIFTED) for features in flags.values()), flags  # exactly those two
