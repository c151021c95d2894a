"""Producer SDK vs raw Kafka clients, in one run against the embedded broker.

    python bench/producer_throughput.py [--events 100000] [--repeats 3]

Every variant encodes each event itself (the raw clients send one JSON event per
message, as a service using them directly would). Ratios are against the fastest raw
client in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from common import event, event_size, median_rate, report

from driftline.dev.broker import EmbeddedBroker
from driftline.events import encode_json
from driftline.producer import AsyncProducer, Producer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n = args.events
    now = time.time()
    events = [event(i, now) for i in range(n)]

    with EmbeddedBroker() as broker:
        bootstrap = broker.bootstrap

        def topic() -> str:
            return f"bench{uuid.uuid4().hex[:8]}.predictions"

        def raw_confluent() -> tuple[int, float]:
            from confluent_kafka import Producer as CP

            p = CP({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4"})
            t, start = topic(), time.perf_counter()
            for e in events:
                while True:
                    try:
                        p.produce(t, encode_json(e), e.model.encode())
                        break
                    except BufferError:
                        p.poll(0.01)
            p.flush(60)
            return n, time.perf_counter() - start

        def raw_aiokafka() -> tuple[int, float]:
            from aiokafka import AIOKafkaProducer

            async def go() -> tuple[int, float]:
                p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
                await p.start()
                t, start = topic(), time.perf_counter()
                for e in events:
                    await p.send(t, encode_json(e), key=e.model.encode())
                await p.flush()
                elapsed = time.perf_counter() - start
                await p.stop()
                return n, elapsed

            return asyncio.run(go())

        def raw_kafka_python() -> tuple[int, float]:
            from kafka import KafkaProducer

            m = min(n, 20_000)  # ~6k events/s: bounded so the run stays short
            p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
            t, start = topic(), time.perf_counter()
            for e in events[:m]:
                p.send(t, encode_json(e), key=e.model.encode())
            p.flush(60)
            elapsed = time.perf_counter() - start
            p.close()
            return m, elapsed

        def sdk(envelope: str, validate: bool = False) -> tuple[int, float]:
            prefix = f"bench{uuid.uuid4().hex[:8]}."
            start = time.perf_counter()
            with Producer(bootstrap, topic_prefix=prefix, envelope=envelope, validate=validate) as p:  # type: ignore[arg-type]
                for e in events:
                    p.send(e)
            return n, time.perf_counter() - start

        def sdk_log_prediction() -> tuple[int, float]:
            prefix = f"bench{uuid.uuid4().hex[:8]}."
            start = time.perf_counter()
            with Producer(bootstrap, topic_prefix=prefix) as p:
                for e in events:
                    p.log_prediction(
                        model=e.model,
                        version=e.version,
                        features=e.features,
                        prediction=e.prediction,
                        score=e.score,
                        event_id=e.event_id,
                        ts=e.ts,
                        attributes=e.attributes,
                        latency_ms=e.latency_ms,
                        kpis=e.kpis,
                    )
            return n, time.perf_counter() - start

        def sdk_async() -> tuple[int, float]:
            async def go() -> tuple[int, float]:
                prefix = f"bench{uuid.uuid4().hex[:8]}."
                start = time.perf_counter()
                async with AsyncProducer(bootstrap, topic_prefix=prefix) as p:
                    for e in events:
                        await p.send(e)
                return n, time.perf_counter() - start

            return asyncio.run(go())

        variants = {
            "raw confluent-kafka, one JSON event per message": raw_confluent,
            "raw aiokafka, one JSON event per message": raw_aiokafka,
            "raw kafka-python, one JSON event per message (20k events)": raw_kafka_python,
            "driftline.Producer, JSON-array envelopes (default)": lambda: sdk("json"),
            "driftline.Producer, columnar envelopes": lambda: sdk("columnar"),
            "driftline.Producer, envelope='none'": lambda: sdk("none"),
            "driftline.Producer, JSON-array envelopes, validate=True": lambda: sdk("json", validate=True),
            "driftline.Producer.log_prediction (builds each event)": sdk_log_prediction,
            "driftline.AsyncProducer, JSON-array envelopes": sdk_async,
        }
        rates = {}
        for label, fn in variants.items():
            rates[label], _ = median_rate(fn, args.repeats)
            print(f"{label}: {rates[label]:,.0f} events/s", flush=True)

    raw = [k for k in rates if k.startswith("raw")]
    best = max(raw, key=rates.__getitem__)
    report(
        "producer_throughput",
        [(k, v, v / rates[best]) for k, v in rates.items()],
        f"{best} ({rates[best]:,.0f} events/s); {n:,} events of {event_size()} bytes, median of {args.repeats}",
    )


if __name__ == "__main__":
    main()
