"""`driftline broker` says when its Tansu process dies instead of running on silently (issue 18.7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftline", "broker", "--port", "0", "--log", str(tmp_path / "broker.log")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    assert "Tansu broker on 127.0.0.1:" in banner and "memory only" in banner, banner
    return proc


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_the_command_exits_non_zero_when_tansu_dies(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        (tansu,) = _children(proc.pid)
        os.kill(tansu, signal.SIGKILL)
        assert proc.wait(timeout=15) == 1
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "the Tansu broker exited" in err and str(tmp_path / "broker.log") in err
    finally:
        proc.kill()
    assert (tmp_path / "broker.log").exists()  # its output is kept, not discarded


def test_ctrl_c_stops_it_cleanly(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    try:
        (tansu,) = _children(proc.pid)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        deadline = time.monotonic() + 10
        while Path(f"/proc/{tansu}").exists() and time.monotonic() < deadline:  # the broker went with it
            time.sleep(0.1)
        assert not Path(f"/proc/{tansu}").exists() or "zombie" in Path(f"/proc/{tansu}/status").read_text()
    finally:
        proc.kill()
