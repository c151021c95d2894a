"""A/B of the ingest pipeline between two commits, alternated on one machine.

    python bench/ab_ingest.py OLD_REV [--new HEAD] [--rounds 2] [--form columnar] [--events 200000]

This host's speed drifts by +-30 % between runs, so a change is judged by alternating
processes of the old and the new commit (each on a git worktree, each with its own
embedded broker and chdb directory), each reporting its pipeline rate as a ratio to the
raw aiokafka rate of the same process. Prints every ratio, per variant and commit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(tree: Path, form: str, n: int) -> None:
    sys.path[:0] = [str(tree), str(tree / "bench")]  # that commit's driftline and bench, not this one's
    import asyncio
    import uuid

    import clickhouse_connect
    import ingest_throughput as it

    from driftline.config import Settings
    from driftline.streams.ingest import tune_gc

    try:
        from driftline.dev.broker import EmbeddedBroker
    except ImportError:  # a commit from before the layout of issue 16 (driftline/broker.py)
        from driftline.broker import EmbeddedBroker  # type: ignore[import-not-found,no-redef]
    from driftline.streams.topics import ensure_topics

    tune_gc()
    client = clickhouse_connect.get_client(interface="chdb", path=tempfile.mkdtemp(prefix="ab-ch-"))
    with EmbeddedBroker() as broker:
        topics = {}
        for kind in {"single", form}:
            s = Settings(broker=broker.bootstrap, topic_prefix=f"ab{uuid.uuid4().hex[:6]}.", partitions=2)
            asyncio.run(ensure_topics(s))
            it.produce(s, kind, n)
            topics[kind] = s
        raw = it.raw_rate(topics["single"], n)
        for monitor in (False, True):
            rate = it.stored_rate(topics[form], client, n, monitor=monitor)
            print(json.dumps({"variant": f"{form}{' + engine' if monitor else ''}", "ratio": rate / raw}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("--new", default="HEAD")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--form", choices=["single", "array", "columnar"], default="columnar")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # the worktree to run
    args = ap.parse_args()
    if args.child:
        child(args.child, args.form, args.events)
        return
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        trees = {}
        for rev in (args.old, args.new):
            trees[rev] = Path(tmp) / rev.replace("/", "_")
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(trees[rev]), rev], check=True
            )
        try:
            for r in range(args.rounds):
                for rev, tree in trees.items():
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            rev,
                            "--child",
                            str(tree),
                            "--form",
                            args.form,
                            "--events",
                            str(args.events),
                        ],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    for line in out.splitlines():
                        if line.startswith("{"):
                            row = json.loads(line)
                            results.setdefault((row["variant"], rev), []).append(row["ratio"])
                            print(f"round {r + 1}, {rev}: {row['variant']}: {row['ratio']:.2f} of raw", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print("\n| variant | commit | ratios to raw aiokafka |\n|---|---|---|")
    for (variant, rev), ratios in sorted(results.items()):
        print(f"| {variant} | {rev} | {', '.join(f'{x:.2f}' for x in ratios)} |")


if __name__ == "__main__":
    main()
