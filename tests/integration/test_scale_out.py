"""Two workers in one consumer group split the partitions and together compute the same stream metrics
as one worker alone. Each worker has its own chdb engine here (chdb is one process's), so the comparison
covers the stream families (drift, data quality, KPIs, volume); the label join needs every worker on
one ClickHouse server, as in docker-compose."""

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
from driftline.producer import Producer

pytestmark = pytest.mark.integration
STREAM_FAMILIES = {"drift", "data_quality", "kpi", "volume"}


def _events(t0: float) -> list[Prediction]:
    rng = np.random.default_rng(8)
    out = []
    for i in range(6000):
        model = f"m{i % 6}"
        out.append(
            Prediction(
                event_id=f"e{i}",
                model=model,
                version="v1",
                ts=t0 + i * 0.5,
                prediction=int(rng.uniform() < 0.4),
                score=float(rng.uniform()),
                latency_ms=float(rng.uniform(1, 9)),
                features={"x": float(rng.normal(10 + (5 if i > 4000 else 0), 2)), "c": str(rng.choice(["a", "b"]))},
            )
        )
    return out


def _start(settings: Settings, group: str, tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    web = free_port()
    env = {
        **os.environ,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_GROUP_ID": group,
        "DRIFTLINE_DATA_DIR": str(tmp / name),
        "DRIFTLINE_MONITOR_WINDOW_S": "300",
        "DRIFTLINE_MONITOR_LATENESS_S": "0",
        "DRIFTLINE_MONITOR_REFERENCE_EVENTS": "200",
    }
    log = tmp / f"{name}.log"
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
                f"chdb://{tmp}/{name}-ch",
                "--web-port",
                str(web),
                "--partitions",
                "4",
            ],
            env=env,
            stdout=out,
            stderr=out,
        )
    return proc, web, log


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0, log.read_text()


def _stream_metrics(tmp: Path, name: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for model in (f"m{i}" for i in range(6)):
        text = subprocess.run(
            [sys.executable, "-m", "driftline", "metrics", "--model", model, "--clickhouse", f"chdb://{tmp}/{name}-ch"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        for line in text.splitlines():
            r = json.loads(line)
            if r["family"] in STREAM_FAMILIES:
                out[
                    (
                        r["model"],
                        r["version"],
                        r["family"],
                        r["metric"],
                        r["feature"],
                        r["segment"],
                        str(r["window_start"]),
                    )
                ] = r["value"]
    return out


def _wait(cond: Callable[[], bool], what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_two_workers_split_partitions_and_match_one_worker(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(partitions=4)
    events = _events(float(int(time.time()) // 3600 * 3600 - 7200))
    # two workers, one group
    a, web_a, log_a = _start(settings, "pair", tmp_path, "a")
    b, web_b, log_b = _start(settings, "pair", tmp_path, "b")
    try:

        def assigned(web: int) -> set[str]:
            return set((worker_stats(web) or {}).get("assigned", []))

        _wait(
            lambda: (
                len(assigned(web_a) | assigned(web_b)) == 8
                and bool(assigned(web_a))
                and bool(assigned(web_b))
                and not assigned(web_a) & assigned(web_b)
            ),
            "both workers hold partitions",
        )
        with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
            for e in events:
                p.send(e)

        def total() -> int:
            return sum((worker_stats(w) or {}).get("predictions", 0) for w in (web_a, web_b))

        _wait(lambda: total() == len(events), "all events ingested by the pair")
        split = {(worker_stats(w) or {}).get("predictions", 0) for w in (web_a, web_b)}
        assert 0 not in split, split  # both did work
    finally:
        _stop(a, log_a)
        _stop(b, log_b)
    # one worker alone, another group, over the same events
    c, web_c, log_c = _start(settings, "single", tmp_path, "c")
    try:
        _wait(lambda: (worker_stats(web_c) or {}).get("predictions") == len(events), "single worker ingested all")
    finally:
        _stop(c, log_c)
    first, second = _stream_metrics(tmp_path, "a"), _stream_metrics(tmp_path, "b")
    assert first and second and not set(first) & set(second)  # each model's windows were computed by one worker
    pair = {**first, **second}
    single = _stream_metrics(tmp_path, "c")
    assert set(pair) == set(single) and len(single) > 100
    for key, value in single.items():
        assert pair[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
