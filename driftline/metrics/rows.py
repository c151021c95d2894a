"""The rows the stream stores: one metric value (`MetricRow`) and one window's drift sketch (`SketchRow`).

Plain frozen dataclasses with no behaviour, so that everything downstream of the engine
(alerts, canary analysis, sinks, reports) can take them without importing the stream runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One number in the long-format `metrics` table."""

    window_start: float
    window_end: float
    model: str
    version: str
    family: str
    metric: str
    feature: str
    segment: str
    value: float
    n: int
    complete: bool = True


@dataclass(frozen=True)
class SketchRow:
    """One feature's mergeable drift state for one window (a row of ``drift_sketches``)."""

    window_start: float
    window_end: float
    model: str
    version: str
    feature: str
    segment: str
    n: int
    complete: bool
    state: dict[str, Any]
