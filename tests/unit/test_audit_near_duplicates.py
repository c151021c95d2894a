"""Near-duplicates by a tolerance, not a rounding grid (issue 22.5): checked against the definition pair by pair."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from driftline.labeling.audit import near_duplicate_rows


def brute_force(df: pd.DataFrame, numeric: list[str], text: list[str], tol: float) -> list[int]:
    """The definition, O(n^2): every text key equal (normalised), every number within tol of the larger."""
    flagged = set()
    rows = df.to_dict("records")
    for i, j in combinations(range(len(rows)), 2):
        a, b = rows[i], rows[j]
        if any(pd.isna(a[k]) or pd.isna(b[k]) for k in numeric + text):
            continue
        if any(" ".join(str(a[k]).lower().split()) != " ".join(str(b[k]).lower().split()) for k in text):
            continue
        if all(abs(a[k] - b[k]) <= tol * max(abs(a[k]), abs(b[k])) + 1e-12 for k in numeric):
            flagged.add(j)
    return sorted(flagged)


def test_pairs_straddling_a_rounding_boundary_are_found_and_far_pairs_are_not() -> None:
    # 14.249 and 14.251 are 0.014 % apart but rounded to 14.2 and 14.3 on the old 1 % grid;
    # 10.0 and 10.0999 (1.0 % apart) and 10.25 (1.5 % from 10.0999) test both sides of the tolerance.
    df = pd.DataFrame({"x": [14.249, 14.251, 10.0, 10.0999, 10.25, 0.0, 0.0, 1.0, -14.25]})
    assert near_duplicate_rows(df, ["x"], 0.01).tolist() == [1, 3, 6]
    assert brute_force(df, ["x"], [], 0.01) == [1, 3, 6]


def test_equals_the_definition_on_random_data_with_planted_near_pairs() -> None:
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame(
        {
            "amount": np.round(rng.lognormal(3, 1, n), 3),
            "qty": rng.integers(-3, 20, n).astype(float),
            "name": rng.choice(["Ann  Lee", "ann lee", "Bob", "Cy"], n),
        }
    )
    near = df.sample(60, random_state=1).copy()
    near["amount"] *= 1 + rng.uniform(-0.012, 0.012, 60)  # about half within 1 %, half beyond
    near.loc[near.index[:5], "qty"] = np.nan  # a missing key matches nothing
    df = pd.concat([df, near], ignore_index=True)
    for tol in (0.001, 0.01, 0.05):
        got = near_duplicate_rows(df, ["amount", "qty", "name"], tol).tolist()
        assert got == brute_force(df, ["amount", "qty"], ["name"], tol), tol
    assert 10 < len(near_duplicate_rows(df, ["amount", "qty", "name"], 0.01)) < 60
