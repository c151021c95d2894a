"""Alert rules and the alerting settings of a monitor spec (the ``alerts:`` section).

.. code-block:: yaml

    alerts:
      group_by: [alertname, model]     # one notification per group
      group_wait: 10s                  # wait for more alerts of a new group
      group_interval: 1m               # then at most one update per interval
      repeat_interval: 4h              # re-send an unchanged firing group this often
      rules:
        - name: FeatureDrift
          family: drift
          metric: psi
          feature: "*"                 # any feature ("" = the rows without one)
          above: 0.25
          for: 2                       # windows in a row before it fires
          severity: critical
          labels: {team: risk}
          annotations:
            summary: "PSI of {feature} is {value:.2f} for {model} {version}"
            runbook_url: https://runbooks.example/drift
        - name: AccuracyDrop
          metric: accuracy
          relative: {below: 0.1, windows: 3}   # 10 % under the mean of the previous 3 windows
        - name: AccuracyUnderValidation
          metric: accuracy
          relative: {below: 0.05, reference: 0.93}  # 5 % under the accuracy measured at validation
        - name: LatencyOutOfRange
          metric: latency_p99_ms
          outside: [0, 50]
        - name: ErrorStreamDrift
          metric: error_drift_alarm
          detector: true                       # a sequential detector fired
      inhibit:
        - source: [severity=critical]
          target: [severity=warning]
          equal: [model, version, feature]
      alertmanagers: [http://alertmanager:9093]   # forward alerts there too (re-sent while firing)
      external_url: http://grafana:3000           # alerts' generatorURL: the family's dashboard

>>> cfg = AlertingConfig.from_dict({"rules": [{"name": "Drift", "metric": "psi", "above": 0.2, "for": 2}]})
>>> cfg.rules[0].breached(0.3, []), cfg.rules[0].for_windows
(True, 2)
>>> AlertingConfig.from_dict({"rules": [{"name": "X", "metric": "psi"}]})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
driftline.exceptions.ConfigError: monitor spec, alerts.rules[0] (X): give one condition: above, below, ...
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.alerts.matchers import Matcher, parse_matchers
from driftline.exceptions import ConfigError
from driftline.values import parse_duration

SEVERITIES = ("info", "warning", "critical")
_RULE_KEYS = {
    "name",
    "model",
    "version",
    "family",
    "metric",
    "feature",
    "segment",
    "above",
    "below",
    "outside",
    "relative",
    "detector",
    "for",
    "severity",
    "labels",
    "annotations",
}
CONDITIONS = ("above", "below", "outside", "relative", "detector")


@dataclass(frozen=True)
class AlertRule:
    """When one metric series breaches: a threshold, a range, a relative change or a detector alarm."""

    name: str
    metric: str
    family: str = "*"
    model: str = "*"
    version: str = "*"
    feature: str = "*"
    segment: str = "*"
    above: float | None = None
    below: float | None = None
    outside: tuple[float, float] | None = None
    relative_below: float | None = None  # fires when value < mean(previous N) * (1 - x)
    relative_above: float | None = None  # fires when value > mean(previous N) * (1 + x)
    relative_windows: int = 3
    relative_reference: float | None = None  # compare with this value (e.g. validation accuracy), not past windows
    detector: bool = False
    for_windows: int = 1
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def selects(self, model: str, version: str, family: str, metric: str, feature: str, segment: str) -> bool:
        return (
            metric == self.metric
            and _glob(self.family, family)
            and _glob(self.model, model)
            and _glob(self.version, version)
            and _glob(self.feature, feature)
            and _glob(self.segment, segment)
        )

    @property
    def history_needed(self) -> int:
        """Values of a series the evaluator must keep for this rule."""
        return max(self.for_windows, 1) + (self.relative_windows if self.is_relative else 0) + 1

    @property
    def is_relative(self) -> bool:
        return self.relative_below is not None or self.relative_above is not None

    def breached(self, value: float, previous: Sequence[float]) -> bool:
        """Whether `value` breaches; `previous` are the series' earlier window values, oldest first."""
        if math.isnan(value):
            return False
        if self.detector:
            return value >= 1.0
        if self.above is not None and value > self.above:
            return True
        if self.below is not None and value < self.below:
            return True
        if self.outside is not None and not self.outside[0] <= value <= self.outside[1]:
            return True
        if self.is_relative:
            if self.relative_reference is not None:
                mean = self.relative_reference
            else:
                base = [v for v in previous[-self.relative_windows :] if not math.isnan(v)]
                if len(base) < self.relative_windows:
                    return False  # not enough history to compare with
                mean = sum(base) / len(base)
            if self.relative_below is not None and value < mean - abs(mean) * self.relative_below:
                return True
            if self.relative_above is not None and value > mean + abs(mean) * self.relative_above:
                return True
        return False

    def condition(self) -> str:
        """The condition in words, for annotations and audit records."""
        if self.detector:
            return f"{self.metric} detector fired"
        parts = []
        if self.above is not None:
            parts.append(f"{self.metric} > {self.above:g}")
        if self.below is not None:
            parts.append(f"{self.metric} < {self.below:g}")
        if self.outside is not None:
            parts.append(f"{self.metric} outside [{self.outside[0]:g}, {self.outside[1]:g}]")
        base = (
            f"the reference {self.relative_reference:g}"
            if self.relative_reference is not None
            else f"the mean of {self.relative_windows} windows"
        )
        if self.relative_below is not None:
            parts.append(f"{self.metric} {self.relative_below:.0%} below {base}")
        if self.relative_above is not None:
            parts.append(f"{self.metric} {self.relative_above:.0%} above {base}")
        return " or ".join(parts)


@dataclass(frozen=True)
class InhibitRule:
    """While an alert matching `source` fires, alerts matching `target` with the same `equal` labels are muted."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertmanagerConfig:
    """``alerts.alertmanagers`` of the monitor spec: where to forward, how often to re-send."""

    urls: tuple[str, ...] = ()
    resend_s: float = 60.0
    timeout_s: float = 10.0
    resolved_retention_s: float = 900.0
    external_url: str = ""  # a dashboard base (Grafana) that generatorURL points into

    @classmethod
    def from_dict(cls, raw: Any, external_url: str = "") -> AlertmanagerConfig:
        """``[http://am1:9093, {url: http://am2:9093}]`` or ``{urls: [...], resend: 60s, timeout: 10s}``."""
        where = "monitor spec, alerts.alertmanagers"
        if raw is None:
            return cls(external_url=external_url)
        items = raw.get("urls") if isinstance(raw, dict) else raw
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{where}: expected a list of URLs, e.g. [http://alertmanager:9093]")
        urls = []
        for item in items:
            url = item.get("url") if isinstance(item, dict) else item
            parsed = urllib.parse.urlsplit(str(url))
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigError(f"{where}: {url!r} is not an http(s) URL, e.g. http://alertmanager:9093")
            urls.append(str(url).rstrip("/"))
        opts = raw if isinstance(raw, dict) else {}
        unknown = sorted(set(opts) - {"urls", "resend", "timeout"})
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {unknown}; known: urls, resend, timeout")
        resend = parse_duration(opts.get("resend", "60s"), f"{where}.resend")
        timeout = parse_duration(opts.get("timeout", "10s"), f"{where}.timeout")
        return cls(tuple(urls), resend, timeout, external_url=external_url.rstrip("/"))


@dataclass(frozen=True)
class AlertingConfig:
    rules: tuple[AlertRule, ...] = ()
    group_by: tuple[str, ...] = ("alertname", "model")
    group_wait_s: float = 10.0
    group_interval_s: float = 60.0
    repeat_interval_s: float = 4 * 3600.0
    inhibit: tuple[InhibitRule, ...] = ()
    alertmanagers: AlertmanagerConfig = AlertmanagerConfig()

    @classmethod
    def from_dict(cls, raw: Any) -> AlertingConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError("monitor spec, alerts: expected a mapping with rules, group_by, inhibit, ...")
        known = {
            "rules",
            "group_by",
            "group_wait",
            "group_interval",
            "repeat_interval",
            "inhibit",
            "alertmanagers",
            "external_url",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"monitor spec, alerts: unknown setting(s) {unknown}; known: {sorted(known)}")
        rules_raw = raw.get("rules") or []
        if not isinstance(rules_raw, list):
            raise ConfigError("monitor spec, alerts.rules: expected a list of rules")
        rules = tuple(_rule(r, f"alerts.rules[{i}]") for i, r in enumerate(rules_raw))
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ConfigError(f"monitor spec, alerts.rules: rule names must be unique, got {names}")
        group_by = raw.get("group_by", list(cls.group_by))
        if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
            raise ConfigError("monitor spec, alerts.group_by: expected a list of label names")
        inhibit_raw = raw.get("inhibit") or []
        if not isinstance(inhibit_raw, list):
            raise ConfigError("monitor spec, alerts.inhibit: expected a list of {source, target, equal}")
        inhibit = []
        for i, item in enumerate(inhibit_raw):
            where = f"monitor spec, alerts.inhibit[{i}]"
            if not isinstance(item, dict) or set(item) - {"source", "target", "equal"} or not item.get("target"):
                raise ConfigError(f"{where}: expected {{source: [...], target: [...], equal: [...]}}")
            inhibit.append(
                InhibitRule(
                    parse_matchers(item.get("source"), where + ".source"),
                    parse_matchers(item.get("target"), where + ".target"),
                    tuple(item.get("equal") or ()),
                )
            )
        return cls(
            rules=rules,
            group_by=tuple(group_by),
            group_wait_s=parse_duration(raw.get("group_wait", cls.group_wait_s), "alerts.group_wait"),
            group_interval_s=parse_duration(raw.get("group_interval", cls.group_interval_s), "alerts.group_interval"),
            repeat_interval_s=parse_duration(
                raw.get("repeat_interval", cls.repeat_interval_s), "alerts.repeat_interval"
            ),
            inhibit=tuple(inhibit),
            alertmanagers=AlertmanagerConfig.from_dict(raw.get("alertmanagers"), str(raw.get("external_url") or "")),
        )


def _glob(pattern: str, value: str) -> bool:
    return pattern == "*" or pattern == value


def _number(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ConfigError(f"monitor spec, {where}: {raw!r} is not a number")
    return float(raw)


def _rule(raw: Any, where: str) -> AlertRule:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not isinstance(raw.get("metric"), str):
        raise ConfigError(f"monitor spec, {where}: a rule needs at least `name:` and `metric:`")
    where = f"{where} ({raw['name']})"
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise ConfigError(f"monitor spec, {where}: unknown key(s) {unknown}; known: {sorted(_RULE_KEYS)}")
    if not any(k in raw for k in CONDITIONS):
        raise ConfigError(f"monitor spec, {where}: give one condition: above, below, outside, relative or detector")
    kw: dict[str, Any] = {"name": raw["name"], "metric": raw["metric"]}
    for key in ("model", "version", "family", "feature", "segment"):
        if key in raw:
            kw[key] = str(raw[key])
    for key in ("above", "below"):
        if key in raw:
            kw[key] = _number(raw[key], f"{where}.{key}")
    if "outside" in raw:
        pair = raw["outside"]
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"monitor spec, {where}.outside: expected [low, high]")
        low, high = (_number(x, f"{where}.outside") for x in pair)
        if low > high:
            raise ConfigError(f"monitor spec, {where}.outside: low {low} is above high {high}")
        kw["outside"] = (low, high)
    if "relative" in raw:
        rel = raw["relative"]
        if (
            not isinstance(rel, dict)
            or not rel.keys() & {"below", "above"}
            or set(rel)
            - {
                "below",
                "above",
                "windows",
                "reference",
            }
        ):
            raise ConfigError(
                f"monitor spec, {where}.relative: expected {{below: 0.1, windows: 3}} "
                "or {below: 0.1, reference: 0.93}"
            )
        if "reference" in rel:
            kw["relative_reference"] = _number(rel["reference"], f"{where}.relative.reference")
        if "below" in rel:
            kw["relative_below"] = _number(rel["below"], f"{where}.relative.below")
        if "above" in rel:
            kw["relative_above"] = _number(rel["above"], f"{where}.relative.above")
        windows = rel.get("windows", 3)
        if not isinstance(windows, int) or not 1 <= windows <= 100:
            raise ConfigError(f"monitor spec, {where}.relative.windows: a whole number from 1 to 100")
        kw["relative_windows"] = windows
    if raw.get("detector"):
        kw["detector"] = True
    for_windows = raw.get("for", 1)
    if not isinstance(for_windows, int) or not 1 <= for_windows <= 1000:
        raise ConfigError(f"monitor spec, {where}.for: a whole number of windows from 1 to 1000")
    kw["for_windows"] = for_windows
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise ConfigError(f"monitor spec, {where}.severity: {severity!r} is not one of {list(SEVERITIES)}")
    kw["severity"] = severity
    for key in ("labels", "annotations"):
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"monitor spec, {where}.{key}: expected a mapping of strings")
        kw[key] = {str(k): str(v) for k, v in value.items()}
    return AlertRule(**kw)
