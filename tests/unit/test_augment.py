"""Synthetic augmentation: SMOTE rows lie where SMOTE puts them, caps hold, flags are set; compared with
imbalanced-learn's SMOTE on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from driftline.exceptions import ConfigError
from driftline.labeling.augment import jitter, smote


def scarce(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Breast cancer (shipped with scikit-learn) with the malignant class cut to 6 % of the training rows."""
    x, y = load_breast_cancer(return_X_y=True)
    y = 1 - y  # 1 = malignant
    x = StandardScaler().fit_transform(x)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.4, random_state=seed, stratify=y)
    rng = np.random.default_rng(seed)
    keep = (ytr == 0) | (rng.uniform(size=ytr.size) < 0.1)
    return xtr[keep], ytr[keep], xte, yte


def on_a_neighbour_segment(x: np.ndarray, y: np.ndarray, new: np.ndarray, cls: int, k: int) -> bool:
    """Is `new` on the segment from some real row of `cls` to one of its k nearest same-class rows?"""
    rows = x[y == cls]
    for i in range(len(rows)):
        d = np.linalg.norm(rows - rows[i], axis=1)
        d[i] = np.inf
        for j in np.argsort(d)[:k]:
            step = rows[j] - rows[i]
            t = float(np.dot(new - rows[i], step) / np.dot(step, step))
            if -1e-9 <= t <= 1 + 1e-9 and np.allclose(rows[i] + t * step, new, atol=1e-9):
                return True
    return False


def test_smote_rows_interpolate_neighbours_like_imbalanced_learn() -> None:
    x, y, xte, yte = scarce()
    out = smote(x, y, target_share=0.3, max_synthetic_share=0.5, k=5, seed=1)
    made = out.x[out.synthetic]
    assert out.synthetic.sum() == len(out.y) - len(y) and (out.y[out.synthetic] == 1).all()
    assert all(on_a_neighbour_segment(x, y, row, 1, 5) for row in made)
    assert (out.parents[~out.synthetic] == -1).all() and (y[out.parents[out.synthetic]] == 1).all()
    assert np.mean(out.y == 1) >= 0.3
    # imbalanced-learn asked for the same class counts: same kind of rows, same downstream effect
    target = {0: int((out.y == 0).sum()), 1: int((out.y == 1).sum())}
    ref_x, ref_y = SMOTE(sampling_strategy=target, k_neighbors=5, random_state=1).fit_resample(x, y)
    ref_made = ref_x[len(y) :]
    assert len(ref_made) == len(made)
    assert all(on_a_neighbour_segment(x, y, row, 1, 5) for row in ref_made[:20])  # the checker accepts theirs too

    def minority_recall(xa: np.ndarray, ya: np.ndarray) -> float:
        return float(recall_score(yte, LogisticRegression(max_iter=3000).fit(xa, ya).predict(xte)))

    before, ours, theirs = minority_recall(x, y), minority_recall(out.x, out.y), minority_recall(ref_x, ref_y)
    assert ours > before and abs(ours - theirs) <= 0.05, (before, ours, theirs)


def test_the_synthetic_share_never_exceeds_its_cap() -> None:
    x, y, _, _ = scarce()
    for cap in (0.0, 0.05, 0.2):
        out = smote(x, y, target_share=0.5, max_synthetic_share=cap, seed=0)
        assert out.synthetic.mean() <= cap + 1e-12
    out = jitter(x, y, target_share=0.25, max_synthetic_share=0.4, scale=0.05, seed=0)
    assert out.synthetic.mean() <= 0.4 and np.mean(out.y == 1) >= 0.25
    noise = out.x[out.synthetic] - x[out.parents[out.synthetic]]
    assert np.allclose(noise.std(axis=0) / (0.05 * x.std(axis=0)), 1.0, atol=0.35)  # the stated noise scale


def test_nothing_to_do_and_bad_settings() -> None:
    x, y, _, _ = scarce()
    balanced = smote(x, y, target_share=0.01)
    assert not balanced.synthetic.any() and len(balanced.y) == len(y)
    with pytest.raises(ConfigError):
        smote(x, y, target_share=1.5)
    with pytest.raises(ConfigError, match="at least two"):
        smote(np.zeros((5, 2)), np.array([0, 0, 0, 0, 1]), target_share=0.4, max_synthetic_share=0.5)
