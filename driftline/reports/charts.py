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


def tick_label(value: float, step: float) -> str:
    """A tick as people write it: 1k, 2.5k, 100M, 0.025 -- never 2.96e+03 or 5.14e+08.

    Thousands and up take a k/M/G/T suffix, with as many decimals as the step needs; smaller
    values as many decimals as the step has.

    >>> [tick_label(v, 1000.0) for v in (0.0, 1000.0, 2000.0)]
    ['0', '1k', '2k']
    >>> tick_label(5e8, 1e8), tick_label(2500.0, 500.0), tick_label(0.025, 0.025), tick_label(-20.0, 20.0)
    ('500M', '2.5k', '0.025', '-20')
    """
    for power, suffix in ((12, "T"), (9, "G"), (6, "M"), (3, "k")):
        unit = 10.0**power
        if abs(value) >= unit and step >= unit / 100:
            decimals = max(0, -math.floor(math.log10(step / unit) + 1e-9))
            return _trim(f"{value / unit:.{decimals}f}") + suffix
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    return _trim(f"{value:.{min(decimals + 1, 12)}f}")


def human(value: float) -> str:
    """A value with 3 significant digits, large ones with a k/M/G/T suffix: 171M, 1.5k, 0.0682.

    >>> human(1.713e8), human(1500.0), human(0.0682), human(-2.5e9), human(12.0), human(999_999.0)
    ('171M', '1.5k', '0.0682', '-2.5G', '12', '1M')
    """
    for power, suffix in ((12, "T"), (9, "G"), (6, "M"), (3, "k")):
        if abs(value) >= 10.0**power * 0.9995:  # 999,999 reads 1M, not 1e+03k
            return _trim(f"{value / 10.0**power:.3g}") + suffix
    return _trim(f"{value:.3g}") if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _trim(text: str) -> str:
    """Trailing zeros of the fraction off: 2.50 -> 2.5, 3.00 -> 3, 500 stays; -0 -> 0."""
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("-0", "") else text


def _no_data(title: str, why: str) -> str:
    return f"<p><b>{html.escape(title)}</b>: no data{f' ({html.escape(why)})' if why else ''}.</p>"


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
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{tick_label(v, step)}</text>')
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
    empty: str = "",
) -> str:
    """An SVG line chart; `marks` are x labels to highlight (e.g. windows where an alarm fired).

    Every point also gets a dot while a series is short (under 40 points), so a series of one
    point (a one-day review) shows. Without data, a line says so, and why (`empty`).
    """
    series = [s for s in series if s.points]
    xs = sorted({x for s in series for x, _ in s.points})
    values = [v for s in series for _, v in s.points if math.isfinite(v)]
    if not xs or not values:
        return _no_data(title, empty)
    left, right, top, bottom = 60, 150, 30, 40
    axis = nice_axis(min(0.0, min(values)), max(values))
    lo, hi = axis[0], axis[1]
    pw, ph = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (pw * i / (len(xs) - 1) if len(xs) > 1 else pw / 2)

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
        finite = [(x(index[px]), y(v), px, v) for px, v in s.points if math.isfinite(v)]
        pts = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _, _ in finite)
        parts.append(f'<polyline fill="none" stroke="{_colour(n)}" stroke-width="2" points="{pts}"/>')
        if len(xs) < 40:
            parts += [
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{_colour(n)}">'
                f"<title>{html.escape(s.label)} {html.escape(px)}: {human(v)}</title></circle>"
                for cx, cy, px, v in finite
            ]
    return _close(parts, series, y_label, left + pw, top, ph)


def svg_bars(
    title: str,
    categories: list[str],
    series: list[Series],
    y_label: str = "",
    width: int = 760,
    height: int = 280,
    empty: str = "",
) -> str:
    """Grouped vertical bars: one group per category, one bar per series (points keyed by category)."""
    values = {(n, c): v for n, s in enumerate(series) for c, v in s.points if math.isfinite(v)}
    if not categories or not values:
        return _no_data(title, empty)
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
                f'fill="{_colour(n)}"><title>{html.escape(category)}: {human(bar)}</title></rect>'
            )
        cx = left + (i + 0.5) * group_w
        label = html.escape(category if len(category) <= 14 else category[:13] + "…")
        parts.append(f'<text x="{cx:.1f}" y="{top + ph + 16}" text-anchor="middle">{label}</text>')
    return _close(parts, series, y_label, left + pw, top, ph)
