"""The commands a user runs, as separate processes: worker, counts, demo (also on Ctrl-C)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from driftline.config import Settings
from driftline.dev.broker import free_port
from driftline.dev.demo import worker_stats
from driftline.producer import Producer
from tests.unit.test_events import make_prediction

pytestmark = pytest.mark.integration
DRIFTLINE = [sys.executable, "-m", "driftline"]


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _stats(port: int) -> dict[str, object]:
    return worker_stats(port) or {}


class _LiveReceiver:
    """Grafana Live's push endpoint on 127.0.0.1, recording what the worker posts."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bodies: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                ok = (
                    self.path == "/api/live/push/driftline"
                    and self.headers["Authorization"] == "Bearer glsa_do_not_print"
                )
                bodies.append(self.rfile.read(int(self.headers["Content-Length"])).decode() if ok else "")
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _http(port: int, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_worker_process_ingests_and_stops_cleanly(settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    settings = settings_factory()
    web = free_port()
    ch = f"chdb://{tmp_path / 'worker-ch'}"
    live = _LiveReceiver()
    env = {
        **os.environ,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_GROUP_ID": settings.group_id,  # its own group: a shared one stalls joins on Tansu
        "DRIFTLINE_CLICKHOUSE_PASSWORD": "do-not-print-me",
        "DRIFTLINE_DATA_DIR": str(tmp_path / "data"),
        "DRIFTLINE_GRAFANA_LIVE_URL": live.url,
        "DRIFTLINE_GRAFANA_TOKEN": "glsa_do_not_print",
    }
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*DRIFTLINE, "worker", "--broker", settings.broker, "--clickhouse", ch, "--web-port", str(web)],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 90
        while not _stats(web).get("ready"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # ready = consuming *and* partitions assigned (and a broker that answers): polled, as a probe does
        while (ready := _http(web, "/ready")) != (200, '{"ready": true}'):
            assert ready[0] == 503 and "reason" in json.loads(ready[1]), ready
            assert time.monotonic() < deadline, ready
            time.sleep(0.2)
        with Producer(settings.broker, topic_prefix=settings.topic_prefix) as p:
            for i in range(250):
                p.send(make_prediction(i))
        from confluent_kafka import Producer as RawProducer

        raw = RawProducer({"bootstrap.servers": settings.broker, "log.connection.close": False})
        raw.produce(settings.topic("predictions"), b"{not json")  # one dead letter
        raw.flush(10)
        while _stats(web).get("predictions") != 250 or _stats(web).get("dead_letters") != 1:
            assert time.monotonic() < deadline, _stats(web)
            time.sleep(0.2)
        status, text = _http(web, "/metrics")
        assert status == 200
        samples = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert samples['driftline_events_total{kind="prediction"}'] == 250
        assert samples['driftline_dead_letters_total{code="malformed"}'] == 1
        assert samples[f'driftline_messages_in_total{{topic="{settings.topic("predictions")}"}}'] >= 2
        assert samples[f'driftline_messages_out_total{{topic="{settings.topic("dlq")}"}}'] == 1
        assert samples["driftline_batch_seconds_count"] == _stats(web)["batches"]
        assert samples["driftline_sink_insert_seconds_count"] >= 1
        lag = {k: v for k, v in samples.items() if k.startswith("driftline_consumer_lag{")}
        assert lag, text
        # everything consumed and, once an engine snapshot covers it (every 2 s), committed
        while any(v != 0 for v in lag.values()):
            assert time.monotonic() < deadline, lag
            time.sleep(0.3)
            lines = _http(web, "/metrics")[1].splitlines()
            lag = {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in lines
                if line.startswith("driftline_consumer_lag{")
            }
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()
    assert "do-not-print-me" not in log.read_text() and "glsa_do_not_print" not in log.read_text()
    # Issue 19.6: Faust's spinner wrote cursor escapes and backspaces into a file or a pipe.
    assert "\x1b" not in log.read_text() and "\b" not in log.read_text(), repr(log.read_text()[:300])
    # the window still open at stop was pushed to Grafana Live as line protocol
    live.server.shutdown()
    assert live.bodies and all(
        line.startswith("driftline_metric,model=") for b in live.bodies for line in b.splitlines()
    )
    assert any("metric=predictions" in b for b in live.bodies)
    out = subprocess.run([*DRIFTLINE, "counts", "--clickhouse", ch], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"predictions": 250, "labels": 0, "dead_letters": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "--broker", "nohost"], "HOST:PORT"),
        (["worker", "--clickhouse", "mysql://x"], "chdb:///"),
        (["counts", "--clickhouse", "chdb://rel"], "three slashes"),
        (["demo", "--events", "5"], "at least 100"),
        (["worker", "--spec", "/nonexistent/spec.yaml"], "does not exist"),
    ],
)
def test_bad_flags_fail_with_one_line_that_says_how_to_fix(args: list[str], message: str) -> None:
    out = subprocess.run([*DRIFTLINE, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_a_busy_web_port_is_one_line_and_exit_2() -> None:
    """Issue 19.6: a busy web port gave a 49-line Faust traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [*DRIFTLINE, "worker", "--broker", "127.0.0.1:1", "--web-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (
        f"driftline: error: port {port} on 127.0.0.1 is in use (another worker?): give this one --web-port N "
        "(or DRIFTLINE_WEB_PORT), one port per worker"
    )


def test_bad_env_fails_at_start_up() -> None:
    env = {**os.environ, "DRIFTLINE_PARTITIONS": "lots"}
    out = subprocess.run([*DRIFTLINE, "worker"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert "DRIFTLINE_PARTITIONS" in out.stderr and "'lots' is not a valid integer" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_env_without_a_flag_fails_at_start_up() -> None:
    env = {**os.environ, "DRIFTLINE_TTL_DAYS": "forever"}
    out = subprocess.run([*DRIFTLINE, "worker"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert (
        out.stderr.strip() == "driftline: error: DRIFTLINE_TTL_DAYS='forever' is not a whole number; set it to e.g. 90"
    )


def test_demo_small_run_matches_exactly_and_flags_the_shift(tmp_path: Path) -> None:
    out = subprocess.run(
        [*DRIFTLINE, "demo", "--events", "8000", "--rate", "0", "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all counts match" in out.stdout
    rows = {
        m.group(1): m.groups()[1:]
        for m in re.finditer(r"^(predictions|labels|dead letters)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)", out.stdout, re.M)
    }
    assert rows["predictions"] == ("8,000", "8,000", "8,000")
    assert rows["dead letters"] == ("16", "16", "16")
    # 20 five-minute windows; salaries inflate from window 10 on: flagged there and never before.
    # The first windows are v1's reference period (its profile is built from them): no drift there.
    number = r"\s+([\d.]+)"
    windows = re.findall(rf"^\s+\d\d:\d\d:00\s+\d+\s+([\d.]+|-)\s+([\d.]+|-){number * 3}\s+(.*)$", out.stdout, re.M)
    assert len(windows) == 20, out.stdout
    reference = [i for i, w in enumerate(windows) if w[1] == "-"]
    assert reference == list(range(len(reference))) and 1 <= len(reference) <= 8, (reference, out.stdout)
    for i, (_, psi_salary, accuracy, labelled, _gap, drifted) in enumerate(windows[:19]):  # the last is still open
        if i in reference:
            assert drifted == "(reference period)"
        else:
            assert ("salary" in drifted) == (i >= 10), (i, drifted, out.stdout)
            assert (float(psi_salary) > 0.2) == (i >= 10), (i, psi_salary)
        # the labelling function changes half-way: the model is right before, wrong about half the time after
        assert (float(accuracy) > 0.85) == (i < 10), (i, accuracy, out.stdout)
        assert 0.6 < float(labelled) < 0.95, (i, labelled)
    # the canary (trained on 600 examples) is rolled back by the canary analysis, on accuracy, and said so
    assert re.search(r"ROLLBACK\s+v2 weight 10 -> 0 % \(failed intervals 2\).*accuracy_drop", out.stdout), out.stdout
    assert "r3 rollback v2 by canary-analysis" in out.stdout
    assert re.search(r"FIRING\s+critical CanaryRolledBack", out.stdout)
    m = re.search(
        r"webhook notifications: (\d+) received by the demo's receiver, (\d+) with a valid signature", out.stdout
    )
    assert m and int(m.group(1)) >= 1 and m.group(1) == m.group(2), out.stdout
    # active learning: 10 requests per five-minute window and version, published when the window closes
    assert re.search(r"labeling requests .*: v1 200 asked, \d+ labelled by now", out.stdout), out.stdout
    # the review the demo writes suggests retraining for the drifted feature and reports the rollback
    assert re.search(r"\[data science\] retrain loan-approval v1: drift on salary since", out.stdout), out.stdout
    assert "[product] canary v2 was rolled back" in out.stdout


def test_demo_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*DRIFTLINE, "demo", "--events", "200000", "--rate", "500", "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    port = None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"Tansu broker on 127\.0\.0\.1:(\d+); worker web on 127\.0\.0\.1:(\d+)", line)
        if m:
            port, web = int(m.group(1)), int(m.group(2))
        if "worker ready" in line:
            break
    assert port is not None, "".join(lines)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "stopping the worker and the broker" in rest
    assert not _port_open("127.0.0.1", port)
    assert not _port_open("127.0.0.1", web)


def test_a_chdb_database_another_process_holds_is_one_clear_line(tmp_path: Path) -> None:
    """A new user runs `driftline report` beside a running worker on the same chdb path: say what to do."""
    path = tmp_path / "ch"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, clickhouse_connect; "
            f"c = clickhouse_connect.get_client(interface='chdb', path={str(path)!r}); c.command('SELECT 1'); "
            "print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        out = subprocess.run(
            [*DRIFTLINE, "counts", "--clickhouse", f"chdb://{path}"], capture_output=True, text=True, timeout=60
        )
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        f"driftline: error: chdb://{path} is open in another process (a running `driftline worker`?): chdb is one "
        "process's embedded database. Stop that process first, or run a ClickHouse server "
        "(`docker compose up -d clickhouse`) and give both its URL"
    )
