"""Event contract v1: what producers send, how it is encoded, and how it is checked.

A Kafka message on the ``predictions`` or ``labels`` topic holds one of

* a single JSON event (an object),
* a JSON array of events (the default batch envelope of the SDK),
* a columnar MessagePack envelope ``{"schema_version": 1, "kind": ..., "columns": {...}}``
  for high rates (3-4x smaller on the wire than JSON).

The topic says whether the events are predictions or labels. Every event (and every
columnar envelope) carries ``schema_version``. Checks run in C (msgspec) per event; a
message or event that fails becomes a :class:`DeadLetter` naming the field and the
problem, never an exception that stops a worker.

>>> msg = encode_json([Label(event_id="e1", label=1, ts=1_700_000_000.0)])
>>> decoded = decode_message(msg, "label")
>>> decoded.events[0].event_id, decoded.dead_letters
('e1', [])
>>> decode_message(b'{"schema_version": 1, "event_id": "e2"}', "label").dead_letters[0].reason
'Object missing required field `label`'
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

import msgspec
import numpy as np

SCHEMA_VERSION = 1
KINDS = ("prediction", "label")
Kind: TypeAlias = Literal["prediction", "label"]
#: A message larger than this is dead-lettered unread (override with DRIFTLINE_MAX_MESSAGE_BYTES).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

# 2000-01-01 .. 2100-01-01: outside it, ClickHouse DateTime64 and TTLs misbehave.
_TS_MIN, _TS_MAX = 946_684_800.0, 4_102_444_800.0  # 2000-01-01 .. 2100-01-01 UTC
#: Event time: epoch seconds, or an RFC 3339 string with a UTC offset ("2026-01-01T00:00:00.250Z",
#: "...+02:00"); a string without an offset is refused (which zone would it be?).
_TS = Annotated[float, msgspec.Meta(ge=_TS_MIN, le=_TS_MAX)] | Annotated[datetime, msgspec.Meta(tz=True)]
_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
#: Longest feature, attribute or KPI name (and model, version, annotator); the shortest has 1 character.
MAX_NAME_CHARS = 256
_NAME = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS)]
#: Longest vector feature (an embedding: a fixed-length list of floats per feature; metrics/embeddings.py).
MAX_VECTOR_LENGTH = 4096
FeatureValue: TypeAlias = float | str | bool | Annotated[list[float], msgspec.Meta(max_length=MAX_VECTOR_LENGTH)] | None
Target: TypeAlias = int | float | str | bool
Route: TypeAlias = Literal["primary", "canary", "shadow"]
_PROBABILITY = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
#: Most classes an event's ``class_scores`` may name (a bound on the per-class state it makes).
MAX_CLASSES = 100


def epoch_seconds(value: Any) -> float:
    """Event time as epoch seconds: from a number, an aware datetime, or an RFC 3339 string with an offset.

    >>> epoch_seconds("2026-01-01T00:00:00.250Z"), epoch_seconds("2026-01-01T02:00:00+02:00")
    (1767225600.25, 1767225600.0)
    >>> epoch_seconds("2026-01-01T00:00:00")
    Traceback (most recent call last):
    ...
    ValueError: ts '2026-01-01T00:00:00' has no UTC offset: write e.g. 2026-01-01T00:00:00Z or epoch seconds
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"ts {value!r} is not an RFC 3339 time or epoch seconds") from None
        value = parsed
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"ts {value.isoformat()!r} has no UTC offset: write e.g. 2026-01-01T00:00:00Z or epoch seconds"
            )
        value = value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"ts {value!r} is not a number or an RFC 3339 time")
    seconds = float(value)
    if not _TS_MIN <= seconds <= _TS_MAX:
        raise ValueError(f"ts {seconds:.3f} is out of range (2000-01-01 to 2100-01-01)")
    return seconds


class Prediction(msgspec.Struct, kw_only=True, gc=False):
    """One prediction made by a model version.

    ``ts`` is event time in seconds since the Unix epoch (UTC); ``score`` is the
    probability of the positive class (multiclass: of the predicted class); ``prediction`` is
    a class or a number. ``class_scores`` (optional, multiclass) holds every class's
    probability, keyed by the class as text: quality is then estimated per class, one versus
    the rest, before labels arrive (metrics/cbpe.py).

    The names in ``features``, ``attributes`` and ``kpis`` hold 1 to 256 characters, like
    every name; decoders check them per batch with :func:`names_ok`, not per key (see there).
    """

    event_id: _ID
    model: _NAME
    version: _NAME
    ts: _TS
    features: dict[str, FeatureValue] = {}
    prediction: int | float | str | bool
    score: _PROBABILITY | None = None
    class_scores: Annotated[dict[str, _PROBABILITY], msgspec.Meta(max_length=MAX_CLASSES)] = {}
    attributes: dict[str, str] = {}
    route: Route = "primary"
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    kpis: dict[str, float] = {}
    request_id: _ID | None = None  # the same request's primary and shadow predictions share it
    schema_version: Literal[1] = 1

    def __post_init__(self) -> None:
        if type(self.ts) is not float:  # an RFC 3339 time, or an int: epoch seconds as a float
            self.ts = epoch_seconds(self.ts)


class _NamedPrediction(Prediction, kw_only=True, gc=False):
    """A Prediction whose names msgspec checks key by key: decoded only to say why a message
    failed :func:`names_ok` (which key, in which section), never on the hot path."""

    features: dict[_NAME, FeatureValue] = {}
    class_scores: Annotated[dict[_NAME, _PROBABILITY], msgspec.Meta(max_length=MAX_CLASSES)] = {}
    attributes: dict[_NAME, str] = {}
    kpis: dict[_NAME, float] = {}


_SECTIONS = tuple(operator.attrgetter(name) for name in ("features", "class_scores", "attributes", "kpis"))


def names_ok(predictions: Sequence[Prediction]) -> bool:
    """Whether every feature, attribute and KPI name of `predictions` has 1 to 256 characters.

    Prediction reads these names as plain ``str``: msgspec then shares one string object per
    distinct key across all events, while a length-constrained key made a new string per key
    and event. The lengths are checked here instead, on the set of distinct names of a whole
    batch (a few dozen for thousands of events): with this check, a 12-feature event decodes
    in 2.8 instead of 3.2 us (``python bench/decode_cost.py``, BENCHMARKS.md).
    """
    keys: set[str] = set()
    for section in _SECTIONS:
        keys.update(*map(section, predictions))
    return all(0 < len(key) <= MAX_NAME_CHARS for key in keys)


class Label(msgspec.Struct, kw_only=True, gc=False):
    """The ground truth for the prediction with the same ``event_id``."""

    event_id: _ID
    label: int | float | str | bool
    ts: _TS
    annotator: _NAME | None = None
    guideline_version: _NAME | None = None  # the labeling guideline the annotator followed
    schema_version: Literal[1] = 1

    def __post_init__(self) -> None:
        if type(self.ts) is not float:
            self.ts = epoch_seconds(self.ts)


Event: TypeAlias = Prediction | Label
EVENT_TYPES: dict[str, type[Prediction] | type[Label]] = {"prediction": Prediction, "label": Label}


class PredictionColumns(msgspec.Struct, kw_only=True):
    event_id: list[_ID]
    model: list[_NAME]
    version: list[_NAME]
    ts: list[_TS]
    prediction: list[int | float | str | bool]
    features: dict[_NAME, list[FeatureValue]] = {}
    score: list[_PROBABILITY | None] | None = None
    #: every event of the envelope has each named class's probability (no nulls: like kpis)
    class_scores: Annotated[dict[_NAME, list[_PROBABILITY]], msgspec.Meta(max_length=MAX_CLASSES)] = {}
    attributes: dict[_NAME, list[str]] = {}
    route: list[Route] | None = None
    latency_ms: list[Annotated[float, msgspec.Meta(ge=0.0)] | None] | None = None
    kpis: dict[_NAME, list[float]] = {}
    request_id: list[_ID | None] | None = None


class LabelColumns(msgspec.Struct, kw_only=True):
    event_id: list[_ID]
    label: list[int | float | str | bool]
    ts: list[_TS]
    annotator: list[_NAME | None] | None = None
    guideline_version: list[_NAME | None] | None = None


class ColumnarEnvelope(msgspec.Struct, kw_only=True):
    schema_version: Literal[1]
    kind: Literal["prediction", "label"]
    columns: msgspec.Raw


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event or message that did not pass the contract: why, and its original bytes."""

    code: str
    reason: str
    payload: bytes
    index: int = -1  # position inside a batch envelope; -1 = the whole message


@dataclass(slots=True)
class Decoded:
    events: list[Any] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


DECODERS = {kind: msgspec.json.Decoder(cls) for kind, cls in EVENT_TYPES.items()}
#: Decoders that check every name as they read it: only to find out why a message failed names_ok.
NAMED_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "prediction": msgspec.json.Decoder(_NamedPrediction),
    "label": DECODERS["label"],
}
LIST_DECODERS = {kind: msgspec.json.Decoder(list[cls]) for kind, cls in EVENT_TYPES.items()}  # type: ignore[valid-type]
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_ANY_JSON = msgspec.json.Decoder()
_ENVELOPE = msgspec.msgpack.Decoder(ColumnarEnvelope)
_COLUMN_DECODERS: dict[str, msgspec.msgpack.Decoder[Any]] = {
    "prediction": msgspec.msgpack.Decoder(PredictionColumns),
    "label": msgspec.msgpack.Decoder(LabelColumns),
}
_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


def _classify(exc: Exception, payload: bytes, kind: str) -> DeadLetter:
    """Turn a decode failure into a dead letter with a stable code and a readable reason."""
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return DeadLetter("not_utf8", f"message is not valid UTF-8: {exc.reason} at byte {exc.start}", payload)
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return DeadLetter("malformed", f"not a valid {kind} message: {text}", payload)
    if "schema_version" in text:
        return DeadLetter(
            "unknown_schema_version", f"{text}; this worker reads schema_version {SCHEMA_VERSION}", payload
        )
    if "missing required field" in text:
        return DeadLetter("missing_field", text, payload)
    if "with a timezone component" in text:  # an RFC 3339 time without an offset
        return DeadLetter(
            "wrong_type", f"{text}: write the offset, e.g. 2026-01-01T00:00:00Z, or epoch seconds", payload
        )
    if "out of range" in text or "<=" in text or ">=" in text or "length" in text:
        return DeadLetter("out_of_range", _name_key(text, payload), payload)
    return DeadLetter("wrong_type", _name_key(text, payload), payload)


def _name_key(text: str, payload: bytes) -> str:
    """msgspec writes `$.features[...]` for a bad map value; name the key instead (slow path only)."""
    if "[...]" not in text:
        return text
    try:
        obj = _ANY_JSON.decode(payload)
    except Exception:  # noqa: BLE001 - keep msgspec's own message
        return text
    for section in ("features", "class_scores", "attributes", "kpis"):
        if f"$.{section}[...]" in text and isinstance(obj, dict) and isinstance(obj.get(section), dict):
            for key, value in obj[section].items():
                bad = isinstance(value, (list, dict)) or (section != "features" and value is None)
                if section == "attributes":
                    bad = not isinstance(value, str)
                elif section in ("kpis", "class_scores"):
                    bad = isinstance(value, bool) or not isinstance(value, (int, float))
                    bad = bad or (section == "class_scores" and not 0 <= value <= 1)
                if isinstance(value, float) and not math.isfinite(value):
                    bad = True
                if bad:
                    return text.replace(f"$.{section}[...]", f"$.{section}[{key!r}]")
    return text


def _decode_one(payload: bytes, kind: str) -> Decoded:
    try:
        event = DECODERS[kind].decode(payload)
        if kind == "label" or names_ok([event]):  # type: ignore[list-item]
            return Decoded(events=[event])
        NAMED_DECODERS[kind].decode(payload)  # raises, naming the section of the bad name
        raise msgspec.ValidationError(f"a name is empty or longer than {MAX_NAME_CHARS} characters")
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Decoded(dead_letters=[_classify(exc, payload, kind)])


def _decode_array(payload: bytes, kind: str) -> Decoded:
    try:
        events = LIST_DECODERS[kind].decode(payload)
        if kind == "label" or names_ok(events):
            return Decoded(events=events)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    # Slow path, only for arrays that hold at least one bad event: keep the good ones.
    try:
        raws = _RAW_LIST.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Decoded(dead_letters=[_classify(exc, payload, kind)])
    out = Decoded()
    for index, raw in enumerate(raws):
        one = _decode_one(bytes(raw), kind)
        out.events.extend(one.events)
        out.dead_letters.extend(
            DeadLetter(d.code, f"event {index} of the batch: {d.reason}", d.payload, index) for d in one.dead_letters
        )
    return out


def _check_lengths(columns: dict[str, Any], n: int) -> str | None:
    for name, col in columns.items():
        if isinstance(col, dict):
            bad = _check_lengths(col, n)
            if bad:
                return f"{name}.{bad}"
        elif col is not None and len(col) != n:
            return f"{name} has {len(col)} values, event_id has {n}"
    return None


def _first_non_finite(col: Sequence[Any]) -> int:
    """Index of the first float NaN/inf in a column, or -1. Vectorised: numpy converts the column in C;
    None also becomes NaN there, so candidates are confirmed one by one (few), and a column numpy cannot
    convert (text) is scanned in Python (only floats can be non-finite)."""
    try:
        arr = np.asarray(col, dtype=np.float64)
    except (TypeError, ValueError):
        if float not in set(map(type, col)):  # e.g. a text column: nothing to check
            return -1
        return next((i for i, v in enumerate(col) if isinstance(v, float) and not math.isfinite(v)), -1)
    for i in np.flatnonzero(~np.isfinite(arr)).tolist():
        v = col[i]
        if isinstance(v, float) and not math.isfinite(v):
            return int(i)
    return -1


def _non_finite(columns: Any) -> str | None:
    """MessagePack can carry NaN/inf, JSON cannot: find the first such value in float columns."""
    for name in ("ts", "score", "latency_ms", "prediction", "label"):
        col = getattr(columns, name, None)
        if col and (i := _first_non_finite(col)) >= 0:
            return f"$.columns.{name}[{i}]"
    for section in ("features", "class_scores", "kpis"):
        for key, col in getattr(columns, section, {}).items():
            if col and (i := _first_non_finite(col)) >= 0:
                return f"$.columns.{section}[{key!r}][{i}]"
    return None


@dataclass(frozen=True, slots=True)
class ColumnarEvents:
    """The events of one columnar envelope that passed every check, kept as the columns they came in.

    The ingest loop stores them column by column (no per-event objects); `rows()` makes the
    events when something needs them one by one.
    """

    kind: Kind
    columns: Any  # PredictionColumns or LabelColumns
    n: int

    def rows(self) -> list[Any]:
        return _rows(self.columns, self.kind, self.n)


def rows_of(envelopes: Sequence[ColumnarEvents]) -> list[Any]:
    """The events of checked envelopes as objects, envelope after envelope."""
    return [row for envelope in envelopes for row in envelope.rows()]


def decode_columnar(payload: bytes, kind: Kind) -> ColumnarEvents | DeadLetter:
    """Check a columnar MessagePack envelope of `kind`: its columns, or why it is a dead letter (never raises)."""
    try:
        return _check_columnar(payload, kind)
    except Exception as exc:  # noqa: BLE001 - as in decode_message: the message is the cause
        return undecodable(exc, payload)


def _check_columnar(payload: bytes, kind: Kind) -> ColumnarEvents | DeadLetter:
    try:
        envelope = _ENVELOPE.decode(payload)
        if envelope.kind != kind:
            return DeadLetter("wrong_kind", f"columnar envelope of kind {envelope.kind!r} on the {kind} topic", payload)
        columns = _COLUMN_DECODERS[kind].decode(envelope.columns)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        letter = _classify(exc, payload, kind)
        return DeadLetter(letter.code, f"columnar envelope: {letter.reason}", payload)
    n = len(columns.event_id)
    if set(map(type, columns.ts)) - {float}:  # RFC 3339 times (or ints) among the epoch seconds
        try:
            columns.ts = [epoch_seconds(v) for v in columns.ts]
        except ValueError as exc:
            code = "out_of_range" if "out of range" in str(exc) else "wrong_type"
            return DeadLetter(code, f"columnar envelope: {exc} - at `$.ts`", payload)
    as_dict = {f: getattr(columns, f) for f in columns.__struct_fields__}
    problem = _check_lengths(as_dict, n)
    if problem:
        return DeadLetter("ragged_columns", f"columnar envelope: {problem}", payload)
    where = _non_finite(columns)
    if where:
        return DeadLetter("not_finite", f"NaN or infinity at {where}", payload)
    return ColumnarEvents(kind, columns, n)


def _decode_columnar(payload: bytes, kind: Kind) -> Decoded:
    checked = decode_columnar(payload, kind)
    if isinstance(checked, DeadLetter):
        return Decoded(dead_letters=[checked])
    return Decoded(events=checked.rows())


def _rows(columns: Any, kind: str, n: int) -> list[Any]:
    if kind == "label":
        annot = columns.annotator or [None] * n
        guide = columns.guideline_version or [None] * n
        return [
            Label(event_id=e, label=lab, ts=t, annotator=a, guideline_version=g)
            for e, lab, t, a, g in zip(columns.event_id, columns.label, columns.ts, annot, guide, strict=True)
        ]

    # The lengths were checked (_check_lengths), so the zips need no strict=True (it costs per row).
    def rows_of(section: dict[str, list[Any]]) -> list[dict[str, Any]]:
        names = list(section)
        return [dict(zip(names, vals)) for vals in zip(*section.values())] if names else [{}] * n  # noqa: B905

    empty: list[None] = [None] * n
    return [
        Prediction(
            event_id=e,
            model=m,
            version=v,
            ts=t,
            features=f,
            prediction=p,
            score=s,
            class_scores=c,
            attributes=a,
            route=r,
            latency_ms=lat,
            kpis=k,
            request_id=q,
        )
        for e, m, v, t, f, p, s, c, a, r, lat, k, q in zip(  # noqa: B905
            columns.event_id,
            columns.model,
            columns.version,
            columns.ts,
            rows_of(columns.features),
            columns.prediction,
            columns.score or empty,
            rows_of(columns.class_scores),
            rows_of(columns.attributes),
            columns.route or ["primary"] * n,
            columns.latency_ms or empty,
            rows_of(columns.kpis),
            columns.request_id or empty,
        )
    ]


def decode_message(payload: bytes, kind: str, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Decoded:
    """Decode one Kafka message of `kind` ("prediction" or "label") into events and dead letters.

    Never raises for any payload: whatever a decoder raises on a message makes that message a
    dead letter (a message nested a thousand levels deep raises RecursionError in msgspec).
    """
    if kind not in EVENT_TYPES:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    try:
        return _decode_message(payload, kind, max_bytes)
    except Exception as exc:  # noqa: BLE001 - no input may stop the worker: the message is the cause
        return Decoded(dead_letters=[undecodable(exc, payload)])


def undecodable(exc: Exception, payload: bytes) -> DeadLetter:
    """The dead letter of a message on which a decoder raised something other than a validation error."""
    if isinstance(exc, RecursionError):
        return DeadLetter("malformed", "message is nested too deeply to decode", payload)
    return DeadLetter("malformed", f"the decoder failed on this message: {type(exc).__name__}: {exc}"[:2000], payload)


def _decode_message(payload: bytes, kind: str, max_bytes: int) -> Decoded:
    if payload is None or len(payload) == 0:
        return Decoded(dead_letters=[DeadLetter("empty", "message has no value", payload or b"")])
    if len(payload) > max_bytes:
        return Decoded(
            dead_letters=[DeadLetter("oversize", f"message is {len(payload)} bytes, the limit is {max_bytes}", payload)]
        )
    first = payload.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    if first == b"{":
        return _decode_one(payload, kind)
    if first == b"[":
        return _decode_array(payload, kind)
    if is_msgpack_map(payload):
        return _decode_columnar(payload, kind)  # type: ignore[arg-type]
    return Decoded(
        dead_letters=[
            DeadLetter(
                "malformed", "message is neither a JSON object/array nor a columnar MessagePack envelope", payload
            )
        ]
    )


def is_msgpack_map(payload: bytes) -> bool:
    """Whether `payload` starts like a MessagePack map (a columnar envelope)."""
    return bool(payload) and (0x80 <= payload[0] <= 0x8F or payload[0] in (0xDE, 0xDF))


def kind_of(event: Event) -> Kind:
    return "prediction" if isinstance(event, Prediction) else "label"


def encode_json(events: Sequence[Event] | Event) -> bytes:
    """A single event as a JSON object, a sequence of events as a JSON array."""
    return _json_encoder.encode(events)


def encode_columnar(events: Sequence[Event]) -> bytes:
    """Encode events of one kind as a columnar MessagePack envelope."""
    if not events:
        raise ValueError("encode_columnar needs at least one event")
    kind = kind_of(events[0])
    if any(kind_of(e) != kind for e in events):
        raise ValueError("a columnar envelope holds events of one kind only")
    columns: dict[str, Any]
    if kind == "label":
        labels: Sequence[Label] = events  # type: ignore[assignment]
        columns = {
            "event_id": [e.event_id for e in labels],
            "label": [e.label for e in labels],
            "ts": [e.ts for e in labels],
        }
        if any(e.annotator is not None for e in labels):
            columns["annotator"] = [e.annotator for e in labels]
        if any(e.guideline_version is not None for e in labels):
            columns["guideline_version"] = [e.guideline_version for e in labels]
    else:
        preds: Sequence[Prediction] = events  # type: ignore[assignment]
        columns = {
            "event_id": [e.event_id for e in preds],
            "model": [e.model for e in preds],
            "version": [e.version for e in preds],
            "ts": [e.ts for e in preds],
            "prediction": [e.prediction for e in preds],
            "score": [e.score for e in preds],
            "route": [e.route for e in preds],
            "latency_ms": [e.latency_ms for e in preds],
            "features": _dict_columns([e.features for e in preds], missing=None),
            "attributes": _dict_columns([e.attributes for e in preds], missing=""),
            "kpis": _dict_columns([e.kpis for e in preds], missing=0.0),
        }
        if any(e.class_scores for e in preds):
            if not all(e.class_scores for e in preds):
                raise ValueError("a columnar envelope holds class_scores for every event of it or for none")
            # a class one event does not name has probability 0 there (a column has no nulls)
            columns["class_scores"] = _dict_columns([e.class_scores for e in preds], missing=0.0)
        if any(e.request_id is not None for e in preds):
            columns["request_id"] = [e.request_id for e in preds]
    return _msgpack_encoder.encode({"schema_version": SCHEMA_VERSION, "kind": kind, "columns": columns})


def _dict_columns(rows: list[dict[str, Any]], missing: Any) -> dict[str, list[Any]]:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return {name: [row.get(name, missing) for row in rows] for name in names}


def canonical_target(value: int | float | str | bool) -> str:
    """One text form per class/number, so that a prediction 1, 1.0 or true joins a label 1."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def strict_dumps(value: Any, **kwargs: Any) -> str:
    """JSON with no NaN or Infinity anywhere (null instead): what every channel driftline writes to
    (the live stream, webhooks, Kafka topics, HTTP endpoints, CLI output, JSON logs) promises, since
    strict parsers such as a browser's ``JSON.parse`` refuse them.

    >>> strict_dumps({"canary": float("nan"), "weights": (1.0, float("inf")), "n": np.float64(2)})
    '{"canary": null, "weights": [1.0, null], "n": 2.0}'
    """
    return json.dumps(_finite(value), allow_nan=False, **kwargs)


def _finite(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
