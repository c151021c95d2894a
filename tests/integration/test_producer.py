"""The producer SDK against the real broker: delivery, failures surfaced, async variant."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from driftline.config import Settings
from driftline.events import decode_message
from driftline.exceptions import DeliveryError
from driftline.producer import AsyncProducer, Producer
from tests.unit.test_events import BASE_TS

pytestmark = pytest.mark.integration


def read_topic(settings: Settings, name: str, kind: str, expected: int) -> list[object]:
    from aiokafka import AIOKafkaConsumer

    async def main() -> list[object]:
        c = AIOKafkaConsumer(settings.topic(name), bootstrap_servers=settings.broker, auto_offset_reset="earliest")
        await c.start()
        events: list[object] = []
        try:
            for _ in range(100):
                for msgs in (await c.getmany(timeout_ms=200)).values():
                    for m in msgs:
                        events.extend(decode_message(m.value, kind).events)
                if len(events) >= expected:
                    break
        finally:
            await c.stop()
        return events

    return asyncio.run(main())


def test_sync_producer_is_thread_safe_and_delivers_everything(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    with Producer(settings.broker, topic_prefix=settings.topic_prefix, batch_size=50) as p:

        def work(worker: int) -> None:
            for i in range(200):
                eid = p.log_prediction(
                    model=f"m{worker % 2}",
                    version="v1",
                    features={"x": float(i)},
                    prediction=i % 2,
                    ts=BASE_TS,
                    event_id=f"w{worker}-{i}",
                )
                p.log_label(eid, i % 2, ts=BASE_TS + 1)

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(work, range(4)))
    preds = read_topic(settings, "predictions", "prediction", 800)
    assert sorted(e.event_id for e in preds) == sorted(f"w{w}-{i}" for w in range(4) for i in range(200))  # type: ignore[attr-defined]
    assert len(read_topic(settings, "labels", "label", 800)) == 800


def test_invalid_event_is_reported_by_flush(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    p = Producer(settings.broker, topic_prefix=settings.topic_prefix, validate=True)
    p.log_prediction(model="m", version="v1", features={}, prediction=1, score=3.0, event_id="bad-score")
    p.log_prediction(model="m", version="v1", features={}, prediction=1, score=0.3, event_id="ok")
    with pytest.raises(DeliveryError, match="bad-score") as info:
        p.flush()
    assert [f[0] for f in info.value.failures] == ["bad-score"]
    p.close()
    assert [e.event_id for e in read_topic(settings, "predictions", "prediction", 1)] == ["ok"]  # type: ignore[attr-defined]


def test_unreachable_broker_surfaces_a_delivery_error() -> None:
    p = Producer("127.0.0.1:1", config={"message.timeout.ms": 1500, "log_level": 0})
    p.log_label("e1", 1)
    with pytest.raises(DeliveryError, match="not delivered"):
        p.flush(timeout=10)
    p.close(timeout=1)  # each failure is reported once
    with pytest.raises(DeliveryError, match="closed"):
        p.log_label("e2", 1)


def test_async_producer_round_trip(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()

    async def main() -> None:
        async with AsyncProducer(settings.broker, topic_prefix=settings.topic_prefix, envelope="columnar") as p:
            for i in range(300):
                await p.log_prediction(model="m", version="v1", features={"x": i}, prediction=1, event_id=f"a{i}")
            with pytest.raises(TypeError):
                await p.log_prediction(model="m", version="v1", features={}, prediction=1, colour="red")

    asyncio.run(main())
    assert len(read_topic(settings, "predictions", "prediction", 300)) == 300
