"""The architecture, checked: the public API, the package layout, light serving imports, short functions.

The import rules themselves are import-linter contracts (pyproject.toml, run by `make check`).
"""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import driftline

PACKAGE = Path(driftline.__file__).parent
SUBPACKAGES = sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE)]) if m.ispkg)


def test_exported_members() -> None:
    """As httpx's test_exported_members: the root exports exactly these, each defined in driftline."""
    assert driftline.__all__ == [
        "AsyncProducer",
        "BrokerError",
        "BudgetExhausted",
        "ConfigError",
        "DeliveryError",
        "DriftlineError",
        "EventError",
        "Label",
        "Prediction",
        "Producer",
        "SinkError",
    ]
    for name in driftline.__all__:
        member = getattr(driftline, name)
        assert member.__module__.startswith("driftline."), name


def test_the_package_layout() -> None:
    assert SUBPACKAGES == [
        "alerts",
        "cli",
        "dev",
        "grafana",
        "labeling",
        "metrics",
        "models",
        "offline",
        "reports",
        "sinks",
        "streams",
    ]
    root_modules = sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE)]) if not m.ispkg)
    assert len(root_modules) + 1 <= 10, root_modules  # + __init__.py
    assert root_modules == [
        "__main__",
        "config",
        "control",
        "events",
        "exceptions",
        "kafka_security",  # TLS/SASL for the SDK, the routing client and the worker alike
        "producer",
        "spec",
        "values",
    ]


@pytest.mark.parametrize("package", [p for p in SUBPACKAGES if p != "cli"])
def test_each_package_states_its_public_modules(package: str) -> None:
    """`__all__` of a package lists its public modules, all of them, and each imports (offline: with its extra)."""
    pkg = importlib.import_module(f"driftline.{package}")
    modules = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))
    assert pkg.__all__ == modules
    assert pkg.__doc__


def test_serving_code_stays_light() -> None:
    """The routing client and the producer SDK pull in neither the stream runtime nor the embedded database."""
    code = (
        "import json, sys; import driftline.models.routing, driftline.producer; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    )
    heavy = {"faust", "chdb", "clickhouse_connect", "aiokafka", "mode", "torch", "sklearn", "pandas"}
    assert loaded & heavy == set()
    streams = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, driftline.models.routing, driftline.producer; "
            "print(sorted(m for m in sys.modules if m.startswith(('driftline.streams', 'driftline.sinks'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert streams == "[]"


def test_no_function_is_longer_than_120_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 120:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_cli_commands_are_thin() -> None:
    """Each CLI command is a thin function over the library: none over 60 lines."""
    long = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and (node.end_lineno or 0) - node.lineno + 1 > 60:
                long.append(f"cli/{path.name}:{node.lineno} {node.name}")
    assert long == []


def test_not_integration_leaves_out_every_integration_test() -> None:
    """`make test-unit` runs `-m "not integration"`: no test of tests/integration may slip in, marked or not."""
    root = PACKAGE.parent
    collected = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not integration",
            "tests",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    ).stdout.splitlines()
    tests = [line for line in collected if "::" in line]
    assert tests, "nothing collected"
    assert [t for t in tests if t.startswith("tests/integration/")] == []
    assert any(t.startswith("tests/unit/") for t in tests)
