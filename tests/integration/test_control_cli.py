"""The control-plane CLI against the real broker: registry, silences, subscriptions; secrets stay secret."""

from __future__ import annotations

import time
from collections.abc import Callable

from click.testing import CliRunner

from driftline.cli import main
from driftline.config import Settings
from driftline.control import ControlClient
from driftline.models.routing import RoutingClient


def run(settings: Settings, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(
        main, [*args, "--broker", settings.broker, "--topic-prefix", settings.topic_prefix], catch_exceptions=False
    )
    assert result.exit_code == code, result.output
    return result.output


def test_models_cli_changes_reach_routing_clients_within_a_poll(settings_factory: Callable[..., Settings]) -> None:
    s = settings_factory()
    run(s, "models", "register", "loan", "v1", "--stage", "production", "--reason", "first", "--by", "ana")
    out = run(s, "models", "register", "loan", "v2", "--stage", "canary", "--weight", "30", "--reason", "new tree")
    assert "v2" in out and "canary" in out and "30.0 %" in out
    with RoutingClient(s.broker, "loan", topic=s.topic("control"), poll_interval_s=0.05) as router:
        assert router.state.canaries == {"v2": 30.0}
        before = router.revision
        t0 = time.monotonic()
        run(s, "models", "rollback", "loan", "v2", "--reason", "bad calibration", "--by", "ana")
        while router.revision == before:
            assert time.monotonic() - t0 < 5
            time.sleep(0.01)
        assert {router.route(f"k{i}").version for i in range(500)} == {"v1"}
    listing = run(s, "models", "list")
    assert "retired" in listing and "ana: bad calibration" in listing
    run(s, "models", "lock", "loan", "--reason", "incident 12")
    out = run(s, "models", "promote", "loan", "v2", "--reason", "x", code=2)
    assert out.startswith("driftline: error:") and "locked" in out and "unlock" in out
    run(s, "models", "unlock", "loan", "--reason", "incident over")
    assert "production" in run(s, "models", "promote", "loan", "v2", "--reason", "fixed")


def test_silences_cli(settings_factory: Callable[..., Settings]) -> None:
    s = settings_factory()
    out = run(
        s,
        "silences",
        "create",
        "model=loan",
        "severity=~warning|info",
        "--duration",
        "1h",
        "--comment",
        "T-1",
        "--author",
        "ana",
    )
    sid = out.split()[0]
    assert sid.startswith("sil-")
    listing = run(s, "silences", "list")
    assert sid in listing and "active" in listing and "ana: T-1" in listing
    run(s, "silences", "expire", sid)
    assert sid not in run(s, "silences", "list") and "expired" in run(s, "silences", "list", "--all")
    bad = run(s, "silences", "create", "model", "--comment", "x", code=2)
    assert "is not name=value" in bad
    assert "no silence" in run(s, "silences", "expire", "sil-nope", code=2)


def test_subscriptions_cli_shows_the_secret_once_and_never_again(settings_factory: Callable[..., Settings]) -> None:
    s = settings_factory()
    out = run(
        s,
        "subscriptions",
        "add",
        "ops",
        "https://hooks.example/a?token=abc",
        "--severity",
        "critical",
        "--model",
        "loan",
    )
    sub_id = out.split()[0]
    secret = out.strip().split()[-1]
    assert secret.startswith("whsec_")
    listing = run(s, "subscriptions", "list")
    assert (
        sub_id in listing and secret not in listing and "token=abc" not in listing and "severity>=critical" in listing
    )
    client = ControlClient(s.broker, s.topic("control"))
    try:
        assert client.sync().subscriptions[sub_id].reveal() == secret  # workers can sign with it
        assert secret not in repr(client.state.subscriptions[sub_id])
    finally:
        client.close()
    assert "must be http(s)" in run(s, "subscriptions", "add", "x", "ftp://h/a", code=2)
    assert "not a valid regex" in run(s, "subscriptions", "add", "x", "http://h/a", "--match", "a=~(", code=2)
    run(s, "subscriptions", "delete", sub_id)
    assert sub_id not in run(s, "subscriptions", "list")


def test_simulate_sends_the_demo_stream_to_a_running_kafka(settings_factory: Callable[..., Settings]) -> None:
    s = settings_factory()
    out = run(s, "simulate", "--events", "600", "--rate", "0")
    assert "sent 600 predictions" in out
    client = ControlClient(s.broker, s.topic("control"))
    try:
        state = client.sync().models["loan-approval"]
    finally:
        client.close()
    assert state.production == "v1" and state.canaries == {"v2": 10.0}
    listing = run(s, "models", "list")
    assert "loan-approval" in listing and "simulate: demo" in listing


def test_models_register_works_before_any_worker_ran(settings_factory: Callable[..., Settings]) -> None:
    """Issue 17.10: it failed with "topic 'driftline.control' does not exist" until a worker had run."""
    import uuid

    from driftline.streams.topics import TOPICS

    base = settings_factory()
    fresh = Settings(broker=base.broker, topic_prefix=f"fresh{uuid.uuid4().hex[:8]}.")  # no topics at all
    assert "control" in TOPICS
    out = run(fresh, "models", "register", "churn", "v1", "--stage", "production", "--reason", "first")
    assert "v1" in out and "production" in out
    with RoutingClient(fresh.broker, "churn", topic=fresh.topic("control")) as router:
        assert router.state.production == "v1"
