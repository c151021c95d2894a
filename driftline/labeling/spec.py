"""The ``labeling`` section of the monitor spec: how many labels a model asks for per window, and how it picks.

Opt-in per model::

    models:
      loan-approval:
        labeling: {budget_per_window: 20, strategy: margin, diversity: 0}

The stream side that acts on it is `driftline.streams.labeling_requests`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftline.exceptions import ConfigError
from driftline.labeling.active import STRATEGIES, Strategy


@dataclass(frozen=True)
class LabelingSpec:
    budget_per_window: int = 20
    strategy: Strategy = "margin"
    diversity: int = 0  # > 0: shortlist diversity x budget, then pick far-apart ones

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> LabelingSpec:
        if not isinstance(raw, dict) or set(raw) - {"budget_per_window", "strategy", "diversity"}:
            raise ConfigError(
                f"monitor spec, {where}: expected {{budget_per_window: 20, strategy: margin, diversity: 0}}"
            )
        spec = cls(**raw)
        if spec.strategy not in STRATEGIES:
            raise ConfigError(f"monitor spec, {where}.strategy: {spec.strategy!r} is not one of {list(STRATEGIES)}")
        if int(spec.budget_per_window) < 1 or int(spec.diversity) < 0:
            raise ConfigError(f"monitor spec, {where}: need budget_per_window >= 1 and diversity >= 0")
        return spec
