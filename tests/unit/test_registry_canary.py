"""The model registry, sticky routing, and canary analysis decisions."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from driftline.exceptions import ConfigError
from driftline.metrics.rows import MetricRow
from driftline.models.canary import CanaryAnalyzer, CanarySpec
from driftline.models.registry import ModelState
from driftline.models.routing import bucket, route_for
from driftline.spec import MonitorSpec

W = 300.0


def two_versions(weight: float = 10.0) -> ModelState:
    s = ModelState("m").register("v1", "production", by="ana", reason="first", now=1.0)
    return s.register("v2", "canary", weight=weight, by="ana", reason="try", now=2.0)


def test_registry_history_and_rules() -> None:
    s = two_versions()
    assert (s.production, s.canaries, s.revision, s.change.action if s.change else "") == (
        "v1",
        {"v2": 10.0},
        2,
        "register",
    )
    s = s.register("v3", "shadow", by="bo", reason="shadow it", now=3.0)
    assert s.shadows == ["v3"]
    promoted = s.promote("v2", by="ana", reason="good", now=4.0)
    assert promoted.production == "v2" and promoted.stage_of("v1") == "retired" and promoted.canaries == {}
    with pytest.raises(ConfigError, match="add up to 110"):
        s.register("v4", "canary", weight=100, by="a", reason="x", now=5.0)
    with pytest.raises(ConfigError, match="production version"):
        s.rollback("v1", by="a", reason="x", now=5.0)
    locked = s.lock(by="ana", reason="incident", now=5.0)
    with pytest.raises(ConfigError, match="locked"):
        locked.set_weight("v2", 20, by="a", reason="x", now=6.0)
    assert ModelState.from_dict(locked.as_dict()) == locked


def test_routing_is_sticky_and_follows_weights() -> None:
    state = two_versions(weight=20)
    keys = [f"user-{i}" for i in range(20_000)]
    routes = [route_for(state, k) for k in keys]
    share = Counter(r.version for r in routes)["v2"] / len(keys)
    assert abs(share - 0.20) < 0.015
    assert all(route_for(state, k) == r for k, r in zip(keys[:500], routes, strict=False))  # sticky
    wider = route_for(state.set_weight("v2", 40, by="a", reason="step", now=3.0), keys[0])
    if routes[0].version == "v2":
        assert wider.version == "v2"  # raising the weight keeps canary users on the canary
    rolled = state.rollback("v2", by="canary-analysis", reason="bad", now=4.0)
    assert {route_for(rolled, k).version for k in keys[:2000]} == {"v1"}
    assert 0 <= bucket("m", "k") < 100


def rows(
    version: str, i: int, accuracy: float | None, n: int = 500, drift: float = 0.0, lat: float = 5.0
) -> list[MetricRow]:
    s, e = i * W, (i + 1) * W
    out = [
        MetricRow(s, e, "m", version, "volume", "predictions", "", "", n, n),
        MetricRow(s, e, "m", version, "drift", "drift_share", "", "", drift, n),
        MetricRow(s, e, "m", version, "kpi", "latency_p99_ms", "", "", lat, n),
    ]
    if accuracy is not None:
        out.append(MetricRow(s, e, "m", version, "quality", "accuracy", "", "", accuracy, n))
        out.append(MetricRow(s, e, "m", version, "fairness", "demographic_parity_difference", "age", "", 0.1, n))
    return out


def step(
    an: CanaryAnalyzer, state: ModelState, i: int, canary_acc: float | None, primary_acc: float | None, **kw: float
) -> list[str]:
    batch = rows("v1", i, primary_acc) + rows("v2", i, canary_acc, **kw)
    an.observe(batch)
    out = []
    for canary, start, end in an.windows_to_analyze(state, batch):
        d = an.analyze(state, canary, start, end)
        if d is not None:
            out.append(d.action)
    return out


def test_degrading_canary_is_rolled_back_after_max_failed_checks() -> None:
    an = CanaryAnalyzer(default=CanarySpec(max_failed_checks=2))
    state = two_versions()
    assert step(an, state, 0, 0.95, 0.95) == ["step"]
    assert step(an, state, 1, 0.70, 0.95) == ["hold"]  # one failed interval
    assert step(an, state, 1, 0.70, 0.95) == []  # the same window again: idempotent
    actions = step(an, state, 2, 0.70, 0.95)
    assert actions == ["rollback"]


def test_healthy_canary_steps_up_and_is_promoted() -> None:
    an = CanaryAnalyzer(default=CanarySpec(step_weight=20, max_weight=50, promote_after=2))
    state = two_versions(weight=10)
    decisions = []
    for i in range(6):
        batch = rows("v1", i, 0.95) + rows("v2", i, 0.96)
        an.observe(batch)
        for canary, start, end in an.windows_to_analyze(state, batch):
            d = an.analyze(state, canary, start, end)
            assert d is not None
            decisions.append((d.action, d.weight_after))
            if d.action == "step":
                state = state.set_weight("v2", d.weight_after, by="canary-analysis", reason=d.reason, now=float(i))
            if d.action == "promote":
                state = state.promote("v2", by="canary-analysis", reason=d.reason, now=float(i))
    assert decisions == [("step", 30.0), ("step", 50.0), ("hold", 50.0), ("promote", 100.0)]
    assert state.production == "v2"


def test_no_data_counts_as_failed_and_labels_not_yet_in_are_inconclusive() -> None:
    an = CanaryAnalyzer(default=CanarySpec(max_failed_checks=2))
    state = two_versions()
    # no labels for anyone yet: accuracy and parity inconclusive -> hold, not a failure
    assert step(an, state, 0, None, None) == ["hold"]
    # the canary sends nothing for two windows: no data -> failed, twice -> rollback
    actions = []
    for i in (1, 2, 3):
        batch = rows("v1", i, 0.95)
        an.observe(batch)
        for canary, start, end in an.windows_to_analyze(state, batch):
            d = an.analyze(state, canary, start, end)
            actions.append(d.action if d else None)
            assert d is None or any(c.status == "fail" and "no data" in c.detail for c in d.checks)
    assert actions == ["hold", "rollback"]


def test_latency_and_drift_checks() -> None:
    an = CanaryAnalyzer(default=CanarySpec(max_failed_checks=1))
    state = two_versions()
    batch = rows("v1", 0, 0.9) + rows("v2", 0, 0.9, lat=50.0)
    an.observe(batch)
    d = an.analyze(state, "v2", 0, W)
    assert d is not None and d.action == "rollback"
    (lat,) = [c for c in d.checks if c.name == "latency_p99_ratio"]
    assert lat.status == "fail" and math.isclose(lat.canary / lat.primary, 10.0)


def test_never_rolls_back_to_a_failing_primary() -> None:
    an = CanaryAnalyzer(default=CanarySpec(max_failed_checks=1, primary_min_accuracy=0.8))
    state = two_versions()
    assert step(an, state, 0, 0.5, 0.6) == ["refuse_rollback"]


def test_locked_model_is_left_alone() -> None:
    an = CanaryAnalyzer()
    state = two_versions().lock(by="ana", reason="incident", now=3.0)
    assert step(an, state, 0, 0.1, 0.95) == []


def test_canary_spec_from_yaml_and_errors() -> None:
    spec = MonitorSpec.from_yaml(
        "models: {m: {canary: {max_failed_checks: 3, step_weight: 5, checks: {accuracy_drop: 0.02}}}}"
    )
    c = spec.for_model("m").canary
    assert (c.max_failed_checks, c.step_weight, dict(c.checks)) == (3, 5, {"accuracy_drop": 0.02})
    with pytest.raises(ConfigError, match="checks are"):
        MonitorSpec.from_yaml("models: {m: {canary: {checks: {vibes: 1}}}}")
    with pytest.raises(ConfigError, match="step_weight <= max_weight"):
        MonitorSpec.from_yaml("models: {m: {canary: {step_weight: 60, max_weight: 50}}}")


def test_window_analysed_before_its_labels_is_analysed_again_when_they_come() -> None:
    an = CanaryAnalyzer(default=CanarySpec(max_failed_checks=2))
    state = two_versions()
    for i in range(3):  # three windows stream past before any label is joined
        assert step(an, state, i, None, None) == ["hold"]
    labelled = []
    for i in range(3):  # the quality job catches up: all three windows' accuracy at once
        labelled += [r for r in rows("v1", i, 0.95) + rows("v2", i, 0.6) if r.family in ("quality", "fairness")]
    an.observe(labelled)
    actions = []
    for c, s, e in an.windows_to_analyze(state, labelled):
        d = an.analyze(state, c, s, e)
        if d is not None:
            actions.append(d.action)
            if d.action == "rollback":
                state = state.rollback("v2", by="canary-analysis", reason=d.reason, now=9.0)
    assert actions == ["hold", "rollback"]  # two failed intervals -> rolled back; then no canary is left
    assert an.windows_to_analyze(state, labelled) == []  # each window gets its labelled analysis once


def _primary_only(an: CanaryAnalyzer, until: int) -> ModelState:
    """Windows 0..until-1 of the primary alone; then the canary is registered."""
    state = ModelState("m").register("v1", "production", by="ana", reason="first", now=0.0)
    for i in range(until):
        batch = rows("v1", i, 0.95)
        an.observe(batch)
        assert an.windows_to_analyze(state, batch) == []
    return state.register("v2", "canary", weight=20, by="ana", reason="try", now=1.0)


def _run(an: CanaryAnalyzer, state: ModelState, windows: range, canary_from: int | None) -> list[tuple[int, str]]:
    out = []
    for i in windows:
        batch = rows("v1", i, 0.95) + (rows("v2", i, 0.60) if canary_from is not None and i >= canary_from else [])
        an.observe(batch)
        for canary, start, end in an.windows_to_analyze(state, batch):
            d = an.analyze(state, canary, start, end)
            if d is not None:
                out.append((i, d.action))
    return out


def test_a_canary_is_judged_from_its_first_traffic_not_from_before() -> None:
    """Issue 17.5: registered at 20 % before its traffic started, a canary was rolled back within two
    windows for "no data"; the window that closed just before registration counted as a failure."""
    an = CanaryAnalyzer(default=CanarySpec(max_failed_checks=2, progress_deadline_s=int(30 * W)))
    state = _primary_only(an, 10)  # registered after window 9 closed
    # window 9 again (a recomputation: it closed before the registration), then 10 to 21 without canary
    # traffic, the deadline not reached: nothing is judged
    assert _run(an, state, range(9, 22), canary_from=None) == []
    # traffic from window 22 on, worse than the primary: rolled back within three intervals of it
    decisions = _run(an, state, range(22, 30), canary_from=22)
    rollback = [i for i, action in decisions if action == "rollback"]
    assert rollback and 22 <= rollback[0] <= 24
    assert all(i >= 22 for i, _ in decisions)  # nothing judged before the first traffic


def test_a_canary_that_never_serves_is_rolled_back_at_its_progress_deadline() -> None:
    an = CanaryAnalyzer(default=CanarySpec(progress_deadline_s=int(5 * W)))
    state = _primary_only(an, 10)  # registered at the end of window 9 (event time 10 W)
    decisions = _run(an, state, range(10, 20), canary_from=None)
    assert decisions[0] == (14, "rollback")  # window 14 ends at 15 W: the deadline
    d = an.analyze(state, "v2", 14 * W, 15 * W)
    assert d is None  # decided once


def test_progress_deadline_in_the_spec() -> None:
    spec = CanarySpec.from_dict({"progress_deadline": "20m"}, "models.m.canary")
    assert spec.progress_deadline_s == 1200
    with pytest.raises(ConfigError, match="progress_deadline"):
        CanarySpec.from_dict({"progress_deadline": "soon"}, "models.m.canary")
