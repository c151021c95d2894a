"""Issue 19.6: kcat, the first tool people reach for, against the embedded broker.

Debian 12's kcat links librdkafka 2.0.2, which fails on Tansu's ApiVersions v3 answer ("Read
underflow": Tansu writes every tagged field, defaults included). `driftline kcat` runs the same
kcat binary with the librdkafka 2.16 of driftline's confluent-kafka wheel preloaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from driftline.cli.run import bundled_librdkafka
from driftline.config import Settings
from driftline.producer import Producer
from tests.unit.test_events import make_prediction

pytestmark = pytest.mark.skipif(
    shutil.which("kcat") is None, reason="kcat is not installed (.ci/run installs Debian's: apt-get install kcat)"
)


def test_driftline_kcat_reads_the_embedded_broker(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory()
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
        for i in range(3):
            p.send(make_prediction(i))
    topic = settings.topic("predictions")
    env = {**os.environ, "DRIFTLINE_BROKER": settings.broker}
    cmd = [sys.executable, "-m", "driftline", "kcat", "-C", "-t", topic, "-e", "-q", "-f", "%s\\n"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    messages = [json.loads(line) for line in out.stdout.splitlines()]  # the SDK may batch events in arrays
    events = [e for m in messages for e in (m if isinstance(m, list) else [m])]
    assert sorted(e["event_id"] for e in events) == sorted(make_prediction(i).event_id for i in range(3))
    listed = subprocess.run(
        [sys.executable, "-m", "driftline", "kcat", "-L", "-t", topic], env=env, capture_output=True, text=True
    )
    assert f'topic "{topic}" with 2 partitions' in listed.stdout, listed.stdout + listed.stderr


def test_plain_debian_kcat_fails_as_the_issue_found(settings_factory: Callable[..., Settings]) -> None:
    """The cause, pinned: if this starts passing, Debian's kcat got a newer librdkafka and the README can say so."""
    version = subprocess.run(["kcat", "-V"], capture_output=True, text=True).stdout
    if "librdkafka 2.0.2" not in version:
        pytest.skip(f"this kcat is not the one the issue found: {version.splitlines()[-1:]}")
    settings = settings_factory()
    out = subprocess.run(["kcat", "-b", settings.broker, "-L", "-m", "3"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "Read underflow" in out.stderr
    assert bundled_librdkafka() is not None  # the way round exists in this install
