"""TLS and SASL for every Kafka client driftline runs, from one set of settings.

driftline talks to Kafka through three client libraries: confluent-kafka (the SDK's
``Producer`` and the worker's ingest consumer), aiokafka (Faust, ``AsyncProducer``, the
dead-letter producer, topic creation; Faust's credentials are built in ``streams/worker.py``)
and kafka-python (the control plane: the registry CLI and the routing client).
``KafkaSecurity`` holds the settings once and renders each
library's form, so MSK, Confluent Cloud, Aiven or a self-run cluster with TLS and SASL
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) are reached the same way by all of them.

Environment (every ``driftline`` command, the SDK and the routing client read it when not
given a ``KafkaSecurity``), and the worker's flags:

=================================== ==========================================================
DRIFTLINE_KAFKA_SECURITY_PROTOCOL   PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL
DRIFTLINE_KAFKA_SSL_CA              CA bundle (PEM) the broker's certificate is checked against
DRIFTLINE_KAFKA_SSL_CERT, _KEY      client certificate and key (PEM), for mutual TLS
DRIFTLINE_KAFKA_SSL_CHECK_HOSTNAME  1 (default): the certificate must name the broker host
DRIFTLINE_KAFKA_SASL_MECHANISM      PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
DRIFTLINE_KAFKA_SASL_USERNAME       the SASL user
DRIFTLINE_KAFKA_SASL_PASSWORD       its password (never printed)
DRIFTLINE_KAFKA_LIBRDKAFKA          extra librdkafka settings for the confluent-kafka clients,
                                    ``key=value,key=value`` (e.g. ``ssl.cipher.suites=...``)
=================================== ==========================================================

>>> s = KafkaSecurity("SASL_SSL", ca_file="", sasl_mechanism="SCRAM-SHA-512", username="u", password=Secret("p"))
>>> sorted(s.librdkafka_config())
['sasl.mechanisms', 'sasl.password', 'sasl.username', 'security.protocol', 'ssl.endpoint.identification.algorithm']
>>> s
KafkaSecurity(protocol='SASL_SSL', sasl_mechanism='SCRAM-SHA-512', username='u', password=***)
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.exceptions import ConfigError
from driftline.values import Secret

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_ENV = {
    "protocol": "DRIFTLINE_KAFKA_SECURITY_PROTOCOL",
    "ca_file": "DRIFTLINE_KAFKA_SSL_CA",
    "cert_file": "DRIFTLINE_KAFKA_SSL_CERT",
    "key_file": "DRIFTLINE_KAFKA_SSL_KEY",
    "check_hostname": "DRIFTLINE_KAFKA_SSL_CHECK_HOSTNAME",
    "sasl_mechanism": "DRIFTLINE_KAFKA_SASL_MECHANISM",
    "username": "DRIFTLINE_KAFKA_SASL_USERNAME",
    "password": "DRIFTLINE_KAFKA_SASL_PASSWORD",
    "librdkafka": "DRIFTLINE_KAFKA_LIBRDKAFKA",
}


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    check_hostname: bool = True
    sasl_mechanism: str = ""
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    librdkafka: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        protocol = self.protocol.upper()
        object.__setattr__(self, "protocol", protocol)
        if protocol not in PROTOCOLS:
            raise ConfigError(f"Kafka security protocol {self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.sasl:
            mechanism = (self.sasl_mechanism or "PLAIN").upper()
            object.__setattr__(self, "sasl_mechanism", mechanism)
            if mechanism not in MECHANISMS:
                raise ConfigError(f"SASL mechanism {self.sasl_mechanism!r} is not one of {', '.join(MECHANISMS)}")
            if not self.username or not self.password:
                raise ConfigError(f"{protocol} needs DRIFTLINE_KAFKA_SASL_USERNAME and DRIFTLINE_KAFKA_SASL_PASSWORD")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ConfigError(f"{_ENV[name]}={path!r}: no such file")
        if bool(self.cert_file) != bool(self.key_file):
            raise ConfigError("mutual TLS needs both DRIFTLINE_KAFKA_SSL_CERT and DRIFTLINE_KAFKA_SSL_KEY")

    def __repr__(self) -> str:
        shown = [f"protocol={self.protocol!r}"]
        for name in ("ca_file", "cert_file", "key_file", "sasl_mechanism", "username"):
            if getattr(self, name):
                shown.append(f"{name}={getattr(self, name)!r}")
        if self.password:
            shown.append("password=***")
        return f"KafkaSecurity({', '.join(shown)})"

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> KafkaSecurity:
        """From DRIFTLINE_KAFKA_* (see the module docstring); `overrides` (flags) win over the environment."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {k: environ[v] for k, v in _ENV.items() if environ.get(v)}
        values.update({k: v for k, v in overrides.items() if v not in (None, "", ())})
        if "check_hostname" in values and isinstance(values["check_hostname"], str):
            values["check_hostname"] = values["check_hostname"].strip().lower() not in ("0", "false", "no", "off")
        if isinstance(values.get("password"), str):
            values["password"] = Secret(values["password"])
        if isinstance(values.get("librdkafka"), str):
            values["librdkafka"] = parse_pairs(values["librdkafka"])
        return cls(**values)

    # --- each library's form -----------------------------------------------------------------

    def librdkafka_config(self) -> dict[str, str]:
        """confluent-kafka (librdkafka) settings, the passthrough last so it can override."""
        conf: dict[str, str] = {}
        if self.protocol != "PLAINTEXT":
            conf["security.protocol"] = self.protocol
        if self.tls:
            if self.ca_file:
                conf["ssl.ca.location"] = self.ca_file
            if self.cert_file:
                conf["ssl.certificate.location"] = self.cert_file
                conf["ssl.key.location"] = self.key_file
            conf["ssl.endpoint.identification.algorithm"] = "https" if self.check_hostname else "none"
        if self.sasl:
            conf.update(
                {
                    "sasl.mechanisms": self.sasl_mechanism,
                    "sasl.username": self.username,
                    "sasl.password": self.password.get(),
                }
            )
        conf.update(dict(self.librdkafka))
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context aiokafka and Faust take (None without TLS)."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file or None)
        context.check_hostname = self.check_hostname
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def aiokafka_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.sasl:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password.get(),
            )
        return kwargs

    def kafka_python_kwargs(self) -> dict[str, Any]:
        """kafka-python takes the same names as aiokafka (``security_protocol``, ``ssl_context``, ``sasl_*``)."""
        return self.aiokafka_kwargs()


def parse_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``key=value,key=value`` -> pairs (a value may not contain a comma; use the SDK for those)."""
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{_ENV['librdkafka']}: {item!r} is not key=value")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def preflight(bootstrap: str, security: KafkaSecurity, timeout_s: float = 15.0) -> None:
    """Ask the broker for its metadata with these settings; a refusal is one ConfigError that says why.

    A wrong CA, a host name the certificate does not name, a bad SASL password: each fails
    here with librdkafka's reason instead of as retries deep inside three client libraries.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[str] = []
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "error_cb": lambda err: errors.append(err.str()),
        "log_level": 0,  # the reason goes into the one error line, not librdkafka's log on stderr
        **security.librdkafka_config(),
    }
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        admin.poll(0.5)  # serve the error callbacks: they hold the reason (a TLS or SASL failure)
        reason = next((e for e in errors if "SSL" in e or "SASL" in e or "auth" in e.lower()), None)
        reason = reason or (errors[-1] if errors else str(exc.args[0]))
        hint = ""
        if "certificate verify failed" in reason:
            hint = "; check DRIFTLINE_KAFKA_SSL_CA (the CA that signed the broker's certificate)"
        elif "SASL" in reason or "auth" in reason.lower():
            hint = "; check DRIFTLINE_KAFKA_SASL_MECHANISM, _USERNAME and _PASSWORD"
        raise ConfigError(f"cannot reach Kafka at {bootstrap} ({security.protocol}): {reason}{hint}") from None
