"""Build reference profiles from files or a ClickHouse window, and store/load them.

Used by `driftline profile build` and by the worker, which loads the newest profile of
each model version at start.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

from driftline.exceptions import ConfigError
from driftline.metrics.profiles import ReferenceProfile
from driftline.sinks.client import ClickHouseClient

_decode = msgspec.json.Decoder().decode


def _number(text: str) -> float | str | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Feature rows from CSV (a column per feature) or JSONL (prediction events or flat rows)."""
    if not path.is_file():
        raise ConfigError(f"reference data {str(path)!r} does not exist")
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                yield {k: _number(v) for k, v in row.items()}
        return
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        raise ConfigError(f"reference data {path.name!r}: use .csv or .jsonl (one JSON object per line)")
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = _decode(line)
            except msgspec.DecodeError as exc:
                raise ConfigError(f"{path.name} line {number}: not JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise ConfigError(f"{path.name} line {number}: expected a JSON object")
            yield obj["features"] if isinstance(obj.get("features"), dict) else obj


def profile_from_rows(
    model: str, version: str, rows: Iterator[dict[str, Any]], kinds: dict[str, str] | None = None, limit: int = 0
) -> ReferenceProfile:
    columns: dict[str, list[Any]] = {}
    n = 0
    for row in tqdm(rows, desc="reading reference rows", unit="row", disable=None):
        for name in row.keys() - columns.keys():
            columns[name] = [None] * n
        for name, col in columns.items():
            col.append(row.get(name))
        n += 1
        if limit and n >= limit:
            break
    if n == 0:
        raise ConfigError("the reference data has no rows")
    if kinds:
        columns = {k: v for k, v in columns.items() if k in kinds}
        missing = sorted(set(kinds) - set(columns))
        if missing:
            raise ConfigError(f"features {missing} are in the spec but not in the reference data")
    return ReferenceProfile.build(model, version, columns, kinds=kinds)


def rows_from_clickhouse(
    client: ClickHouseClient, database: str, model: str, version: str, since: str, until: str
) -> Iterator[dict[str, Any]]:
    """Feature rows of the predictions of one model version in [since, until) (ISO times, UTC)."""
    result = client.query(
        f"SELECT features FROM {database}.predictions FINAL WHERE model = {{m:String}} AND version = {{v:String}}"
        " AND ts >= parseDateTime64BestEffort({s:String}, 3, 'UTC')"
        " AND ts < parseDateTime64BestEffort({u:String}, 3, 'UTC')",
        parameters={"m": model, "v": version, "s": since, "u": until},
    )
    for (features,) in result.result_rows:
        yield _decode(features)


def store_profile(client: ClickHouseClient, database: str, profile: ReferenceProfile, source: str) -> None:
    client.insert(
        "reference_profiles",
        [[profile.model, profile.version, source, profile.to_json()]],
        column_names=["model", "version", "source", "profile"],
        database=database,
    )


def load_profiles(client: ClickHouseClient, database: str) -> list[ReferenceProfile]:
    """The newest profile of every model version."""
    rows = client.query(
        f"SELECT argMax(profile, created_at) FROM {database}.reference_profiles GROUP BY model, version"
    ).result_rows
    return [ReferenceProfile.from_json(text) for (text,) in rows]


def write_artifact(profile: ReferenceProfile, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json.loads(profile.to_json()), indent=1))
    return path
