"""Group fairness of a binary classifier per sensitive attribute.

State: five counts per group (size, selected, positives, true positives, false
positives), so it is bounded by the number of groups and merges exactly. Groups smaller
than ``min_group_size`` are reported but left out of the comparisons.

>>> import numpy as np
>>> f = GroupFairness(min_group_size=1).update_many(
...     np.array([1, 0, 1, 0]), np.array([1, 0, 0, 0]), np.array(["a", "a", "b", "b"]))
>>> f.get()["demographic_parity_difference"]
0.5
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class GroupFairness:
    """Selection rate, TPR and FPR per group; parity and equalized-odds gaps across groups."""

    def __init__(self, min_group_size: int = 30):
        if min_group_size < 1:
            raise ValueError("min_group_size must be at least 1")
        self.min_group_size = min_group_size
        self._counts: dict[str, np.ndarray] = {}  # size, selected, positives, tp, fp

    def update_many(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike, group: npt.ArrayLike) -> GroupFairness:
        y = np.asarray(y_true, dtype=np.int64)
        p = np.asarray(y_pred, dtype=np.int64)
        g = np.asarray(group).astype(str)
        names, inverse = np.unique(g, return_inverse=True)
        k = names.size
        stacked = np.stack(
            [
                np.bincount(inverse, minlength=k),
                np.bincount(inverse, weights=p, minlength=k),
                np.bincount(inverse, weights=y, minlength=k),
                np.bincount(inverse, weights=p * y, minlength=k),
                np.bincount(inverse, weights=p * (1 - y), minlength=k),
            ]
        ).astype(np.int64)
        for i, name in enumerate(names.tolist()):  # loops over groups, not events
            if name in self._counts:
                self._counts[name] += stacked[:, i]
            else:
                self._counts[name] = stacked[:, i].copy()
        return self

    def merge(self, other: GroupFairness) -> GroupFairness:
        for name, c in other._counts.items():
            self._counts[name] = self._counts[name] + c if name in self._counts else c.copy()
        return self

    def groups(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, (size, selected, positives, tp, fp) in sorted(self._counts.items()):
            negatives = size - positives
            out[name] = {
                "size": float(size),
                "positives": float(positives),
                "negatives": float(negatives),
                "selection_rate": selected / size if size else 0.0,
                # undefined without positives (negatives): NaN, left out of the gaps (fairlearn counts 0,
                # which reads a group nobody could help as one the model failed entirely)
                "tpr": tp / positives if positives else float("nan"),
                "fpr": fp / negatives if negatives else float("nan"),
            }
        return out

    def get(self) -> dict[str, Any]:
        groups = self.groups()
        compared = {n: g for n, g in groups.items() if g["size"] >= self.min_group_size}
        out: dict[str, Any] = {"groups": groups, "compared": sorted(compared)}
        if len(compared) < 2:
            return out
        sel = np.array([g["selection_rate"] for g in compared.values()])
        tpr = np.array([g["tpr"] for g in compared.values()])
        fpr = np.array([g["fpr"] for g in compared.values()])
        out["demographic_parity_difference"] = float(sel.max() - sel.min())
        out["demographic_parity_ratio"] = float(sel.min() / sel.max()) if sel.max() > 0 else 1.0
        out["equal_opportunity_difference"] = float(np.nanmax(tpr) - np.nanmin(tpr))
        out["equalized_odds_difference"] = float(max(np.nanmax(tpr) - np.nanmin(tpr), np.nanmax(fpr) - np.nanmin(fpr)))
        return out
