"""Data-quality state that needs memory across windows: duplicate event ids.

:class:`DuplicateTracker` remembers event ids for ``ttl_s`` of event time and at most
``max_ids`` of them (the oldest are forgotten first), so memory is bounded whatever the
rate; a duplicate older than that is not detected, which the bound makes explicit.

>>> t = DuplicateTracker(ttl_s=60)
>>> t.update_many(["a", "b", "a"], [0.0, 1.0, 2.0]).tolist()
[False, False, True]
>>> t.update_many(["a"], [100.0]).tolist()  # 98 s later: forgotten
[False]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class DuplicateTracker:
    """Flags event ids seen before within a TTL (event time) and a size cap."""

    def __init__(self, ttl_s: float = 3600.0, max_ids: int = 1_000_000):
        if ttl_s <= 0 or max_ids < 1:
            raise ValueError("ttl_s > 0 and max_ids >= 1 are required")
        self.ttl_s = ttl_s
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()  # id -> event time, oldest first
        self._newest = -np.inf

    def __len__(self) -> int:
        return len(self._seen)

    def update_many(self, event_ids: Sequence[str], ts: Sequence[float]) -> npt.NDArray[np.bool_]:
        """True where the id was already seen within the TTL; then remember all of them."""
        seen = self._seen
        if len(ts):
            self._newest = max(self._newest, float(max(ts)))
        self._evict()
        dup = np.zeros(len(event_ids), dtype=bool)
        for i, (e, t) in enumerate(zip(event_ids, ts, strict=True)):
            if e in seen:
                dup[i] = True
                seen.move_to_end(e)
            seen[e] = t
        self._evict()
        return dup

    def _evict(self) -> None:
        seen, horizon = self._seen, self._newest - self.ttl_s
        while seen and (len(seen) > self.max_ids or next(iter(seen.values())) < horizon):
            seen.popitem(last=False)
