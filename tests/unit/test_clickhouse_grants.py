"""Issue 19.3: the writer user of infra/clickhouse/users.d may run every statement the worker's migrations
run. Each statement's required privileges are derived from the statement itself, and whether a grant
covers them is decided by ClickHouse's own privilege tree (``system.privileges``, read from chdb).

The writer had CREATE TABLE but not CREATE VIEW while migration 0005 creates (refreshable)
materialized views: on a real server the worker's migrations would have been refused."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from driftline.sinks.migrations import SchemaOptions, load_migrations

ROOT = Path(__file__).resolve().parents[2]
DB = "driftline"


@functools.cache
def privilege_tree() -> tuple[dict[str, str], dict[str, str]]:
    """(alias or name -> name, name -> parent group) from the real engine."""
    # In a fresh interpreter: chdb holds one database per process, and the suite may have opened another.
    code = (
        "import chdb; print(chdb.query('SELECT privilege, aliases, parent_group FROM system.privileges', "
        "'JSONEachRow'))"
    )
    rows = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    canonical: dict[str, str] = {}
    parent: dict[str, str] = {}
    for line in filter(str.strip, str(rows).splitlines()):
        r = json.loads(line)
        canonical[r["privilege"]] = r["privilege"]
        for alias in r["aliases"]:
            canonical[alias] = r["privilege"]
        if r["parent_group"]:
            parent[r["privilege"]] = r["parent_group"]
    return canonical, parent


def needed(statement: str) -> set[tuple[str, str]]:
    """(privilege, db.table) a statement needs; an unknown kind of statement fails the test."""
    s = " ".join(statement.split())
    if m := re.match(r"CREATE DATABASE IF NOT EXISTS (\w+)", s):
        return {("CREATE DATABASE", f"{m.group(1)}.*")}
    if m := re.match(r"CREATE TABLE IF NOT EXISTS (\w+\.\w+)", s):
        return {("CREATE TABLE", m.group(1))}
    if m := re.match(r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+\.\w+) .*?TO (\w+\.\w+) AS (SELECT .*)", s):
        sources = re.findall(r"(?:FROM|JOIN) (\w+\.\w+)", m.group(3))
        return {("CREATE VIEW", m.group(1)), ("INSERT", m.group(2)), *(("SELECT", t) for t in sources)}
    if m := re.match(r"ALTER TABLE (\w+\.\w+) (ADD COLUMN|MODIFY SETTING|MODIFY TTL)", s):
        return {(f"ALTER {m.group(2)}", m.group(1))}
    if m := re.match(r"(SELECT|INSERT) .*", s):
        return {(m.group(1), f"{DB}.*")}
    raise AssertionError(f"a migration statement this test cannot classify; add it: {s[:100]}")


def writer_grants() -> set[tuple[str, str]]:
    users = ET.fromstring((ROOT / "infra/clickhouse/users.d/driftline.xml").read_text())
    writer = users.find("users/driftline")
    assert writer is not None
    granted = set()
    for query in writer.iter("query"):
        m = re.match(r"GRANT (.+) ON (\S+)$", (query.text or "").strip())
        assert m, query.text
        granted |= {(p.strip(), m.group(2)) for p in m.group(1).split(",")}
    return granted


def covers(grant: tuple[str, str], need: tuple[str, str], canonical: dict[str, str], parent: dict[str, str]) -> bool:
    g_priv, g_obj = grant
    n_priv, n_obj = need
    if not (g_obj == n_obj or (g_obj.endswith(".*") and n_obj.split(".")[0] == g_obj[:-2])):
        return False
    node: str | None = canonical[n_priv]
    while node is not None:
        if node == canonical[g_priv]:
            return True
        node = parent.get(node)
    return False


def statements() -> list[str]:
    out = [
        f"CREATE DATABASE IF NOT EXISTS {DB}",
        f"CREATE TABLE IF NOT EXISTS {DB}.schema_migrations (version UInt32) ENGINE = MergeTree ORDER BY version",
        f"SELECT version, checksum FROM {DB}.schema_migrations FINAL",
        f"INSERT INTO {DB}.schema_migrations VALUES",
        f"ALTER TABLE {DB}.predictions MODIFY TTL toDateTime(ingested_at) + INTERVAL 30 DAY",  # a changed TTL
    ]
    for migration in load_migrations():
        out += migration.statements(SchemaOptions(), DB)
    return out


def test_the_writer_may_run_every_migration_statement() -> None:
    canonical, parent = privilege_tree()
    granted = writer_grants()
    kinds = {p for s in statements() for p, _ in needed(s)}
    assert {"CREATE VIEW", "CREATE TABLE", "ALTER MODIFY SETTING", "ALTER ADD COLUMN"} <= kinds  # what 0001-0009 do
    missing = sorted(
        {n for s in statements() for n in needed(s) if not any(covers(g, n, canonical, parent) for g in granted)}
    )
    assert missing == [], f"grant these to the writer in infra/clickhouse/users.d/driftline.xml: {missing}"


def test_the_check_itself_can_fail() -> None:
    canonical, parent = privilege_tree()
    assert covers(("ALTER TABLE", "driftline.*"), ("ALTER MODIFY SETTING", "driftline.metrics"), canonical, parent)
    assert not covers(("CREATE TABLE", "driftline.*"), ("CREATE VIEW", "driftline.v"), canonical, parent)
    assert not covers(("SELECT", "other.*"), ("SELECT", "driftline.metrics"), canonical, parent)
    with pytest.raises(AssertionError, match="cannot classify"):
        needed("DROP TABLE driftline.metrics")
