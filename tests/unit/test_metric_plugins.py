"""Issue 20.3: custom metrics as plugins, named in the spec by import path or entry point, run by the engine
(tumbling and sliding windows, checkpoints), stored as family `custom`, and alertable."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.alerts.evaluator import AlertEvaluator
from driftline.alerts.rules import AlertingConfig
from driftline.events import Prediction
from driftline.exceptions import ConfigError
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine

W = 60
T0 = 1_800_000_000.0 // W * W
SPEC = """
defaults:
  window: 1m
  allowed_lateness: 0s
  plugins:
    - name: large_loan_approval
      class: tests.unit.plugin_examples:ApprovalRateAbove
      params: {feature: loan, above: 50000}
    - {name: scores, class: "tests.unit.plugin_examples:ScoreMoments"}
"""


def events(n: int = 3000, seed: int = 0) -> list[Prediction]:
    rng = np.random.default_rng(seed)
    return [
        Prediction(
            event_id=f"e{i}",
            model="loan",
            version="v1",
            ts=T0 + i * (5 * W / n),
            features={"loan": float(rng.uniform(0, 100_000)), "age": float(rng.normal(40, 9))},
            prediction=int(rng.uniform() < 0.6),
            score=float(rng.uniform()),
        )
        for i in range(n)
    ]


def expected(evs: list[Prediction], start: float, end: float) -> dict[str, float]:
    inside = [e for e in evs if start <= e.ts < end]
    large = [e for e in inside if e.features["loan"] > 50_000]
    scores = np.array([e.score for e in inside])
    return {
        "large_loan_approval": sum(e.prediction == 1 for e in large) / len(large),
        "large_loan_approval.n": float(len(large)),
        "scores.mean": round(float(scores.mean()), 12),
        "scores.var": round(float(scores.var()), 12),
    }


def custom_rows(rows: list) -> dict[float, dict[str, float]]:
    out: dict[float, dict[str, float]] = {}
    for r in rows:
        if r.family == "custom":
            out.setdefault(r.window_start, {})[r.metric] = r.value
    return out


def test_the_engine_runs_plugins_per_window_as_a_direct_computation_gives() -> None:
    evs = events()
    engine = MonitoringEngine(MonitorSpec.from_yaml(SPEC), reference_events=500)
    got = custom_rows(engine.update(evs) + engine.flush())
    assert sorted(got) == [T0 + k * W for k in range(5)]
    for start, values in got.items():
        assert values == pytest.approx(expected(evs, start, start + W), rel=1e-9, abs=1e-12)


def test_sliding_windows_merge_panes_and_a_checkpoint_changes_nothing() -> None:
    sliding = SPEC.replace("  window: 1m\n", "  window: 2m\n  slide: 1m\n")
    evs = events(seed=1)
    one = MonitoringEngine(MonitorSpec.from_yaml(sliding), reference_events=500)
    whole = custom_rows(one.update(evs) + one.flush())
    for start, values in whole.items():  # a window of two panes: merged plugin states
        assert values == pytest.approx(expected(evs, start, start + 2 * W), rel=1e-9, abs=1e-12)
    first = MonitoringEngine(MonitorSpec.from_yaml(sliding), reference_events=500)
    rows = first.update(evs[:1700])  # stops inside a window
    blob = first.snapshot()
    # as in a fresh process: the plugin classes are not yet allowed into the checkpoint codec
    from driftline.streams import monitor, state_codec

    for name in [n for n in state_codec.ALLOWED if n.startswith("tests.unit.plugin_examples.")]:
        del state_codec.ALLOWED[name]
    monitor._FACTORIES.clear()
    second = MonitoringEngine(MonitorSpec.from_yaml(sliding), reference_events=500)
    assert second.load(blob) == 1
    rows += second.update(evs[1700:]) + second.flush()
    assert custom_rows(rows) == whole


def test_plugins_are_alertable_and_checked_at_start_up() -> None:
    evs = events()
    engine = MonitoringEngine(MonitorSpec.from_yaml(SPEC), reference_events=500)
    rows = engine.update(evs) + engine.flush()
    rule = {"name": "FewLargeApprovals", "family": "custom", "metric": "large_loan_approval", "below": 0.99}
    evaluator = AlertEvaluator(AlertingConfig.from_dict({"rules": [rule]}).rules)
    fired = [e for e in evaluator.observe(rows) if e.state == "firing"]
    assert fired and fired[0].labels["metric"] == "large_loan_approval" and fired[0].labels["family"] == "custom"
    with pytest.raises(ConfigError, match="cannot be imported"):
        MonitorSpec.from_yaml("defaults: {plugins: [{name: x, class: 'nope.module:X'}]}")
    with pytest.raises(ConfigError, match="lacks"):
        MonitorSpec.from_yaml("defaults: {plugins: [{name: x, class: 'driftline.events:Prediction'}]}")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        MonitorSpec.from_yaml(
            "defaults: {plugins: [{name: x, class: 'tests.unit.plugin_examples:ScoreMoments', params: {k: 1}}]}"
        )
    with pytest.raises(ConfigError, match="unique"):
        MonitorSpec.from_yaml(SPEC.replace("name: scores", "name: large_loan_approval"))


def test_an_entry_point_names_a_plugin(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A package registers `[project.entry-points."driftline.metrics"]`; the spec names it."""
    dist = tmp_path / "acme_metrics-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-metrics\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[driftline.metrics]\nlarge-loan-approval = tests.unit.plugin_examples:ApprovalRateAbove\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = MonitorSpec.from_yaml(
        "defaults:\n  window: 1m\n  allowed_lateness: 0s\n  plugins:\n"
        "    - {name: large_loan_approval, entry_point: large-loan-approval, params: {feature: loan, above: 50000}}\n"
    )
    evs = events()
    engine = MonitoringEngine(spec, reference_events=500)
    got = custom_rows(engine.update(evs) + engine.flush())
    assert got[T0]["large_loan_approval"] == pytest.approx(expected(evs, T0, T0 + W)["large_loan_approval"])
    with pytest.raises(ConfigError, match="found: \\['large-loan-approval'\\]"):
        MonitorSpec.from_yaml("defaults: {plugins: [{name: y, entry_point: other}]}")


def test_a_plugin_that_changes_what_it_reads_changes_nothing_else() -> None:
    """The engine's lists of predictions and ids are shared by its families (EventBatch takes
    them once per batch): a plugin gets copies, so one that edits them in place affects no other."""
    from driftline.metrics.plugins import PluginBatch
    from driftline.streams.prediction_batch import EventBatch

    batch = EventBatch(
        [
            Prediction(event_id=f"e{i}", model="m", version="v", ts=1.8e9 + i, features={}, prediction=i % 2)
            for i in range(4)
        ]
    )
    view = PluginBatch(batch)
    view.predictions().clear()
    view.event_ids().append("forged")
    assert batch.predictions() == [0, 1, 0, 1]
    assert batch.event_ids() == ["e0", "e1", "e2", "e3"]
    assert view.predictions() == [0, 1, 0, 1]
