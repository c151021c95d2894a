from __future__ import annotations

from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.metrics.data_quality import DuplicateTracker
from tests.unit.test_monitor import T0, run, stream


def test_duplicates_match_pandas_within_the_ttl() -> None:
    rng = np.random.default_rng(4)
    ids = [f"e{i}" for i in rng.integers(0, 3000, 10_000)]
    ts = np.sort(rng.uniform(0, 100, 10_000))  # everything inside a 1000 s TTL
    tracker = DuplicateTracker(ttl_s=1000)
    got = np.concatenate(
        [tracker.update_many(ids[i : i + 777], ts[i : i + 777].tolist()) for i in range(0, 10_000, 777)]
    )
    assert got.tolist() == pd.Series(ids).duplicated().tolist()


def test_duplicates_across_batches_match_a_brute_force_ttl_reference() -> None:
    # ids repeat over 100 s of event time with a 10 s TTL: some repeats are remembered, some forgotten
    rng = np.random.default_rng(7)
    n, size, ttl = 20_000, 500, 10.0
    ids = [f"e{i}" for i in rng.integers(0, 4000, n)]
    ts = np.sort(rng.uniform(0, 100, n))
    tracker = DuplicateTracker(ttl_s=ttl)
    got = np.concatenate([tracker.update_many(ids[i : i + size], ts[i : i + size].tolist()) for i in range(0, n, size)])
    last: dict[str, float] = {}
    want = []
    for start in range(0, n, size):
        horizon = ts[start : start + size].max() - ttl  # the tracker forgets by the newest time of the batch
        for e, t in zip(ids[start : start + size], ts[start : start + size], strict=True):
            want.append(e in last and last[e] >= horizon)
            last[e] = t
    assert 0 < got.sum() < n and got.tolist() == want


def test_ttl_and_size_cap_bound_the_memory() -> None:
    t = DuplicateTracker(ttl_s=10, max_ids=100)
    t.update_many([f"a{i}" for i in range(500)], [float(i) / 100 for i in range(500)])
    assert len(t) == 100  # capped
    assert t.update_many(["a499"], [5.0]).tolist() == [True]
    t.update_many(["x"], [100.0])  # 95 s later: everything older than 10 s is forgotten
    assert len(t) == 1
    with pytest.raises(ValueError):
        DuplicateTracker(ttl_s=0)


def test_engine_reports_the_duplicate_rate() -> None:
    events = stream(n_windows=3, per_window=1000, shift_from=99)
    events += [e for e in events if T0 + 60 <= e.ts < T0 + 120][:50]  # 50 replays into window 1
    events.sort(key=lambda e: e.ts)
    rows = run(events)
    rate = {r.window_start: r.value for r in rows if r.metric == "duplicate_rate"}
    assert rate[T0] == 0.0 and rate[T0 + 120] == 0.0
    assert rate[T0 + 60] == pytest.approx(50 / 1050)


class _OneByOneTracker:
    """The tracker's definition, one id at a time: a repeat within the TTL is a duplicate and moves to
    the end; the oldest run past the TTL, and the oldest beyond max_ids, are forgotten."""

    def __init__(self, ttl_s: float, max_ids: int):
        self.ttl_s, self.max_ids, self.seen, self.newest = ttl_s, max_ids, {}, -np.inf

    def _evict(self) -> None:
        while len(self.seen) > self.max_ids:
            self.seen.pop(next(iter(self.seen)))
        while self.seen and next(iter(self.seen.values())) < self.newest - self.ttl_s:
            self.seen.pop(next(iter(self.seen)))

    def update_many(self, ids: list[str], ts: list[float]) -> list[bool]:
        self.newest = max(self.newest, max(ts))
        self._evict()
        out = []
        for e, t in zip(ids, ts, strict=True):
            out.append(self.seen.pop(e, None) is not None)
            self.seen[e] = t
        self._evict()
        return out


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from("abcdefghij"), st.floats(0, 50)), min_size=1, max_size=12),
        min_size=1,
        max_size=8,
    ),
    ttl=st.floats(1, 30),
    cap=st.integers(1, 12),
    small_run=st.sampled_from([1024, 1, 3]),
    checkpoint_at=st.integers(0, 8),
)
def test_the_tracker_equals_its_one_by_one_definition(
    batches: list,  # type: ignore[type-arg]
    ttl: float,
    cap: int,
    small_run: int,
    checkpoint_at: int,
) -> None:
    """Also with a run per batch (small_run 1: repeats leave stale sightings in older runs, forgotten
    across runs) and read back from the checkpoint format in the middle."""
    from driftline.metrics import data_quality
    from driftline.streams import state_codec

    with patch.object(data_quality, "_SMALL_RUN", small_run):
        fast, slow = DuplicateTracker(ttl_s=ttl, max_ids=cap), _OneByOneTracker(ttl, cap)
        for i, batch in enumerate(batches):
            if i == checkpoint_at:
                fast = state_codec.decode(state_codec.encode(fast))
            ids, ts = [e for e, _ in batch], [t for _, t in batch]
            assert fast.update_many(ids, ts).tolist() == slow.update_many(ids, ts)
            assert fast.remembered() == list(slow.seen)
            assert len(fast) == len(slow.seen)


def test_a_checkpoint_holds_each_id_once_and_one_saved_before_the_runs_is_read() -> None:
    from driftline.streams import state_codec

    t = DuplicateTracker(ttl_s=100)
    ids = [f"event-{i:06d}" for i in range(5000)]
    t.update_many(ids, [float(i) / 100 for i in range(5000)])
    blob = state_codec.encode(t)
    assert blob.count(b"event-000123") == 1  # the runs only; the set is rebuilt when read back
    back = state_codec.decode(blob)
    assert back.update_many(["event-000123", "new"], [60.0, 60.0]).tolist() == [True, False]
    # a state as checkpoints held it before the runs: a dict of id -> event time, oldest first
    old = state_codec._to_tree(t)
    old["attrs"] = {
        "ttl_s": 100.0,
        "max_ids": 1_000_000,
        "_seen": {"a": 1.0, "b": 2.0, "c": 150.0},
        "_newest": 150.0,
    }
    upgraded = state_codec.decode(state_codec.msgspec.msgpack.encode(old))
    assert upgraded.remembered() == ["a", "b", "c"]
    assert upgraded.update_many(["b", "c", "d"], [151.0, 151.0, 151.0]).tolist() == [False, True, False]
    assert upgraded.remembered() == ["b", "c", "d"]  # a and b were past the TTL (b is new again); c moved
