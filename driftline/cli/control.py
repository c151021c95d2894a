"""CLI commands of the control plane: `models`, `silences`, `subscriptions`, `alerts tail`.

They talk to Kafka's ``control`` topic directly (no worker needed to accept a change;
every worker and routing client follows the topic), except `alerts tail`, which is a
client of a worker's live stream.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from driftline.cli.options import broker_option, clickhouse_option, fail_cleanly
from driftline.config import Settings
from driftline.events import strict_dumps
from driftline.exceptions import ConfigError
from driftline.reports.timeline import format_event, timeline_lines, when

_topic_prefix = click.option(
    "--topic-prefix", envvar="DRIFTLINE_TOPIC_PREFIX", show_envvar=True, help="Prefix of every topic name."
)
_by = click.option("--by", "by", default=None, help="Who makes the change (default: your user name).")
_reason = click.option("--reason", required=True, help="Why: kept in the registry's history.")


def _user(by: str | None) -> str:
    return by or os.environ.get("DRIFTLINE_USER") or getpass.getuser()


@contextmanager
def _control(flags: dict[str, Any]) -> Iterator[Any]:
    from driftline.control import ControlClient

    settings = Settings.from_env(**flags)
    _ensure_control_topic(settings)
    client = ControlClient(settings.broker, settings.topic("control"), security=settings.kafka)
    try:
        yield client
    finally:
        client.close()


def _ensure_control_topic(settings: Settings) -> None:
    """Create the control topic (compacted) if no worker has yet: a registry change needs no running worker."""
    import asyncio

    from aiokafka.errors import KafkaError

    from driftline.streams.topics import ensure_topics

    try:
        asyncio.run(ensure_topics(settings, names=["control"]))
    except (KafkaError, OSError) as exc:
        raise ConfigError(f"cannot reach Kafka at {settings.broker} ({exc}); check --broker") from None


def _show_model(state: Any) -> None:
    lock = "  [locked]" if state.locked else ""
    click.echo(f"{state.model}  revision {state.revision}{lock}")
    for v in sorted(state.versions.values(), key=lambda v: (v.stage != "production", v.version)):
        click.echo(
            f"  {v.version:<14}{v.stage:<12}{v.weight:>6.1f} %   {when(v.updated_at)}  {v.updated_by}: {v.reason}"
        )


"""Add the control-plane commands to the `driftline` group."""


@click.group()
def models() -> None:
    """Model registry: versions, stages, traffic weights; promote, roll back, lock."""


@models.command("list")
@broker_option
@_topic_prefix
@fail_cleanly
def models_list(**flags: Any) -> None:
    """Every model's versions with stage and weight."""
    with _control(flags) as control:
        state = control.sync()
        if not state.models:
            click.echo("no models registered; `driftline models register MODEL VERSION --stage production`")
        for name in sorted(state.models):
            _show_model(state.models[name])


@models.command("register")
@click.argument("model")
@click.argument("version")
@click.option("--stage", type=click.Choice(["production", "canary", "shadow", "retired"]), required=True)
@click.option("--weight", type=float, default=0.0, help="Canary traffic share in percent.")
@_by
@_reason
@broker_option
@_topic_prefix
@fail_cleanly
def models_register(
    model: str, version: str, stage: str, weight: float, by: str | None, reason: str, **flags: Any
) -> None:
    """Add a version (or move it) to a stage."""
    with _control(flags) as control:
        _show_model(
            control.change_model(
                model, lambda s: s.register(version, stage, weight=weight, by=_user(by), reason=reason, now=time.time())
            )
        )


@models.command("set-weight")
@click.argument("model")
@click.argument("version")
@click.argument("weight", type=float)
@_by
@_reason
@broker_option
@_topic_prefix
@fail_cleanly
def models_weight(model: str, version: str, weight: float, by: str | None, reason: str, **flags: Any) -> None:
    """Set a canary's share of traffic (percent)."""
    with _control(flags) as control:
        _show_model(
            control.change_model(
                model, lambda s: s.set_weight(version, weight, by=_user(by), reason=reason, now=time.time())
            )
        )


for action, doc in (
    ("promote", "Make VERSION production (the old production version is retired)."),
    ("rollback", "Take VERSION out of traffic now (weight 0, stage retired)."),
):

    @models.command(action, help=doc)
    @click.argument("model")
    @click.argument("version")
    @_by
    @_reason
    @broker_option
    @_topic_prefix
    @fail_cleanly
    def models_move(model: str, version: str, by: str | None, reason: str, _action: str = action, **flags: Any) -> None:
        with _control(flags) as control:
            _show_model(
                control.change_model(
                    model, lambda s: getattr(s, _action)(version, by=_user(by), reason=reason, now=time.time())
                )
            )


for action, doc in (
    ("lock", "Freeze MODEL: canary analysis leaves it alone."),
    ("unlock", "Let canary analysis act on MODEL again."),
):

    @models.command(action, help=doc)
    @click.argument("model")
    @_by
    @_reason
    @broker_option
    @_topic_prefix
    @fail_cleanly
    def models_lock(model: str, by: str | None, reason: str, _action: str = action, **flags: Any) -> None:
        with _control(flags) as control:
            _show_model(
                control.change_model(model, lambda s: getattr(s, _action)(by=_user(by), reason=reason, now=time.time()))
            )


@click.group()
def silences() -> None:
    """Mute notifications of matching alerts for a while."""


@silences.command("create")
@click.argument("matchers", nargs=-1, required=True)
@click.option("--duration", default="2h", show_default=True, help="How long, e.g. 30m, 2h, 1d.")
@click.option("--author", default=None, help="Who (default: your user name).")
@click.option("--comment", required=True, help="Why, e.g. a ticket.")
@broker_option
@_topic_prefix
@fail_cleanly
def silences_create(matchers: tuple[str, ...], duration: str, author: str | None, comment: str, **flags: Any) -> None:
    """Silence alerts matching MATCHERS (name=value, name!=value, name=~regex, name!~regex)."""
    from driftline.alerts.matchers import parse_matchers
    from driftline.alerts.silences import Silence
    from driftline.values import parse_duration

    now = time.time()
    seconds = parse_duration(duration, "--duration")
    silence = Silence.create(
        parse_matchers(list(matchers)), ends_at=now + seconds, created_by=_user(author), comment=comment, now=now
    )
    with _control(flags) as control:
        control.put_silence(silence)
    click.echo(f"{silence.id}  until {when(silence.ends_at)}")


@silences.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@broker_option
@_topic_prefix
@fail_cleanly
def silences_list(show_all: bool, **flags: Any) -> None:
    """Active silences (with --all, expired ones too)."""
    now = time.time()
    with _control(flags) as control:
        items = sorted(control.sync().silences.values(), key=lambda s: s.starts_at)
    for s in items:
        if show_all or s.ends_at > now:
            state = "active" if s.active(now) else ("pending" if s.starts_at > now else "expired")
            click.echo(
                f"{s.id}  {state:<8}{' '.join(map(str, s.matchers))}  until {when(s.ends_at)}  "
                f"{s.created_by}: {s.comment}"
            )


@silences.command("expire")
@click.argument("silence_id")
@broker_option
@_topic_prefix
@fail_cleanly
def silences_expire(silence_id: str, **flags: Any) -> None:
    """End a silence now."""
    with _control(flags) as control:
        control.expire_silence(silence_id, time.time())
    click.echo(f"{silence_id} expired")


@click.group()
def subscriptions() -> None:
    """Webhook receivers of alert notifications."""


@subscriptions.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--model", "models_", multiple=True, help="Only these models (repeat; default every model).")
@click.option("--severity", default="info", type=click.Choice(["info", "warning", "critical"]))
@click.option("--match", "matchers", multiple=True, help="Label matcher, e.g. team=risk (repeat).")
@click.option("--secret-env", default=None, help="Env var holding a whsec_ secret to use (default: make one).")
@click.option("--by", default=None, help="Who (default: your user name).")
@broker_option
@_topic_prefix
@fail_cleanly
def subscriptions_add(
    name: str,
    url: str,
    models_: tuple[str, ...],
    severity: str,
    matchers: tuple[str, ...],
    secret_env: str | None,
    by: str | None,
    **flags: Any,
) -> None:
    """Send alerts to URL as signed Alertmanager-v4 webhooks."""
    from driftline.alerts.subscriptions import Subscription

    secret = None
    if secret_env:
        secret = os.environ.get(secret_env)
        if not secret:
            raise ConfigError(f"--secret-env {secret_env}: that environment variable is empty or unset")
    sub = Subscription.create(
        name,
        url,
        created_by=_user(by),
        now=time.time(),
        models=models_,
        min_severity=severity,
        matchers=matchers,
        secret=secret,
    )
    with _control(flags) as control:
        control.put_subscription(sub)
    click.echo(f"{sub.id}  {name} -> {url}")
    if secret is None:
        click.echo(f"signing secret (shown once; verify webhook-signature with it): {sub.reveal()}")


@subscriptions.command("list")
@broker_option
@_topic_prefix
@fail_cleanly
def subscriptions_list(**flags: Any) -> None:
    """Subscriptions (secrets are never shown)."""
    from driftline.alerts.subscriptions import safe_url

    with _control(flags) as control:
        subs = control.sync().subscriptions.values()
    for s in sorted(subs, key=lambda s: s.created_at):
        scope = ",".join(s.models) or "*"
        extra = " ".join(map(str, s.matchers))
        click.echo(f"{s.id}  {s.name:<16}{safe_url(s.url)}  models={scope} severity>={s.min_severity} {extra}")


@subscriptions.command("delete")
@click.argument("subscription_id")
@broker_option
@_topic_prefix
@fail_cleanly
def subscriptions_delete(subscription_id: str, **flags: Any) -> None:
    """Stop sending to a subscription."""
    with _control(flags) as control:
        control.delete_subscription(subscription_id)
    click.echo(f"{subscription_id} deleted")


@click.group()
def alerts() -> None:
    """Live alerts."""


@alerts.command("history")
@click.option("--model", required=True, help="Model name.")
@clickhouse_option
@fail_cleanly
def alerts_history(model: str, **flags: Any) -> None:
    """Alert timeline, canary decisions and registry history of MODEL, from ClickHouse."""
    from driftline.alerts.store import AlertStore
    from driftline.sinks.clickhouse import ClickHouseSink

    settings = Settings.from_env(**flags)
    sink = ClickHouseSink(settings)
    try:
        sink.migrate()
        for line in timeline_lines(AlertStore(sink.client, settings.clickhouse_database).timeline(model)):
            click.echo(line)
    finally:
        sink.close()


@alerts.command("tail")
@click.option("--url", default=None, help="A worker's web address, e.g. http://127.0.0.1:6066.")
@click.option("--model", "models_", multiple=True, help="Only these models (repeat).")
@click.option("--severity", default="info", type=click.Choice(["info", "warning", "critical"]))
@click.option("--match", "labels", multiple=True, help="Label matcher, e.g. team=risk (repeat).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@fail_cleanly
def alerts_tail(
    url: str | None, models_: tuple[str, ...], severity: str, labels: tuple[str, ...], as_json: bool
) -> None:
    """Follow alert state changes and rollout decisions as they happen (reconnects and resumes)."""
    from driftline.alerts.live import tail

    settings = Settings.from_env()
    url = url or f"http://127.0.0.1:{settings.web_port or 6066}"
    token = settings.alerts_token.get()
    token_file = Path(settings.data_dir) / "alerts-token"
    if not token and token_file.exists():
        token = token_file.read_text().strip()
    if not token:
        raise ConfigError(
            f"no token: set DRIFTLINE_ALERTS_TOKEN (or DRIFTLINE_DATA_DIR to the worker's, "
            f"which holds alerts-token; looked in {token_file})"
        )
    for event in tail(url, token, models=models_, severity=severity, labels=labels):
        if as_json:
            click.echo(strict_dumps({"id": event.id, "kind": event.kind, **event.data}))
        else:
            click.echo(format_event(event.kind, event.data))


@click.group()
def grafana() -> None:
    """Grafana dashboards built from the monitor spec."""


spec_option = click.option("--spec", envvar="DRIFTLINE_SPEC", show_envvar=True, help="Monitor spec (YAML).")
db_option = click.option(
    "--database",
    envvar="DRIFTLINE_CLICKHOUSE_DATABASE",
    default="driftline",
    show_default=True,
    help="ClickHouse database the panels query.",
)


def _spec(path: str | None) -> Any:
    from driftline.spec import MonitorSpec

    return MonitorSpec.load(path) if path else MonitorSpec()


@grafana.command("build")
@spec_option
@db_option
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("infra/grafana/dashboards"),
    show_default=True,
    help="Directory for the dashboard JSON (Grafana file provisioning).",
)
@fail_cleanly
def grafana_build(spec: str | None, database: str, out: Path) -> None:
    """Write the dashboards as provisioning JSON."""
    from driftline.grafana.dashboards import write

    for path in write(_spec(spec), out, database):
        click.echo(str(path))


@grafana.command("push")
@click.option("--url", required=True, envvar="DRIFTLINE_GRAFANA_URL", show_envvar=True, help="Grafana's URL.")
@click.option(
    "--token",
    required=True,
    envvar="DRIFTLINE_GRAFANA_TOKEN",
    show_envvar=True,
    help="A service-account token (prefer the env var: flags end up in shell history).",
)
@click.option("--folder", default=None, help="Folder uid to put the dashboards in.")
@spec_option
@db_option
@fail_cleanly
def grafana_push(url: str, token: str, folder: str | None, spec: str | None, database: str) -> None:
    """Create or replace the dashboards in a running Grafana over its HTTP API."""
    from driftline.grafana.dashboards import build, push

    for location in push(build(_spec(spec), database), url, token, folder):
        click.echo(f"{url.rstrip('/')}{location}" if location.startswith("/") else location)
