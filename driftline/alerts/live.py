"""The live alert stream: Server-Sent Events over HTTP, with filters, a bearer token and resume.

``GET /alerts/stream?model=loan&severity=warning&label=team=risk`` with
``Authorization: Bearer <token>`` streams every alert state change (and rollout decision)
that matches, as SSE events whose ``id`` grows monotonically. A client that reconnects
with ``Last-Event-ID`` first gets what it missed from a bounded in-memory buffer.
`tail()` is such a client; ``driftline alerts tail`` prints what it yields.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from driftline.alerts.matchers import Matcher, matches_all, parse_matchers
from driftline.alerts.rules import SEVERITIES
from driftline.events import strict_dumps
from driftline.exceptions import ConfigError, DriftlineError
from driftline.values import Secret

log = logging.getLogger(__name__)
HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class StreamFilter:
    models: tuple[str, ...] = ()
    min_severity: str = "info"
    matchers: tuple[Matcher, ...] = ()

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> StreamFilter:
        getall = getattr(query, "getall", None)
        models = tuple(getall("model", [])) if getall else tuple(filter(None, [query.get("model")]))
        labels = list(getall("label", [])) if getall else list(filter(None, [query.get("label")]))
        severity = str(query.get("severity", "info"))
        if severity not in SEVERITIES:
            raise ConfigError(f"severity {severity!r} is not one of {list(SEVERITIES)}")
        return cls(models, severity, parse_matchers(labels, "label filter"))

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.models and labels.get("model", "") not in self.models:
            return False
        severity = labels.get("severity", "info")
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
        return rank >= SEVERITIES.index(self.min_severity) and matches_all(self.matchers, labels)


class AlertStream:
    """Fans events out to connected SSE clients; keeps the last `buffer` events for resume."""

    def __init__(self, token: Secret, buffer: int = 10_000, client_queue: int = 1_000):
        if not token:
            raise ConfigError("the alert stream needs a token; set DRIFTLINE_ALERTS_TOKEN")
        self.token = token
        self._buffer: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=buffer)
        self._clients: set[tuple[StreamFilter, asyncio.Queue[tuple[int, str, dict[str, Any]] | None]]] = set()
        self._client_queue = client_queue
        self._last_id = 0

    def publish(self, kind: str, data: dict[str, Any]) -> int:
        """Send one event (with `data["labels"]` for filtering) to every matching client; returns its id."""
        event_id = max(self._last_id + 1, time.time_ns() // 1000)  # grows across restarts too
        self._last_id = event_id
        item = (event_id, kind, data)
        self._buffer.append(item)
        labels = data.get("labels", {})
        for flt, queue in list(self._clients):
            if flt.matches(labels):
                try:
                    queue.put_nowait(item)
                except asyncio.QueueFull:  # a client too slow to read: cut it off, it resumes from its last id
                    self._clients.discard((flt, queue))
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)
        return event_id

    def close(self) -> None:
        """End every open stream (at shutdown); clients reconnect and resume elsewhere or later."""
        for _, queue in list(self._clients):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
        self._clients.clear()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def authorized(self, request: web.Request) -> bool:
        """Whether the request carries the stream's bearer token (compared in constant time)."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), self.token.get().encode())

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return unauthorized()
        try:
            flt = StreamFilter.from_query(request.query)
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        last = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
        try:
            last_id = int(last)
        except ValueError:
            return web.json_response({"error": f"Last-Event-ID {last!r} is not an event id"}, status=400)
        queue: asyncio.Queue[tuple[int, str, dict[str, Any]] | None] = asyncio.Queue(self._client_queue)
        client = (flt, queue)
        backlog = [item for item in self._buffer if item[0] > last_id and flt.matches(item[2].get("labels", {}))]
        self._clients.add(client)
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await resp.prepare(request)
        try:
            await resp.write(b"retry: 1000\n\n")
            for old in backlog:
                await resp.write(_frame(*old))
            sent = backlog[-1][0] if backlog else last_id
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_S)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                if item[0] > sent:
                    await resp.write(_frame(*item))
                    sent = item[0]
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(client)
        return resp


def _frame(event_id: int, kind: str, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {strict_dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(frozen=True)
class StreamEvent:
    id: int
    kind: str
    data: dict[str, Any]


def tail(
    url: str,
    token: str,
    *,
    models: tuple[str, ...] = (),
    severity: str = "info",
    labels: tuple[str, ...] = (),
    last_event_id: int = 0,
    reconnect: bool = True,
    max_reconnect_delay_s: float = 10.0,
) -> Iterator[StreamEvent]:
    """Events from a worker's alert stream; reconnects with Last-Event-ID so nothing is missed or repeated."""
    query = urllib.parse.urlencode(
        [("model", m) for m in models] + [("severity", severity)] + [("label", x) for x in labels]
    )
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"alert stream url {url!r} must be http(s)://host:port")
    full = f"{url.rstrip('/')}/alerts/stream?{query}"
    delay = 0.5
    while True:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        request = urllib.request.Request(full, headers=headers)  # noqa: S310 - the scheme is checked above
        if last_event_id:
            request.add_header("Last-Event-ID", str(last_event_id))
        try:
            with urllib.request.urlopen(request, timeout=HEARTBEAT_S * 3) as resp:  # noqa: S310
                delay = 0.5
                for event in _parse(resp):
                    last_event_id = event.id
                    yield event
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 401, 403, 404):
                detail = exc.read().decode(errors="replace")[:300]
                raise DriftlineError(f"alert stream at {url} refused the request (HTTP {exc.code}): {detail}") from None
            log.warning("alert stream: HTTP %s; reconnecting in %.1fs", exc.code, delay)
        except (OSError, TimeoutError) as exc:
            log.warning("alert stream: %s; reconnecting in %.1fs", exc, delay)
        if not reconnect:
            return
        time.sleep(delay)
        delay = min(delay * 2, max_reconnect_delay_s)


def _parse(lines: Any) -> Iterator[StreamEvent]:
    event_id, kind, data = 0, "message", list[str]()
    for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield StreamEvent(event_id, kind, json.loads("\n".join(data)))
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            event_id = int(value)
        elif name == "event":
            kind = value
        elif name == "data":
            data.append(value)


def unauthorized() -> web.Response:
    """401 with the header that says how to authenticate."""
    return web.json_response(
        {"error": "a bearer token is required: Authorization: Bearer <DRIFTLINE_ALERTS_TOKEN>"},
        status=401,
        headers={"WWW-Authenticate": "Bearer"},
    )
