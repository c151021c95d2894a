"""Build reference profiles from files or a ClickHouse window, and store/load them.

Used by `driftline profile build` and by the worker, which loads the newest profile of
each model version at start.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

from driftline.events import canonical_target
from driftline.exceptions import ConfigError, SinkError
from driftline.metrics.cbpe import calibration_from, class_calibrations_from
from driftline.metrics.profiles import CLASS_SCORE_PREFIX, PREDICTION, SCORE, ReferenceProfile
from driftline.sinks.client import ClickHouseClient

_decode = msgspec.json.Decoder().decode


def _number(text: str) -> float | str | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def read_rows(path: Path, model: str | None = None, version: str | None = None) -> Iterator[dict[str, Any]]:
    """Feature rows from CSV (a column per feature) or JSONL (flat rows, or prediction events).

    Prediction events (objects with a ``features`` map) count only when they are of `model` and
    `version` (where they say), and bring their ``score`` and ``prediction`` as `SCORE` and
    `PREDICTION`, so a profile built from a file watches the model's outputs too. A JSONL file of
    events none of which is of that model version is an error that names what the file holds.
    """
    if not path.is_file():
        raise ConfigError(f"reference data {str(path)!r} does not exist")
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                yield {k: _number(v) for k, v in row.items()}
        return
    if path.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        raise ConfigError(f"reference data {path.name!r}: use .csv or .jsonl (one JSON object per line)")
    events = kept = 0
    others: set[tuple[str, str]] = set()
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
            if not isinstance(obj.get("features"), dict):
                yield obj  # a flat row of features
                continue
            events += 1
            of = (str(obj.get("model", model or "")), str(obj.get("version", version or "")))
            if (model is not None and of[0] != model) or (version is not None and of[1] != version):
                others.add(of)
                continue
            kept += 1
            yield {**obj["features"], **_targets(obj)}
    if events and not kept:
        seen = ", ".join(f"{m} {v}" for m, v in sorted(others)[:10])
        raise ConfigError(f"{path.name}: none of its {events:,} events is of {model} {version} (it holds: {seen})")


def _targets(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(event.get("score"), int | float) and not isinstance(event.get("score"), bool):
        out[SCORE] = float(event["score"])
    if event.get("prediction") is not None:
        out[PREDICTION] = event["prediction"]
    if isinstance(event.get("class_scores"), dict):
        for cls, value in event["class_scores"].items():
            out[f"{CLASS_SCORE_PREFIX}{cls}]"] = value
    return out


def profile_from_rows(
    model: str,
    version: str,
    rows: Iterator[dict[str, Any]],
    kinds: dict[str, str] | None = None,
    limit: int = 0,
    task: str = "binary",
    roles: ReferenceRoles | None = None,
) -> ReferenceProfile:
    """A profile of `rows`; the model's outputs (`SCORE`, `PREDICTION`), where the rows have them, are
    profiled as the stream profiles them: the score as a number, the prediction as a class (its
    canonical text: 1, 1.0 and true are one class) unless `task` is regression."""
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
    label = _take_roles(columns, roles) if roles is not None else None
    class_columns = {  # calibrated below, never profiled as features
        name[len(CLASS_SCORE_PREFIX) : -1]: columns.pop(name)
        for name in [n for n in columns if n.startswith(CLASS_SCORE_PREFIX) and n.endswith("]")]
    }
    targets = {SCORE: "numeric", PREDICTION: "numeric" if task == "regression" else "categorical"}
    if PREDICTION in columns and task != "regression":
        columns[PREDICTION] = [None if v is None else canonical_target(v) for v in columns[PREDICTION]]
    present = {name: kind for name, kind in targets.items() if name in columns}
    if kinds:
        columns = {k: v for k, v in columns.items() if k in kinds or k in present}
        missing = sorted(set(kinds) - set(columns))
        if missing:
            raise ConfigError(f"features {missing} are in the spec but not in the reference data")
    # features the spec does not declare are inferred by ReferenceProfile.build
    built = ReferenceProfile.build(model, version, columns, kinds={**(kinds or {}), **present} or None)
    if label is None:
        return built
    assert roles is not None
    if task == "multiclass" and class_columns:
        try:
            classes = class_calibrations_from(class_columns, label)
        except ValueError as exc:
            raise ConfigError(f"cannot calibrate the class scores of {model} {version}: {exc}") from None
        return replace(built, class_calibrations=classes)
    if SCORE not in columns:
        hint = " (multiclass: or every class's score with --class-scores PREFIX)" if task == "multiclass" else ""
        raise ConfigError(f"estimating quality needs the reference's scores: name their column with --score{hint}")
    try:
        calibration = calibration_from(columns[SCORE], label, columns.get(PREDICTION), roles.positive_class, task)
    except ValueError as exc:
        raise ConfigError(f"cannot calibrate the scores of {model} {version}: {exc}") from None
    return replace(built, calibration=calibration)


@dataclass(frozen=True)
class ReferenceRoles:
    """Which reference columns are the model's outputs and the truth (for quality estimation, cbpe.py)."""

    label: str  # the true label: used to calibrate the scores, never profiled as a feature
    score: str | None = None  # default: the [score] column (events' score)
    prediction: str | None = None  # default: the [prediction] column
    positive_class: str = "1"
    # multiclass: the columns <prefix><class> hold each class's score (default: events' class_scores)
    class_scores: str | None = None


def _take_roles(columns: dict[str, list[Any]], roles: ReferenceRoles) -> list[Any]:
    """Rename the score and prediction columns to the stream's names; take the label column out."""
    for name, target in ((roles.score, SCORE), (roles.prediction, PREDICTION)):
        if name:
            if name not in columns:
                raise ConfigError(f"the reference data has no column {name!r} (columns: {sorted(columns)})")
            columns[target] = columns.pop(name)
    if roles.class_scores:
        named = [n for n in columns if n.startswith(roles.class_scores) and len(n) > len(roles.class_scores)]
        if len(named) < 2:
            raise ConfigError(
                f"--class-scores {roles.class_scores!r}: the reference data needs a column per class named "
                f"{roles.class_scores}<class> (columns: {sorted(columns)})"
            )
        for name in named:
            columns[f"{CLASS_SCORE_PREFIX}{name[len(roles.class_scores) :]}]"] = columns.pop(name)
    if roles.label not in columns:
        raise ConfigError(f"the reference data has no label column {roles.label!r} (columns: {sorted(columns)})")
    return columns.pop(roles.label)


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
    try:
        client.insert(
            "reference_profiles",
            [[profile.model, profile.version, source, profile.to_json()]],
            column_names=["model", "version", "source", "profile"],
            database=database,
        )
    except Exception as exc:
        raise SinkError(f"could not store the reference profile of {profile.model} {profile.version}: {exc}") from exc


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
