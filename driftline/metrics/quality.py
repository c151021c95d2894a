"""Prediction quality once labels arrive: binary classification and regression.

Bounded, mergeable state: confusion counts, running sums, a 10-bin calibration table and,
for ROC AUC, a 1,000-bin score histogram per class. AUC from the histograms counts pairs
in the same bin as half-concordant; ``roc_auc_error_bound`` is the share of positive x
negative pairs that share a bin, halved (exact when no two scores of different classes
fall in one bin).

>>> import numpy as np
>>> q = BinaryQuality().update_many(np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.4, 0.6]))
>>> q.get()["accuracy"], q.get()["roc_auc"]
(0.5, 0.75)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Scores are clipped to [eps, 1 - eps] for log loss, as scikit-learn does (float64 machine epsilon).
_EPS = float(np.finfo(np.float64).eps)


class BinaryQuality:
    """Accuracy, precision, recall, F1, ROC AUC, log loss, Brier score and ECE of a binary classifier."""

    def __init__(self, threshold: float = 0.5, auc_bins: int = 1000, calibration_bins: int = 10):
        if not 0 < threshold < 1 or auc_bins < 10 or calibration_bins < 2:
            raise ValueError("0 < threshold < 1, auc_bins >= 10 and calibration_bins >= 2 are required")
        self.threshold = threshold
        self.auc_bins = auc_bins
        self.calibration_bins = calibration_bins
        self._confusion = np.zeros(4, dtype=np.int64)  # tn, fp, fn, tp
        self._hist = np.zeros((2, auc_bins), dtype=np.int64)
        self._cal = np.zeros((3, calibration_bins))  # count, sum(score), sum(label)
        self._log_loss = 0.0
        self._brier = 0.0

    def update_many(self, y_true: npt.ArrayLike, score: npt.ArrayLike) -> BinaryQuality:
        """Add labels (0/1) and scores (probability of class 1); predictions are score >= threshold."""
        y = np.asarray(y_true, dtype=np.int64)
        s = np.asarray(score, dtype=np.float64)
        if y.shape != s.shape:
            raise ValueError(f"y_true has {y.size} values, score has {s.size}")
        pred = (s >= self.threshold).astype(np.int64)
        self._confusion += np.bincount(y * 2 + pred, minlength=4)
        b = np.minimum((s * self.auc_bins).astype(np.int64), self.auc_bins - 1)
        np.add.at(self._hist, (y, b), 1)
        c = np.minimum((s * self.calibration_bins).astype(np.int64), self.calibration_bins - 1)
        self._cal[0] += np.bincount(c, minlength=self.calibration_bins)
        self._cal[1] += np.bincount(c, weights=s, minlength=self.calibration_bins)
        self._cal[2] += np.bincount(c, weights=y, minlength=self.calibration_bins)
        p = np.clip(s, _EPS, 1 - _EPS)
        self._log_loss += float(-np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
        self._brier += float(np.sum((s - y) ** 2))
        return self

    def merge(self, other: BinaryQuality) -> BinaryQuality:
        self._confusion += other._confusion
        self._hist += other._hist
        self._cal += other._cal
        self._log_loss += other._log_loss
        self._brier += other._brier
        return self

    @property
    def n(self) -> int:
        return int(self._confusion.sum())

    def get(self) -> dict[str, float]:
        n = self.n
        if n == 0:
            return {}
        tn, fp, fn, tp = (int(v) for v in self._confusion)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        out = {
            "accuracy": (tp + tn) / n,
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "log_loss": self._log_loss / n,
            "brier": self._brier / n,
            "ece": float(np.sum(np.abs(self._cal[1] - self._cal[2])) / n),
        }
        neg, pos = self._hist[0].astype(np.float64), self._hist[1].astype(np.float64)
        pairs = pos.sum() * neg.sum()
        if pairs:
            below = np.cumsum(neg) - neg  # negatives in lower bins
            out["roc_auc"] = float(np.sum(pos * (below + neg / 2)) / pairs)
            out["roc_auc_error_bound"] = float(np.sum(pos * neg) / 2 / pairs)
        return out


class RegressionQuality:
    """MAE, RMSE and MAPE (over non-zero targets) of a regression model."""

    def __init__(self) -> None:
        self._n = 0
        self._abs = 0.0
        self._sq = 0.0
        self._ape = 0.0
        self._ape_n = 0

    def update_many(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> RegressionQuality:
        y = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_pred, dtype=np.float64)
        err = p - y
        self._n += int(y.size)
        self._abs += float(np.abs(err).sum())
        self._sq += float((err**2).sum())
        nz = y != 0
        self._ape += float(np.abs(err[nz] / y[nz]).sum())
        self._ape_n += int(nz.sum())
        return self

    def get(self) -> dict[str, float]:
        if self._n == 0:
            return {}
        out = {"mae": self._abs / self._n, "rmse": float(np.sqrt(self._sq / self._n))}
        if self._ape_n:
            out["mape"] = self._ape / self._ape_n
        return out


class MulticlassQuality:
    """Accuracy and macro/weighted precision, recall and F1 over classes given as strings.

    State: a confusion count per (true, predicted) pair, bounded by ``max_classes``
    (beyond it, further classes are counted under ``"(other)"``).
    """

    def __init__(self, max_classes: int = 200):
        if max_classes < 2:
            raise ValueError("max_classes must be at least 2")
        self.max_classes = max_classes
        self._classes: dict[str, int] = {}
        self._confusion = np.zeros((0, 0), dtype=np.int64)

    def _index(self, names: npt.NDArray[np.str_]) -> npt.NDArray[np.int64]:
        for name in np.unique(names).tolist():  # loops over classes, not events
            if name not in self._classes:
                key = name if len(self._classes) < self.max_classes - 1 else "(other)"
                if key not in self._classes:
                    self._classes[key] = len(self._classes)
                    grown = np.zeros((len(self._classes), len(self._classes)), dtype=np.int64)
                    grown[: self._confusion.shape[0], : self._confusion.shape[1]] = self._confusion
                    self._confusion = grown
                if key != name:
                    self._classes[name] = self._classes[key]
        lookup = self._classes
        return np.array([lookup[n] for n in names.tolist()], dtype=np.int64)

    def update_many(self, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> MulticlassQuality:
        t = self._index(np.asarray(y_true).astype(str))
        p = self._index(np.asarray(y_pred).astype(str))
        np.add.at(self._confusion, (t, p), 1)
        return self

    def get(self) -> dict[str, float]:
        c = self._confusion
        n = int(c.sum())
        if n == 0:
            return {}
        tp = np.diag(c).astype(np.float64)
        support = c.sum(axis=1).astype(np.float64)
        predicted = c.sum(axis=0).astype(np.float64)
        present = (support + predicted) > 0
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
        weights = support / support.sum()
        return {
            "accuracy": float(tp.sum() / n),
            "precision_macro": float(precision[present].mean()),
            "recall_macro": float(recall[present].mean()),
            "f1_macro": float(f1[present].mean()),
            "f1_weighted": float((f1 * weights).sum()),
        }
