"""Webhook delivery: Alertmanager v4 payloads, Standard Webhooks signatures, retries.

The body is the Alertmanager webhook payload (``version: "4"``), so receivers written for
Alertmanager work unchanged; driftline's own fields are under ``driftline``. Each delivery
is signed as in the Standard Webhooks spec: ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{webhook-id}.{webhook-timestamp}.{body}">`` with the subscription's secret (``whsec_`` +
base64 key). Retries keep the same ``webhook-id`` (receivers deduplicate on it), back off
exponentially with full jitter, honour ``Retry-After``, and stop at an overall deadline;
a 4xx other than 408 and 429 is permanent.

>>> secret, now = "whsec_" + base64.b64encode(b"k" * 24).decode(), int(time.time())
>>> sig = sign(secret, "msg_1", now, b'{"a":1}')
>>> verify(secret, "msg_1", str(now), b'{"a":1}', sig), verify(secret, "msg_1", str(now), b'{"a":2}', sig)
(True, False)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec

from driftline.alerts.dispatcher import Notification
from driftline.alerts.evaluator import AlertEvent
from driftline.alerts.subscriptions import SECRET_PREFIX, Subscription

log = logging.getLogger(__name__)
USER_AGENT = "driftline-webhook/1"


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one delivery."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, msg_id: str, timestamp: str, body: bytes, header: str, tolerance_s: float = 300) -> bool:
    """What a receiver does: check one of the space-separated v1 signatures, and the timestamp's age.

    False for anything malformed (a timestamp that is no integer, headers that are not strings or
    not ASCII, a secret that is not base64), never an exception: a receiver calls this on input
    from the network.
    """
    try:
        if abs(time.time() - int(timestamp)) > tolerance_s:
            return False
        expected = sign(secret, msg_id, int(timestamp), body).split(",", 1)[1].encode()
        return any(
            hmac.compare_digest(sig.split(",", 1)[1].encode(), expected)
            for sig in header.split()
            if sig.startswith("v1,")
        )
    except (ValueError, TypeError, AttributeError, UnicodeError, binascii.Error, OverflowError):
        return False


def _rfc3339(ts: float) -> str:
    if ts <= 0:
        return "0001-01-01T00:00:00Z"  # Alertmanager's "not ended" value
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        out = {k: v for k, v in out.items() if d.get(k) == v}
    return out


def payload(notification: Notification, external_url: str = "") -> dict[str, Any]:
    """The Alertmanager v4 webhook body, plus driftline's fields."""
    alerts: list[AlertEvent] = list(notification.alerts)
    return {
        "version": "4",
        "groupKey": notification.group_key_text(),
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": notification.subscription.name,
        "groupLabels": notification.group_labels,
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "alerts": [
            {
                "status": a.state,
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": _rfc3339(a.starts_at),
                "endsAt": _rfc3339(a.ends_at),
                "generatorURL": external_url,
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
        "driftline": {
            "notification_id": notification.id,
            "subscription_id": notification.subscription.id,
            "alerts": [
                {
                    "fingerprint": a.fingerprint,
                    "value": a.value,
                    "window_start": a.window_start,
                    "window_end": a.window_end,
                }
                for a in alerts
            ],
        },
    }


@dataclass(frozen=True)
class RetryPolicy:
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0
    deadline_s: float = 300.0  # give up on one notification after this long
    attempt_timeout_s: float = 10.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, first * 2^attempt)]."""
        return rng.uniform(0, min(self.max_delay_s, self.first_delay_s * 2**attempt))


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, as stored in ClickHouse and published on the alerts topic."""

    notification_id: str
    subscription_id: str
    subscription: str
    group_key: str
    attempt: int
    at: float
    status: str  # delivered | retrying | failed
    http_status: int
    error: str
    duration_ms: float
    alerts: int


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


async def deliver(
    session: aiohttp.ClientSession,
    notification: Notification,
    *,
    policy: RetryPolicy = RetryPolicy(),
    on_attempt: Callable[[Attempt], Awaitable[None] | None] | None = None,
    external_url: str = "",
    rng: random.Random | None = None,
) -> bool:
    """POST one notification until it is accepted, permanently refused, or the deadline passes."""
    body = msgspec.json.encode(payload(notification, external_url))
    return await _post(
        session,
        notification.subscription,
        notification.id,
        body,
        notification.group_key_text(),
        len(notification.alerts),
        policy,
        on_attempt,
        rng or random.Random(),
    )


async def deliver_event(
    session: aiohttp.ClientSession,
    subscription: Subscription,
    event_type: str,
    data: dict[str, Any],
    *,
    policy: RetryPolicy = RetryPolicy(),
    on_attempt: Callable[[Attempt], Awaitable[None] | None] | None = None,
    rng: random.Random | None = None,
) -> bool:
    """POST an event that is not an alert (e.g. ``review.published``), signed and retried the same way.

    Body as Standard Webhooks suggests: ``{"type": ..., "timestamp": ..., "data": {...}}``.
    """
    msg_id = "msg_" + hashlib.sha256(msgspec.json.encode([subscription.id, event_type, data])).hexdigest()[:24]
    body = msgspec.json.encode({"type": event_type, "timestamp": _rfc3339(time.time()), "data": data})
    return await _post(session, subscription, msg_id, body, event_type, 0, policy, on_attempt, rng or random.Random())


async def _post(
    session: aiohttp.ClientSession,
    sub: Subscription,
    msg_id: str,
    body: bytes,
    group_key: str,
    alerts: int,
    policy: RetryPolicy,
    on_attempt: Callable[[Attempt], Awaitable[None] | None] | None,
    rng: random.Random,
) -> bool:
    started = time.monotonic()
    attempt = 0
    while True:
        ts = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(sub.secret.get(), msg_id, ts, body),
        }
        t0 = time.monotonic()
        status, error, retry_after = 0, "", None
        remaining = policy.deadline_s - (t0 - started)
        try:
            timeout = aiohttp.ClientTimeout(total=max(0.1, min(policy.attempt_timeout_s, remaining)))
            async with session.post(sub.url, data=body, headers=headers, timeout=timeout) as resp:
                status = resp.status
                await resp.read()
                retry_after = _retry_after(resp.headers.get("Retry-After"), time.time())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
        ok = 200 <= status < 300
        permanent = 400 <= status < 500 and status not in (408, 429)
        elapsed = time.monotonic() - started
        delay = retry_after if retry_after is not None else policy.backoff(attempt, rng)
        out_of_time = elapsed + delay >= policy.deadline_s
        outcome = "delivered" if ok else ("failed" if permanent or out_of_time else "retrying")
        if not error and not ok:
            error = f"HTTP {status}"
        record = Attempt(
            msg_id,
            sub.id,
            sub.name,
            group_key,
            attempt + 1,
            time.time(),
            outcome,
            status,
            error,
            (time.monotonic() - t0) * 1000,
            alerts,
        )
        if on_attempt is not None:
            result = on_attempt(record)
            if result is not None:
                await result
        if outcome != "retrying":
            if outcome == "failed":
                log.warning("webhook %s (%s): gave up after %d attempt(s): %s", sub.name, sub.id, attempt + 1, error)
            return ok
        await asyncio.sleep(delay)
        attempt += 1
