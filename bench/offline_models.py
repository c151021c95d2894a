"""Accuracy vs epsilon, and size and latency of the edge variants.

    python bench/offline_models.py [--rows 12000] [--epochs 8]

Runs `driftline offline train` into a temporary directory (River's Agrawal, function 2) and
prints the two tables BENCHMARKS.md records. Latency: median of 50 calls after 5 warm-ups.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from driftline.offline.pipeline import run_training


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=12_000)
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = run_training(Path(tmp), rows=args.rows, epochs=args.epochs, epsilons=(0.5, 1.0, 2.0, 4.0, 8.0))
    print(f"\n### Accuracy vs epsilon ({args.rows:,} rows, {args.epochs} epochs, {time.strftime('%Y-%m-%d')})\n")
    print("| model | epsilon spent | delta | noise multiplier | accuracy |\n|---|---:|---:|---:|---:|")
    print(f"| no privacy | - | - | - | {s['baseline']['accuracy']:.4f} |")
    for r in s["private"]:
        print(
            f"| DP-SGD ({r['accountant']}) | {r['epsilon']:.2f} | {r['delta']:.1e} | {r['noise_multiplier']:.2f} | "
            f"{r['accuracy']:.4f} |"
        )
    keys = ["batch=1,threads=1", "batch=1,threads=2", "batch=1024,threads=1", "batch=1024,threads=2"]
    print("\n### Edge variants (latency in ms)\n")
    print("| variant | accuracy | bytes | " + " | ".join(keys) + " |\n|---|---:|---:|" + "---:|" * len(keys))
    for v in s["edge"]:
        lat = v["latency"]
        cells = [f"{lat[k]:.3f}" if k in lat else "-" for k in keys]
        if "batch=1,threads=torch" in lat:
            cells = [f"{lat['batch=1,threads=torch']:.3f}", "-", f"{lat['batch=1024,threads=torch']:.3f}", "-"]
        print(f"| {v['name']} | {v['accuracy']:.4f} | {v['size_bytes']:,} | " + " | ".join(cells) + " |")
    for note in s["notes"]:
        print(f"- {note}")
    _distillation(args.rows)


def _distillation(rows: int) -> None:
    """Teacher (gradient boosting) and distilled student: accuracy, fidelity, size and latency."""
    import pickle

    import numpy as np

    from driftline.offline.distill import distill
    from driftline.offline.export import export_onnx as to_onnx
    from driftline.offline.export import latency_ms, quantize_dynamic
    from driftline.offline.train import agrawal

    data = agrawal(rows)
    r = distill(data)

    def median_ms(fn: object, x: np.ndarray) -> float:
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            fn(x)  # type: ignore[operator]
            times.append(time.perf_counter() - t0)
        return float(np.median(times) * 1000)

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = to_onnx(r.student_model, Path(tmp) / "s.onnx", data.x_test.shape[1])
        int8 = quantize_dynamic(fp32, Path(tmp) / "s8.onnx")
        rows_out = [
            (
                "teacher: HistGradientBoosting (pickled)",
                r.teacher,
                len(pickle.dumps(r.teacher_model)),
                median_ms(r.teacher_model.predict_proba, data.x_test[:1]),
                median_ms(r.teacher_model.predict_proba, data.x_test[:1024]),
            ),
            (
                "student: MLP 40-16-2, ONNX fp32",
                r.student,
                fp32.stat().st_size,
                latency_ms(fp32, 1, 1),
                latency_ms(fp32, 1024, 1),
            ),
            (
                "student: ONNX int8 dynamic",
                r.student,
                int8.stat().st_size,
                latency_ms(int8, 1, 1),
                latency_ms(int8, 1024, 1),
            ),
        ]
    print("\n### Distillation (latency in ms, 1 thread)\n")
    print("| model | accuracy | fidelity | ECE | bytes | batch 1 | batch 1024 |\n|---|---:|---:|---:|---:|---:|---:|")
    for name, sc, size, b1, b1024 in rows_out:
        print(f"| {name} | {sc.accuracy:.4f} | {sc.fidelity:.4f} | {sc.ece:.4f} | {size:,} | {b1:.3f} | {b1024:.3f} |")
    print(
        f"| student on hard labels (reference) | {r.hard_student.accuracy:.4f} | {r.hard_student.fidelity:.4f} | "
        f"{r.hard_student.ece:.4f} | - | - | - |"
    )


if __name__ == "__main__":
    main()
