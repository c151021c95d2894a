"""Start a server binary (Prometheus, Alertmanager) on loopback and wait until it says it is ready."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path


def start_ready(args: list[str], url: str, log: Path, timeout_s: float = 30.0) -> subprocess.Popen[bytes]:
    """Run `args` with output to `log`; return once `url`/-/ready answers 200 (the process must not exit)."""
    out = open(log, "wb")  # noqa: SIM115 - the process writes it until the test ends
    proc = subprocess.Popen(args, stdout=out, stderr=out)
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
