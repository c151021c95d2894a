"""Canary analysis: compare a canary with the primary each window; step up, promote or roll back.

Like Flagger or Argo Rollouts, but the checks are ML checks. Per analysis interval (a
monitoring window of the canary) each check passes, fails, or is inconclusive (too few
samples, labels still to come, the canary's drift reference still being collected). No
data at all — the canary served nothing in the window — counts as failed. An interval with a failed check adds one to
the canary's failed-check counter; at `max_failed_checks` the canary is rolled back. An
interval where every check passed steps the weight up by `step_weight`; after
`promote_after` passing intervals at `max_weight` the canary is promoted. Nothing is rolled
back to a primary that is itself failing (a critical alert firing on it, or accuracy under
`primary_min_accuracy`): the model is locked and a person decides.

A canary's analysis starts at its first event or its registration, whichever is later, both in
event time: its registration counts from the newest window the analyzer had seen of the model
when the canary first appeared in the registry (so a replay of past traffic is judged like live
traffic). A window that closed before is never judged, and windows without canary traffic
before its first event are not "no data" failures. A canary that has sent nothing
`progress_deadline` (event time, 15 minutes by default) after its registration is rolled back
then (Flagger's "no data is a failure", but only after the deadline).

Checks (each is on when it has a limit in the spec):

==================== ====================================== ===========================
check                metric (family/metric[/feature])       fails when
==================== ====================================== ===========================
accuracy_drop        quality/accuracy                       primary - canary > limit
drift_share_increase drift/drift_share                      canary - primary > limit
parity_gap_increase  fairness/demographic_parity_difference canary - primary > limit
latency_p99_ratio    kpi/latency_p99_ms                     canary / primary > limit
error_rate_increase  kpi/mean/error                         canary - primary > limit
==================== ====================================== ===========================

Label-based checks (accuracy, parity) use the newest window, among the last
`label_lookback`, in which both versions have labelled metrics: labels come late. A window
analysed before any labels had come (those checks inconclusive) is analysed once more when
its labelled metrics arrive, so fast streams are judged on labels too.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.metrics.rows import MetricRow
from driftline.models.canary_spec import CHECKS, CanarySpec
from driftline.models.registry import ModelState

HISTORY_WINDOWS = 64


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # pass | fail | inconclusive
    canary: float
    primary: float
    limit: float
    n_canary: int
    n_primary: int
    window_end: float
    detail: str


@dataclass(frozen=True)
class Decision:
    id: str
    model: str
    canary: str
    primary: str
    window_start: float
    window_end: float
    action: str  # step | promote | hold | rollback | refuse_rollback
    weight_before: float
    weight_after: float
    failed_checks: int
    checks: tuple[CheckResult, ...]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "checks"}
        out["checks"] = [{k: getattr(c, k) for k in c.__dataclass_fields__} for c in self.checks]
        return out


@dataclass
class _Progress:
    since: float | None = None  # event time of its registration: windows ending up to it are never judged
    deadline: float = math.inf  # event time by which it must have served something
    first_served: float | None = None  # start of the canary's first window with traffic
    failed: int = 0
    passed_at_max: int = 0
    last_window: float = -math.inf
    # windows analysed before their labels came: analysed once more when they do
    awaiting_labels: dict[float, float] = field(default_factory=dict)  # window end -> start


class MetricHistory:
    """The last windows of every (model, version, family, metric, feature) series: value and sample size."""

    def __init__(self, windows: int = HISTORY_WINDOWS):
        self.windows = windows
        self._series: dict[tuple[str, str, str, str, str], dict[float, tuple[float, int]]] = defaultdict(dict)

    def add(self, rows: Iterable[MetricRow]) -> None:
        for r in rows:
            if r.segment:
                continue
            series = self._series[(r.model, r.version, r.family, r.metric, r.feature)]
            series[r.window_end] = (r.value, r.n)
            if len(series) > self.windows:
                del series[min(series)]

    def get(self, model: str, version: str, family: str, metric: str, feature: str) -> dict[float, tuple[float, int]]:
        if feature != "*":
            return self._series.get((model, version, family, metric, feature), {})
        merged: dict[float, tuple[float, int]] = {}  # the largest over features, per window
        for (m, v, f, name, _), series in self._series.items():
            if (m, v, f, name) == (model, version, family, metric):
                for end, (value, n) in series.items():
                    if end not in merged or value > merged[end][0]:
                        merged[end] = (value, n)
        return merged


class CanaryAnalyzer:
    """Decisions from metric windows; pure (the caller applies them to the registry)."""

    def __init__(self, specs: Mapping[str, CanarySpec] | None = None, default: CanarySpec | None = None):
        self.specs = dict(specs or {})
        self.default = default or CanarySpec()
        self.history = MetricHistory()
        self._progress: dict[tuple[str, str], _Progress] = defaultdict(_Progress)
        self._seen_until: dict[str, float] = {}  # newest window end passed to windows_to_analyze, per model

    def spec(self, model: str) -> CanarySpec:
        return self.specs.get(model, self.default)

    def observe(self, rows: Iterable[MetricRow]) -> None:
        self.history.add(r for r in rows if r.complete)

    def windows_to_analyze(self, state: ModelState, rows: Iterable[MetricRow]) -> list[tuple[str, float, float]]:
        """(canary, window start, window end) that `rows` completed: a canary's window, or two primary windows
        without any canary traffic (no data) once the canary has served, or its progress deadline passed.
        A window that closed before the canary's registration (in event time) is never one of them."""
        rows = [r for r in rows if r.model == state.model and r.complete]
        out = []
        for canary in state.canaries:
            progress = self._progress[(state.model, canary)]
            if progress.since is None:  # first seen now: registered at the newest event time seen so far
                progress.since = self._seen_until.get(state.model, -math.inf)
            if progress.deadline == math.inf and (math.isfinite(progress.since) or rows):
                base = progress.since if math.isfinite(progress.since) else min(r.window_start for r in rows)
                progress.deadline = base + self.spec(state.model).progress_deadline_s
            for r in rows:
                if r.window_end <= progress.since:
                    continue
                if (r.version, r.family, r.metric) == (canary, "quality", "accuracy") and (
                    r.window_end in progress.awaiting_labels
                ):
                    out.append((canary, r.window_start, r.window_end))
                    continue
                if (r.family, r.metric) != ("volume", "predictions"):
                    continue
                if r.window_end <= progress.last_window:
                    continue
                if r.version == canary:
                    if r.value > 0 and (progress.first_served is None or r.window_start < progress.first_served):
                        progress.first_served = r.window_start
                    out.append((canary, r.window_start, r.window_end))
                elif r.version == state.production:
                    if progress.first_served is None and r.window_end < progress.deadline:
                        continue  # no traffic yet, and still time for it: nothing to judge
                    width = r.window_end - r.window_start
                    seen = self.history.get(state.model, canary, "volume", "predictions", "")
                    if not any(r.window_end - 2 * width < end <= r.window_end for end in seen):
                        out.append((canary, r.window_start, r.window_end))
        if rows:
            self._seen_until[state.model] = max(
                self._seen_until.get(state.model, -math.inf), *(r.window_end for r in rows)
            )
        return sorted(set(out), key=lambda t: t[2])

    def analyze(
        self, state: ModelState, canary: str, window_start: float, window_end: float, primary_failing: str = ""
    ) -> Decision | None:
        """One analysis interval of `canary`; None when the window was analysed before or nothing applies."""
        primary = state.production
        weight = state.canaries.get(canary, 0.0)
        progress = self._progress[(state.model, canary)]
        relabelled = progress.awaiting_labels.pop(window_end, None) is not None
        if primary is None or weight <= 0 or state.locked or (window_end <= progress.last_window and not relabelled):
            return None
        progress.last_window = max(progress.last_window, window_end)
        spec = self.spec(state.model)
        served = progress.first_served is not None or any(
            n > 0 for n, _ in self.history.get(state.model, canary, "volume", "predictions", "").values()
        )
        if not served and window_end >= progress.deadline:
            return self._no_traffic(state, canary, window_start, window_end, weight, spec)
        checks = tuple(
            self._check(state.model, canary, primary, name, limit, window_end, spec)
            for name, limit in spec.checks.items()
        )
        if any(c.status == "inconclusive" and CHECKS[c.name][3] for c in checks) and not relabelled:
            progress.awaiting_labels[window_end] = window_start
            for old in sorted(progress.awaiting_labels)[:-HISTORY_WINDOWS]:
                del progress.awaiting_labels[old]
        failed = [c for c in checks if c.status == "fail"]
        passed = all(c.status == "pass" for c in checks)
        failing_primary = primary_failing or self._primary_failing(state.model, primary, window_end, spec)
        if failed:
            progress.failed += 1
            progress.passed_at_max = 0
        action, after = "hold", weight
        reason = "some checks inconclusive; weight held"
        if failed and progress.failed >= spec.max_failed_checks:
            if failing_primary:
                action, reason = (
                    "refuse_rollback",
                    f"canary failing, but the primary {primary} fails too: {failing_primary}",
                )
            else:
                action, after = "rollback", 0.0
                reason = f"{progress.failed} failed analysis intervals (limit {spec.max_failed_checks}): " + "; ".join(
                    c.detail for c in failed
                )
        elif failed:
            reason = f"failed checks {progress.failed}/{spec.max_failed_checks}: " + "; ".join(c.detail for c in failed)
        elif passed and weight >= spec.max_weight:
            progress.passed_at_max += 1
            if progress.passed_at_max >= spec.promote_after:
                action, after, reason = (
                    "promote",
                    100.0,
                    f"all checks passed for {progress.passed_at_max} intervals at max weight",
                )
            else:
                reason = f"all checks passed at max weight ({progress.passed_at_max}/{spec.promote_after})"
        elif passed:
            action, after = "step", min(spec.max_weight, weight + spec.step_weight)
            reason = f"all checks passed; weight {weight:g} -> {after:g} %"
        key = f"{state.model}\x00{canary}\x00{window_end}\x00{'labels' if relabelled else 'stream'}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return Decision(
            digest,
            state.model,
            canary,
            primary,
            window_start,
            window_end,
            action,
            weight,
            after,
            progress.failed,
            checks,
            reason,
        )

    def _no_traffic(
        self, state: ModelState, canary: str, window_start: float, window_end: float, weight: float, spec: CanarySpec
    ) -> Decision:
        deadline = spec.progress_deadline_s
        reason = (
            f"{canary} served nothing within its progress deadline ({deadline:g} s of event time after registering)"
        )
        check = CheckResult("progress_deadline", "fail", math.nan, math.nan, deadline, 0, 0, window_end, reason)
        key = f"{state.model}\x00{canary}\x00{window_end}\x00deadline"
        return Decision(
            hashlib.sha256(key.encode()).hexdigest()[:16],
            state.model,
            canary,
            state.production or "",
            window_start,
            window_end,
            "rollback",
            weight,
            0.0,
            self._progress[(state.model, canary)].failed,
            (check,),
            reason,
        )

    def forget(self, model: str, canary: str) -> None:
        self._progress.pop((model, canary), None)

    def _pair(
        self, model: str, canary: str, primary: str, name: str, window_end: float, spec: CanarySpec
    ) -> tuple[float, tuple[float, int] | None, tuple[float, int] | None]:
        family, metric, feature, label_based, _ = CHECKS[name]
        c = self.history.get(model, canary, family, metric, feature)
        p = self.history.get(model, primary, family, metric, feature)
        if not label_based:
            return window_end, c.get(window_end), p.get(window_end)
        ends = sorted((e for e in c if e in p and e <= window_end), reverse=True)[: spec.label_lookback]
        width = _width(self.history.get(model, primary, "volume", "predictions", ""))
        recent = [e for e in ends if width == 0 or e > window_end - spec.label_lookback * width]
        if recent:
            return recent[0], c[recent[0]], p[recent[0]]
        return window_end, None, p.get(max(p, default=0.0)) if p else None

    def _check(
        self, model: str, canary: str, primary: str, name: str, limit: float, window_end: float, spec: CanarySpec
    ) -> CheckResult:
        kind = CHECKS[name][4]
        at, c, p = self._pair(model, canary, primary, name, window_end, spec)
        if c is None:
            served = self.history.get(model, canary, "volume", "predictions", "").get(window_end, (0.0, 0))[0]
            if not served:  # the canary answered nothing in this window: no data is a failure
                return CheckResult(name, "fail", math.nan, math.nan, limit, 0, 0, at, f"{name}: no data from {canary}")
            # it served, but the metric is not there yet (labels to come, a reference being collected)
            why = "no labels yet" if CHECKS[name][3] else "metric not available yet"
            return CheckResult(name, "inconclusive", math.nan, math.nan, limit, 0, 0, at, f"{name}: {why}")
        if p is None:
            return CheckResult(name, "inconclusive", c[0], math.nan, limit, c[1], 0, at, f"{name}: no primary data")
        (cv, cn), (pv, pn) = c, p
        if min(cn, pn) < spec.min_samples:
            return CheckResult(
                name, "inconclusive", cv, pv, limit, cn, pn, at, f"{name}: {min(cn, pn)} samples < {spec.min_samples}"
            )
        if kind == "drop":
            bad, shown = (
                pv - cv > limit,
                f"{canary} {cv:.3f} vs {primary} {pv:.3f} (drop {pv - cv:+.3f}, limit {limit:g})",
            )
        elif kind == "increase":
            bad, shown = cv - pv > limit, f"{canary} {cv:.3f} vs {primary} {pv:.3f} ({cv - pv:+.3f}, limit {limit:g})"
        else:
            ratio = cv / pv if pv > 0 else (math.inf if cv > 0 else 1.0)
            bad, shown = ratio > limit, f"{canary} {cv:.3g} vs {primary} {pv:.3g} (x{ratio:.2f}, limit {limit:g})"
        return CheckResult(name, "fail" if bad else "pass", cv, pv, limit, cn, pn, at, f"{name}: {shown}")

    def _primary_failing(self, model: str, primary: str, window_end: float, spec: CanarySpec) -> str:
        if spec.primary_min_accuracy is None:
            return ""
        acc = self.history.get(model, primary, "quality", "accuracy", "")
        recent = [e for e in acc if e <= window_end]
        if recent:
            value, n = acc[max(recent)]
            if n >= spec.min_samples and value < spec.primary_min_accuracy:
                return f"accuracy {value:.3f} < {spec.primary_min_accuracy:g}"
        return ""


def _width(series: Mapping[float, Any]) -> float:
    ends = sorted(series)
    return min((b - a for a, b in itertools.pairwise(ends)), default=0.0)
