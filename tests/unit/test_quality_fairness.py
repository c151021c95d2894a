"""Quality and fairness metrics against scikit-learn and fairlearn on the same data."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    true_positive_rate,
)
from sklearn import metrics as skm

from driftline.metrics.fairness import GroupFairness
from driftline.metrics.quality import BinaryQuality, RegressionQuality

RNG = np.random.default_rng(11)


def _binary(n: int = 5_000) -> tuple[np.ndarray, np.ndarray]:
    y = RNG.integers(0, 2, n)
    score = np.clip(RNG.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return y, score


def test_binary_quality_matches_sklearn() -> None:
    y, s = _binary()
    q = BinaryQuality()
    for a, b in zip(np.array_split(y, 4), np.array_split(s, 4), strict=True):
        q.update_many(a, b)
    got = q.get()
    pred = (s >= 0.5).astype(int)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred), abs=1e-12)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, s), abs=1e-9)
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, s), abs=1e-12)
    auc = skm.roc_auc_score(y, s)
    assert abs(got["roc_auc"] - auc) <= got["roc_auc_error_bound"] + 1e-12
    assert got["roc_auc_error_bound"] < 0.002


def test_ece_against_a_direct_computation() -> None:
    y, s = _binary(3_000)
    got = BinaryQuality(calibration_bins=10).update_many(y, s).get()
    bins = np.minimum((s * 10).astype(int), 9)
    direct = sum(abs(s[bins == b].sum() - y[bins == b].sum()) for b in range(10)) / y.size
    assert got["ece"] == pytest.approx(direct, abs=1e-12)


def test_auc_is_exact_when_no_bin_is_shared() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.35, 0.3, 0.8, 0.6, 0.95])
    got = BinaryQuality().update_many(y, s).get()
    assert got["roc_auc_error_bound"] == 0.0
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_regression_quality_matches_sklearn() -> None:
    y = RNG.normal(100, 20, 2_000)
    p = y + RNG.normal(0, 5, 2_000)
    got = RegressionQuality().update_many(y[:700], p[:700]).update_many(y[700:], p[700:]).get()
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, p), rel=1e-12)


def test_fairness_matches_fairlearn() -> None:
    n = 6_000
    group = RNG.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    y = RNG.integers(0, 2, n)
    bias = np.where(group == "a", 0.15, np.where(group == "b", 0.0, -0.1))
    pred = (RNG.uniform(size=n) < 0.3 + 0.3 * y + bias).astype(int)
    f = GroupFairness(min_group_size=10)
    for a, b, c in zip(np.array_split(y, 3), np.array_split(pred, 3), np.array_split(group, 3), strict=True):
        f.update_many(a, b, c)
    got = f.get()
    kw = dict(y_true=y, y_pred=pred, sensitive_features=group)
    assert got["demographic_parity_difference"] == pytest.approx(demographic_parity_difference(**kw), abs=1e-12)
    assert got["demographic_parity_ratio"] == pytest.approx(demographic_parity_ratio(**kw), abs=1e-12)
    assert got["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(**kw), abs=1e-12)
    tpr = MetricFrame(metrics=true_positive_rate, **kw).by_group
    assert got["equal_opportunity_difference"] == pytest.approx(tpr.max() - tpr.min(), abs=1e-12)
    for name, g in got["groups"].items():
        assert g["tpr"] == pytest.approx(tpr[name], abs=1e-12)


def test_small_groups_are_reported_not_compared_and_state_pickles() -> None:
    y = np.array([1, 0] * 50 + [1, 1])
    pred = np.array([1, 0] * 50 + [0, 0])
    group = np.array(["big"] * 100 + ["tiny"] * 2)
    f = pickle.loads(pickle.dumps(GroupFairness(min_group_size=30).update_many(y, pred, group)))
    got = f.get()
    assert set(got["groups"]) == {"big", "tiny"}
    assert got["compared"] == ["big"]
    assert "demographic_parity_difference" not in got
    merged = GroupFairness(min_group_size=1).merge(f).get()
    assert merged["equal_opportunity_difference"] == 1.0


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        BinaryQuality(threshold=1.0)
    with pytest.raises(ValueError):
        GroupFairness(min_group_size=0)
    with pytest.raises(ValueError, match="has 2 values"):
        BinaryQuality().update_many([1, 0], [0.1, 0.2, 0.3])


def test_multiclass_quality_matches_sklearn() -> None:
    from driftline.metrics.quality import MulticlassQuality

    classes = np.array(["cat", "dog", "eel", "fox"])
    y = RNG.choice(classes, 3000, p=[0.4, 0.3, 0.2, 0.1])
    pred = np.where(RNG.uniform(size=3000) < 0.7, y, RNG.choice(classes, 3000))
    pred[:5] = "gnu"  # a class that is predicted but never true
    q = MulticlassQuality()
    for a, b in zip(np.array_split(y, 3), np.array_split(pred, 3), strict=True):
        q.update_many(a, b)
    got = q.get()
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    kw = {"zero_division": 0}
    assert got["precision_macro"] == pytest.approx(skm.precision_score(y, pred, average="macro", **kw), abs=1e-12)
    assert got["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro", **kw), abs=1e-12)
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro", **kw), abs=1e-12)
    assert got["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted", **kw), abs=1e-12)


def test_multiclass_state_is_bounded() -> None:
    from driftline.metrics.quality import MulticlassQuality

    q = MulticlassQuality(max_classes=5).update_many([f"c{i}" for i in range(100)], [f"c{i}" for i in range(100)])
    assert q._confusion.shape == (5, 5)
