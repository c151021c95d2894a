"""The fault suite: what the worker does when ClickHouse, the disk or the input misbehave.

Runs with the rest of `make test` (real broker and chdb from tests/conftest.py); every test here
is marked `integration` and `faults`, so `pytest -m faults` runs the suite alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.faults)
