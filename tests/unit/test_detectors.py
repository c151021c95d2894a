"""River detectors as driftline uses them: same decisions as River, tuned for false alarms."""

from __future__ import annotations

import numpy as np
from river import drift
from river.drift import binary

from driftline.metrics.detectors import ErrorStreamDetector, MeanShiftDetector, WindowSignalDetector
from driftline.metrics.drift import NumericDrift
from driftline.metrics.profiles import profile_column
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


def z_series(n_windows: int, seed: int, shift_at: int | None = None, shift: float = 0.0) -> list[float]:
    """z-statistics of 500-event window means of N(0,1) (N(shift,1) from shift_at) vs the true mean."""
    rng = np.random.default_rng(seed)
    mean_of = [shift if shift_at is not None and w >= shift_at else 0.0 for w in range(n_windows)]
    means = [rng.normal(mu, 1, 500).mean() for mu in mean_of]
    return [m * 500**0.5 for m in means]


def test_mean_shift_decisions_are_rivers() -> None:
    series = z_series(80, seed=3, shift_at=40, shift=0.3)
    ours = MeanShiftDetector(seed=5)
    adwin = drift.ADWIN(delta=0.002, clock=1, min_window_length=5, grace_period=10)
    kswin = drift.KSWIN(alpha=1e-4, window_size=20, stat_size=10, seed=5)
    fired = []
    for v in series:
        adwin.update(100 * v)
        kswin.update(v)
        expected = [name for name, d in (("adwin", adwin), ("kswin", kswin)) if d.drift_detected]
        got = ours.update(v)
        assert got == expected
        fired += got
    assert {"adwin", "kswin"} <= set(fired)


def test_mean_shift_no_false_alarm_on_stable_means_and_detection() -> None:
    alarms = 0
    for seed in range(20):
        det = MeanShiftDetector(seed=seed)
        alarms += sum(len(det.update(v)) for v in z_series(200, seed=seed))
    assert alarms == 0
    for seed in range(10):
        det = MeanShiftDetector(seed=seed)
        first: dict[str, int] = {}
        for i, v in enumerate(z_series(60, seed=100 + seed, shift_at=30, shift=0.3)):
            for name in det.update(v):
                first.setdefault(name, i)
        assert set(first) == {"adwin", "kswin"}, first
        assert all(30 <= i <= 40 for i in first.values()), first  # measured: 6-9 windows after the shift


def test_engine_mean_shift_z_and_its_alarms_only_on_the_shifted_feature() -> None:
    rows = run(stream(n_windows=40, per_window=1000, shift_from=15))
    z = {(r.window_start, r.feature): r.value for r in rows if r.metric == "mean_shift_z"}
    assert all(abs(v) < 4 for (start, _), v in z.items() if start < T0 + 15 * 60)  # income and age, unshifted
    # +1.5 SD: z = 1.5 / sqrt(1/1000 + 1/2000) = 38.7 in every shifted window
    assert all(35 < v < 43 for (start, f), v in z.items() if f == "income" and start >= T0 + 15 * 60)
    alarms = {(r.metric, r.feature, r.window_start) for r in rows if r.metric in ("adwin_alarm", "kswin_alarm")}
    assert {(m, f) for m, f, _ in alarms} == {("adwin_alarm", "income"), ("kswin_alarm", "income")}
    assert min(s for _, _, s in alarms) >= T0 + 15 * 60
