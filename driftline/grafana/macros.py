"""Expand the ClickHouse data source's macros and template variables the way Grafana does.

The SQL in driftline's panels is tested by running it, expanded with this function, on
ClickHouse. The expansions follow grafana/clickhouse-datasource (``pkg/macros/macros.go``):
``$__timeFilter(col)`` -> ``col >= toDateTime(from) AND col <= toDateTime(to)``, and so on.

>>> expand("SELECT 1 WHERE $__timeFilter(ts) AND m = '${model}'", 0, 60, {"model": "loan"})
"SELECT 1 WHERE ts >= toDateTime(0) AND ts <= toDateTime(60) AND m = 'loan'"
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_MACRO = re.compile(
    r"\$__(timeFilter_ms|timeFilter|timeInterval|fromTime_ms|toTime_ms|fromTime|toTime|interval_s)"
    r"(?:\(([^()]*)\))?"
)
_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def expand(sql: str, start: float, end: float, variables: Mapping[str, str | list[str]], interval_s: int = 60) -> str:
    def macro(m: re.Match[str]) -> str:
        name, arg = m.group(1), (m.group(2) or "").strip()
        if name == "timeFilter":
            return f"{arg} >= toDateTime({int(start)}) AND {arg} <= toDateTime({int(end)})"
        if name == "timeFilter_ms":
            a, b = int(start * 1000), int(end * 1000)
            return f"{arg} >= fromUnixTimestamp64Milli({a}) AND {arg} <= fromUnixTimestamp64Milli({b})"
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({arg}), INTERVAL {max(interval_s, 1)} second)"
        if name == "fromTime":
            return f"toDateTime({int(start)})"
        if name == "toTime":
            return f"toDateTime({int(end)})"
        if name == "fromTime_ms":
            return f"fromUnixTimestamp64Milli({int(start * 1000)})"
        if name == "toTime_ms":
            return f"fromUnixTimestamp64Milli({int(end * 1000)})"
        return str(max(interval_s, 1))  # interval_s

    def var(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name not in variables:
            return m.group(0)
        value = variables[name]
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) or m.group(2) == "singlequote":  # quoted and comma-separated, as Grafana does
            return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
        return str(value)

    return _VAR.sub(var, _MACRO.sub(macro, sql))
