"""Active learning vs random sampling, and label-noise detection, on data scikit-learn ships.

    python bench/labeling.py [--seeds 5]

Active learning: pool-based replay (logistic regression, 20 random seed labels, batches
of 10, up to 100 rounds); for each strategy, the labels needed to reach 98 % of the accuracy a
model trained on every label gets, mean over seeds, and the ratio to random sampling.
Label noise: a share of labels flipped to another class at random, confident learning
on out-of-fold probabilities; precision and recall of the flagged items.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from driftline.labeling.active import Strategy, replay
from driftline.labeling.noise import find_label_issues, out_of_fold_probabilities, score_detection

DATASETS = {"digits": load_digits, "breast_cancer": load_breast_cancer, "wine": load_wine}


def active(seeds: int) -> None:
    print(f"\n### Active learning vs random sampling ({time.strftime('%Y-%m-%d')}, {seeds} seeds)\n")
    print("| data | target accuracy | strategy | labels to target (mean) | ratio to random |")
    print("|---|---:|---|---:|---:|")
    for name in ("digits", "breast_cancer"):
        x, y = DATASETS[name](return_X_y=True)
        x = StandardScaler().fit_transform(x)
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
        target = 0.98 * LogisticRegression(max_iter=2000).fit(xtr, ytr).score(xte, yte)
        means = {}
        plans: list[tuple[Strategy, int]] = [
            ("random", 0),
            ("least_confidence", 0),
            ("margin", 0),
            ("entropy", 0),
            ("margin", 3),
        ]
        for strategy, diversity in plans:
            runs = [replay(xtr, ytr, xte, yte, strategy, rounds=100, diversity=diversity, seed=s) for s in range(seeds)]
            need = [r.labels_to_reach(target) for r in runs]
            label = strategy + (" + diversity" if diversity else "")
            means[label] = float(np.mean([n if n is not None else np.nan for n in need]))
            ratio = means[label] / means["random"]
            print(f"| {name} ({len(ytr)} pool) | {target:.3f} | {label} | {means[label]:.0f} | {ratio:.2f} |")


def noise(seeds: int) -> None:
    print(f"\n### Label-noise detection (confident learning, {seeds} seeds)\n")
    print("| data | flipped | precision | recall |\n|---|---:|---:|---:|")
    for name, loader in DATASETS.items():
        x, y = loader(return_X_y=True)
        k = int(y.max()) + 1
        for share in (0.05, 0.1, 0.2):
            prec, rec = [], []
            for s in range(seeds):
                rng = np.random.default_rng(s)
                flip = rng.choice(len(y), size=int(len(y) * share), replace=False)
                noisy = y.copy()
                noisy[flip] = (y[flip] + rng.integers(1, k, flip.size)) % k
                score = score_detection(find_label_issues(noisy, out_of_fold_probabilities(x, noisy, seed=s)), flip)
                prec.append(score.precision)
                rec.append(score.recall)
            print(f"| {name} ({len(y)} rows) | {share:.0%} | {np.mean(prec):.3f} | {np.mean(rec):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    active(args.seeds)
    noise(args.seeds)


if __name__ == "__main__":
    main()
