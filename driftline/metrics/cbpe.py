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

Multiclass, one versus the rest (as NannyML): when events carry ``class_scores`` (every
class's probability) and the reference has them, each class's score is calibrated on the
reference as a binary problem (is the label this class?), the calibrated probabilities of an
event are normalised to sum to 1, and per class c the sums above give E[TP_c], E[FP_c],
E[FN_c] (ŷ = c is "predicted positive"): per-class precision, recall, F1 and ROC AUC, their
macro averages, and accuracy as the mean calibrated probability of the predicted class. The
band of a macro average treats the classes' errors as independent (sqrt(Σ se_c²) / K).
Events with only ``score`` (the predicted class's probability) get accuracy alone: that score
is calibrated to P(prediction right).
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
from collections.abc import Mapping, Sequence
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
            _band(out, "f1", *_f1(a, m, b, va, vb))
        auc = _auc(self.bin_p, self.bin_n)
        if auc is not None:
            _band(out, "roc_auc", *auc)
        return out

    def __repr__(self) -> str:
        return f"EstimatedQuality(task={self.task!r}, n={self.n})"


#: ROC AUC bins per class for multiclass: as binary up to 20 classes, fewer beyond, so a window's
#: state stays under 2 x 100 x 200 floats (320 KB). With 200 bins the macro ROC AUC is within
#: 0.003 of NannyML's on bench/cbpe_vs_nannyml.py --multiclass, with 1,000 within 0.0007.
def class_bins(classes: int) -> int:
    return BINS if classes <= 20 else BINS // 5


class EstimatedClassQuality:
    """One window's one-vs-rest CBPE state for a multiclass model (mergeable sums per class).

    `calibrations` maps each class (canonical text) to the calibration of its score, fitted on
    the reference as "is the label this class?" (:func:`class_calibrations_from`).
    """

    def __init__(self, calibrations: Mapping[str, Calibration]):
        if len(calibrations) < 2:
            raise ValueError("one-vs-rest estimation needs the calibrations of at least 2 classes")
        self.classes = sorted(calibrations)
        self.calibrations = [calibrations[c] for c in self.classes]
        self._index = {c: i for i, c in enumerate(self.classes)}
        k = len(self.classes)
        self.count = np.zeros(k)  # events predicted c
        self.tp = np.zeros(k)  # Σ_{ŷ=c} p_c
        self.tp_var = np.zeros(k)  # Σ_{ŷ=c} p_c (1 - p_c)
        self.pos = np.zeros(k)  # Σ p_c over every event (expected members of c)
        self.fn_var = np.zeros(k)  # Σ_{ŷ≠c} p_c (1 - p_c)
        self.bins = class_bins(k)
        self.bin_p = np.zeros((k, self.bins))  # Σ p_c per bin of p_c (ROC AUC of class c)
        self.bin_n = np.zeros((k, self.bins))
        self.scored = 0  # events with class scores
        self.unscored = 0

    def update_many(
        self, names: Sequence[str], scores: npt.ArrayLike, predicted: Sequence[str]
    ) -> EstimatedClassQuality:
        """`scores`: one row per event, one column per name in `names` (NaN: the event has none);
        `predicted`: each event's predicted class as canonical text."""
        raw = np.asarray(scores, dtype=np.float64).reshape(len(predicted), len(names))
        k, n = len(self.classes), raw.shape[0]
        if n == 0:
            return self
        x = np.full((n, k), np.nan)
        for j, name in enumerate(names):  # a loop over classes: the event's classes in the profile's order
            if (i := self._index.get(name)) is not None:
                x[:, i] = raw[:, j]
        scored = ~np.isnan(x).all(axis=1)
        self.unscored += int(n - scored.sum())
        x = np.nan_to_num(x[scored], nan=0.0)  # a class the event does not name: probability 0
        p = np.column_stack([cal(x[:, i]) for i, cal in enumerate(self.calibrations)])
        total = p.sum(axis=1, keepdims=True)
        p = np.divide(p, total, out=np.full_like(p, 1.0 / k), where=total > 0)
        lookup = self._index.get
        pred = np.fromiter((lookup(c, -1) for c in predicted), dtype=np.int64, count=n)[scored]
        hit = pred >= 0  # a predicted class the reference never labelled is in no class's "positive"
        var = p * (1 - p)
        rows = np.flatnonzero(hit)
        self.count += np.bincount(pred[hit], minlength=k)
        self.tp += np.bincount(pred[hit], weights=p[rows, pred[hit]], minlength=k)
        tp_var = np.bincount(pred[hit], weights=var[rows, pred[hit]], minlength=k)
        self.tp_var += tp_var
        self.pos += p.sum(axis=0)
        self.fn_var += var.sum(axis=0) - tp_var
        bins = self.bins
        b = np.minimum((p * bins).astype(np.int64), bins - 1)
        flat = (b + np.arange(k) * bins).ravel()  # one bincount for every class's bins
        self.bin_p += np.bincount(flat, weights=p.ravel(), minlength=k * bins).reshape(k, bins)
        self.bin_n += np.bincount(flat, minlength=k * bins).reshape(k, bins)
        self.scored += int(scored.sum())
        return self

    def merge(self, other: EstimatedClassQuality) -> EstimatedClassQuality:
        if other.classes != self.classes:
            raise ValueError("cannot merge one-vs-rest states of different class sets")
        for name in ("count", "tp", "tp_var", "pos", "fn_var", "bin_p", "bin_n"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.scored += other.scored
        self.unscored += other.unscored
        return self

    @property
    def n(self) -> int:
        return self.scored

    def get(self) -> dict[str, float]:
        """Macro averages as ``<metric>_macro`` and accuracy, each with its band; per class as
        ``<metric>/<class>`` (the engine stores the class as the row's feature, ``class=<c>``)."""
        n = self.n
        if n == 0:
            return {}
        out: dict[str, float] = {}
        tp, m, pos = self.tp, self.count, self.pos
        right_var = self.tp_var.sum()
        _band(out, "accuracy", tp.sum() / n, math.sqrt(right_var) / n)
        fn = pos - tp
        per: dict[str, list[tuple[float, float]]] = {"precision": [], "recall": [], "f1": [], "roc_auc": []}
        for i, cls in enumerate(self.classes):
            a, b, va, vb, mi = tp[i], fn[i], self.tp_var[i], self.fn_var[i], m[i]
            values = {
                "precision": (a / mi, math.sqrt(va) / mi) if mi else (0.0, 0.0),
                "recall": (a / (a + b), math.sqrt(b * b * va + a * a * vb) / (a + b) ** 2) if a + b > 0 else (0.0, 0.0),
                "f1": _f1(a, mi, b, va, vb),
                "roc_auc": _auc(self.bin_p[i], self.bin_n[i]) or (math.nan, 0.0),
            }
            for metric, (value, se) in values.items():
                per[metric].append((value, se))
                if math.isfinite(value):
                    one: dict[str, float] = {}
                    _band(one, metric, value, se)
                    out.update({f"{name}/{cls}": v for name, v in one.items()})  # e.g. recall_lower/<class>
        for metric, pairs in per.items():
            finite = [(v, se) for v, se in pairs if math.isfinite(v)]
            if finite:
                mean = sum(v for v, _ in finite) / len(finite)
                _band(out, f"{metric}_macro", mean, math.sqrt(sum(se * se for _, se in finite)) / len(finite))
        return out

    def __repr__(self) -> str:
        return f"EstimatedClassQuality(classes={len(self.classes)}, n={self.n})"


def _f1(a: float, m: float, b: float, va: float, vb: float) -> tuple[float, float]:
    """Expected F1 = 2 TP / (TP + FP + TP + FN) = 2a / (a + m + b), and its delta-method standard error."""
    if a + m + b <= 0:
        return 0.0, 0.0
    d = (a + m + b) ** 2
    return 2 * a / (a + m + b), math.sqrt((2 * (m + b) / d) ** 2 * va + (2 * a / d) ** 2 * vb)


def _auc(positives_by_bin: np.ndarray, events_by_bin: np.ndarray) -> tuple[float, float] | None:
    """Mann-Whitney ROC AUC of expected positives vs negatives along the bins, and its Hanley-McNeil
    standard error; None when either is absent."""
    positives = positives_by_bin
    negatives = events_by_bin - positives_by_bin
    p_total, n_total = positives.sum(), negatives.sum()
    if p_total <= 0 or n_total <= 0:
        return None
    above = np.cumsum(positives[::-1])[::-1] - positives  # expected positives in higher bins
    auc = float((negatives * (above + 0.5 * positives)).sum() / (p_total * n_total))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)  # Hanley & McNeil (1982)
    var = (auc * (1 - auc) + (p_total - 1) * (q1 - auc * auc) + (n_total - 1) * (q2 - auc * auc)) / (p_total * n_total)
    return auc, math.sqrt(max(var, 0.0))


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


def class_calibrations_from(class_scores: Mapping[str, Sequence[Any]], labels: Sequence[Any]) -> dict[str, Calibration]:
    """One calibration per class of a labelled multiclass reference: the class's score -> P(label is
    that class), one versus the rest. `class_scores` maps each class (canonical text) to its column."""
    from driftline.events import canonical_target

    if len(class_scores) < 2:
        raise ValueError("one-vs-rest calibration needs the scores of at least 2 classes")
    truth = [None if y is None else canonical_target(y) for y in labels]
    out: dict[str, Calibration] = {}
    failed: list[str] = []
    for cls, column in sorted(class_scores.items()):
        outcome = [np.nan if y is None else float(y == cls) for y in truth]
        try:
            out[cls] = Calibration.fit([np.nan if s is None else float(s) for s in column], outcome)
        except ValueError:
            failed.append(cls)
    if failed:
        raise ValueError(
            f"classes {failed} cannot be calibrated: each class needs at least 50 labelled reference events "
            "with scores, some of that class and some not"
        )
    return out
