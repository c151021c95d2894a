"""Crash-safe engine state: the whole monitoring engine saved with the Kafka offsets it covers.

The engine runs on a batch after the batch is stored, so a ``kill -9`` used to lose the events of
the open windows that the engine had seen but never checkpointed (a clean stop saves them; a crash
saved nothing). Now the ingest loop commits Kafka offsets only up to what a saved engine snapshot
covers, at most every ``interval_s`` seconds: the snapshot (every version's open windows,
reference, detectors, duplicate ids) and the next offset of each prediction partition it
includes are one signed row of ``engine_checkpoints``. After a crash, the worker that gets the
same partitions loads the snapshot at its first assignment and starts reading at those offsets:
the events after them are replayed through the whole loop (ClickHouse keeps each event once) and
the engine sees each of them exactly once, so the metric rows equal those of a run without the
crash (tested with three ``kill -9``).

A snapshot is keyed by the set of prediction partitions it covers: a worker whose assignment
differs (more workers, a rebalance) does not load it and falls back to the per-version
checkpoints of a clean stop (checkpoints.py). A snapshot older than the group's committed
offsets (another worker went further meanwhile) is not loaded either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

from driftline.streams import state_codec
from driftline.streams.checkpoints import CheckpointStore
from driftline.streams.monitor import MonitoringEngine

log = logging.getLogger(__name__)

Partition = tuple[str, int]


class EngineCheckpointer:
    def __init__(self, engine: MonitoringEngine, store: CheckpointStore, prediction_topic: str, interval_s: float):
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.engine = engine
        self.store = store
        self.topic = prediction_topic
        self.interval_s = interval_s
        self.saved = 0
        self.loaded_versions = 0
        self._last_save = time.monotonic()

    def _key(self, partitions: Sequence[Partition]) -> str:
        return "partitions:" + ",".join(str(p) for p in sorted(p for t, p in partitions if t == self.topic))

    def due(self) -> bool:
        return time.monotonic() - self._last_save >= self.interval_s

    def resume(self, partitions: Sequence[Partition], committed: Mapping[Partition, int]) -> dict[Partition, int]:
        """At the first assignment (in the consumer's thread, before any event): load the snapshot saved
        for exactly these partitions into the engine; returns where to start reading each of them."""
        if not any(t == self.topic for t, _ in partitions):
            return {}
        key = self._key(partitions)
        try:
            blob = self.store.load_engine(key)
            if blob is None:
                return {}
            data = state_codec.decode(blob)
            offsets = {(self.topic, int(p)): int(o) for p, o in data["offsets"]}
            stale = [k for k, o in offsets.items() if o < committed.get(k, -1)]
            if stale:
                log.warning("engine checkpoint %s is behind the group's offsets on %s; not loaded", key, stale)
                return {}
            self.loaded_versions = self.engine.load(data["engine"])
        except Exception:  # a checkpoint that cannot be used: the engine starts afresh, as before
            log.exception("engine checkpoint %s not loaded", key)
            return {}
        log.warning("engine checkpoint %s loaded (%d versions); reading from %s", key, self.loaded_versions, offsets)
        return offsets

    async def save(self, covered: Mapping[Partition, int], partitions: Sequence[Partition]) -> None:
        """Save the engine as it is now, with the next offset of each assigned prediction partition it covers."""
        offsets = [[p, covered[(t, p)]] for t, p in sorted(partitions) if t == self.topic and (t, p) in covered]
        blob = state_codec.encode({"offsets": offsets, "engine": self.engine.snapshot()})
        await asyncio.to_thread(self.store.save_engine, self._key(partitions), blob)
        self._last_save = time.monotonic()
        self.saved += 1
