"""Integration tests: the real services come from tests/conftest.py (one Tansu broker and one chdb
engine per session; each test gets its own topics, consumer group and ClickHouse database)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from driftline.streams.ingest import BatchIngestor

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder is an integration test, marked or not: `-m "not integration"` leaves them all out.

    (A `pytestmark` in a conftest marks nothing: pytest reads it from test modules only.)
    """
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def run_ingestor(
    ingestor: BatchIngestor, until: Callable[[BatchIngestor], bool], timeout: float = 60.0
) -> BatchIngestor:
    """Run the ingest loop on a real broker until `until(ingestor)` holds; then stop it cleanly."""

    async def main() -> None:
        task = asyncio.create_task(ingestor.run())
        deadline = time.monotonic() + timeout
        while not until(ingestor):
            if task.done():
                await task  # surfaces the exception that ended the loop
            if time.monotonic() > deadline:
                ingestor.stop()
                await task
                raise AssertionError(f"ingest did not get there within {timeout}s: {ingestor.stats.as_dict()}")
            await asyncio.sleep(0.05)
        ingestor.stop()
        await task

    asyncio.run(main())
    return ingestor


def ingested(n: int) -> Callable[[BatchIngestor], bool]:
    return lambda i: i.stats.predictions + i.stats.labels + i.stats.dead_letters >= n
