"""Alert rules and their lifecycle (pending -> firing -> resolved), with windows as the clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from driftline.alerts.evaluator import AlertEvaluator, fingerprint
from driftline.alerts.matchers import Matcher, parse_matchers
from driftline.alerts.rules import AlertingConfig, AlertRule
from driftline.exceptions import ConfigError
from driftline.metrics.rows import MetricRow
from driftline.spec import MonitorSpec

W = 300.0


def row(i: int, value: float, metric: str = "psi", feature: str = "age", version: str = "v1") -> MetricRow:
    return MetricRow(i * W, (i + 1) * W, "m", version, "drift", metric, feature, "", value, 1000)


def states(ev: AlertEvaluator, values: list[float], **kw: str) -> list[tuple[int, str]]:
    return [(i, e.state) for i, v in enumerate(values) for e in ev.observe([row(i, v, **kw)])]


def test_for_n_windows_then_fires_and_resolves() -> None:
    ev = AlertEvaluator([AlertRule("Drift", "psi", above=0.2, for_windows=3)], clock=lambda: 42.0)
    assert states(ev, [0.1, 0.3, 0.3, 0.3, 0.5, 0.1, 0.1]) == [(1, "pending"), (3, "firing"), (5, "resolved")]


def test_pending_that_recovers_is_dropped_without_resolve() -> None:
    ev = AlertEvaluator([AlertRule("Drift", "psi", above=0.2, for_windows=3)])
    assert states(ev, [0.3, 0.3, 0.1, 0.3]) == [(0, "pending"), (3, "pending")]


def test_firing_event_carries_labels_annotations_and_times() -> None:
    rule = AlertRule(
        "Drift",
        "psi",
        above=0.2,
        severity="critical",
        labels={"team": "risk"},
        annotations={"summary": "PSI of {feature} is {value:.2f}", "runbook_url": "https://rb/{model}", "x": "{bad"},
    )
    ev = AlertEvaluator([rule], clock=lambda: 7.0)
    (event,) = ev.observe([row(2, 0.5)])
    assert event.state == "firing" and event.at == 7.0
    assert event.labels == {
        "alertname": "Drift",
        "model": "m",
        "version": "v1",
        "family": "drift",
        "metric": "psi",
        "severity": "critical",
        "feature": "age",
        "team": "risk",
    }
    assert event.annotations["summary"] == "PSI of age is 0.50"
    assert event.annotations["runbook_url"] == "https://rb/m" and event.annotations["x"] == "{bad"
    assert event.starts_at == 2 * W and event.ends_at == 0.0 and event.fingerprint == fingerprint(event.labels)


def test_series_are_separate_alerts() -> None:
    ev = AlertEvaluator([AlertRule("Drift", "psi", above=0.2)])
    events = ev.observe([row(0, 0.5, feature="age"), row(0, 0.1, feature="salary"), row(0, 0.9, version="v2")])
    assert sorted((e.labels["version"], e.labels["feature"]) for e in events) == [("v1", "age"), ("v2", "age")]
    assert len({e.fingerprint for e in events}) == 2


def test_replayed_and_recomputed_windows_do_not_double_count() -> None:
    ev = AlertEvaluator([AlertRule("Drop", "psi", above=0.2, for_windows=2)])
    assert [e.state for e in ev.observe([row(0, 0.5)])] == ["pending"]
    assert ev.observe([row(0, 0.6)]) == []  # the same window again (a replay): still one breach
    assert [e.state for e in ev.observe([row(1, 0.5)])] == ["firing"]
    assert ev.observe([row(0, 0.9)]) == []  # an older window recomputed: the state follows the newest
    assert [e.state for e in ev.observe([row(1, 0.1)])] == ["resolved"]  # newest window recomputed lower


def test_relative_change_against_previous_windows() -> None:
    ev = AlertEvaluator([AlertRule("AccDrop", "psi", relative_below=0.1, relative_windows=3)])
    # mean of the previous three is 0.9; 0.85 is within 10 %, 0.7 is not
    assert states(ev, [0.9, 0.9, 0.9, 0.85, 0.7]) == [(4, "firing")]


def test_range_and_detector_rules() -> None:
    rng = AlertEvaluator([AlertRule("Lat", "latency_p99_ms", outside=(0.0, 50.0))])
    assert states(rng, [10, 80, 20], metric="latency_p99_ms") == [(1, "firing"), (2, "resolved")]
    det = AlertEvaluator([AlertRule("PH", "page_hinkley_alarm", detector=True)])
    assert states(det, [1.0], metric="page_hinkley_alarm") == [(0, "firing")]


def test_incomplete_rows_are_ignored() -> None:
    ev = AlertEvaluator([AlertRule("Drift", "psi", above=0.2)])
    assert ev.observe([replace(row(0, 0.9), complete=False)]) == []


def test_spec_yaml_parses_rules_grouping_and_inhibition() -> None:
    spec = MonitorSpec.from_yaml(
        """
alerts:
  group_by: [alertname, model, version]
  group_wait: 5s
  group_interval: 1m
  repeat_interval: 2h
  rules:
    - {name: Drift, family: drift, metric: psi, feature: "*", above: 0.25, for: 2, severity: critical}
    - {name: AccDrop, metric: accuracy, relative: {below: 0.1, windows: 4}}
  inhibit:
    - {source: [severity=critical], target: [severity=warning], equal: [model, feature]}
"""
    )
    cfg = spec.alerts
    assert cfg.group_by == ("alertname", "model", "version") and cfg.group_wait_s == 5
    assert (cfg.group_interval_s, cfg.repeat_interval_s) == (60, 7200)
    assert cfg.rules[0].for_windows == 2 and cfg.rules[0].severity == "critical"
    assert cfg.rules[1].relative_below == 0.1 and cfg.rules[1].relative_windows == 4
    assert cfg.inhibit[0].source == (Matcher("severity", "=", "critical"),) and cfg.inhibit[0].equal == (
        "model",
        "feature",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rules": [{"name": "X"}]}, "needs at least `name:` and `metric:`"),
        ({"rules": [{"name": "X", "metric": "psi", "above": "high"}]}, "'high' is not a number"),
        ({"rules": [{"name": "X", "metric": "psi", "above": 1, "severity": "loud"}]}, "'loud' is not one of"),
        ({"rules": [{"name": "X", "metric": "psi", "above": 1, "for": 0}]}, "for: a whole number"),
        ({"rules": [{"name": "X", "metric": "psi", "outside": [5, 1]}]}, "low 5.0 is above high 1.0"),
        ({"rules": [{"name": "X", "metric": "psi", "above": 1}] * 2}, "rule names must be unique"),
        ({"group_wait": "soon"}, "'soon' is not a duration"),
        ({"inhibit": [{"source": ["severity"], "target": ["a=b"]}]}, "is not name=value"),
        ({"rules": [{"name": "X", "metric": "psi", "above": 1, "colour": "red"}]}, "unknown key(s) ['colour']"),
    ],
)
def test_bad_alert_config_names_the_fix(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        AlertingConfig.from_dict(raw)
    assert message in str(err.value)


def test_matchers() -> None:
    ms = parse_matchers(["model=loan", "severity!=info", "feature=~sal.*", "segment!~x"])
    assert all(m.matches({"model": "loan", "severity": "warning", "feature": "salary"}) for m in ms)
    assert not ms[2].matches({"feature": "age_salary"})  # anchored, like Prometheus
    with pytest.raises(ConfigError, match="not a valid regex"):
        Matcher.parse("a=~(")


def test_relative_change_against_a_reference_value() -> None:
    cfg = AlertingConfig.from_dict(
        {"rules": [{"name": "A", "metric": "psi", "relative": {"below": 0.05, "reference": 0.9}}]}
    )
    ev = AlertEvaluator(cfg.rules)
    # 0.86 is within 5 % of 0.9 (>= 0.855); 0.85 is not; no history needed
    assert states(ev, [0.86, 0.85, 0.9]) == [(1, "firing"), (2, "resolved")]
    assert "below the reference 0.9" in cfg.rules[0].condition()


def test_firing_alert_of_a_series_that_stops_reporting_resolves() -> None:
    ev = AlertEvaluator([AlertRule("Drift", "psi", above=0.2)])
    assert [e.state for e in ev.observe([row(0, 0.5, version="v2"), row(0, 0.1)])] == ["firing"]
    assert ev.observe([row(1, 0.1), row(2, 0.1)]) == []  # v2 is gone; v1 moves on
    (resolved,) = ev.observe([row(3, 0.1)])
    assert resolved.state == "resolved" and resolved.labels["version"] == "v2" and resolved.ends_at == W
    assert ev.observe([row(4, 0.1)]) == []


def _accuracy(i: int, value: float) -> MetricRow:
    return MetricRow(i * W, (i + 1) * W, "loan", "v1", "quality", "accuracy", "", "", value, 500)


def test_a_relative_rule_stays_firing_until_the_metric_recovers() -> None:
    """Issue 17.6: AccuracyDrop (20 % below the mean of the previous 3 windows) resolved while accuracy
    stayed at 0.47, because its baseline slid down with it."""
    rule = AlertRule("AccuracyDrop", "accuracy", relative_below=0.2, relative_windows=3, severity="critical")
    evaluator = AlertEvaluator([rule], clock=lambda: 0.0)
    series = [0.98, 0.98, 0.98, 0.97, 0.49, 0.47, 0.47, 0.46, 0.45, 0.47, 0.60, 0.97]
    states = []
    for i, value in enumerate(series):
        states += [(i, e.state) for e in evaluator.observe([_accuracy(i, value)])]
    # fires at the drop, stays firing while accuracy stays low (0.60 is still 20 % below 0.977), resolves on recovery
    assert states == [(4, "firing"), (11, "resolved")]


def test_a_restored_relative_alert_keeps_its_frozen_baseline() -> None:
    rule = AlertRule("AccuracyDrop", "accuracy", relative_below=0.2, relative_windows=3, severity="critical")
    before = AlertEvaluator([rule], clock=lambda: 0.0)
    series = [0.98, 0.98, 0.98, 0.97, 0.49, 0.47, 0.47]
    events = [e for i, v in enumerate(series) for e in before.observe([_accuracy(i, v)])]
    (firing,) = [e for e in events if e.state == "firing"]
    history = {(i + 1) * W: v for i, v in enumerate(series)}

    def values(labels: dict[str, str], until: float, n: int) -> dict[float, float]:
        return dict(sorted((e, v) for e, v in history.items() if e <= until)[-n:])

    after = AlertEvaluator([rule], clock=lambda: 0.0)  # a restarted worker
    assert after.restore([replace(firing, window_end=7 * W, value=0.47)], values) == 1
    assert after.observe([_accuracy(7, 0.46), _accuracy(8, 0.47)]) == []  # still firing: nothing new
    assert [e.state for e in after.observe([_accuracy(9, 0.96)])] == ["resolved"]
