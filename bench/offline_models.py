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
        print(f"| DP-SGD ({r['accountant']}) | {r['epsilon']:.2f} | {r['delta']:.1e} | {r['noise_multiplier']:.2f} | "
              f"{r['accuracy']:.4f} |")  # fmt: skip
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


if __name__ == "__main__":
    main()
