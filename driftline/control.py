"""The control plane: model registry states, silences and subscriptions on the compacted ``control`` topic.

Keys are ``model/<name>``, ``silence/<id>`` and ``subscription/<id>``; values are JSON, the
latest per key wins (compaction keeps it), an empty value deletes. Every worker and every
routing client reads the whole topic at start and then follows it, so a change written by
the CLI, the Python API or the canary analysis reaches all of them within one poll.

The clients here use kafka-python: the control plane carries a few messages a minute and
lives inside serving code, where a pure-Python client with no native threads is the
lighter guest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from driftline.alerts.silences import Silence
from driftline.alerts.subscriptions import Subscription
from driftline.events import strict_dumps
from driftline.exceptions import ConfigError, DriftlineError
from driftline.kafka_security import KafkaSecurity
from driftline.models.registry import ModelState


@dataclass
class ControlState:
    """What the control topic says now."""

    models: dict[str, ModelState] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    def apply(self, key: str, value: bytes | None) -> tuple[str, str, Any] | None:
        """Apply one message; returns (kind, name, new object or None if deleted), or None for an unknown key."""
        kind, _, name = key.partition("/")
        raw = json.loads(value) if value else None
        if kind == "model":
            if raw is None:
                self.models.pop(name, None)
                return kind, name, None
            state = ModelState.from_dict(raw)
            old = self.models.get(name)
            if old is None or state.revision >= old.revision:
                self.models[name] = state
            return kind, name, self.models[name]
        if kind == "silence":
            if raw is None:
                self.silences.pop(name, None)
                return kind, name, None
            silence = Silence.from_dict(raw)
            self.silences[name] = silence
            return kind, name, silence
        if kind == "subscription":
            if raw is None:
                self.subscriptions.pop(name, None)
                return kind, name, None
            sub = Subscription.from_dict(raw)
            self.subscriptions[name] = sub
            return kind, name, sub
        return None


def encode_model(state: ModelState) -> tuple[bytes, bytes]:
    return f"model/{state.model}".encode(), strict_dumps(state.as_dict()).encode()


def encode_silence(silence: Silence) -> tuple[bytes, bytes]:
    return f"silence/{silence.id}".encode(), strict_dumps(silence.as_dict()).encode()


def encode_subscription(sub: Subscription) -> tuple[bytes, bytes]:
    # The secret travels on the control topic because every worker signs with it; keep the
    # topic's ACLs as tight as the secrets. It is never logged, printed or stored in ClickHouse.
    return f"subscription/{sub.id}".encode(), strict_dumps(sub.as_dict(with_secret=True)).encode()


class ControlClient:
    """Reads and follows the control topic (in a background thread if asked), and writes changes to it."""

    def __init__(self, broker: str, topic: str, *, poll_interval_s: float = 0.2, security: KafkaSecurity | None = None):
        self.broker = broker
        self.topic = topic
        self.security = security or KafkaSecurity.from_env()  # TLS/SASL, or DRIFTLINE_KAFKA_* when not given
        self.poll_interval_s = poll_interval_s
        self.state = ControlState()
        self._lock = threading.Lock()
        self._consumer: Any = None
        self._producer: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._listeners: list[Callable[[str, str, Any], None]] = []
        self.last_change_at = 0.0

    def _connect(self) -> None:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError

        if self._consumer is not None:
            return
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.broker,
                enable_auto_commit=False,
                group_id=None,
                request_timeout_ms=10_000,
                **self.security.kafka_python_kwargs(),
                # the broker holds an empty fetch this long: it bounds how late a follower sees a change
                fetch_max_wait_ms=max(10, int(self.poll_interval_s * 1000)),
            )
            partitions = consumer.partitions_for_topic(self.topic)
        except KafkaError as exc:
            raise DriftlineError(f"cannot reach Kafka at {self.broker} ({exc}); check --broker") from None
        if not partitions:
            consumer.close()
            raise DriftlineError(
                f"topic {self.topic!r} does not exist on {self.broker}; start a worker once (it creates its topics)"
            )
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(self._partitions)
        consumer.seek_to_beginning(*self._partitions)
        self._consumer = consumer

    def sync(self, timeout_s: float = 10.0) -> ControlState:
        """Read the topic up to its current end; returns the state."""
        self._connect()
        end = self._consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + timeout_s
        # Tansu reports the base offset of the last batch + 1 as the end; reaching it means the
        # last batch (fetched whole) is in.
        while any(self._consumer.position(tp) < end[tp] for tp in self._partitions):
            if time.monotonic() > deadline:
                raise DriftlineError(f"reading the control topic {self.topic!r} took over {timeout_s:.0f}s")
            self._poll(200)
        return self.state

    def _poll(self, timeout_ms: int) -> int:
        records = self._consumer.poll(timeout_ms=timeout_ms)
        n = 0
        for batch in records.values():
            for record in batch:
                key = record.key.decode() if record.key else ""
                with self._lock:
                    applied = self.state.apply(key, record.value)
                if applied is not None:
                    n += 1
                    for listener in self._listeners:
                        listener(*applied)
        if n:
            self.last_change_at = time.time()
        return n

    def follow(self, on_change: Callable[[str, str, Any], None] | None = None) -> None:
        """Sync now, then keep applying changes in a daemon thread until `close()`."""
        if on_change is not None:
            self._listeners.append(on_change)
        self.sync()
        self._thread = threading.Thread(target=self._run, name="driftline-control", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll(int(self.poll_interval_s * 1000))
            except Exception:  # noqa: BLE001 - keep following; the next poll retries
                time.sleep(self.poll_interval_s)

    def write(self, key: bytes, value: bytes | None) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.broker, acks="all", linger_ms=0, **self.security.kafka_python_kwargs()
            )
        self._producer.send(self.topic, key=key, value=value).get(timeout=10)

    # --- registry changes: read the newest state, change it, write it back -------------------

    def _fresh(self) -> None:
        # A following client is kept current by its thread (kafka-python consumers are not thread-safe).
        if self._thread is None:
            self.sync()

    def model(self, name: str) -> ModelState:
        self._fresh()
        with self._lock:
            return self.state.models.get(name, ModelState(name))

    def change_model(self, name: str, change: Callable[[ModelState], ModelState]) -> ModelState:
        new = change(self.model(name))
        self.write(*encode_model(new))
        with self._lock:
            self.state.models[name] = new
        return new

    def put_silence(self, silence: Silence) -> None:
        self.write(*encode_silence(silence))
        with self._lock:
            self.state.silences[silence.id] = silence

    def expire_silence(self, silence_id: str, now: float) -> Silence:
        self._fresh()
        silence = self.state.silences.get(silence_id)
        if silence is None:
            raise ConfigError(f"no silence {silence_id!r}; `driftline silences list` shows them")
        expired = silence.expire(now)
        self.put_silence(expired)
        return expired

    def put_subscription(self, sub: Subscription) -> None:
        self.write(*encode_subscription(sub))
        with self._lock:
            self.state.subscriptions[sub.id] = sub

    def delete_subscription(self, sub_id: str) -> None:
        self._fresh()
        if sub_id not in self.state.subscriptions:
            raise ConfigError(f"no subscription {sub_id!r}; `driftline subscriptions list` shows them")
        self.write(f"subscription/{sub_id}".encode(), None)
        with self._lock:
            self.state.subscriptions.pop(sub_id, None)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._consumer is not None:
            self._consumer.close()
        if self._producer is not None:
            self._producer.close(timeout=5)
