"""One model across many workers (issue 21.3): its events keyed by event id over six partitions, three
workers in one group each see a share of every window and send it to the window's owner, which merges;
the rows equal those of one worker that read every event with the model keyed as usual.

Each worker has its own chdb engine (chdb is one process's), so the trio's rows are the union of the
three databases: each window is written by its owner only."""

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
from tests.integration.test_scale_out import _wait

pytestmark = pytest.mark.integration
STREAM_FAMILIES = {"drift", "data_quality", "kpi", "volume"}
PARTITIONS = 6
SPREAD = "defaults: {window: 5m, allowed_lateness: 1d}\nmodels: {m: {partition_key: event_id}}\n"
KEYED = "defaults: {window: 5m, allowed_lateness: 1d}\n"


def _events(t0: float, n: int, seed: int, prefix: str = "e") -> list[Prediction]:
    rng = np.random.default_rng(seed)
    return [
        Prediction(
            event_id=f"{prefix}{i}",
            model="m",
            version="v1",
            ts=t0 + i * 1.2,
            prediction=int(rng.uniform() < 0.4),
            score=float(rng.uniform()),
            latency_ms=float(rng.uniform(1, 9)),
            kpis={"revenue": float(rng.integers(0, 5))},
            features={
                "x": float(rng.normal(10 + (4 if i > n // 2 else 0), 2)),
                "c": str(rng.choice(["a", "b", "c"])),
                "gap": None if i % 9 == 0 else float(rng.uniform()),
            },
        )
        for i in range(n)
    ]


def _profile(tmp: Path, name: str) -> None:
    """The same reference profile in each worker's database: built beforehand, as spread models need."""
    ref = tmp / "reference.jsonl"
    if not ref.exists():
        ref.write_text("\n".join(json.dumps({"features": e.features}) for e in _events(0.0, 3000, seed=99)))
    where = ["--input", str(ref), "--clickhouse", f"chdb://{tmp}/{name}-ch", "--data-dir", str(tmp / name)]
    subprocess.run(
        [sys.executable, "-m", "driftline", "profile", "build", "--model", "m", "--version", "v1", *where],
        check=True,
        capture_output=True,
        timeout=120,
    )


def _start(settings: Settings, group: str, tmp: Path, name: str, spec: str) -> tuple[subprocess.Popen[bytes], int]:
    (tmp / f"{name}.yaml").write_text(spec)
    web = free_port()
    env = {
        **os.environ,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_GROUP_ID": group,
        "DRIFTLINE_DATA_DIR": str(tmp / name),
        "DRIFTLINE_SPEC": str(tmp / f"{name}.yaml"),
    }
    out = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - the worker writes to it until stopped
    where = ["--clickhouse", f"chdb://{tmp}/{name}-ch", "--web-port", str(web), "--partitions", str(PARTITIONS)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftline", "worker", "--broker", settings.broker, *where],
        env=env,
        stdout=out,
        stderr=out,
    )
    return proc, web


def _metrics(tmp: Path, name: str) -> dict[tuple[str, ...], tuple[float, int]]:
    text = subprocess.run(
        [sys.executable, "-m", "driftline", "metrics", "--model", "m", "--clickhouse", f"chdb://{tmp}/{name}-ch"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    out = {}
    for line in text.splitlines():
        r = json.loads(line)
        if r["family"] in STREAM_FAMILIES and r["complete"] and not r["metric"].endswith("_alarm"):
            key = (r["family"], r["metric"], r["feature"], r["segment"], str(r["window_start"]))
            out[key] = (r["value"], r["n"])
    return out


def test_three_workers_merge_a_spread_models_windows_into_one_workers_rows(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(partitions=PARTITIONS)
    names = ["a", "b", "c", "solo"]
    for name in names:
        _profile(tmp_path, name)
    procs = {name: _start(settings, "trio", tmp_path, name, SPREAD) for name in names[:3]}
    procs["solo"] = _start(settings, "solo", tmp_path, "solo", KEYED)
    try:

        def stats(name: str) -> dict[str, object]:
            return worker_stats(procs[name][1]) or {}

        def assigned(name: str) -> set[str]:
            return {p for p in stats(name).get("assigned", []) if ".predictions" in p}  # type: ignore[attr-defined]

        _wait(
            lambda: (
                all(assigned(n) for n in names[:3])
                and sum(len(assigned(n)) for n in names[:3]) == PARTITIONS
                and len(assigned("solo")) == PARTITIONS
            ),
            "the trio shares the six partitions; the solo worker holds them all",
        )
        t0 = float(int(time.time()) // 3600 * 3600 - 4 * 3600)
        events = _events(t0, 6000, seed=8)
        with Producer(settings.broker, topic_prefix=settings.topic_prefix, key_by={"m": "event_id"}) as p:
            for e in events:
                p.send(e)

        def ingested(group: list[str]) -> int:
            return sum(int(stats(n).get("predictions", 0)) for n in group)  # type: ignore[call-overload]

        _wait(lambda: ingested(names[:3]) == ingested(["solo"]) == len(events), "every event ingested by both")
        split = [int(stats(n).get("predictions", 0)) for n in names[:3]]  # type: ignore[call-overload]
        assert min(split) > 0, split  # each of the three saw a share of the one model
        # events two days on, in every partition: every worker's watermark passes every window
        with Producer(settings.broker, topic_prefix=settings.topic_prefix, key_by={"m": "event_id"}) as p:
            for e in _events(t0 + 2 * 86_400, 300, seed=1, prefix="late"):
                p.send(e)

        def merged() -> bool:
            trio = [stats(n) for n in names[:3]]
            done = sum(int(t.get("windows_merged", 0)) for t in trio)  # type: ignore[call-overload]
            pending = sum(int(t.get("windows_pending", 1)) for t in trio)  # type: ignore[call-overload]
            return done >= 24 and pending == 0 and int(stats("solo").get("metric_rows", 0)) > 0  # type: ignore[call-overload]

        try:
            _wait(merged, "the owners merged every window", timeout=180)
        except AssertionError as exc:  # say where it stopped: it failed once in a full run (2026-12-06)
            keys = ("predictions", "windows_merged", "windows_pending", "metric_rows", "assigned")
            raise AssertionError(f"{exc}: { ({n: {k: stats(n).get(k) for k in keys} for n in names}) }") from None
        time.sleep(1.0)  # the last rows reach each worker's database
    finally:
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGTERM)
        for name, (proc, _) in procs.items():
            assert proc.wait(timeout=90) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    single = {k: v for k, v in _metrics(tmp_path, "solo").items() if float(k[4]) < t0 + 86_400}
    parts = [_metrics(tmp_path, n) for n in names[:3]]
    trio: dict[tuple[str, ...], tuple[float, int]] = {}
    for rows in parts:
        assert not set(rows) & set(trio)  # each window written by its one owner
        trio.update(rows)
    windows = {k[4] for k in single}
    assert len(windows) >= 24 and sum(1 for rows in parts if rows) >= 2  # the windows have several owners
    assert set(trio) == set(single)
    for key, (value, n) in single.items():
        assert trio[key][1] == n, key
        assert trio[key][0] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert any(k[1] == "drifted" and v[0] == 1.0 for k, v in single.items())  # the shift is seen
