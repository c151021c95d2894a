"""What an embedding feature costs the engine: the same events with and without a vector feature.

    python bench/embedding_cost.py [--events 200000] [--dim 128]

12 scalar features (bench/common.py) plus, in the second run, a `dim`-long embedding of rank 8
plus noise; 5-minute windows, batches of 5,000, reference from the first 2,000 events. Prints
the engine's events/s for both runs (the baseline in the same run) and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import event

from driftline.streams.monitor import MonitoringEngine


def run(events: list, batch: int) -> float:  # type: ignore[type-arg]
    engine = MonitoringEngine(window_s=300, allowed_lateness_s=60)
    busy = 0.0
    for i in range(0, len(events), batch):
        started = time.perf_counter()
        engine.update(events[i : i + batch])
        engine.take_sketches()
        busy += time.perf_counter() - started
    return len(events) / busy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=5_000)
    args = ap.parse_args()
    t0 = time.time() - 86_400
    plain = [event(i, t0) for i in range(args.events)]
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, args.dim))
    vectors = rng.normal(size=(args.events, 8)) @ basis + 0.1 * rng.normal(size=(args.events, args.dim))
    embedded = [event(i, t0) for i in range(args.events)]
    for e, v in zip(embedded, vectors.tolist(), strict=True):
        e.features = {**e.features, "emb": v}
    base = run(plain, args.batch)
    with_vectors = run(embedded, args.batch)
    print(
        f"no embedding: {base:,.0f} events/s; with a {args.dim}-d embedding: {with_vectors:,.0f} events/s "
        f"({with_vectors / base:.2f} of the baseline)"
    )


if __name__ == "__main__":
    main()
