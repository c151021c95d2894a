"""Columnar envelopes into ClickHouse as columns: no per-event Python objects on the way.

An envelope's columns are encoded as ClickHouse's ``JSONColumns`` format (one msgspec call
for the whole batch) and one ``INSERT ... SELECT`` turns them into the table's shape in
C++: the feature columns into the ``features`` JSON text, attribute, KPI and class-score columns into
maps. Made this way, the stored rows equal the rows stored for the same events sent as
JSON (the integration test compares them); the worker's Python thread skips making one
Prediction object and one JSON row per event (BENCHMARKS.md).

User-given names (features, attributes, KPIs) reach the SQL only as escaped string
literals; the input's columns are named ``f0``, ``a0``, ``k0``, ``c0``... Envelopes of one shape
(the same features with the same value types, attributes and KPIs) share one insert. A
feature column holding more than one value type has no ClickHouse type: such an envelope
has no shape, and the sink writes it row by row like JSON events.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from driftline.events import ColumnarEvents

_encode = msgspec.json.Encoder().encode
_TYPES: dict[type, str] = {
    float: "Nullable(Float64)",
    int: "Nullable(Float64)",
    str: "Nullable(String)",
    bool: "Nullable(Bool)",
}
#: How ClickHouse reads the JSON columns: numbers and booleans into the String columns
#: (`prediction`, `label`) as their JSON text, like the JSONEachRow inserts of JSON events.
SETTINGS = {"input_format_json_read_numbers_as_strings": 1, "input_format_json_read_bools_as_strings": 1}

Shape = tuple[tuple[tuple[str, str], ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class ColumnarInsert:
    """One INSERT ... SELECT: the table's columns, expressions over the input, its structure, the data."""

    columns: list[str]
    select: str
    structure: str
    body: bytes
    events: list[ColumnarEvents]

    def sql(self, table: str, source: str, settings: dict[str, Any]) -> str:
        clause = ", ".join(f"{k} = {literal(v)}" for k, v in {**SETTINGS, **settings}.items())
        return f"INSERT INTO {table} ({', '.join(self.columns)}) SELECT {self.select} FROM {source} SETTINGS {clause}"


def literal(value: Any) -> str:
    """A ClickHouse literal for an int or a string (backslashes and quotes escaped)."""
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _feature_type(values: Sequence[Any]) -> str | None:
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if not kinds:
        return _TYPES[float]  # all missing: null whatever the type
    types = {_TYPES.get(k) for k in kinds}
    return types.pop() if len(types) == 1 else None


def prediction_shape(envelope: ColumnarEvents) -> Shape | None:
    cols = envelope.columns
    features = []
    for name, values in cols.features.items():
        kind = _feature_type(values)
        if kind is None:
            return None
        features.append((name, kind))
    return tuple(features), tuple(cols.attributes), tuple(cols.kpis), tuple(cols.class_scores)


def _field(name: str) -> Callable[[ColumnarEvents], list[Any] | None]:
    """A getter of one of an envelope's columns (None: the envelope left the column out)."""
    return operator.attrgetter(f"columns.{name}")


def _section_getter(section: str, name: str) -> Callable[[ColumnarEvents], list[Any] | None]:
    """A getter of the column `name` in an envelope's `section` (features, attributes or kpis)."""

    def get(envelope: ColumnarEvents) -> list[Any] | None:
        values: list[Any] = getattr(envelope.columns, section)[name]
        return values

    return get


def _concat(group: list[ColumnarEvents], column: Callable[[ColumnarEvents], list[Any] | None], fill: Any) -> list[Any]:
    out: list[Any] = []
    for envelope in group:
        values = column(envelope)
        out += values if values is not None else [fill] * envelope.n
    return out


def prediction_insert(shape: Shape, group: list[ColumnarEvents]) -> ColumnarInsert:
    features, attributes, kpis, class_scores = shape
    c = _field
    body: dict[str, list[Any]] = {
        "event_id": _concat(group, c("event_id"), None),
        "model": _concat(group, c("model"), None),
        "version": _concat(group, c("version"), None),
        "ts": _concat(group, c("ts"), None),
        "route": _concat(group, c("route"), "primary"),
        "prediction": _concat(group, c("prediction"), None),
        "score": _concat(group, c("score"), None),
        "latency_ms": _concat(group, c("latency_ms"), None),
        "request_id": _concat(group, c("request_id"), None),
    }
    structure = [
        "event_id String",
        "model String",
        "version String",
        "ts DateTime64(3, 'UTC')",
        "route String",
        "prediction String",
        "score Nullable(Float64)",
        "latency_ms Nullable(Float64)",
        "request_id Nullable(String)",
    ]
    parts = []
    for i, (name, kind) in enumerate(features):
        body[f"f{i}"] = _concat(group, _section_getter("features", name), None)
        structure.append(f"f{i} {kind}")
        key = _encode(name).decode() + ":"  # the key as JSON text, then the value as JSON text
        parts.append(literal(("{" if i == 0 else ",") + key) + f", ifNull(toJSONString(f{i}), 'null')")
    select = "event_id, model, version, ts, route, prediction, score, latency_ms, ifNull(request_id, '')"
    columns = ["event_id", "model", "version", "ts", "route", "prediction", "score", "latency_ms", "request_id"]
    columns.append("features")
    select += ", concat(" + ", ".join(parts) + ", '}')" if parts else ", '{}'"
    maps = (
        ("attributes", attributes, "String", "a"),
        ("kpis", kpis, "Float64", "k"),
        ("class_scores", class_scores, "Float64", "c"),
    )
    for section, names, kind, tag in maps:
        if not names:
            continue  # the column's default: an empty map
        pairs = []
        for i, name in enumerate(names):
            body[f"{tag}{i}"] = _concat(group, _section_getter(section, name), None)
            structure.append(f"{tag}{i} {kind}")
            pairs.append(f"{literal(name)}, {tag}{i}")
        columns.append(section)
        select += f", map({', '.join(pairs)})"
    return ColumnarInsert(columns, select, ", ".join(structure), _encode(body), group)


def label_insert(group: list[ColumnarEvents]) -> ColumnarInsert:
    c = _field
    body = {
        "event_id": _concat(group, c("event_id"), None),
        "label": _concat(group, c("label"), None),
        "ts": _concat(group, c("ts"), None),
        "annotator": _concat(group, c("annotator"), None),
        "guideline_version": _concat(group, c("guideline_version"), None),
    }
    structure = (
        "event_id String, label String, ts DateTime64(3, 'UTC'), annotator Nullable(String), "
        "guideline_version Nullable(String)"
    )
    select = "event_id, label, ts, ifNull(annotator, ''), ifNull(guideline_version, '')"
    return ColumnarInsert(
        ["event_id", "label", "ts", "annotator", "guideline_version"], select, structure, _encode(body), group
    )


def plan(kind: str, envelopes: Sequence[ColumnarEvents]) -> tuple[list[ColumnarInsert], list[ColumnarEvents]]:
    """The inserts for `envelopes` of `kind`, and the envelopes to write row by row (no shape)."""
    if kind == "label":
        return ([label_insert(list(envelopes))] if envelopes else []), []
    groups: dict[Shape, list[ColumnarEvents]] = {}
    rest = []
    for envelope in envelopes:
        shape = prediction_shape(envelope)
        if shape is None:
            rest.append(envelope)
        else:
            groups.setdefault(shape, []).append(envelope)
    return [prediction_insert(shape, group) for shape, group in groups.items()], rest
