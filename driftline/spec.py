"""The monitor spec: what to watch for each model, as YAML or Python, checked at start-up.

Every field has a default, so a model that is not in the spec (or no spec at all) still
gets drift and data-quality metrics with features inferred from its reference profile.

.. code-block:: yaml

    defaults:
      window: 5m
    models:
      loan-approval:
        task: binary                 # binary | multiclass | regression
        positive_class: 1
        features: {salary: numeric, car: categorical, owns_home: boolean}
        sensitive_attributes: [age_group]
        window: 5m                   # tumbling, event time
        slide: 1m                    # optional: a 5-minute window every minute
        allowed_lateness: 1m
        families: [drift, data_quality, quality, fairness, kpi, labeling]
        thresholds: {psi: 0.1, js: 0.1, fdr: 0.05, min_group_size: 30}

>>> spec = MonitorSpec.from_yaml("models: {m: {window: 10m, features: {age: numeric}}}")
>>> spec.for_model("m").window_s, spec.for_model("other").window_s
(600, 300)
>>> MonitorSpec.from_yaml("models: {m: {window: soon}}")
Traceback (most recent call last):
...
driftline.exceptions.ConfigError: monitor spec, models.m.window: 'soon' is not a duration; write e.g. 30s, 5m, 1h or 1d
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from driftline.alerts.rules import AlertingConfig
from driftline.exceptions import ConfigError
from driftline.labeling.spec import LabelingSpec
from driftline.metrics.plugins import PluginSpec
from driftline.metrics.private_fairness import PrivacySpec
from driftline.metrics.segments import SegmentSpec
from driftline.models.canary_spec import CanarySpec
from driftline.values import parse_duration

FAMILIES = ("drift", "data_quality", "quality", "estimated_quality", "fairness", "kpi", "labeling")
TASKS = ("binary", "multiclass", "regression")
KINDS = ("numeric", "categorical", "boolean", "vector")
#: How producers key a model's events on Kafka: by model (one partition, one worker: the default),
#: or by event or request id (spread over every partition; the workers' window states are merged).
PARTITION_KEYS = ("model", "event_id", "request_id")


@dataclass(frozen=True)
class Thresholds:
    """When a feature counts as drifted: significant after FDR control *and* a large enough effect."""

    psi: float = 0.1  # numeric features
    js: float = 0.1  # categorical features
    fdr: float = 0.05  # Benjamini-Hochberg level across the features of a window
    min_group_size: int = 30  # fairness: smaller groups are reported, not compared


@dataclass(frozen=True)
class ModelSpec:
    task: str = "binary"
    positive_class: str = "1"
    features: dict[str, str] = field(default_factory=dict)  # empty: every feature, kinds inferred
    sensitive_attributes: list[str] | None = None  # None: every attribute
    window_s: int = 300
    slide_s: int | None = None  # sliding windows: a window of window_s every slide_s; None = tumbling
    allowed_lateness_s: int = 60
    families: tuple[str, ...] = FAMILIES
    thresholds: Thresholds = field(default_factory=Thresholds)
    canary: CanarySpec = field(default_factory=CanarySpec)
    privacy: PrivacySpec | None = None  # publish fairness counts under DP (metrics/private_fairness.py)
    labeling: LabelingSpec | None = None  # ask for labels of uncertain predictions (labeling/spec.py)
    plugins: tuple[PluginSpec, ...] = ()  # custom metrics (metrics/plugins.py): family "custom"
    segments: tuple[SegmentSpec, ...] = ()  # drift, data quality and quality per slice (metrics/segments.py)
    # "model": the model's events on one partition; else spread, window states merged (streams/window_parts.py)
    partition_key: str = "model"

    def on(self, family: str) -> bool:
        return family in self.families

    @property
    def spread(self) -> bool:
        """Whether the model's events spread over partitions (and workers): its windows are merged."""
        return self.partition_key != "model"


def _model_spec(raw: Any, where: str, base: ModelSpec) -> ModelSpec:
    if raw is None:
        return base
    if not isinstance(raw, dict):
        raise ConfigError(f"monitor spec, {where}: expected a mapping of settings, got {type(raw).__name__}")
    known = {
        "task",
        "positive_class",
        "features",
        "sensitive_attributes",
        "window",
        "slide",
        "allowed_lateness",
        "families",
        "thresholds",
        "canary",
        "privacy",
        "labeling",
        "plugins",
        "segments",
        "partition_key",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"monitor spec, {where}: unknown setting(s) {unknown}; known: {sorted(known)}")
    changes: dict[str, Any] = {}
    if "task" in raw:
        if raw["task"] not in TASKS:
            raise ConfigError(f"monitor spec, {where}.task: {raw['task']!r} is not one of {list(TASKS)}")
        changes["task"] = raw["task"]
    if "positive_class" in raw:
        value = raw["positive_class"]
        changes["positive_class"] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    if "features" in raw:
        feats = raw["features"]
        if not isinstance(feats, dict):
            raise ConfigError(f"monitor spec, {where}.features: expected name: kind pairs, e.g. {{age: numeric}}")
        for name, kind in feats.items():
            if kind not in KINDS:
                raise ConfigError(f"monitor spec, {where}.features.{name}: {kind!r} is not one of {list(KINDS)}")
        changes["features"] = {str(k): str(v) for k, v in feats.items()}
    if "sensitive_attributes" in raw:
        attrs = raw["sensitive_attributes"]
        if not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs):
            raise ConfigError(f"monitor spec, {where}.sensitive_attributes: expected a list of names")
        changes["sensitive_attributes"] = attrs
    if "window" in raw:
        changes["window_s"] = parse_duration(raw["window"], f"{where}.window")
        if changes["window_s"] < 1:
            raise ConfigError(f"monitor spec, {where}.window: must be at least 1s")
    if "slide" in raw:
        changes["slide_s"] = parse_duration(raw["slide"], f"{where}.slide")
    window_s, slide_s = changes.get("window_s", base.window_s), changes.get("slide_s", base.slide_s)
    if slide_s is not None and not (0 < slide_s < window_s and window_s % slide_s == 0 and window_s // slide_s <= 60):
        raise ConfigError(
            f"monitor spec, {where}.slide: {slide_s}s must be shorter than the window ({window_s}s), divide it, "
            "and give at most 60 slides per window"
        )
    if "allowed_lateness" in raw:
        changes["allowed_lateness_s"] = parse_duration(raw["allowed_lateness"], f"{where}.allowed_lateness")
    if "families" in raw:
        fams = raw["families"]
        bad = [f for f in fams or [] if f not in FAMILIES] if isinstance(fams, list) else [fams]
        if bad:
            raise ConfigError(f"monitor spec, {where}.families: {bad} not among {list(FAMILIES)}")
        changes["families"] = tuple(fams)
    if "thresholds" in raw:
        changes["thresholds"] = _thresholds(raw["thresholds"], f"{where}.thresholds", base.thresholds)
    if "canary" in raw:
        changes["canary"] = CanarySpec.from_dict(raw["canary"], f"{where}.canary")
    if "privacy" in raw:
        changes["privacy"] = PrivacySpec.from_dict(raw["privacy"], f"{where}.privacy")
    if "labeling" in raw:
        changes["labeling"] = LabelingSpec.from_dict(raw["labeling"], f"{where}.labeling")
    if "plugins" in raw:
        changes["plugins"] = _plugins(raw["plugins"], f"{where}.plugins")
    if "segments" in raw:
        items = raw["segments"]
        if not isinstance(items, list):
            raise ConfigError(f"monitor spec, {where}.segments: expected a list")
        segments = tuple(SegmentSpec.from_dict(item, f"{where}.segments[{i}]") for i, item in enumerate(items))
        if len({s.name for s in segments}) != len(segments):
            raise ConfigError(f"monitor spec, {where}.segments: names must be unique")
        changes["segments"] = segments
    if "partition_key" in raw:
        if raw["partition_key"] not in PARTITION_KEYS:
            raise ConfigError(
                f"monitor spec, {where}.partition_key: {raw['partition_key']!r} is not one of {list(PARTITION_KEYS)}"
            )
        changes["partition_key"] = raw["partition_key"]
    out = replace(base, **changes)
    if out.spread and out.slide_s is not None:
        raise ConfigError(
            f"monitor spec, {where}: partition_key {out.partition_key!r} spreads the model's windows over workers, "
            "which merge tumbling windows only: remove `slide` or key by model"
        )
    return out


def _plugins(raw: Any, where: str) -> tuple[PluginSpec, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"monitor spec, {where}: expected a list of {{name, class, params}}")
    plugins = tuple(PluginSpec.from_dict(item, f"{where}[{i}]") for i, item in enumerate(raw))
    names = [p.name for p in plugins]
    if len(set(names)) != len(names):
        raise ConfigError(f"monitor spec, {where}: plugin names must be unique, got {names}")
    for plugin in plugins:
        plugin.factory()()  # import and build one now: a typo fails at start-up, not in the first window
    return plugins


def _thresholds(raw: Any, where: str, base: Thresholds) -> Thresholds:
    if not isinstance(raw, dict):
        raise ConfigError(f"monitor spec, {where}: expected a mapping, e.g. {{psi: 0.2}}")
    names = {f.name for f in fields(Thresholds)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"monitor spec, {where}: unknown threshold(s) {unknown}; known: {sorted(names)}")
    out = replace(base, **raw)
    if not (0 < out.fdr < 1 and out.psi >= 0 and out.js >= 0 and out.min_group_size >= 1):
        raise ConfigError(f"monitor spec, {where}: need 0 < fdr < 1, psi >= 0, js >= 0, min_group_size >= 1")
    return out


@dataclass(frozen=True)
class MonitorSpec:
    """Per-model specs plus the defaults for every model not named."""

    defaults: ModelSpec = field(default_factory=ModelSpec)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    alerts: AlertingConfig = field(default_factory=AlertingConfig)

    def for_model(self, model: str) -> ModelSpec:
        return self.models.get(model, self.defaults)

    @classmethod
    def from_dict(cls, raw: Any) -> MonitorSpec:
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"defaults", "models", "alerts"}:
            raise ConfigError("monitor spec: the top level has `defaults:`, `models:` and `alerts:` only")
        defaults = _model_spec(raw.get("defaults"), "defaults", ModelSpec())
        models_raw = raw.get("models") or {}
        if not isinstance(models_raw, dict):
            raise ConfigError("monitor spec, models: expected model-name: settings pairs")
        models = {str(name): _model_spec(m, f"models.{name}", defaults) for name, m in models_raw.items()}
        return cls(defaults, models, AlertingConfig.from_dict(raw.get("alerts")))

    @classmethod
    def from_yaml(cls, text: str) -> MonitorSpec:
        try:
            return cls.from_dict(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            raise ConfigError(f"monitor spec is not valid YAML: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> MonitorSpec:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"monitor spec {str(p)!r} does not exist; check --spec / DRIFTLINE_SPEC")
        return cls.from_yaml(p.read_text())
