"""Fairness mitigation with fairlearn: ExponentiatedGradient (in-processing) and ThresholdOptimizer
(post-processing) against demographic parity, with MetricFrame before and after per group and the
accuracy each constraint costs.

The base learner is scikit-learn's logistic regression on the same encoded data as the
network (fairlearn's reductions need a learner that takes sample weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.offline.train import Dataset


@dataclass(frozen=True)
class MitigationResult:
    method: str
    accuracy: float
    parity_gap: float
    selection_rate: dict[str, float]  # per group
    accuracy_cost: float  # unmitigated accuracy minus this one


def _frame(y: Any, pred: Any, groups: Any) -> tuple[float, float, dict[str, float]]:
    from fairlearn.metrics import MetricFrame, demographic_parity_difference, selection_rate
    from sklearn.metrics import accuracy_score

    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "accuracy": accuracy_score},
        y_true=y,
        y_pred=pred,
        sensitive_features=groups,
    )
    rates = {str(k): float(v) for k, v in frame.by_group["selection_rate"].items()}
    return (
        float(accuracy_score(y, pred)),
        float(demographic_parity_difference(y, pred, sensitive_features=groups)),
        rates,
    )


def mitigate(data: Dataset, seed: int = 0) -> list[MitigationResult]:
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient
    from sklearn.linear_model import LogisticRegression

    # float64: fairlearn's post-processing writes scores back into a frame of the inputs' dtype
    x, y, g = data.x_train.astype(np.float64), data.y_train, data.groups_train
    x_test = data.x_test.astype(np.float64)
    base = LogisticRegression(max_iter=2000).fit(x, y)
    acc0, gap0, rates0 = _frame(data.y_test, base.predict(x_test), data.groups_test)
    out = [MitigationResult("unmitigated", acc0, gap0, rates0, 0.0)]
    eg = ExponentiatedGradient(LogisticRegression(max_iter=2000), constraints=DemographicParity(), eps=0.02)
    eg.fit(x, y, sensitive_features=g)
    pred = eg.predict(x_test, random_state=np.random.RandomState(seed))
    acc, gap, rates = _frame(data.y_test, pred, data.groups_test)
    out.append(MitigationResult("ExponentiatedGradient (demographic parity)", acc, gap, rates, acc0 - acc))
    to = ThresholdOptimizer(
        estimator=base, constraints="demographic_parity", prefit=True, predict_method="predict_proba"
    )
    to.fit(x, y, sensitive_features=g)
    pred = to.predict(x_test, sensitive_features=data.groups_test, random_state=seed)
    acc, gap, rates = _frame(data.y_test, pred, data.groups_test)
    out.append(MitigationResult("ThresholdOptimizer (demographic parity)", acc, gap, rates, acc0 - acc))
    return out
