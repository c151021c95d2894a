"""The alerting agent: from metric windows to alerts, notifications and canary decisions.

A thin driver around pure parts: the `AlertEvaluator` turns metric rows into alert state
changes, the `Dispatcher` groups them into notifications, `deliver()` posts webhooks in
background tasks (a slow or failing receiver never holds up metrics), the `CanaryAnalyzer`
turns the same rows into rollout decisions that are written to the control topic.
Every state change, notification attempt and decision is stored in ClickHouse, published
on the ``alerts`` topic and streamed to live subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import aiohttp

from driftline.alerts.alertmanager import AlertmanagerForwarder
from driftline.alerts.dispatcher import Dispatcher, Notification
from driftline.alerts.evaluator import AlertEvaluator, AlertEvent, fingerprint
from driftline.alerts.live import AlertStream
from driftline.alerts.store import AlertStore
from driftline.alerts.webhook import Attempt, RetryPolicy, deliver, deliver_event
from driftline.control import ControlClient
from driftline.events import strict_dumps
from driftline.metrics.rows import MetricRow
from driftline.models.canary import CanaryAnalyzer, Decision
from driftline.models.registry import ModelState
from driftline.spec import MonitorSpec
from driftline.streams.logs import context
from driftline.streams.observability import WorkerMetrics

log = logging.getLogger(__name__)
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
ANALYST = "canary-analysis"


class _Stale(Exception):
    """The registry changed since the decision was computed (e.g. a replayed window)."""


class AlertingAgent:
    def __init__(
        self,
        spec: MonitorSpec,
        *,
        store: AlertStore | None = None,
        publish: Publish | None = None,
        stream: AlertStream | None = None,
        control: ControlClient | None = None,
        retry: RetryPolicy | None = None,
        tick_s: float = 0.05,
        clock: Callable[[], float] = time.time,
        metrics: WorkerMetrics | None = None,
    ):
        self.metrics = metrics
        self.spec = spec
        self.store = store
        self.publish_fn = publish
        self.stream = stream
        self.control = control
        self.retry = retry or RetryPolicy()
        self.tick_s = tick_s
        self.evaluator = AlertEvaluator(spec.alerts.rules, clock=clock)
        self.dispatcher = Dispatcher(spec.alerts, clock=clock)
        self.forwarder = AlertmanagerForwarder(spec.alerts.alertmanagers, clock=clock)
        self.analyzer = CanaryAnalyzer({m: s.canary for m, s in spec.models.items()}, spec.defaults.canary)
        self.clock = clock
        self.decisions: list[Decision] = []  # the newest, for /alerts/rollouts and the demo
        self.attempts = {"delivered": 0, "retrying": 0, "failed": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._rollback_alerts: dict[str, AlertEvent] = {}  # fingerprint -> firing CanaryRolledBack
        # Stream windows and label joins arrive from two tasks; one at a time keeps decisions in order.
        self._observing = asyncio.Lock()

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()
        if self.control is not None:
            await asyncio.to_thread(self.control.follow, self._from_control_thread)
            for name, state in list(self.control.state.models.items()):
                self._control_changed("model", name, state)
            for sid, silence in list(self.control.state.silences.items()):
                self._control_changed("silence", sid, silence)
            for sid, sub in list(self.control.state.subscriptions.items()):
                self._control_changed("subscription", sid, sub)
        if self.store is not None:
            await self._restore(self.store)
        self._runner = asyncio.create_task(self._dispatch_forever())

    async def _restore(self, store: AlertStore) -> None:
        """A restarted worker takes back the firing alerts and the notification log (Alertmanager's
        nflog): it sends nothing it had sent already, and the resolutions of what it had announced."""
        try:
            entries = await asyncio.to_thread(store.notification_log)
            alerts = await asyncio.to_thread(store.alerts_to_restore, {fp for e in entries for fp in e.firing})
            firing = await asyncio.to_thread(self.evaluator.restore, alerts, store.series_values)
        except Exception:  # the worker still starts (ClickHouse answered its migrations just before)
            log.exception("alert state not restored from ClickHouse; alerts begin afresh")
            return
        self.dispatcher.restore(alerts, entries)
        self.forwarder.receive(self.evaluator.firing_events())  # Alertmanager hears they still fire
        if firing or entries:
            log.info("restored %d firing alert(s) and %d notification log entries", firing, len(entries))

    async def stop(self, grace_s: float = 5.0) -> None:
        if self._runner is not None:
            self._runner.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace_s)
        for task in self._tasks:
            task.cancel()
        if self._session is not None:
            await self._session.close()
        if self.control is not None:
            await asyncio.to_thread(self.control.close)

    # --- metrics in -------------------------------------------------------------------------

    async def observe(self, rows: list[MetricRow]) -> None:
        async with self._observing:
            events = self.evaluator.observe(rows)
            await self._emit(events)
            await self._analyze(rows)

    async def _emit(self, events: list[AlertEvent]) -> None:
        if not events:
            return
        self.dispatcher.receive(events)
        self.forwarder.receive(events)
        for e in events:
            if self.metrics is not None:
                self.metrics.alerts.labels(e.state, e.severity).inc()
            if self.stream is not None:
                self.stream.publish("alert", e.as_dict())
            await self._publish("alert", e.as_dict())
        if self.store is not None:
            await _retrying(self.store.alert_events, events)

    async def announce(self, kind: str, body: dict[str, Any], labels: dict[str, str]) -> int:
        """Tell everyone who follows alerts about an event that is not an alert (e.g. a published review):
        the `alerts` topic, the live stream, and (signed, retried) the webhooks of matching subscriptions.
        Returns how many subscriptions it was sent to."""
        body = {**body, "labels": labels}  # stream filters and subscriptions match on these
        if self.stream is not None:
            self.stream.publish(kind, body)
        await self._publish(kind, body)
        subs = [s for s in self.dispatcher.subscriptions.values() if s.matches(labels)]
        if self._session is not None:
            for sub in subs:
                self._spawn(
                    deliver_event(
                        self._session,
                        sub,
                        f"{kind}.published",
                        body,
                        policy=self.retry,
                        on_attempt=self._record_attempt,
                    )
                )
        return len(subs)

    async def _publish(self, kind: str, body: dict[str, Any]) -> None:
        if self.publish_fn is not None:
            await self.publish_fn(kind, body)

    # --- notifications ----------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            for notification in self.dispatcher.due():
                task = asyncio.create_task(self._deliver(notification))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            alerts = self.forwarder.due()
            if alerts is not None:
                self._spawn(self._forward(alerts))
            await asyncio.sleep(self.tick_s)

    async def _forward(self, alerts: list[dict[str, Any]]) -> None:
        """Post the active and recently resolved alerts to every Alertmanager; retried on any failure."""
        body = strict_dumps(alerts).encode()
        ok = False
        try:
            ok = await self._post_alerts(body, len(alerts))
        except Exception:  # a bug here must not leave the forwarder waiting for ever
            log.exception("forwarding alerts to Alertmanager crashed")
        finally:
            self.forwarder.sent(ok)

    async def _post_alerts(self, body: bytes, count: int) -> bool:
        assert self._session is not None
        config = self.forwarder.config
        ok = True
        for url in config.urls:
            status = "failed"
            try:
                async with self._session.post(
                    f"{url}/api/v2/alerts",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=config.timeout_s),
                ) as response:
                    if response.status < 300:
                        status = "delivered"
                    else:
                        log.warning(
                            "Alertmanager %s refused %d alert(s): HTTP %d %s",
                            url,
                            count,
                            response.status,
                            (await response.text())[:200],
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("Alertmanager %s unreachable (%s); retrying", url, type(exc).__name__)
            ok = ok and status == "delivered"
            if self.metrics is not None:
                self.metrics.alertmanager_posts.labels(status).inc()
        return ok

    async def _deliver(self, notification: Notification) -> None:
        assert self._session is not None
        ok = False
        try:
            ok = await deliver(self._session, notification, policy=self.retry, on_attempt=self._record_attempt)
        except Exception:  # a bug in one delivery must not stop the others
            log.exception(
                "webhook delivery to %s crashed",
                notification.subscription.name,
                extra=context(subscription=notification.subscription.id),
            )
        finally:
            entry = self.dispatcher.done(notification, ok)
            if entry is not None and self.store is not None:
                await _retrying(self.store.log_notification, entry)

    async def _record_attempt(self, attempt: Attempt) -> None:
        self.attempts[attempt.status] = self.attempts.get(attempt.status, 0) + 1
        if self.metrics is not None:
            self.metrics.webhooks.labels(attempt.status).inc()
        await self._publish("notification", asdict(attempt))
        if self.store is not None:
            await _retrying(self.store.attempts, [attempt])

    # --- control topic (registry, silences, subscriptions) ----------------------------------

    def _from_control_thread(self, kind: str, name: str, obj: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._control_changed, kind, name, obj)

    def _control_changed(self, kind: str, name: str, obj: Any) -> None:
        if kind == "silence":
            if obj is not None:
                self.dispatcher.silences.put(obj)
        elif kind == "subscription":
            if obj is None or obj.deleted:
                self.dispatcher.subscriptions.pop(name, None)
            else:
                self.dispatcher.subscriptions[name] = obj
        elif kind == "model" and obj is not None:
            self._resolve_rollback_alerts(obj)
        if obj is not None and self.store is not None:
            writers: dict[str, Callable[[Any], None]] = {
                "silence": self.store.silence,
                "subscription": self.store.subscription,
                "model": self.store.registry,
            }
            write = writers[kind]
            self._spawn(_retrying(write, obj))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- canary analysis --------------------------------------------------------------------

    async def _analyze(self, rows: list[MetricRow]) -> None:
        self.analyzer.observe(rows)
        if self.control is None:
            return
        for state in list(self.control.state.models.values()):
            for canary, start, end in self.analyzer.windows_to_analyze(state, rows):
                current = self.control.state.models.get(state.model, state)
                decision = self.analyzer.analyze(current, canary, start, end, self._primary_failing(current, end))
                if decision is not None:
                    await self._decide(decision)

    def _primary_failing(self, state: ModelState, window_end: float) -> str:
        """A critical alert on the primary that was already breaching in the analysed window.

        Event time, not wall time: when a backlog is analysed, alerts of later windows are
        firing already and must not judge an earlier one.
        """
        for event in self.evaluator.firing_events():
            labels = event.labels
            if (labels.get("model"), labels.get("version"), labels.get("severity")) == (
                state.model,
                state.production,
                "critical",
            ) and event.starts_at < window_end:
                return f"alert {labels.get('alertname')} firing on {state.production}"
        return ""

    async def _decide(self, d: Decision) -> None:
        assert self.control is not None
        applied = None
        if d.action != "hold":
            try:
                applied = await asyncio.to_thread(
                    self.control.change_model, d.model, lambda s: _apply(s, d, self.clock())
                )
            except _Stale:
                log.info(
                    "canary decision %s for %s %s skipped: the registry changed",
                    d.action,
                    d.model,
                    d.canary,
                    extra=context(model=d.model, version=d.canary, window_end=d.window_end),
                )
                return
        self.decisions = [*self.decisions[-99:], d]
        if self.metrics is not None:
            self.metrics.decisions.labels(d.action).inc()
        body = d.as_dict()
        severity = "critical" if d.action in ("rollback", "refuse_rollback") else "info"
        body["labels"] = {"model": d.model, "version": d.canary, "severity": severity}
        body["revision"] = applied.revision if applied else None
        if self.stream is not None:
            self.stream.publish("rollout", body)
        await self._publish("rollout", body)
        if self.store is not None:
            await _retrying(self.store.decision, d, self.clock())
        if d.action in ("rollback", "refuse_rollback"):
            await self._emit([self._rollout_alert(d)])
        log.warning(
            "canary %s %s: %s (%s)",
            d.model,
            d.canary,
            d.action,
            d.reason,
            extra=context(model=d.model, version=d.canary, window_start=d.window_start, window_end=d.window_end),
        )

    def _rollout_alert(self, d: Decision) -> AlertEvent:
        name = "CanaryRolledBack" if d.action == "rollback" else "CanaryRollbackRefused"
        labels = {
            "alertname": name,
            "model": d.model,
            "version": d.canary,
            "severity": "critical",
            "family": "rollout",
            "metric": d.action,
        }
        event = AlertEvent(
            fingerprint(labels),
            "firing",
            labels,
            {"summary": f"{d.model} {d.canary}: {d.action} at weight {d.weight_before:g} %", "description": d.reason},
            float(d.failed_checks),
            d.window_start,
            d.window_end,
            d.window_start,
            0.0,
            self.clock(),
        )
        self._rollback_alerts[event.fingerprint] = event
        return event

    def _resolve_rollback_alerts(self, state: ModelState) -> None:
        """A rolled-back version that is back in some stage (re-registered) resolves its rollback alert."""
        for fp, event in list(self._rollback_alerts.items()):
            stage = state.stage_of(event.labels["version"])
            if event.model == state.model and stage not in (None, "retired") and not state.locked:
                del self._rollback_alerts[fp]
                resolved = AlertEvent(
                    fp,
                    "resolved",
                    event.labels,
                    event.annotations,
                    event.value,
                    event.window_start,
                    event.window_end,
                    event.starts_at,
                    event.window_end,
                    self.clock(),
                )
                self._spawn(self._emit([resolved]))


def _apply(state: ModelState, d: Decision, now: float) -> ModelState:
    if state.locked or state.production != d.primary:
        raise _Stale
    if d.action == "refuse_rollback":
        return state.lock(by=ANALYST, reason=d.reason, now=now)
    if state.canaries.get(d.canary, 0.0) != d.weight_before:
        raise _Stale
    if d.action == "rollback":
        return state.rollback(d.canary, by=ANALYST, reason=d.reason, now=now)
    if d.action == "promote":
        return state.promote(d.canary, by=ANALYST, reason=d.reason, now=now)
    return state.set_weight(d.canary, d.weight_after, by=ANALYST, reason=d.reason, now=now)


async def _retrying(write: Callable[..., None], *args: Any, attempts: int = 5) -> None:
    """Store history; ClickHouse being briefly away must not lose it nor stop alerting."""
    delay = 0.2
    for i in range(attempts):
        try:
            await asyncio.to_thread(write, *args)
            return
        except Exception as exc:  # noqa: BLE001 - logged; history is best effort after retries
            if i == attempts - 1:
                log.error("could not store alerting history (%s) after %d attempts: %s", write.__name__, attempts, exc)
                return
            await asyncio.sleep(delay)
            delay *= 2
