"""Webhooks against a real HTTP receiver on 127.0.0.1, and the live SSE stream with a real client."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from driftline.alerts.live import AlertStream, tail
from driftline.alerts.rules import AlertingConfig, AlertRule
from driftline.alerts.subscriptions import Subscription
from driftline.alerts.webhook import RetryPolicy, verify
from driftline.exceptions import DriftlineError
from driftline.metrics.rows import MetricRow
from driftline.spec import MonitorSpec
from driftline.streams.alert_job import AlertingAgent
from driftline.values import Secret

W = 60.0
T0 = time.time() // W * W - 3600


def psi(i: int, value: float, feature: str = "age") -> MetricRow:
    return MetricRow(T0 + i * W, T0 + (i + 1) * W, "loan", "v1", "drift", "psi", feature, "", value, 500)


class Receiver:
    """An HTTP server whose answers are scripted: a list of (status | 'hang', headers)."""

    def __init__(self, script: list[Any]):
        self.script = list(script)
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(({k.lower(): v for k, v in request.headers.items()}, body))
        action = self.script.pop(0) if self.script else 200
        if action == "hang":
            await asyncio.sleep(5)
            return web.Response(status=200)
        status, headers = (action, {}) if isinstance(action, int) else action
        return web.Response(status=status, headers=headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/{name}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"


def spec(**alerting: Any) -> MonitorSpec:
    cfg = AlertingConfig(
        rules=(AlertRule("Drift", "psi", above=0.2, severity="critical", annotations={"summary": "PSI {value:.2f}"}),),
        group_wait_s=0.0,
        group_interval_s=0.2,
        repeat_interval_s=3600.0,
        **alerting,
    )
    return MonitorSpec(alerts=cfg)


async def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_webhook_retries_through_5xx_timeout_and_429_then_delivers_signed_with_a_stable_id() -> None:
    async def main() -> None:
        receiver = Receiver([503, "hang", (429, {"Retry-After": "0.2"}), 200])
        base = await receiver.start()
        sub = Subscription.create("ops", f"{base}/ops", created_by="test", now=time.time())
        policy = RetryPolicy(first_delay_s=0.05, max_delay_s=0.2, deadline_s=20, attempt_timeout_s=0.5)
        agent = AlertingAgent(spec(), retry=policy)
        agent.dispatcher.subscriptions[sub.id] = sub
        await agent.start()
        try:
            await agent.observe([psi(0, 0.5)])
            # metrics keep flowing while the receiver fails: each observe returns at once
            for i in range(1, 30):
                t0 = time.perf_counter()
                await agent.observe([psi(i, 0.5)])
                assert time.perf_counter() - t0 < 0.05
                await asyncio.sleep(0.02)
            await wait_for(lambda: agent.attempts["delivered"] == 1)
        finally:
            await agent.stop()
            await receiver.runner.cleanup()
        assert len(receiver.requests) == 4
        ids = {h["webhook-id"] for h, _ in receiver.requests}
        assert len(ids) == 1 and next(iter(ids)).startswith("msg_")
        for headers, body in receiver.requests:
            assert verify(
                sub.reveal(), headers["webhook-id"], headers["webhook-timestamp"], body, headers["webhook-signature"]
            )
            assert not verify(
                "whsec_" + "A" * 32,
                headers["webhook-id"],
                headers["webhook-timestamp"],
                body,
                headers["webhook-signature"],
            )
        payload = json.loads(receiver.requests[-1][1])
        assert payload["version"] == "4" and payload["status"] == "firing" and payload["receiver"] == "ops"
        (alert,) = payload["alerts"]
        assert alert["labels"]["alertname"] == "Drift" and alert["annotations"]["summary"] == "PSI 0.50"
        assert alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["startsAt"].endswith("Z")
        assert payload["groupLabels"] == {"alertname": "Drift", "model": "loan"}
        assert agent.attempts == {"delivered": 1, "retrying": 3, "failed": 0}

    asyncio.run(main())


def test_permanent_4xx_is_not_retried_and_healthy_receiver_gets_no_duplicates() -> None:
    async def main() -> None:
        bad, good = Receiver([400] * 10), Receiver([])
        bad_url, good_url = await bad.start(), await good.start()
        subs = [
            Subscription.create(n, f"{u}/{n}", created_by="t", now=0.0)
            for n, u in (("bad", bad_url), ("good", good_url))
        ]
        agent = AlertingAgent(spec(), retry=RetryPolicy(first_delay_s=0.01, deadline_s=5))
        agent.dispatcher.subscriptions = {s.id: s for s in subs}
        await agent.start()
        try:
            await agent.observe([psi(0, 0.5)])
            await wait_for(lambda: len(good.requests) == 1 and len(bad.requests) >= 2)
            await asyncio.sleep(0.3)
            await agent.observe([psi(1, 0.1)])  # resolved
            await wait_for(lambda: len(good.requests) == 2)
            await asyncio.sleep(0.5)
        finally:
            await agent.stop()
            await bad.runner.cleanup()
            await good.runner.cleanup()
        statuses = [json.loads(b)["status"] for _, b in good.requests]
        assert statuses == ["firing", "resolved"]  # exactly once each, despite the other receiver failing
        # each refused notification was tried once (400 is permanent), then again at the next group interval
        # the failing receiver is sent the same message at each flush: the same webhook-id (a receiver
        # that dedups by id processes it once); ids are derived from what a notification says
        assert len(bad.requests) >= 2 and len({h["webhook-id"] for h, _ in bad.requests}) == 1

    asyncio.run(main())


class StreamServer:
    """An AlertStream served by aiohttp on 127.0.0.1 in a background thread."""

    def __init__(self, token: str):
        self.stream = AlertStream(Secret(token))
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/alerts/stream", self.stream.handle)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self.ready.set()
        self.loop.run_forever()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        done = threading.Event()

        def go() -> None:
            self.stream.publish(kind, data)
            done.set()

        self.loop.call_soon_threadsafe(go)
        done.wait(5)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stream.close)
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_stream_needs_the_token_filters_and_resumes_after_reconnect() -> None:
    server = StreamServer("s3cret")
    try:
        with pytest.raises(DriftlineError, match="HTTP 401"):
            next(tail(server.url, "wrong", reconnect=False))
        got: list[Any] = []

        def client(last: int = 0, n: int = 2) -> None:
            for ev in tail(server.url, "s3cret", models=("loan",), severity="warning", last_event_id=last):
                got.append(ev)
                if len(got) >= n:
                    return

        t = threading.Thread(target=client, daemon=True)
        t.start()
        deadline = time.monotonic() + 10
        while server.stream.clients == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.publish("alert", {"labels": {"model": "other", "severity": "critical"}, "n": 0})  # other model
        server.publish("alert", {"labels": {"model": "loan", "severity": "info"}, "n": 1})  # below warning
        server.publish("alert", {"labels": {"model": "loan", "severity": "critical"}, "n": 2})
        server.publish("alert", {"labels": {"model": "loan", "severity": "warning"}, "n": 3})
        t.join(10)
        assert [e.data["n"] for e in got] == [2, 3]
        # while disconnected, more happens; the client resumes from its last id and misses nothing
        server.publish("alert", {"labels": {"model": "loan", "severity": "critical"}, "n": 4})
        server.publish("rollout", {"labels": {"model": "loan", "severity": "critical"}, "n": 5})
        resume_from = got[-1].id
        got.clear()
        client(last=resume_from, n=2)
        assert [(e.kind, e.data["n"]) for e in got] == [("alert", 4), ("rollout", 5)]
        assert got[0].id < got[1].id
    finally:
        server.stop()


def test_grafana_live_push_posts_line_protocol_and_never_blocks() -> None:
    from driftline.grafana.live import GrafanaLive

    async def main() -> None:
        received: list[tuple[str, str, str]] = []
        codes = [204, 500]  # the first push is taken, the second refused

        async def push(request: web.Request) -> web.Response:
            received.append((request.path, request.headers.get("Authorization", ""), await request.text()))
            return web.Response(status=codes.pop(0))

        app = web.Application()
        app.router.add_post("/api/live/push/{stream}", push)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        live = GrafanaLive(url, Secret("glsa_live"))
        rows = [psi(0, 0.5), psi(0, float("nan"), feature="bad"), psi(1, 0.25, feature="a b")]
        t0 = time.perf_counter()
        live.publish(rows)
        assert time.perf_counter() - t0 < 0.01  # returns at once; the POST runs in the background
        await asyncio.sleep(0.5)
        live.publish([psi(2, 0.1)])
        await live.close()
        await runner.cleanup()
        (path, auth, body), _ = received
        assert path == "/api/live/push/driftline" and auth == "Bearer glsa_live"
        lines = body.splitlines()
        assert len(lines) == 2  # NaN has no line-protocol form: left out
        assert lines[0].startswith("driftline_metric,model=loan,version=v1,family=drift,metric=psi,feature=age ")
        assert " value=0.5,n=500i," in lines[0] and lines[0].endswith(f" {round(T0 * 1e9)}")
        assert "feature=a\\ b" in lines[1]
        assert (live.sent, live.failed) == (3, 1)

    asyncio.run(main())
