"""Confident learning against cleanlab, and its precision/recall on injected flips in data sklearn ships."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from cleanlab.filter import find_label_issues as cleanlab_issues
from sklearn.datasets import load_breast_cancer, load_digits

from driftline.labeling.noise import (
    estimate_noise_rate,
    find_label_issues,
    out_of_fold_probabilities,
    score_detection,
)
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


def test_noise_rate_is_the_calibrated_joint_as_cleanlab_estimates_it() -> None:
    from cleanlab.count import estimate_joint

    for loader, share in ((load_breast_cancer, 0.1), (load_digits, 0.2)):
        x, noisy, _ = flipped(loader, share, seed=3)
        probs = out_of_fold_probabilities(x, noisy)
        # cleanlab rounds its calibrated counts to integers; ours stay real: within a few items.
        expected = 1.0 - float(np.trace(estimate_joint(noisy, probs)))
        assert estimate_noise_rate(noisy, probs) == pytest.approx(expected, abs=5 / len(noisy))


@pytest.mark.parametrize("share", [0.0, 0.05, 0.1, 0.2])
def test_noise_rate_tracks_planted_flips_where_the_suspect_share_undercounts(share: float) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :8]
    estimates, suspect_shares = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        flip = rng.choice(len(y), size=int(share * len(y)), replace=False)
        noisy = y.copy()
        noisy[flip] = 1 - noisy[flip]
        probs = out_of_fold_probabilities(x, noisy, seed=seed)
        estimates.append(estimate_noise_rate(noisy, probs))
        suspect_shares.append(len(find_label_issues(noisy, probs)) / len(y))
    assert np.mean(estimates) == pytest.approx(share, abs=0.02), estimates
    assert max(abs(e - share) for e in estimates) < 0.035, estimates
    if share >= 0.1:  # the old gate: the suspects' share reads well below the planted rate
        assert np.mean(suspect_shares) < share - 0.015, suspect_shares
