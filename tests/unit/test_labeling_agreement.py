"""Agreement statistics against reference implementations and published worked examples."""

from __future__ import annotations

import json
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from driftline.labeling.agreement import (
    MISSING,
    agreement_with_consensus,
    cohen_kappa,
    consensus,
    encode,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen,
)

#: Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units, nominal, missing values.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, np.nan, np.nan, np.nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, np.nan, 3],
        [np.nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, np.nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, np.nan],
    ]
)


def noisy_raters(items: int, raters: int, categories: int, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, categories, items)
    table = np.where(
        rng.uniform(size=(items, raters)) < accuracy, truth[:, None], rng.integers(0, categories, (items, raters))
    )
    return np.asarray(table, dtype=np.int64)


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_equals_sklearn(seed: int) -> None:
    t = noisy_raters(500, 2, 4, 0.6, seed)
    assert cohen_kappa(t[:, 0], t[:, 1]) == pytest.approx(cohen_kappa_score(t[:, 0], t[:, 1]), abs=1e-12)
    t[::7, 1] = MISSING  # items only one annotator labelled are left out, as sklearn would need them dropped
    both = t[:, 1] != MISSING
    assert cohen_kappa(t[:, 0], t[:, 1]) == pytest.approx(cohen_kappa_score(t[both, 0], t[both, 1]), abs=1e-12)


def test_fleiss_kappa_worked_example() -> None:
    """Fleiss (1971) as reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa = 0.210."""
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    table = np.array([np.repeat(np.arange(5), row) for row in counts], dtype=np.int64)
    assert round(fleiss_kappa(table), 3) == 0.210
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss(np.array(counts)), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_kappa_equals_statsmodels(seed: int) -> None:
    t = noisy_raters(300, 5, 3, 0.5, seed)
    assert fleiss_kappa(t) == pytest.approx(sm_fleiss(aggregate_raters(t)[0]), abs=1e-12)


def test_krippendorff_alpha_worked_example() -> None:
    """Krippendorff (2011), 'Computing Krippendorff's alpha-reliability', nominal data with missing values."""
    data = KRIPPENDORFF_2011
    table = np.where(np.isnan(data), MISSING, data).T.astype(np.int64)
    assert round(krippendorff_alpha(table), 3) == 0.743


@pytest.mark.parametrize("seed", range(5))
def test_krippendorff_alpha_equals_the_krippendorff_package_with_missing_ratings(seed: int) -> None:
    t = noisy_raters(400, 6, 4, 0.55, seed)
    t[np.random.default_rng(seed + 100).uniform(size=t.shape) < 0.5] = MISSING
    reference = krippendorff.alpha(
        reliability_data=np.where(t == MISSING, np.nan, t).T.astype(float), level_of_measurement="nominal"
    )
    assert krippendorff_alpha(t) == pytest.approx(reference, abs=1e-10)


def test_agreement_with_consensus_finds_the_careless_annotator() -> None:
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, 600)
    good = [np.where(rng.uniform(size=600) < 0.9, truth, rng.integers(0, 3, 600)) for _ in range(3)]
    careless = rng.integers(0, 3, 600)  # labels at random
    t = np.column_stack([*good, careless]).astype(np.int64)
    by = {a.annotator: a for a in agreement_with_consensus(t, ["ann", "bob", "cyd", "dan"])}
    assert by["dan"].agreement < 0.45 < 0.85 < min(by[n].agreement for n in ("ann", "bob", "cyd"))
    # by hand on a small table: bob's labels vs the others' unique majority
    small = np.array([[0, 0, 0], [0, 1, 1], [1, 1, 0], [2, -1, 2]], dtype=np.int64)
    bob = agreement_with_consensus(small, ["a", "bob", "c"])[1]
    assert (bob.labels, bob.compared, bob.agreement) == (3, 1, 1.0)  # only item 0 has a clear other-majority
    assert consensus(small).tolist() == [0, 1, 1, 2]


def test_encode_and_pairs() -> None:
    table, items, annotators, labels = encode(
        ["i1", "i1", "i2", "i2", "i1"], ["a", "b", "a", "b", "a"], ["yes", "no", "no", "no", "no"]
    )
    assert items == ["i1", "i2"] and annotators == ["a", "b"] and labels == ["no", "yes"]
    assert table.tolist() == [[0, 0], [0, 0]]  # a's second label for i1 replaced the first
    assert set(pairwise_cohen(table, annotators)) == {("a", "b")}


def test_labels_agreement_command_on_a_file(tmp_path: Path) -> None:
    """Issue 22.7: agreement was reachable from Python only. The CLI on Krippendorff's worked example."""
    from click.testing import CliRunner

    from driftline.cli import main

    data = KRIPPENDORFF_2011
    rows = [f"u{u},{'ABCD'[c]},{int(data[c, u])}" for c in range(4) for u in range(12) if not np.isnan(data[c, u])]
    path = tmp_path / "labels.csv"
    path.write_text("unit,coder,value\n" + "\n".join(rows) + "\n")
    names = ["--item", "unit", "--annotator", "coder", "--label", "value"]
    text = CliRunner().invoke(main, ["labels", "agreement", str(path), *names], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    assert "4 annotators, 12 items (11 with two or more labels)" in text.output
    assert "Krippendorff's alpha (nominal): 0.743" in text.output
    raw = CliRunner().invoke(main, ["labels", "agreement", str(path), *names, "--json"], catch_exceptions=False)

    def refuse(token: str) -> None:
        raise ValueError(token)

    report = json.loads(raw.output, parse_constant=refuse)  # strict: no NaN anywhere
    assert round(report["krippendorff_alpha"], 3) == 0.743
    table = np.where(np.isnan(data), MISSING, data).T.astype(np.int64)
    assert report["fleiss_kappa"] == pytest.approx(fleiss_kappa(table), abs=1e-12)
    pair = next(p for p in report["cohen_kappa"] if p["pair"] == "A|B")
    both = (table[:, 0] != MISSING) & (table[:, 1] != MISSING)
    assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score(table[both, 0], table[both, 1]), abs=1e-12)
    assert pair["items"] == int(both.sum())
    wrong = CliRunner().invoke(main, ["labels", "agreement", str(path)])
    assert wrong.exit_code == 2 and "no column item, annotator, label (columns: unit, coder, value)" in wrong.output
    assert CliRunner().invoke(main, ["labels", "agreement"]).exit_code == 2
