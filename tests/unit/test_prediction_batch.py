"""The engine's column readers: each form gives what the simplest per-event reading gives."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_text_that_reads_as_a_number_is_a_type_violation_in_any_batch() -> None:
    """numpy parses "1.5" into 1.5: the text counted as a violation only when a batch also held
    a text that is not a number (found reading `_floats` for issue 21.2)."""
    from driftline.streams.prediction_batch import as_float

    for values in [("1.5", 2.0), ("1.5", "n/a", 2.0), ("1e3",), (None, "7", 1.0)]:
        x, bad = as_float(values)
        assert bad == sum(isinstance(v, str) for v in values), values
        assert np.isnan(x[[isinstance(v, str) for v in values]]).all(), values
    evs = [
        Prediction(event_id=f"e{i}", model="m", version="v", ts=1.8e9, features={"x": x}, prediction=0)
        for i, x in enumerate(["1.5", 2.0, None])
    ]
    envelope = decode_columnar(encode_columnar(evs), "prediction")
    assert isinstance(envelope, ColumnarEvents)
    for batch in (EventBatch(evs), ColumnBatch.of(envelope)):
        [(x, bad)], _ = batch.typed_columns(["x"], [])
        assert bad == 1
        np.testing.assert_array_equal(x, [math.nan, 2.0, math.nan])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["x", "y", "c"]),
            st.one_of(st.none(), st.floats(allow_nan=False), st.booleans(), st.sampled_from(["a", "1.5"])),
        ),
        max_size=1200,
    )
)
def test_typed_columns_read_in_steps_equal_one_reading_event_by_event(rows: list[dict[str, Any]]) -> None:
    """EventBatch reads 512 events at a time: every step boundary gives what one reading gives."""
    evs = [
        Prediction(event_id=f"e{i}", model="m", version="v", ts=1.8e9, features=f, prediction=0)
        for i, f in enumerate(rows)
    ]
    typed, others = EventBatch(evs).typed_columns(["x", "y"], ["c", "y"])
    for name, (x, bad) in zip(["x", "y"], typed, strict=True):
        want, want_bad = expected(rows, name)
        np.testing.assert_array_equal(x, np.array(want, dtype=np.float64))
        assert bad == want_bad
    assert [list(c) for c in others] == [[r.get(n) for r in rows] for n in ["c", "y"]]


def _kpi_events(kpis: list[dict[str, float]]) -> list[Prediction]:
    return [
        Prediction(event_id=f"e{i}", model="m", version="v", ts=1.8e9, features={}, prediction=0, kpis=k)
        for i, k in enumerate(kpis)
    ]


def _one_sum(kpis: list[dict[str, float]]) -> dict[str, float]:
    names = dict.fromkeys(n for k in kpis for n in k)
    return {name: sum(k.get(name, 0.0) for k in kpis) for name in names}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(allow_nan=False, allow_infinity=False)),
        min_size=1,
        max_size=1500,
    )
)
def test_kpi_sums_read_in_steps_equal_one_sum_in_event_order(kpis: list[dict[str, float]]) -> None:
    """EventBatch sums 512 events at a time, carrying each sum on: the same floats, in the same
    order of names, as one sum over the batch."""
    got = EventBatch(_kpi_events(kpis)).kpi_sums()
    assert list(got) == list(_one_sum(kpis))
    assert got == _one_sum(kpis)


@pytest.mark.parametrize("odd", [0, 511, 512, 600, 1099])
def test_kpi_sums_where_one_event_of_a_step_names_others(odd: int) -> None:
    """Every event has two KPIs, one of them another: nothing of that step is counted twice."""
    kpis = [{"a": 0.1 * i, "b": 1.0} for i in range(1100)]
    kpis[odd] = {"a": 1.0, "c": 3.0}
    got = EventBatch(_kpi_events(kpis)).kpi_sums()
    assert got == _one_sum(kpis)
    assert list(got) == list(_one_sum(kpis))  # in order of first appearance
