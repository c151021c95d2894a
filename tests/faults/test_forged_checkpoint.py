"""A forged checkpoint runs no code in the worker (issue 18.4).

Before: checkpoints were pickles signed with a key derived from the ClickHouse password, group and
database; with no password the key was a constant anyone could compute, and a row inserted into
`engine_checkpoints` executed code at the next start.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from driftline.config import Settings
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.spec import MonitorSpec
from driftline.streams import state_codec
from driftline.streams.checkpoints import CheckpointStore, signing_key
from driftline.streams.monitor import MonitoringEngine
from tests.unit.test_events import make_prediction


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.marker,))  # what an attacker's pickle would do, harmlessly


def _old_constant_key(settings: Settings) -> bytes:
    """The key every deployment without a ClickHouse password used to share."""
    secret = f"\x00{settings.group_id}\x00{settings.clickhouse_database}"
    return hashlib.sha256(b"driftline-checkpoint\x00" + secret.encode()).digest()


def _engine(store: CheckpointStore) -> MonitoringEngine:
    return MonitoringEngine(
        MonitorSpec(), reference_events=100, window_s=60, allowed_lateness_s=0, checkpoints=store.take
    )


@pytest.mark.parametrize("signed_with", ["the old constant key", "the deployment's own key"])
def test_a_forged_pickle_is_never_run(
    signed_with: str,
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    sink_factory: Callable[[Settings], ClickHouseSink],
) -> None:
    settings = settings_factory(data_dir=str(tmp_path / "data"))
    assert not settings.clickhouse_password and not settings.checkpoint_key  # the default embedded set-up
    sink = sink_factory(settings)
    key = signing_key(settings)
    marker = tmp_path / "pwned"
    forged = pickle.dumps((2, _Exploit(marker)))
    attacker_key = _old_constant_key(settings) if signed_with == "the old constant key" else key
    CheckpointStore(sink.client, settings.clickhouse_database, settings.group_id, attacker_key).save(
        {("m", "v1"): forged}
    )
    engine = _engine(CheckpointStore(sink.client, settings.clickhouse_database, settings.group_id, key))
    engine.update([make_prediction(i, model="m", version="v1") for i in range(10)])  # takes the checkpoint
    assert not marker.exists()
    assert engine.checkpoint()  # the engine runs on, from a fresh state


def test_without_a_password_the_key_is_random_per_data_dir(tmp_path: Path) -> None:
    a = Settings(data_dir=str(tmp_path / "a"))
    b = Settings(data_dir=str(tmp_path / "b"))
    assert signing_key(a) == signing_key(a) != signing_key(b)
    assert signing_key(a) != _old_constant_key(a)
    assert os.stat(tmp_path / "a" / "checkpoint-key").st_mode & 0o777 == 0o600
    assert signing_key(Settings(data_dir=str(tmp_path / "a")), "chosen") != signing_key(a)  # the env var wins


def test_checkpoints_decode_only_allowed_classes() -> None:
    from driftline.exceptions import ConfigError

    with pytest.raises(state_codec.StateError, match="not an allowed state class"):
        state_codec.encode(ConfigError("x"))
    forged = b"\x81\xa3__t\xa3obj"  # {"__t": "obj"}: an object without a class
    with pytest.raises(state_codec.StateError):
        state_codec.decode(forged)
    import msgspec

    bad_class = msgspec.msgpack.encode({"__t": "obj", "cls": "os.system", "attrs": {}})
    with pytest.raises(state_codec.StateError, match="not an allowed state class"):
        state_codec.decode(bad_class)
    object_array = msgspec.msgpack.encode({"__t": "nd", "dtype": "|O", "shape": [1], "data": b"\x00" * 8})
    with pytest.raises(state_codec.StateError):
        state_codec.decode(object_array)
