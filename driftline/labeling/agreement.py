"""Inter-annotator agreement on nominal labels: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha,
and each annotator's agreement with the consensus of the others.

Everything starts from a *ratings table*: one row per item, one column per annotator, the
label as a small integer code and -1 where that annotator did not label the item (codes
come from ``encode``). All functions are vectorised over items (numpy bincount / matrix
products), so a window of 100k labels costs milliseconds.

* Cohen's kappa for one pair over the items both labelled (sklearn's ``cohen_kappa_score``).
* Fleiss' kappa over items with the same number of ratings each (Fleiss 1971); items
  with another count are left out, as the statistic requires.
* Krippendorff's alpha, nominal, with missing ratings: from the coincidence matrix, items
  with fewer than two ratings pair with nothing and drop out (Krippendorff 2011).
* Agreement with consensus: per annotator, the share of their labels that equal the
  majority label of the *other* annotators on that item (ties and lone ratings skipped), so
  a poor annotator cannot pull the consensus towards themself.

>>> table = np.array([[0, 0, -1], [1, 1, 1], [0, 1, 0], [1, 1, -1]])
>>> round(krippendorff_alpha(table), 3)
0.625
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt

MISSING = -1

Ratings = npt.NDArray[np.int64]


def encode(
    items: Sequence[str], annotators: Sequence[str], labels: Sequence[str]
) -> tuple[Ratings, list[str], list[str], list[str]]:
    """Long rows (item, annotator, label) -> (ratings table, item ids, annotator ids, label set).

    A second label by the same annotator for the same item replaces the first (the newest wins,
    as in the labels table).
    """
    item_ids, item_idx = np.unique(np.asarray(items, dtype=object).astype(str), return_inverse=True)
    ann_ids, ann_idx = np.unique(np.asarray(annotators, dtype=object).astype(str), return_inverse=True)
    label_ids, label_idx = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    table = np.full((item_ids.size, ann_ids.size), MISSING, dtype=np.int64)
    table[item_idx, ann_idx] = label_idx
    return table, item_ids.tolist(), ann_ids.tolist(), label_ids.tolist()


def _counts(table: Ratings, categories: int) -> npt.NDArray[np.int64]:
    """Items x categories: how many annotators gave each label to each item."""
    rows, cols = np.nonzero(table != MISSING)
    out = np.zeros((table.shape[0], categories), dtype=np.int64)
    np.add.at(out, (rows, table[rows, cols]), 1)
    return out


def _categories(table: Ratings) -> int:
    return int(table.max()) + 1 if table.size and table.max() >= 0 else 0


def cohen_kappa(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Cohen's kappa of two annotators over the items both labelled (NaN when undefined)."""
    x, y = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    both = (x != MISSING) & (y != MISSING)
    x, y = x[both], y[both]
    if x.size == 0:
        return float("nan")
    k = int(max(x.max(), y.max())) + 1
    confusion = np.bincount(x * k + y, minlength=k * k).reshape(k, k).astype(np.float64)
    n = confusion.sum()
    observed = np.trace(confusion) / n
    expected = float(confusion.sum(axis=1) @ confusion.sum(axis=0)) / n**2
    if expected == 1.0:
        return float("nan")  # both gave one and the same label throughout: kappa is undefined
    return float((observed - expected) / (1.0 - expected))


def fleiss_kappa(table: Ratings) -> float:
    """Fleiss' kappa over the items rated by the most common number (>= 2) of annotators."""
    counts = _counts(table, _categories(table))
    per_item = counts.sum(axis=1)
    usable = per_item[per_item >= 2]
    if usable.size == 0:
        return float("nan")
    m = int(np.bincount(usable).argmax())
    c = counts[per_item == m].astype(np.float64)
    n_items = c.shape[0]
    p_j = c.sum(axis=0) / (n_items * m)
    p_i = (np.sum(c * c, axis=1) - m) / (m * (m - 1))
    p_bar, p_e = float(p_i.mean()), float(np.sum(p_j**2))
    return float("nan") if p_e == 1.0 else (p_bar - p_e) / (1.0 - p_e)


def krippendorff_alpha(table: Ratings) -> float:
    """Krippendorff's alpha for nominal data; missing ratings allowed."""
    counts = _counts(table, _categories(table)).astype(np.float64)
    m_u = counts.sum(axis=1)
    pairable = m_u >= 2
    counts, m_u = counts[pairable], m_u[pairable]
    if counts.size == 0:
        return float("nan")
    # coincidence matrix o_ck = sum_u (n_uc * n_uk - [c == k] n_uc) / (m_u - 1)
    weighted = counts / (m_u - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return float("nan")
    disagree_observed = n - np.trace(coincidence)
    disagree_expected = (n * n - float(np.sum(n_c * n_c))) / (n - 1)
    if disagree_expected == 0:
        return float("nan")  # one label throughout: nothing to agree or disagree on
    return float(1.0 - disagree_observed / disagree_expected)


@dataclass(frozen=True)
class AnnotatorAgreement:
    annotator: str
    labels: int  # items the annotator labelled
    compared: int  # of those, items where the others had a clear majority
    agreement: float  # share of compared items where the annotator gave the majority label


def agreement_with_consensus(table: Ratings, annotators: Sequence[str]) -> list[AnnotatorAgreement]:
    """Per annotator: how often they give the majority label of the other annotators (leave-one-out)."""
    counts = _counts(table, _categories(table))
    out = []
    for j, name in enumerate(annotators):
        mine = table[:, j]
        rated = mine != MISSING
        others = counts[rated].copy()
        others[np.arange(others.shape[0]), mine[rated]] -= 1  # leave my own rating out
        top = others.max(axis=1) if others.size else np.zeros(0, dtype=np.int64)
        clear = (top > 0) & ((others == top[:, None]).sum(axis=1) == 1)  # a unique majority exists
        majority = others.argmax(axis=1) if others.size else np.zeros(0, dtype=np.int64)
        compared = int(clear.sum())
        agree = float(np.mean(majority[clear] == mine[rated][clear])) if compared else float("nan")
        out.append(AnnotatorAgreement(str(name), int(rated.sum()), compared, agree))
    return out


def pairwise_cohen(table: Ratings, annotators: Sequence[str], min_overlap: int = 1) -> dict[tuple[str, str], float]:
    """Cohen's kappa for every pair of annotators who labelled at least `min_overlap` items in common."""
    out = {}
    for i, j in combinations(range(table.shape[1]), 2):
        overlap = int(np.sum((table[:, i] != MISSING) & (table[:, j] != MISSING)))
        if overlap >= min_overlap:
            out[(str(annotators[i]), str(annotators[j]))] = cohen_kappa(table[:, i], table[:, j])
    return out


def consensus(table: Ratings) -> npt.NDArray[np.int64]:
    """The majority label per item (the lowest code on a tie; MISSING for unlabelled items)."""
    counts = _counts(table, _categories(table))
    out = counts.argmax(axis=1) if counts.size else np.full(table.shape[0], MISSING, dtype=np.int64)
    out[counts.sum(axis=1) == 0] = MISSING
    return np.asarray(out, dtype=np.int64)


def summary(items: Sequence[str], annotators: Sequence[str], labels: Sequence[str]) -> dict[str, object]:
    """Every agreement statistic of long rows (item, annotator, label), as plain data (`labels agreement`)."""
    table, item_ids, names, label_set = encode(items, annotators, labels)
    per_item = (table != MISSING).sum(axis=1)
    usable = per_item[per_item >= 2]
    fleiss_m = int(np.bincount(usable).argmax()) if usable.size else 0
    pairs = []
    for (a, b), kappa in pairwise_cohen(table, names, min_overlap=2).items():
        i, j = names.index(a), names.index(b)
        overlap = int(np.sum((table[:, i] != MISSING) & (table[:, j] != MISSING)))
        pairs.append({"pair": f"{a}|{b}", "cohen_kappa": kappa, "items": overlap})
    return {
        "items": len(item_ids),
        "multi_labelled_items": int(usable.size),
        "annotators": names,
        "labels": label_set,
        "krippendorff_alpha": krippendorff_alpha(table),
        "fleiss_kappa": fleiss_kappa(table),
        "fleiss_ratings_per_item": fleiss_m,
        "fleiss_items": int(np.sum(per_item == fleiss_m)) if fleiss_m else 0,
        "cohen_kappa": pairs,
        "annotator_agreement": [asdict(a) for a in agreement_with_consensus(table, names)],
    }
