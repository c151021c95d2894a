"""The engine's column readers: each form gives what the simplest per-event reading gives."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from driftline.events import ColumnarEvents, Prediction, decode_columnar, encode_columnar
from driftline.streams.prediction_batch import ColumnBatch, EventBatch

FEATURES: list[dict[str, Any]] = [
    {"x": 1.5, "y": 2, "c": "a"},
    {"x": None, "y": 3.25, "c": "b"},
    {"x": "n/a", "y": 4.0, "c": None},  # a text where a number belongs
    {"y": True, "c": "a"},  # no x at all
    {"x": 7.0, "y": -1.0, "c": "c", "e": [0.5, 0.25]},
]


def events() -> list[Prediction]:
    return [
        Prediction(event_id=f"e{i}", model="m", version="v1" if i % 2 else "v2", ts=1.8e9 + i, features=f, prediction=1)
        for i, f in enumerate(FEATURES)
    ]


def expected(rows: list[dict[str, Any]], name: str) -> tuple[list[float], int]:
    """Per event: a number (bool counts as one) as float, None or absent as NaN, anything else NaN and a violation."""
    values, bad = [], 0
    for row in rows:
        v = row.get(name)
        if v is None:
            values.append(math.nan)
        elif isinstance(v, (int, float)):
            values.append(float(v))
        else:
            values.append(math.nan)
            bad += 1
    return values, bad


@pytest.mark.parametrize("numeric", [["x"], ["x", "y"], ["y"], ["e", "y"], []])
def test_typed_columns_equal_a_reading_event_by_event(numeric: list[str]) -> None:
    other = [n for n in ["c", "x", "absent"] if n not in numeric]
    evs = events()
    envelope = decode_columnar(encode_columnar(evs), "prediction")
    assert isinstance(envelope, ColumnarEvents)
    whole = ColumnBatch.of(envelope)
    forms = {
        "objects": (EventBatch(evs), FEATURES),
        "columns": (whole, FEATURES),
        "a view of the columns": (whole.take([4, 0, 2]), [FEATURES[i] for i in (4, 0, 2)]),
        "a version of mixed columns": (ColumnBatch.by_version([envelope])[("m", "v1")], FEATURES[1::2]),
    }
    for form, (batch, rows) in forms.items():
        typed, others = batch.typed_columns(numeric, other)
        for name, (x, bad) in zip(numeric, typed, strict=True):
            want, want_bad = expected(rows, name)
            np.testing.assert_array_equal(x, np.array(want), err_msg=f"{form}: {name}")
            assert bad == want_bad, (form, name)
        assert [list(c) for c in others] == [[r.get(n) for r in rows] for n in other], form


@pytest.mark.parametrize(
    "kpis",
    [
        [{"a": 1.0, "b": 2.0}, {"a": 3.5, "b": 0.5}],
        [{"a": 1.0}, {"b": 2.0}],  # as many KPIs each, other names: every name still summed
        [{"a": 1.0}, {"a": 2.0, "b": 4.0}, {}],
        [{}, {}],
    ],
)
def test_kpi_sums_cover_every_name_any_event_has(kpis: list[dict[str, float]]) -> None:
    evs = [
        Prediction(event_id=f"e{i}", model="m", version="v", ts=1.8e9, features={}, prediction=0, kpis=k)
        for i, k in enumerate(kpis)
    ]
    want = {name: sum(k.get(name, 0.0) for k in kpis) for k in kpis for name in k}
    assert EventBatch(evs).kpi_sums() == want


def test_versions_split_in_order_of_first_appearance() -> None:
    from driftline.streams.prediction_batch import _split

    assert _split(["a", "b", "a"], ["1", "1", "1"]) == {("a", "1"): [0, 2], ("b", "1"): [1]}  # one version
    assert _split(["a", "b", "a", "a"], ["2", "1", "1", "2"]) == {("a", "2"): [0, 3], ("b", "1"): [1], ("a", "1"): [2]}
