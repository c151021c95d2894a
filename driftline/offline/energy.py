"""Energy per inference: measured with RAPL counters where the machine has them, estimated otherwise.

Measured: Linux powercap exposes RAPL package counters as
``/sys/class/powercap/intel-rapl:<n>/energy_uj`` (AMD Zen too, under the same name). The
energy of a run of calls is the counters' increase over it (wrap-around handled with
``max_energy_range_uj``), divided by the rows predicted. It is the whole package's energy,
so whatever else runs on the machine at the time counts too: measure on a quiet machine.

Estimated (no readable counters, e.g. in most VMs and containers): energy = the CPU time
the process spent (``time.process_time``: all its threads) x ``watts_per_core``, a stated
assumption (default 3.5 W per busy core: a 225 W, 64-core server CPU at full load). Idle
and memory power are not attributed. Every result says which of the two it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RAPL_ROOT = Path("/sys/class/powercap")
DEFAULT_WATTS_PER_CORE = 3.5


@dataclass(frozen=True)
class EnergyPoint:
    model: str
    batch: int
    threads: int
    method: str  # "measured (RAPL)" | "estimate (CPU time x W per core)"
    joules_per_inference: float
    cpu_ms_per_inference: float
    wall_ms_per_call: float
    calls: int


class Meter:
    """Reads RAPL package counters under `root`, or falls back to the CPU-time estimate."""

    def __init__(self, root: Path = RAPL_ROOT, watts_per_core: float = DEFAULT_WATTS_PER_CORE):
        self.watts_per_core = watts_per_core
        self.domains: list[tuple[Path, int]] = []
        for d in sorted(root.glob("intel-rapl:*")) if root.exists() else []:
            if d.name.count(":") != 1:  # packages only; sub-domains (core, dram) are inside them
                continue
            try:
                int((d / "energy_uj").read_text())
                limit = int((d / "max_energy_range_uj").read_text()) if (d / "max_energy_range_uj").exists() else 0
            except (OSError, ValueError):
                continue  # present but not readable (usually root-only): estimate instead
            self.domains.append((d / "energy_uj", limit))

    @property
    def method(self) -> str:
        if self.domains:
            return "measured (RAPL)"
        return f"estimate (CPU time x {self.watts_per_core:g} W per core)"

    def _read(self) -> list[int]:
        return [int(path.read_text()) for path, _ in self.domains]

    def _joules(self, before: list[int], after: list[int]) -> float:
        total = 0
        for (_, limit), a, b in zip(self.domains, before, after, strict=True):
            total += b - a if b >= a else b + limit - a  # the counter wrapped
        return total / 1e6

    def measure(
        self,
        name: str,
        call: Callable[[], Any],
        batch: int,
        threads: int,
        seconds: float = 1.0,
        max_calls: int = 20_000,
    ) -> EnergyPoint:
        """Call `call` (predicting `batch` rows) repeatedly for about `seconds` (bounded by `max_calls`)."""
        for _ in range(3):
            call()  # warm-up
        before = self._read()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        calls = 0
        while calls < max_calls and (time.perf_counter() - wall0 < seconds or calls < 5):
            call()
            calls += 1
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        rows = calls * batch
        joules = self._joules(before, self._read()) if self.domains else cpu * self.watts_per_core
        return EnergyPoint(
            name, batch, threads, self.method, joules / rows, cpu * 1000 / rows, wall * 1000 / calls, calls
        )


def model_energy(
    teacher: Any,
    student: Any,
    onnx_fp32: Path,
    onnx_int8: Path,
    x: Any,
    threads: tuple[int, ...] = (1, 2),
    batches: tuple[int, ...] = (1, 1024),
    seconds: float = 0.5,
    meter: Meter | None = None,
) -> list[EnergyPoint]:
    """Energy per inference of teacher (scikit-learn), student (torch), and the student as ONNX fp32 / int8."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from driftline.offline.export import session
    from driftline.offline.train import require_torch

    torch = require_torch()
    meter = meter or Meter()
    saved = torch.get_num_threads()
    out = []
    try:
        for t in threads:
            torch.set_num_threads(t)
            sessions = {"student ONNX fp32": session(onnx_fp32, t), "student ONNX int8": session(onnx_int8, t)}
            for b in batches:
                rows = np.resize(x, (b, x.shape[1])).astype(np.float32)
                tensor = torch.from_numpy(rows)

                def teacher_call(r: Any = rows, n: int = t) -> Any:
                    with threadpool_limits(n):
                        return teacher.predict_proba(r)

                def student_call(v: Any = tensor) -> Any:
                    with torch.no_grad():
                        return student(v)

                calls: dict[str, Callable[[], Any]] = {
                    "teacher (gradient boosting)": teacher_call,
                    "student (torch)": student_call,
                }
                for name, sess in sessions.items():

                    def onnx_call(o: Any = sess, r: Any = rows) -> Any:
                        return o.run(None, {"x": r})

                    calls[name] = onnx_call
                out += [meter.measure(name, call, b, t, seconds) for name, call in calls.items()]
    finally:
        torch.set_num_threads(saved)
    return out
