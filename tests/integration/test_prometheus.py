"""Issue 19.2: the ML signals in Prometheus, for real. Debian's `prometheus` scrapes a worker process on
loopback, and the shipped rule `driftline_drift_share > 0.1` (infra/prometheus/rules) becomes firing in
its /api/v1/alerts once drifted windows close. The shipped configs pass promtool and amtool."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.config import Settings
from driftline.dev.broker import free_port
from driftline.events import Prediction
from driftline.producer import Producer
from tests.integration.loopback_service import start_ready
from tests.integration.test_checkpoints import W, _ingest, _worker

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="Prometheus is not installed (.ci/run installs Debian's: apt-get install prometheus)"
)


def _drifting(t0: float, n: int = 4000) -> list[Prediction]:
    """1,000 reference events, then windows where `x` moved by three standard deviations (`c` did not)."""
    rng = np.random.default_rng(3)
    return [
        Prediction(
            event_id=f"p{i}",
            model="m",
            version="v1",
            ts=t0 + i * (4 * W / n),
            prediction=int(rng.uniform() < 0.3),
            score=float(rng.uniform()),
            features={"x": float(rng.normal(0 if i < 1000 else 3, 1)), "c": str(rng.choice(["a", "b"]))},
        )
        for i in range(n)
    ]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _metrics(web: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics", timeout=30) as r:
        lines = r.read().decode().splitlines()
    return [
        line for line in lines if line.startswith(("driftline_metric_rows", "driftline_drift", "driftline_feature"))
    ]


def _start_prometheus(tmp: Path, target: str) -> tuple[subprocess.Popen[bytes], str]:
    (tmp / "rules").mkdir(parents=True)
    shutil.copy(ROOT / "infra/prometheus/rules/driftline.yml", tmp / "rules/driftline.yml")  # the shipped rules
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 3s, scrape_timeout: 3s, evaluation_interval: 1s}\n"
        "rule_files: [rules/*.yml]\n"
        f"scrape_configs:\n  - job_name: driftline\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    assert PROMETHEUS is not None
    url = f"http://127.0.0.1:{port}"
    proc = start_ready(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        url,
        tmp / "prometheus.log",
    )
    return proc, url


@needs_prometheus
def test_prometheus_scrapes_a_worker_and_the_drift_rule_fires(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    worker, web, log = _worker(settings, tmp_path, "w", settings.group_id)
    prometheus = None
    try:
        events = _drifting(float(int(time.time()) // W * W - 6 * W))
        with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
            for e in events:
                p.send(e)
        _ingest(web, len(events))
        prometheus, url = _start_prometheus(tmp_path / "prom", f"127.0.0.1:{web}")

        def query(expr: str) -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = _get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))[
                "data"
            ]["result"]
            return result

        deadline = time.monotonic() + 60
        while not (firing := [a for a in _get(f"{url}/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"]):
            assert time.monotonic() < deadline, (query("driftline_drift_share"), _metrics(web), log.read_text()[-2000:])
            time.sleep(0.5)
        (alert,) = [a for a in firing if a["labels"]["alertname"] == "DriftlineDriftShareHigh"]
        assert alert["labels"]["model"] == "m" and alert["labels"]["version"] == "v1"
        # x drifted; c, the score and the prediction did not: 1 of 4 (every window, so the last one too)
        assert float(alert["value"]) == pytest.approx(0.25)
        psi = {r["metric"]["feature"]: float(r["value"][1]) for r in query("driftline_feature_psi")}
        assert psi["x"] > 1.0 and psi["c"] < 0.1
        (build,) = query("driftline_build_info")
        assert build["metric"]["version"] and build["metric"]["python"].startswith("3.")
        assert query("process_resident_memory_bytes") and query("python_gc_collections_total")
        assert query('up{job="driftline"}')[0]["value"][1] == "1"
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=20)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=90)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian's prometheus)")
def test_the_shipped_prometheus_config_and_rules_pass_promtool() -> None:
    for args in (
        ["check", "config", str(ROOT / "infra/prometheus/prometheus.yml")],
        ["check", "rules", str(ROOT / "infra/prometheus/rules/driftline.yml")],
    ):
        out = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is not installed (Debian's prometheus-alertmanager)")
def test_the_shipped_alertmanager_config_passes_amtool() -> None:
    out = subprocess.run(
        ["amtool", "check-config", str(ROOT / "infra/alertmanager/alertmanager.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
