"""Sequential drift detectors from River, fed with cheap signals and tuned for false alarms.

River's detectors with default parameters fired hundreds of times on a stream with a
single shift on the 2-core development machine, so each is fed a signal it suits and tuned on stable
streams first:

* :class:`WindowSignalDetector`: Page-Hinkley (upward) on one number per closed window,
  e.g. a feature's PSI. ``delta=0.02, threshold=0.2``: no alarm in 20 x 500 stable
  windows of PSI noise (mean ~0.017); a PSI step to ~0.1 is detected 2-5 windows later (measured with
  ``tests/unit/test_detectors.py``).
* :class:`ErrorStreamDetector`: HDDM_A on the 0/1 error of each labelled prediction, in
  event-time order, with ``drift_confidence=1e-4``: no alarm in 20 x 20,000 events at
  stable 10 % and 30 % error rates (River's default 1e-3 raised 2); an error-rate step
  from 10 % to 50 % is detected after 24-131 events.

Both keep River's own decisions: the wrapper only routes values and remembers
alarms. State is a few numbers per detector.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift
from river.drift import binary


class WindowSignalDetector:
    """Page-Hinkley on a per-window series; `update(value)` returns True when it fires."""

    def __init__(self, delta: float = 0.02, threshold: float = 0.2, min_instances: int = 5):
        if delta < 0 or threshold <= 0 or min_instances < 1:
            raise ValueError("delta >= 0, threshold > 0 and min_instances >= 1 are required")
        self.delta = delta
        self.threshold = threshold
        self.min_instances = min_instances
        self._detector: Any = drift.PageHinkley(
            min_instances=min_instances, delta=delta, threshold=threshold, alpha=1.0, mode="up"
        )
        self.alarms = 0

    def update(self, value: float) -> bool:
        self._detector.update(float(value))
        fired = bool(self._detector.drift_detected)
        self.alarms += fired
        return fired


class ErrorStreamDetector:
    """HDDM_A on a stream of prediction errors; returns the positions where it fired."""

    def __init__(self, drift_confidence: float = 1e-4, warning_confidence: float = 5e-3):
        self.drift_confidence = drift_confidence
        self.warning_confidence = warning_confidence
        self._detector: Any = binary.HDDMA(  # type: ignore[no-untyped-call]
            drift_confidence=drift_confidence, warning_confidence=warning_confidence
        )
        self.alarms = 0

    def update_many(self, errors: npt.ArrayLike) -> list[int]:
        fired = []
        for i, e in enumerate(np.asarray(errors, dtype=bool).tolist()):  # labelled events only, off the hot path
            self._detector.update(e)
            if self._detector.drift_detected:
                fired.append(i)
        self.alarms += len(fired)
        return fired


class MeanShiftDetector:
    """ADWIN and KSWIN on one number per closed window: the z-statistic of a feature's window mean.

    ``z = (window mean - reference mean) / (reference SD * sqrt(1/n + 1/m))`` (n window and m
    reference values) is about N(0, 1) while nothing changes, whatever the feature's scale. A
    window's mean moves with a location shift that PSI, built on quantile bins, may rate as
    small, so the two detectors watch z as a series; ``update(z)`` returns the names of those
    that fired (``"adwin"``, ``"kswin"``).

    ADWIN gets ``100 * z``: its bound adds a term meant for values in [0, 1] that does not
    shrink with the series' spread, and on z itself it cut late after large shifts; scaled up,
    only the variance term is left, so the test follows the series' own noise. It checks every
    window (``clock=1``: one value per window is already cheap). KSWIN compares the last 10 of
    20 windows with a random 10 of the earlier ones at ``alpha=1e-4`` (above the smallest
    p-value 10 against 10 can give, 1.1e-5). Tuned on series of 500-event windows
    (``tests/unit/test_detectors.py``): no alarm in 20 x 200 stable windows; shifts of 0.15 to
    1.5 SD detected 6-14 windows later by ADWIN (River's default ``delta=0.002``), shifts of
    0.3 SD and more 8-9 windows later by KSWIN (it misses some 0.15-SD shifts).
    """

    def __init__(self, adwin_delta: float = 0.002, kswin_alpha: float = 1e-4, seed: int = 0):
        if not (0 < adwin_delta < 1 and 0 < kswin_alpha < 1):
            raise ValueError("adwin_delta and kswin_alpha must be between 0 and 1")
        self.adwin_delta = adwin_delta
        self.kswin_alpha = kswin_alpha
        self.seed = seed
        self._adwin: Any = drift.ADWIN(  # type: ignore[no-untyped-call]
            delta=adwin_delta, clock=1, min_window_length=5, grace_period=10
        )
        self._kswin: Any = drift.KSWIN(alpha=kswin_alpha, window_size=20, stat_size=10, seed=seed)
        self.alarms = {"adwin": 0, "kswin": 0}

    def update(self, value: float) -> list[str]:
        fired = []
        for name, detector, x in (("adwin", self._adwin, 100.0 * value), ("kswin", self._kswin, value)):
            detector.update(float(x))
            if detector.drift_detected:
                fired.append(name)
                self.alarms[name] += 1
        return fired
