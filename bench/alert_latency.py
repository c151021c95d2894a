"""Latency of the loop that closes: window close -> webhook delivered, and decision -> routing client.

    python bench/alert_latency.py [--rounds 100]

In one process, on the embedded broker and a chdb engine: the worker's alerting agent
(with its ClickHouse history and the control topic), a webhook receiver on 127.0.0.1, and
a routing client following the control topic. Each round closes one window whose metric
breaches a rule (a new alert) and, separately, one canary window that fails its check so
the canary is rolled back. Measured:

* window close -> webhook received: from handing the window's rows to the agent until the
  receiver has the signed POST (group_wait 0);
* window close -> routing client follows the rollback: until `route()` no longer returns
  the canary.

Baselines in the same run: a bare aiohttp POST to the same receiver, and a bare
kafka-python produce -> consume round trip on the same broker. Target (issue 4): p99 <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from driftline.alerts.rules import AlertingConfig, AlertRule
from driftline.alerts.store import AlertStore
from driftline.alerts.subscriptions import Subscription
from driftline.config import Settings
from driftline.control import ControlClient
from driftline.dev.broker import EmbeddedBroker
from driftline.metrics.rows import MetricRow
from driftline.models.canary_spec import CanarySpec
from driftline.models.routing import RoutingClient
from driftline.sinks.migrations import migrate
from driftline.spec import ModelSpec, MonitorSpec
from driftline.streams.alert_job import AlertingAgent
from driftline.streams.topics import ensure_topics

W = 60.0


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def run(rounds: int, broker: str, tmp: Path, poll_s: float) -> dict[str, list[float]]:
    import clickhouse_connect

    settings = Settings(broker=broker, topic_prefix="bench.", partitions=1)
    await ensure_topics(settings)
    client = clickhouse_connect.get_client(interface="chdb", path=str(tmp / "ch"))
    migrate(client, "bench", 30)
    arrived: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        for a in body["alerts"]:
            arrived.setdefault(a["labels"].get("feature", ""), time.perf_counter())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]

    control = ControlClient(broker, settings.topic("control"), poll_interval_s=poll_s)
    now = time.time()
    control.change_model("m", lambda s: s.register("v1", "production", by="bench", reason="-", now=now))
    sub = Subscription.create("bench", url, created_by="bench", now=now)
    control.put_subscription(sub)
    canary = CanarySpec(max_failed_checks=1, min_samples=1, checks={"latency_p99_ratio": 2.0})
    spec = MonitorSpec(
        defaults=ModelSpec(canary=canary),
        alerts=AlertingConfig(
            rules=(AlertRule("Drift", "psi", above=0.2),),
            group_by=("alertname", "feature"),
            group_wait_s=0.0,
            group_interval_s=0.05,
        ),
    )
    agent = AlertingAgent(spec, store=AlertStore(client, "bench"), control=control, tick_s=0.01)
    await agent.start()
    router = RoutingClient(broker, "m", topic=settings.topic("control"), poll_interval_s=poll_s)
    out: dict[str, list[float]] = {"webhook": [], "routing": [], "raw_post": [], "raw_kafka": []}
    t0 = time.time() // W * W - 10 * 86_400 / 10
    deadline = time.monotonic() + 300
    async with aiohttp.ClientSession() as session:
        for i in range(rounds):
            if time.monotonic() > deadline:
                break
            # baseline: a bare POST
            s = time.perf_counter()
            async with session.post(url, json={"alerts": []}) as resp:
                await resp.read()
            out["raw_post"].append(time.perf_counter() - s)
            # a window closes with a new breaching series
            start = t0 + i * W
            feature = f"f{i}"
            s = time.perf_counter()
            await agent.observe([MetricRow(start, start + W, "m", "v1", "drift", "psi", feature, "", 0.5, 500)])
            while feature not in arrived:
                await asyncio.sleep(0.001)
            out["webhook"].append(arrived[feature] - s)
            # a canary fails its check in the window that closes: rolled back, routing follows
            version = f"c{i}"
            await asyncio.to_thread(control.change_model, "m", _register(version))
            while router.route("k").version != version:
                await asyncio.sleep(0.001)
            rows = [
                MetricRow(start, start + W, "m", v, fam, metric, "", "", value, 500)
                for v, value in (("v1", 1.0), (version, 10.0))
                for fam, metric in (("volume", "predictions"), ("kpi", "latency_p99_ms"))
            ]
            s = time.perf_counter()
            await agent.observe(rows)
            while router.route("k").version == version:
                await asyncio.sleep(0.001)
            out["routing"].append(time.perf_counter() - s)
    print("bare Kafka round trips ...", flush=True)
    out["raw_kafka"] = await asyncio.to_thread(
        _kafka_round_trips, broker, settings.topic("labeling"), len(out["webhook"])
    )
    print("done; stopping", flush=True)
    router.close()
    await agent.stop()
    await runner.cleanup()
    return out


def _register(version: str) -> Any:
    return lambda st: st.register(version, "canary", weight=100, by="bench", reason="-", now=time.time())


def _kafka_round_trips(broker: str, topic: str, n: int) -> list[float]:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    producer = KafkaProducer(bootstrap_servers=broker, linger_ms=0)
    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=None, fetch_max_wait_ms=50)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    while any(consumer.poll(timeout_ms=200).values()):
        pass  # drain what is there
    out = []
    for i in range(n):
        s = time.perf_counter()
        producer.send(topic, key=b"k", value=str(i).encode(), partition=0).get(timeout=10)
        got = False
        while not got:
            got = any(consumer.poll(timeout_ms=50).values())
        out.append(time.perf_counter() - s)
    producer.close()
    consumer.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--poll-interval", type=float, default=0.2, help="the routing client's (its default: 0.2 s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker:
        res = asyncio.run(run(args.rounds, broker.bootstrap, Path(tmp), args.poll_interval))
    print(
        f"\n### alert and rollback latency ({len(res['webhook'])} rounds, routing poll interval "
        f"{args.poll_interval:g} s, {time.strftime('%Y-%m-%d')})\n"
    )
    print("| path | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|")
    rows: list[tuple[str, Any]] = [
        ("window close -> webhook received (driftline)", res["webhook"]),
        ("baseline: bare aiohttp POST to the same receiver", res["raw_post"]),
        ("window close -> routing client follows the rollback (driftline)", res["routing"]),
        ("baseline: bare kafka-python produce -> consume", res["raw_kafka"]),
    ]
    for label, xs in rows:
        print(f"| {label} | {statistics.median(xs) * 1000:.1f} | {pct(xs, 0.99) * 1000:.1f} | {max(xs) * 1000:.1f} |")


if __name__ == "__main__":
    main()
