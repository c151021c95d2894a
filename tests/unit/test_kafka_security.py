"""Issue 19.4: one set of TLS/SASL settings, rendered for each of the three Kafka client libraries, and each
library's constructor accepts its form (SASL itself cannot run here: the embedded broker has none; TLS runs
for real in tests/integration/test_kafka_tls.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from driftline.config import Settings
from driftline.exceptions import ConfigError
from driftline.kafka_security import KafkaSecurity, parse_pairs
from driftline.values import Secret


@pytest.fixture
def ca(tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    path.write_text("not read until a connection is made\n")
    return str(path)


def test_from_env_flags_win_and_the_password_never_shows(ca: str) -> None:
    env = {
        "DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "DRIFTLINE_KAFKA_SSL_CA": ca,
        "DRIFTLINE_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "DRIFTLINE_KAFKA_SASL_USERNAME": "svc",
        "DRIFTLINE_KAFKA_SASL_PASSWORD": "hunter2",
        "DRIFTLINE_KAFKA_SSL_CHECK_HOSTNAME": "0",
        "DRIFTLINE_KAFKA_LIBRDKAFKA": "socket.keepalive.enable=true, client.rack=eu-1a",
    }
    s = KafkaSecurity.from_env(env, username="flag-user")
    assert (s.protocol, s.sasl_mechanism, s.username, s.check_hostname) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "flag-user",
        False,
    )
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and s.password.get() == "hunter2"
    settings = Settings.from_env(env, broker="b:9093", kafka_protocol="SSL")
    assert settings.kafka.protocol == "SSL" and settings.kafka.ca_file == ca and "hunter2" not in repr(settings)
    conf = s.librdkafka_config()
    assert conf == {
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": ca,
        "ssl.endpoint.identification.algorithm": "none",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "flag-user",
        "sasl.password": "hunter2",
        "socket.keepalive.enable": "true",
        "client.rack": "eu-1a",
    }
    assert KafkaSecurity.from_env({}).librdkafka_config() == {}  # plaintext: nothing added


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "TLS"}, "is not one of PLAINTEXT"),
        ({"protocol": "SASL_SSL", "username": "u"}, "DRIFTLINE_KAFKA_SASL_PASSWORD"),
        (
            {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI", "username": "u", "password": Secret("p")},
            "GSSAPI",
        ),
        ({"protocol": "SSL", "ca_file": "/nonexistent/ca.pem"}, "no such file"),
        ({"protocol": "SSL", "cert_file": __file__}, "needs both"),
    ],
)
def test_inconsistent_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KafkaSecurity(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="key=value"):
        parse_pairs("a=1,oops")


def test_each_library_accepts_its_form() -> None:
    sasl = KafkaSecurity("SASL_SSL", sasl_mechanism="SCRAM-SHA-256", username="u", password=Secret("p"))
    from confluent_kafka import Producer

    Producer({"bootstrap.servers": "127.0.0.1:1", **sasl.librdkafka_config()})  # librdkafka rejects unknown keys

    async def aio() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **sasl.aiokafka_kwargs())
        assert producer.client._sasl_mechanism == "SCRAM-SHA-256" and producer.client._security_protocol == "SASL_SSL"

    asyncio.run(aio())
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers="127.0.0.1:1", api_version=(2, 5, 0), **sasl.kafka_python_kwargs())
    assert producer.config["sasl_mechanism"] == "SCRAM-SHA-256" and producer.config["security_protocol"] == "SASL_SSL"
    producer.close(timeout=0)
    from driftline.streams.worker import faust_credentials

    credentials = faust_credentials(sasl)
    assert credentials.mechanism.value == "SCRAM-SHA-256" and credentials.protocol.value == "SASL_SSL"
    assert faust_credentials(KafkaSecurity("SSL")).protocol.value == "SSL"
    assert faust_credentials(KafkaSecurity()) is None
