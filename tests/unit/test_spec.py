"""The monitor spec: parsing, defaults, errors that name the place and the fix, and its effect on the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline.config import Settings
from driftline.exceptions import ConfigError
from driftline.spec import MonitorSpec
from driftline.streams.monitor import MonitoringEngine
from driftline.values import parse_duration
from tests.unit.test_monitor import T0, run, stream

FULL = """
defaults:
  window: 1m
  thresholds: {fdr: 0.01}
models:
  loan:
    task: binary
    positive_class: true
    features: {salary: numeric, car: categorical, owns_home: boolean}
    sensitive_attributes: [age_group]
    window: 5m
    allowed_lateness: 30s
    families: [drift, quality]
    thresholds: {psi: 0.2}
"""


def test_full_spec_and_inheritance_from_defaults() -> None:
    spec = MonitorSpec.from_yaml(FULL)
    loan = spec.for_model("loan")
    assert (loan.window_s, loan.allowed_lateness_s, loan.positive_class) == (300, 30, "1")
    assert loan.features == {"salary": "numeric", "car": "categorical", "owns_home": "boolean"}
    assert loan.families == ("drift", "quality") and loan.on("drift") and not loan.on("kpi")
    assert (loan.thresholds.psi, loan.thresholds.fdr) == (0.2, 0.01)  # fdr inherited from defaults
    other = spec.for_model("anything-else")
    assert (other.window_s, other.sensitive_attributes, other.thresholds.psi) == (60, None, 0.1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: {m: {task: ranking}}", "models.m.task: 'ranking' is not one of"),
        ("models: {m: {features: {age: number}}}", "models.m.features.age: 'number' is not one of"),
        ("models: {m: {windoe: 5m}}", "unknown setting(s) ['windoe']"),
        ("models: {m: {families: [drift, vibes]}}", "['vibes'] not among"),
        ("models: {m: {thresholds: {psi: -1}}}", "need 0 < fdr < 1"),
        ("models: {m: {thresholds: {pvalue: 0.1}}}", "unknown threshold(s) ['pvalue']"),
        ("models: {m: {sensitive_attributes: sex}}", "expected a list of names"),
        ("monitors: {}", "`defaults:`, `models:` and `alerts:` only"),
        ("models: {m: {window: 0s}}", "at least 1s"),
        ("models: [a, b", "not valid YAML"),
    ],
)
def test_bad_specs_name_the_place_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        MonitorSpec.from_yaml(text)
    assert message in str(info.value)


@pytest.mark.parametrize(("value", "seconds"), [("30s", 30), ("5m", 300), ("1.5h", 5400), ("2d", 172800), (45, 45)])
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value, "x") == seconds


def test_settings_load_the_spec_file_or_build_defaults(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(FULL)
    assert Settings(spec=str(path)).monitor_spec().for_model("loan").window_s == 300
    assert Settings(monitor_window_s=120).monitor_spec().for_model("x").window_s == 120
    with pytest.raises(ConfigError, match="does not exist"):
        Settings(spec=str(tmp_path / "missing.yaml")).monitor_spec()


def test_engine_follows_families_features_and_thresholds() -> None:
    events = stream(n_windows=8, per_window=1000, shift_from=4)
    spec = MonitorSpec.from_dict(
        {
            "models": {
                "m": {"window": 60, "allowed_lateness": 0, "families": ["drift"], "features": {"income": "numeric"}}
            }
        }
    )
    rows = run(events, spec=spec)
    assert {r.family for r in rows} == {"drift", "volume"}
    assert {r.feature for r in rows if r.family == "drift"} <= {"income", "", "[prediction]", "[score]"}
    # a PSI threshold above the shift's effect: significant, but not flagged
    strict = MonitorSpec.from_dict({"models": {"m": {"window": 60, "allowed_lateness": 0, "thresholds": {"psi": 50}}}})
    assert [r for r in run(events, spec=strict) if r.metric == "drifted"] == []
    loose = MonitorSpec.from_dict({"models": {"m": {"window": 60, "allowed_lateness": 0}}})
    flagged = {r.window_start for r in run(events, spec=loose) if r.metric == "drifted"}
    assert flagged == {T0 + w * 60 for w in range(4, 8)}


def test_engine_uses_a_registered_profile_from_the_first_event() -> None:
    from driftline.metrics.profiles import ReferenceProfile

    events = stream(n_windows=3, per_window=500, shift_from=99)
    cols = {n: [e.features[n] for e in events[:500]] for n in ("income", "age", "plan")}
    eng = MonitoringEngine(window_s=60, allowed_lateness_s=0)
    eng.set_profile(ReferenceProfile.build("m", "v1", cols))
    rows = eng.update(events) + eng.flush()
    assert any(r.window_start == T0 and r.metric == "psi" for r in rows)  # window 0 already has drift


def test_provisioned_dashboards_are_what_the_builder_writes(tmp_path: Path) -> None:
    """infra/grafana/dashboards is generated (`driftline grafana build`): it must not go stale."""
    import json
    from pathlib import Path

    from driftline.grafana.dashboards import build

    repo = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "dashboards"
    for board in build(MonitorSpec()):
        assert json.loads((repo / f"{board['uid']}.json").read_text()) == board, "run `driftline grafana build`"
