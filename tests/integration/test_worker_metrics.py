"""End to end through the real broker, a `driftline worker` process and chdb: a shift injected at a known
window is flagged on exactly that feature from that window on; quality and fairness in ClickHouse equal
scikit-learn and fairlearn computed offline on the same windows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn import metrics as skm

from driftline.config import Settings
from driftline.dev.broker import free_port
from driftline.dev.demo import worker_stats
from driftline.events import Label, Prediction
from driftline.producer import Producer

pytestmark = pytest.mark.integration
W = 60
N_WINDOWS, PER_WINDOW, SHIFT_AT = 10, 600, 6


def _stats(port: int) -> dict[str, object]:
    return worker_stats(port) or {}


def _read_metrics_topic(settings: Settings) -> list[dict[str, object]]:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def main() -> list[dict[str, object]]:
        c = AIOKafkaConsumer(settings.topic("metrics"), bootstrap_servers=settings.broker, auto_offset_reset="earliest")
        await c.start()
        out: list[dict[str, object]] = []
        try:
            for _ in range(20):
                batch = await c.getmany(timeout_ms=300)
                out.extend(json.loads(m.value) for msgs in batch.values() for m in msgs)
                if out and not batch:
                    break
        finally:
            await c.stop()
        return out

    return asyncio.run(main())


def _stream(t0: float) -> tuple[list[Prediction], list[Label]]:
    rng = np.random.default_rng(21)
    preds, labels = [], []
    for w in range(N_WINDOWS):
        for i in range(PER_WINDOW):
            group = str(rng.choice(["a", "b"], p=[0.6, 0.4]))
            y = int(rng.uniform() < (0.5 if group == "a" else 0.3))
            score = float(np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1))
            eid = f"w{w}-{i}"
            preds.append(
                Prediction(
                    event_id=eid,
                    model="credit",
                    version="v1",
                    ts=t0 + w * W + i * (W / PER_WINDOW),
                    features={
                        "income": float(rng.normal(50 + (20 if w >= SHIFT_AT else 0), 10)),
                        "age": float(rng.normal(40, 10)),
                        "region": str(rng.choice(["n", "s", "e"])),
                    },
                    prediction=int(score >= 0.5),
                    score=score,
                    attributes={"group": group},
                )
            )
            if i % 5:  # 80 % labelled
                labels.append(Label(event_id=eid, label=y, ts=t0 + w * W + 30))
    return preds, labels


def test_worker_writes_drift_quality_and_fairness_that_match_references(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    web = free_port()
    ch = f"chdb://{tmp_path}/ch"
    env = {
        **os.environ,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_GROUP_ID": settings.group_id,  # its own group: a shared one stalls joins on Tansu
        "DRIFTLINE_DATA_DIR": str(tmp_path / "data"),
        "DRIFTLINE_MONITOR_WINDOW_S": str(W),
        "DRIFTLINE_MONITOR_LATENESS_S": "0",
        "DRIFTLINE_MONITOR_REFERENCE_EVENTS": "1200",  # windows 0-1 become the reference
        "DRIFTLINE_FAIRNESS_MIN_GROUP_SIZE": "10",
    }
    log = tmp_path / "worker.log"
    t0 = float(int(time.time()) // 3600 * 3600 - 7200)
    preds, labels = _stream(t0)
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
                ch,
                "--web-port",
                str(web),
            ],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 240
        while not _stats(web).get("ready"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
            for e in preds:
                p.send(e)
            for lab in labels:
                p.send(lab)
        while _stats(web).get("labels") != len(labels) or _stats(web).get("predictions") != len(preds):
            assert time.monotonic() < deadline, _stats(web)
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, log.read_text()

    published = _read_metrics_topic(settings)
    # the auto-built reference (the first 1,200 events) was stored the moment it existed (issue 17.4)
    query = (
        "import clickhouse_connect, sys; c = clickhouse_connect.get_client(interface='chdb', path=sys.argv[1]); "
        "print(c.command(\"SELECT groupArray(source) FROM driftline.reference_profiles WHERE model = 'credit'\"))"
    )
    sources = subprocess.run(
        [sys.executable, "-c", query, str(tmp_path / "ch")], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "auto:first 1200 events" in sources, sources
    assert published and all(m["model"] == "credit" for m in published)

    out = subprocess.run(
        [sys.executable, "-m", "driftline", "metrics", "--model", "credit", "--clickhouse", ch],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    # every row stored was also published (a window recomputed later is published again)
    assert len(published) >= len(rows)
    assert {(m["metric"], m["feature"]) for m in published} == {(r["metric"], r["feature"]) for r in rows}
    got = {(r["window_start"], r["family"], r["metric"], r["feature"], r["segment"]): r["value"] for r in rows}

    drifted = defaultdict(set)
    for r in rows:
        if r["metric"] == "drifted":
            drifted[r["window_start"]].add(r["feature"])
    for w in range(2, N_WINDOWS):
        assert drifted.get(t0 + w * W, set()) == ({"income"} if w >= SHIFT_AT else set()), (w, dict(drifted))

    label_of = {lab.event_id: int(lab.label) for lab in labels}
    for w in range(N_WINDOWS):
        start = t0 + w * W
        lab = [p for p in preds if start <= p.ts < start + W and p.event_id in label_of]
        y = np.array([label_of[p.event_id] for p in lab])
        pred = np.array([int(p.prediction) for p in lab])
        score = np.array([p.score for p in lab])
        group = np.array([p.attributes["group"] for p in lab])
        assert got[(start, "quality", "accuracy", "", "")] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
        assert got[(start, "quality", "f1", "", "")] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
        assert got[(start, "quality", "brier", "", "")] == pytest.approx(skm.brier_score_loss(y, score), abs=1e-12)
        assert got[(start, "quality", "label_coverage", "", "")] == pytest.approx(0.8)
        assert got[(start, "fairness", "demographic_parity_difference", "group", "")] == pytest.approx(
            demographic_parity_difference(y, pred, sensitive_features=group), abs=1e-12
        )
        assert got[(start, "fairness", "equalized_odds_difference", "group", "")] == pytest.approx(
            equalized_odds_difference(y, pred, sensitive_features=group), abs=1e-12
        )
