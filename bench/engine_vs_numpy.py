"""The monitoring engine against a plain numpy/scipy computation of the same drift tests (issue 21.1).

    cd bench && python engine_vs_numpy.py [--repeats 5] [--profile]

Workload (fixed seed): 25 features -- 8 normal, 6 lognormal, 6 uniform numeric; 5 categorical
strings with 5, 10, 20, 35 and 50 Zipf-distributed levels -- a 50,000-row reference and one
100,000-row window with shifts in 3 numeric and 1 categorical feature.

Baseline (same run): the reference summarised once (sorted values, 10 quantile bins, level
counts); then for the window, per numeric feature KS (two sorted samples, searchsorted), PSI
and JS on the bins, per categorical one chi-square, PSI and JS on the level counts, vectorised
with numpy/scipy/pandas, starting from the window's columns as numpy arrays.

driftline: `MonitoringEngine` with every default family on (a profile of the same reference),
fed the window as columnar envelopes of 500 events (`update_columns`, decoded beforehand) and
as `Prediction` objects (`update`), then closed. The process is tuned as the worker tunes its own
(`tune_gc`, `tune_blas`: one BLAS thread); `--blas-threads` leaves BLAS at its default.
Reported: the median seconds of each, and each as a ratio of the baseline's time (>= 1.0: as
fast as the baseline or faster).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from driftline.events import ColumnarEvents, Prediction, decode_columnar, encode_columnar
from driftline.metrics.profiles import ReferenceProfile
from driftline.spec import MonitorSpec
from driftline.streams.ingest import tune_blas, tune_gc
from driftline.streams.monitor import MonitoringEngine

LEVELS = (5, 10, 20, 35, 50)
T0 = 1_800_000_000.0


def columns(n: int, rng: np.random.Generator, shifted: bool) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k in range(8):
        out[f"normal_{k}"] = rng.normal(0.5 if shifted and k < 2 else 0.0, 1.0, n)
    for k in range(6):
        out[f"lognormal_{k}"] = rng.lognormal(0.3 if shifted and k == 0 else 0.0, 1.0, n)
    for k in range(6):
        out[f"uniform_{k}"] = rng.uniform(0, 1, n)
    for k, levels in enumerate(LEVELS):
        weights = 1.0 / np.arange(1, levels + 1) ** (1.1 if not (shifted and k == 2) else 0.6)
        codes = rng.choice(levels, n, p=weights / weights.sum())
        out[f"cat_{k}"] = np.array([f"level-{c}" for c in range(levels)], dtype=object)[codes]
    return out


def summarise(ref: dict[str, np.ndarray]) -> dict[str, tuple[str, Any]]:
    """The baseline's reference summary, made once: sorted values and 10 quantile bins, or level counts."""
    out: dict[str, tuple[str, Any]] = {}
    for name, col in ref.items():
        if col.dtype == object:
            counts = pd.Series(col).value_counts()
            out[name] = ("categorical", counts)
        else:
            edges = np.quantile(col, np.linspace(0, 1, 11))[1:-1]
            out[name] = ("numeric", (np.sort(col), edges, np.bincount(np.searchsorted(edges, col), minlength=10)))
    return out


def _psi_js(p: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    p = np.clip(p / p.sum(), 1e-4, None)
    q = np.clip(q / q.sum(), 1e-4, None)
    psi = float(((q - p) * np.log(q / p)).sum())
    m = (p + q) / 2
    js = float(0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum())
    return psi, js


def baseline(summary: dict[str, tuple[str, Any]], window: dict[str, np.ndarray]) -> dict[str, tuple[float, ...]]:
    out: dict[str, tuple[float, ...]] = {}
    for name, col in window.items():
        kind, ref = summary[name]
        if kind == "numeric":
            ref_sorted, edges, ref_bins = ref
            cur = np.sort(col)
            grid = np.concatenate([ref_sorted, cur])
            cdf_r = np.searchsorted(ref_sorted, grid, side="right") / ref_sorted.size
            cdf_c = np.searchsorted(cur, grid, side="right") / cur.size
            ks = float(np.abs(cdf_r - cdf_c).max())
            p_value = float(stats.kstwo.sf(ks, round(ref_sorted.size * cur.size / (ref_sorted.size + cur.size))))
            bins = np.bincount(np.searchsorted(edges, col), minlength=10)
            out[name] = (ks, p_value, *_psi_js(ref_bins.astype(float), bins.astype(float)))
        else:
            counts: pd.Series = ref
            cur_counts = pd.Series(col).value_counts().reindex(counts.index, fill_value=0)
            table = np.vstack([counts.to_numpy(), cur_counts.to_numpy()])
            chi2, p_value, _, _ = stats.chi2_contingency(table)
            out[name] = (float(chi2), float(p_value), *_psi_js(table[0].astype(float), table[1].astype(float)))
    return out


def events_of(window: dict[str, np.ndarray]) -> list[Prediction]:
    names = list(window)
    rows = zip(*(window[n].tolist() for n in names), strict=True)
    return [
        Prediction(
            event_id=f"e{i}",
            model="m",
            version="v1",
            ts=T0 + i * 0.001,
            features=dict(zip(names, values, strict=True)),
            prediction=i % 2,
            score=(i % 997) / 997,
            latency_ms=2.0,
        )
        for i, values in enumerate(rows)
    ]


def engine_run(profile: ReferenceProfile, feed: list[Prediction] | list[ColumnarEvents], columnar: bool) -> float:
    spec = MonitorSpec.from_yaml("defaults: {window: 5m, allowed_lateness: 0s}")
    engine = MonitoringEngine(spec, profiles={("m", "v1"): profile})
    start = time.perf_counter()
    if columnar:
        engine.update_columns(feed)  # type: ignore[arg-type]
    else:
        engine.update(feed)  # type: ignore[arg-type]
    rows = engine.flush()
    seconds = time.perf_counter() - start
    assert any(r.metric == "drifted" and r.value == 1.0 for r in rows)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", choices=["columns", "objects"], help="cProfile one engine run instead")
    ap.add_argument("--blas-threads", action="store_true", help="leave BLAS at its default threads")
    args = ap.parse_args()
    tune_gc()
    if not args.blas_threads:
        tune_blas()
    rng = np.random.default_rng(21)
    ref, window = columns(50_000, rng, shifted=False), columns(100_000, rng, shifted=True)
    summary = summarise(ref)
    profile = ReferenceProfile.build("m", "v1", {k: v.tolist() for k, v in ref.items()})
    events = events_of(window)
    envelopes = []
    for i in range(0, len(events), 500):
        checked = decode_columnar(encode_columnar(events[i : i + 500]), "prediction")
        assert isinstance(checked, ColumnarEvents)
        envelopes.append(checked)
    if args.profile:
        feed = envelopes if args.profile == "columns" else events
        engine_run(profile, feed, args.profile == "columns")  # warm (BLAS threads, caches)
        run = f"engine_run(profile, feed, {args.profile == 'columns'})"
        cProfile.runctx(run, globals(), locals(), "/tmp/engine.prof")
        pstats.Stats("/tmp/engine.prof").sort_stats("tottime").print_stats(25)
        return
    base, cols, objs = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        baseline(summary, window)
        base.append(time.perf_counter() - start)
        cols.append(engine_run(profile, envelopes, True))
        objs.append(engine_run(profile, events, False))
    b, c, o = statistics.median(base), statistics.median(cols), statistics.median(objs)
    print(f"baseline numpy/scipy/pandas: {b:.3f} s ({100_000 / b:,.0f} rows/s)")
    print(f"engine, columnar envelopes:  {c:.3f} s  = {b / c:.2f} of the baseline")
    print(f"engine, Prediction objects:  {o:.3f} s  = {b / o:.2f} of the baseline")


if __name__ == "__main__":
    main()
