"""Streaming label-noise signal: confident predictions whose arriving labels disagree, per segment.

Counts, per segment, labelled predictions the model was confident about (score >=
``confidence`` or <= 1 - ``confidence``) whose label says otherwise. A rise in one segment
points at a labeling problem there (or at a model confidently wrong there: either way,
someone should look). State: two counts per segment; merges by addition.

>>> import numpy as np
>>> d = ConfidentDisagreement(0.9).update_many(np.array([1, 0, 1, 1]), np.array([0.95, 0.97, 0.5, 0.02]))
>>> d.get()[""]
(0.6666666666666666, 3)
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class ConfidentDisagreement:
    """Per segment: labelled predictions the model was confident about, and how many labels disagree.

    Binary scores (the positive class's probability). State: two counts per segment.
    """

    def __init__(self, confidence: float = 0.9):
        if not 0.5 < confidence < 1.0:
            raise ValueError("confidence must be in (0.5, 1)")
        self.confidence = confidence
        self._counts: dict[str, npt.NDArray[np.int64]] = {}  # segment -> [confident, disagreeing]

    def update_many(
        self, y: npt.ArrayLike, scores: npt.ArrayLike, segments: npt.ArrayLike | None = None
    ) -> ConfidentDisagreement:
        yv = np.asarray(y, dtype=np.int64)
        s = np.asarray(scores, dtype=np.float64)
        confident = (s >= self.confidence) | (s <= 1.0 - self.confidence)
        disagree = confident & ((s >= 0.5).astype(np.int64) != yv)
        seg = np.full(yv.size, "", dtype=object) if segments is None else np.asarray(segments).astype(str)
        names, inverse = np.unique(seg, return_inverse=True)
        c = np.bincount(inverse, weights=confident, minlength=names.size).astype(np.int64)
        d = np.bincount(inverse, weights=disagree, minlength=names.size).astype(np.int64)
        for name, ci, di in zip(names.tolist(), c.tolist(), d.tolist(), strict=True):
            self._counts.setdefault(str(name), np.zeros(2, dtype=np.int64))
            self._counts[str(name)] += (ci, di)
        return self

    def get(self) -> dict[str, tuple[float, int]]:
        """segment -> (disagreement rate among confident predictions, confident predictions)."""
        return {k: (float(v[1] / v[0]) if v[0] else float("nan"), int(v[0])) for k, v in self._counts.items()}
