"""Rule evaluation over metric windows: the pending -> firing -> resolved lifecycle of each alert.

Each (rule, metric series) is one alert, identified by a fingerprint of its label set.
A window that breaches the rule makes the alert *pending*; `for` breaching windows in a
row make it *firing*; the first window that does not breach *resolves* a firing alert
(a pending one just goes back to inactive, as in Prometheus). A window recomputed later
(late labels update quality windows) replaces its earlier value, so replays and
recomputations never count a window twice. A firing alert whose series stops reporting
(a version taken out of traffic) resolves once its model has moved `STALE_WINDOWS` windows
past the series' last value, as Prometheus resolves alerts of vanished series.

>>> from driftline.alerts.rules import AlertRule
>>> from driftline.metrics.rows import MetricRow
>>> ev = AlertEvaluator([AlertRule("Drift", "psi", above=0.2, for_windows=2)])
>>> row = lambda t, v: MetricRow(t, t + 60, "m", "v1", "drift", "psi", "age", "", v, 500)
>>> [e.state for t, v in [(0, 0.3), (60, 0.4), (120, 0.1)] for e in ev.observe([row(t, v)])]
['pending', 'firing', 'resolved']
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.alerts.rules import AlertRule
from driftline.metrics.rows import MetricRow

STATES = ("pending", "firing", "resolved")
#: Series kept per rule; beyond this the oldest is forgotten (bounded memory).
MAX_SERIES = 100_000
#: Windows a model may move on without a firing series reporting before that alert resolves.
STALE_WINDOWS = 3


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of a label set: the same labels give the same alert, whatever their order."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertEvent:
    """An alert's state change, as stored, published and streamed."""

    fingerprint: str
    state: str  # pending | firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    window_start: float
    window_end: float
    starts_at: float  # event time the alert started breaching (window start of the first breach)
    ends_at: float  # event time it stopped (0 while not resolved)
    at: float  # wall-clock time of the change

    @property
    def model(self) -> str:
        return self.labels.get("model", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "state": self.state,
            "labels": self.labels,
            "annotations": self.annotations,
            "value": self.value,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "at": self.at,
        }


@dataclass
class _Series:
    labels: dict[str, str]
    values: dict[float, float] = field(default_factory=dict)  # window_end -> value (bounded)
    state: str = "inactive"
    starts_at: float = 0.0
    width: float = 0.0
    last: AlertEvent | None = None
    # A relative rule's baseline while the alert is pending or firing: the last healthy windows before
    # the first breach, frozen, so the alert resolves when the metric recovers, not when the
    # baseline has slid down with it. None while the series is healthy (the baseline slides).
    baseline: list[float] | None = None
    baseline_from: float = math.inf  # window end of the first breaching window


class AlertEvaluator:
    """Feeds metric rows to rules; returns the alert state changes they cause."""

    def __init__(self, rules: Iterable[AlertRule], clock: Callable[[], float] = time.time):
        self.rules = tuple(rules)
        self.clock = clock
        self._series: dict[tuple[str, str], _Series] = {}  # (rule name, fingerprint) -> series

    def observe(self, rows: Iterable[MetricRow]) -> list[AlertEvent]:
        """Evaluate complete windows; rows of windows still open at shutdown are ignored."""
        events: list[AlertEvent] = []
        newest: dict[str, float] = {}
        for row in rows:
            if not row.complete:
                continue
            newest[row.model] = max(newest.get(row.model, row.window_end), row.window_end)
            for rule in self.rules:
                if rule.selects(row.model, row.version, row.family, row.metric, row.feature, row.segment):
                    event = self._step(rule, row)
                    if event is not None:
                        events.append(event)
        if newest:
            events.extend(self._resolve_stale(newest))
        return events

    def _resolve_stale(self, newest: dict[str, float]) -> list[AlertEvent]:
        out = []
        for series in self._series.values():
            if series.state != "firing" or series.last is None or series.width <= 0:
                continue
            last_end = max(series.values)
            model_end = newest.get(series.labels.get("model", ""))
            if model_end is not None and model_end - last_end >= STALE_WINDOWS * series.width:
                series.state = "resolved"
                e = series.last
                out.append(
                    AlertEvent(
                        e.fingerprint,
                        "resolved",
                        e.labels,
                        e.annotations,
                        e.value,
                        e.window_start,
                        e.window_end,
                        e.starts_at,
                        last_end,
                        self.clock(),
                    )
                )
        return out

    def restore(
        self,
        events: Iterable[AlertEvent],
        history: Callable[[dict[str, str], float, int], dict[float, float]] | None = None,
    ) -> int:
        """After a restart: take back the alerts that were firing (their newest stored events), with
        the recent values of each one's series (`history(labels, until, n)`, window end -> value)
        for rules that compare with earlier windows. Returns how many series were restored.

        A restored alert stays firing while its metric breaches, so the restart is no new alert."""
        rules = {rule.name: rule for rule in self.rules}
        restored = 0
        for event in events:
            rule = rules.get(event.labels.get("alertname", ""))
            if event.state != "firing" or rule is None:  # a rule gone from the spec has nothing to evaluate
                continue
            # more than the rule keeps: a relative rule's baseline is the windows before the breach began
            depth = rule.history_needed + (64 if rule.is_relative else 0)
            values = dict(history(event.labels, event.window_end, depth)) if history else {}
            values.setdefault(event.window_end, event.value)
            width = event.window_end - event.window_start
            series = _Series(dict(event.labels), values, "firing", event.starts_at, width, event)
            ends = sorted(values)
            for i in range(len(ends)):  # replay the windows' breaches to find where the baseline froze
                _freeze_baseline(
                    rule,
                    series,
                    ends[: i + 1],
                    [values[e] for e in ends[: i + 1]],
                    _streak(rule, series, ends[: i + 1], [values[e] for e in ends[: i + 1]]),
                )
            for old in ends[: -rule.history_needed]:
                del values[old]
            self._series[(rule.name, event.fingerprint)] = series
            restored += 1
        return restored

    def firing(self) -> list[dict[str, str]]:
        """Label sets of the alerts firing now."""
        return [s.labels for s in self._series.values() if s.state == "firing"]

    def firing_events(self) -> list[AlertEvent]:
        """The events that made the firing alerts fire (with their event-time start)."""
        return [s.last for s in self._series.values() if s.state == "firing" and s.last is not None]

    def _labels(self, rule: AlertRule, row: MetricRow) -> dict[str, str]:
        labels = {
            "alertname": rule.name,
            "model": row.model,
            "version": row.version,
            "family": row.family,
            "metric": row.metric,
            "severity": rule.severity,
        }
        if row.feature:
            labels["feature"] = row.feature
        if row.segment:
            labels["segment"] = row.segment
        labels.update(rule.labels)
        return labels

    def _step(self, rule: AlertRule, row: MetricRow) -> AlertEvent | None:
        labels = self._labels(rule, row)
        fp = fingerprint(labels)
        key = (rule.name, fp)
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= MAX_SERIES:
                self._forget_one_inactive()
            series = self._series[key] = _Series(labels)
        newest = max(series.values, default=float("-inf"))
        if row.window_end < newest and row.window_end not in series.values:
            return None  # an older window arriving after newer ones: too late to change the state
        series.values[row.window_end] = row.value
        for old in sorted(series.values)[: -rule.history_needed]:
            del series.values[old]
        if row.window_end < newest:
            return None  # a recomputed older window: kept for baselines, the state follows the newest
        ends = sorted(series.values)
        values = [series.values[e] for e in ends]
        streak = _streak(rule, series, ends, values)
        new_state = series.state
        if streak >= rule.for_windows:
            new_state = "firing"
        elif streak > 0:
            new_state = "pending" if series.state in ("inactive", "resolved", "pending") else series.state
            if series.state == "firing":
                new_state = "firing"  # recomputing the newest window keeps a firing alert firing
        elif series.state == "firing":
            new_state = "resolved"
        else:
            new_state = "inactive"
        if streak == 1 and series.state in ("inactive", "resolved"):
            series.starts_at = row.window_start
        _freeze_baseline(rule, series, ends, values, streak)
        if new_state == series.state or (new_state == "inactive" and series.state in ("pending", "resolved")):
            series.state = new_state
            return None
        series.state = new_state
        series.width = row.window_end - row.window_start
        series.last = AlertEvent(
            fingerprint=fp,
            state=new_state,
            labels=labels,
            annotations=_annotations(rule, row, labels),
            value=row.value,
            window_start=row.window_start,
            window_end=row.window_end,
            starts_at=series.starts_at or row.window_start,
            ends_at=row.window_end if new_state == "resolved" else 0.0,
            at=self.clock(),
        )
        return series.last

    def _forget_one_inactive(self) -> None:
        for key, series in self._series.items():
            if series.state in ("inactive", "resolved"):
                del self._series[key]
                return
        del self._series[next(iter(self._series))]


def _streak(rule: AlertRule, series: _Series, ends: list[float], values: list[float]) -> int:
    """How many of the newest windows breach in a row (a relative rule compares those after the first
    breach with the frozen baseline)."""
    streak = 0
    for i in range(len(values) - 1, -1, -1):
        frozen = series.baseline is not None and ends[i] >= series.baseline_from
        if not rule.breached(values[i], series.baseline if frozen else values[:i]):  # type: ignore[arg-type]
            break
        streak += 1
    return streak


def _freeze_baseline(rule: AlertRule, series: _Series, ends: list[float], values: list[float], streak: int) -> None:
    """Freeze a relative rule's baseline at the first breach; let it slide again once healthy."""
    if not rule.is_relative or rule.relative_reference is not None:
        return
    if streak == 0:
        series.baseline, series.baseline_from = None, math.inf
    elif series.baseline is None:
        first = len(values) - streak
        series.baseline = values[:first][-rule.relative_windows :]
        series.baseline_from = ends[first]


class _Defaults(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _annotations(rule: AlertRule, row: MetricRow, labels: Mapping[str, str]) -> dict[str, str]:
    """The rule's annotations with {value}, {model}, {feature}, ... filled in; a bad template stays as written."""
    values = _Defaults(labels)
    values.update(value=row.value, n=row.n, condition=rule.condition(), feature=row.feature, segment=row.segment)
    out = {"summary": f"{rule.name}: {rule.condition()} ({row.model} {row.version} {row.feature})".replace(" )", ")")}
    for key, template in rule.annotations.items():
        try:
            out[key] = template.format_map(values)
        except (ValueError, IndexError, KeyError):
            out[key] = template
    return out
