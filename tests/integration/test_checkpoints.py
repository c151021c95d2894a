"""A stop in the middle of a window neither loses nor cuts it: the engine's open windows are saved
at stop and taken up after the restart, so every window equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from driftline.config import Settings
from driftline.dev.broker import free_port
from driftline.dev.demo import worker_stats
from driftline.events import Prediction
from driftline.metrics.rows import MetricRow
from driftline.producer import Producer
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.spec import MonitorSpec
from driftline.streams.checkpoints import CheckpointStore, signing_key
from driftline.streams.monitor import MonitoringEngine

pytestmark = pytest.mark.integration
W = 300


def _events(t0: float, n: int = 9000) -> list[Prediction]:
    rng = np.random.default_rng(6)
    return [
        Prediction(
            event_id=f"e{i}",
            model="m",
            version="v1",
            ts=t0 + i * (3 * W / n),
            prediction=int(rng.uniform() < 0.3),
            score=float(rng.uniform()),
            latency_ms=float(rng.uniform(1, 5)),
            kpis={"amount": float(i % 7)},
            features={"x": float(rng.normal(i / n, 1)), "c": str(rng.choice(["a", "b", "c"]))},
        )
        for i in range(n)
    ]


def _key(r: MetricRow) -> tuple[object, ...]:
    return (r.window_start, r.model, r.version, r.family, r.metric, r.feature, r.segment)


def test_engine_state_saved_at_stop_continues_after_restart(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    events = _events(float(int(time.time()) // W * W - 6 * W))
    make = lambda **kw: MonitoringEngine(MonitorSpec(), reference_events=1000, window_s=W, allowed_lateness_s=0, **kw)  # noqa: E731
    single = make()
    expected = single.update(events[:4000]) + single.update(events[4000:])
    store = CheckpointStore(sink.client, settings.clickhouse_database, settings.group_id, signing_key(settings))
    first = make()
    rows = first.update(events[:4000])  # stops in the middle of the second window
    store.save(first.checkpoint())
    second = make(checkpoints=store.take)
    rows += second.update(events[4000:])
    assert {_key(r): r.value for r in rows} == pytest.approx({_key(r): r.value for r in expected}, rel=1e-12)
    assert len(rows) == len(expected) and any(r.window_start == events[4000].ts // W * W for r in rows)
    assert store.take("m", "v1") is None  # used once: a later crash cannot reload an outdated state
    # a state signed by another deployment is not loaded
    other = CheckpointStore(sink.client, settings.clickhouse_database, settings.group_id, b"k" * 32)
    other.save(first.checkpoint())
    assert store.take("m", "v1") is None


def _worker(settings: Settings, tmp: Path, name: str, group: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    web = free_port()
    env = {
        **os.environ,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_GROUP_ID": group,
        "DRIFTLINE_DATA_DIR": str(tmp / "data"),
        "DRIFTLINE_MONITOR_WINDOW_S": str(W),
        "DRIFTLINE_MONITOR_LATENESS_S": "0",
        "DRIFTLINE_MONITOR_REFERENCE_EVENTS": "1000",
    }
    log = tmp / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "driftline",
                "worker",
                "--broker",
                settings.broker,
                "--clickhouse",
                f"chdb://{tmp}/{group}-ch",
                "--web-port",
                str(web),
            ],
            env=env,
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 120
    while not (worker_stats(web) or {}).get("ready"):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return proc, web, log


def _ingest(web: int, n: int) -> None:
    deadline = time.monotonic() + 120
    while (worker_stats(web) or {}).get("predictions") != n:
        assert time.monotonic() < deadline, worker_stats(web)
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0, log.read_text()


def _complete_rows(tmp: Path, group: str) -> dict[tuple[object, ...], float]:
    text = subprocess.run(
        [sys.executable, "-m", "driftline", "metrics", "--model", "m", "--clickhouse", f"chdb://{tmp}/{group}-ch"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    rows = [json.loads(line) for line in text.splitlines()]
    return {
        (r["window_start"], r["family"], r["metric"], r["feature"], r["segment"]): r["value"]
        for r in rows
        if r["complete"] and r["family"] != "quality"
    }


def test_worker_restart_mid_window_gives_the_same_windows(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    events = _events(float(int(time.time()) // W * W - 6 * W))
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
        for e in events[:4000]:
            p.send(e)
    proc, web, log = _worker(settings, tmp_path, "restarted-1", "restarted")
    _ingest(web, 4000)
    _stop(proc, log)  # in the middle of the second window
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
        for e in events[4000:]:
            p.send(e)
    proc, web, log = _worker(settings, tmp_path, "restarted-2", "restarted")
    _ingest(web, len(events) - 4000)
    _stop(proc, log)
    proc, web, log = _worker(settings, tmp_path, "alone", "alone")
    _ingest(web, len(events))
    _stop(proc, log)
    restarted, single = _complete_rows(tmp_path, "restarted"), _complete_rows(tmp_path, "alone")
    assert set(restarted) == set(single) and len(single) > 50
    assert restarted == pytest.approx(single, rel=1e-9, abs=1e-12)
