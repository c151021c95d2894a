"""The batch ingest loop: fetch many messages, decode, dead-letter, store, then commit.

Faust's per-event stream machinery measured ~6k events/s here while a bulk fetch with a C
decoder reads over 100k/s, so the hot path is a batch loop that runs as a task inside the
Faust worker: one fetch (librdkafka, see streams/consumer.py) returns up to
`batch_max_records` messages, each message may hold many events, and everything after the
fetch works on whole batches.

Delivery guarantee: at least once, stored once. Offsets are committed only after the
dead letters are acknowledged by Kafka and the events are in ClickHouse. A retried or
replayed batch carries the same deduplication token (derived from its offset ranges),
and the tables collapse any remaining replays by event key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from driftline.config import Settings
from driftline.events import (
    DECODERS,
    LIST_DECODERS,
    ColumnarEvents,
    DeadLetter,
    Kind,
    Label,
    Prediction,
    decode_columnar,
    decode_message,
    encode_json,
    is_msgpack_map,
    names_ok,
    rows_of,
)
from driftline.exceptions import SinkError
from driftline.sinks.clickhouse import EventSink, SinkBatch, SourcedDeadLetter, batch_token
from driftline.streams.consumer import BatchConsumer, PartitionRecords
from driftline.streams.observability import WorkerMetrics

log = logging.getLogger(__name__)

BatchHook = Callable[[Sequence[Prediction], Sequence[Label]], Any]
ColumnsHook = Callable[[Sequence[ColumnarEvents]], Any]


def tune_gc() -> None:
    """Collect young objects every 100,000 allocations instead of every 700 (CPython's default).

    A batch holds tens of thousands of live events; with the default thresholds the cyclic
    collector walks them again and again while they are being decoded. Events are
    untracked structs (``gc=False``) and hold no cycles; this measured +20-40 % ingest
    throughput (BENCHMARKS.md). Memory stays bounded: collections still run, less often.
    """
    import gc

    gc.set_threshold(100_000, 50, 1000)


def tune_blas() -> None:
    """One BLAS thread in the worker: its Python thread does the engine's matrix work between
    everything else, and OpenBLAS's extra threads keep spinning after each call. On the 2-vCPU
    machine they slowed the whole engine by a third (0.84 -> 0.52 s for a 100,000-event window;
    the PCA's 100,000 x 20 matmul took 60-80 ms instead of 4.5: BENCHMARKS.md)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not installed: BLAS keeps its default threads
        return
    threadpool_limits(limits=1, user_api="blas")


@dataclass
class IngestStats:
    """Counters of one worker since it started; served as JSON on /stats."""

    messages: int = 0
    predictions: int = 0
    labels: int = 0
    dead_letters: int = 0
    dead_letter_codes: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    sink_retries: int = 0
    started_at: float = field(default_factory=time.time)
    first_batch_at: float = 0.0
    last_batch_at: float = 0.0
    busy_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "predictions": self.predictions,
            "labels": self.labels,
            "dead_letters": self.dead_letters,
            "dead_letter_codes": dict(self.dead_letter_codes),
            "batches": self.batches,
            "sink_retries": self.sink_retries,
            "uptime_s": round(time.time() - self.started_at, 3),
            "busy_s": round(self.busy_seconds, 3),
            "first_batch_at": self.first_batch_at,
            "last_batch_at": self.last_batch_at,
        }


@dataclass
class DecodedBatch:
    predictions: list[Prediction] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    # The same events as the JSON they came in (objects, or objects joined by commas), for the sink.
    prediction_json: list[bytes] = field(default_factory=list)
    label_json: list[bytes] = field(default_factory=list)
    # More events, from columnar envelopes, kept as their columns (see decode_records): the
    # sink stores them as columns; all_predictions/all_labels make objects of them.
    prediction_columns: list[ColumnarEvents] = field(default_factory=list)
    label_columns: list[ColumnarEvents] = field(default_factory=list)
    dead_letters: list[SourcedDeadLetter] = field(default_factory=list)
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    messages: int = 0

    @property
    def n_predictions(self) -> int:
        return len(self.predictions) + sum(c.n for c in self.prediction_columns)

    @property
    def n_labels(self) -> int:
        return len(self.labels) + sum(c.n for c in self.label_columns)

    @property
    def events(self) -> int:
        return self.n_predictions + self.n_labels

    def all_predictions(self) -> list[Prediction]:
        """Every prediction as an object: those of JSON messages, then those of columnar envelopes."""
        return [*self.predictions, *rows_of(self.prediction_columns)]

    def all_labels(self) -> list[Label]:
        return [*self.labels, *rows_of(self.label_columns)]

    def extend(self, later: DecodedBatch) -> DecodedBatch:
        """This batch followed by `later` (fetched after it) as one batch; returns self."""
        self.predictions += later.predictions
        self.labels += later.labels
        self.prediction_json += later.prediction_json
        self.label_json += later.label_json
        self.prediction_columns += later.prediction_columns
        self.label_columns += later.label_columns
        self.dead_letters += later.dead_letters
        for key, (first, last) in later.offsets.items():
            self.add_span(key, first, last)
        self.messages += later.messages
        return self

    def marks(self) -> tuple[int, ...]:
        """How many items each list holds now: `rewind` goes back to it."""
        return tuple(map(len, self._lists()))

    def rewind(self, marks: tuple[int, ...]) -> None:
        """Drop what was added to the lists since `marks()` (offsets and counts are not touched)."""
        for items, mark in zip(self._lists(), marks, strict=True):
            del items[mark:]

    def _lists(self) -> tuple[list[Any], ...]:
        return (
            self.predictions,
            self.labels,
            self.prediction_json,
            self.label_json,
            self.prediction_columns,
            self.label_columns,
            self.dead_letters,
        )

    def add_span(self, key: tuple[str, int], first: int, last: int) -> None:
        """Offsets first..last of partition `key` are in the batch (after any it holds already)."""
        held = self.offsets.get(key)
        self.offsets[key] = (held[0] if held else first, last)


def decode_records(
    records: Sequence[PartitionRecords], settings: Settings, received_at: float, objects: bool = False
) -> DecodedBatch:
    """Decode one fetch (the messages of each partition, in offset order) into one batch.

    The events of columnar envelopes stay columns, stored as columns (sinks/columnar.py), unless
    `objects`: a hook needs every event as an object, and making them here overlaps the previous
    batch's insert. Those objects are then stored as JSON rows: measured with the monitoring
    engine on, storing the columns as well made the worker slower (their INSERT ... SELECT costs
    ClickHouse more CPU than the JSON it replaces saves, BENCHMARKS.md).
    """
    out = DecodedBatch()
    for part in records:
        if not part.values:
            continue
        marks = out.marks()
        if not _decode_partition(out, part, settings, received_at, objects, fast=True):
            # A feature, attribute or KPI name of this partition's JSON events is empty or too long
            # (events.names_ok checks them per batch): decode it again message by message.
            out.rewind(marks)
            _decode_partition(out, part, settings, received_at, objects, fast=False)
        out.add_span((part.topic, part.partition), part.offsets[0], part.offsets[-1])
        out.messages += len(part.values)
    return out


def _decode_partition(
    out: DecodedBatch, part: PartitionRecords, settings: Settings, received_at: float, objects: bool, fast: bool
) -> bool:
    """Add one partition's messages to `out`; False: names_ok failed on the fast path (nothing is
    dead-lettered for it yet: the caller rewinds and decodes the partition with `fast=False`)."""
    kind: Kind = "prediction" if part.topic == settings.topic("predictions") else "label"
    max_bytes = settings.max_message_bytes
    target: list[Any] = out.predictions if kind == "prediction" else out.labels
    as_json = out.prediction_json if kind == "prediction" else out.label_json
    as_columns = out.prediction_columns if kind == "prediction" else out.label_columns
    first_event = len(target)
    one, many = DECODERS[kind].decode, LIST_DECODERS[kind].decode
    for i, value in enumerate(part.values):
        # Fast path: a well-formed JSON object or array is one C call, and is stored as it came.
        if value and len(value) <= max_bytes:
            try:
                if value[0] == 0x7B and fast:  # "{"
                    target.append(one(value))
                    as_json.append(value)
                    continue
                if value[0] == 0x5B and fast:  # "["
                    events = many(value)
                    if events:
                        target.extend(events)
                        as_json.append(value.strip()[1:-1])
                    continue
                if is_msgpack_map(value) and not objects:  # a columnar envelope, kept as columns
                    checked = decode_columnar(value, kind)
                    if isinstance(checked, DeadLetter):
                        out.dead_letters.append(
                            SourcedDeadLetter(checked, part.topic, part.partition, part.offsets[i], received_at)
                        )
                    elif checked.n:
                        as_columns.append(checked)
                    continue
            except Exception:  # noqa: BLE001, S110 - whatever failed (RecursionError too) takes the slow path
                pass
        # Slow path: anything that failed (to find out exactly why; decode_message never raises).
        decoded = decode_message(value, kind, max_bytes)
        target.extend(decoded.events)
        if decoded.events:
            as_json.append(encode_json(decoded.events)[1:-1])
        for letter in decoded.dead_letters:
            out.dead_letters.append(SourcedDeadLetter(letter, part.topic, part.partition, part.offsets[i], received_at))
    return not fast or kind == "label" or names_ok(target[first_event:])


#: How long a fetch waits for records while a write is in flight and a batch is gathered: the
#: gathered batch is written soon after the previous write ends, even when no records come.
_POLL_WHILE_WRITING_MS = 5


class EngineCheckpoints(Protocol):
    """What the ingest loop needs to keep the engine's state and its offsets together (engine_checkpoint.py)."""

    def due(self) -> bool: ...

    def resume(
        self, partitions: Sequence[tuple[str, int]], committed: Mapping[tuple[str, int], int]
    ) -> dict[tuple[str, int], int]: ...

    async def save(self, covered: Mapping[tuple[str, int], int], partitions: Sequence[tuple[str, int]]) -> None: ...


class StoppedWithoutCommit(Exception):
    """The worker stopped while a batch could not be stored; it is replayed at the next start."""


class BatchIngestor:
    """Consumes `predictions` and `labels`, writes to a sink, dead-letters bad input."""

    def __init__(
        self,
        settings: Settings,
        sink: EventSink,
        on_batch: BatchHook | None = None,
        retry_backoff: tuple[float, float] = (0.2, 5.0),
        metrics: WorkerMetrics | None = None,
        before_close: Callable[[], Awaitable[None]] | None = None,
        on_columns: ColumnsHook | None = None,
        checkpoints: EngineCheckpoints | None = None,
    ):
        """`on_batch` gets each stored batch's events as objects; with `on_columns` too, the events
        of columnar envelopes go to `on_columns` as their columns instead (no object per event)."""
        self.settings = settings
        self.on_columns = on_columns
        self.before_close = before_close  # after the last commit, before leaving the group (checkpoints)
        self.sink = sink
        self.on_batch = on_batch
        self.metrics = metrics
        self.stats = IngestStats()
        self.committed: dict[tuple[str, int], int] = {}  # next offset to read, per partition we committed
        self.retry_backoff = retry_backoff
        self._stopping = asyncio.Event()
        self.consumer: BatchConsumer | None = None
        self.producer: Any = None
        self.ready = asyncio.Event()
        # The last ClickHouse fault while writes are being retried ("" when the last write succeeded):
        # /ready reports it, the log and driftline_sink_failing show it while it lasts.
        self.sink_fault = ""
        self._hooks: asyncio.Task[None] | None = None  # the hooks of the last stored batch, running
        self._unhooked: DecodedBatch | None = None  # a stored batch whose hooks wait for the next write
        self._gathered: DecodedBatch | None = None  # decoded by run(), waiting for its write
        # With engine checkpoints, offsets are committed only once a saved snapshot covers them:
        self.checkpoints = checkpoints
        self._hooked: DecodedBatch | None = None  # the batch whose hooks run now
        self._pending: dict[tuple[str, int], int] = {}  # processed by the hooks, not yet committed
        self._covered: dict[tuple[str, int], int] = {}  # every offset the engine has seen, per partition
        self._resumed = False

    async def readiness(self) -> str:
        """Why this ingestor is not ready, or "" when it is: consuming, with partitions assigned, a
        broker that answers now, and ClickHouse writes that succeed."""
        if not self.ready.is_set():
            return "starting"
        if self.stopping:
            return "stopping"
        if self.sink_fault:
            return f"ClickHouse writes fail and are retried, consumption paused: {self.sink_fault}"
        consumer = self.consumer
        if consumer is None or not consumer.assignment():
            return "no partitions assigned (yet)"
        if not await asyncio.to_thread(consumer.reachable, 1.0):
            return "no Kafka broker answers"
        return ""

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        s = self.settings
        self.producer = AIOKafkaProducer(
            bootstrap_servers=s.broker, linger_ms=5, max_request_size=16 * 1024 * 1024, **s.kafka.aiokafka_kwargs()
        )
        await self.producer.start()
        self.consumer = BatchConsumer(
            s.broker,
            s.group_id,
            [s.topic("predictions"), s.topic("labels")],
            max_bytes=s.batch_max_bytes,
            on_assign=self._on_assign if self.checkpoints is not None else None,
            librdkafka=s.kafka.librdkafka_config(),
        )
        await self.consumer.start()

    def _on_assign(
        self, partitions: list[tuple[str, int]], committed: dict[tuple[str, int], int]
    ) -> dict[tuple[str, int], int]:
        """At the first assignment: the engine takes its snapshot, reading starts where it ends."""
        if self._resumed or self.checkpoints is None:
            return {}
        self._resumed = True
        return self.checkpoints.resume(partitions, committed)

    async def close(self) -> None:
        consumer, producer, self.consumer, self.producer = self.consumer, self.producer, None, None
        for stop in (consumer.close if consumer else None, producer.stop if producer else None):
            if stop is not None:
                try:
                    await stop()
                except Exception:
                    log.exception("error while stopping a Kafka client")

    async def run(self) -> None:
        """Ingest until `stop()` is called; what was fetched is stored and committed before leaving.

        Two stages overlap: while one batch is written to ClickHouse in a thread (the engine
        releases the GIL), the next fetches are decoded and gathered into one batch, which is
        written as soon as the previous write is done (up to `insert_max_events`, then the
        loop waits). Each insert has a fixed cost (~12 ms in chdb: a new part), so a busy
        worker writes fewer, larger batches and an idle one writes at once. Commits stay in
        order: a batch is written only after the one before it is stored and committed.
        """
        await self.start()
        self.ready.set()
        storing: asyncio.Task[None] | None = None
        self._gathered, decode_seconds = None, 0.0  # nothing of an earlier run that ended by an exception
        try:
            while not self._stopping.is_set():
                gathered: DecodedBatch | None = self._gathered
                if gathered is not None and (
                    storing is None or storing.done() or gathered.events >= self.settings.insert_max_events
                ):
                    if storing is not None:
                        await storing  # in order: the previous batch is stored and committed first
                    storing = asyncio.create_task(self._store_stage(gathered, decode_seconds))
                    self._gathered, decode_seconds = None, 0.0
                    self._start_hooks()  # of the batch stored before: they run while this one is written
                writing = storing is not None and not storing.done()
                records = await self._consumer().fetch(
                    self.settings.batch_max_records,
                    _POLL_WHILE_WRITING_MS if writing and self._gathered else self.settings.batch_timeout_ms,
                )
                if records:
                    batch, seconds = await self._decode_stage(records)
                    self._gathered = batch if self._gathered is None else self._gathered.extend(batch)
                    decode_seconds += seconds
                elif self._gathered is None and (storing is None or storing.done()):
                    await self._idle_checkpoint()
            if storing is not None:
                await storing
            gathered, self._gathered = self._gathered, None
            if gathered is not None:
                await self._store_stage(gathered, decode_seconds)
            await self._finish_hooks()
            if self.checkpoints is not None:
                self._processed(self._hooked)
                self._hooked = None
                await self._save_and_commit(force=True)
            if self.before_close is not None:
                await self.before_close()
        except StoppedWithoutCommit as exc:
            log.warning("%s; the uncommitted batch will be replayed", exc)
        finally:
            for task in (storing, self._hooks):
                if task is not None and not task.done():
                    task.cancel()
            await self.close()

    def _consumer(self) -> BatchConsumer:
        if self.consumer is None:
            raise RuntimeError("the ingestor is not started")
        return self.consumer

    async def process(self, records: Sequence[PartitionRecords]) -> DecodedBatch:
        """Decode, store and commit one fetch, and run the hooks on it (no overlap)."""
        batch, started = await self._decode_stage(records)
        await self._store_stage(batch, started)
        await self._finish_hooks()
        return batch

    async def _decode_stage(self, records: Sequence[PartitionRecords]) -> tuple[DecodedBatch, float]:
        started = time.perf_counter()
        if not self.stats.first_batch_at:
            self.stats.first_batch_at = time.time()
        objects = self.on_batch is not None and self.on_columns is None
        batch = decode_records(records, self.settings, time.time(), objects=objects)
        await self._send_dead_letters(batch.dead_letters)
        return batch, time.perf_counter() - started

    async def _store_stage(self, batch: DecodedBatch, decode_seconds: float) -> None:
        """Store and commit one batch, then hand it to the hooks in a task of their own.

        The hooks (the monitoring engine) run on this thread while the next batch is written in
        another: run between the write and the commit, their time was added to the insert's
        instead of overlapping it (BENCHMARKS.md). When a decoded batch waits for its write,
        run() starts that write before these hooks. They run in batch order, one batch at a time, and a batch is
        committed only after the hooks of the batch before it ran (at most one batch in flight,
        so memory stays bounded; a hook's exception ends the loop as before).
        """
        started = time.perf_counter()
        await self._write_with_retry(batch, batch_token(batch.offsets))
        await self._finish_hooks()
        hooked = (self.on_batch is not None or self.on_columns is not None) and batch.events > 0
        if self.checkpoints is None:
            await self._commit(batch)
        else:
            self._processed(self._hooked)
            self._hooked = batch if hooked else None
            if not hooked:
                self._processed(batch)
            await self._save_and_commit(force=False)
        self._count(batch, decode_seconds + time.perf_counter() - started)
        if hooked:
            # A batch waits to be written: run() writes it first, then starts these hooks, so that
            # the engine runs on this thread while that write runs in another. Started first, the
            # hooks held the loop and the write waited for them: with every family on, no write
            # ran for half of the time (BENCHMARKS.md, issue 21.2).
            self._unhooked = batch
            if self._gathered is None:
                self._start_hooks()

    async def _idle_checkpoint(self) -> None:
        """Nothing to read: once the last hooks are done, a due snapshot lets their offsets be committed
        (otherwise an idle worker would hold back the commits of its last batches until the next one)."""
        if self.checkpoints is None or (self._hooks is not None and not self._hooks.done()):
            return
        await self._finish_hooks()
        self._processed(self._hooked)
        self._hooked = None
        await self._save_and_commit(force=False)

    def _processed(self, batch: DecodedBatch | None) -> None:
        """`batch` went through the hooks: its offsets may be committed once a snapshot covers them."""
        if batch is None:
            return
        for key, (_, last) in batch.offsets.items():
            self._pending[key] = max(self._pending.get(key, 0), last + 1)
            self._covered[key] = max(self._covered.get(key, 0), last + 1)

    async def _save_and_commit(self, force: bool) -> None:
        """Save an engine snapshot covering what the hooks processed, then commit those offsets."""
        if self.checkpoints is None or not self._pending or not (force or self.checkpoints.due()):
            return
        assigned = [(tp.topic, tp.partition) for tp in self._consumer().assignment()]
        try:
            await self.checkpoints.save(self._covered, assigned)
        except SinkError as exc:  # not saved: nothing is committed either, so a crash replays it all
            log.error("engine checkpoint not saved, offsets held back: %s", exc)
            return
        pending, self._pending = self._pending, {}
        await self._commit_offsets(pending)

    def _start_hooks(self) -> None:
        """Run the hooks of the stored batch that waits for them, in a task of their own."""
        batch, self._unhooked = self._unhooked, None
        if batch is not None:
            self._hooks = asyncio.create_task(self._run_hooks(batch))

    async def _finish_hooks(self) -> None:
        self._start_hooks()
        hooks, self._hooks = self._hooks, None
        if hooks is not None:
            await hooks

    async def _run_hooks(self, batch: DecodedBatch) -> None:
        if self.on_columns is not None and batch.prediction_columns:
            result = self.on_columns(batch.prediction_columns)
            if isinstance(result, Awaitable):
                await result
        if self.on_batch is not None:
            predictions = batch.predictions if self.on_columns is not None else batch.all_predictions()
            result = self.on_batch(predictions, batch.all_labels())
            if isinstance(result, Awaitable):
                await result

    async def _send_dead_letters(self, letters: Sequence[SourcedDeadLetter]) -> None:
        if not letters:
            return
        topic = self.settings.topic("dlq")
        futures = []
        for d in letters:
            headers = [
                ("reason", d.letter.reason.encode()[:4096]),
                ("code", d.letter.code.encode()),
                ("source_topic", d.topic.encode()),
                ("source_partition", str(d.partition).encode()),
                ("source_offset", str(d.offset).encode()),
                ("event_index", str(d.letter.index).encode()),
            ]
            futures.append(await self.producer.send(topic, d.letter.payload, headers=headers))
        await asyncio.gather(*futures)
        if self.metrics is not None:
            self.metrics.messages_out.labels(topic).inc(len(letters))

    async def _write_with_retry(self, batch: DecodedBatch, token: str) -> None:
        delay, ceiling = self.retry_backoff
        while True:
            try:
                t0 = time.perf_counter()
                rejected = await asyncio.to_thread(
                    self.sink.write,
                    SinkBatch(
                        batch.predictions,
                        batch.labels,
                        batch.dead_letters,
                        token,
                        batch.prediction_json,
                        batch.label_json,
                        batch.prediction_columns,
                        batch.label_columns,
                    ),
                )
                if self.metrics is not None:
                    self.metrics.sink_seconds.observe(time.perf_counter() - t0)
                if self.sink_fault:
                    log.warning("ClickHouse writes succeed again after: %s", self.sink_fault)
                    self.sink_fault = ""
                    if self.metrics is not None:
                        self.metrics.sink_failing.set(0)
                if rejected:
                    # Events ClickHouse refused even re-encoded: dead letters like any other bad input.
                    await self._send_dead_letters(rejected)
                    refused = {d.letter.payload for d in rejected}
                    batch.predictions = [e for e in batch.all_predictions() if encode_json(e) not in refused]
                    batch.labels = [e for e in batch.all_labels() if encode_json(e) not in refused]
                    batch.prediction_columns, batch.label_columns = [], []
                    batch.dead_letters = [*batch.dead_letters, *rejected]
                return
            except SinkError as exc:
                # Nothing is committed, so waiting loses nothing; the same token makes the retry safe.
                if self._stopping.is_set():
                    raise StoppedWithoutCommit(f"stopping while ClickHouse is failing ({exc})") from exc
                self.stats.sink_retries += 1
                self.sink_fault = str(exc)[:500]
                if self.metrics is not None:
                    self.metrics.sink_errors.inc()
                    self.metrics.sink_failing.set(1)
                log.warning("ClickHouse write failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, ceiling)

    async def _commit(self, batch: DecodedBatch) -> None:
        await self._commit_offsets({key: last + 1 for key, (_, last) in batch.offsets.items()})

    async def _commit_offsets(self, offsets: dict[tuple[str, int], int]) -> None:
        from confluent_kafka import KafkaException

        try:
            await self._consumer().commit(offsets)
            self.committed.update(offsets)
        except KafkaException as exc:
            # A rebalance took the partitions away: their new owner replays the batch,
            # and the deduplication token plus ReplacingMergeTree keep it stored once.
            log.warning("offsets not committed (partitions reassigned?): %s", exc)

    def _count(self, batch: DecodedBatch, seconds: float) -> None:
        st = self.stats
        st.messages += batch.messages
        st.predictions += batch.n_predictions
        st.labels += batch.n_labels
        st.dead_letters += len(batch.dead_letters)
        st.dead_letter_codes.update(d.letter.code for d in batch.dead_letters)
        st.batches += 1
        st.busy_seconds += seconds
        st.last_batch_at = time.time()
        if self.metrics is not None:
            per_topic: dict[str, int] = {}
            for (topic, _), (first, last) in batch.offsets.items():
                per_topic[topic] = per_topic.get(topic, 0) + last - first + 1
            self.metrics.batch(
                batch.messages,
                batch.n_predictions,
                batch.n_labels,
                (d.letter.code for d in batch.dead_letters),
                seconds,
                per_topic,
            )

    def lag(self) -> list[tuple[str, int, int]]:
        """(topic, partition, messages behind the high watermark) for the partitions this worker holds,
        from the group's committed offsets (BatchConsumer.lag): network calls, so call it off the loop."""
        return self.consumer.lag() if self.consumer is not None else []
