"""Sequential drift detectors from River, fed with cheap signals and tuned for false alarms.

River's detectors with default parameters fired hundreds of times on a stream with a
single shift here (DESIGN.md), so each is fed a signal it suits and tuned on stable
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
