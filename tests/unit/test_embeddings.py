"""Issue 20.4: vector features (embeddings) in events and columnar envelopes, with drift measured as the
reconstruction error against the reference's principal components: equal to a direct computation, about 1 while
nothing changes, far above it when the embeddings move, and part of the drift share."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.events import Prediction, decode_columnar, decode_message, encode_columnar, encode_json
from driftline.metrics.embeddings import EmbeddingDrift, VectorProfile
from driftline.metrics.profiles import ReferenceProfile
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine

W = 60
T0 = 1_800_000_000.0 // W * W
DIM = 24


def events(n: int = 6000, seed: int = 0) -> list[Prediction]:
    """1,000 reference events, then minutes 0-2 stable and minutes 3-4 with the embedding out of its subspace."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(42).normal(size=(4, DIM))
    out = []
    for i in range(n):
        ts = T0 + i * (5 * W / n)
        shifted = ts >= T0 + 3 * W
        vec = rng.normal(size=4) @ basis + 0.2 * rng.normal(size=DIM)
        if shifted:
            vec = vec + 1.5 * rng.normal(size=DIM)  # a new direction of variation
        features = {"emb": [float(v) for v in vec], "x": float(rng.normal())}
        if i % 97 == 0 and i > 1000:
            features["emb"] = [1.0, 2.0]  # malformed: another length
        if i % 89 == 0 and i > 1000:
            del features["emb"]  # missing
        out.append(
            Prediction(event_id=f"e{i}", model="m", version="v1", ts=ts, features=features, prediction=0, score=0.5)
        )
    return out


def rows_by(rows: list, metric: str, feature: str = "emb") -> dict[float, float]:  # type: ignore[type-arg]
    return {r.window_start: r.value for r in rows if r.metric == metric and r.feature == feature and not r.segment}


def test_embeddings_decode_in_both_envelopes() -> None:
    evs = events(50)
    assert decode_message(encode_json(evs[0]), "prediction").events == [evs[0]]
    columnar = decode_columnar(encode_columnar(evs), "prediction")
    assert columnar.rows() == evs  # type: ignore[union-attr]
    too_long = encode_json(evs[0]).replace(b'"emb":[', b'"emb":[' + b"0.0," * 5000)
    assert decode_message(too_long, "prediction").dead_letters[0].code == "out_of_range"  # over 4,096 numbers


def test_embedding_drift_through_the_engine_equals_a_direct_computation() -> None:
    evs = events()
    spec = MonitorSpec.from_yaml("defaults: {window: 1m, allowed_lateness: 0s}")
    engine = MonitoringEngine(spec, reference_events=1000)
    rows = engine.update(evs) + engine.flush()
    profile = engine.take_profiles()[0]
    assert set(profile.vectors) == {"emb"} and "emb" not in profile.features and profile.vectors["emb"].dim == DIM
    assert ReferenceProfile.from_json(profile.to_json()) == profile
    ratio = rows_by(rows, "embedding_error_ratio")
    for start, value in ratio.items():
        window = [e for e in evs[1000:] if start <= e.ts < start + W]
        good = [e.features["emb"] for e in window if len(e.features.get("emb", [])) == DIM]
        direct = EmbeddingDrift(profile.vectors["emb"]).update_many(np.array(good)).get()
        assert value == pytest.approx(direct["embedding_error_ratio"], rel=1e-9)
        assert rows_by(rows, "embedding_chi2_pvalue")[start] == pytest.approx(direct["embedding_chi2_pvalue"], rel=1e-9)
    stable = [v for s, v in ratio.items() if s < T0 + 3 * W]
    moved = [v for s, v in ratio.items() if s >= T0 + 3 * W]
    assert stable and all(0.8 < v < 1.25 for v in stable), stable
    assert moved and all(v > 3 for v in moved), moved
    drifted = {r.window_start for r in rows if r.metric == "drifted" and r.feature == "emb"}
    assert drifted == {T0 + 3 * W, T0 + 4 * W}  # in the drift share (BH), only where it moved
    assert all(v > 0 for s, v in rows_by(rows, "type_violation_rate").items() if s >= T0 + W)
    assert any(v > 0 for v in rows_by(rows, "missing_rate").values())


def test_columnar_envelopes_give_the_same_rows() -> None:
    evs = events(3000, seed=1)
    spec = MonitorSpec.from_yaml("defaults: {window: 1m, allowed_lateness: 0s}")
    objects = MonitoringEngine(spec, reference_events=1000)
    by_objects = objects.update(evs) + objects.flush()
    columns = MonitoringEngine(spec, reference_events=1000)
    envelopes = [decode_columnar(encode_columnar(evs[i : i + 500]), "prediction") for i in range(0, 3000, 500)]
    by_columns = columns.update_columns(envelopes) + columns.flush()  # type: ignore[arg-type]
    key = lambda r: (r.window_start, r.family, r.metric, r.feature, r.segment)  # noqa: E731
    assert {key(r): r.value for r in by_columns} == pytest.approx({key(r): r.value for r in by_objects}, rel=1e-9)


def test_vector_profile_needs_enough_vectors() -> None:
    with pytest.raises(ValueError, match="at least 50"):
        VectorProfile.fit(np.zeros((10, 4)))
