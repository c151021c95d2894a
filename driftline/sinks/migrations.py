"""Versioned, checksummed, idempotent ClickHouse schema migrations, single-node or clustered.

Migrations are the files ``NNNN_name.sql`` in ``infra/clickhouse/migrations`` (shipped
inside the wheel as ``driftline/_migrations``). Each applied file is recorded in
``schema_migrations`` with its checksum; an applied file that was edited afterwards is
an error, because the database no longer matches what the file says.

The files describe the single-node schema (MergeTree family). With a cluster name
(``DRIFTLINE_CLICKHOUSE_CLUSTER``) every statement is rewritten on the way: each table
becomes ``<name>_local ON CLUSTER`` with the Replicated engine (Keeper path
``/clickhouse/tables/{shard}/<db>/<name>_local``, replica ``{replica}``) plus a Distributed
table ``<name>`` over it, sharded by model where the table has one (so a model's rows,
windows and joins stay on one shard); ALTERs go to the local tables ON CLUSTER (and column
changes to the Distributed ones too); refreshable views read and write the local tables,
so each shard rolls up its own models. Writers and readers keep using the plain names.

>>> m = Migration(1, "x", "CREATE TABLE IF NOT EXISTS {db}.t (model String, v UInt8) ENGINE = MergeTree ORDER BY v")
>>> local, distributed = m.statements(SchemaOptions(cluster="prod"), "d")
>>> local.split(" ENGINE = ")[1]
"ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t_local', '{replica}') ORDER BY v"
>>> distributed
'CREATE TABLE IF NOT EXISTS d.t ON CLUSTER prod AS d.t_local ENGINE = Distributed(prod, d, t_local, cityHash64(model))'
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from driftline.config import Settings
from driftline.exceptions import SinkError
from driftline.sinks.client import ClickHouseClient

_REPO_DIR = Path(__file__).resolve().parents[2] / "infra" / "clickhouse" / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, options: SchemaOptions, database: str) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        body = body.replace("{db}", database)
        for name in ("ttl_days", "metrics_ttl_days", "rollup_ttl_days"):
            body = body.replace("{" + name + "}", str(int(getattr(options, name))))
        out = [s.strip() for s in body.split(";") if s.strip()]
        if options.cluster:
            out = [c for s in out for c in clustered(s, database, options.cluster)]
        return out


@dataclass(frozen=True)
class SchemaOptions:
    """TTLs per kind of table and the cluster to create the schema on ("" = single node)."""

    ttl_days: int = 90  # raw events and dead letters
    metrics_ttl_days: int = 365  # metrics, drift sketches, alert history
    rollup_ttl_days: int = 1825  # hourly and daily rollups
    cluster: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> SchemaOptions:
        return cls(settings.ttl_days, settings.metrics_ttl_days, settings.rollup_ttl_days, settings.clickhouse_cluster)

    def ttl_for(self, table: str) -> int:
        kind = TABLE_TTLS[table][1]
        return int(getattr(self, kind))


#: table -> (time column, which TTL setting applies)
TABLE_TTLS = {
    "predictions": ("ingested_at", "ttl_days"),  # on arrival: a backfill of old events is kept (0010)
    "labels": ("ingested_at", "ttl_days"),
    "labeling_requests": ("ts", "ttl_days"),
    "dead_letters": ("received_at", "ttl_days"),
    "metrics": ("window_start", "metrics_ttl_days"),
    "drift_sketches": ("window_start", "metrics_ttl_days"),
    "alert_events": ("window_end", "metrics_ttl_days"),
    "alert_notifications": ("at", "metrics_ttl_days"),
    "notification_log": ("sent_at", "metrics_ttl_days"),
    "metrics_hourly": ("hour", "rollup_ttl_days"),
    "metrics_daily": ("day", "rollup_ttl_days"),
}
_CREATE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*(\(.*\))\s*ENGINE\s*=\s*(\w*MergeTree)(\(([^)]*)\))?(.*)$", re.S
)
_VIEW = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+)\s+(.*)$", re.S)
_ALTER = re.compile(r"^ALTER TABLE (\w+)\.(\w+)\s+(.*)$", re.S)
_DB = re.compile(r"^CREATE DATABASE IF NOT EXISTS (\w+)$")


def clustered(statement: str, database: str, cluster: str) -> list[str]:
    """The statements that do on a cluster what `statement` does on one node."""
    on = f"ON CLUSTER {cluster}"
    if m := _DB.match(statement):
        return [f"CREATE DATABASE IF NOT EXISTS {m.group(1)} {on}"]
    if m := _CREATE.match(statement):
        db, table, columns, engine, _, args, rest = m.groups()
        path = f"'/clickhouse/tables/{{shard}}/{db}/{table}_local', '{{replica}}'"
        params = f"{path}, {args}" if args else path
        key = "cityHash64(model)" if re.search(r"\bmodel\s+String\b", columns) else "rand()"
        return [
            f"CREATE TABLE IF NOT EXISTS {db}.{table}_local {on} {columns} ENGINE = Replicated{engine}({params}){rest}",
            f"CREATE TABLE IF NOT EXISTS {db}.{table} {on} AS {db}.{table}_local "
            f"ENGINE = Distributed({cluster}, {db}, {table}_local, {key})",
        ]
    if m := _VIEW.match(statement):
        db, view, rest = m.groups()
        rest = re.sub(rf"\b{re.escape(db)}\.(\w+)\b", lambda t: f"{db}.{t.group(1)}_local", rest)
        return [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{view} {on} {rest}"]
    if m := _ALTER.match(statement):
        db, table, rest = m.groups()
        out = [f"ALTER TABLE {db}.{table}_local {on} {rest}"]
        if re.match(r"(ADD|DROP|MODIFY|RENAME) COLUMN", rest):
            out.append(f"ALTER TABLE {db}.{table} {on} {rest}")
        return out
    raise SinkError(f"no clustered form for the migration statement: {statement[:80]}...")


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


def migrate(
    client: ClickHouseClient, database: str, ttl: int | SchemaOptions, directory: Path | None = None
) -> list[int]:
    """Apply pending migrations and the configured TTLs; return the versions applied now.

    `ttl` is the raw events' TTL in days, or the full `SchemaOptions`.
    """
    options = ttl if isinstance(ttl, SchemaOptions) else SchemaOptions(ttl_days=ttl)
    setup = [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, checksum String, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version",
    ]
    for statement in setup:
        for command in clustered(statement, database, options.cluster) if options.cluster else [statement]:
            client.command(command)
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
        for statement in migration.statements(options, database):
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
            database=database,
        )
        done.append(migration.version)
    _apply_ttl(client, database, options)
    return done


def _apply_ttl(client: ClickHouseClient, database: str, options: SchemaOptions) -> None:
    """Change a table's TTL when its configured number of days changed."""
    for table, (column, _) in TABLE_TTLS.items():
        days = options.ttl_for(table)
        local = f"{table}_local" if options.cluster else table
        create = str(
            client.command(
                "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                parameters={"db": database, "t": local},
            )
        )
        if not create or f"toDateTime({column}) + toIntervalDay({days})" in create:
            continue  # a table a later migration creates, or already right
        on = f" ON CLUSTER {options.cluster}" if options.cluster else ""
        client.command(
            f"ALTER TABLE {database}.{local}{on} MODIFY TTL toDateTime({column}) + INTERVAL {days} DAY",
            settings={"materialize_ttl_after_modify": 0},
        )
