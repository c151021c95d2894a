"""Quality estimated before labels arrive: confidence-based performance estimation (CBPE, as NannyML).

Labels come minutes to months late; until then a drop in accuracy is invisible. If the
model's scores are *calibrated* -- among events scored 0.8, 80 % are positive -- the
confusion matrix of a window can be expected from its scores alone. On a labelled reference
set the raw scores are calibrated once (isotonic regression, fitted here by pool-adjacent-
violators: no scikit-learn in the worker), then per window, with p_i the calibrated
probability that event i is positive and ŷ_i its predicted class:

    E[TP] = Σ_{ŷ=1} p_i   E[FP] = Σ_{ŷ=1} (1 - p_i)   E[FN] = Σ_{ŷ=0} p_i   E[TN] = Σ_{ŷ=0} (1 - p_i)

giving estimated accuracy, precision, recall and F1, and ROC AUC as the Mann-Whitney
statistic of the expected positives and negatives along the calibrated scores (1,000 bins:
events in one bin count as tied). Each estimate comes with a band of ±3 standard errors
under the same model (each event's outcome an independent Bernoulli(p_i); delta method for
the ratios; Hanley-McNeil for ROC AUC). Every part is a sum, so window states merge.

Multiclass: the event contract carries one score, the predicted class's probability, so
only accuracy is estimated (the calibrated probability that the prediction is right). The
one-vs-rest metrics per class need every class's probability, which events do not carry.
Regression: NannyML's direct loss estimation trains a model of the loss on the reference's
features; driftline does not (yet) train models in the worker, so regression gets none.

The assumption, stated wherever these numbers show: no concept drift -- P(y | score) is the
reference's. Under covariate shift the estimate follows the realised metric; if the
relation between inputs and labels changes (the same inputs, other outcomes), the scores do
not move and neither does the estimate (``tests/unit/test_cbpe.py`` shows both).

>>> knots, fitted = isotonic([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])  # the violation at 0.2-0.3 is pooled
>>> fitted.tolist()
[0.0, 0.5, 0.5, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

BINS = 1000
SIGMAS = 3.0


def isotonic(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of y on x (pool adjacent violators): the knots (x, fitted y).

    Equal x values are pooled first (as scikit-learn's IsotonicRegression does), so the fit is a
    function of x; between knots it is interpolated linearly, outside them held constant.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs, ys = x[order], y[order]
    ux, start = np.unique(xs, return_index=True)
    weights = np.diff(np.append(start, xs.size)).astype(np.float64)
    means = np.add.reduceat(ys, start) / weights
    level_v: list[float] = []
    level_w: list[float] = []
    level_n: list[int] = []
    for v, w in zip(means.tolist(), weights.tolist(), strict=True):
        level_v.append(v)
        level_w.append(w)
        level_n.append(1)
        while len(level_v) > 1 and level_v[-2] > level_v[-1]:  # a violation: pool the last two blocks
            v2, w2, n2 = level_v.pop(), level_w.pop(), level_n.pop()
            total = level_w[-1] + w2
            level_v[-1] = (level_v[-1] * level_w[-1] + v2 * w2) / total
            level_w[-1] = total
            level_n[-1] += n2
    fitted = np.repeat(level_v, level_n)
    return ux, fitted


@dataclass(frozen=True)
class Calibration:
    """Raw score -> calibrated probability (of the positive class; for multiclass, that the prediction
    is right), fitted on a labelled reference."""

    x: list[float]
    y: list[float]
    reference_n: int = 0
    reference_positive_rate: float = 0.0

    @classmethod
    def fit(cls, scores: npt.ArrayLike, outcomes: npt.ArrayLike) -> Calibration:
        s = np.asarray(scores, dtype=np.float64)
        o = np.asarray(outcomes, dtype=np.float64)
        keep = np.isfinite(s) & np.isfinite(o)
        if keep.sum() < 50 or np.unique(o[keep]).size < 2:
            raise ValueError("calibration needs at least 50 labelled reference events with both outcomes")
        x, y = isotonic(s[keep], o[keep])
        if x.size > 2 * BINS:  # a bounded profile: keep every knot's shape at 2,000 points
            grid = np.quantile(s[keep], np.linspace(0, 1, 2 * BINS))
            x, y = grid, np.interp(grid, x, y)
        return cls([float(v) for v in x], [float(v) for v in y], int(keep.sum()), float(o[keep].mean()))

    def __call__(self, scores: npt.ArrayLike) -> np.ndarray:
        return np.clip(np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y), 0.0, 1.0)


class EstimatedQuality:
    """One window's CBPE state: sums over the events with a score (mergeable)."""

    def __init__(self, calibration: Calibration, task: str = "binary"):
        if task not in ("binary", "multiclass"):
            raise ValueError(f"CBPE estimates binary and multiclass quality, not {task!r}")
        self.calibration = calibration
        self.task = task
        # per predicted class (1 = positive; for multiclass, index 1 holds every event): count, Σp, Σp(1-p)
        self.count = np.zeros(2)
        self.p_sum = np.zeros(2)
        self.p_var = np.zeros(2)
        self.bin_p = np.zeros(BINS)  # Σp per bin of the calibrated probability (ROC AUC)
        self.bin_n = np.zeros(BINS)
        self.unscored = 0

    def update_many(self, scores: Sequence[float | None], predicted_positive: npt.ArrayLike) -> EstimatedQuality:
        s = np.asarray(scores, dtype=np.float64)  # None -> NaN, in C
        pos = np.asarray(predicted_positive, dtype=bool)
        ok = np.isfinite(s)
        self.unscored += int((~ok).sum())
        p = self.calibration(s[ok])
        cls = pos[ok].astype(np.int64) if self.task == "binary" else np.ones(p.size, dtype=np.int64)
        self.count += np.bincount(cls, minlength=2)
        self.p_sum += np.bincount(cls, weights=p, minlength=2)
        self.p_var += np.bincount(cls, weights=p * (1 - p), minlength=2)
        b = np.minimum((p * BINS).astype(np.int64), BINS - 1)
        self.bin_p += np.bincount(b, weights=p, minlength=BINS)
        self.bin_n += np.bincount(b, minlength=BINS)
        return self

    def merge(self, other: EstimatedQuality) -> EstimatedQuality:
        for name in ("count", "p_sum", "p_var", "bin_p", "bin_n"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unscored += other.unscored
        return self

    @property
    def n(self) -> int:
        return int(self.count.sum())

    def get(self) -> dict[str, float]:
        """Each estimate with ``<metric>_lower`` and ``<metric>_upper`` (±3 standard errors, clipped)."""
        if self.n == 0:
            return {}
        out: dict[str, float] = {}
        if self.task == "multiclass":
            n, right, var = self.count[1], self.p_sum[1], self.p_var[1]
            _band(out, "accuracy", right / n, math.sqrt(var) / n)
            return out
        m, k = self.count[1], self.count[0]  # predicted positive, predicted negative
        a, b = self.p_sum[1], self.p_sum[0]  # E[TP], E[FN]
        va, vb = self.p_var[1], self.p_var[0]
        n = m + k
        _band(out, "accuracy", (a + (k - b)) / n, math.sqrt(va + vb) / n)  # correct: TP + TN
        if m:
            _band(out, "precision", a / m, math.sqrt(va) / m)
        if a + b > 0:
            recall = a / (a + b)
            se = math.sqrt(b * b * va + a * a * vb) / (a + b) ** 2
            _band(out, "recall", recall, se)
        if a + m + b > 0:
            f1 = 2 * a / (a + m + b)
            d = (a + m + b) ** 2
            se = math.sqrt((2 * (m + b) / d) ** 2 * va + (2 * a / d) ** 2 * vb)
            _band(out, "f1", f1, se)
        auc = self._roc_auc()
        if auc is not None:
            out.update(auc)
        return out

    def _roc_auc(self) -> dict[str, float] | None:
        positives = self.bin_p
        negatives = self.bin_n - self.bin_p
        p_total, n_total = positives.sum(), negatives.sum()
        if p_total <= 0 or n_total <= 0:
            return None
        above = np.cumsum(positives[::-1])[::-1] - positives  # expected positives in higher bins
        auc = float((negatives * (above + 0.5 * positives)).sum() / (p_total * n_total))
        q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)  # Hanley & McNeil (1982)
        var = (auc * (1 - auc) + (p_total - 1) * (q1 - auc * auc) + (n_total - 1) * (q2 - auc * auc)) / (
            p_total * n_total
        )
        out: dict[str, float] = {}
        _band(out, "roc_auc", auc, math.sqrt(max(var, 0.0)))
        return out

    def __repr__(self) -> str:
        return f"EstimatedQuality(task={self.task!r}, n={self.n})"


def _band(out: dict[str, float], name: str, value: float, se: float) -> None:
    out[name] = float(value)
    out[f"{name}_lower"] = float(max(0.0, value - SIGMAS * se))
    out[f"{name}_upper"] = float(min(1.0, value + SIGMAS * se))


def calibration_from(
    scores: Sequence[Any], labels: Sequence[Any], predictions: Sequence[Any] | None, positive: str, task: str
) -> Calibration:
    """The calibration of a labelled reference: binary, score -> P(label is `positive`); multiclass,
    the predicted class's score -> P(prediction right). Labels and predictions compare as canonical text."""
    from driftline.events import canonical_target

    if task == "binary":
        outcome = [None if y is None else float(canonical_target(y) == positive) for y in labels]
    elif task == "multiclass":
        if predictions is None:
            raise ValueError("multiclass calibration needs the reference's predictions")
        outcome = [
            None if y is None or p is None else float(canonical_target(y) == canonical_target(p))
            for y, p in zip(labels, predictions, strict=True)
        ]
    else:
        raise ValueError(f"no performance estimation for {task!r} models (see driftline.metrics.cbpe)")
    return Calibration.fit(
        [np.nan if s is None else float(s) for s in scores], [np.nan if o is None else o for o in outcome]
    )
