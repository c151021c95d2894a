"""The monitoring engine on synthetic streams with a known shift at a known window."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from driftline.events import Prediction
from driftline.metrics.rows import MetricRow
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine

T0 = 1_700_000_000.0 - (1_700_000_000.0 % 60)


def stream(n_windows: int, per_window: int, shift_from: int, seed: int = 0) -> list[Prediction]:
    rng = np.random.default_rng(seed)
    out = []
    for w in range(n_windows):
        shifted = w >= shift_from
        for i in range(per_window):
            out.append(
                Prediction(
                    event_id=f"{w}-{i}",
                    model="m",
                    version="v1",
                    ts=T0 + w * 60 + i * 60 / per_window,
                    features={
                        "income": float(rng.normal(50 + (15 if shifted else 0), 10)),
                        "age": float(rng.normal(40, 12)),
                        "plan": str(rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2])),
                    },
                    prediction=int(rng.integers(0, 2)),
                    latency_ms=float(rng.lognormal(1, 0.5)),
                    kpis={"revenue": 2.0},
                )
            )
    return out


def run(events: list[Prediction], batch: int = 700, spec: MonitorSpec | None = None) -> list[MetricRow]:
    if spec is None:
        eng = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=2000)
    else:
        eng = MonitoringEngine(spec, reference_events=2000)
    rows: list[MetricRow] = []
    for i in range(0, len(events), batch):
        rows.extend(eng.update(events[i : i + batch]))
    return rows + eng.flush()


def test_shift_is_flagged_on_exactly_the_shifted_feature_from_its_window_on() -> None:
    rows = run(stream(n_windows=12, per_window=1000, shift_from=6))
    drifted = {(r.window_start, r.feature) for r in rows if r.metric == "drifted"}
    for w in range(12):
        start = T0 + w * 60
        flagged = {f for s, f in drifted if s == start}
        assert flagged == ({"income"} if w >= 6 else set()), (w, flagged)
    psi = {r.window_start: r.value for r in rows if r.metric == "psi" and r.feature == "income"}
    # the first 2,000 events (windows 0-1) become the reference: drift is computed once it exists
    assert T0 not in psi
    assert all(psi[T0 + w * 60] < 0.05 for w in range(2, 6))
    assert all(psi[T0 + w * 60] > 0.5 for w in range(6, 12))


def test_a_window_open_when_the_reference_completes_gets_no_drift() -> None:
    """The reference fills up 1,900 events into window 1 (batches of 10): without care, the last
    100 events of that window would get a PSI of their own, large from noise alone."""
    events = stream(n_windows=4, per_window=1000, shift_from=99, seed=5)
    eng = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=1900)
    rows: list[MetricRow] = []
    for i in range(0, len(events), 10):
        rows.extend(eng.update(events[i : i + 10]))
    rows += eng.flush()
    drift_windows = {r.window_start for r in rows if r.family == "drift"}
    assert drift_windows == {T0 + 120, T0 + 180}
    quality_windows = {r.window_start for r in rows if r.metric == "missing_rate"}
    assert quality_windows == {T0 + w * 60 for w in range(4)}


@pytest.mark.parametrize("batch", [4000, 1500, 999])
def test_reference_period_windows_get_no_drift_whatever_the_batch_size(batch: int) -> None:
    """A worker that is behind fetches the reference and the windows after it in one batch: the
    windows holding reference events still get no drift (the demo's flaky CI run fetched 8,000)."""
    events = stream(n_windows=4, per_window=1000, shift_from=99, seed=6)
    eng = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=1900)
    rows: list[MetricRow] = []
    for i in range(0, len(events), batch):
        rows.extend(eng.update(events[i : i + batch]))
    rows += eng.flush()
    assert {r.window_start for r in rows if r.family == "drift"} == {T0 + 120, T0 + 180}
    assert {r.window_start for r in rows if r.metric == "missing_rate"} == {T0 + w * 60 for w in range(4)}
    assert sum(r.value for r in rows if r.metric == "predictions") == 4000  # every event in its window


def test_no_false_alarms_on_a_stable_stream() -> None:
    rows = run(stream(n_windows=20, per_window=800, shift_from=99, seed=3))
    assert [r for r in rows if r.metric == "drifted"] == []


def test_data_quality_latency_and_kpis() -> None:
    events = stream(n_windows=3, per_window=1000, shift_from=99)
    window2 = [e for e in events if e.ts >= T0 + 120]
    for e in window2[:100]:
        e.features["age"] = None
    for e in window2[100:150]:
        e.features["age"] = "forty"
    rows = run(events)
    by = {(r.window_start, r.metric, r.feature): r.value for r in rows}
    w2 = T0 + 120
    assert by[(w2, "missing_rate", "age")] == pytest.approx(0.1)
    assert by[(w2, "type_violation_rate", "age")] == pytest.approx(0.05)
    assert by[(T0, "missing_rate", "age")] == 0.0
    lat = np.array([e.latency_ms for e in window2])
    for q in (50, 95, 99):
        assert by[(w2, f"latency_p{q}_ms", "")] == pytest.approx(np.percentile(lat, q), rel=0.03)
    assert by[(w2, "sum", "revenue")] == 2000.0
    assert by[(w2, "predictions", "")] == 1000


def test_late_events_are_dropped_and_counted() -> None:
    events = stream(n_windows=4, per_window=500, shift_from=99)
    eng = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=500)
    eng.update(events)  # closes windows 0-2
    late = [e for e in events[:10]]
    assert eng.update(late) == []
    assert eng.dropped_late() == 10


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        MonitoringEngine(window_s=0)


def test_absent_features_count_as_missing() -> None:
    events = stream(n_windows=3, per_window=1000, shift_from=99)
    for e in events[2000:2200]:
        del e.features["age"]  # not sent at all, rather than sent as null
    rows = run(events)
    rate = {r.window_start: r.value for r in rows if r.metric == "missing_rate" and r.feature == "age"}
    assert rate[T0 + 120] == pytest.approx(0.2)
    assert rate[T0] == 0.0


def test_score_and_prediction_drift_are_watched_like_features() -> None:
    events = stream(n_windows=8, per_window=1000, shift_from=99)
    rng = np.random.default_rng(8)
    for i, e in enumerate(events):
        shifted = i >= 4000
        e.score = float(np.clip(rng.normal(0.6 if shifted else 0.3, 0.1), 0, 1))
        e.prediction = int(e.score >= 0.5)
    rows = run(events)
    flagged = {(r.window_start, r.feature) for r in rows if r.metric == "drifted"}
    assert {f for s, f in flagged if s >= T0 + 4 * 60} == {"[score]", "[prediction]"}
    assert not {f for s, f in flagged if s < T0 + 4 * 60}


def test_sliding_windows_equal_tumbling_windows_where_they_coincide() -> None:
    events = stream(n_windows=12, per_window=600, shift_from=6)
    sliding = MonitorSpec.from_dict({"models": {"m": {"window": "3m", "slide": "1m", "allowed_lateness": 0}}})
    tumbling = MonitorSpec.from_dict({"models": {"m": {"window": "3m", "allowed_lateness": 0}}})
    a = [r for r in run(events, spec=sliding) if r.complete and not r.metric.endswith("_alarm")]
    b = [r for r in run(events, spec=tumbling) if r.complete and not r.metric.endswith("_alarm")]
    ends = sorted({r.window_end for r in a})
    assert all(e2 - e1 == 60 for e1, e2 in itertools.pairwise(ends))  # a window every minute
    assert {r.window_end - r.window_start for r in a} == {180}
    by_a = {(r.window_start, r.metric, r.feature, r.segment): r.value for r in a}
    by_b = {(r.window_start, r.metric, r.feature, r.segment): r.value for r in b}
    shared = [k for k in by_b if k[0] in {r.window_start for r in a}]
    assert len(shared) > 100
    for key in shared:
        assert by_a[key] == pytest.approx(by_b[key], rel=1e-12, abs=1e-12), key


def test_bad_slide() -> None:
    from driftline.exceptions import ConfigError

    with pytest.raises(ConfigError, match="divide it"):
        MonitorSpec.from_dict({"models": {"m": {"window": "5m", "slide": "2m"}}})


def test_multivariate_signal_sees_a_broken_correlation_that_marginals_hide() -> None:
    rng = np.random.default_rng(12)
    events = []
    for w in range(10):
        for i in range(800):
            a = float(rng.normal())
            b = float(a * 0.98 + rng.normal() * 0.2) if w < 5 else float(rng.normal() * np.sqrt(0.98**2 + 0.04))
            events.append(
                Prediction(
                    event_id=f"{w}-{i}",
                    model="m",
                    version="v1",
                    ts=T0 + w * 60 + i * 0.07,
                    features={"a": a, "b": b, "c": float(rng.normal())},
                    prediction=0,
                )
            )
    rows = run(events)
    ratio = {r.window_start: r.value for r in rows if r.metric == "pca_error_ratio" and r.complete}
    assert all(ratio[T0 + w * 60] < 1.5 for w in range(3, 5)), ratio
    assert all(ratio[T0 + w * 60] > 3 for w in range(5, 9)), ratio
    assert not [r for r in rows if r.metric == "drifted" and r.feature in ("a", "b", "c")]


def test_profile_with_pca_round_trips() -> None:
    from driftline.metrics.profiles import ReferenceProfile

    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    p = ReferenceProfile.build("m", "v", {"a": a, "b": a + rng.normal(size=500) * 0.1, "c": rng.normal(size=500)})
    assert p.pca is not None and p.pca.features == ["a", "b", "c"] and len(p.pca.components) == 2
    assert ReferenceProfile.from_json(p.to_json()) == p


def test_sketches_nobody_takes_are_bounded_and_the_oldest_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    import driftline.streams.monitor as monitor

    events = stream(n_windows=8, per_window=400, shift_from=99)
    taker = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=500)
    taken = []
    for i in range(0, len(events), 700):
        taker.update(events[i : i + 700])
        taken += taker.take_sketches()
    taker.flush()
    taken += taker.take_sketches()
    assert len(taken) > 6 and taker.sketches_dropped == 0

    monkeypatch.setattr(monitor, "MAX_PENDING_SKETCHES", 5)
    hoarder = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=500)
    for i in range(0, len(events), 700):
        hoarder.update(events[i : i + 700])
    hoarder.flush()
    kept = hoarder.take_sketches()
    assert kept == taken[-5:]  # the newest five, equal to what a taker got
    assert hoarder.sketches_dropped == len(taken) - 5
    assert hoarder.take_sketches() == []


VERSIONS = {("m", "v1"), ("m", "v2"), ("n", "v1")}


def varied_stream(seed: int = 3) -> list[Prediction]:
    """Two models, three versions, a shift, repeated ids, late events, absent scores, latencies and KPIs,
    and a text now and then where a number belongs (a type violation)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(6000):
        w = i // 500
        model, version = ("m", "v1") if i % 3 else (("m", "v2") if i % 2 else ("n", "v1"))
        features: dict[str, float | str | bool | None] = {
            "income": (float(rng.normal(50 + (20 if w >= 7 else 0), 10)) if i % 17 else None)
            if i < 3000 or i % 251  # after the references: a text there would make the feature categorical
            else "n/a",
            "plan": str(rng.choice(["a", "b", "c"])),
            "vip": bool(i % 5 == 0),
        }
        ts = T0 + w * 60 + (i % 500) * 0.1 - (120 if i % 401 == 0 else 0)  # some events arrive late
        out.append(
            Prediction(
                event_id=f"e{i - 1 if i % 97 == 0 else i}",
                model=model,
                version=version,
                ts=ts,
                features=features,
                prediction=int(rng.integers(0, 2)),
                score=float(rng.random()) if i % 11 else None,
                latency_ms=float(rng.lognormal(1, 0.5)) if i % 13 else None,
                kpis={"revenue": float(i % 7)},
            )
        )
    return out


@pytest.mark.parametrize("per_version", [False, True], ids=["mixed-envelopes", "one-version-per-envelope"])
@pytest.mark.parametrize("spec", [None, MonitorSpec.from_dict({"defaults": {"window": "60s", "slide": "20s"}})])
def test_columnar_envelopes_give_the_numbers_their_events_give(spec: MonitorSpec | None, per_version: bool) -> None:
    """Envelopes that mix versions are read through a view per version (`ColumnSlice`), envelopes of
    one version each are joined per version; both give the rows and sketches of the same events as objects."""
    from driftline.events import ColumnarEvents, decode_columnar, encode_columnar

    events = varied_stream()
    by_objects = MonitoringEngine(spec, reference_events=400, window_s=None if spec else 60, allowed_lateness_s=30)
    by_columns = MonitoringEngine(spec, reference_events=400, window_s=None if spec else 60, allowed_lateness_s=30)
    rows_o, rows_c, sketches_o, sketches_c = [], [], [], []
    for start in range(0, len(events), 1000):  # one fetch: two envelopes of mixed versions
        chunk = events[start : start + 1000]
        envelopes = []
        halves = [chunk[:500], chunk[500:]]
        if per_version:  # the SDK's way: an envelope per model version, two per version here
            halves = [[e for e in h if (e.model, e.version) == key] for key in sorted(VERSIONS) for h in halves]
        for half in halves:
            checked = decode_columnar(encode_columnar(half), "prediction")
            assert isinstance(checked, ColumnarEvents)
            envelopes.append(checked)
        rows_o += by_objects.update(chunk if per_version else [row for e in envelopes for row in e.rows()])
        rows_c += by_columns.update_columns(envelopes)
        sketches_o += by_objects.take_sketches()
        sketches_c += by_columns.take_sketches()
    rows_o += by_objects.flush()
    rows_c += by_columns.flush()
    assert len(rows_o) > 500 and {r.family for r in rows_o} >= {"drift", "data_quality", "kpi", "volume"}
    assert any(r.metric == "type_violation_rate" and r.value > 0 for r in rows_o)
    if per_version:  # the envelopes came in another order of versions: each version's rows in order
        rows_o, rows_c, sketches_o, sketches_c = (
            sorted(x, key=lambda r: (r.model, r.version)) for x in (rows_o, rows_c, sketches_o, sketches_c)
        )
    assert rows_c == rows_o  # exactly: the same values in the same order
    assert sketches_c == sketches_o
    assert by_columns.dropped_late() == by_objects.dropped_late() > 0


def test_an_auto_built_reference_is_handed_out_once_and_a_restart_keeps_the_drift() -> None:
    """Issue 17.4: a version's auto-built reference was not stored; after a crash the worker built a new
    one from current, drifted traffic, and the drift disappeared."""
    from driftline.metrics.profiles import ReferenceProfile

    events = stream(n_windows=12, per_window=500, shift_from=6)
    first = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=2000)
    first.update(events[:2500])  # the reference: the first 2,000 events (windows 0-3)
    (profile,) = first.take_profiles()
    assert first.take_profiles() == []  # handed out once
    stored = ReferenceProfile.from_json(profile.to_json())  # as it comes back from ClickHouse

    def drifted(engine: MonitoringEngine) -> set[float]:
        rows = engine.update(events[3500:]) + engine.flush()
        return {r.window_start for r in rows if r.metric == "drifted" and r.feature == "income"}

    restarted = MonitoringEngine(
        window_s=60, allowed_lateness_s=0, reference_events=2000, profiles={("m", "v1"): stored}
    )
    assert drifted(restarted) == {T0 + w * 60 for w in range(7, 12)}  # the shift (from window 6) still seen
    assert restarted.take_profiles() == []  # a version with a stored profile builds none
    forgetful = MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=2000)
    assert drifted(forgetful) != drifted(restarted)  # what happened before: the reference was rebuilt later


def test_an_engine_snapshot_continues_exactly() -> None:
    """The crash-safe checkpoint's engine part: a snapshot taken mid-stream and loaded into a new engine
    gives the same rows as the engine that never stopped (the rest of issue 18.3 is the offsets)."""
    events = stream(n_windows=10, per_window=400, shift_from=5)
    make = lambda: MonitoringEngine(window_s=60, allowed_lateness_s=0, reference_events=1000)  # noqa: E731
    single = make()
    expected = single.update(events) + single.flush()
    first = make()
    rows = first.update(events[:2300])
    second = make()
    assert second.load(first.snapshot()) == 1
    rows += second.update(events[2300:]) + second.flush()
    key = lambda r: (r.window_start, r.family, r.metric, r.feature, r.segment)  # noqa: E731
    assert {key(r): r.value for r in rows} == pytest.approx({key(r): r.value for r in expected}, rel=1e-12)
    assert len(rows) == len(expected)


@pytest.mark.parametrize("columnar", [False, True])
def test_a_reference_from_one_batch_equals_the_one_gathered_over_many(columnar: bool) -> None:
    """A reference that completes inside one batch is profiled from that batch's columns; one gathered
    over many batches from a row per event. Both are the same profile."""
    from driftline.events import ColumnarEvents, decode_columnar, encode_columnar

    events = [e for e in varied_stream() if (e.model, e.version) == ("m", "v1")][:1000]

    def fed(step: int) -> list:  # type: ignore[type-arg]
        engine = MonitoringEngine(reference_events=400, window_s=60, allowed_lateness_s=30)
        for start in range(0, len(events), step):
            chunk = events[start : start + step]
            if columnar:
                checked = decode_columnar(encode_columnar(chunk), "prediction")
                assert isinstance(checked, ColumnarEvents)
                engine.update_columns([checked])
            else:
                engine.update(chunk)
        return engine.take_profiles()

    (whole,), (gathered,) = fed(1000), fed(70)
    assert whole.to_json() == gathered.to_json()
    assert {"income", "plan", "vip"} <= set(whole.features)
