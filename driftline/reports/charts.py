"""Charts as inline SVG: no plotting dependency, they open in any browser without a network.

Untrusted names (models, features, groups) are HTML-escaped. ``svg_chart`` draws lines over
an ordered x axis (windows, rounds, thresholds); ``svg_bars`` draws grouped bars over
categories (features, groups, models).

>>> "<svg" in svg_bars("importance", ["age", "salary"], [Series("mean |SHAP|", [("age", 0.2), ("salary", 0.5)])])
True
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[str, float]]  # (window label, value)


def _colour(n: int) -> str:
    return _COLOURS[n % len(_COLOURS)]


def nice_axis(lo: float, hi: float, ticks: int = 4) -> tuple[float, float, float]:
    """An axis range that covers [lo, hi] with about `ticks` steps of a round size (1, 2, 2.5 or 5 x 10^k).

    >>> nice_axis(0.0, 0.0909)
    (0.0, 0.1, 0.025)
    >>> nice_axis(-3.2, 41.0)
    (-20.0, 60.0, 20.0)
    """
    if not hi > lo:
        hi = lo + 1.0
    raw = (hi - lo) / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw)
    step = float(f"{step:.12g}")
    return float(f"{math.floor(lo / step) * step:.12g}"), float(f"{math.ceil(hi / step) * step:.12g}"), step


def _open(
    title: str,
    width: int,
    height: int,
    left: int,
    pw: float,
    axis: tuple[float, float, float],
    y: Callable[[float], float],
) -> list[str]:
    """The SVG element, the title and a horizontal grid line with its value at each round tick."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="11"><text x="{left}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>'
    ]
    lo, hi, step = axis
    for k in range(round((hi - lo) / step) + 1):
        v = float(f"{lo + k * step:.12g}")
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    return parts


def _close(parts: list[str], series: list[Series], y_label: str, legend_x: float, top: int, ph: float) -> str:
    """The y-axis label, a legend entry per series in its colour, and the end of the SVG."""
    if y_label:
        mid = top + ph / 2
        parts.append(
            f'<text x="14" y="{mid}" transform="rotate(-90 14 {mid})" text-anchor="middle">'
            f"{html.escape(y_label)}</text>"
        )
    for n, s in enumerate(series):
        parts.append(
            f'<text x="{legend_x + 10}" y="{top + 14 * n + 10}" fill="{_colour(n)}">{html.escape(s.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_chart(
    title: str,
    series: list[Series],
    y_label: str = "",
    marks: set[str] | None = None,
    width: int = 760,
    height: int = 260,
) -> str:
    """An SVG line chart; `marks` are x labels to highlight (e.g. windows where an alarm fired)."""
    series = [s for s in series if s.points]
    xs = sorted({x for s in series for x, _ in s.points})
    values = [v for s in series for _, v in s.points if math.isfinite(v)]
    if not xs or not values:
        return f"<p><b>{html.escape(title)}</b>: no data</p>"
    left, right, top, bottom = 60, 150, 30, 40
    axis = nice_axis(min(0.0, min(values)), max(values))
    lo, hi = axis[0], axis[1]
    pw, ph = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (pw * i / max(1, len(xs) - 1))

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    parts = _open(title, width, height, left, pw, axis, y)
    step = max(1, math.ceil(len(xs) / 8))
    same_day = len({label[:10] for label in xs}) == 1  # then show only the time of day
    for i, label in enumerate(xs):
        if marks and label in marks:
            parts.append(f'<rect x="{x(i) - 3:.1f}" y="{top}" width="6" height="{ph}" fill="#fdd" />')
        if i % step == 0:
            text = html.escape(label[11:] if same_day else label)
            parts.append(f'<text x="{x(i):.1f}" y="{top + ph + 16}" text-anchor="middle">{text}</text>')
    index = {label: i for i, label in enumerate(xs)}
    for n, s in enumerate(series):
        pts = " ".join(f"{x(index[px]):.1f},{y(v):.1f}" for px, v in s.points if math.isfinite(v))
        parts.append(f'<polyline fill="none" stroke="{_colour(n)}" stroke-width="2" points="{pts}"/>')
    return _close(parts, series, y_label, left + pw, top, ph)


def svg_bars(
    title: str,
    categories: list[str],
    series: list[Series],
    y_label: str = "",
    width: int = 760,
    height: int = 280,
) -> str:
    """Grouped vertical bars: one group per category, one bar per series (points keyed by category)."""
    values = {(n, c): v for n, s in enumerate(series) for c, v in s.points if math.isfinite(v)}
    if not categories or not values:
        return f"<p><b>{html.escape(title)}</b>: no data</p>"
    left, right, top, bottom = 60, 150, 30, 60
    axis = nice_axis(min(0.0, *values.values()), max(0.0, *values.values()))
    lo, hi = axis[0], axis[1]
    pw, ph = width - left - right, height - top - bottom
    group_w = pw / len(categories)
    bar_w = max(1.0, group_w * 0.8 / max(1, len(series)))

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    parts = _open(title, width, height, left, pw, axis, y)
    for i, category in enumerate(categories):
        x0 = left + i * group_w + group_w * 0.1
        for n in range(len(series)):
            bar = values.get((n, category))
            if bar is None:
                continue
            y0, y1 = sorted((y(0.0), y(bar)))
            parts.append(
                f'<rect x="{x0 + n * bar_w:.1f}" y="{y0:.1f}" width="{bar_w * 0.95:.1f}" height="{y1 - y0:.1f}" '
                f'fill="{_colour(n)}"><title>{html.escape(category)}: {bar:.4g}</title></rect>'
            )
        cx = left + (i + 0.5) * group_w
        label = html.escape(category if len(category) <= 14 else category[:13] + "…")
        parts.append(f'<text x="{cx:.1f}" y="{top + ph + 16}" text-anchor="middle">{label}</text>')
    return _close(parts, series, y_label, left + pw, top, ph)
