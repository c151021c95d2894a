"""Confident learning against cleanlab, and its precision/recall on injected flips in data sklearn ships."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from cleanlab.filter import find_label_issues as cleanlab_issues
from sklearn.datasets import load_breast_cancer, load_digits

from driftline.labeling.noise import find_label_issues, out_of_fold_probabilities, score_detection
from driftline.metrics.label_noise import ConfidentDisagreement


def flipped(loader: Callable[..., Any], share: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = loader(return_X_y=True)
    rng = np.random.default_rng(seed)
    k = int(y.max()) + 1
    flip = rng.choice(len(y), size=int(len(y) * share), replace=False)
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, k, flip.size)) % k  # always a different class
    return x, noisy, flip


@pytest.mark.parametrize(
    ("loader", "min_precision", "min_recall"), [(load_digits, 0.8, 0.7), (load_breast_cancer, 0.85, 0.6)]
)
def test_finds_injected_flips_as_cleanlab_does(
    loader: Callable[..., Any], min_precision: float, min_recall: float
) -> None:
    x, noisy, flip = flipped(loader, 0.10, seed=0)
    probs = out_of_fold_probabilities(x, noisy)
    mine = find_label_issues(noisy, probs)
    reference = cleanlab_issues(
        noisy, probs, filter_by="confident_learning", return_indices_ranked_by="self_confidence"
    )
    assert mine.tolist() == reference.tolist()  # the same items in the same review order
    score = score_detection(mine, flip)
    assert score.precision >= min_precision and score.recall >= min_recall, score


def test_clean_labels_give_few_suspects() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    suspects = find_label_issues(y, out_of_fold_probabilities(x, y))
    assert len(suspects) < 0.04 * len(y)  # the model's own mistakes on clean data, no more


def test_streaming_signal_rises_in_the_segment_with_bad_labels() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    y = rng.integers(0, 2, n)
    scores = np.clip(np.where(y == 1, rng.normal(0.85, 0.1, n), rng.normal(0.15, 0.1, n)), 0, 1)
    segment = np.where(rng.uniform(size=n) < 0.5, "vendor-a", "vendor-b")
    labels = y.copy()
    bad = (segment == "vendor-b") & (rng.uniform(size=n) < 0.2)
    labels[bad] = 1 - labels[bad]  # vendor b's annotators flip a fifth of the labels
    signal = ConfidentDisagreement(0.9)
    for part in np.array_split(np.arange(n), 7):  # in batches, as windows arrive
        signal.update_many(labels[part], scores[part], segment[part])
    got = signal.get()
    confident = (scores >= 0.9) | (scores <= 0.1)
    for name in ("vendor-a", "vendor-b"):
        m = confident & (segment == name)
        expected = float(np.mean((scores[m] >= 0.5) != labels[m]))
        assert got[name] == (pytest.approx(expected), int(m.sum()))
    assert got["vendor-b"][0] > 0.15 > 0.02 > got["vendor-a"][0]
