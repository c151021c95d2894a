"""`driftline migrate`, `counts`, `profile build`, `metrics`, `report`: the ClickHouse side, read and prepared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from driftline.cli.options import clickhouse_option, data_dir_option, fail_cleanly, settings_from
from driftline.events import strict_dumps
from driftline.reports.page import file_name


@click.command()
@clickhouse_option
@click.option("--database", envvar="DRIFTLINE_CLICKHOUSE_DATABASE", show_envvar=True, help="Database name.")
@fail_cleanly
def migrate(clickhouse: str | None, database: str | None) -> None:
    """Create or upgrade the ClickHouse schema."""
    from driftline.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(settings_from(clickhouse=clickhouse, clickhouse_database=database))
    applied = sink.migrate()
    click.echo(f"applied migrations {applied}" if applied else "schema is up to date")


@click.command()
@clickhouse_option
@click.option("--database", envvar="DRIFTLINE_CLICKHOUSE_DATABASE", show_envvar=True, help="Database name.")
@fail_cleanly
def counts(clickhouse: str | None, database: str | None) -> None:
    """Print the rows in each driftline table as JSON (each event counted once)."""

    from driftline.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(settings_from(clickhouse=clickhouse, clickhouse_database=database))
    sink.migrate()
    click.echo(strict_dumps(sink.counts()))


@click.group()
def profile() -> None:
    """Reference profiles: what features looked like in training or a chosen window."""


@profile.command("build")
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "version_", required=True, help="Model version the profile is the reference of.")
@click.option("--input", "input_", type=click.Path(path_type=Path), help="Reference data: .csv or .jsonl.")
@click.option("--since", help="With --from-clickhouse: start of the window (ISO time, UTC).")
@click.option("--until", help="With --from-clickhouse: end of the window (ISO time, UTC).")
@click.option("--from-clickhouse", is_flag=True, help="Profile the model version's predictions in [since, until).")
@click.option("--out", type=click.Path(path_type=Path), help="JSON artefact (default: <data dir>/profiles/M-V.json).")
@click.option("--no-store", is_flag=True, help="Write the JSON artefact only, not the ClickHouse table.")
@clickhouse_option
@data_dir_option
@click.option("--spec", envvar="DRIFTLINE_SPEC", show_envvar=True, help="Monitor spec: feature kinds to use.")
@click.option("--label", help="The true label's column: calibrates the scores so quality is estimated before labels.")
@click.option("--score", help="With --label: the score's column (default: [score], as in events).")
@click.option("--prediction", help="With --label: the prediction's column (default: [prediction]).")
@click.option(
    "--class-scores",
    metavar="PREFIX",
    help="With --label, multiclass: columns PREFIX<class> hold each class's score; estimates per class "
    "(default: events' class_scores).",
)
@fail_cleanly
def profile_build(
    model: str,
    version_: str,
    input_: Path | None,
    since: str | None,
    until: str | None,
    from_clickhouse: bool,
    out: Path | None,
    no_store: bool,
    label: str | None,
    score: str | None,
    prediction: str | None,
    class_scores: str | None,
    **flags: Any,
) -> None:
    """Build a reference profile; store it in ClickHouse (the worker uses it) and as JSON."""
    from driftline.sinks.clickhouse import ClickHouseSink
    from driftline.sinks.profiles import (
        ReferenceRoles,
        profile_from_rows,
        read_rows,
        rows_from_clickhouse,
        store_profile,
        write_artifact,
    )

    if bool(input_) == from_clickhouse:
        raise click.UsageError("give either --input FILE or --from-clickhouse --since T --until T")
    if from_clickhouse and not (since and until):
        raise click.UsageError("--from-clickhouse needs --since and --until")
    settings = settings_from(**flags)
    model_spec = settings.monitor_spec().for_model(model)
    kinds = model_spec.features or None
    sink = None if (no_store and input_) else ClickHouseSink(settings)
    if sink is not None:
        sink.migrate()
    if input_:
        rows = read_rows(input_, model, version_)
        source = f"file:{input_.name}"
    else:
        assert sink is not None and since and until
        rows = rows_from_clickhouse(sink.client, settings.clickhouse_database, model, version_, since, until)
        source = f"clickhouse:{since}/{until}"
    if (score or prediction or class_scores) and not label:
        raise click.UsageError("--score, --prediction and --class-scores name columns for --label (quality estimation)")
    roles = ReferenceRoles(label, score, prediction, model_spec.positive_class, class_scores) if label else None
    built = profile_from_rows(model, version_, rows, kinds, task=model_spec.task, roles=roles)
    path = write_artifact(built, out or settings.data_path / "profiles" / f"{file_name(model, version_)}.json")
    if sink is not None and not no_store:
        store_profile(sink.client, settings.clickhouse_database, built, source)
    n = next(iter(built.features.values())).count if built.features else 0
    click.echo(
        f"profiled {len(built.features)} features of {model} {version_} (~{n:,} rows); wrote {path}"
        + ("" if no_store else "; stored in ClickHouse reference_profiles")
        + _calibrated(built)
    )


def _calibrated(profile: Any) -> str:
    """What `profile build` says of the calibration for quality estimated before labels (cbpe.py)."""
    if profile.class_calibrations:
        one = next(iter(profile.class_calibrations.values()))
        return (
            f"; the scores of {len(profile.class_calibrations)} classes calibrated one versus the rest on "
            f"{one.reference_n:,} labelled rows (quality estimated before labels)"
        )
    cal = profile.calibration
    return f"; scores calibrated on {cal.reference_n:,} labelled rows (quality estimated before labels)" if cal else ""


@click.command()
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "version_", help="Model version (default: all).")
@click.option("--family", help="drift, data_quality, quality, fairness, kpi or volume (default: all).")
@click.option("--metric", help="One metric, e.g. psi or accuracy (default: all).")
@clickhouse_option
@fail_cleanly
def metrics(model: str, version_: str | None, family: str | None, metric: str | None, **flags: Any) -> None:
    """Print metric rows as JSON lines (window_start/window_end in seconds since the epoch)."""

    from driftline.sinks.clickhouse import ClickHouseSink

    settings = settings_from(**flags)
    sink = ClickHouseSink(settings)
    sink.migrate()
    result = sink.client.query(
        "SELECT toUnixTimestamp64Milli(window_start) / 1000 AS window_start, toUnixTimestamp64Milli(window_end) / 1000,"
        " model, version, family, metric, feature, segment, value, n, complete"
        f" FROM {settings.clickhouse_database}.metrics FINAL WHERE model = {{m:String}}"
        " AND ({v:String} = '' OR version = {v:String}) AND ({f:String} = '' OR family = {f:String})"
        " AND ({x:String} = '' OR metric = {x:String})"
        " ORDER BY version, family, metric, feature, segment, window_start",
        parameters={"m": model, "v": version_ or "", "f": family or "", "x": metric or ""},
    )
    names = [
        "window_start",
        "window_end",
        "model",
        "version",
        "family",
        "metric",
        "feature",
        "segment",
        "value",
        "n",
        "complete",
    ]
    for row in result.result_rows:
        click.echo(strict_dumps(dict(zip(names, row, strict=True))))


@click.command()
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "version_", required=True, help="Model version.")
@click.option("--out", type=click.Path(path_type=Path), help="HTML file (default: <data dir>/report-M-V.html).")
@clickhouse_option
@data_dir_option
@fail_cleanly
def report(model: str, version_: str, out: Path | None, **flags: Any) -> None:
    """Write an HTML report with charts of a model version's metrics."""
    from driftline.reports.model_report import model_report
    from driftline.sinks.clickhouse import ClickHouseSink

    settings = settings_from(**flags)
    sink = ClickHouseSink(settings)
    sink.migrate()
    path = out or settings.data_path / f"{file_name('report', model, version_)}.html"
    click.echo(f"wrote {model_report(sink.client, settings.clickhouse_database, model, version_, path)}")
