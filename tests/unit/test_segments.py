"""Issue 20.2: drift and data quality per segment (an attribute's top-K values plus "other", or a predicate on
a feature), equal to a direct computation on each segment's events, bounded however many values there are."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.events import Prediction
from driftline.exceptions import ConfigError
from driftline.metrics.drift import NumericDrift
from driftline.metrics.profiles import ReferenceProfile
from driftline.metrics.segments import TopK
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine

W = 60
T0 = 1_800_000_000.0 // W * W
SPEC = """
defaults:
  window: 1m
  allowed_lateness: 0s
  segments:
    - {attribute: region, top_k: 3}
    - {name: seniors, where: "age >= 60"}
"""


def events(n: int, seed: int, distinct: int = 30) -> list[Prediction]:
    """Region r0 (the largest) drifts in x after the first minute; the other regions do not."""
    rng = np.random.default_rng(seed)
    regions = (rng.zipf(1.6, n) - 1) % distinct
    out = []
    for i in range(n):
        ts = T0 + i * (3 * W / n)
        region = f"r{regions[i]}"
        shift = 2.0 if region == "r0" and ts >= T0 + W else 0.0
        attributes = {"region": region} if i % 50 else {}  # some events lack the attribute
        out.append(
            Prediction(
                event_id=f"e{i}",
                model="m",
                version="v1",
                ts=ts,
                features={"x": float(rng.normal(shift, 1)), "age": float(rng.integers(20, 80))},
                prediction=int(rng.uniform() < 0.5),
                score=float(rng.uniform()),
                attributes=attributes,
            )
        )
    return out


def profile() -> ReferenceProfile:
    rng = np.random.default_rng(99)
    return ReferenceProfile.build("m", "v1", {"x": rng.normal(size=4000), "age": rng.integers(20, 80, 4000)})


def by_segment(rows: list) -> dict[tuple[float, str, str, str], float]:  # type: ignore[type-arg]
    return {(r.window_start, r.segment, r.metric, r.feature): r.value for r in rows if r.segment}


def test_per_segment_drift_equals_a_direct_computation() -> None:
    evs = events(6000, seed=1)
    ref = profile()
    engine = MonitoringEngine(MonitorSpec.from_yaml(SPEC), profiles={("m", "v1"): ref})
    rows = engine.update(evs) + engine.flush()
    got = by_segment(rows)
    segments = {seg for (_, seg, _, _) in got}
    assert {"region=r0", "region=r1", "region=r2", "region=other", "region=(missing)", "seniors"} == segments
    for start in (T0, T0 + W, T0 + 2 * W):
        window = [e for e in evs if start <= e.ts < start + W]
        for label, members in (
            ("region=r0", [e for e in window if e.attributes.get("region") == "r0"]),
            ("region=other", [e for e in window if e.attributes.get("region", "r0") not in ("r0", "r1", "r2")]),
            ("seniors", [e for e in window if e.features["age"] >= 60]),
        ):
            direct = NumericDrift(ref.features["x"]).update_many(np.array([e.features["x"] for e in members])).get()
            assert got[(start, label, "psi", "x")] == pytest.approx(direct["psi"], rel=1e-12)
            assert got[(start, label, "ks", "x")] == pytest.approx(direct["ks"], rel=1e-12)
            assert got[(start, label, "predictions", "")] == len(members)
    assert got[(T0 + W, "region=r0", "drift_share", "")] > 0  # the drifting segment is flagged
    assert got[(T0 + W, "region=r1", "drift_share", "")] == 0 and got[(T0, "region=r0", "drift_share", "")] == 0
    unsegmented = [r for r in rows if not r.segment and r.metric == "psi" and r.feature == "x"]
    assert len(unsegmented) == 3  # the whole traffic's rows are as before


def test_segments_stay_bounded_and_survive_a_checkpoint() -> None:
    evs = events(6000, seed=2, distinct=5000)
    spec = MonitorSpec.from_yaml(SPEC)
    whole = MonitoringEngine(spec, profiles={("m", "v1"): profile()})
    expected = by_segment(whole.update(evs) + whole.flush())
    per_window: dict[float, set[str]] = {}
    for start, seg, _, _ in expected:
        per_window.setdefault(start, set()).add(seg)
    assert all(len({s for s in segs if s.startswith("region=")}) <= 3 + 2 for segs in per_window.values())
    first = MonitoringEngine(spec, profiles={("m", "v1"): profile()})
    rows = first.update(evs[:2900])
    second = MonitoringEngine(spec, profiles={("m", "v1"): profile()})
    second.load(first.snapshot())
    rows += second.update(evs[2900:]) + second.flush()
    assert by_segment(rows) == pytest.approx(expected, rel=1e-12)


def test_top_k_is_bounded_and_finds_the_largest() -> None:
    rng = np.random.default_rng(3)
    values = [f"v{int(v)}" for v in np.minimum(rng.zipf(1.5, 50_000), 10_000)]
    t = TopK(5)
    for part in np.array_split(np.array(values, dtype=object), 50):
        t.update_many(part.tolist())
        assert len(t.counts) <= 20
    exact = {v for v, _ in sorted(((v, values.count(v)) for v in set(values)), key=lambda x: -x[1])[:5]}
    assert t.top() == exact
    with pytest.raises(ConfigError, match="top_k"):
        MonitorSpec.from_yaml("defaults: {segments: [{attribute: a, top_k: 1000}]}")
    with pytest.raises(ConfigError, match="where"):
        MonitorSpec.from_yaml("defaults: {segments: [{name: s, where: 'age is old'}]}")
