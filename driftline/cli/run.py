"""`driftline worker`, `broker`, `demo`, `simulate`: run the stack, the embedded broker, the demo's stream."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from driftline.cli.options import (
    broker_option,
    clickhouse_option,
    data_dir_option,
    fail_cleanly,
    kafka_security_options,
    settings_from,
)
from driftline.events import strict_dumps
from driftline.exceptions import ConfigError


@click.command()
@broker_option
@clickhouse_option
@data_dir_option
@click.option("--partitions", type=int, envvar="DRIFTLINE_PARTITIONS", show_envvar=True, help="Partitions per topic.")
@click.option("--web-port", type=int, envvar="DRIFTLINE_WEB_PORT", show_envvar=True, help="Port of /stats and /health.")
@click.option(
    "--web-host",
    envvar="DRIFTLINE_WEB_HOST",
    show_envvar=True,
    help="Address the web server listens on (default: 127.0.0.1; 0.0.0.0 in a container, for Prometheus).",
)
@click.option("--topic-prefix", envvar="DRIFTLINE_TOPIC_PREFIX", show_envvar=True, help="Prefix of every topic name.")
@click.option(
    "--group-id",
    envvar="DRIFTLINE_GROUP_ID",
    show_envvar=True,
    help="Consumer group of one deployment's workers (default: driftline-ingest). Two deployments on one "
    "broker need two groups, or each takes part of the other's partitions.",
)
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
@kafka_security_options
@fail_cleanly
def worker(loglevel: str, log_format: str, **flags: Any) -> None:
    """Run the ingest worker against any Kafka cluster and ClickHouse."""
    from driftline.streams.worker import run_worker

    settings = settings_from(**flags)
    settings.monitor_spec()  # check the spec before anything starts
    _check_port_free(settings.web_host, settings.web_port or 6066)
    if settings.kafka.protocol != "PLAINTEXT":
        from driftline.kafka_security import preflight

        preflight(settings.broker, settings.kafka)  # a TLS/SASL refusal in one line, before Faust starts
    from driftline.config import redact_dsn

    banner = (
        f"driftline worker: consuming {settings.topic('predictions')} and {settings.topic('labels')} from "
        f"{settings.broker} (group {settings.group_id}); ClickHouse {redact_dsn(settings.clickhouse)} "
        f"database {settings.clickhouse_database}; GET /stats on {settings.web_host}:{settings.web_port or 6066}"
    )
    if log_format == "json":
        import time

        banner = strict_dumps(
            {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "level": "info",
                "logger": "driftline.cli",
                "msg": banner,
            }
        )
    click.echo(
        banner,
        err=True,
    )
    # Faust parses sys.argv itself: hand it only what it understands.
    sys.argv = [sys.argv[0], "worker"]
    run_worker(settings, loglevel=loglevel, log_format=log_format)


def _check_port_free(host: str, port: int) -> None:
    """A busy web port is a one-line error before anything starts, not Faust's 49-line traceback later."""
    import errno
    import socket

    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds: TIME_WAIT is no conflict
    try:
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use (another worker?): give this one --web-port N "
                "(or DRIFTLINE_WEB_PORT), one port per worker"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; check --web-host/--web-port") from None
    finally:
        probe.close()


@click.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port on 127.0.0.1 (0 = a free one).")
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path),
    default=Path(".driftline/broker.log"),
    show_default=True,
    help="Where the broker's own output goes.",
)
@fail_cleanly
def broker(port: int, log_path: Path) -> None:
    """Run the embedded Tansu broker (memory only) on 127.0.0.1 until Ctrl-C."""
    import signal

    from driftline.dev.broker import EmbeddedBroker

    log_path.parent.mkdir(parents=True, exist_ok=True)
    b = EmbeddedBroker(port=port or None, log_path=log_path).start()
    click.echo(
        f"Tansu broker on {b.bootstrap}; it keeps events in memory only: what no worker consumed is lost "
        f"when it stops. Log: {log_path}. Ctrl-C stops it."
    )
    # Blocked only now: the broker process inherits the signal mask of this one when it starts.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        while b.running:
            if signal.sigtimedwait({signal.SIGINT, signal.SIGTERM}, 0.5) is not None:
                return
        click.echo(f"driftline: error: the Tansu broker exited (code {b.returncode}); see {log_path}", err=True)
        sys.exit(1)
    finally:
        b.stop()


@click.command()
@click.option("--events", type=int, default=60_000, show_default=True, help="Predictions to replay.")
@click.option("--rate", type=float, default=2_000.0, show_default=True, help="Predictions per second (0 = flat out).")
@click.option("--data-dir", default=".driftline/demo", show_default=True, help="Wiped and refilled by each run.")
@click.option("--seed", type=int, default=42, show_default=True)
@fail_cleanly
def demo(events: int, rate: float, data_dir: str, seed: int) -> None:
    """Start the embedded stack, replay a drifting model's predictions and labels, summarise."""
    from driftline.dev.demo import DemoOptions, run_demo

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


@click.command()
@broker_option
@click.option("--topic-prefix", envvar="DRIFTLINE_TOPIC_PREFIX", show_envvar=True, help="Prefix of every topic name.")
@click.option("--events", type=int, default=60_000, show_default=True, help="Predictions to send.")
@click.option("--rate", type=float, default=1_000.0, show_default=True, help="Predictions per second (0 = flat out).")
@click.option("--seed", type=int, default=42, show_default=True)
@fail_cleanly
def simulate(events: int, rate: float, seed: int, **flags: Any) -> None:
    """Send the demo's stream (a drifting model, a worse canary, late labels) to a running Kafka.

    For a stack you run yourself (e.g. docker compose --profile demo): registers v1 and a 10 %
    canary v2 unless the model is in the registry already and routes with the routing client.
    Event time spans 100 simulated minutes ending at the last full hour, whatever --events is.
    """
    from driftline.dev.demo import DemoOptions, run_simulation

    if events < 100:
        raise click.BadParameter("use at least 100 events", param_hint="--events")
    run_simulation(DemoOptions(events=events, rate=rate, seed=seed), settings_from(**flags))


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("kcat_args", nargs=-1, type=click.UNPROCESSED)
@fail_cleanly
def kcat(kcat_args: tuple[str, ...]) -> None:
    """Run kcat with the librdkafka that ships in driftline's confluent-kafka wheel; -b from DRIFTLINE_BROKER.

    Debian 12's kcat links librdkafka 2.0.2, which cannot parse the ApiVersions v3 answer of the
    embedded (Tansu) broker: Tansu writes every tagged field, defaults too, and 2.0.2 mis-skips
    them ("ApiVersionRequest failed: Local: Read underflow"). librdkafka 2.16 reads them. E.g.
    `driftline kcat -L` or `driftline kcat -C -t driftline.predictions -c 5 -e`.
    """
    import os
    import shutil

    binary = shutil.which("kcat") or shutil.which("kafkacat")
    if binary is None:
        raise ConfigError("kcat is not installed: `apt-get install kcat` (Debian/Ubuntu) or `brew install kcat`")
    args = list(kcat_args)
    broker = os.environ.get("DRIFTLINE_BROKER")
    if broker and not any(a == "-b" or a.startswith("-b") for a in args):
        args = ["-b", broker, *args]
    env = dict(os.environ)
    library = bundled_librdkafka()
    if library is not None:
        env["LD_PRELOAD"] = " ".join(p for p in (str(library), env.get("LD_PRELOAD", "")) if p)
    os.execvpe(binary, [binary, *args], env)  # noqa: S606 - kcat with the user's arguments replaces this process


def bundled_librdkafka() -> Path | None:
    """The librdkafka shared library inside the confluent-kafka wheel (None where it links a system one)."""
    import importlib.util

    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        return None
    libs = Path(spec.origin).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*")) if libs.is_dir() else []
    return found[0] if found else None
