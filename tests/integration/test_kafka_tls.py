"""Issue 19.4: secured Kafka, for real. Debian's stunnel terminates TLS on loopback in front of the embedded
broker (which advertises the TLS address); the SDK, the control plane (CLI, routing client) and a worker
process connect with CA verification; a wrong CA is one clear error line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftline.dev.broker import EmbeddedBroker, free_port, wait_for_port
from driftline.dev.demo import worker_stats
from driftline.exceptions import ConfigError, DeliveryError
from driftline.kafka_security import KafkaSecurity, preflight
from driftline.producer import Producer
from tests.unit.test_events import make_prediction

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
pytestmark = pytest.mark.skipif(
    STUNNEL is None or shutil.which("openssl") is None,
    reason="stunnel or openssl is not installed (.ci/run installs Debian's: apt-get install stunnel4)",
)


@dataclass
class TlsBroker:
    bootstrap: str  # the TLS address, as the broker advertises it
    ca: Path
    wrong_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(d: Path) -> None:
    """A test CA, a server certificate for localhost/127.0.0.1 signed by it, and an unrelated CA."""
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
                 "-days", "2", "-subj", f"/CN=driftline {name}", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    d = tmp_path_factory.mktemp("tls")
    _certificates(d)
    tls_port = free_port()
    broker = EmbeddedBroker(advertised=f"localhost:{tls_port}").start()
    (d / "stunnel.conf").write_text(
        "foreground = yes\npid =\n[kafka]\n"
        f"accept = 127.0.0.1:{tls_port}\nconnect = {broker.bootstrap}\n"
        f"cert = {d / 'server.pem'}\nkey = {d / 'server.key'}\n"
    )
    assert STUNNEL is not None
    log = open(d / "stunnel.log", "wb")  # noqa: SIM115 - the process writes it until the fixture ends
    stunnel = subprocess.Popen([STUNNEL, str(d / "stunnel.conf")], stdout=log, stderr=log)
    try:
        assert wait_for_port("127.0.0.1", tls_port, 20), (d / "stunnel.log").read_text()
        yield TlsBroker(f"localhost:{tls_port}", d / "ca.pem", d / "other-ca.pem")
    finally:
        stunnel.terminate()
        stunnel.wait(timeout=10)
        broker.stop()


def test_the_sdk_produces_over_tls_and_a_wrong_ca_is_refused(tls_broker: TlsBroker) -> None:
    good = KafkaSecurity("SSL", ca_file=str(tls_broker.ca))
    with Producer(tls_broker.bootstrap, topic_prefix="tls.", security=good) as producer:
        for i in range(10):
            producer.send(make_prediction(i))
    preflight(tls_broker.bootstrap, good)  # metadata over TLS with the right CA
    wrong = KafkaSecurity("SSL", ca_file=str(tls_broker.wrong_ca))
    with pytest.raises(ConfigError) as refused:
        preflight(tls_broker.bootstrap, wrong, timeout_s=10)
    assert "certificate verify failed" in str(refused.value) and "DRIFTLINE_KAFKA_SSL_CA" in str(refused.value)
    producer = Producer(tls_broker.bootstrap, topic_prefix="tls.", security=wrong)
    producer.send(make_prediction(99))
    with pytest.raises(DeliveryError, match="certificate verify failed"):
        producer.close(timeout=5)


def test_a_worker_and_the_control_plane_over_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DRIFTLINE_BROKER": tls_broker.bootstrap,
        "DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "SSL",
        "DRIFTLINE_KAFKA_SSL_CA": str(tls_broker.ca),
        "DRIFTLINE_TOPIC_PREFIX": "tlsw.",
        "DRIFTLINE_GROUP_ID": "tls-worker",
        "DRIFTLINE_DATA_DIR": str(tmp_path / "data"),
    }
    cli = [sys.executable, "-m", "driftline"]
    # the control plane (kafka-python) over TLS: register a model, read it back
    register = [*cli, "models", "register", "m", "v1", "--stage", "production", "--reason", "tls test"]
    subprocess.run(register, env=env, check=True, timeout=60)
    listed = subprocess.run([*cli, "models", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "v1" in listed.stdout, listed.stdout + listed.stderr
    # a worker (confluent-kafka ingest, aiokafka Faust) over TLS
    web = free_port()
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [*cli, "worker", "--clickhouse", f"chdb://{tmp_path / 'ch'}", "--web-port", str(web)],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 120
        while not (worker_stats(web) or {}).get("ready"):
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        with Producer(tls_broker.bootstrap, topic_prefix="tlsw.", security=KafkaSecurity.from_env(env)) as p:
            for i in range(25):
                p.send(make_prediction(i))
        while (worker_stats(web) or {}).get("predictions") != 25:
            assert time.monotonic() < deadline, (worker_stats(web), log.read_text()[-2000:])
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=90) == 0, log.read_text()
    counts = subprocess.run(
        [*cli, "counts", "--clickhouse", f"chdb://{tmp_path / 'ch'}"], capture_output=True, text=True, check=True
    )
    assert json.loads(counts.stdout)["predictions"] == 25
    # the same worker with a CA that did not sign the broker's certificate: one line, exit 2
    wrong = {**env, "DRIFTLINE_KAFKA_SSL_CA": str(tls_broker.wrong_ca)}
    refused = subprocess.run(
        [*cli, "worker", "--clickhouse", f"chdb://{tmp_path / 'ch2'}", "--web-port", str(free_port())],
        env=wrong,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2, refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.startswith("driftline: error:")]
    assert len(lines) == 1 and "certificate verify failed" in lines[0] and "DRIFTLINE_KAFKA_SSL_CA" in lines[0]
    assert "Traceback" not in refused.stderr
