"""The demo's rollout part: registry set-up, a local webhook receiver, and the alert timeline at the end."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from driftline.alerts.subscriptions import Subscription
from driftline.alerts.webhook import verify
from driftline.config import Settings
from driftline.control import ControlClient
from driftline.models.routing import RoutingClient


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 that checks every signature, as a team's receiver would."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/driftline"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verified(self, secret: str) -> int:
        return sum(verify(secret, h["webhook-id"], h["webhook-timestamp"], b, h["webhook-signature"])
                   for h, b in self.received)  # fmt: skip

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def set_up(settings: Settings, model: str) -> tuple[RoutingClient, WebhookReceiver, Subscription]:
    """v1 in production, v2 as a 10 % canary, a subscription for the receiver; a routing client following it."""
    control = ControlClient(settings.broker, settings.topic("control"))
    now = time.time()
    try:
        control.change_model(model, lambda s: s.register("v1", "production", by="demo", reason="trained on 4,000",
                                                         now=now))  # fmt: skip
        control.change_model(model, lambda s: s.register("v2", "canary", weight=10, by="demo",
                                                         reason="retrained on 600 examples", now=now))  # fmt: skip
        receiver = WebhookReceiver()
        sub = Subscription.create("demo-receiver", receiver.url, created_by="demo", now=now)
        control.put_subscription(sub)
    finally:
        control.close()
    router = RoutingClient(settings.broker, model, topic=settings.topic("control"), poll_interval_s=0.1)
    return router, receiver, sub


def timeline(client: Any, database: str, model: str) -> dict[str, Any]:
    """Alert state changes and rollout decisions, in event-time order, from ClickHouse."""
    alerts = client.query(
        f"""SELECT toUnixTimestamp64Milli(window_end) / 1000, state, severity, alertname, version,
                   annotations['summary']
            FROM {database}.alert_events FINAL WHERE model = {{m:String}} AND state != 'pending'
            ORDER BY window_end, at""",
        parameters={"m": model},
    ).result_rows
    decisions = client.query(
        f"""SELECT toUnixTimestamp64Milli(window_end) / 1000, action, canary, weight_before, weight_after,
                   failed_checks, reason
            FROM {database}.rollout_decisions FINAL WHERE model = {{m:String}} ORDER BY window_end, at""",
        parameters={"m": model},
    ).result_rows
    registry = client.query(
        f"""SELECT revision, action, changed_version, changed_by, reason FROM {database}.model_registry FINAL
            WHERE model = {{m:String}} ORDER BY revision""",
        parameters={"m": model},
    ).result_rows
    notifications = dict(
        client.query(f"SELECT status, count() FROM {database}.alert_notifications FINAL GROUP BY status").result_rows
    )
    return {"alerts": alerts, "decisions": decisions, "registry": registry, "notifications": notifications}


def _hm(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M")


def print_timeline(t: dict[str, Any], received: int, verified: int) -> None:
    print("\nalert timeline (window end, UTC):")
    for end, state, severity, name, version, summary in t["alerts"]:
        print(f"  {_hm(end)}  {state.upper():<9}{severity:<9}{name:<18}{version:<4} {summary}")
    moves = [d for d in t["decisions"] if d[1] != "hold"]
    print(f"\ncanary analysis: {len(t['decisions'])} intervals analysed; decisions other than hold:")
    for end, action, canary, before, after, failed, reason in moves:
        print(f"  {_hm(end)}  {action.upper():<16}{canary} weight {before:g} -> {after:g} % "
              f"(failed intervals {failed}): {reason}")  # fmt: skip
    print("registry history: " + "; ".join(f"r{rev} {action} {version} by {by}" for rev, action, version, by, _ in
                                           t["registry"]))  # fmt: skip
    sent = ", ".join(f"{k} {v}" for k, v in sorted(t["notifications"].items()))
    print(f"webhook notifications: {received} received by the demo's receiver, {verified} with a valid signature "
          f"(attempts: {sent or 'none'})")  # fmt: skip
