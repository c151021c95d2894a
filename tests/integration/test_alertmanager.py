"""Issue 19.1: driftline's alerts in the Alertmanager a team already runs: the real binary (Debian's
`prometheus-alertmanager`) on loopback. An alert appears in Alertmanager's API, reaches the webhook
receiver configured *in Alertmanager*, is re-sent while it fires, and resolves."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from driftline.alerts.rules import AlertmanagerConfig
from driftline.dev.broker import free_port
from driftline.streams.alert_job import AlertingAgent
from driftline.streams.observability import WorkerMetrics
from tests.integration.loopback_service import start_ready
from tests.integration.test_webhooks_and_stream import Receiver, psi, spec, wait_for

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(
    BINARY is None,
    reason="Alertmanager is not installed (.ci/run installs Debian's: apt-get install prometheus-alertmanager)",
)


def start_alertmanager(tmp_path: Path, hook: str) -> tuple[subprocess.Popen[bytes], str]:
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n"
        "  receiver: hook\n"
        "  group_by: [alertname, model]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: hook\n"
        "    webhook_configs:\n"
        f"      - url: {hook}\n"
        "        send_resolved: true\n"
    )
    port = free_port()
    assert BINARY is not None
    url = f"http://127.0.0.1:{port}"
    proc = start_ready(
        [
            BINARY,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no HA gossip: one instance, loopback only
        ],
        url,
        tmp_path / "alertmanager.log",
    )
    return proc, url


def am_alerts(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as r:
        alerts: list[dict[str, Any]] = json.loads(r.read())
    return alerts


def test_alerts_reach_alertmanager_its_receiver_and_resolve(tmp_path: Path) -> None:
    async def main() -> None:
        receiver = Receiver([])
        base = await receiver.start()
        proc, am = start_alertmanager(tmp_path, f"{base}/hook")
        config = AlertmanagerConfig((am,), resend_s=1.0, external_url="http://grafana.example:3000")
        metrics = WorkerMetrics()
        agent = AlertingAgent(spec(alertmanagers=config), metrics=metrics)
        await agent.start()
        try:
            await agent.observe([psi(0, 0.5)])

            def listed() -> list[dict[str, Any]]:
                return [a for a in am_alerts(am) if a["labels"].get("alertname") == "Drift"]

            await wait_for(lambda: bool(listed()), timeout=20)
            (alert,) = listed()
            assert alert["status"]["state"] == "active"
            assert alert["labels"] == {
                "alertname": "Drift",
                "model": "loan",
                "version": "v1",
                "family": "drift",
                "metric": "psi",
                "feature": "age",
                "severity": "critical",
            }
            assert alert["annotations"]["summary"] == "PSI 0.50"
            assert alert["generatorURL"] == (
                "http://grafana.example:3000/d/driftline-drift?var-model=loan&var-version=v1&var-feature=age"
            )
            # Alertmanager's own route delivers it to the receiver configured there
            await wait_for(lambda: any(json.loads(b)["status"] == "firing" for _, b in receiver.requests), 20)
            hook = next(json.loads(b) for _, b in receiver.requests if json.loads(b)["status"] == "firing")
            assert hook["receiver"] == "hook" and hook["alerts"][0]["labels"]["feature"] == "age"
            # re-sent while it fires: Alertmanager sees a later endsAt each time
            first_end = alert["endsAt"]
            await wait_for(lambda: listed()[0]["endsAt"] != first_end, timeout=10)
            await agent.observe([psi(1, 0.05)])  # back under the threshold: resolved
            await wait_for(lambda: any(json.loads(b)["status"] == "resolved" for _, b in receiver.requests), 20)
            await wait_for(lambda: not listed(), timeout=10)  # no longer active in Alertmanager
        finally:
            await agent.stop()
            await receiver.runner.cleanup()
            proc.terminate()
            proc.wait(timeout=10)
        posts = metrics.alertmanager_posts.labels("delivered")._value.get()
        assert posts >= 3  # fired, re-sent at least once, resolved

    asyncio.run(main())


def test_an_unreachable_alertmanager_is_retried_and_never_blocks_metrics(tmp_path: Path) -> None:
    async def main() -> None:
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        config = AlertmanagerConfig((dead,), resend_s=2.0, timeout_s=0.5)
        metrics = WorkerMetrics()
        agent = AlertingAgent(spec(alertmanagers=config), metrics=metrics)
        await agent.start()
        try:
            for i in range(20):
                t0 = time.perf_counter()
                await agent.observe([psi(i, 0.5)])
                assert time.perf_counter() - t0 < 0.05
                await asyncio.sleep(0.1)
            await wait_for(lambda: metrics.alertmanager_posts.labels("failed")._value.get() >= 2, timeout=10)
        finally:
            await agent.stop()
        failed = metrics.alertmanager_posts.labels("failed")._value.get()
        assert failed <= 6  # backed off (1 s, 2 s, ...), not a post every 50 ms tick

    asyncio.run(main())
