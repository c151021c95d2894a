"""Checkpoints of the monitoring engine's open windows, so a restart neither loses nor cuts a window.

When a worker stops it saves, after its last commit and before leaving the consumer group,
each model version's engine state (open windows, closed panes of sliding windows, the
reference being collected, detectors, the duplicate-id set) to ClickHouse. The next worker
that sees the version (the same one restarted, or another after a rebalance) loads it
once and continues: the window then closes with all its events, as if nothing had
stopped. A crash saves nothing, and such a window is computed from the events after the
restart (marked as before).

States are MessagePack of plain values (state_codec.py: reading one cannot execute code)
signed with HMAC-SHA256; a state whose signature does not verify is never decoded. The key is
``DRIFTLINE_CHECKPOINT_KEY``; else one derived from the ClickHouse password and the consumer
group (whoever knows the password can write the table anyway); else, with no password (chdb, or
a server user without one), a random key made once and kept in the data dir (mode 600): never a
constant that anyone could compute. Workers on several hosts without a ClickHouse password
share checkpoints only with a ``DRIFTLINE_CHECKPOINT_KEY`` of their own.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

from driftline.config import Settings
from driftline.exceptions import SinkError
from driftline.sinks.client import ClickHouseClient

log = logging.getLogger(__name__)
_MAC = 32
_COLUMNS = ["group_id", "model", "version", "saved_at", "state", "consumed"]


def signing_key(settings: Settings, override: str = "") -> bytes:
    """The key that signs and checks engine checkpoints (see the module docstring)."""
    secret = override or settings.checkpoint_key.get()
    password = settings.clickhouse_password.get()
    if not secret and password:
        secret = f"{password}\x00{settings.group_id}\x00{settings.clickhouse_database}"
    if not secret:
        secret = _local_key(Path(settings.data_dir) / "checkpoint-key")
    return hashlib.sha256(b"driftline-checkpoint\x00" + secret.encode()).digest()


def _local_key(path: Path) -> str:
    """A random key kept in `path` (mode 600), made by the first worker that needs it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".checkpoint-key-")  # mode 600
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another worker made first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        log.warning("checkpoint signing key written to %s (set DRIFTLINE_CHECKPOINT_KEY to choose one)", path)
    return path.read_text().strip()


def sign(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest() + payload


def verified(key: bytes, blob: bytes) -> bytes | None:
    mac, payload = blob[:_MAC], blob[_MAC:]
    return payload if hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()) else None


class CheckpointStore:
    def __init__(self, client: ClickHouseClient, database: str, group_id: str, key: bytes):
        self.client = client
        self.database = database
        self.group_id = group_id
        self.key = key

    def save(self, states: dict[tuple[str, str], bytes]) -> None:
        if not states:
            return
        now = int(time.time() * 1000)  # DateTime64(3) ticks
        rows = [[self.group_id, m, v, now, sign(self.key, blob), 0] for (m, v), blob in states.items()]
        try:
            self.client.insert("engine_checkpoints", rows, database=self.database, column_names=_COLUMNS)
        except Exception as exc:
            raise SinkError(f"could not save engine checkpoints: {exc}") from exc

    def take(self, model: str, version: str) -> bytes | None:
        """The saved state of a version, once: it is marked consumed as it is handed out."""
        rows = self.client.query(
            f"SELECT state, consumed FROM {self.database}.engine_checkpoints FINAL "
            "WHERE group_id = {g:String} AND model = {m:String} AND version = {v:String}",
            parameters={"g": self.group_id, "m": model, "v": version},
            column_formats={"state": "bytes"},
        ).result_rows
        if not rows or rows[0][1]:
            return None
        blob = bytes(rows[0][0])
        used = [[self.group_id, model, version, int(time.time() * 1000), b"", 1]]
        self.client.insert("engine_checkpoints", used, database=self.database, column_names=_COLUMNS)
        payload = verified(self.key, blob)
        if payload is None:
            log.error(
                "checkpoint of %s %s has a bad signature; ignored (another deployment, or tampered)", model, version
            )
        return payload

    def save_engine(self, key: str, blob: bytes) -> None:
        """The whole engine's snapshot with its offsets, under `key` (the prediction partitions it covers)."""
        row = [[self.group_id, "", key, int(time.time() * 1000), sign(self.key, blob), 0]]
        try:
            self.client.insert("engine_checkpoints", row, database=self.database, column_names=_COLUMNS)
        except Exception as exc:
            raise SinkError(f"could not save the engine checkpoint: {exc}") from exc

    def load_engine(self, key: str) -> bytes | None:
        """The newest engine snapshot under `key`, if its signature verifies (it is not marked used: a
        second crash before the next save loads it again, and the offsets replayed with it)."""
        rows = self.client.query(
            f"SELECT state FROM {self.database}.engine_checkpoints FINAL "
            "WHERE group_id = {g:String} AND model = '' AND version = {v:String}",
            parameters={"g": self.group_id, "v": key},
            column_formats={"state": "bytes"},
        ).result_rows
        if not rows:
            return None
        payload = verified(self.key, bytes(rows[0][0]))
        if payload is None:
            log.error("the engine checkpoint %s has a bad signature; ignored (another deployment, or tampered)", key)
        return payload
