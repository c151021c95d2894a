"""Versioned, checksummed, idempotent ClickHouse schema migrations.

Migrations are the files ``NNNN_name.sql`` in ``infra/clickhouse/migrations`` (shipped
inside the wheel as ``driftline/_migrations``). Each applied file is recorded in
``schema_migrations`` with its checksum; an applied file that was edited afterwards is
an error, because the database no longer matches what the file says.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from driftline.exceptions import SinkError

_REPO_DIR = Path(__file__).resolve().parents[2] / "infra" / "clickhouse" / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
EVENT_TABLES = {"predictions": "ts", "labels": "ts", "dead_letters": "received_at", "metrics": "window_start"}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, database: str, ttl_days: int) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        body = body.replace("{db}", database).replace("{ttl_days}", str(int(ttl_days)))
        return [s.strip() for s in body.split(";") if s.strip()]


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """All migrations, in version order, from `directory` or where driftline keeps them."""
    files: list[tuple[str, str]] = []
    if directory is None and not _REPO_DIR.is_dir():
        packaged = resources.files("driftline").joinpath("_migrations")
        files = [(p.name, p.read_text()) for p in packaged.iterdir() if p.name.endswith(".sql")]
    else:
        files = [(p.name, p.read_text()) for p in (directory or _REPO_DIR).glob("*.sql")]
    out = []
    for name, text in files:
        match = _NAME.match(name)
        if not match:
            raise SinkError(f"migration file {name!r} must be named NNNN_lower_case.sql")
        out.append(Migration(int(match.group(1)), match.group(2), text))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise SinkError(f"two migration files share a version: {versions}")
    return out


def migrate(client: Any, database: str, ttl_days: int, directory: Path | None = None) -> list[int]:
    """Apply pending migrations and the configured TTL; return the versions applied now."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, checksum String, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    applied = {
        int(row[0]): str(row[1])
        for row in client.query(f"SELECT version, checksum FROM {database}.schema_migrations FINAL").result_rows
    }
    done = []
    for migration in load_migrations(directory):
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise SinkError(
                    f"migration {migration.version:04d}_{migration.name}.sql changed after it was applied "
                    f"to database {database!r}; add a new migration instead of editing an applied one"
                )
            continue
        for statement in migration.statements(database, ttl_days):
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
            database=database,
        )
        done.append(migration.version)
    _apply_ttl(client, database, ttl_days)
    return done


def _apply_ttl(client: Any, database: str, ttl_days: int) -> None:
    """Change the TTL of the event tables when the configured number of days changed."""
    for table, column in EVENT_TABLES.items():
        create = str(
            client.command(
                "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                parameters={"db": database, "t": table},
            )
        )
        if f"toIntervalDay({int(ttl_days)})" in create:
            continue
        client.command(
            f"ALTER TABLE {database}.{table} MODIFY TTL toDateTime({column}) + INTERVAL {int(ttl_days)} DAY",
            settings={"materialize_ttl_after_modify": 0},
        )
