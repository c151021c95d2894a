"""Metric plugins as a user would write them (outside driftline), for the plugin tests."""

from __future__ import annotations

from typing import Any

import numpy as np


class ApprovalRateAbove:
    """The share of approved (prediction 1) among applications whose `feature` is above `above`."""

    def __init__(self, feature: str = "loan", above: float = 100_000.0):
        self.feature, self.above = feature, above
        self.approved = 0
        self.n = 0

    def update_many(self, batch: Any) -> ApprovalRateAbove:
        large = batch.numeric(self.feature) > self.above
        approved = np.array([str(p) == "1" for p in batch.predictions()], dtype=bool)
        self.approved += int((large & approved).sum())
        self.n += int(large.sum())
        return self

    def merge(self, other: ApprovalRateAbove) -> ApprovalRateAbove:
        self.approved += other.approved
        self.n += other.n
        return self

    def get(self) -> dict[str, float]:
        return {"": self.approved / self.n, "n": float(self.n)} if self.n else {}


class ScoreMoments:
    """Mean and variance of the scores (Chan's parallel merge), a plugin with array-free float state."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def update_many(self, batch: Any) -> ScoreMoments:
        s = batch.scores()
        s = s[~np.isnan(s)]
        if s.size:
            other = ScoreMoments()
            other.n, other.mean, other.m2 = int(s.size), float(s.mean()), float(((s - s.mean()) ** 2).sum())
            self.merge(other)
        return self

    def merge(self, other: ScoreMoments) -> ScoreMoments:
        n = self.n + other.n
        if n:
            delta = other.mean - self.mean
            self.mean += delta * other.n / n
            self.m2 += other.m2 + delta * delta * self.n * other.n / n
            self.n = n
        return self

    def get(self) -> dict[str, float]:
        return {"mean": round(self.mean, 12), "var": round(self.m2 / self.n, 12)} if self.n > 0 else {}


class BrokenMerge(ApprovalRateAbove):
    """Forgets the other's counts: the contract check must catch it."""

    def merge(self, other: ApprovalRateAbove) -> ApprovalRateAbove:
        return self
