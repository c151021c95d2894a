"""The demo's rollout part: registry set-up, a local webhook receiver, and the alert timeline at the end."""

from __future__ import annotations

import threading
import time
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
        return sum(
            verify(secret, h["webhook-id"], h["webhook-timestamp"], b, h["webhook-signature"]) for h, b in self.received
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def set_up(settings: Settings, model: str) -> tuple[RoutingClient, WebhookReceiver, Subscription]:
    """v1 in production, v2 as a 10 % canary, a subscription for the receiver; a routing client following it."""
    control = ControlClient(settings.broker, settings.topic("control"), security=settings.kafka)
    now = time.time()
    try:
        control.change_model(
            model, lambda s: s.register("v1", "production", by="demo", reason="trained on 4,000", now=now)
        )
        control.change_model(
            model,
            lambda s: s.register("v2", "canary", weight=10, by="demo", reason="retrained on 600 examples", now=now),
        )
        receiver = WebhookReceiver()
        sub = Subscription.create("demo-receiver", receiver.url, created_by="demo", now=now)
        control.put_subscription(sub)
    finally:
        control.close()
    router = RoutingClient(settings.broker, model, topic=settings.topic("control"), poll_interval_s=0.1)
    return router, receiver, sub


def print_timeline(t: dict[str, Any], received: int, verified: int) -> None:
    from driftline.reports.timeline import timeline_lines

    print()
    for line in timeline_lines(t):
        print(line)
    sent = ", ".join(f"{k} {v}" for k, v in sorted(t["notifications"].items()))
    print(
        f"webhook notifications: {received} received by the demo's receiver, {verified} with a valid signature "
        f"(attempts: {sent or 'none'})"
    )
