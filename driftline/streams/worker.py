"""The Faust worker: topics, the batch ingest task, and a small web API (/stats, /health).

Faust owns the process: start-up, topic declaration, the web server, signals and a clean
shutdown. The per-event path does not go through Faust streams (see ingest.py for why);
it runs as a Faust task that consumes in batches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import faust
import msgspec
from aiohttp import web

from driftline.alerts.live import AlertStream, unauthorized
from driftline.alerts.store import AlertStore
from driftline.config import Settings
from driftline.control import ControlClient
from driftline.events import ColumnarEvents, Prediction, strict_dumps
from driftline.exceptions import SinkError
from driftline.grafana.live import GrafanaLive
from driftline.kafka_security import KafkaSecurity
from driftline.metrics.profiles import ReferenceProfile
from driftline.metrics.rows import MetricRow, SketchRow
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.sinks.profiles import load_profiles, store_profile
from driftline.streams import window_parts
from driftline.streams.alert_job import AlertingAgent
from driftline.streams.checkpoints import CheckpointStore, signing_key
from driftline.streams.consumer import BatchConsumer
from driftline.streams.engine_checkpoint import EngineCheckpointer
from driftline.streams.ingest import BatchIngestor, tune_blas, tune_gc
from driftline.streams.labeling_requests import LabelingRequester, request_store
from driftline.streams.logs import logging_config
from driftline.streams.monitor import MonitoringEngine
from driftline.streams.observability import CONTENT_TYPE, WorkerMetrics
from driftline.streams.quality_job import QualityJob
from driftline.streams.shadow_job import ShadowJob
from driftline.streams.topics import TOPICS
from driftline.streams.window_parts import PartsMerger
from driftline.values import Secret

log = logging.getLogger(__name__)


def _json(body: Any, status: int = 200) -> web.Response:
    """A JSON response with no NaN or Infinity (null instead)."""
    return web.json_response(body, status=status, dumps=strict_dumps)


def faust_credentials(security: KafkaSecurity) -> Any:
    """Faust's ``broker_credentials`` for the TLS/SASL settings (None for plaintext)."""
    if security.sasl:
        return faust.SASLCredentials(
            username=security.username,
            password=security.password.get(),
            ssl_context=security.ssl_context(),
            mechanism=security.sasl_mechanism,
        )
    if security.tls:
        return faust.SSLCredentials(security.ssl_context())
    return None


def faust_app(settings: Settings) -> faust.App:
    """The Faust app of a worker: broker, web server, topic defaults."""
    datadir = Path(settings.data_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    # Faust's own consumer group (its leader-election topic) is per ingest group: workers of one
    # deployment share it, other deployments on the same cluster never join it. On the embedded
    # broker, a group that had two members stalled the next member's join for minutes (seen in CI).
    return faust.App(
        f"driftline-{settings.group_id}",
        broker=f"kafka://{settings.broker}",
        datadir=str(datadir),
        store="memory://",
        web_enabled=True,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port or 6066,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        broker_session_timeout=10,
        producer_max_request_size=16 * 1024 * 1024,
        broker_credentials=faust_credentials(settings.kafka),
    )


@dataclass
class Jobs:
    """What the ingest task builds once ClickHouse is reachable; the timers and web pages read it."""

    sink: ClickHouseSink
    engine: MonitoringEngine
    checkpoints: CheckpointStore
    alerting: AlertingAgent
    live: GrafanaLive | None
    publisher: MetricsPublisher
    requester: LabelingRequester
    ingestor: BatchIngestor
    quality: QualityJob
    shadow: ShadowJob
    merger: PartsMerger | None = None  # spread models' windows owned here (streams/window_parts.py)


class Worker:
    """One worker process: the Faust app, its topics, its web endpoints and the jobs it runs.

    Faust owns the process (start-up, signals, the web server); this class owns driftline's
    state. Everything that needs ClickHouse is built by the ingest task (`jobs`, None until then),
    so a worker whose database is down still starts and answers ``/health`` and ``/ready``.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.spec = settings.monitor_spec()  # a bad spec fails here, at start-up
        self.app = faust_app(settings)
        self.topics: dict[str, faust.TopicT] = {
            name: self.app.topic(
                settings.topic(name),
                partitions=settings.partitions,
                value_serializer="raw",
                key_serializer="raw",
                compacting=compacted or None,
                internal=True,
            )
            for name, compacted in TOPICS.items()
        }
        self.stream = AlertStream(alerts_token(settings))
        self.metrics = WorkerMetrics(max_ml_series=settings.prometheus_max_series)
        self.jobs: Jobs | None = None
        self.done = asyncio.Event()  # set when the ingest task has closed everything
        self._prediction_partitions: int | None = None  # of the predictions topic, asked once
        self._held: list[int] = []  # the prediction partitions this worker held at the last share sent
        self._register()

    def _register(self) -> None:
        app, settings = self.app, self.settings
        router = app.web.web_app.router  # type: ignore[attr-defined]
        # Raw aiohttp routes: Server-Sent Events need a streaming response, which Faust views do not
        # offer, and Prometheus wants its own content type.
        router.add_get("/alerts/stream", self.stream.handle)
        router.add_get("/metrics", self._prometheus)
        router.add_get("/ready", self._ready)
        router.add_get("/stats", self._stats)
        router.add_get("/alerts/active", self._active_alerts)
        router.add_get("/health", self._health)
        app.task(self._ingest)
        app.timer(interval=float(settings.quality_interval_s))(self._join_labels)
        if settings.review_every_s > 0:
            app.timer(interval=float(settings.review_every_s), on_leader=False)(self._scheduled_review)
        app.on_before_shutdown.connect(self._finish_batch)  # type: ignore[arg-type]  # mode types handlers loosely

    # -- web -----------------------------------------------------------------------------------

    async def _prometheus(self, request: web.Request) -> web.Response:
        # In a thread: the consumer-lag gauge asks the broker for committed offsets and watermarks.
        body = await asyncio.to_thread(self.metrics.exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def _ready(self, request: web.Request) -> web.Response:
        # ready = consuming, partitions assigned, a broker that answers, ClickHouse writes that succeed
        reason = await self.jobs.ingestor.readiness() if self.jobs else "starting"
        body: dict[str, Any] = {"ready": not reason, **({"reason": reason} if reason else {})}
        return _json(body, status=503 if reason else 200)

    async def _stats(self, request: web.Request) -> web.Response:
        jobs = self.jobs
        if jobs is None:
            return _json({"starting": True, "ready": False, "assigned": []})
        body: dict[str, Any] = jobs.ingestor.stats.as_dict()
        body["metric_rows"] = jobs.publisher.rows
        body["dropped_late"] = jobs.engine.dropped_late()
        body["labeling_requests"] = jobs.requester.requested
        if jobs.merger is not None:  # spread models' windows owned here (window_parts.py)
            body["windows_merged"] = jobs.merger.windows_merged
            body["windows_pending"] = len(jobs.merger.pending)
            body["windows_timed_out"] = jobs.merger.windows_timed_out
        if jobs.ingestor.checkpoints is not None:
            body["engine_snapshots"] = getattr(jobs.ingestor.checkpoints, "saved", 0)
        body["ready"] = jobs.ingestor.ready.is_set()
        consumer = jobs.ingestor.consumer
        body["assigned"] = sorted(f"{tp.topic}/{tp.partition}" for tp in consumer.assignment()) if consumer else []
        return _json(body)

    async def _active_alerts(self, request: web.Request) -> web.Response:
        # Same bearer token as the stream: this shows alerts, decisions and subscriptions.
        if not self.stream.authorized(request):
            return unauthorized()
        if self.jobs is None:
            return _json({"starting": True})
        alerting = self.jobs.alerting
        return _json(
            {
                "firing": alerting.evaluator.firing(),
                "silences": [s.as_dict() for s in alerting.dispatcher.silences.all()],
                "subscriptions": [s.as_dict() for s in alerting.dispatcher.subscriptions.values()],
                "decisions": [d.as_dict() for d in alerting.decisions[-20:]],
                "notifications": alerting.attempts,
            }
        )

    async def _health(self, request: web.Request) -> web.Response:
        return _json({"ok": True})

    # -- the ingest task -------------------------------------------------------------------------

    async def _publish_alert(self, kind: str, body: dict[str, Any]) -> None:
        model = str(body.get("model") or body.get("labels", {}).get("model", ""))
        await self.topics["alerts"].send(key=model.encode(), value=msgspec.json.encode({"kind": kind, **body}))
        self.metrics.messages_out.labels(self.settings.topic("alerts")).inc()

    async def _send_request(self, key: bytes, value: bytes) -> None:
        await self.topics["labeling"].send(key=key, value=value)

    async def _build_jobs(self) -> Jobs:
        settings, spec = self.settings, self.spec
        sink = ClickHouseSink(settings)
        applied = sink.migrate()
        if applied:
            log.warning("applied ClickHouse migrations %s", applied)
        profiles = load_profiles(sink.client, settings.clickhouse_database)
        checkpoints = CheckpointStore(
            sink.client,
            settings.clickhouse_database,
            settings.group_id,
            signing_key(settings, settings.checkpoint_key.get()),
        )
        engine = MonitoringEngine(
            spec,
            reference_events=settings.monitor_reference_events,
            profiles={(p.model, p.version): p for p in profiles},
            checkpoints=checkpoints.take,
        )
        alerting = AlertingAgent(
            spec,
            store=AlertStore(sink.client, settings.clickhouse_database),
            publish=self._publish_alert,
            stream=self.stream,
            control=ControlClient(settings.broker, settings.topic("control"), security=settings.kafka),
            metrics=self.metrics,
        )
        await alerting.start()
        live = GrafanaLive(settings.grafana_live_url, settings.grafana_token) if settings.grafana_live_url else None
        publisher = MetricsPublisher(sink, self.topics["metrics"], alerting.observe, self.metrics, live)
        requester = LabelingRequester(
            spec, request_store(sink.client, settings.clickhouse_database), self._send_request
        )
        engine_checkpoints = (
            EngineCheckpointer(engine, checkpoints, settings.topic("predictions"), settings.checkpoint_interval_s)
            if settings.checkpoint_interval_s > 0
            else None
        )
        ingestor = BatchIngestor(
            settings,
            sink,
            on_batch=self._on_batch,
            on_columns=self._on_columns,
            metrics=self.metrics,
            before_close=self._save_checkpoint,
            checkpoints=engine_checkpoints,
        )
        self.metrics.lag_from(ingestor.lag)
        quality = QualityJob(sink.client, settings.clickhouse_database, spec, label_ttl_s=settings.label_ttl_s)
        shadow = ShadowJob(sink.client, settings.clickhouse_database, spec)
        merger = None
        if any(m.spread for m in (spec.defaults, *spec.models.values())):
            parts = BatchConsumer(
                settings.broker,
                f"{settings.group_id}.{window_parts.TOPIC}",
                [settings.topic(window_parts.TOPIC)],
                librdkafka=settings.kafka.librdkafka_config(),
            )
            await parts.start()
            merger = PartsMerger(engine, parts, publisher.publish, written=partial(_window_written, sink))
        return Jobs(sink, engine, checkpoints, alerting, live, publisher, requester, ingestor, quality, shadow, merger)

    async def _on_batch(self, predictions: Sequence[Prediction], _labels: Any) -> None:
        jobs = self._running()
        rows = jobs.engine.update(predictions)
        await self._store_profiles(jobs)
        await self._send_parts(jobs)
        await jobs.publisher.publish(rows, jobs.engine.take_sketches())
        await jobs.requester.publish(jobs.requester.select(predictions))

    async def _on_columns(self, envelopes: Sequence[ColumnarEvents]) -> None:
        # columnar envelopes: the engine reads their columns
        jobs = self._running()
        rows = jobs.engine.update_columns(envelopes)
        await self._store_profiles(jobs)
        await self._send_parts(jobs)
        await jobs.publisher.publish(rows, jobs.engine.take_sketches())
        await jobs.requester.publish(jobs.requester.select_columns(envelopes))

    async def _send_parts(self, jobs: Jobs) -> None:
        """Spread models: this worker's shares of the windows its watermark passed, to their owners,
        acknowledged before the engine snapshot that forgets them is saved (window_parts.py)."""
        parts = jobs.engine.take_parts()
        if not parts:
            return
        consumer = jobs.ingestor.consumer
        topic = self.settings.topic("predictions")
        if consumer is not None:  # at shutdown it is closed: the shares are of the partitions held last
            if self._prediction_partitions is None:
                self._prediction_partitions = await asyncio.to_thread(consumer.partition_count, topic)
            self._held = [tp.partition for tp in consumer.assignment() if tp.topic == topic]
        if self._prediction_partitions is None:
            log.error("%d window shares not sent: the predictions topic was never read", len(parts))
            return
        sent = []
        for part in parts:
            key, value = window_parts.encode_share(part, self._held, self._prediction_partitions)
            sent.append(await self.topics[window_parts.TOPIC].send(key=key, value=value))
        await asyncio.gather(*sent)

    async def _merge_windows(self, jobs: Jobs) -> None:
        """The windows of spread models owned here: merged as their shares come in, until the worker stops."""
        merger = jobs.merger
        assert merger is not None
        while not jobs.ingestor.stopping:
            try:
                await merger.step()
            except Exception:  # a failed step is retried; its shares are not committed, so not lost
                log.exception("merging window shares failed; retrying")
                await asyncio.sleep(1.0)

    async def _store_profiles(self, jobs: Jobs) -> None:
        """Reference profiles the engine built from versions' first events, stored the moment they exist."""
        source = f"auto:first {self.settings.monitor_reference_events} events"

        def write(profile: ReferenceProfile) -> None:
            store_profile(jobs.sink.client, self.settings.clickhouse_database, profile, source)

        for profile in jobs.engine.take_profiles():
            await jobs.publisher.store(write, profile)

    async def _save_checkpoint(self) -> None:
        jobs = self._running()
        try:
            await asyncio.to_thread(jobs.checkpoints.save, jobs.engine.checkpoint())
        except SinkError as exc:  # the open windows will be computed from the events after the restart
            log.error("engine checkpoint not saved: %s", exc)

    def _running(self) -> Jobs:
        if self.jobs is None:
            raise RuntimeError("the worker's jobs are not built yet")
        return self.jobs

    async def _ingest(self) -> None:
        for topic in self.topics.values():
            await topic.maybe_declare()
        jobs = self.jobs = await self._build_jobs()
        merging = asyncio.ensure_future(self._merge_windows(jobs)) if jobs.merger is not None else None
        try:
            await jobs.ingestor.run()
            # open windows, marked complete=0
            await jobs.publisher.publish(jobs.engine.flush(), jobs.engine.take_sketches())
            await self._send_parts(jobs)
            if merging is not None and jobs.merger is not None:
                await merging
                await jobs.merger.consumer.close()
            await jobs.requester.publish(jobs.requester.flush())
            await jobs.publisher.publish(await asyncio.to_thread(jobs.quality.run_once))  # labels that came last
        finally:
            if merging is not None and not merging.done():  # ingest failed: the merges stop with it
                merging.cancel()
            self.stream.close()
            await jobs.alerting.stop()
            if jobs.live is not None:
                await jobs.live.close()
            jobs.sink.close()
            self.done.set()

    # -- timers ----------------------------------------------------------------------------------

    async def _join_labels(self) -> None:
        """Quality and fairness of windows that received labels, and shadow comparisons, since the last run."""
        jobs = self.jobs
        if jobs is None or jobs.ingestor.stopping:
            return
        for job in (jobs.quality, jobs.shadow):
            try:
                rows = await asyncio.to_thread(job.run_once)
            except Exception:  # a failed run is retried by the next tick; the job keeps its watermark
                log.exception("%s failed; retrying at the next interval", type(job).__name__)
                continue
            await jobs.publisher.publish(rows)

    async def _scheduled_review(self) -> None:
        """Every review_every_s: a review of each model over the last period, written and announced."""
        from driftline.reports.review_job import review_all

        if self.jobs is not None:
            settings = self.settings
            await review_all(
                self.jobs.sink.client,
                settings.clickhouse_database,
                float(settings.review_every_s),
                settings.data_path / "reviews",
                self.jobs.alerting.announce,
            )

    async def _finish_batch(self, app: faust.App, **kwargs: Any) -> None:
        # Runs before Faust cancels its tasks: let the batch in flight reach ClickHouse and commit.
        if self.jobs is not None:
            self.jobs.ingestor.stop()
            try:
                await asyncio.wait_for(self.done.wait(), timeout=60)
            except TimeoutError:
                log.error("ingest did not finish its last batch within 60s; it will be replayed")


def create_app(settings: Settings) -> faust.App:
    """Build the worker app for these settings (the `Worker` stays reachable as ``app.driftline``)."""
    worker = Worker(settings)
    worker.app.driftline = worker  # type: ignore[attr-defined]
    return worker.app


class MetricsPublisher:
    """Stores metric rows in ClickHouse (retrying while it is down) and sends them to the metrics topic."""

    def __init__(
        self,
        sink: ClickHouseSink,
        topic: faust.TopicT,
        then: Callable[[list[MetricRow]], Awaitable[None]] | None = None,
        metrics: WorkerMetrics | None = None,
        live: GrafanaLive | None = None,
    ):
        self.sink = sink
        self.topic = topic
        self.metrics = metrics
        self.live = live
        self.then = then  # the alerting agent: alerts only for numbers that are stored
        self.rows = 0

    async def publish(self, rows: list[MetricRow], sketches: Sequence[SketchRow] = ()) -> None:
        """Store `rows` (and the windows' drift sketches), then publish and alert on them."""
        if sketches:
            await self._store(self.sink.write_sketches, sketches)
        if not rows:
            return
        await self._store(self.sink.write_metrics, rows)
        for row in rows:
            await self.topic.send(key=row.model.encode(), value=_encode_row(row))
        self.rows += len(rows)
        if self.metrics is not None:
            self.metrics.rows(rows)
            self.metrics.messages_out.labels(self.topic.get_topic_name()).inc(len(rows))
        if self.live is not None:
            self.live.publish(rows)
        if self.then is not None:
            await self.then(rows)

    async def store(self, write: Callable[[Any], None], item: Any) -> None:
        """Write `item` with `write`, retrying while ClickHouse is down (as metric rows are)."""
        await self._store(write, item)

    async def _store(self, write: Callable[[Any], None], items: Any) -> None:
        delay = 0.2
        while True:
            try:
                await asyncio.to_thread(write, items)
                return
            except SinkError as exc:
                log.warning("metrics not stored, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def alerts_token(settings: Settings) -> Secret:
    """DRIFTLINE_ALERTS_TOKEN, or one made up once and kept (mode 600) in the data dir for local use."""
    if settings.alerts_token:
        return settings.alerts_token
    path = Path(settings.data_dir) / "alerts-token"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24))
        log.warning("alert stream token written to %s (set DRIFTLINE_ALERTS_TOKEN to choose one)", path)
    return Secret(path.read_text().strip())


def _window_written(sink: ClickHouseSink, model: str, version: str, start: float) -> bool:
    """Whether complete rows of this window are stored (so late shares of it are a replay: window_parts.py)."""
    rows = sink.client.query(
        f"SELECT count() FROM {sink.database}.metrics WHERE model = {{m:String}} AND version = {{v:String}}"
        " AND family = 'volume' AND complete = 1 AND toUnixTimestamp(window_start) = {s:UInt32}",
        parameters={"m": model, "v": version, "s": int(start)},
    ).result_rows
    return bool(rows and rows[0][0])


def _encode_row(row: MetricRow) -> bytes:
    return msgspec.json.encode(dataclasses.asdict(row))


def run_worker(settings: Settings, loglevel: str = "warn", log_format: str = "text") -> None:
    """Run the worker in this process until SIGINT/SIGTERM; `log_format` "json" gives one JSON object per line."""
    tune_gc()
    tune_blas()
    app = create_app(settings)
    level = {"crit": "critical", "warn": "warning"}.get(loglevel, loglevel)
    config = logging_config(level) if log_format == "json" else None
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, logging_config=config, redirect_stdouts=False)
    if not sys.stdout.isatty():
        # Faust's spinner writes cursor hide/show escapes and backspaces even to a file or a pipe.
        worker.spinner = None
    worker.execute_from_commandline()
