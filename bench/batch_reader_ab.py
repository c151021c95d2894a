"""The engine on `Prediction` objects with this tree's batch readers against another commit's, in turn.

    cd bench && python batch_reader_ab.py [--base 67b28a4] [--fetches 40] [--sweep 512]

`driftline/streams/prediction_batch.py` of `--base` (read with `git show`) is imported beside
this tree's; two engines get the same fetches of 20,000 single JSON events (the bench event:
12 features, 4 models), decoded afresh for each and pushed out of the CPU's cache by decoding
another fetch, in alternating order. Reported: the median us per event of each, the median
and range of the per-fetch ratio, and whether both engines wrote the same rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from common import event

from driftline.events import DECODERS, encode_json
from driftline.streams import monitor
from driftline.streams import prediction_batch as ours
from driftline.streams.ingest import tune_blas, tune_gc

N = 20_000


def module_at(commit: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{commit}:driftline/streams/prediction_batch.py"],
        check=True,
        capture_output=True,
        cwd=Path(__file__).parent,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "base_prediction_batch.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("base_prediction_batch", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="67b28a4", help="the commit to compare with")
    ap.add_argument("--fetches", type=int, default=40)
    ap.add_argument("--sweep", type=int, default=0, help="events per step of this tree's EventBatch (0: as set)")
    args = ap.parse_args()
    if args.sweep:
        ours._SWEEP = args.sweep  # type: ignore[attr-defined]
    tune_gc()
    tune_blas()
    readers = {"base": module_at(args.base), "ours": ours}
    now = time.time() - 3600
    payloads = [encode_json(event(i, now)) for i in range(N * args.fetches)]
    decode = DECODERS["prediction"].decode
    engines = {k: monitor.MonitoringEngine(window_s=300, allowed_lateness_s=60) for k in readers}
    seconds: dict[str, list[float]] = {k: [] for k in readers}
    kept = None
    for f in range(args.fetches):
        fetch = payloads[f * N : (f + 1) * N]
        other = (f + 7) % args.fetches
        for which in ("base", "ours") if f % 2 else ("ours", "base"):
            kept = None
            events: list[Any] = [decode(p) for p in fetch]
            kept = (events, [decode(p) for p in payloads[other * N : (other + 1) * N]])  # evicts `events`
            monitor.EventBatch = readers[which].EventBatch  # type: ignore[attr-defined]
            started = time.perf_counter()
            engines[which].update(events)
            engines[which].take_sketches()
            seconds[which].append(time.perf_counter() - started)
    del kept
    warm = 4  # the first fetches build the reference
    for which, values in seconds.items():
        print(f"{which}: {statistics.median(values[warm:]) / N * 1e6:.2f} us per event (median)")
    ratios = [b / o for b, o in zip(seconds["base"][warm:], seconds["ours"][warm:], strict=True)]
    print(f"base/ours per fetch: median {statistics.median(ratios):.3f}, {min(ratios):.2f}-{max(ratios):.2f}")
    print("same rows:", engines["base"].flush() == engines["ours"].flush())


if __name__ == "__main__":
    main()
