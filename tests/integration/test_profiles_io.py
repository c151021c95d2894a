"""`driftline profile build` and profile storage in ClickHouse."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from driftline.config import Settings
from driftline.metrics.profiles import ReferenceProfile
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
from driftline.sinks.profiles import load_profiles, profile_from_rows, rows_from_clickhouse, store_profile
from tests.unit.test_events import BASE_TS, make_prediction

pytestmark = pytest.mark.integration


def test_profile_from_a_clickhouse_window_equals_one_from_the_same_rows(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    preds = [make_prediction(i) for i in range(400)]
    sink.write(SinkBatch(preds, [], [], token="p"))
    since = datetime.fromtimestamp(BASE_TS + 100, UTC).isoformat()
    until = datetime.fromtimestamp(BASE_TS + 300, UTC).isoformat()
    rows = rows_from_clickhouse(sink.client, settings.clickhouse_database, "churn", "v1", since, until)
    from_ch = profile_from_rows("churn", "v1", rows)
    direct = profile_from_rows("churn", "v1", iter(p.features for p in preds[100:300]))
    assert from_ch == direct
    assert from_ch.features["age"].count == 200

    store_profile(sink.client, settings.clickhouse_database, from_ch, "test")
    newer = ReferenceProfile.build("churn", "v1", {"age": np.arange(10.0)})
    store_profile(sink.client, settings.clickhouse_database, newer, "test")
    assert load_profiles(sink.client, settings.clickhouse_database) == [newer]  # the newest wins


def test_profile_build_cli_from_jsonl_with_spec_kinds(tmp_path: Path) -> None:
    data = tmp_path / "ref.jsonl"
    with data.open("w") as fh:
        for i in range(300):
            fh.write(json.dumps({"features": {"age": 20 + i % 50, "zip": 1000 + i % 7, "vip": i % 3 == 0}}) + "\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("models: {churn: {features: {age: numeric, zip: categorical, vip: boolean}}}")
    out = tmp_path / "p.json"
    cmd = [sys.executable, "-m", "driftline", "profile", "build", "--model", "churn", "--version", "v2"]
    done = subprocess.run(
        [*cmd, "--input", str(data), "--out", str(out), "--spec", str(spec), "--clickhouse", f"chdb://{tmp_path}/ch"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "stored in ClickHouse" in done.stdout
    profile = ReferenceProfile.from_json(out.read_text())
    assert profile.features["zip"].kind == "categorical"  # numbers, but the spec says categorical
    assert profile.features["vip"].categories == {"False": 200, "True": 100}
    assert profile.features["age"].kind == "numeric"

    bad = subprocess.run([*cmd, "--input", str(tmp_path / "none.csv"), "--no-store"], capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    # the offline module's spelling of the same command writes the same profile
    offline = [sys.executable, "-m", "driftline", "offline", "profile", "--model", "churn", "--version", "v2"]
    out2 = tmp_path / "p2.json"
    again = subprocess.run(
        [*offline, "--input", str(data), "--out", str(out2), "--spec", str(spec), "--no-store"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert ReferenceProfile.from_json(out2.read_text()).features == profile.features


def test_lineage_records_round_trip_through_clickhouse(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink], tmp_path: Path
) -> None:
    from driftline.sinks.lineage import ClickHouseLineage, ancestry, record

    settings = settings_factory()
    sink = sink_factory(settings)
    (tmp_path / "d.csv").write_text("a\n1\n")
    data = record(tmp_path / "d.csv", "dataset", params={"rows": 1})
    (tmp_path / "m.bin").write_bytes(b"model")
    model = record(tmp_path / "m.bin", "model", metrics={"accuracy": 0.9}, parents=[data])
    store = ClickHouseLineage(sink.client, settings.clickhouse_database)
    store.store([data, model])
    chain = ancestry(model.artefact_id[:10], store)
    assert [a.artefact_id for a in chain] == [model.artefact_id, data.artefact_id]
    assert chain[0].metrics == {"accuracy": 0.9} and chain[1].params == {"rows": 1}


def test_a_profile_from_a_file_of_events_takes_only_its_model_version_and_its_outputs(tmp_path: Path) -> None:
    """Issue 17.4: every line was read whatever its model and version, and only `features` profiled."""
    from driftline.metrics.profiles import PREDICTION, SCORE

    data = tmp_path / "events.jsonl"
    with data.open("w") as fh:
        for i in range(600):
            model, version = ("churn", "v3") if i % 3 else ("fraud", "v1")
            event = {
                "model": model,
                "version": version,
                "features": {"age": float(i % 50)},
                "score": (i % 10) / 10,
                "prediction": i % 2 == 0,
            }
            fh.write(json.dumps(event) + "\n")
    out = tmp_path / "p.json"
    cmd = [sys.executable, "-m", "driftline", "profile", "build", "--model", "churn", "--version", "v3"]
    done = subprocess.run([*cmd, "--input", str(data), "--out", str(out), "--no-store"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    profile = ReferenceProfile.from_json(out.read_text())
    assert profile.features["age"].count == 400  # the churn v3 lines only
    assert profile.features[SCORE].kind == "numeric" and profile.features[SCORE].count == 400
    # classes by their canonical text, as the stream profiles them (true -> "1")
    assert profile.features[PREDICTION].kind == "categorical"
    assert profile.features[PREDICTION].categories == {"0": 200, "1": 200}
    none = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "profile",
            "build",
            "--model",
            "churn",
            "--version",
            "v9",
            "--input",
            str(data),
            "--no-store",
        ],
        capture_output=True,
        text=True,
    )
    assert none.returncode == 2 and "none of its 600 events is of churn v9" in none.stderr
    assert "churn v3" in none.stderr and "fraud v1" in none.stderr  # it says what the file holds
