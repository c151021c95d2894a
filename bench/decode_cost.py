"""Cost of checking single JSON events on the worker's thread: names checked per batch vs per key.

    python bench/decode_cost.py [--events 50000] [--repeats 5]

Times, on the same events in one run (best of `--repeats`): the worker's decode of single
JSON prediction events (plain-str names, then ``names_ok`` on the batch), the same events
decoded with every name checked by msgspec as it is read (the decoder the worker used
before), and ``orjson.loads`` (what the raw baseline of ingest_throughput.py does per message).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from common import event, report

from driftline.events import DECODERS, NAMED_DECODERS, encode_json, names_ok
from driftline.streams.ingest import tune_gc


def best_rate(fn: Callable[[], object], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tune_gc()  # as the worker does
    import orjson

    now = time.time() - 3600
    values = [encode_json(event(i, now)) for i in range(args.events)]
    one, named = DECODERS["prediction"].decode, NAMED_DECODERS["prediction"].decode

    def worker() -> None:
        assert names_ok([one(v) for v in values])  # type: ignore[misc]

    rates = {
        "names per batch (the worker: plain-str keys + names_ok)": best_rate(worker, len(values), args.repeats),
        "names per key (msgspec checks each key's length)": best_rate(
            lambda: [named(v) for v in values], len(values), args.repeats
        ),
        "orjson.loads, no checks (the raw baseline's decode)": best_rate(
            lambda: [orjson.loads(v) for v in values], len(values), args.repeats
        ),
    }
    base = next(iter(rates.values()))
    report(
        "decode_cost",
        [(label, rate, rate / base) for label, rate in rates.items()],
        f"the worker's decode ({base:,.0f} events/s = {1e6 / base:.2f} us/event); best of {args.repeats} runs",
    )


if __name__ == "__main__":
    main()
