"""One model across many workers: each worker's share of a window goes to the window's owner, which merges.

Predictions keyed by model put one model's events on one partition, so one worker sees them all
and one model cannot go faster than one worker. A model whose spec says ``partition_key:
event_id`` (or ``request_id``) is spread by its producers over every partition, so each worker
sees a share of each window. When a worker's watermark passes a window, its engine makes a
:class:`~driftline.streams.monitor.WindowPart` (the window's state: drift sketches, counts,
sums -- every one mergeable) and the worker sends it to the ``window-parts`` topic keyed by
(model, version, window): all shares of a window land on one partition of that topic, and the
worker that holds it in the ``<group>.window-parts`` consumer group owns the window. A worker
sends a share for every window its watermark passed, an empty one where its partitions had no
event, so the owner knows when it has them all: the shares' prediction partitions cover the
topic. It then merges them and writes the rows one worker would have written.

Delivery: shares are sent and acknowledged before the engine snapshot that closes their windows
is saved, and the owner commits the ``window-parts`` offsets only below its oldest unmerged
share, so a crash of either side replays shares instead of losing them. A share is kept per
sender (its set of partitions), so a replayed share replaces the one before it; a share that
comes after its window was merged (a sender replaying) merges the window again and the newer
rows replace the older ones (ReplacingMergeTree). A window whose shares are not all there after
``timeout_s`` (a worker stopped for good) is merged from what came, marked incomplete -- unless
complete rows of it are stored already (`written`): then the shares are a sender's replay that
reached an owner which restarted since the merge, and merging them would replace good rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import msgspec

from driftline.metrics.rows import MetricRow
from driftline.streams.consumer import BatchConsumer, PartitionRecords
from driftline.streams.monitor import MonitoringEngine, WindowPart

log = logging.getLogger(__name__)

TOPIC = "window-parts"
#: Windows merged lately, kept so that a share replayed after the merge merges them again.
MERGED_KEPT = 256


class Share(msgspec.Struct, frozen=True):
    """A WindowPart on the wire, with the prediction partitions the sender held (of `total`)."""

    part: WindowPart
    partitions: list[int]
    total: int


def encode_share(part: WindowPart, partitions: Sequence[int], total: int) -> tuple[bytes, bytes]:
    """The message key (one per window: every share of it goes to one partition) and value."""
    key = f"{part.model}\x00{part.version}\x00{part.start!r}".encode()
    return key, msgspec.msgpack.encode(Share(part, sorted(partitions), total))


_decode_share = msgspec.msgpack.Decoder(Share).decode

WindowKey = tuple[str, str, float]


@dataclass
class _Window:
    end: float
    first_seen: float
    shares: dict[tuple[int, ...], Share] = field(default_factory=dict)  # by the sender's partitions
    offsets: dict[int, int] = field(default_factory=dict)  # window-parts partition -> lowest offset held

    def covered(self) -> bool:
        total = max(s.total for s in self.shares.values())
        held = set().union(*(set(s.partitions) for s in self.shares.values()))
        return held >= set(range(total))


class PartsMerger:
    """The owner side: gathers the shares of each window, merges complete windows, publishes their rows."""

    def __init__(
        self,
        engine: MonitoringEngine,
        consumer: BatchConsumer,
        publish: Callable[[list[MetricRow]], Awaitable[None]],
        timeout_s: float = 900.0,
        written: Callable[[str, str, float], bool] | None = None,
    ):
        self.engine = engine
        self.consumer = consumer
        self.publish = publish
        self.timeout_s = timeout_s
        self.written = written  # (model, version, window start) -> whether its complete rows are stored
        self.windows_replayed = 0  # timed-out shares of windows whose rows were stored already: dropped
        self.pending: dict[WindowKey, _Window] = {}
        self.merged: OrderedDict[WindowKey, _Window] = OrderedDict()
        self.windows_merged = 0
        self.windows_timed_out = 0
        self._next: dict[int, int] = {}  # window-parts partition -> next offset to read

    async def step(self, timeout_ms: int = 200) -> int:
        """Read what shares there are, merge the windows they complete, commit; how many windows merged."""
        records = await self.consumer.fetch(10_000, timeout_ms)
        touched: set[WindowKey] = set()
        for batch in records:
            touched |= self._take(batch)
        merged = 0
        now = time.monotonic()
        for key in sorted(touched | set(self.pending)):
            window = self.pending.get(key) or self.merged.get(key)
            if window is None:
                continue
            late = key in self.merged and key in touched  # a share replayed after the merge
            timed_out = key in self.pending and now - window.first_seen > self.timeout_s
            if late or (key in self.pending and window.covered()) or timed_out:
                if timed_out and not window.covered():
                    if self.written is not None and await asyncio.to_thread(self.written, *key):
                        self.windows_replayed += 1
                        self.pending.pop(key)
                        continue
                    self.windows_timed_out += 1
                    log.warning(
                        "%s %s, window at %s: merged without every worker's share after %.0fs (marked incomplete)",
                        *key,
                        self.timeout_s,
                    )
                await self._merge(key, window, complete=window.covered())
                merged += 1
        await self._commit()
        return merged

    def _take(self, batch: PartitionRecords) -> set[WindowKey]:
        touched = set()
        for offset, value in zip(batch.offsets, batch.values, strict=True):
            self._next[batch.partition] = offset + 1
            try:
                share = _decode_share(value)
            except msgspec.DecodeError:
                log.error("window-parts %d@%d is not a window share; skipped", batch.partition, offset)
                continue
            key = (share.part.model, share.part.version, share.part.start)
            window = self.merged.get(key) or self.pending.get(key)
            if window is None:
                window = self.pending[key] = _Window(share.part.end, time.monotonic())
            window.shares[tuple(share.partitions)] = share
            if key not in self.merged:
                window.offsets.setdefault(batch.partition, offset)
            touched.add(key)
        return touched

    async def _merge(self, key: WindowKey, window: _Window, complete: bool) -> None:
        model, version, start = key
        states = [s.part.state for s in window.shares.values()]
        rows = self.engine.merge_parts(model, version, start, window.end, states)
        if not complete:
            rows = [replace(r, complete=False) for r in rows]
        await self.publish(rows)
        self.windows_merged += 1
        self.pending.pop(key, None)
        window.offsets.clear()
        self.merged[key] = window
        self.merged.move_to_end(key)
        while len(self.merged) > MERGED_KEPT:
            self.merged.popitem(last=False)

    async def _commit(self) -> None:
        """Commit each partition up to its oldest share of a window not merged yet."""
        if not self._next:
            return
        offsets = dict(self._next)
        for window in self.pending.values():
            for partition, offset in window.offsets.items():
                offsets[partition] = min(offsets.get(partition, offset), offset)
        topic = self.consumer.topics[0]
        try:
            await self.consumer.commit({(topic, p): o for p, o in offsets.items()})
        except Exception as exc:  # noqa: BLE001 - the next step commits again; a restart replays shares
            log.warning("window-parts offsets not committed: %s", exc)
