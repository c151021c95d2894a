"""Fairness metrics published under differential privacy (opt-in per monitor: ``privacy:`` in the spec).

Per sensitive attribute and window, the confusion counts of each group (TP, FP, FN, TN) are
released once through the Laplace mechanism (`driftline.metrics.privacy`; one person's
prediction changes one count by at most `contribution_bound`), spending `epsilon_per_window`
from the model's budget; per-group rates and the gaps across groups are computed from the
noisy counts only. Groups whose noisy size is small or noisy are flagged and left out of the
gaps. When the budget is spent, nothing more is published for the model (and a row says so).

.. code-block:: yaml

    models:
      loan-approval:
        privacy: {epsilon_per_window: 1.0, budget: 50, contribution_bound: 1, min_noisy_size: 20}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.exceptions import ConfigError
from driftline.metrics.privacy import BudgetExhausted, PrivacyBudget, release_counts


@dataclass(frozen=True)
class PrivacySpec:
    epsilon_per_window: float = 1.0
    budget: float = 50.0
    contribution_bound: int = 1
    min_noisy_size: float = 20.0

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> PrivacySpec:
        if not isinstance(raw, dict) or set(raw) - {
            "epsilon_per_window",
            "budget",
            "contribution_bound",
            "min_noisy_size",
        }:
            raise ConfigError(
                f"monitor spec, {where}: expected {{epsilon_per_window: 1.0, budget: 50, "
                "contribution_bound: 1, min_noisy_size: 20}"
            )
        spec = cls(**raw)
        if spec.epsilon_per_window <= 0 or spec.budget < spec.epsilon_per_window or spec.contribution_bound < 1:
            raise ConfigError(f"monitor spec, {where}: need 0 < epsilon_per_window <= budget, contribution_bound >= 1")
        return spec


def private_group_metrics(
    y: npt.NDArray[np.int64],
    p: npt.NDArray[np.int64],
    groups: npt.NDArray[Any],
    spec: PrivacySpec,
    budget: PrivacyBudget,
    min_group_size: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Noisy selection rate / TPR / FPR per group and the gaps over unflagged groups; raises BudgetExhausted."""
    g = np.asarray(groups).astype(str)
    counts = {}
    for name in sorted(set(g.tolist())):
        m = g == name
        counts[name] = {
            "tp": int(np.sum((p == 1) & (y == 1) & m)),
            "fp": int(np.sum((p == 1) & (y == 0) & m)),
            "fn": int(np.sum((p == 0) & (y == 1) & m)),
            "tn": int(np.sum((p == 0) & (y == 0) & m)),
        }
    release = release_counts(
        counts,
        budget,
        epsilon=spec.epsilon_per_window,
        contribution_bound=spec.contribution_bound,
        min_noisy_size=spec.min_noisy_size,
        rng=rng,
    )
    out: dict[str, Any] = {"groups": {}, "flagged": sorted(release.flagged), "noise_scale": release.noise_scale}
    usable = {}
    for name, c in release.counts.items():
        size = sum(c.values())
        rates = {
            "size": size,
            "selection_rate": (c["tp"] + c["fp"]) / size if size > 0 else float("nan"),
            "tpr": c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] > 0 else float("nan"),
            "fpr": c["fp"] / (c["fp"] + c["tn"]) if c["fp"] + c["tn"] > 0 else float("nan"),
        }
        out["groups"][name] = rates
        if name not in release.flagged and size >= min_group_size:
            usable[name] = rates
    if len(usable) >= 2:
        sel = [r["selection_rate"] for r in usable.values()]
        tpr = [r["tpr"] for r in usable.values() if not np.isnan(r["tpr"])]
        fpr = [r["fpr"] for r in usable.values() if not np.isnan(r["fpr"])]
        out["demographic_parity_difference"] = max(sel) - min(sel)
        if tpr and fpr:
            out["equalized_odds_difference"] = max(max(tpr) - min(tpr), max(fpr) - min(fpr))
            out["equal_opportunity_difference"] = max(tpr) - min(tpr)
    return out


__all__ = ["BudgetExhausted", "PrivacyBudget", "PrivacySpec", "private_group_metrics"]
