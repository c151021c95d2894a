"""River detectors as driftline uses them: same decisions as River, tuned for false alarms."""

from __future__ import annotations

import numpy as np
from river import drift
from river.drift import binary

from driftline.profiles import profile_column
from driftline.streams.metrics.detectors import ErrorStreamDetector, WindowSignalDetector
from driftline.streams.metrics.drift import NumericDrift
from tests.unit.test_monitor import T0, run, stream


def psi_series(n_windows: int, seed: int, shift_at: int | None = None, shift: float = 0.0) -> list[float]:
    """Real PSI values: 500-event windows of N(0,1) (N(shift,1) after shift_at) vs a 2,000-row reference."""
    rng = np.random.default_rng(seed)
    ref = profile_column("x", rng.normal(size=2000))
    out = []
    for w in range(n_windows):
        mean = shift if shift_at is not None and w >= shift_at else 0.0
        out.append(NumericDrift(ref).update_many(rng.normal(mean, 1, 500)).get()["psi"])
    return out


def test_decisions_are_rivers() -> None:
    series = psi_series(60, seed=1, shift_at=30, shift=0.5)
    ours = WindowSignalDetector()
    theirs = drift.PageHinkley(min_instances=5, delta=0.02, threshold=0.2, alpha=1.0, mode="up")
    for v in series:
        theirs.update(v)
        assert ours.update(v) == theirs.drift_detected
    errors = np.random.default_rng(2).uniform(size=3000) < np.r_[np.full(1500, 0.1), np.full(1500, 0.6)]
    hddm = binary.HDDMA(drift_confidence=1e-4)
    expected = []
    for i, e in enumerate(errors.tolist()):
        hddm.update(e)
        if hddm.drift_detected:
            expected.append(i)
    assert ErrorStreamDetector().update_many(errors) == expected != []


def test_page_hinkley_no_false_alarm_on_stable_psi_and_quick_detection() -> None:
    alarms = 0
    for seed in range(20):
        det = WindowSignalDetector()
        alarms += sum(det.update(v) for v in psi_series(200, seed=seed))
    assert alarms == 0
    delays = []
    for seed in range(10):
        det = WindowSignalDetector()
        series = psi_series(40, seed=100 + seed, shift_at=20, shift=0.3)  # PSI ~0.1 after the shift
        fired = [i for i, v in enumerate(series) if det.update(v)]
        assert fired and fired[0] >= 20, fired
        delays.append(fired[0] - 20)
    assert max(delays) <= 6, delays  # measured: 2-5 windows


def test_hddm_no_false_alarm_on_a_stable_error_rate_and_detection() -> None:
    rng = np.random.default_rng(3)
    for rate in (0.1, 0.3):
        assert sum(len(ErrorStreamDetector().update_many(rng.uniform(size=20_000) < rate)) for _ in range(10)) == 0
    for seed in range(5):
        r = np.random.default_rng(50 + seed)
        errors = np.r_[r.uniform(size=5000) < 0.1, r.uniform(size=5000) < 0.5]
        fired = ErrorStreamDetector().update_many(errors)
        assert fired and 5000 <= fired[0] <= 5300, fired


def test_engine_raises_page_hinkley_alarms_only_after_the_shift() -> None:
    rows = run(stream(n_windows=14, per_window=1000, shift_from=7))
    alarms = sorted({(r.window_start, r.feature) for r in rows if r.metric == "page_hinkley_alarm"})
    assert alarms, "no alarm after a PSI ~0.5 shift"
    assert {f for _, f in alarms} == {"income"}
    assert min(s for s, _ in alarms) in (T0 + 7 * 60, T0 + 8 * 60, T0 + 9 * 60)
