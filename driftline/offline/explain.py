"""Explanations: SHAP importance (global and for one prediction), partial dependence, a counterfactual,
and an importance-shift check between the reference data and a production window.

TreeExplainer where the model is a tree ensemble (the gradient-boosting teacher), otherwise
a permutation explainer over a k-means-summarised background. One-hot columns are summed
back to their source feature, so importances are per feature as users name them. The
importance shift compares each feature's share of the total mean |SHAP| on the reference
rows with its share on production rows: a feature whose share moves by more than
`threshold` is flagged — the model leans on something else in production than it did in
training, a sign of a spurious correlation or a broken input.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.offline.train import AGRAWAL_NUMERIC


def _source(name: str) -> str:
    return name.split("=", 1)[0]


def shap_values(model: Any, background: npt.NDArray[np.float32], x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """SHAP values of the positive class, (rows, columns)."""
    import shap

    try:
        explainer = shap.TreeExplainer(model)
        values = explainer.shap_values(x)
    except Exception:  # noqa: BLE001 - not a tree model: model-agnostic, on a summarised background
        summary = shap.kmeans(background, 20).data
        predict: Callable[[Any], Any] = lambda rows: model.predict_proba(rows)[:, 1]  # noqa: E731
        explainer = shap.PermutationExplainer(predict, summary)
        values = explainer(x).values
    arr = np.asarray(values, dtype=np.float64)
    return arr[..., 1] if arr.ndim == 3 else arr


def importance(values: npt.NDArray[np.float64], names: Sequence[str]) -> dict[str, float]:
    """Mean |SHAP| per source feature (one-hot columns summed per row first)."""
    by_feature: dict[str, npt.NDArray[np.float64]] = defaultdict(lambda: np.zeros(values.shape[0]))
    for j, name in enumerate(names):
        by_feature[_source(name)] = by_feature[_source(name)] + values[:, j]
    return {f: float(np.mean(np.abs(v))) for f, v in by_feature.items()}


def local(values_row: npt.NDArray[np.float64], names: Sequence[str], top: int = 5) -> list[tuple[str, float]]:
    """The largest contributions to one prediction, per source feature."""
    sums: dict[str, float] = defaultdict(float)
    for j, name in enumerate(names):
        sums[_source(name)] += float(values_row[j])
    return sorted(sums.items(), key=lambda kv: -abs(kv[1]))[:top]


def partial_dependence(
    model: Any, x: npt.NDArray[np.float32], column: int, points: int = 20
) -> tuple[list[float], list[float]]:
    from sklearn.inspection import partial_dependence as pd

    result = pd(model, x, [column], grid_resolution=points, kind="average")
    return [float(v) for v in result["grid_values"][0]], [float(v) for v in result["average"][0]]


@dataclass(frozen=True)
class Counterfactual:
    feature: str
    change_std: float  # in standard deviations of the training data
    change: float  # in the feature's own units
    new_probability: float


def counterfactual(model: Any, row: npt.NDArray[np.float32], std: npt.NDArray[np.float64],
                   max_std: float = 3.0, step: float = 0.05) -> Counterfactual | None:  # fmt: skip
    """The smallest single-numeric-feature change that flips the decision (None if none within max_std)."""
    base = float(model.predict_proba(row[None, :])[0, 1]) >= 0.5
    best: Counterfactual | None = None
    for j, name in enumerate(AGRAWAL_NUMERIC):
        for k in np.arange(step, max_std + 1e-9, step):
            if best is not None and k >= abs(best.change_std):
                break
            found = False
            for sign in (1.0, -1.0):
                probe = row.copy()
                probe[j] += sign * k
                p = float(model.predict_proba(probe[None, :])[0, 1])
                if (p >= 0.5) != base:
                    best = Counterfactual(name, sign * float(k), sign * float(k) * float(std[j]), p)
                    found = True
                    break
            if found:
                break
    return best


def importance_shift(reference: dict[str, float], production: dict[str, float], threshold: float = 0.1
                     ) -> dict[str, tuple[float, float, bool]]:  # fmt: skip
    """Per feature: (reference share, production share, flagged) of the total mean |SHAP|."""
    r_total, p_total = sum(reference.values()) or 1.0, sum(production.values()) or 1.0
    out = {}
    for f in sorted(set(reference) | set(production)):
        r, p = reference.get(f, 0.0) / r_total, production.get(f, 0.0) / p_total
        out[f] = (r, p, abs(p - r) > threshold)
    return out
