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

from collections import deque
from collections.abc import Sequence
from itertools import islice

import numpy as np
import numpy.typing as npt

#: How many of the oldest ids one look at the front of the store inspects for expiry.
_PEEK = 4096


class DuplicateTracker:
    """Flags event ids seen before within a TTL (event time) and a size cap.

    The store is a plain dict in insertion order (id -> event time of its last sighting),
    so a batch without repeats is checked and remembered with a handful of C-level calls: one
    set intersection finds none seen before, one ``dict.update`` remembers the batch, and
    expiry pops a run of the oldest ids at once. A batch with repeats takes the per-id path.
    """

    def __init__(self, ttl_s: float = 3600.0, max_ids: int = 1_000_000):
        if ttl_s <= 0 or max_ids < 1:
            raise ValueError("ttl_s > 0 and max_ids >= 1 are required")
        self.ttl_s = ttl_s
        self.max_ids = max_ids
        self._seen: dict[str, float] = {}  # id -> event time, oldest sighting first
        self._newest = -np.inf

    def __len__(self) -> int:
        return len(self._seen)

    def update_many(self, event_ids: Sequence[str], ts: Sequence[float]) -> npt.NDArray[np.bool_]:
        """True where the id was already seen within the TTL (or earlier in the batch); then remember all."""
        n = len(event_ids)
        if len(ts) != n:
            raise ValueError(f"{n} event ids but {len(ts)} times")
        dup = np.zeros(n, dtype=bool)
        if not n:
            return dup
        seen = self._seen
        self._newest = max(self._newest, float(max(ts)))
        self._evict()
        # One pass over the store: remember the batch, and count what it added. Every id that was
        # new added one entry, so fewer than n means a repeat (of an earlier batch, or within this
        # one). Then the batch's new ids -- the last entries, in insertion order -- are taken out
        # again and the batch goes one by one. (Before: a dict of the batch, an intersection with
        # the store, then the update: three hash passes, two of them over the large store.)
        before = len(seen)
        seen.update(zip(event_ids, ts, strict=True))
        added = len(seen) - before
        if added < n:
            # Rare (replays, retries): one by one, each repeat moves to the end (its TTL counts from now).
            deque(map(seen.pop, list(islice(reversed(seen.keys()), added))), maxlen=0)
            for i, (e, t) in enumerate(zip(event_ids, ts, strict=True)):
                if seen.pop(e, None) is not None:
                    dup[i] = True
                seen[e] = t
        self._evict()
        return dup

    def _evict(self) -> None:
        seen = self._seen
        over = len(seen) - self.max_ids
        if over > 0:
            self._pop_oldest(over)
        horizon = self._newest - self.ttl_s
        while seen:
            times = np.fromiter(islice(seen.values(), _PEEK), dtype=np.float64)
            # expired = the run of oldest ids before the first one still inside the TTL
            expired = int(np.argmax(times >= horizon)) if (times >= horizon).any() else times.size
            self._pop_oldest(expired)
            if expired < _PEEK:
                return

    def _pop_oldest(self, k: int) -> None:
        if k:
            seen = self._seen
            deque(map(seen.pop, list(islice(seen, k))), maxlen=0)  # pops in C, no Python loop per id
