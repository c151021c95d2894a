"""The ingest loop's Kafka consumer: librdkafka (confluent-kafka) behind a small asyncio API.

aiokafka unpacks every record in Python (~2 us per message here); librdkafka fetches and
unpacks in C on its own threads. On the same broker and data a raw confluent-kafka
consumer read 1.5-2x as many single JSON events per second as a raw aiokafka one
(BENCHMARKS.md), so the hot path uses it. Blocking calls run in a thread (librdkafka
releases the GIL while it waits), one at a time, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PartitionRecords:
    """The messages of one fetch from one partition, in offset order."""

    topic: str
    partition: int
    offsets: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)


def group_by_partition(messages: Sequence[Any]) -> list[PartitionRecords]:
    """confluent-kafka Messages (in fetch order) grouped by partition; errors are logged and skipped.

    The fields are taken with ``map`` over the C methods, not a Python loop per message: a fetch
    holds up to tens of thousands of messages, mostly from one partition.
    """
    from confluent_kafka import Message

    if any(map(Message.error, messages)):
        for m in messages:
            if m.error() is not None:
                _raise_if_fatal(m.error())
        messages = [m for m in messages if m.error() is None]
    # Messages from a fetch always carry topic, partition and offset (None only on error messages).
    topics, partitions = map(Message.topic, messages), map(Message.partition, messages)
    keys = cast(list[tuple[str, int]], list(zip(topics, partitions, strict=True)))
    offsets = cast(list[int], list(map(Message.offset, messages)))
    values = [v or b"" for v in map(Message.value, messages)]
    if len(set(keys)) == 1:
        return [PartitionRecords(keys[0][0], keys[0][1], offsets, values)]
    out: dict[tuple[str, int], PartitionRecords] = {}
    for key, offset, value in zip(keys, offsets, values, strict=True):
        group = out.get(key)
        if group is None:
            group = out[key] = PartitionRecords(*key)
        group.offsets.append(offset)
        group.values.append(value)
    return list(out.values())


def _raise_if_fatal(error: Any) -> None:
    from confluent_kafka import KafkaException

    if error.fatal():
        raise KafkaException(error)
    log.warning("Kafka consumer: %s", error)


#: (assigned partitions, their committed offsets) -> where to start reading some of them
AssignHook = Callable[[list[tuple[str, int]], dict[tuple[str, int], int]], dict[tuple[str, int], int]]

_CHUNK = 1000  # messages taken from librdkafka's queue per call while a fetch fills up
_WAIT_SLICE_S = 0.01  # longest single wait inside consume(): a commit waits at most this long


class BatchConsumer:
    """A consumer-group member of `topics` that fetches in bulk and commits explicit offsets."""

    def __init__(
        self,
        broker: str,
        group_id: str,
        topics: Sequence[str],
        max_bytes: int = 8 * 1024 * 1024,  # as Settings.batch_max_bytes
        session_timeout_ms: int = 10_000,
        on_assign: AssignHook | None = None,
        librdkafka: dict[str, str] | None = None,  # TLS/SASL (KafkaSecurity.librdkafka_config) and overrides
    ):
        self.max_bytes = max_bytes
        self.config = {
            "bootstrap.servers": broker,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Tansu holds a new member's first JoinGroup for half the session timeout; librdkafka's
            # default (45 s) made the first join take 23 s.
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": 1_000,
            "isolation.level": "read_uncommitted",  # producers here are not transactional
            # When a partition's prefetch queue is full librdkafka waits this long before fetching it
            # again (default 1 s): with two partitions, the second sat idle ~0.4 s behind the first.
            "fetch.queue.backoff.ms": 20,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
            "receive.message.max.bytes": 100 * 1024 * 1024,
            "queued.max.messages.kbytes": 64 * 1024,  # prefetched per partition: bounds memory
            "logger": log,
            **(librdkafka or {}),
        }
        self.topics = list(topics)
        self.on_assign = on_assign  # where to start reading newly assigned partitions (engine checkpoints)
        self._consumer: Any = None
        self._fetching: asyncio.Future[list[Any]] | None = None  # close() waits for it
        self._calls = threading.Lock()  # one librdkafka call at a time (see _poll)

    async def start(self) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer(self.config)
        self._consumer.subscribe(self.topics, on_assign=self._assigned, on_revoke=self._on_revoke)

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        """Runs in the consuming thread when partitions are assigned, before any message of theirs."""
        if self.on_assign is None or not partitions:
            return
        keys = [(tp.topic, tp.partition) for tp in partitions]
        try:
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in consumer.committed(partitions, timeout=10)
                if tp.offset >= 0
            }
        except Exception:  # no committed offsets known: nothing can be compared, nothing is moved
            log.exception("committed offsets not read at assignment")
            return
        starts = self.on_assign(keys, committed)
        if not starts:
            return
        for tp in partitions:
            if (tp.topic, tp.partition) in starts:
                tp.offset = starts[(tp.topic, tp.partition)]
        consumer.assign(partitions)

    @staticmethod
    def _on_revoke(consumer: Any, partitions: list[Any]) -> None:
        log.info("partitions revoked: %s", ", ".join(f"{p.topic}/{p.partition}" for p in partitions))

    async def fetch(self, max_records: int, timeout_ms: int) -> list[PartitionRecords]:
        """Up to `max_records` messages, waiting at most `timeout_ms` for the first."""
        # Shielded: a cancelled caller leaves the call running in its thread, and close() waits for it.
        self._fetching = asyncio.ensure_future(asyncio.to_thread(self._poll, max_records, timeout_ms / 1000.0))
        messages = await asyncio.shield(self._fetching)
        return group_by_partition(messages) if messages else []

    def _poll(self, max_records: int, timeout_s: float) -> list[Any]:
        # librdkafka's consume(n, timeout) waits for n messages or the timeout, even when some are
        # there: wait only for the first message, then take what is queued, in chunks, until the
        # batch holds max_records messages or max_bytes (envelopes hold hundreds of events each:
        # counting messages alone let one fetch take a whole topic and left nothing to overlap).
        # A commit from another thread waits while consume() runs (2.9 s behind a 3 s wait,
        # measured), so every call holds `_calls` and the wait is cut into short slices.
        deadline = time.monotonic() + timeout_s
        while True:
            with self._calls:
                messages: list[Any] = self._consumer.consume(1, min(_WAIT_SLICE_S, max(0.0, timeout_s)))
            if messages or time.monotonic() >= deadline:
                break
        size = sum(map(len, messages))
        while messages and len(messages) < max_records and size < self.max_bytes:
            fits = (self.max_bytes - size) * len(messages) // max(1, size)  # messages of the mean size so far
            with self._calls:
                chunk = self._consumer.consume(max(1, min(_CHUNK, max_records - len(messages), fits)), 0)
            if not chunk:
                break
            messages += chunk
            size += sum(map(len, chunk))
        return messages

    async def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit the next offset to read per partition; raises KafkaException when refused."""
        from confluent_kafka import KafkaException, TopicPartition

        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        result = await asyncio.to_thread(self._commit, tps)
        failed = [tp for tp in result or [] if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)

    def _commit(self, tps: list[Any]) -> Any:
        with self._calls:
            return self._consumer.commit(offsets=tps, asynchronous=False)

    def partition_count(self, topic: str, timeout_s: float = 5.0) -> int:
        """How many partitions `topic` has, as the broker says now (blocking: call it in a thread)."""
        with self._calls:
            metadata = self._consumer.list_topics(topic, timeout=timeout_s)
        return len(metadata.topics[topic].partitions)

    def assignment(self) -> list[Any]:
        """TopicPartitions this member holds (each has .topic and .partition)."""
        return list(self._consumer.assignment()) if self._consumer is not None else []

    def reachable(self, timeout_s: float = 1.0) -> bool:
        """Whether a broker answers a metadata request now (librdkafka keeps no cached answer for it)."""
        from confluent_kafka import KafkaException

        consumer = self._consumer
        if consumer is None:
            return False
        try:
            consumer.list_topics(self.topics[0], timeout=timeout_s)
        except (KafkaException, RuntimeError):
            return False
        return True

    def lag(self, timeout_s: float = 2.0) -> list[tuple[str, int, int]]:
        """(topic, partition, messages behind) for the partitions this member holds, as the broker
        has it now: the group's committed offset (so right after a restart too, before this member
        commits anything) against the high watermark asked of the broker, not the one cached at the
        last fetch (a stale cached watermark below the committed offset read as negative lag)."""
        from confluent_kafka import KafkaException

        consumer = self._consumer
        tps = self.assignment()
        if consumer is None or not tps:
            return []
        out = []
        try:
            for tp in consumer.committed(tps, timeout=timeout_s):
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                start = tp.offset if tp.offset >= 0 else low  # nothing committed yet: from the beginning
                out.append((tp.topic, tp.partition, max(0, int(high) - int(start))))
        except (KafkaException, RuntimeError) as exc:  # no broker now: no lag to report, /ready says why
            log.info("consumer lag not known: %s", exc)
            return []
        return out

    async def close(self) -> None:
        """Leave the group (its partitions go to the other members at once)."""
        if self._consumer is None:
            return
        if self._fetching is not None and not self._fetching.done():
            await asyncio.wait([self._fetching])
        consumer, self._consumer = self._consumer, None

        def close() -> None:
            with self._calls:
                consumer.close()

        await asyncio.to_thread(close)
