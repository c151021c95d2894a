"""Memory of the monitoring engine: RSS after 1M and after 10M events must be flat (+-10 %).

    python bench/monitor_memory.py [--events 10000000] [--batch 10000]

Events go through MonitoringEngine.update in batches, as the worker does, with event time
advancing so windows open and close (5-minute windows, 2 model versions, 12 features).
Also prints the engine's own throughput (events/s, the engine alone).
"""

from __future__ import annotations

import argparse
import os
import time

from common import event

from driftline.streams.ingest import tune_gc
from driftline.streams.monitor import MonitoringEngine


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args()
    tune_gc()  # as the worker does
    t0 = time.time() - 86_400
    template = [event(i, t0) for i in range(args.batch)]
    engine = MonitoringEngine(window_s=300, allowed_lateness_s=60)
    step = 0.01  # 100 events per second of event time: a window holds 30,000 events
    marks = {n: 0.0 for n in range(1_000_000, args.events + 1, 1_000_000)}  # RSS every million events
    done, busy, rows = 0, 0.0, 0
    while done < args.events:
        for i, e in enumerate(template):  # fresh ids and times; the objects are reused to keep the bench lean
            e.event_id = f"{done + i}"
            e.ts = t0 + (done + i) * step
        started = time.perf_counter()
        rows += len(engine.update(template))
        engine.take_sketches()  # the worker writes them to ClickHouse after every batch
        busy += time.perf_counter() - started
        done += len(template)
        if done in marks:
            marks[done] = rss_mb()
            print(f"{done:>11,} events: RSS {marks[done]:.0f} MiB, engine {done / busy:,.0f} events/s, {rows:,} rows")
    first, last = marks[1_000_000], marks[args.events]
    print(f"\nRSS ratio {args.events:,} / 1,000,000 events: {last / first:.3f} (target 0.90-1.10)")
    print(f"largest RSS {max(marks.values()):.0f} MiB, smallest after 1M events {min(marks.values()):.0f} MiB")


if __name__ == "__main__":
    main()
