"""A ClickHouse fault is retried, never turned into dead letters (issue 18.1).

Before: every ClickHouse error other than a connection error was read as "this event is bad",
the batch was bisected to single events, and with chdb's disk full for 30 s 3,261 valid events
became `rejected_by_clickhouse` dead letters, all in one row of `dead_letters`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from driftline.config import Settings
from driftline.events import Label
from driftline.producer import Producer
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
from driftline.streams.ingest import BatchIngestor
from driftline.streams.observability import WorkerMetrics
from tests.integration.conftest import ingested, run_ingestor
from tests.unit.test_events import BASE_TS, make_prediction

FAULTS = {
    "disk full": "Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)",
    "read-only": "Code: 164. DB::Exception: Table is in readonly mode. (TABLE_IS_READ_ONLY)",
    "memory limit": "Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)",
    "too many parts": "Code: 252. DB::Exception: Too many parts (3000). (TOO_MANY_PARTS)",
    "timeout": "Code: 159. DB::Exception: Timeout exceeded: elapsed 30 seconds. (TIMEOUT_EXCEEDED)",
    "no code": "std::exception. Code: 1001, type: std::filesystem::filesystem_error, No space left on device",
}


class FaultyClient:
    """The real chdb client, whose writes fail the way ClickHouse fails for the first `failures` calls."""

    def __init__(self, inner: Any, failures: int, message: str):
        self.inner, self.failures, self.message = inner, failures, message
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _write(self) -> None:
        if self.failed < self.failures:
            self.failed += 1
            raise DatabaseError(self.message)

    def raw_insert(self, *args: Any, **kwargs: Any) -> Any:
        self._write()
        return self.inner.raw_insert(*args, **kwargs)

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        self._write()
        return self.inner.insert(*args, **kwargs)

    def command(self, cmd: str, *args: Any, **kwargs: Any) -> Any:
        if cmd.lstrip().upper().startswith("INSERT"):
            self._write()
        return self.inner.command(cmd, *args, **kwargs)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_server_fault_raises_sink_error_and_bisects_nothing(
    fault: str, settings_factory: Callable[..., Settings], ch_client: Any
) -> None:
    settings = settings_factory()
    ClickHouseSink(settings, client=ch_client).migrate()
    faulty = FaultyClient(ch_client, failures=1, message=FAULTS[fault])
    sink = ClickHouseSink(settings, client=faulty)
    with pytest.raises(Exception, match="ClickHouse insert failed") as info:
        sink.write(SinkBatch([make_prediction(i) for i in range(50)], [], [], "t"))
    assert type(info.value).__name__ == "SinkError"
    assert faulty.failed == 1  # the batch was not bisected into single events
    assert sink.write(SinkBatch([make_prediction(i) for i in range(50)], [], [], "t")) == []  # the retry stores it
    assert sink.counts() == {"predictions": 50, "labels": 0, "dead_letters": 0}


def test_ingest_through_a_fault_stores_every_event_and_dead_letters_none(
    settings_factory: Callable[..., Settings], ch_client: Any
) -> None:
    settings = settings_factory()
    ClickHouseSink(settings, client=ch_client).migrate()
    preds = [make_prediction(i) for i in range(400)]
    labels = [Label(event_id=f"e{i}", label=i % 2, ts=BASE_TS + 100) for i in range(200)]
    for envelope, chunk in (("none", preds[:200]), ("columnar", preds[200:])):
        with Producer(settings.broker, topic_prefix=settings.topic_prefix, envelope=envelope, batch_size=50) as p:  # type: ignore[arg-type]
            for event in chunk:
                p.send(event)
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
        for label in labels:
            p.send(label)
    faulty = FaultyClient(ch_client, failures=4, message=FAULTS["disk full"])
    sink = ClickHouseSink(settings, client=faulty)
    metrics = WorkerMetrics()
    seen_faults: list[str] = []

    def done(i: BatchIngestor) -> bool:
        if i.sink_fault:
            seen_faults.append(i.sink_fault)
        return ingested(600)(i)

    ingestor = run_ingestor(BatchIngestor(settings, sink, retry_backoff=(0.05, 0.2), metrics=metrics), done)
    assert faulty.failed == 4
    assert sink.counts() == {"predictions": 400, "labels": 200, "dead_letters": 0}
    assert ingestor.stats.dead_letters == 0 and ingestor.stats.sink_retries == 4
    # while it lasted, the fault was visible (what /ready reports); it is gone now
    assert seen_faults and "NOT_ENOUGH_SPACE" in seen_faults[0] and ingestor.sink_fault == ""
    text = metrics.exposition().decode()
    assert "driftline_sink_errors_total 4.0" in text and "driftline_sink_failing 0.0" in text


def test_a_real_too_many_parts_fault_is_retried_until_it_clears(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """The real engine refuses inserts into `predictions` (TOO_MANY_PARTS) while the worker runs; the
    table of dead letters stays writable, which is how valid events turned into dead letters before."""
    settings = settings_factory()
    sink = sink_factory(settings)
    sink.write(SinkBatch([make_prediction(10_000)], [], [], "first"))  # one part: the next insert is refused
    table = f"{sink.database}.predictions"
    sink.client.command(f"ALTER TABLE {table} MODIFY SETTING parts_to_throw_insert = 1, parts_to_delay_insert = 1")
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
        for i in range(300):
            p.send(make_prediction(i))
    cleared: list[str] = []

    def done(i: BatchIngestor) -> bool:
        if i.stats.sink_retries >= 2 and not cleared:  # the fault has lasted two retries: clear it
            cleared.append(i.sink_fault)
            sink.client.command(
                f"ALTER TABLE {table} MODIFY SETTING parts_to_throw_insert = 3000, parts_to_delay_insert = 1000"
            )
        return ingested(300)(i)

    ingestor = run_ingestor(BatchIngestor(settings, sink, retry_backoff=(0.05, 0.2)), done)
    assert cleared and "TOO_MANY_PARTS" in cleared[0]
    assert ingestor.stats.dead_letters == 0
    assert sink.counts() == {"predictions": 301, "labels": 0, "dead_letters": 0}


def test_each_refused_event_has_its_own_dead_letter_row(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """Events ClickHouse itself refuses (a table constraint here) are dead letters, one row each."""
    sink = sink_factory(settings_factory())
    sink.client.command(
        f"ALTER TABLE {sink.database}.predictions ADD CONSTRAINT no_poison CHECK event_id NOT IN ('e3', 'e7', 'e11')"
    )
    rejected = sink.write(SinkBatch([make_prediction(i) for i in range(20)], [], [], "t"))
    assert sorted(json.loads(r.letter.payload)["event_id"] for r in rejected) == ["e11", "e3", "e7"]
    assert {r.letter.code for r in rejected} == {"rejected_by_clickhouse"}
    assert sink.counts() == {"predictions": 17, "labels": 0, "dead_letters": 3}
    # a replay of the same batch adds no row
    sink.write(SinkBatch([make_prediction(i) for i in range(20)], [], [], "t"))
    assert sink.counts() == {"predictions": 17, "labels": 0, "dead_letters": 3}


FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from driftline.config import Settings
    from driftline.exceptions import SinkError
    from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
    from tests.unit.test_events import make_prediction

    mount = sys.argv[1]
    sink = ClickHouseSink(Settings(clickhouse=f"chdb://{mount}/ch", clickhouse_database="faults"))
    sink.migrate()
    batch = SinkBatch([make_prediction(i) for i in range(2000)], [], [], "full-disk")
    filler = os.path.join(mount, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill the disk (unbuffered: nothing left to flush)
    try:
        while True:
            os.write(fd, b"x" * 65536)
    except OSError:
        pass
    try:
        while True:
            os.write(fd, b"x")
    except OSError:
        pass
    os.close(fd)
    outcome = {}
    try:
        outcome["rejected"] = len(sink.write(batch))
    except SinkError as exc:
        outcome["error"] = str(exc)[:300]
    os.remove(filler)
    outcome["retry_rejected"] = len(sink.write(batch))  # the same batch, the same token, once space is back
    outcome["counts"] = sink.counts()
    print(json.dumps(outcome))
    """
)


def test_a_full_disk_is_a_fault_and_the_retry_stores_the_batch(tmp_path: Path) -> None:
    """A real full disk: chdb's data dir on a small tmpfs filled to the last byte (needs root to mount).

    The dead-letter table sits on the same full disk, so this one guards the retry, not the bisection
    (the too-many-parts test above is the one that failed before the fix)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; the injected faults above cover the same code path")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        root = Path(__file__).resolve().parents[2]
        run = subprocess.run(
            [sys.executable, "-c", FULL_DISK_SCRIPT, str(mount)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert "rejected" not in outcome, outcome  # before the fix: every event a dead letter
    assert "ClickHouse insert failed" in outcome["error"]
    assert outcome["retry_rejected"] == 0
    assert outcome["counts"] == {"predictions": 2000, "labels": 0, "dead_letters": 0}
