"""decode_records turns one fetch into a batch, without a broker."""

from __future__ import annotations

from driftline.config import Settings
from driftline.events import Label, decode_message, encode_columnar, encode_json
from driftline.sinks.clickhouse import batch_token
from driftline.streams.consumer import PartitionRecords, group_by_partition
from driftline.streams.ingest import decode_records
from tests.unit.test_events import make_prediction


def test_decode_records_sorts_kinds_dead_letters_and_offsets() -> None:
    s = Settings()
    records = [
        PartitionRecords(
            "driftline.predictions",
            0,
            [10, 11, 12],
            [encode_json(make_prediction(1)), encode_json([make_prediction(2), make_prediction(3)]), b"{oops"],
        ),
        PartitionRecords(
            "driftline.labels", 1, [5], [encode_columnar([Label(event_id="e1", label=0, ts=1_700_000_000.0)])]
        ),
    ]
    batch = decode_records(records, s, received_at=1_700_000_100.0)
    assert [p.event_id for p in batch.predictions] == ["e1", "e2", "e3"]
    assert batch.labels == [] and [lab.event_id for lab in batch.all_labels()] == ["e1"]  # kept as columns
    [dead] = batch.dead_letters
    assert (dead.topic, dead.partition, dead.offset, dead.letter.code) == ("driftline.predictions", 0, 12, "malformed")
    assert batch.offsets == {("driftline.predictions", 0): (10, 12), ("driftline.labels", 1): (5, 5)}
    assert batch.messages == 4


def test_batch_token_is_deterministic_and_order_free() -> None:
    a = {("t", 0): (1, 5), ("t", 1): (7, 9)}
    b = {("t", 1): (7, 9), ("t", 0): (1, 5)}
    assert batch_token(a) == batch_token(b)
    assert batch_token(a) != batch_token({("t", 0): (1, 6), ("t", 1): (7, 9)})


def test_group_by_partition_keeps_offset_order_per_partition() -> None:
    from confluent_kafka import Message

    msgs = [
        Message(topic="a", partition=0, offset=1, value=b"x1"),
        Message(topic="a", partition=1, offset=7, value=b"y7"),
        Message(topic="a", partition=0, offset=2, value=None),  # a tombstone reads as empty
        Message(topic="b", partition=0, offset=3, value=b"z3"),
        Message(topic="a", partition=1, offset=8, value=b"y8"),
    ]
    groups = {(g.topic, g.partition): (g.offsets, g.values) for g in group_by_partition(msgs)}
    assert groups == {
        ("a", 0): ([1, 2], [b"x1", b""]),
        ("a", 1): ([7, 8], [b"y7", b"y8"]),
        ("b", 0): ([3], [b"z3"]),
    }
    [single] = group_by_partition(msgs[:1])
    assert (single.topic, single.partition, single.offsets, single.values) == ("a", 0, [1], [b"x1"])


def test_gathered_batches_keep_first_and_last_offsets_and_every_event() -> None:
    s = Settings()
    topic = s.topic("predictions")
    events = [encode_json(make_prediction(i)) for i in (1, 2)]
    first = decode_records([PartitionRecords(topic, 0, [10, 11], events)], s, 0.0)
    later = decode_records(
        [
            PartitionRecords(topic, 0, [12], [b"{oops"]),
            PartitionRecords(topic, 1, [4], [encode_json(make_prediction(3))]),
        ],
        s,
        0.0,
    )
    merged = first.extend(later)
    assert [p.event_id for p in merged.predictions] == ["e1", "e2", "e3"]
    assert len(merged.prediction_json) == 3 and merged.events == 3
    assert [d.offset for d in merged.dead_letters] == [12]
    assert merged.offsets == {(topic, 0): (10, 12), (topic, 1): (4, 4)}
    assert merged.messages == 4
    assert batch_token(merged.offsets) == batch_token({(topic, 1): (4, 4), (topic, 0): (10, 12)})


def test_columnar_envelopes_stay_columns_unless_a_hook_needs_objects() -> None:
    s = Settings()
    preds = [make_prediction(i) for i in range(3)]
    records = [PartitionRecords(s.topic("predictions"), 0, [1, 2], [encode_columnar(preds), encode_json(preds[0])])]
    kept = decode_records(records, s, 0.0)
    assert [p.event_id for p in kept.predictions] == ["e0"] and kept.prediction_json == [encode_json(preds[0])]
    assert [c.n for c in kept.prediction_columns] == [3] and kept.n_predictions == kept.events == 4
    assert kept.all_predictions() == [preds[0], *preds]  # JSON messages' events first
    made = decode_records(records, s, 0.0, objects=True)
    assert made.prediction_columns == [] and made.predictions == [*preds, preds[0]]  # in message order
    assert len(made.prediction_json) == 2 and made.n_predictions == 4


def test_a_bad_name_sends_its_partition_down_the_exact_path() -> None:
    """The fast path checks names per partition; one bad name re-decodes that partition message by
    message: the batch then equals what decode_message finds for each message."""
    s = Settings()
    long_name = {"x" * 257: 1.0}
    values = [
        encode_json(make_prediction(1)),
        encode_json(make_prediction(2, features=long_name)),
        encode_json([make_prediction(3), make_prediction(4, kpis={"": 1.0}), make_prediction(5)]),
        encode_columnar([make_prediction(6)]),
        b"{oops",
    ]
    records = [
        PartitionRecords("driftline.predictions", 0, [20, 21, 22, 23, 24], values),
        PartitionRecords("driftline.predictions", 1, [7], [encode_json(make_prediction(9))]),
    ]
    batch = decode_records(records, s, received_at=1_700_000_100.0)
    assert [p.event_id for p in batch.predictions] == ["e1", "e3", "e5", "e9"]
    assert [p.event_id for p in batch.all_predictions()] == ["e1", "e3", "e5", "e9", "e6"]
    per_message = [(20 + i, decode_message(v, "prediction").dead_letters) for i, v in enumerate(values)]
    expected = [(offset, d.code, d.reason) for offset, letters in per_message for d in letters]
    assert [(d.offset, d.letter.code, d.letter.reason) for d in batch.dead_letters] == expected
    assert [d.letter.code for d in batch.dead_letters] == ["out_of_range", "out_of_range", "malformed"]
    assert batch.messages == 6 and batch.offsets[("driftline.predictions", 0)] == (20, 24)
    stored = b"\n".join(batch.prediction_json)
    assert b"x" * 257 not in stored and b'"e4"' not in stored and b'"e3"' in stored
