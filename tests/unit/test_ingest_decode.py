"""decode_records turns one getmany() result into a batch, without a broker."""

from __future__ import annotations

from typing import NamedTuple

from driftline.config import Settings
from driftline.events import Label, encode_columnar, encode_json
from driftline.sinks.clickhouse import batch_token
from driftline.streams.ingest import decode_records
from tests.unit.test_events import make_prediction


class TP(NamedTuple):
    topic: str
    partition: int


class Record(NamedTuple):
    offset: int
    value: bytes


def test_decode_records_sorts_kinds_dead_letters_and_offsets() -> None:
    s = Settings()
    records = {
        TP("driftline.predictions", 0): [
            Record(10, encode_json(make_prediction(1))),
            Record(11, encode_json([make_prediction(2), make_prediction(3)])),
            Record(12, b"{oops"),
        ],
        TP("driftline.labels", 1): [
            Record(5, encode_columnar([Label(event_id="e1", label=0, ts=1_700_000_000.0)])),
        ],
    }
    batch = decode_records(records, s, received_at=1_700_000_100.0)
    assert [p.event_id for p in batch.predictions] == ["e1", "e2", "e3"]
    assert [lab.event_id for lab in batch.labels] == ["e1"]
    [dead] = batch.dead_letters
    assert (dead.topic, dead.partition, dead.offset, dead.letter.code) == ("driftline.predictions", 0, 12, "malformed")
    assert batch.offsets == {("driftline.predictions", 0): (10, 12), ("driftline.labels", 1): (5, 5)}
    assert batch.messages == 4


def test_batch_token_is_deterministic_and_order_free() -> None:
    a = {("t", 0): (1, 5), ("t", 1): (7, 9)}
    b = {("t", 1): (7, 9), ("t", 0): (1, 5)}
    assert batch_token(a) == batch_token(b)
    assert batch_token(a) != batch_token({("t", 0): (1, 6), ("t", 1): (7, 9)})
