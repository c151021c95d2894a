"""Shared pieces of the benchmarks: a realistic event, timing, and the results table."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from driftline.events import Prediction, encode_json

RESULTS = Path(__file__).parent / "results"


def event(i: int, ts: float) -> Prediction:
    """A ~635-byte prediction, the size the design notes measured with: 9 numeric, 3 categorical features."""
    return Prediction(
        event_id=f"bench-{i:012d}",
        model=f"model-{i % 4}",
        version="v12",
        ts=ts + i * 0.001,
        features={
            **{f"num_{k}": (i * 7919 + k * 104729) % 10007 / 101.0 for k in range(9)},
            **{f"cat_{k}": f"value-{(i + k) % 17}" for k in range(3)},
        },
        prediction=i % 2,
        score=((i * 31) % 1000) / 1000.0,
        attributes={"sex": "F" if i % 2 else "M", "region": f"r{i % 5}"},
        route="primary",
        latency_ms=1.5,
        kpis={"revenue": float(i % 100)},
    )


def median_rate(fn: Callable[[], tuple[int, float]], repeats: int) -> tuple[float, list[float]]:
    """Run `fn` (returns events, seconds) `repeats` times; the median events/s and all rates."""
    rates = []
    for _ in range(repeats):
        n, seconds = fn()
        rates.append(n / seconds)
    return statistics.median(rates), rates


def report(name: str, rows: list[tuple[str, float, float]], baseline: str, notes: str = "") -> None:
    """Print a Markdown table (name, events/s, ratio to baseline) and save it as JSON."""
    print(f"\n### {name}\n\nbaseline: {baseline}; {platform.python_version()}, {time.strftime('%Y-%m-%d')}\n")
    print("| variant | events/s | ratio to baseline |\n|---|---:|---:|")
    for label, rate, ratio in rows:
        print(f"| {label} | {rate:,.0f} | {ratio:.2f} |")
    if notes:
        print(f"\n{notes}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"baseline": baseline, "rows": rows, "date": time.strftime("%Y-%m-%d")}, indent=1)
    )


def event_size() -> int:
    return len(encode_json(event(1, time.time())))
