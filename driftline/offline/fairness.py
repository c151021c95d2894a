"""Fairness mitigation with fairlearn: ExponentiatedGradient (in-processing) and ThresholdOptimizer
(post-processing) against demographic parity, with MetricFrame before and after per group and the
accuracy each constraint costs.

The base learner is scikit-learn's logistic regression on the same encoded data as the
network (fairlearn's reductions need a learner that takes sample weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.offline.spread import Spread
from driftline.offline.train import Dataset


@dataclass(frozen=True)
class MitigationResult:
    method: str
    accuracy: float  # mean over the seeds
    parity_gap: float  # mean over the seeds
    selection_rate: dict[str, float]  # per group, mean over the seeds
    accuracy_cost: float  # unmitigated accuracy minus this one (means)
    accuracy_spread: Spread | None = None
    gap_spread: Spread | None = None


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


def mitigate(data: Dataset, seeds: int = 5) -> list[MitigationResult]:
    """Unmitigated, ExponentiatedGradient and ThresholdOptimizer, each scored over `seeds` seeds.

    Both mitigations predict at random (a mixture of classifiers, a randomised threshold), so
    one seed's gap is luck: a gap of 0.010 with one seed was 0.028 with another. The fits are
    the same for every seed; the predictions' random state is the seed. The data split is fixed.
    """
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient
    from sklearn.linear_model import LogisticRegression

    # float64: fairlearn's post-processing writes scores back into a frame of the inputs' dtype
    x, y, g = data.x_train.astype(np.float64), data.y_train, data.groups_train
    x_test = data.x_test.astype(np.float64)
    base = LogisticRegression(max_iter=2000).fit(x, y)
    eg = ExponentiatedGradient(LogisticRegression(max_iter=2000), constraints=DemographicParity(), eps=0.02)
    eg.fit(x, y, sensitive_features=g)
    to = ThresholdOptimizer(
        estimator=base, constraints="demographic_parity", prefit=True, predict_method="predict_proba"
    )
    to.fit(x, y, sensitive_features=g)
    predictors: list[tuple[str, Callable[[int], Any]]] = [
        ("unmitigated", lambda seed: base.predict(x_test)),
        (
            "ExponentiatedGradient (demographic parity)",
            lambda seed: eg.predict(x_test, random_state=np.random.RandomState(seed)),
        ),
        (
            "ThresholdOptimizer (demographic parity)",
            lambda seed: to.predict(x_test, sensitive_features=data.groups_test, random_state=seed),
        ),
    ]
    out: list[MitigationResult] = []
    for method, predict in predictors:
        frames = [_frame(data.y_test, predict(seed), data.groups_test) for seed in range(seeds)]
        acc, gap = Spread.of([f[0] for f in frames]), Spread.of([f[1] for f in frames])
        rates = {k: float(np.mean([f[2][k] for f in frames])) for k in frames[0][2]}
        cost = out[0].accuracy - acc.mean if out else 0.0
        out.append(MitigationResult(method, acc.mean, gap.mean, rates, cost, acc, gap))
    return out
