"""Differential privacy for the aggregates driftline publishes (counts and rates per group).

Opt-in per monitor. Each person contributes at most `contribution_bound` records to a
release, so one person changes a count by at most that much (the L1 sensitivity of a set
of disjoint counts, by parallel composition). The Laplace mechanism adds noise of scale
sensitivity / epsilon; the Gaussian mechanism uses the classic calibration
sigma = sensitivity * sqrt(2 ln(1.25 / delta)) / epsilon (valid for epsilon < 1). Every
release spends from a `PrivacyBudget` and is refused once the budget is gone. Groups whose
noisy size is small, or whose noise is large next to the count, are flagged so nobody reads
meaning into noise.

>>> budget = PrivacyBudget(epsilon=1.0)
>>> out = release_counts({"f": {"tp": 40, "fp": 10}, "m": {"tp": 3, "fp": 1}}, budget, epsilon=0.5,
...                      rng=np.random.default_rng(0))
>>> sorted(out.flagged), round(budget.spent_epsilon, 2)
(['m'], 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from driftline.exceptions import BudgetExhausted

__all__ = ["BudgetExhausted", "NoisyRelease", "PrivacyBudget", "gaussian_sigma", "laplace_scale", "release_counts"]


@dataclass
class PrivacyBudget:
    """Basic sequential composition: epsilons (and deltas) add up over releases."""

    epsilon: float
    delta: float = 0.0
    spent_epsilon: float = 0.0
    spent_delta: float = 0.0
    ledger: list[tuple[str, float, float]] = field(default_factory=list)

    def spend(self, epsilon: float, delta: float = 0.0, what: str = "") -> None:
        if epsilon <= 0 or delta < 0:
            raise ValueError("epsilon > 0 and delta >= 0 are required")
        if self.spent_epsilon + epsilon > self.epsilon + 1e-12 or self.spent_delta + delta > self.delta + 1e-15:
            raise BudgetExhausted(
                f"releasing {what or 'this'} needs epsilon {epsilon:g}, delta {delta:g}; left: "
                f"{self.epsilon - self.spent_epsilon:g}, {self.delta - self.spent_delta:g}"
            )
        self.spent_epsilon += epsilon
        self.spent_delta += delta
        self.ledger.append((what, epsilon, delta))


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    return sensitivity / epsilon


def gaussian_sigma(sensitivity: float, epsilon: float, delta: float) -> float:
    if not 0 < epsilon < 1 or not 0 < delta < 1:
        raise ValueError("the classic Gaussian mechanism needs 0 < epsilon < 1 and 0 < delta < 1")
    return sensitivity * math.sqrt(2 * math.log(1.25 / delta)) / epsilon


@dataclass(frozen=True)
class NoisyRelease:
    counts: dict[str, dict[str, float]]  # group -> cell -> noisy count (clamped at 0)
    rates: dict[str, dict[str, float]]  # group -> cell -> noisy share of the group
    flagged: frozenset[str]  # groups too small or too noisy to read
    mechanism: str
    epsilon: float
    delta: float
    noise_scale: float  # Laplace b or Gaussian sigma


def release_counts(
    counts: Mapping[str, Mapping[str, int]],
    budget: PrivacyBudget,
    *,
    epsilon: float,
    delta: float = 0.0,
    mechanism: str = "laplace",
    contribution_bound: int = 1,
    min_noisy_size: float = 20.0,
    rng: np.random.Generator | None = None,
) -> NoisyRelease:
    """Noisy per-group counts (e.g. confusion counts per sensitive group) for one release."""
    if contribution_bound < 1:
        raise ValueError("contribution_bound must be at least 1")
    rng = rng or np.random.default_rng()
    if mechanism == "laplace":
        scale = laplace_scale(contribution_bound, epsilon)
    elif mechanism == "gaussian":
        scale = gaussian_sigma(contribution_bound, epsilon, delta)
    else:
        raise ValueError(f"mechanism {mechanism!r} is not laplace or gaussian")
    budget.spend(epsilon, delta if mechanism == "gaussian" else 0.0, what=f"{mechanism} counts")
    noisy: dict[str, dict[str, float]] = {}
    rates: dict[str, dict[str, float]] = {}
    flagged = set()
    for group, cells in counts.items():
        noise = rng.laplace(0.0, scale, len(cells)) if mechanism == "laplace" else rng.normal(0.0, scale, len(cells))
        values = {cell: max(0.0, float(c) + float(z)) for (cell, c), z in zip(cells.items(), noise, strict=True)}
        total = sum(values.values())
        noisy[group] = values
        rates[group] = {cell: (v / total if total > 0 else float("nan")) for cell, v in values.items()}
        # the noise's standard deviation on the total, next to the total itself
        spread = scale * math.sqrt(2 * len(cells)) if mechanism == "laplace" else scale * math.sqrt(len(cells))
        if total < min_noisy_size or spread > 0.5 * max(total, 1e-9):
            flagged.add(group)
    return NoisyRelease(noisy, rates, frozenset(flagged), mechanism, epsilon, delta, scale)
