"""The ``canary:`` settings of a model in the monitor spec (kept apart so the spec loads without numpy).

.. code-block:: yaml

    models:
      loan-approval:
        canary:
          max_failed_checks: 2     # failed analysis intervals before a rollback
          step_weight: 10          # weight added after an interval where every check passed
          max_weight: 50           # promotion happens from here
          promote_after: 2         # passing intervals at max_weight before promotion
          min_samples: 50          # fewer events per version: the check is inconclusive
          label_lookback: 6        # windows to look back for labelled metrics
          primary_min_accuracy: 0.7  # never roll back to a primary below this
          progress_deadline: 15m   # event time after registration for a first event; none: rolled back
          checks: {accuracy_drop: 0.05, drift_share_increase: 0.25, parity_gap_increase: 0.1,
                   latency_p99_ratio: 3, error_rate_increase: 0.02}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.exceptions import ConfigError
from driftline.values import parse_duration

#: check -> (family, metric, feature or "*" for the largest over features, label based?, kind)
CHECKS: dict[str, tuple[str, str, str, bool, str]] = {
    "accuracy_drop": ("quality", "accuracy", "", True, "drop"),
    "drift_share_increase": ("drift", "drift_share", "", False, "increase"),
    "parity_gap_increase": ("fairness", "demographic_parity_difference", "*", True, "increase"),
    "latency_p99_ratio": ("kpi", "latency_p99_ms", "", False, "ratio"),
    "error_rate_increase": ("kpi", "mean", "error", False, "increase"),
}
DEFAULT_CHECKS = {
    "accuracy_drop": 0.05,
    "drift_share_increase": 0.25,
    "parity_gap_increase": 0.1,
    "latency_p99_ratio": 3.0,
}


@dataclass(frozen=True)
class CanarySpec:
    max_failed_checks: int = 2
    step_weight: float = 10.0
    max_weight: float = 50.0
    promote_after: int = 2
    min_samples: int = 50
    label_lookback: int = 6
    checks: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CHECKS))
    primary_min_accuracy: float | None = None
    progress_deadline_s: int = 900  # a canary with no event this long (event time) after registering fails

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> CanarySpec:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ConfigError(f"monitor spec, {where}: expected a mapping, e.g. {{max_failed_checks: 2}}")
        known = {
            "max_failed_checks",
            "step_weight",
            "max_weight",
            "promote_after",
            "min_samples",
            "label_lookback",
            "checks",
            "primary_min_accuracy",
            "progress_deadline",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"monitor spec, {where}: unknown setting(s) {unknown}; known: {sorted(known)}")
        checks = raw.get("checks", DEFAULT_CHECKS)
        if not isinstance(checks, dict) or set(checks) - set(CHECKS):
            raise ConfigError(f"monitor spec, {where}.checks: name: limit pairs; checks are {sorted(CHECKS)}")
        for name, limit in checks.items():
            if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
                raise ConfigError(f"monitor spec, {where}.checks.{name}: the limit must be a number >= 0")
        settings = {k: v for k, v in raw.items() if k not in ("checks", "progress_deadline")}
        if "progress_deadline" in raw:
            settings["progress_deadline_s"] = parse_duration(raw["progress_deadline"], f"{where}.progress_deadline")
        spec = cls(**settings, checks={k: float(v) for k, v in checks.items()})
        if spec.max_failed_checks < 1 or spec.promote_after < 1 or spec.min_samples < 1 or spec.label_lookback < 1:
            raise ConfigError(f"monitor spec, {where}: counts must be at least 1")
        if not 0 < spec.step_weight <= spec.max_weight <= 100:
            raise ConfigError(f"monitor spec, {where}: need 0 < step_weight <= max_weight <= 100")
        return spec
