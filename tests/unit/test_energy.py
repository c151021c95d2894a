"""Energy per inference: RAPL counters where readable (here a fake powercap tree), the stated estimate otherwise."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from driftline.offline.energy import Meter


def fake_rapl(root: Path, start: int, limit: int) -> Path:
    package = root / "intel-rapl:0"
    package.mkdir(parents=True)
    (package / "energy_uj").write_text(str(start))
    (package / "max_energy_range_uj").write_text(str(limit))
    (root / "intel-rapl:0:0").mkdir()  # a sub-domain (core): not counted again
    (root / "intel-rapl:0:0" / "energy_uj").write_text("0")
    return package / "energy_uj"


def test_rapl_counters_are_read_and_divided_by_the_rows(tmp_path: Path) -> None:
    counter = fake_rapl(tmp_path, start=5_000, limit=10**12)

    def call() -> None:  # each call of 8 rows costs 2,000 uJ on the package
        counter.write_text(str(int(counter.read_text()) + 2_000))

    meter = Meter(root=tmp_path)
    point = meter.measure("m", call, batch=8, threads=1, seconds=0.05)
    assert point.method == "measured (RAPL)" and len(meter.domains) == 1
    assert point.joules_per_inference == pytest.approx(2_000e-6 / 8)


def test_a_counter_that_wraps_around_is_unwrapped(tmp_path: Path) -> None:
    limit = 1_000_000
    counter = fake_rapl(tmp_path, start=limit - 3_000, limit=limit)

    def call() -> None:
        counter.write_text(str((int(counter.read_text()) + 1_000) % limit))

    point = Meter(root=tmp_path).measure("m", call, batch=1, threads=1, seconds=0.02)
    assert point.joules_per_inference == pytest.approx(1_000e-6)


def test_without_counters_the_estimate_says_so_and_follows_its_formula(tmp_path: Path) -> None:
    meter = Meter(root=tmp_path / "none", watts_per_core=10.0)

    def busy() -> None:
        end = time.process_time() + 0.002
        while time.process_time() < end:
            pass

    point = meter.measure("m", busy, batch=4, threads=1, seconds=0.05)
    assert point.method == "estimate (CPU time x 10 W per core)"
    # joules = CPU seconds x watts, per row: cpu_ms / 1000 x 10 W
    assert point.joules_per_inference == pytest.approx(point.cpu_ms_per_inference / 1000 * 10.0)
    assert point.cpu_ms_per_inference == pytest.approx(0.5, rel=0.3)  # 2 ms of CPU per call of 4 rows
