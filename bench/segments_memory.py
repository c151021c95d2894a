"""Segments keep memory bounded: the engine with and without segments, on an attribute of 100,000 values.

    python bench/segments_memory.py [--events 2000000] [--batch 10000] [--top-k 10]

Each run sends the same events (12 features, 4 models, 5-minute windows, as bench/monitor_memory.py)
through MonitoringEngine.update in batches; every event carries `customer` with one of 100,000
values (so a segment per value would grow without end) and the segments are
`{attribute: customer, top_k: K}` plus `{name: high, where: "num_0 >= 50"}`. Prints RSS after
each million events and the engine's events/s, for both runs: the baseline (no segments) is
measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

from common import event

from driftline.spec import MonitorSpec
from driftline.streams.ingest import tune_gc
from driftline.streams.monitor import MonitoringEngine


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(spec: MonitorSpec, events: int, batch: int, label: str) -> None:
    t0 = time.time() - 86_400
    template = [event(i, t0) for i in range(batch)]
    engine = MonitoringEngine(spec, window_s=300, allowed_lateness_s=60)
    done, busy, rows, segments = 0, 0.0, 0, set()
    start_rss = rss_mb()
    while done < events:
        for i, e in enumerate(template):
            e.event_id = f"{done + i}"
            e.ts = t0 + (done + i) * 0.01
            e.attributes = {"customer": f"c{(done + i) * 7919 % 100_000}"}
        started = time.perf_counter()
        out = engine.update(template)
        busy += time.perf_counter() - started
        rows += len(out)
        segments |= {r.segment for r in out if r.segment}
        engine.take_sketches()
        done += batch
        if done % 1_000_000 == 0:
            print(
                f"{label}: {done:>9,} events, RSS {rss_mb():.0f} MiB (+{rss_mb() - start_rss:.0f}), "
                f"{done / busy:,.0f} events/s, {rows:,} rows, {len(segments)} segment labels seen"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--top-k", type=int, default=10)
    args = ap.parse_args()
    tune_gc()
    plain = MonitorSpec.from_yaml("defaults: {window: 5m}")
    segmented = MonitorSpec.from_yaml(
        f"defaults: {{window: 5m, segments: [{{attribute: customer, top_k: {args.top_k}}}, "
        "{name: high, where: 'num_0 >= 50'}]}"
    )
    run(plain, args.events, args.batch, "no segments  ")
    gc.collect()
    run(segmented, args.events, args.batch, f"top_k {args.top_k:<6}")


if __name__ == "__main__":
    main()
