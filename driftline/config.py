"""One frozen settings object, fed by DRIFTLINE_* environment variables and CLI flags.

Bad values fail at start-up with a message that says how to fix them; secrets print as ``***``.

>>> s = Settings.from_env({"DRIFTLINE_CLICKHOUSE_PASSWORD": "hunter2", "DRIFTLINE_PARTITIONS": "2"})
>>> s.partitions, s.clickhouse_password
(2, Secret('***'))
>>> Settings.from_env({"DRIFTLINE_PARTITIONS": "many"})
Traceback (most recent call last):
...
driftline.exceptions.ConfigError: DRIFTLINE_PARTITIONS='many' is not a whole number; set it to e.g. 4
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from driftline.events import DEFAULT_MAX_MESSAGE_BYTES
from driftline.exceptions import ConfigError
from driftline.kafka_security import KafkaSecurity
from driftline.spec import ModelSpec, MonitorSpec, Thresholds
from driftline.values import Secret

#: ClickHouse DateTime overflows past 2106: a TTL longer than this drops rows on arrival.
MAX_TTL_DAYS = 1825


def _env(name: str) -> str:
    return f"DRIFTLINE_{name.upper()}"


@dataclass(frozen=True)
class Settings:
    """Everything a worker, the demo and the SDK need to know. Each field has env var DRIFTLINE_<FIELD>."""

    broker: str = "127.0.0.1:9092"
    clickhouse: str = "chdb:///.driftline/clickhouse"
    clickhouse_user: str = "default"
    clickhouse_password: Secret = field(default_factory=lambda: Secret(""))
    clickhouse_database: str = "driftline"
    topic_prefix: str = "driftline."
    partitions: int = 4
    group_id: str = "driftline-ingest"
    batch_max_records: int = 20_000
    batch_max_bytes: int = 8 * 1024 * 1024  # a fetch ends at this many bytes of messages too
    batch_timeout_ms: int = 100
    insert_max_events: int = 60_000  # events gathered into one insert while the previous one runs
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ttl_days: int = 90
    metrics_ttl_days: int = 365  # metrics, drift sketches, alert history
    rollup_ttl_days: int = 1825  # hourly and daily rollups of metrics
    clickhouse_cluster: str = ""  # a cluster name: Replicated tables + Distributed ones (see sinks/migrations.py)
    web_port: int = 0
    web_host: str = "127.0.0.1"  # the address /metrics, /ready, /stats and the live stream listen on
    data_dir: str = ".driftline"
    monitor_window_s: int = 300
    monitor_lateness_s: int = 60
    monitor_reference_events: int = 2000
    quality_interval_s: int = 60
    label_ttl_s: int = 7 * 86_400
    review_every_s: int = 0  # > 0: the worker writes and announces a review of each model this often (604800: weekly)
    fairness_min_group_size: int = 30
    spec: str = ""  # path of a monitor spec (YAML); empty = defaults for every model
    alerts_token: Secret = field(default_factory=lambda: Secret(""))  # bearer token of the live alert stream
    grafana_live_url: str = ""  # Grafana's URL: window metrics are pushed to Grafana Live (off when empty)
    grafana_token: Secret = field(default_factory=lambda: Secret(""))  # service-account token for Live and push
    checkpoint_key: Secret = field(default_factory=lambda: Secret(""))  # signs engine checkpoints (default: derived)
    # seconds between engine snapshots; Kafka offsets are committed up to the last one (0: at a clean stop only)
    checkpoint_interval_s: int = 2
    prometheus_max_series: int = 5000  # cap on the ML gauges' series on /metrics (see streams/ml_gauges.py)
    # TLS/SASL of every Kafka client, from DRIFTLINE_KAFKA_* (see kafka_security.py); plaintext by default
    kafka: KafkaSecurity = field(default_factory=KafkaSecurity)

    def __post_init__(self) -> None:
        _check_broker(self.broker)
        _check_dsn(self.clickhouse)
        if not self.clickhouse_database.replace("_", "").isalnum():
            raise ConfigError(f"clickhouse database {self.clickhouse_database!r} must be letters, digits and _ only")
        if not 1 <= self.partitions <= 1024:
            raise ConfigError(f"partitions={self.partitions} must be between 1 and 1024")
        for name in ("ttl_days", "metrics_ttl_days", "rollup_ttl_days"):
            days = getattr(self, name)
            if not 1 <= days <= MAX_TTL_DAYS:
                raise ConfigError(
                    f"{name}={days} must be between 1 and {MAX_TTL_DAYS} "
                    "(ClickHouse DateTime cannot hold a later expiry)"
                )
        if self.clickhouse_cluster and not self.clickhouse_cluster.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"clickhouse_cluster {self.clickhouse_cluster!r} must be letters, digits, - and _ only")
        if min(self.batch_max_records, self.batch_max_bytes, self.batch_timeout_ms, self.insert_max_events) < 1:
            raise ConfigError(
                "batch_max_records, batch_max_bytes, batch_timeout_ms and insert_max_events must be positive"
            )
        if self.max_message_bytes < 1024:
            raise ConfigError(f"max_message_bytes={self.max_message_bytes} is too small; use at least 1024")
        if self.monitor_window_s < 1 or self.monitor_lateness_s < 0 or self.monitor_reference_events < 50:
            raise ConfigError(
                "monitor_window_s >= 1, monitor_lateness_s >= 0 and monitor_reference_events >= 50 are required"
            )
        if self.prometheus_max_series < 0:
            raise ConfigError("prometheus_max_series must be 0 (no ML gauges) or a positive number of series")
        if self.checkpoint_interval_s < 0:
            raise ConfigError("checkpoint_interval_s must be 0 (only at a clean stop) or a number of seconds")
        if self.quality_interval_s < 1 or self.label_ttl_s < 1 or self.fairness_min_group_size < 1:
            raise ConfigError("quality_interval_s, label_ttl_s and fairness_min_group_size must be positive")
        if self.grafana_live_url and not self.grafana_live_url.startswith(("http://", "https://")):
            raise ConfigError(f"grafana_live_url {self.grafana_live_url!r} must be http(s)://host[:port]")
        if self.grafana_live_url and not self.grafana_token:
            raise ConfigError("Grafana Live needs DRIFTLINE_GRAFANA_TOKEN (a service-account token, Editor role)")
        if not 0 <= self.web_port <= 65535:
            raise ConfigError(f"web_port={self.web_port} is not a TCP port (0 picks a free one)")
        if not self.web_host or any(ch in self.web_host for ch in " /"):
            raise ConfigError(
                f"web_host={self.web_host!r} is not an address; e.g. 127.0.0.1, or 0.0.0.0 in a container"
            )

    def monitor_spec(self) -> MonitorSpec:
        """The spec file if one is set, else defaults built from the monitor_* settings."""
        if self.spec:
            return MonitorSpec.load(self.spec)
        return MonitorSpec(
            defaults=ModelSpec(
                window_s=self.monitor_window_s,
                allowed_lateness_s=self.monitor_lateness_s,
                thresholds=Thresholds(min_group_size=self.fairness_min_group_size),
            )
        )

    def topic(self, name: str) -> str:
        """Full name of a driftline topic: predictions, labels, dlq, metrics, alerts, control, labeling."""
        return f"{self.topic_prefix}{name}"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed; `None` values are ignored (unset CLI flags)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        kafka_flags = {k[len("kafka_") :]: overrides.pop(k) for k in list(overrides) if k.startswith("kafka_")}
        values["kafka"] = KafkaSecurity.from_env(environ, **kafka_flags)
        for f in dataclasses.fields(cls):
            if f.name == "kafka":
                continue
            raw = environ.get(_env(f.name))
            if raw is None:
                continue
            if f.type in ("int", int):
                try:
                    values[f.name] = int(raw)
                except ValueError:
                    raise ConfigError(
                        f"{_env(f.name)}={raw!r} is not a whole number; set it to e.g. {f.default}"
                    ) from None
            elif f.name in ("clickhouse_password", "alerts_token", "grafana_token", "checkpoint_key"):
                values[f.name] = Secret(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name in ("clickhouse_password", "alerts_token", "grafana_token", "checkpoint_key"):
            if isinstance(values.get(name), str):
                values[name] = Secret(values[name])
        return cls(**values)


def _check_broker(broker: str) -> None:
    for part in broker.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"broker {broker!r} is not HOST:PORT[,HOST:PORT...]; e.g. --broker 127.0.0.1:9092")


def _check_dsn(dsn: str) -> None:
    scheme = urlsplit(dsn).scheme
    if scheme not in ("chdb", "http", "https", "clickhouse", "clickhouses"):
        raise ConfigError(
            f"ClickHouse DSN {redact_dsn(dsn)!r} must start with chdb:///<dir> (embedded) "
            "or http(s)://host:port (server)"
        )
    if scheme == "chdb" and not dsn.startswith("chdb:///") and dsn != "chdb://":
        raise ConfigError(f"chdb DSN {dsn!r} needs three slashes and a directory, e.g. chdb:///tmp/driftline")


def redact_dsn(dsn: str) -> str:
    """A DSN with any password replaced by ***, for logs and errors."""
    parts = urlsplit(dsn)
    if parts.password:
        return dsn.replace(f":{parts.password}@", ":***@")
    return dsn
