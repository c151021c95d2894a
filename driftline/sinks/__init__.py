"""Storage: the ClickHouse writer and its client seam, migrations, the columnar insert, profile, guideline and
lineage stores. Storage never knows alerting (an import-linter contract).

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "clickhouse",
    "client",
    "columnar",
    "guidelines",
    "lineage",
    "migrations",
    "profiles",
    "sketch_queries",
]
