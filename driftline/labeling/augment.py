"""Controlled synthetic augmentation for scarce classes, every synthetic row flagged.

``smote`` adds rows of a scarce class by SMOTE interpolation (Chawla et al. 2002): a new
row lies on the segment between a real row of the class and one of its k nearest
neighbours of the same class (numeric columns; other columns are copied from the real
row). ``jitter`` adds Gaussian noise of ``scale`` x each column's standard deviation to
copies of real rows instead. Both stop at the target share of the class and never let
synthetic rows exceed ``max_synthetic_share`` of the result, and both return a
``synthetic`` flag per row so a synthetic row is never mistaken for a real one (write it
out with the data; the audit reports the balance before and after).

>>> import numpy as np
>>> x = np.arange(20, dtype=float).reshape(10, 2); y = np.array([0] * 8 + [1] * 2)
>>> out = smote(x, y, target_share=0.3, k=1, seed=0)
>>> int(out.y.sum()), int(out.synthetic.sum())
(4, 2)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from driftline.exceptions import ConfigError


@dataclass(frozen=True)
class Augmented:
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    synthetic: npt.NDArray[np.bool_]  # True for every row the augmentation made
    parents: npt.NDArray[np.int64]  # per synthetic row: the real row it was made from (-1 for real rows)


def _plan(y: npt.NDArray[np.int64], target_share: float, max_synthetic_share: float) -> dict[int, int]:
    """Synthetic rows to add per scarce class, scaled down so the synthetic share stays within the cap."""
    if not 0 < target_share < 1 or not 0 <= max_synthetic_share < 1:
        raise ConfigError("need 0 < target_share < 1 and 0 <= max_synthetic_share < 1")
    classes, counts = np.unique(y, return_counts=True)
    n = int(counts.sum())
    want: dict[int, int] = {}
    for c, m in zip(classes.tolist(), counts.tolist(), strict=True):
        # (m + a) / (n + a) >= target  <=>  a >= (target * n - m) / (1 - target), ignoring other classes' additions
        add = int(np.ceil((target_share * n - m) / (1 - target_share)))
        if add > 0:
            want[int(c)] = add
    total = sum(want.values())
    cap = int(np.floor(max_synthetic_share * n / (1 - max_synthetic_share)))  # synthetic / (n + synthetic) <= cap
    if total > cap:
        want = {c: int(a * cap / total) for c, a in want.items()}
    return {c: a for c, a in want.items() if a > 0}


def _neighbours(x: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.int64]:
    """Indices of each row's k nearest other rows (Euclidean; the rows of one class, so small)."""
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    return np.asarray(np.argsort(d, axis=1)[:, :k], dtype=np.int64)


def smote(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    target_share: float = 0.2,
    max_synthetic_share: float = 0.3,
    k: int = 5,
    numeric: npt.ArrayLike | None = None,
    seed: int = 0,
) -> Augmented:
    """SMOTE rows for every class below `target_share` (numeric columns interpolated, others copied)."""
    xv = np.asarray(x, dtype=np.float64)
    yv = np.asarray(y, dtype=np.int64)
    is_num = np.ones(xv.shape[1], dtype=bool) if numeric is None else np.asarray(numeric, dtype=bool)
    rng = np.random.default_rng(seed)
    new_x, new_y, parents = [], [], []
    for c, add in _plan(yv, target_share, max_synthetic_share).items():
        rows = np.nonzero(yv == c)[0]
        if rows.size < 2:
            raise ConfigError(f"class {c} has {rows.size} row(s): SMOTE needs at least two to interpolate")
        nn = _neighbours(xv[rows][:, is_num], min(k, rows.size - 1))
        base = rng.integers(0, rows.size, add)
        mate = nn[base, rng.integers(0, nn.shape[1], add)]
        gap = rng.uniform(size=(add, 1))
        made = xv[rows[base]].copy()
        made[:, is_num] += gap * (xv[rows[mate]][:, is_num] - xv[rows[base]][:, is_num])
        new_x.append(made)
        new_y.append(np.full(add, c))
        parents.append(rows[base])
    return _combine(xv, yv, new_x, new_y, parents)


def jitter(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    target_share: float = 0.2,
    max_synthetic_share: float = 0.3,
    scale: float = 0.05,
    seed: int = 0,
) -> Augmented:
    """Noisy copies of real rows of every class below `target_share`: N(0, (scale * column std)^2) added."""
    xv = np.asarray(x, dtype=np.float64)
    yv = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    std = xv.std(axis=0)
    new_x, new_y, parents = [], [], []
    for c, add in _plan(yv, target_share, max_synthetic_share).items():
        rows = np.nonzero(yv == c)[0]
        base = rows[rng.integers(0, rows.size, add)]
        new_x.append(xv[base] + rng.normal(0.0, 1.0, (add, xv.shape[1])) * scale * std)
        new_y.append(np.full(add, c))
        parents.append(base)
    return _combine(xv, yv, new_x, new_y, parents)


def _combine(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    new_x: list[npt.NDArray[np.float64]],
    new_y: list[npt.NDArray[np.int64]],
    parents: list[npt.NDArray[np.int64]],
) -> Augmented:
    if not new_x:
        return Augmented(x, y, np.zeros(len(y), dtype=bool), np.full(len(y), -1, dtype=np.int64))
    made = int(sum(len(a) for a in new_y))
    return Augmented(
        np.vstack([x, *new_x]),
        np.concatenate([y, *new_y]).astype(np.int64),
        np.concatenate([np.zeros(len(y), dtype=bool), np.ones(made, dtype=bool)]),
        np.concatenate([np.full(len(y), -1, dtype=np.int64), *parents]).astype(np.int64),
    )
