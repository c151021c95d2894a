"""One model across many workers: the engine's rate on one model alone vs split over processes, and the merge.

    cd bench && python spread_model.py [--events 400000] [--workers 2] [--repeats 3]

One model, 12 features (bench/common.py's event, all of model-0), 5-minute windows, batches of
5,000 events. Baseline (same run): one process's MonitoringEngine on every event. Then
`--workers` processes, each with its own engine on the share of events whose event id hashes to
it (as Kafka spreads `partition_key: event_id`), started together: their rate is all events over
the wall time of the slowest. Then the owner's side: each window's shares merged into rows
(`merge_parts`), timed per window, and the shares' bytes per window. On a machine with fewer
cores than workers the processes share cores, so read the ratio with the core count printed.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import statistics
import time
import zlib
from collections import defaultdict

from common import event

from driftline.events import Prediction
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine, WindowPart

SPEC = "defaults: {window: 5m, allowed_lateness: 1m}\nmodels: {model-0: {partition_key: event_id}}\n"
T0 = 1_800_000_000.0


def stream(n: int) -> list[Prediction]:
    out = []
    for i in range(n):
        e = event(i * 4, T0)  # model-0 only
        e.ts = T0 + i * 0.01  # 100 events per second of event time: 30,000 per window
        out.append(e)
    return out


def share_of(events: list[Prediction], worker: int, workers: int) -> list[Prediction]:
    return [e for e in events if zlib.crc32(e.event_id.encode()) % workers == worker]


def run_engine(events: list[Prediction], spread: bool, batch: int = 5000) -> tuple[float, list[WindowPart]]:
    spec = MonitorSpec.from_yaml(SPEC if spread else SPEC.split("\nmodels")[0])
    engine = MonitoringEngine(spec, reference_events=2000)
    if spread:  # spread models need their profile beforehand: the same one in every worker
        engine_ref = MonitoringEngine(MonitorSpec.from_yaml(SPEC.split("\nmodels")[0]), reference_events=2000)
        engine_ref.update(stream(2000))
        (profile,) = engine_ref.take_profiles()
        engine.set_profile(profile)
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        engine.update(events[i : i + batch])
    engine.flush()
    return time.perf_counter() - start, engine.take_parts()


def _worker(events: list[Prediction], spread: bool, out: mp.Queue) -> None:  # type: ignore[type-arg]
    seconds, parts = run_engine(events, spread=spread)
    out.put((seconds, parts))


def in_processes(shares: list[list[Prediction]], spread: bool) -> tuple[float, float, list[WindowPart]]:
    """Each share in its own process, started together: (wall seconds, slowest engine's seconds, parts)."""
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_worker, args=(share, spread, queue)) for share in shares]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    return wall, max(seconds for seconds, _ in results), [part for _, ps in results for part in ps]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    events = stream(args.events)
    shares = [share_of(events, w, args.workers) for w in range(args.workers)]
    gc.freeze()  # the parent's events stay out of the children's collections (as in one worker)
    single_rates, spread_rates, inner = [], [], []
    parts: list[WindowPart] = []
    for _ in range(args.repeats):
        wall, _, _ = in_processes([events], spread=False)  # the baseline: one process, every event
        single_rates.append(args.events / wall)
        wall, slowest, parts = in_processes(shares, spread=True)
        spread_rates.append(args.events / wall)
        inner.append(slowest)
    by_window: dict[float, list[WindowPart]] = defaultdict(list)
    for part in parts:
        by_window[part.start].append(part)
    owner = MonitoringEngine(MonitorSpec.from_yaml(SPEC))
    merge_ms, share_bytes = [], []
    for start, group in sorted(by_window.items()):
        t = time.perf_counter()
        owner.merge_parts("model-0", "v12", start, group[0].end, [p.state for p in group])
        merge_ms.append((time.perf_counter() - t) * 1000)
        share_bytes.append(sum(len(p.state) for p in group))
    single, spread = statistics.median(single_rates), statistics.median(spread_rates)
    print(f"cores: {os.cpu_count()}; events: {args.events:,} of one model; workers: {args.workers}")
    print(f"one engine, every event:        {single:>10,.0f} events/s  (runs: {[round(r) for r in single_rates]})")
    print(
        f"{args.workers} engines, a share each:     {spread:>10,.0f} events/s"
        f"  (runs: {[round(r) for r in spread_rates]})  = {spread / single:.2f} of one"
    )
    print(f"   the slowest engine's own update time: {args.events / statistics.median(inner):,.0f} events/s")
    print(
        f"owner: merge {statistics.median(merge_ms):.1f} ms per window (median of {len(merge_ms)}), "
        f"shares {statistics.median(share_bytes) / 1024:.0f} KiB per window"
    )


if __name__ == "__main__":
    main()
