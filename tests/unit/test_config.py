from __future__ import annotations

import pytest

from driftline.config import MAX_TTL_DAYS, Settings, redact_dsn
from driftline.exceptions import ConfigError
from driftline.values import Secret


def test_defaults_are_valid() -> None:
    s = Settings()
    assert s.topic("predictions") == "driftline.predictions"
    assert s.clickhouse.startswith("chdb:///")


def test_env_and_overrides() -> None:
    s = Settings.from_env(
        {"DRIFTLINE_BROKER": "k1:9092,k2:9092", "DRIFTLINE_TTL_DAYS": "30", "DRIFTLINE_TOPIC_PREFIX": "x."},
        partitions=8,
    )
    assert (s.broker, s.ttl_days, s.partitions, s.topic("dlq")) == ("k1:9092,k2:9092", 30, 8, "x.dlq")


def test_none_overrides_are_ignored() -> None:
    assert Settings.from_env({}, broker=None).broker == Settings().broker


def test_password_never_shows() -> None:
    s = Settings.from_env({"DRIFTLINE_CLICKHOUSE_PASSWORD": "hunter2"})
    assert s.clickhouse_password.get() == "hunter2"
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.clickhouse_password)
    assert Secret("a") == Secret("a")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"broker": "localhost"}, "HOST:PORT"),
        ({"broker": "h:99999"}, "HOST:PORT"),
        ({"clickhouse": "postgres://x"}, "chdb:///"),
        ({"clickhouse": "chdb://relative"}, "three slashes"),
        ({"partitions": 0}, "between 1 and 1024"),
        ({"ttl_days": MAX_TTL_DAYS + 1}, "DateTime"),
        ({"clickhouse_database": "x; DROP TABLE y"}, "letters, digits"),
        ({"max_message_bytes": 10}, "at least 1024"),
        ({"web_port": 70000}, "TCP port"),
    ],
)
def test_bad_settings_fail_with_a_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_bad_int_from_env() -> None:
    with pytest.raises(ConfigError, match="DRIFTLINE_TTL_DAYS='soon' is not a whole number"):
        Settings.from_env({"DRIFTLINE_TTL_DAYS": "soon"})


def test_redact_dsn() -> None:
    assert redact_dsn("https://u:s3cret@ch:8443/db") == "https://u:***@ch:8443/db"
    assert redact_dsn("chdb:///tmp/x") == "chdb:///tmp/x"
