"""The audit's label-noise gate: it gates on the estimated noise rate, at several planted rates, and
rare classes (a few mistyped labels) are reported and left out of the model instead of skipping the
check or flooding it with suspects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from driftline.labeling.audit import AuditConfig, audit


def table(flip_share: float, seed: int = 0) -> tuple[pd.DataFrame, set[int]]:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    df = x.iloc[:, :8].copy()
    df["label"] = np.where(y == 1, "benign", "malignant")
    rng = np.random.default_rng(seed)
    flips = rng.choice(len(df), size=round(flip_share * len(df)), replace=False)
    df.loc[flips, "label"] = np.where(df.loc[flips, "label"] == "benign", "malignant", "benign")
    return df, set(flips.tolist())


def noise_check(df: pd.DataFrame, **limits: float) -> tuple[dict[str, object], dict[str, object]]:
    result = audit(df, None, AuditConfig(label="label", **limits))  # type: ignore[arg-type]
    check = next(c for c in result.checks if c.name == "label_noise")
    return vars(check), result.noise


@pytest.mark.parametrize(("share", "passes"), [(0.0, True), (0.097, False), (0.2, False)])
def test_default_gate_on_the_estimated_rate(share: float, passes: bool) -> None:
    check, noise = noise_check(table(share)[0])
    assert check["passed"] is passes, check
    assert noise["rate"] == pytest.approx(share, abs=0.03)
    # The case: 9.7 % flipped gave 7.1 % suspects and passed a 0.1 gate on the suspects.
    assert "estimated" in str(check["detail"]) and check["limit"] == "estimated noise <= 0.05"


@pytest.mark.parametrize("mistyped", [3, 6])
def test_rare_classes_are_reported_not_skipped_nor_flooding(mistyped: int) -> None:
    df, _ = table(0.097)
    _, clean_noise = noise_check(df)
    typo = df.copy()
    typo.loc[np.arange(mistyped) * 50, "label"] = "benjgn"
    check, noise = noise_check(typo)
    assert check["passed"] is False, check  # not skipped: still gated
    assert noise["rare_classes"] == {"benjgn": mistyped}
    assert [r["row"] for r in noise["rare_rows"]] == (np.arange(mistyped) * 50).tolist()
    assert "'benjgn' 6 rows" in str(check["detail"]) or "'benjgn' 3 rows" in str(check["detail"])
    # The rest is modelled as before: the mistyped rows no longer multiply the suspects.
    assert abs(noise["suspects"] - clean_noise["suspects"]) <= mistyped + 3
    assert noise["rate"] == pytest.approx(clean_noise["rate"], abs=0.02)
