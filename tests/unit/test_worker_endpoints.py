"""The worker's own endpoints, called in process: /ready during a ClickHouse fault, /alerts/active's token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import make_mocked_request

from driftline.config import Settings
from driftline.streams.worker import Worker
from driftline.values import Secret


def _worker(tmp_path: Path) -> Worker:
    return Worker(Settings(data_dir=str(tmp_path), alerts_token=Secret("s3cret"), topic_prefix="endpoints."))


def _call(handler: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async def main() -> tuple[int, dict[str, Any]]:
        response = await handler(make_mocked_request("GET", "/", headers=headers or {}))
        return response.status, json.loads(response.body)

    return asyncio.run(main())


def _ingestor(reason: str) -> Any:
    async def readiness() -> str:
        return reason

    return SimpleNamespace(readiness=readiness)


def test_ready_answers_503_with_the_reason(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    assert _call(worker._ready) == (503, {"ready": False, "reason": "starting"})  # nothing built yet
    fault = "ClickHouse writes fail and are retried, consumption paused: Code: 243 (NOT_ENOUGH_SPACE)"
    worker.jobs = SimpleNamespace(ingestor=_ingestor(fault))  # type: ignore[assignment]
    assert _call(worker._ready) == (503, {"ready": False, "reason": fault})
    worker.jobs = SimpleNamespace(ingestor=_ingestor(""))  # type: ignore[assignment]
    assert _call(worker._ready) == (200, {"ready": True})


def test_active_alerts_needs_the_stream_token(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    assert _call(worker._active_alerts)[0] == 401
    assert _call(worker._active_alerts, {"Authorization": "Bearer wrong"})[0] == 401
    assert _call(worker._active_alerts, {"Authorization": "Bearer s3cret"}) == (200, {"starting": True})


def test_subscriptions_are_shown_without_their_secrets() -> None:
    from driftline.alerts.subscriptions import Subscription

    # secrets that cannot turn up by chance in the random id (a short "pw" or "abc" sometimes did)
    url = "https://user:Pass-Word-9@hooks.example/x/y?token=Token-Value-7#frag"
    sub = Subscription.create("hook", url, created_by="t", now=0.0)
    shown = json.dumps(sub.as_dict())
    assert "Token-Value-7" not in shown and "Pass-Word-9" not in shown and sub.reveal() not in shown
    assert sub.as_dict()["url"] == "https://hooks.example/x/y"
    assert sub.as_dict(with_secret=True)["url"] == url
