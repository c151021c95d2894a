"""The audit's label-noise estimate against planted flips: breast-cancer data (8 features), 5 seeds per rate.

Prints, per planted rate, the share of suspects and the estimated noise rate (calibrated confident
joint) as mean [min, max] over the seeds. `python bench/label_noise_rate.py`
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_breast_cancer

from driftline.labeling.noise import estimate_noise_rate, find_label_issues, out_of_fold_probabilities


def main() -> None:
    x, y0 = load_breast_cancer(return_X_y=True)
    x = x[:, :8]
    print("planted | suspects' share       | estimated noise rate")
    for rate in (0.0, 0.05, 0.1, 0.15, 0.2):
        suspects, estimates = [], []
        for seed in range(5):
            rng = np.random.default_rng(seed)
            y = y0.copy()
            flip = rng.choice(len(y), int(rate * len(y)), replace=False)
            y[flip] = 1 - y[flip]
            probs = out_of_fold_probabilities(x, y, seed=seed)
            suspects.append(len(find_label_issues(y, probs)) / len(y))
            estimates.append(estimate_noise_rate(y, probs))

        def cell(v: list[float]) -> str:
            return f"{np.mean(v):.3f} [{min(v):.3f}, {max(v):.3f}]"

        print(f"{rate:7.2f} | {cell(suspects)} | {cell(estimates)}")


if __name__ == "__main__":
    main()
