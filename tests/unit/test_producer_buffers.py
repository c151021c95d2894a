"""The SDK's batching and checking, without a broker (the broker path is in tests/integration)."""

from __future__ import annotations

import time

import pytest

from driftline.events import Label, Prediction, decode_message
from driftline.exceptions import ConfigError
from driftline.producer import _Buffers
from tests.unit.test_events import make_prediction


def test_batches_per_model_and_kind() -> None:
    b = _Buffers("json", batch_size=3, linger_s=60)
    assert b.add(make_prediction(0)) is None
    assert b.add(make_prediction(1, model="other")) is None
    assert b.add(Label(event_id="e0", label=1, ts=1_700_000_000.0)) is None
    assert b.add(make_prediction(2)) is None
    [(topic, key, payload)] = b.add(make_prediction(3)) or []
    assert (topic, key) == ("predictions", b"churn")
    assert [e.event_id for e in decode_message(payload, "prediction").events] == ["e0", "e2", "e3"]
    rest = b.due(everything=True)
    assert sorted((t, k) for t, k, _ in rest) == [("labels", None), ("predictions", b"other")]


def test_linger_releases_old_batches_only() -> None:
    b = _Buffers("columnar", batch_size=100, linger_s=0.01)
    b.add(make_prediction(0))
    assert b.due() == []
    time.sleep(0.02)
    [(_, _, payload)] = b.due()
    assert decode_message(payload, "prediction").events[0].event_id == "e0"


def test_envelope_none_sends_one_message_per_event() -> None:
    b = _Buffers("none", batch_size=100, linger_s=1)
    assert len(b.add(make_prediction(0)) or []) == 1


def test_unchecked_by_default() -> None:
    b = _Buffers("json", batch_size=1, linger_s=60)
    assert len(b.add(make_prediction(0, score=2.0)) or []) == 1
    assert b.failures == []


@pytest.mark.parametrize("envelope", ["json", "columnar", "none"])
def test_invalid_events_are_held_back_and_reported(envelope: str) -> None:
    b = _Buffers(envelope, batch_size=2, linger_s=60, validate=True)  # type: ignore[arg-type]
    b.add(make_prediction(0, score=2.0))
    [(_, _, payload)] = b.add(make_prediction(1)) or []
    assert [e.event_id for e in decode_message(payload, "prediction").events] == ["e1"]
    [(event_id, reason)] = b.failures
    assert event_id == "e0" and "score" in reason


@pytest.mark.parametrize(("envelope", "size"), [("xml", 1), ("json", 0)])
def test_bad_options(envelope: str, size: int) -> None:
    with pytest.raises(ConfigError):
        _Buffers(envelope, size, 1)  # type: ignore[arg-type]


def test_key_by_event_id_spreads_a_model_and_keeps_one_id_on_one_key() -> None:
    from driftline.producer import SPREAD_BUCKETS

    def keys(buffers: _Buffers, ids: list[str], model: str = "m") -> list[bytes | None]:
        out = []
        for i in ids:
            sent = buffers.add(
                Prediction(event_id=i, model=model, version="v", ts=1_800_000_000.0, prediction=1, features={})
            )
            out += [key for _, key, _ in sent or []]
        return out

    spread = _Buffers("none", 1, 0.05, key_by={"m": "event_id"})
    ids = [f"e{i}" for i in range(2000)]
    first = keys(spread, ids)
    assert len(set(first)) == SPREAD_BUCKETS and all(k is not None and k.startswith(b"m/") for k in first)
    assert keys(spread, ids) == first  # the same id, the same key: a duplicate meets its first on one partition
    assert set(keys(spread, ids[:50], model="other")) == {b"other"}  # a model the mapping does not name
    assert set(keys(_Buffers("none", 1, 0.05), ids[:50])) == {b"m"}  # the default: keyed by model
    with pytest.raises(ConfigError, match="key_by='user'"):
        _Buffers("json", 10, 0.05, key_by="user")
