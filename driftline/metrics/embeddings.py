"""Drift of vector features (embeddings): reconstruction error against the reference's principal components.

An embedding drifts when its vectors leave the subspace the reference's vectors lived in,
which per-dimension tests see poorly (hundreds of correlated dimensions). As NannyML's
multivariate drift and Evidently's embedding methods do, the reference is summarised once
by PCA (centred, components for ``variance`` of the variance, at most ``max_components``);
each window's vectors are projected and reconstructed, and their squared reconstruction
errors are compared with the reference's:

* ``embedding_error_ratio``: the window's mean error over the reference's (about 1 while
  nothing changes);
* ``embedding_error_psi`` and ``embedding_chi2_pvalue``: the window's errors counted in the
  reference errors' deciles (10 % each by construction), PSI and a chi-square test against
  those shares -- the p-value joins the other features' in the drift share (BH), the PSI is
  the effect size.

Per event the cost is one (d x k) projection, vectorised per batch; the state is a sum,
a count and ten bin counts, so windows merge.

>>> rng = np.random.default_rng(0)
>>> basis = rng.normal(size=(3, 16))
>>> ref = rng.normal(size=(2000, 3)) @ basis + 0.1 * rng.normal(size=(2000, 16))
>>> profile = VectorProfile.fit(ref)
>>> stable = EmbeddingDrift(profile).update_many(rng.normal(size=(500, 3)) @ basis + 0.1 * rng.normal(size=(500, 16)))
>>> round(stable.get()["embedding_error_ratio"], 1)
1.0
>>> moved = EmbeddingDrift(profile).update_many(rng.normal(size=(500, 16)))
>>> moved.get()["embedding_error_ratio"] > 10
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

BINS = 10


@dataclass(frozen=True)
class VectorProfile:
    """A vector feature's reference: its mean, principal components and reconstruction-error deciles."""

    dim: int
    mean: list[float]
    components: list[list[float]]  # k x dim, orthonormal rows
    error_mean: float
    error_edges: list[float]  # the 9 inner deciles of the reference's errors
    count: int

    @classmethod
    def fit(cls, vectors: npt.ArrayLike, variance: float = 0.9, max_components: int = 32) -> VectorProfile:
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 50 or x.shape[1] < 2:
            raise ValueError("a vector profile needs at least 50 reference vectors of 2 or more numbers")
        mean = x.mean(axis=0)
        centred = x - mean
        _, sing, vt = np.linalg.svd(centred, full_matrices=False)
        share = np.cumsum(sing**2) / max(float(np.sum(sing**2)), 1e-300)
        k = min(int(np.searchsorted(share, variance) + 1), max_components, x.shape[1] - 1)
        comps = vt[:k]
        err = _errors(centred, comps)
        edges = np.quantile(err, np.linspace(0, 1, BINS + 1)[1:-1])
        return cls(int(x.shape[1]), mean.tolist(), comps.tolist(), float(err.mean()), edges.tolist(), int(x.shape[0]))


def _errors(centred: npt.NDArray[np.float64], components: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    back = (centred @ components.T) @ components
    out: npt.NDArray[np.float64] = np.mean((centred - back) ** 2, axis=1)
    return out


def vectors_of(values: Any, dim: int) -> tuple[npt.NDArray[np.float64], int, int]:
    """The well-formed vectors of a column as a matrix; and how many were missing, and how many malformed
    (another length, or a number that is not finite)."""
    try:  # the common case, every vector present and well formed: one conversion in C
        x = np.asarray(values, dtype=np.float64)
        if x.ndim == 2 and x.shape[1] == dim:
            finite = np.isfinite(x).all(axis=1)
            return x[finite], 0, int((~finite).sum())
    except (TypeError, ValueError):
        pass
    rows, missing, bad = [], 0, 0
    for v in values:
        if v is None:
            missing += 1
        elif isinstance(v, list | tuple) and len(v) == dim:
            rows.append(v)
        else:
            bad += 1
    if not rows:
        return np.zeros((0, dim)), missing, bad
    x = np.asarray(rows, dtype=np.float64)
    finite = np.isfinite(x).all(axis=1)
    return x[finite], missing, bad + int((~finite).sum())


class EmbeddingDrift:
    """One window's reconstruction errors of a vector feature, against its `VectorProfile`."""

    def __init__(self, reference: VectorProfile):
        if not isinstance(reference, VectorProfile):
            raise ValueError("EmbeddingDrift needs a VectorProfile")
        self.reference = reference
        self.counts = np.zeros(BINS, dtype=np.int64)
        self.error_sum = 0.0
        self.n = 0

    def update_many(self, vectors: npt.ArrayLike) -> EmbeddingDrift:
        x = np.asarray(vectors, dtype=np.float64)
        if x.size == 0:
            return self
        ref = self.reference
        err = _errors(x - np.asarray(ref.mean), np.asarray(ref.components))
        self.counts += np.bincount(np.searchsorted(ref.error_edges, err, side="right"), minlength=BINS)
        self.error_sum += float(err.sum())
        self.n += int(err.size)
        return self

    def merge(self, other: EmbeddingDrift) -> EmbeddingDrift:
        self.counts = self.counts + other.counts
        self.error_sum += other.error_sum
        self.n += other.n
        return self

    def get(self) -> dict[str, float]:
        if self.n == 0:
            return {}
        observed = self.counts.astype(np.float64)
        expected = np.full(BINS, self.n / BINS)
        share = np.maximum(observed / self.n, 1e-4)
        psi = float(np.sum((share - 0.1) * np.log(share / 0.1)))
        chi2, p = stats.chisquare(observed, expected)
        return {
            "embedding_error_ratio": self.error_sum / self.n / max(self.reference.error_mean, 1e-300),
            "embedding_error_psi": psi,
            "embedding_chi2": float(chi2),
            "embedding_chi2_pvalue": float(p),
        }

    def __repr__(self) -> str:
        return f"EmbeddingDrift(dim={self.reference.dim}, n={self.n})"
