"""Hybrid edge/server inference: the edge model answers when it is confident, the server otherwise.

For each confidence threshold t, a row is answered on the edge when the edge model's top
probability is at least t, and escalated to the server model when not. The curve over t
gives accuracy, mean latency per row and escalation rate, measured on the holdout with both
models' real per-row latencies (batch 1). At t = 0.5 everything stays on the edge; at
t > 1 everything goes to the server. Every routing decision can be logged as a prediction
event (version ``edge``/``server``, ``attributes.tier``, ``latency_ms``) so that the stream
monitors both tiers like any other model version.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.events import Prediction


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    accuracy: float
    escalation_rate: float
    mean_latency_ms: float


def per_row_latency_ms(
    predict: Callable[[npt.NDArray[np.float32]], Any], x: npt.NDArray[np.float32], rows: int = 200
) -> float:
    """Median milliseconds to answer one row (batch 1), over `rows` rows."""
    times = []
    for i in range(min(rows, len(x))):
        t0 = time.perf_counter()
        predict(x[i : i + 1])
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


#: The thresholds of the trade-off table, from all edge (0.5) to all server (1.01); the chosen one is added.
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01)


def curve(
    edge_proba: npt.NDArray[np.float64],
    server_proba: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    edge_ms: float,
    server_ms: float,
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[CurvePoint]:
    """The trade-off: an escalated row costs the edge's latency plus the server's."""
    confidence = np.maximum(edge_proba, 1 - edge_proba)
    out = []
    for t in sorted(set(thresholds)):
        escalate = confidence < t
        proba = np.where(escalate, server_proba, edge_proba)
        accuracy = float(np.mean((proba >= 0.5).astype(np.int64) == y))
        rate = float(np.mean(escalate))
        out.append(CurvePoint(t, accuracy, rate, edge_ms + rate * server_ms))
    return out


def routing_events(
    model: str,
    edge_proba: npt.NDArray[np.float64],
    server_proba: npt.NDArray[np.float64],
    threshold: float,
    edge_ms: float,
    server_ms: float,
    ts: float | None = None,
    features: Sequence[dict[str, float]] | None = None,
) -> list[Prediction]:
    """One prediction event per answered row, tagged with the tier that answered it."""
    now = time.time() if ts is None else ts
    confidence = np.maximum(edge_proba, 1 - edge_proba)
    out = []
    for i, (c, pe, ps) in enumerate(zip(confidence.tolist(), edge_proba.tolist(), server_proba.tolist(), strict=True)):
        server = c < threshold
        score = ps if server else pe
        out.append(
            Prediction(
                event_id=f"hybrid-{uuid.uuid4().hex}",
                model=model,
                version="server" if server else "edge",
                ts=now + i * 0.001,
                prediction=int(score >= 0.5),
                score=float(score),
                features=dict(features[i]) if features else {},
                attributes={"tier": "server" if server else "edge"},
                latency_ms=edge_ms + (server_ms if server else 0.0),
            )
        )
    return out
