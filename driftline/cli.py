"""The `driftline` command."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from driftline.config import Settings
from driftline.exceptions import DriftlineError


def _fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print driftline errors as one line that says how to fix them, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DriftlineError as exc:
            click.echo(f"driftline: error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def _settings(**flags: Any) -> Settings:
    return Settings.from_env(**flags)


_broker = click.option(
    "--broker", envvar="DRIFTLINE_BROKER", show_envvar=True, help="Kafka bootstrap HOST:PORT[,HOST:PORT]."
)
_clickhouse = click.option(
    "--clickhouse",
    envvar="DRIFTLINE_CLICKHOUSE",
    show_envvar=True,
    help="ClickHouse DSN: chdb:///<dir> (embedded) or http(s)://host:port. "
    "User and password come from DRIFTLINE_CLICKHOUSE_USER / DRIFTLINE_CLICKHOUSE_PASSWORD.",
)
_data_dir = click.option("--data-dir", envvar="DRIFTLINE_DATA_DIR", show_envvar=True, help="Where local state goes.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="driftline")
def main() -> None:
    """driftline: real-time ML monitoring on Kafka and ClickHouse."""


@main.command()
@_broker
@_clickhouse
@_data_dir
@click.option("--partitions", type=int, envvar="DRIFTLINE_PARTITIONS", show_envvar=True, help="Partitions per topic.")
@click.option("--web-port", type=int, envvar="DRIFTLINE_WEB_PORT", show_envvar=True, help="Port of /stats and /health.")
@click.option("--topic-prefix", envvar="DRIFTLINE_TOPIC_PREFIX", show_envvar=True, help="Prefix of every topic name.")
@click.option("--spec", envvar="DRIFTLINE_SPEC", show_envvar=True, help="Monitor spec (YAML) to apply.")
@click.option(
    "--loglevel",
    default="warn",
    envvar="DRIFTLINE_LOGLEVEL",
    show_envvar=True,
    type=click.Choice(["crit", "error", "warn", "info", "debug"]),
)
@click.option(
    "--log-format",
    default="text",
    envvar="DRIFTLINE_LOG_FORMAT",
    show_envvar=True,
    type=click.Choice(["text", "json"]),
    help="json: one object per line with model/version context.",
)
@_fail_cleanly
def worker(loglevel: str, log_format: str, **flags: Any) -> None:
    """Run the ingest worker against any Kafka cluster and ClickHouse."""
    from driftline.streams.app import run_worker

    settings = _settings(**flags)
    settings.monitor_spec()  # check the spec before anything starts
    from driftline.config import redact_dsn

    banner = (
        f"driftline worker: consuming {settings.topic('predictions')} and {settings.topic('labels')} from "
        f"{settings.broker} (group {settings.group_id}); ClickHouse {redact_dsn(settings.clickhouse)} "
        f"database {settings.clickhouse_database}; GET /stats on 127.0.0.1:{settings.web_port or 6066}"
    )
    if log_format == "json":
        import json
        import time

        banner = json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "info",
                             "logger": "driftline.cli", "msg": banner})  # fmt: skip
    click.echo(
        banner,
        err=True,
    )
    # Faust parses sys.argv itself: hand it only what it understands.
    sys.argv = [sys.argv[0], "worker"]
    run_worker(settings, loglevel=loglevel, log_format=log_format)


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port on 127.0.0.1 (0 = a free one).")
@_fail_cleanly
def broker(port: int) -> None:
    """Run the embedded Tansu broker (memory only) on 127.0.0.1 until Ctrl-C."""
    import signal

    from driftline.broker import EmbeddedBroker

    b = EmbeddedBroker(port=port or None).start()
    click.echo(f"Tansu broker on {b.bootstrap} (memory only; Ctrl-C stops it)")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        b.stop()


@main.command()
@_clickhouse
@click.option("--database", envvar="DRIFTLINE_CLICKHOUSE_DATABASE", show_envvar=True, help="Database name.")
@_fail_cleanly
def migrate(clickhouse: str | None, database: str | None) -> None:
    """Create or upgrade the ClickHouse schema."""
    from driftline.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(_settings(clickhouse=clickhouse, clickhouse_database=database))
    applied = sink.migrate()
    click.echo(f"applied migrations {applied}" if applied else "schema is up to date")


@main.command()
@_clickhouse
@click.option("--database", envvar="DRIFTLINE_CLICKHOUSE_DATABASE", show_envvar=True, help="Database name.")
@_fail_cleanly
def counts(clickhouse: str | None, database: str | None) -> None:
    """Print the rows in each driftline table as JSON (each event counted once)."""
    import json

    from driftline.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(_settings(clickhouse=clickhouse, clickhouse_database=database))
    sink.migrate()
    click.echo(json.dumps(sink.counts()))


@main.group()
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
@_clickhouse
@_data_dir
@click.option("--spec", envvar="DRIFTLINE_SPEC", show_envvar=True, help="Monitor spec: feature kinds to use.")
@_fail_cleanly
def profile_build(
    model: str,
    version_: str,
    input_: Path | None,
    since: str | None,
    until: str | None,
    from_clickhouse: bool,
    out: Path | None,
    no_store: bool,
    **flags: Any,
) -> None:
    """Build a reference profile; store it in ClickHouse (the worker uses it) and as JSON."""
    from driftline.profile_io import profile_from_rows, read_rows, rows_from_clickhouse, store_profile, write_artifact
    from driftline.sinks.clickhouse import ClickHouseSink

    if bool(input_) == from_clickhouse:
        raise click.UsageError("give either --input FILE or --from-clickhouse --since T --until T")
    if from_clickhouse and not (since and until):
        raise click.UsageError("--from-clickhouse needs --since and --until")
    settings = _settings(**flags)
    kinds = settings.monitor_spec().for_model(model).features or None
    sink = None if (no_store and input_) else ClickHouseSink(settings)
    if sink is not None:
        sink.migrate()
    if input_:
        rows = read_rows(input_)
        source = f"file:{input_.name}"
    else:
        assert sink is not None and since and until
        rows = rows_from_clickhouse(sink.client, settings.clickhouse_database, model, version_, since, until)
        source = f"clickhouse:{since}/{until}"
    built = profile_from_rows(model, version_, rows, kinds)
    path = write_artifact(built, out or settings.data_path / "profiles" / f"{model}-{version_}.json")
    if sink is not None and not no_store:
        store_profile(sink.client, settings.clickhouse_database, built, source)
    n = next(iter(built.features.values())).count if built.features else 0
    click.echo(
        f"profiled {len(built.features)} features of {model} {version_} (~{n:,} rows); wrote {path}"
        + ("" if no_store else "; stored in ClickHouse reference_profiles")
    )


@main.command()
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "version_", help="Model version (default: all).")
@click.option("--family", help="drift, data_quality, quality, fairness, kpi or volume (default: all).")
@click.option("--metric", help="One metric, e.g. psi or accuracy (default: all).")
@_clickhouse
@_fail_cleanly
def metrics(model: str, version_: str | None, family: str | None, metric: str | None, **flags: Any) -> None:
    """Print metric rows as JSON lines (window_start/window_end in seconds since the epoch)."""
    import json

    from driftline.sinks.clickhouse import ClickHouseSink

    settings = _settings(**flags)
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
    names = ["window_start", "window_end", "model", "version", "family", "metric", "feature", "segment", "value",
             "n", "complete"]  # fmt: skip
    for row in result.result_rows:
        click.echo(json.dumps(dict(zip(names, row, strict=True))))


@main.command()
@click.option("--model", required=True, help="Model name.")
@click.option("--version", "version_", required=True, help="Model version.")
@click.option("--out", type=click.Path(path_type=Path), help="HTML file (default: <data dir>/report-M-V.html).")
@_clickhouse
@_data_dir
@_fail_cleanly
def report(model: str, version_: str, out: Path | None, **flags: Any) -> None:
    """Write an HTML report with charts of a model version's metrics."""
    from driftline.report import model_report
    from driftline.sinks.clickhouse import ClickHouseSink

    settings = _settings(**flags)
    sink = ClickHouseSink(settings)
    sink.migrate()
    path = out or settings.data_path / f"report-{model}-{version_}.html"
    click.echo(f"wrote {model_report(sink.client, settings.clickhouse_database, model, version_, path)}")


@main.command()
@click.option("--events", type=int, default=60_000, show_default=True, help="Predictions to replay.")
@click.option("--rate", type=float, default=2_000.0, show_default=True, help="Predictions per second (0 = flat out).")
@click.option("--data-dir", default=".driftline/demo", show_default=True, help="Wiped and refilled by each run.")
@click.option("--seed", type=int, default=42, show_default=True)
@_fail_cleanly
def demo(events: int, rate: float, data_dir: str, seed: int) -> None:
    """Start the embedded stack, replay a drifting model's predictions and labels, summarise."""
    from driftline.demo import DemoOptions, run_demo

    if events < 100:
        raise click.BadParameter("use at least 100 events", param_hint="--events")
    if rate < 0:
        raise click.BadParameter("must be 0 (flat out) or positive", param_hint="--rate")
    code = run_demo(DemoOptions(events=events, rate=rate, data_dir=data_dir, seed=seed))
    if code == 130:
        # Interrupted and cleaned up (worker and broker stopped). Leave now: a Kafka client interrupted
        # mid-call can turn interpreter shutdown into a second SIGINT exit (-2) instead of 130.
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


@main.command()
@_broker
@click.option("--topic-prefix", envvar="DRIFTLINE_TOPIC_PREFIX", show_envvar=True, help="Prefix of every topic name.")
@click.option("--events", type=int, default=60_000, show_default=True, help="Predictions to send.")
@click.option("--rate", type=float, default=1_000.0, show_default=True, help="Predictions per second (0 = flat out).")
@click.option("--seed", type=int, default=42, show_default=True)
@_fail_cleanly
def simulate(events: int, rate: float, seed: int, **flags: Any) -> None:
    """Send the demo's stream (a drifting model, a worse canary, late labels) to a running Kafka.

    For a stack you run yourself (e.g. docker compose --profile demo): registers v1 and a 10 %
    canary v2 unless the model is in the registry already and routes with the routing client.
    Event time spans 100 simulated minutes ending at the last full hour, whatever --events is.
    """
    from driftline.demo import DemoOptions, run_simulation

    if events < 100:
        raise click.BadParameter("use at least 100 events", param_hint="--events")
    run_simulation(DemoOptions(events=events, rate=rate, seed=seed), _settings(**flags))


from driftline.cli_control import register as _register_control  # noqa: E402 - needs the group and options
from driftline.cli_control import register_grafana as _register_grafana  # noqa: E402
from driftline.cli_labels import register as _register_labels  # noqa: E402
from driftline.cli_offline import register as _register_offline  # noqa: E402

_register_control(main, _fail_cleanly, _broker, _clickhouse)
_register_grafana(main, _fail_cleanly)
_register_offline(main, _fail_cleanly)
_register_labels(main, _fail_cleanly, _clickhouse)


if __name__ == "__main__":
    main()
