"""Charts people look at (issue 22.6): human tick values, a one-point series visible, no silent empty chart."""

from __future__ import annotations

import re

import pytest

from driftline.reports.charts import Series, svg_bars, svg_chart
from driftline.reports.review_page import _charts


def ticks(svg: str) -> list[str]:
    return re.findall(r'text-anchor="end">([^<]+)</text>', svg)


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        (2960.0, ["0", "1k", "2k", "3k"]),
        (5.14e8, ["0", "200M", "400M", "600M"]),
        (0.0682, ["0", "0.02", "0.04", "0.06", "0.08"]),
        (1.5e6, ["0", "500k", "1M", "1.5M"]),
    ],
)
def test_ticks_are_round_human_values(top: float, expected: list[str]) -> None:
    """The review showed `2.96e+03`, `5.14e+08` and `0.0682` on its axes."""
    line = svg_chart("t", [Series("s", [("2026-12-01", top / 3), ("2026-12-02", top)])])
    bars = svg_bars("t", ["a", "b"], [Series("s", [("a", top / 3), ("b", top)])])
    assert ticks(line) == expected and ticks(bars) == expected
    assert "e+" not in line and "e-0" not in line


def test_a_one_point_series_is_drawn() -> None:
    """A review of one day had six "per day" charts with one point each, and a polyline of one point is invisible."""
    svg = svg_chart("Accuracy per day", [Series("v1", [("2026-12-05", 0.91)]), Series("v2", [("2026-12-05", 0.8)])])
    assert svg.count("<circle") == 2
    cx = [float(v) for v in re.findall(r'<circle cx="([\d.]+)"', svg)]
    assert cx[0] == cx[1] and 200 < cx[0] < 500  # in the middle of the plot, not on the y axis


def test_a_long_series_has_no_dots_and_an_empty_chart_says_why() -> None:
    long = svg_chart("x", [Series("s", [(f"2026-12-{d:02d}", float(d)) for d in range(1, 31)] * 2)])
    assert "<circle" in long  # 30 distinct x values: still dotted
    days = [(f"w{i:03d}", float(i)) for i in range(60)]
    assert "<circle" not in svg_chart("x", [Series("s", days)])
    empty = svg_chart("Accuracy per day", [], empty="no labelled predictions in the period")
    assert empty == "<p><b>Accuracy per day</b>: no data (no labelled predictions in the period).</p>"


def test_the_review_charts_of_a_one_day_period() -> None:
    day = "2026-12-05"
    review = {
        "daily": {
            "v1|volume|predictions|": [(day, 1200.0)],
            "v1|quality|accuracy|": [(day, 0.91)],
            "v1|drift|psi|age": [(day, 0.31)],
            "v1|kpi|latency_p95_ms|": [(day, 41.0)],
        },
        "data_science": {"drift": [{"feature": "age"}]},
    }
    charts = _charts(review)
    assert len(charts) == 6
    drawn = [c for c in charts if c.startswith("<svg")]
    assert len(drawn) == 4 and all("<circle" in c for c in drawn)
    explained = [c for c in charts if not c.startswith("<svg")]
    assert any("declare sensitive attributes" in c for c in explained)
    assert any("no events carried kpis" in c for c in explained)
    assert all("no data (" in c for c in explained)
