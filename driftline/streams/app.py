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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import faust
import msgspec
from aiohttp import web

from driftline.alerts.stream import AlertStream
from driftline.config import Secret, Settings
from driftline.control import ControlClient
from driftline.exceptions import SinkError
from driftline.grafana.live import GrafanaLive
from driftline.logs import logging_config
from driftline.profile_io import load_profiles
from driftline.sinks.alert_store import AlertStore
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.streams.alerting import AlertingAgent
from driftline.streams.checkpoints import CheckpointStore, signing_key
from driftline.streams.ingest import BatchIngestor, tune_gc
from driftline.streams.labeling_requests import LabelingRequester, request_store
from driftline.streams.monitor import MetricRow, MonitoringEngine, SketchRow
from driftline.streams.observability import CONTENT_TYPE, WorkerMetrics
from driftline.streams.quality_job import QualityJob
from driftline.streams.shadow_job import ShadowJob
from driftline.streams.topics import TOPICS

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> faust.App:
    """Build the worker app for these settings."""
    spec = settings.monitor_spec()  # a bad spec fails here, at start-up
    datadir = Path(settings.data_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    # Faust's own consumer group (its leader-election topic) is per ingest group: workers of one
    # deployment share it, other deployments on the same cluster never join it. On the embedded
    # broker, a group that had two members stalled the next member's join for minutes (seen in CI).
    app = faust.App(
        f"driftline-{settings.group_id}",
        broker=f"kafka://{settings.broker}",
        datadir=str(datadir),
        store="memory://",
        web_enabled=True,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        web_port=settings.web_port or 6066,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        broker_session_timeout=10,
        producer_max_request_size=16 * 1024 * 1024,
    )
    topics = {
        name: app.topic(
            settings.topic(name),
            partitions=settings.partitions,
            value_serializer="raw",
            key_serializer="raw",
            compacting=compacted or None,
            internal=True,
        )
        for name, compacted in TOPICS.items()
    }
    state: dict[str, Any] = {"ingestor": None, "sink": None, "done": asyncio.Event()}
    stream = AlertStream(alerts_token(settings))
    metrics = WorkerMetrics()
    router = app.web.web_app.router  # type: ignore[attr-defined]
    # Raw aiohttp routes: Server-Sent Events need a streaming response, which Faust views do not offer,
    # and Prometheus wants its own content type.
    router.add_get("/alerts/stream", stream.handle)

    async def prometheus(request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def ready(request: web.Request) -> web.Response:
        ingestor = state["ingestor"]
        ok = bool(ingestor and ingestor.ready.is_set() and not ingestor.stopping)
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    router.add_get("/metrics", prometheus)
    router.add_get("/ready", ready)

    async def publish_alert(kind: str, body: dict[str, Any]) -> None:
        model = str(body.get("model") or body.get("labels", {}).get("model", ""))
        await topics["alerts"].send(key=model.encode(), value=msgspec.json.encode({"kind": kind, **body}))
        metrics.messages_out.labels(settings.topic("alerts")).inc()

    @app.task
    async def ingest() -> None:
        for topic in topics.values():
            await topic.maybe_declare()
        sink = ClickHouseSink(settings)
        applied = sink.migrate()
        if applied:
            log.warning("applied ClickHouse migrations %s", applied)
        profiles = load_profiles(sink.client, settings.clickhouse_database)
        checkpoints = CheckpointStore(
            sink.client, settings.clickhouse_database, settings.group_id,
            signing_key(settings, settings.checkpoint_key.get()),
        )  # fmt: skip
        engine = MonitoringEngine(
            spec,
            reference_events=settings.monitor_reference_events,
            profiles={(p.model, p.version): p for p in profiles},
            checkpoints=checkpoints.take,
        )

        async def save_checkpoint() -> None:
            try:
                await asyncio.to_thread(checkpoints.save, engine.checkpoint())
            except SinkError as exc:  # the open windows will be computed from the events after the restart
                log.error("engine checkpoint not saved: %s", exc)

        alerting = AlertingAgent(
            spec,
            store=AlertStore(sink.client, settings.clickhouse_database),
            publish=publish_alert,
            stream=stream,
            control=ControlClient(settings.broker, settings.topic("control")),
            metrics=metrics,
        )
        await alerting.start()
        state["alerting"] = alerting
        live = GrafanaLive(settings.grafana_live_url, settings.grafana_token) if settings.grafana_live_url else None
        publisher = MetricsPublisher(sink, topics["metrics"], alerting.observe, metrics, live)

        async def send_request(key: bytes, value: bytes) -> None:
            await topics["labeling"].send(key=key, value=value)

        requester = LabelingRequester(spec, request_store(sink.client, settings.clickhouse_database), send_request)

        async def on_batch(predictions: Any, _labels: Any) -> None:
            await publisher.publish(engine.update(predictions), engine.take_sketches())
            await requester.publish(requester.select(predictions))

        async def on_columns(envelopes: Any) -> None:  # columnar envelopes: the engine reads their columns
            await publisher.publish(engine.update_columns(envelopes), engine.take_sketches())
            await requester.publish(requester.select_columns(envelopes))

        ingestor = BatchIngestor(
            settings,
            sink,
            on_batch=on_batch,
            on_columns=on_columns,
            metrics=metrics,
            before_close=save_checkpoint,
        )
        metrics.lag_from(ingestor.lag)
        state.update(ingestor=ingestor, sink=sink, engine=engine, publisher=publisher, requester=requester)
        quality = QualityJob(sink.client, settings.clickhouse_database, spec, label_ttl_s=settings.label_ttl_s)
        state["quality"] = quality
        state["shadow"] = ShadowJob(sink.client, settings.clickhouse_database, spec)
        try:
            await ingestor.run()
            await publisher.publish(engine.flush(), engine.take_sketches())  # open windows, marked complete=0
            await requester.publish(requester.flush())
            await publisher.publish(await asyncio.to_thread(quality.run_once))  # labels that came last
        finally:
            stream.close()
            await alerting.stop()
            if live is not None:
                await live.close()
            sink.close()
            state["done"].set()

    @app.timer(interval=float(settings.quality_interval_s))
    async def join_labels() -> None:
        """Quality and fairness of windows that received labels, and shadow comparisons, since the last run."""
        quality, publisher, ingestor = state.get("quality"), state.get("publisher"), state["ingestor"]
        if quality is None or publisher is None or ingestor is None or ingestor.stopping:
            return
        for job in (quality, state["shadow"]):
            try:
                rows = await asyncio.to_thread(job.run_once)
            except Exception:  # a failed run is retried by the next tick; the job keeps its watermark
                log.exception("%s failed; retrying at the next interval", type(job).__name__)
                continue
            await publisher.publish(rows)

    if settings.review_every_s > 0:

        @app.timer(interval=float(settings.review_every_s), on_leader=False)
        async def scheduled_review() -> None:
            """Every review_every_s: a review of each model over the last period, written and announced."""
            from driftline.review_job import review_all

            sink, alerting = state.get("sink"), state.get("alerting")
            if sink is not None and alerting is not None:
                await review_all(sink.client, settings.clickhouse_database, float(settings.review_every_s),
                                 settings.data_path / "reviews", alerting.announce)  # fmt: skip

    @app.page("/stats")
    async def stats(web: Any, request: Any) -> Any:
        ingestor = state["ingestor"]
        body = ingestor.stats.as_dict() if ingestor else {"starting": True}
        if state.get("publisher") is not None:
            body["metric_rows"] = state["publisher"].rows
            body["dropped_late"] = state["engine"].dropped_late()
            body["labeling_requests"] = state["requester"].requested
        body["ready"] = bool(ingestor and ingestor.ready.is_set())
        consumer = ingestor.consumer if ingestor else None
        body["assigned"] = sorted(f"{tp.topic}/{tp.partition}" for tp in consumer.assignment()) if consumer else []
        return web.json(body)

    @app.page("/alerts/active")
    async def active_alerts(web: Any, request: Any) -> Any:
        alerting = state.get("alerting")
        if alerting is None:
            return web.json({"starting": True})
        return web.json(
            {
                "firing": alerting.evaluator.firing(),
                "silences": [s.as_dict() for s in alerting.dispatcher.silences.all()],
                "subscriptions": [s.as_dict() for s in alerting.dispatcher.subscriptions.values()],
                "decisions": [d.as_dict() for d in alerting.decisions[-20:]],
                "notifications": alerting.attempts,
            }
        )

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({"ok": True})

    @app.on_before_shutdown.connect  # type: ignore[untyped-decorator,arg-type]
    async def finish_batch(app: faust.App, **kwargs: Any) -> None:
        # Runs before Faust cancels its tasks: let the batch in flight reach ClickHouse and commit.
        if state["ingestor"] is not None:
            state["ingestor"].stop()
            try:
                await asyncio.wait_for(state["done"].wait(), timeout=60)
            except TimeoutError:
                log.error("ingest did not finish its last batch within 60s; it will be replayed")

    return app


class MetricsPublisher:
    """Stores metric rows in ClickHouse (retrying while it is down) and sends them to the metrics topic."""

    def __init__(
        self,
        sink: ClickHouseSink,
        topic: Any,
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

    async def _store(self, write: Callable[[Any], None], items: Sequence[Any]) -> None:
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


def _encode_row(row: MetricRow) -> bytes:
    return msgspec.json.encode(dataclasses.asdict(row))


def run_worker(settings: Settings, loglevel: str = "warn", log_format: str = "text") -> None:
    """Run the worker in this process until SIGINT/SIGTERM; `log_format` "json" gives one JSON object per line."""
    tune_gc()
    app = create_app(settings)
    level = {"crit": "critical", "warn": "warning"}.get(loglevel, loglevel)
    config = logging_config(level) if log_format == "json" else None
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, logging_config=config, redirect_stdouts=False)
    worker.execute_from_commandline()
