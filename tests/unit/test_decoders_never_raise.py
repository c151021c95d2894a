"""No input stops the worker: any bytes give events or dead letters, never an exception (property-based).

Covers the three message forms (single JSON, JSON array, columnar MessagePack envelope) through
`decode_message`, `decode_columnar` and the worker's fetch decoder (`decode_records`: its fast path
decodes without the slow path's checks first). Before the fix, `[` repeated 1,000 times raised
RecursionError out of every one of them and stopped ingest on every partition.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import Settings
from driftline.events import ColumnarEvents, DeadLetter, Decoded, decode_columnar, decode_message, encode_columnar
from driftline.streams.consumer import PartitionRecords
from driftline.streams.ingest import decode_records
from tests.unit.test_events import make_prediction

SETTINGS = Settings(topic_prefix="fuzz.")
KINDS = ("prediction", "label")

# msgspec encodes 64-bit integers; bigger ones reach the decoders through st.binary and the mutations
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
field_names = st.sampled_from(
    ["schema_version", "event_id", "model", "version", "ts", "features", "prediction", "score", "attributes",
     "route", "latency_ms", "kpis", "label", "annotator", "request_id", "kind", "columns"]
)  # fmt: skip
event_like = st.dictionaries(field_names | st.text(max_size=6), json_values, max_size=10)


def _json(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _mutate(data: bytes, cut: int, flip: int) -> bytes:
    if not data:
        return data
    i = flip % len(data)
    return (data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :])[: max(1, cut % (len(data) + 1))]


deep = st.integers(1, 20_000).flatmap(
    lambda n: st.sampled_from([b"[" * n, b'{"a":' + b"[" * n, b'[{"event_id":' + b"[" * n, b"\x91" * n, b"{" * n])
)
envelopes = st.builds(
    lambda kind, columns: msgspec.msgpack.encode({"schema_version": 1, "kind": kind, "columns": columns}),
    st.sampled_from([*KINDS, "other"]),
    st.dictionaries(field_names, st.lists(json_values, max_size=4) | json_values, max_size=8),
)
valid = st.integers(0, 50).map(lambda i: [make_prediction(j) for j in range(i % 5 + 1)])
payloads = st.one_of(
    st.binary(max_size=3_000),
    event_like.map(_json),
    st.lists(event_like, max_size=5).map(_json),
    json_values.map(_json),
    deep,
    envelopes,
    st.builds(_mutate, valid.map(encode_columnar), st.integers(0, 10_000), st.integers(0, 10_000)),
    st.builds(
        _mutate, valid.map(lambda evs: _json([msgspec.to_builtins(e) for e in evs])), st.integers(), st.integers()
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads, kind=st.sampled_from(KINDS))
def test_decode_message_never_raises(payload: bytes, kind: str) -> None:
    out = decode_message(payload, kind)
    assert isinstance(out, Decoded)
    assert all(d.code and d.reason for d in out.dead_letters)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads, kind=st.sampled_from(KINDS))
def test_decode_columnar_never_raises(payload: bytes, kind: str) -> None:
    assert isinstance(decode_columnar(payload, kind), ColumnarEvents | DeadLetter)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(payloads, min_size=1, max_size=6), kind=st.sampled_from(KINDS), objects=st.booleans())
def test_a_fetch_of_anything_decodes_without_raising(values: list[bytes], kind: str, objects: bool) -> None:
    topic = SETTINGS.topic("predictions" if kind == "prediction" else "labels")
    part = PartitionRecords(topic, 0, list(range(len(values))), values)
    batch = decode_records([part], SETTINGS, 0.0, objects=objects)
    assert batch.messages == len(values)
    # each message is accounted for: it gave events (kept or as columns), or dead letters, or was empty
    assert batch.offsets == {(topic, 0): (0, len(values) - 1)}


@pytest.mark.parametrize("payload", [b"[" * 1000, b" " + b"[" * 5000, b"[" * 100_000])
@pytest.mark.parametrize("kind", KINDS)
def test_deep_nesting_is_a_dead_letter(payload: bytes, kind: str) -> None:
    (letter,) = decode_message(payload, kind).dead_letters
    assert (letter.code, letter.reason) == ("malformed", "message is nested too deeply to decode")
    topic = SETTINGS.topic("predictions" if kind == "prediction" else "labels")
    batch = decode_records([PartitionRecords(topic, 3, [7], [payload])], SETTINGS, 0.0)
    assert [(d.letter.code, d.offset) for d in batch.dead_letters] == [("malformed", 7)]
