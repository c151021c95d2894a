"""Canary analysis end to end: a real broker, a `driftline worker` process, chdb, routing clients
following the control topic, and a webhook receiver. A degrading canary is rolled back within the
configured number of intervals; a healthy one is stepped up and promoted; routing clients follow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from driftline.alerts.live import tail
from driftline.alerts.subscriptions import Subscription
from driftline.alerts.webhook import verify
from driftline.config import Settings
from driftline.control import ControlClient
from driftline.dev.broker import free_port
from driftline.dev.demo import worker_stats
from driftline.events import Label, Prediction
from driftline.exceptions import DriftlineError
from driftline.models.routing import RoutingClient
from driftline.producer import Producer

pytestmark = pytest.mark.integration
W = 60
WINDOWS, PER_WINDOW = 14, 500
SPEC = """
defaults:
  window: 1m
  allowed_lateness: 0s
  canary: {max_failed_checks: 2, step_weight: 20, max_weight: 60, promote_after: 1, min_samples: 30,
           checks: {accuracy_drop: 0.1, latency_p99_ratio: 5}}
alerts:
  group_wait: 0s
  group_interval: 1s
  rules:
    - {name: AccuracyLow, metric: accuracy, below: 0.7, severity: warning}
"""


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _events(
    model: str, version: str, key: str, ts: float, good: bool, rng: np.random.Generator
) -> tuple[Prediction, Label]:
    y = int(rng.uniform() < 0.5)
    right = rng.uniform() < (0.9 if good else 0.45)
    pred = y if right else 1 - y
    eid = f"{model}-{key}-{ts:.3f}"
    p = Prediction(
        event_id=eid,
        model=model,
        version=version,
        ts=ts,
        prediction=pred,
        score=0.8 if pred else 0.2,
        features={"x": float(rng.normal())},
        latency_ms=float(rng.uniform(1, 3)),
        route="canary" if version == "v2" else "primary",
    )
    return p, Label(event_id=eid, label=y, ts=ts + 1)


def test_bad_canary_rolled_back_good_canary_promoted(settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    settings = settings_factory()
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    control = ControlClient(settings.broker, settings.topic("control"))
    now = time.time()
    for model in ("bad", "good"):
        control.change_model(model, lambda s: s.register("v1", "production", by="test", reason="baseline", now=now))
        control.change_model(model, lambda s: s.register("v2", "canary", weight=20, by="test", reason="try", now=now))
    hook_url = f"http://127.0.0.1:{hook.server_address[1]}/x"
    # a query-string token in the webhook URL, as many receivers take one: it must never be shown
    sub = Subscription.create("hook", f"{hook_url}?token=hook-query-secret", created_by="test", now=now)
    control.put_subscription(sub)
    control.close()

    web = free_port()
    token = "stream-token-" + sub.id
    env = {
        **os.environ,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_GROUP_ID": settings.group_id,  # its own group: a shared one stalls joins on Tansu
        "DRIFTLINE_DATA_DIR": str(tmp_path / "d"),
        "DRIFTLINE_SPEC": str(spec),
        "DRIFTLINE_QUALITY_INTERVAL_S": "1",
        "DRIFTLINE_ALERTS_TOKEN": token,
        "DRIFTLINE_LOGLEVEL": "info",
        "DRIFTLINE_LOG_FORMAT": "json",
    }
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "driftline",
                "worker",
                "--broker",
                settings.broker,
                "--clickhouse",
                f"chdb://{tmp_path}/ch",
                "--web-port",
                str(web),
            ],
            env=env,
            stdout=out,
            stderr=out,
        )
    routers = {
        m: RoutingClient(settings.broker, m, topic=settings.topic("control"), poll_interval_s=0.1)
        for m in ("bad", "good")
    }
    rng = np.random.default_rng(5)
    t0 = float(int(time.time()) // 3600 * 3600 - 3 * 3600)
    share: dict[str, list[float]] = {"bad": [], "good": []}
    sent = 0
    try:
        deadline = time.monotonic() + 120
        while not (worker_stats(web) or {}).get("ready"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with Producer(settings.broker, topic_prefix=settings.topic_prefix) as producer:
            for w in range(WINDOWS):
                for model in ("bad", "good"):
                    canary = 0
                    for i in range(PER_WINDOW):
                        route = routers[model].route(f"user-{i}")
                        canary += route.version == "v2"
                        good = model == "good" or route.version == "v1"
                        p, lab = _events(model, route.version, f"{w}-{i}", t0 + w * W + i * W / PER_WINDOW, good, rng)
                        producer.send(p)
                        producer.send(lab)
                        sent += 1
                    share[model].append(canary / PER_WINDOW)
                producer.flush()
                while (worker_stats(web) or {}).get("predictions") != sent:
                    assert proc.poll() is None and time.monotonic() < deadline + 120, log.read_text()
                    time.sleep(0.1)
                time.sleep(1.3)  # a quality-job run: labels of this window are joined before the next closes
        final = {m: r.state for m, r in routers.items()}
        # /alerts/active asks for the stream's token, and shows subscription URLs without their query
        with pytest.raises(urllib.error.HTTPError, match="401"):
            _get(f"http://127.0.0.1:{web}/alerts/active")
        with pytest.raises(urllib.error.HTTPError, match="401"):
            _get(f"http://127.0.0.1:{web}/alerts/active", token="wrong")
        raw_active = _get(f"http://127.0.0.1:{web}/alerts/active", token=token)
        assert "hook-query-secret" not in raw_active and sub.reveal() not in raw_active
        active = json.loads(raw_active)
        assert [s["url"] for s in active["subscriptions"]] == [hook_url]
        # the live stream on the worker: a token is required; with it, the events so far replay from the buffer
        with pytest.raises(DriftlineError, match="HTTP 401"):
            next(tail(f"http://127.0.0.1:{web}", "wrong", reconnect=False))
        streamed = []
        for event in tail(f"http://127.0.0.1:{web}", token, models=("bad",), severity="critical", reconnect=False):
            streamed.append(event)
            if event.kind == "rollout" and event.data["action"] == "rollback":
                break
    finally:
        for r in routers.values():
            r.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()
        hook.shutdown()

    bad, good = final["bad"], final["good"]
    assert bad.stage_of("v2") == "retired" and bad.production == "v1", bad
    assert (
        bad.change is not None
        and bad.change.by == "canary-analysis"
        and "failed analysis intervals" in bad.change.reason
    )
    assert good.production == "v2" and good.stage_of("v1") == "retired", good
    # routing clients followed: no canary traffic after the rollback, all traffic to v2 after the promotion
    assert share["bad"][0] == pytest.approx(0.2, abs=0.06) and share["bad"][-1] == 0.0
    assert share["good"][0] == pytest.approx(0.2, abs=0.06) and share["good"][-1] == 1.0  # v2 is production
    decisions = [d for d in active["decisions"] if d["model"] == "bad"]
    rollback = [d for d in decisions if d["action"] == "rollback"]
    assert len(rollback) == 1 and rollback[0]["failed_checks"] == 2
    first_fail = min(i for i, d in enumerate(decisions) if d["failed_checks"] >= 1)
    assert decisions.index(rollback[0]) - first_fail == 1  # within max_failed_checks intervals of the first failure
    acc = next(c for c in rollback[0]["checks"] if c["name"] == "accuracy_drop")
    assert acc["status"] == "fail" and acc["primary"] - acc["canary"] > 0.1
    good_actions = [d["action"] for d in active["decisions"] if d["model"] == "good"]
    assert "promote" in good_actions and "rollback" not in good_actions and good_actions.count("step") == 2
    # the webhook receiver got the rollback alert, signed
    alerts = [(h, json.loads(b)) for h, b in _Hook.received]
    names = {a["labels"]["alertname"] for _, body in alerts for a in body["alerts"]}
    assert {"CanaryRolledBack", "AccuracyLow"} <= names
    for h, raw in _Hook.received:
        assert verify(sub.reveal(), h["webhook-id"], h["webhook-timestamp"], raw, h["webhook-signature"])
    assert all(e.data["labels"]["model"] == "bad" and e.data["labels"]["severity"] == "critical" for e in streamed)
    # every state change, attempt and decision on the alerts topic
    kinds = {m["kind"] for m in _read_topic(settings.broker, settings.topic("alerts"))}
    assert kinds == {"alert", "notification", "rollout"}
    # and in ClickHouse
    history = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "alerts",
            "history",
            "--model",
            "bad",
            "--clickhouse",
            f"chdb://{tmp_path}/ch",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "ROLLBACK        v2 weight 20 -> 0 %" in history and "rollback v2 by canary-analysis" in history
    assert "FIRING   critical CanaryRolledBack" in history
    # secrets never reach the log
    text = log.read_text()
    assert sub.reveal() not in text and token not in text
    # structured logs: every line is a JSON object; the rollback carries its model, version and window
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    rollback_logs = [x for x in lines if "rollback" in x["msg"] and x.get("model") == "bad"]
    assert rollback_logs and rollback_logs[0]["version"] == "v2" and "window_start" in rollback_logs[0]


def _read_topic(broker: str, topic: str) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker, group_id=None)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    out = []
    while batch := consumer.poll(timeout_ms=500):
        out.extend(json.loads(r.value) for records in batch.values() for r in records)
    consumer.close()
    return out


def _get(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
        return str(resp.read().decode())
