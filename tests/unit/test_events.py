"""Event contract v1: round trips and every kind of bad input."""

from __future__ import annotations

import time

import msgspec
import pytest

from driftline.events import (
    SCHEMA_VERSION,
    Label,
    Prediction,
    canonical_target,
    decode_message,
    encode_columnar,
    encode_json,
    names_ok,
)

#: Recent enough that ClickHouse's TTL (90 days by default) keeps the rows.
BASE_TS = float(int(time.time()) - 86_400)


def make_prediction(i: int = 0, **kw: object) -> Prediction:
    base: dict[str, object] = dict(
        event_id=f"e{i}",
        model="churn",
        version="v1",
        ts=BASE_TS + i,
        features={"age": 30.0 + i, "plan": "gold", "active": True, "missing": None},
        prediction=1,
        score=0.75,
        attributes={"sex": "F"},
        route="canary",
        latency_ms=3.5,
        kpis={"revenue": 12.0},
    )
    base.update(kw)
    return Prediction(**base)  # type: ignore[arg-type]


def test_single_json_round_trip() -> None:
    p = make_prediction()
    out = decode_message(encode_json(p), "prediction")
    assert out.dead_letters == []
    assert out.events == [p]


def test_schema_version_is_written() -> None:
    assert msgspec.json.decode(encode_json(make_prediction()))["schema_version"] == SCHEMA_VERSION


def test_json_array_and_columnar_round_trip() -> None:
    events = [make_prediction(i) for i in range(5)]
    for payload in (encode_json(events), encode_columnar(events)):
        out = decode_message(payload, "prediction")
        assert out.dead_letters == []
        assert out.events == events
    labels = [Label(event_id=f"e{i}", label="yes", ts=1_700_000_000.0, annotator="ann") for i in range(3)]
    assert decode_message(encode_columnar(labels), "label").events == labels


def test_columnar_is_smaller_than_json() -> None:
    events = [make_prediction(i) for i in range(200)]
    assert len(encode_columnar(events)) < 0.6 * len(encode_json(events))


def test_bad_event_in_array_is_isolated() -> None:
    good = msgspec.json.encode(make_prediction(1)).decode()
    payload = f'[{good}, {{"event_id": "bad", "model": "m"}}, {good}]'.encode()
    out = decode_message(payload, "prediction")
    assert len(out.events) == 2
    [letter] = out.dead_letters
    assert letter.code == "missing_field"
    assert letter.index == 1
    assert "event 1 of the batch" in letter.reason
    assert msgspec.json.decode(letter.payload)["event_id"] == "bad"


@pytest.mark.parametrize(
    ("payload", "code", "in_reason"),
    [
        (b'{"event_id": "x", ', "malformed", "not a valid label"),
        (b'{"event_id": "x", "label": NaN, "ts": 1700000000}', "malformed", "malformed"),
        (b'{"event_id": "x", "label": 1e999, "ts": 1700000000}', "out_of_range", "$.label"),
        (b'{"event_id": "x", "ts": 1700000000}', "missing_field", "`label`"),
        (b'{"event_id": "x", "label": [1], "ts": 1700000000}', "wrong_type", "$.label"),
        (b'{"event_id": "x", "label": 1, "ts": "noon"}', "wrong_type", "$.ts"),
        (b'{"event_id": "x", "label": 1, "ts": 5}', "out_of_range", "$.ts"),
        (b'{"event_id": "", "label": 1, "ts": 1700000000}', "out_of_range", "$.event_id"),
        (b'{"schema_version": 2, "event_id": "x", "label": 1, "ts": 1700000000}', "unknown_schema_version", "reads"),
        (b'{"event_id": "\xff", "label": 1, "ts": 1700000000}', "not_utf8", "UTF-8"),
        (b"", "empty", "no value"),
        (b"hello", "malformed", "neither"),
        (b"\x93\x01\x02\x03", "malformed", "neither"),
    ],
)
def test_bad_labels_become_dead_letters(payload: bytes, code: str, in_reason: str) -> None:
    out = decode_message(payload, "label")
    assert out.events == []
    [letter] = out.dead_letters
    assert letter.code == code, letter.reason
    assert in_reason in letter.reason
    assert letter.payload == payload


def test_bad_feature_value_names_the_feature() -> None:
    payload = (
        b'{"event_id": "a", "model": "m", "version": "v", "ts": 1700000000, "prediction": 1,'
        b' "features": {"ok": 1, "income": {"nested": 1}}}'
    )
    [letter] = decode_message(payload, "prediction").dead_letters
    assert letter.code == "wrong_type"
    assert "$.features['income']" in letter.reason


def test_score_outside_unit_interval_and_bad_route() -> None:
    bad_score = encode_json(make_prediction(score=1.5))
    assert decode_message(bad_score, "prediction").dead_letters[0].code == "out_of_range"
    bad_route = encode_json(make_prediction()).replace(b'"canary"', b'"sideways"')
    assert decode_message(bad_route, "prediction").dead_letters[0].code == "wrong_type"


def test_oversize_is_rejected_unread() -> None:
    payload = b'{"event_id": "' + b"x" * 5000 + b'"}'
    [letter] = decode_message(payload, "label", max_bytes=1024).dead_letters
    assert letter.code == "oversize"
    assert "1024" in letter.reason


@pytest.mark.parametrize(
    ("column", "where"),
    [
        ([1.0, None, 2.0], None),  # a missing value is not a non-finite one
        ([1, None, float("inf")], "[2]"),
        (["a", "b", float("-inf")], "[2]"),  # a mixed column numpy cannot convert
        (["a", None, "c"], None),
        ([True, 2, 3.5], None),
    ],
)
def test_columnar_non_finite_values_are_found_and_missing_ones_are_not(column: list[object], where: str | None) -> None:
    events = [make_prediction(i) for i in range(3)]
    payload = msgspec.msgpack.decode(encode_columnar(events))
    payload["columns"]["features"]["extra"] = column
    decoded = decode_message(msgspec.msgpack.encode(payload), "prediction")
    if where is None:
        assert not decoded.dead_letters and len(decoded.events) == 3
    else:
        [letter] = decoded.dead_letters
        assert letter.code == "not_finite" and "extra" in letter.reason and where in letter.reason


def test_columnar_nan_ragged_and_wrong_kind() -> None:
    events = [make_prediction(i) for i in range(3)]
    payload = msgspec.msgpack.decode(encode_columnar(events))
    payload["columns"]["features"]["age"][1] = float("nan")
    [letter] = decode_message(msgspec.msgpack.encode(payload), "prediction").dead_letters
    assert letter.code == "not_finite"
    assert "age" in letter.reason and "[1]" in letter.reason

    payload = msgspec.msgpack.decode(encode_columnar(events))
    payload["columns"]["model"] = ["m"]
    [letter] = decode_message(msgspec.msgpack.encode(payload), "prediction").dead_letters
    assert letter.code == "ragged_columns"

    [letter] = decode_message(encode_columnar(events), "label").dead_letters
    assert letter.code == "wrong_kind"

    payload = msgspec.msgpack.decode(encode_columnar(events))
    payload["schema_version"] = 3
    [letter] = decode_message(msgspec.msgpack.encode(payload), "prediction").dead_letters
    assert letter.code == "unknown_schema_version"


def test_encode_columnar_refuses_mixed_kinds() -> None:
    with pytest.raises(ValueError, match="one kind"):
        encode_columnar([make_prediction(), Label(event_id="e", label=1, ts=1_700_000_000.0)])


@pytest.mark.parametrize(
    ("value", "text"), [(1, "1"), (1.0, "1"), (True, "1"), (False, "0"), (0.25, "0.25"), ("cat", "cat")]
)
def test_canonical_target(value: object, text: str) -> None:
    assert canonical_target(value) == text  # type: ignore[arg-type]


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        decode_message(b"{}", "metric")


@pytest.mark.parametrize(
    ("section", "name", "ok"),
    [
        ("features", "", False),
        ("features", "x" * 256, True),
        ("features", "x" * 257, False),
        ("features", "é" * 256, True),  # characters, not bytes
        ("attributes", "", False),
        ("attributes", "a" * 257, False),
        ("kpis", "", False),
        ("kpis", "k" * 300, False),
    ],
)
def test_names_are_checked_in_every_section(section: str, name: str, ok: bool) -> None:
    values = {"features": 1.0, "attributes": "x", "kpis": 2.0}
    bad = make_prediction(2, **{section: {"fine": values[section], name: values[section]}})
    assert names_ok([make_prediction(1), bad]) is ok
    single = decode_message(encode_json(bad), "prediction")
    batch = decode_message(encode_json([make_prediction(1), bad, make_prediction(3)]), "prediction")
    if ok:
        assert single.events == [bad] and not single.dead_letters
        assert [e.event_id for e in batch.events] == ["e1", "e2", "e3"]
        return
    [letter] = single.dead_letters
    assert letter.code == "out_of_range"
    assert f"`key` in `$.{section}`" in letter.reason and "length" in letter.reason
    assert [e.event_id for e in batch.events] == ["e1", "e3"]
    [letter] = batch.dead_letters
    assert letter.index == 1 and f"`key` in `$.{section}`" in letter.reason
    assert msgspec.json.decode(letter.payload)["event_id"] == "e2"


RFC3339 = {
    "2026-01-01T00:00:00.250Z": 1767225600.25,
    "2026-01-01T02:00:00.250+02:00": 1767225600.25,
    "2025-12-31T19:00:00.25-05:00": 1767225600.25,
}


def _json_event(ts: str) -> bytes:
    return b'{"event_id":"e1","model":"m","version":"v","features":{"a":1},"prediction":1,"ts":"%s"}' % ts.encode()


@pytest.mark.parametrize("ts", list(RFC3339))
def test_rfc3339_event_times_are_accepted_in_every_form(ts: str) -> None:
    """Issue 17.7: `"ts": "2026-01-01T00:00:00.250Z"` was a `wrong_type` dead letter."""
    (event,) = decode_message(_json_event(ts), "prediction").events
    assert event.ts == RFC3339[ts]
    (in_array,) = decode_message(b"[" + _json_event(ts) + b"]", "prediction").events
    assert in_array.ts == RFC3339[ts]
    label = b'{"event_id":"e1","label":1,"ts":"%s"}' % ts.encode()
    assert [x.ts for x in decode_message(label, "label").events] == [RFC3339[ts]]
    columns = {
        "event_id": ["e1", "e2"],
        "model": ["m", "m"],
        "version": ["v", "v"],
        "ts": [ts, 1767225600.5],
        "prediction": [1, 0],
        "features": {"a": [1.0, 2.0]},
    }
    envelope = msgspec.msgpack.encode({"schema_version": 1, "kind": "prediction", "columns": columns})
    assert [e.ts for e in decode_message(envelope, "prediction").events] == [RFC3339[ts], 1767225600.5]
    # and the SDK takes the same strings (and datetimes)
    assert Prediction(event_id="e", model="m", version="v", ts=ts, prediction=1).ts == RFC3339[ts]


@pytest.mark.parametrize(
    ("ts", "code", "says"),
    [
        ("2026-01-01T00:00:00", "wrong_type", "write the offset"),
        ("1990-01-01T00:00:00Z", "out_of_range", "out of range"),
        ("yesterday", "wrong_type", "RFC3339"),
    ],
)
def test_times_without_an_offset_or_out_of_range_are_dead_letters_with_a_reason(ts: str, code: str, says: str) -> None:
    (letter,) = decode_message(_json_event(ts), "prediction").dead_letters
    assert letter.code == code and says in letter.reason
    columns = {"event_id": ["e1"], "model": ["m"], "version": ["v"], "ts": [ts], "prediction": [1]}
    envelope = msgspec.msgpack.encode({"schema_version": 1, "kind": "prediction", "columns": columns})
    (in_envelope,) = decode_message(envelope, "prediction").dead_letters
    assert in_envelope.code == code


def test_class_scores_decode_from_json_and_columns_and_bad_ones_are_dead_letters_naming_the_class() -> None:
    scored = make_prediction(1, prediction="cat", class_scores={"cat": 0.7, "dog": 0.3})
    assert decode_message(encode_json(scored), "prediction").events == [scored]
    envelope = encode_columnar([scored, make_prediction(2, class_scores={"cat": 0.1, "dog": 0.9})])
    assert [e.class_scores for e in decode_message(envelope, "prediction").events] == [
        {"cat": 0.7, "dog": 0.3},
        {"cat": 0.1, "dog": 0.9},
    ]
    bad = encode_json(scored).replace(b'"dog":0.3', b'"dog":1.5')
    letter = decode_message(bad, "prediction").dead_letters[0]
    assert letter.code == "out_of_range" and "$.class_scores['dog']" in letter.reason
    many = make_prediction(3, class_scores={f"c{i}": 0.005 for i in range(101)})
    assert decode_message(encode_json(many), "prediction").dead_letters[0].code == "out_of_range"
    with pytest.raises(ValueError, match="class_scores for every event of it or for none"):
        encode_columnar([scored, make_prediction(4)])
