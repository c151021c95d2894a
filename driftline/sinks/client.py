"""The ClickHouse client as driftline uses it: the one seam type between driftline and ClickHouse.

clickhouse-connect's `Client` (HTTP or the in-process chdb engine) satisfies it structurally; a
test may hand in anything else that does. Only the calls driftline makes are named here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class QueryResult(Protocol):
    @property
    def result_rows(self) -> Sequence[Any]: ...  # one tuple per row


class ClickHouseClient(Protocol):
    def query(
        self,
        query: str | None = None,
        parameters: Sequence[Any] | dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        query_formats: dict[str, str] | None = None,
        column_formats: dict[str, str | dict[str, str]] | None = None,
    ) -> QueryResult: ...

    # The value's type follows the SQL (a count, a string, a summary): callers convert it.
    def command(
        self,
        cmd: str,
        parameters: Sequence[Any] | dict[str, Any] | None = None,
        data: str | bytes | None = None,
        settings: dict[str, Any] | None = None,
    ) -> Any: ...

    def insert(
        self,
        table: str | None = None,
        data: Sequence[Sequence[Any]] | None = None,
        column_names: str | Sequence[str] | None = "*",
        database: str | None = None,
        column_types: Any = None,
        column_type_names: Sequence[str] | None = None,
        column_oriented: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> object: ...

    def raw_insert(
        self,
        table: str,
        column_names: Sequence[str] | None = None,
        insert_block: Any = None,
        settings: dict[str, Any] | None = None,
        fmt: str | None = None,
    ) -> object: ...

    def close(self) -> None: ...


def is_embedded(client: ClickHouseClient) -> bool:
    """Whether the client runs ClickHouse in this process (chdb): such an engine reads this process's files."""
    try:
        from clickhouse_connect.driver._chdbclient import ChdbClient
    except ImportError:  # a clickhouse-connect without the chdb interface
        return False
    return isinstance(client, ChdbClient)
