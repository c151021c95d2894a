"""Quality and fairness joined in ClickHouse (chdb) equal scikit-learn/fairlearn on the same windows;
a late label updates its prediction's window."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn import metrics as skm

from driftline.config import Settings
from driftline.events import Label, Prediction
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
from driftline.spec import MonitorSpec
from driftline.streams.quality_job import QualityJob

pytestmark = pytest.mark.integration
W = 300


def _data(n: int, t0: float, prefix: str = "q") -> tuple[list[Prediction], list[Label]]:
    rng = np.random.default_rng(5)
    preds, labels = [], []
    for i in range(n):
        y = int(rng.integers(0, 2))
        group = str(rng.choice(["f", "m"]))
        score = float(np.clip(rng.normal(0.35 + 0.3 * y + (0.05 if group == "m" else 0), 0.2), 0, 1))
        preds.append(
            Prediction(
                event_id=f"{prefix}{i}",
                model="credit",
                version="v1",
                ts=t0 + i * (3 * W / n),
                features={},
                prediction=int(score >= 0.5),
                score=score,
                attributes={"sex": group},
            )
        )
        if i % 4:  # 75 % labelled
            labels.append(Label(event_id=f"{prefix}{i}", label=y, ts=t0 + i * (3 * W / n) + 30))
    return preds, labels


def test_quality_and_fairness_per_window_match_references(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 3600)
    preds, labels = _data(3000, t0)
    late = labels[-50:]
    sink.write(SinkBatch(preds, labels[:-50], [], token="a"))
    spec = MonitorSpec.from_dict({"defaults": {"window": W, "thresholds": {"min_group_size": 10}}})
    job = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0)
    rows = job.run_once()
    got = {(r.window_start, r.family, r.metric, r.feature, r.segment): r.value for r in rows}
    assert {r.window_start for r in rows} == {t0, t0 + W, t0 + 2 * W}

    label_of = {lab.event_id: int(lab.label) for lab in labels[:-50]}
    for w in range(3):
        start = t0 + w * W
        in_win = [p for p in preds if start <= p.ts < start + W]
        lab = [p for p in in_win if p.event_id in label_of]
        y = np.array([label_of[p.event_id] for p in lab])
        s = np.array([p.score for p in lab])
        pred = np.array([int(p.prediction) for p in lab])
        sex = np.array([p.attributes["sex"] for p in lab])
        assert got[(start, "quality", "label_coverage", "", "")] == pytest.approx(len(lab) / len(in_win))
        assert got[(start, "quality", "accuracy", "", "")] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
        assert got[(start, "quality", "f1", "", "")] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
        assert got[(start, "quality", "log_loss", "", "")] == pytest.approx(skm.log_loss(y, s), abs=1e-9)
        auc_bound = got[(start, "quality", "roc_auc_error_bound", "", "")]
        assert abs(got[(start, "quality", "roc_auc", "", "")] - skm.roc_auc_score(y, s)) <= auc_bound + 1e-12
        dp = demographic_parity_difference(y, pred, sensitive_features=sex)
        eo = equalized_odds_difference(y, pred, sensitive_features=sex)
        assert got[(start, "fairness", "demographic_parity_difference", "sex", "")] == pytest.approx(dp, abs=1e-12)
        assert got[(start, "fairness", "equalized_odds_difference", "sex", "")] == pytest.approx(eo, abs=1e-12)
        assert got[(start, "quality", "label_delay_mean_s", "", "")] == pytest.approx(30.0, abs=1e-3)
        assert got[(start, "data_quality", "label_share", "", "class=1")] == pytest.approx(y.mean(), abs=1e-12)

    # nothing new: nothing recomputed; a late label: only its window is recomputed, with more coverage
    assert job.run_once() == []
    time.sleep(0.01)
    sink.write(SinkBatch([], late, [], token="b"))
    rows2 = job.run_once()
    assert {r.window_start for r in rows2} == {t0 + 2 * W}
    before = got[(t0 + 2 * W, "quality", "label_coverage", "", "")]
    after = next(r.value for r in rows2 if r.metric == "label_coverage")
    in_last = sum(1 for p in preds if p.ts >= t0 + 2 * W)
    assert after == pytest.approx(before + 50 / in_last)


def test_sliding_windows_hold_every_prediction_of_their_range(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    # 5-minute windows every minute: each window's quality is over its own five minutes of predictions
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 3600)
    preds, labels = _data(3000, t0, prefix="s")
    sink.write(SinkBatch(preds, labels, [], token="a"))
    spec = MonitorSpec.from_dict({"defaults": {"window": W, "slide": 60, "thresholds": {"min_group_size": 10}}})
    rows = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0).run_once()
    got = {(r.window_start, r.window_end, r.family, r.metric, r.feature): r.value for r in rows}
    starts = sorted({r.window_start for r in rows})
    # the data spans 15 minutes: windows begin from 4 minutes before the first event to the last minute
    assert starts == [t0 + 60 * j for j in range(-4, 15)]
    label_of = {lab.event_id: int(lab.label) for lab in labels}
    for start in starts:
        in_win = [p for p in preds if start <= p.ts < start + W]
        lab = [p for p in in_win if p.event_id in label_of]
        y = np.array([label_of[p.event_id] for p in lab])
        pred = np.array([int(p.prediction) for p in lab])
        sex = np.array([p.attributes["sex"] for p in lab])
        key = (start, start + W)
        assert got[(*key, "quality", "label_coverage", "")] == pytest.approx(len(lab) / len(in_win), abs=1e-12)
        assert got[(*key, "quality", "accuracy", "")] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
        dp = demographic_parity_difference(y, pred, sensitive_features=sex)
        assert got[(*key, "fairness", "demographic_parity_difference", "sex")] == pytest.approx(dp, abs=1e-12)
    # overlapping windows really differ (not one window's numbers copied to its neighbours)
    assert len({round(got[(s, s + W, "quality", "accuracy", "")], 12) for s in starts}) > 5


def test_error_stream_alarm_after_labels_turn_against_the_model(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 7200)
    preds, labels = _data(3000, t0)
    sink.write(SinkBatch(preds, labels, [], token="a"))
    job = QualityJob(sink.client, settings.clickhouse_database, window_s=W, overlap_s=0)
    assert [r for r in job.run_once() if r.metric == "error_drift_alarm"] == []  # a stable ~25 % error rate

    later = [
        Prediction(event_id=f"z{i}", model="credit", version="v1", ts=t0 + 3 * W + i * 0.2, features={}, prediction=1)
        for i in range(1000)
    ]
    wrong = [Label(event_id=p.event_id, label=0, ts=p.ts + 1) for p in later]
    time.sleep(0.01)
    sink.write(SinkBatch(later, wrong, [], token="b"))
    alarms = [r for r in job.run_once() if r.metric == "error_drift_alarm"]
    assert alarms and min(r.window_start for r in alarms) == t0 + 3 * W


def test_multiclass_and_regression_models(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 3600)
    rng = np.random.default_rng(9)
    truth = rng.choice(["cat", "dog", "eel"], 600)
    guess = np.where(rng.uniform(size=600) < 0.6, truth, rng.choice(["cat", "dog", "eel"], 600))
    values = rng.normal(100, 10, 600)
    estimates = values + rng.normal(0, 3, 600)
    preds = [
        Prediction(event_id=f"c{i}", model="species", version="v1", ts=t0 + i * 0.4, features={}, prediction=str(g))
        for i, g in enumerate(guess)
    ] + [
        Prediction(event_id=f"r{i}", model="price", version="v1", ts=t0 + i * 0.4, features={}, prediction=float(e))
        for i, e in enumerate(estimates)
    ]
    labels = [Label(event_id=f"c{i}", label=str(t), ts=t0 + 300) for i, t in enumerate(truth)] + [
        Label(event_id=f"r{i}", label=float(v), ts=t0 + 300) for i, v in enumerate(values)
    ]
    sink.write(SinkBatch(preds, labels, [], token="m"))
    spec = MonitorSpec.from_dict({"defaults": {"window": W}, "models": {"species": {"task": "multiclass"}}})
    rows = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0).run_once()
    got = {(r.model, r.window_start, r.metric): r.value for r in rows}
    first = guess[: int(W / 0.4)], truth[: int(W / 0.4)]
    assert got[("species", t0, "accuracy")] == pytest.approx(skm.accuracy_score(first[1], first[0]), abs=1e-12)
    assert got[("species", t0, "f1_macro")] == pytest.approx(
        skm.f1_score(first[1], first[0], average="macro"), abs=1e-12
    )
    n = int(W / 0.4)
    # stored as text and read back: compare within float formatting precision
    assert got[("price", t0, "mae")] == pytest.approx(skm.mean_absolute_error(values[:n], estimates[:n]), rel=1e-9)
    assert got[("price", t0, "rmse")] == pytest.approx(
        np.sqrt(skm.mean_squared_error(values[:n], estimates[:n])), rel=1e-9
    )


def test_fairness_under_differential_privacy_when_the_spec_asks(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 3600)
    preds, labels = _data(3000, t0)
    sink.write(SinkBatch(preds, labels, [], token="dp"))
    spec = MonitorSpec.from_dict(
        {"models": {"credit": {"window": W, "privacy": {"epsilon_per_window": 1.0, "budget": 2.0}}}}
    )
    rows = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0).run_once()
    fair = [r for r in rows if r.family == "fairness"]
    spent = [r.value for r in fair if r.metric == "dp_epsilon_spent"]
    assert spent and max(spent) <= 2.0 + 1e-9
    assert any(r.metric == "dp_budget_exhausted" for r in fair)  # three windows, budget for two
    sink.write_metrics(rows)
    # a restarted worker reads what was spent and publishes no more noisy numbers for new labels
    more_preds, more_labels = _data(1000, t0 + 3 * W, prefix="r")
    sink.write(SinkBatch(more_preds, more_labels, [], token="dp-after-restart"))
    again = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0).run_once()
    after = {r.metric for r in again if r.family == "fairness"}
    assert after == {"dp_budget_exhausted"}, after
    exact_rows = QualityJob(
        sink.client, settings.clickhouse_database, MonitorSpec.from_dict({"defaults": {"window": W}}), overlap_s=0
    ).run_once()
    exact = {(r.window_start, r.segment): r.value for r in exact_rows if r.metric == "selection_rate"}
    noisy = {(r.window_start, r.segment): r.value for r in fair if r.metric == "selection_rate"}
    assert noisy and all(abs(v - exact[k]) < 0.05 for k, v in noisy.items())  # Laplace(1) on ~500 per group


def test_a_prediction_stored_after_its_label_updates_its_window(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 3600)
    preds, labels = _data(600, t0)
    spec = MonitorSpec.from_dict({"defaults": {"window": W}})
    job = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0)
    sink.write(SinkBatch(preds[:300], labels, [], token="first"))  # every label, but only half of the predictions
    first = {r.window_start: r.value for r in job.run_once() if r.metric == "label_coverage"}
    time.sleep(0.05)
    sink.write(SinkBatch(preds[300:], [], [], token="second"))  # the rest of the predictions land after their labels
    second = {r.window_start: r.value for r in job.run_once() if r.metric == "label_coverage"}
    late_windows = {p.ts // W * W for p in preds[300:]}
    assert late_windows and late_windows <= set(second)
    labelled = {lab.event_id for lab in labels}
    for w in late_windows:
        window = [p for p in preds if p.ts // W * W == w]
        assert second[w] == pytest.approx(sum(p.event_id in labelled for p in window) / len(window))
    assert first  # the first run saw the windows it could


def test_a_group_without_positives_gets_a_missing_tpr_row_with_its_n(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """Issue 17.9: such a group's TPR was skipped silently; now a row says it is undefined, and why."""
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 3600)
    rng = np.random.default_rng(4)
    preds, labels = [], []
    for i in range(400):
        group = "young" if i % 4 == 0 else "old"
        y = 0 if group == "young" else int(rng.integers(0, 2))  # no young applicant was a positive
        preds.append(
            Prediction(
                event_id=f"g{i}",
                model="credit",
                version="v1",
                ts=t0 + i * 0.5,
                features={},
                prediction=int(rng.integers(0, 2)),
                score=0.5,
                attributes={"age": group},
            )
        )
        labels.append(Label(event_id=f"g{i}", label=y, ts=t0 + i * 0.5 + 10))
    sink.write(SinkBatch(preds, labels, [], token="nopos"))
    spec = MonitorSpec.from_dict({"defaults": {"window": W, "thresholds": {"min_group_size": 10}}})
    rows = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0).run_once()
    fair = {(r.metric, r.segment): r for r in rows if r.family == "fairness" and r.window_start == t0}
    young_tpr = fair[("tpr", "young")]
    assert np.isnan(young_tpr.value) and young_tpr.n == 0  # undefined: no positives
    young = [p for p, lab in zip(preds, labels, strict=True) if p.ts < t0 + W and p.attributes["age"] == "young"]
    assert fair[("fpr", "young")].n == len(young)  # every young applicant was a negative
    old_tpr = fair[("tpr", "old")]
    assert 0 <= old_tpr.value <= 1 and old_tpr.n > 0
    # the gap leaves the undefined TPR out (fairlearn would count it as 0)
    assert fair[("equal_opportunity_difference", "")].value == 0.0


def test_once_labels_arrive_the_estimation_error_is_a_metric(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """Issue 20.1: estimated quality (written by the engine before labels) minus the realised, per window."""
    from driftline.metrics.rows import MetricRow

    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 3600)
    preds, labels = _data(1500, t0, prefix="e")
    sink.write(SinkBatch(preds, labels, [], token="e"))
    estimates = {t0: 0.61, t0 + W: 0.77}  # as the engine would have written them (older rows first)
    sink.write_metrics(
        [MetricRow(t0, t0 + W, "credit", "v1", "estimated_quality", "accuracy", "", "", 0.1, 400)]
        + [
            MetricRow(s, s + W, "credit", "v1", "estimated_quality", "accuracy", "", "", v, 500)
            for s, v in estimates.items()
        ]
    )
    spec = MonitorSpec.from_dict({"defaults": {"window": W}})
    rows = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0).run_once()
    realised = {r.window_start: r.value for r in rows if (r.family, r.metric) == ("quality", "accuracy")}
    errors = {r.window_start: r.value for r in rows if (r.family, r.metric) == ("estimated_quality", "accuracy_error")}
    assert set(errors) == set(estimates)  # the third window had no estimate: no error row
    for start, estimate in estimates.items():
        assert errors[start] == pytest.approx(estimate - realised[start], abs=1e-12)


def test_quality_per_segment_equals_scikit_learn_on_each_segment(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """Issue 20.2: the top-2 regions by the window's volume, "other", and a predicate on a feature."""
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time() // W * W) - 3600)
    preds, labels = _data(1200, t0, prefix="s")
    rng = np.random.default_rng(8)
    regions = rng.choice(["eu", "us", "apac", "latam"], 1200, p=[0.5, 0.3, 0.15, 0.05])
    ages = rng.integers(20, 80, 1200)
    preds = [
        Prediction(
            **{
                **{f: getattr(p, f) for f in p.__struct_fields__},
                "attributes": {"region": str(r)},
                "features": {"age": float(a)},
            }
        )
        for p, r, a in zip(preds, regions, ages, strict=True)
    ]
    sink.write(SinkBatch(preds, labels, [], token="s"))
    spec = MonitorSpec.from_dict(
        {
            "defaults": {
                "window": W,
                "segments": [{"attribute": "region", "top_k": 2}, {"name": "old", "where": "age >= 60"}],
            }
        }
    )
    rows = QualityJob(sink.client, settings.clickhouse_database, spec, overlap_s=0).run_once()
    got = {(r.window_start, r.segment, r.metric): r.value for r in rows if r.family == "quality" and r.segment}
    label_of = {lab.event_id: int(lab.label) for lab in labels}
    start = t0
    window = [p for p in preds if start <= p.ts < start + W]
    for segment, members in (
        ("region=eu", [p for p in window if p.attributes["region"] == "eu"]),
        ("region=us", [p for p in window if p.attributes["region"] == "us"]),
        ("region=other", [p for p in window if p.attributes["region"] in ("apac", "latam")]),
        ("old", [p for p in window if p.features["age"] >= 60]),
    ):
        lab = [p for p in members if p.event_id in label_of]
        y = np.array([label_of[p.event_id] for p in lab])
        pred = np.array([int(p.prediction) for p in lab])
        assert got[(start, segment, "accuracy")] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12), segment
        assert got[(start, segment, "label_coverage")] == pytest.approx(len(lab) / len(members))
    assert not any(seg.startswith("region=apac") for (_, seg, _) in got)  # bounded: top 2 plus other
