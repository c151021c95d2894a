"""Custom metrics as plugins: add a metric without forking driftline.

A plugin is a class with the contract every metric here follows -- ``update_many`` over a
batch of columns, ``merge`` of two states, ``get`` of the values -- named in the monitor
spec, by import path or by an entry point a package registers:

.. code-block:: yaml

    models:
      loan-approval:
        plugins:
          - name: large_loan_approval                    # rows: family "custom", metric "large_loan_approval"
            class: mycompany.metrics:ApprovalRateAbove    # module:Class ...
            params: {feature: loan, above: 100000}        # ... built as ApprovalRateAbove(**params)
          - name: fraud_rate
            entry_point: fraud-rate                       # ... or [project.entry-points."driftline.metrics"]

The engine builds one instance per model version and window pane, calls ``update_many`` with
a :class:`PluginBatch` (the pane's events as columns), ``merge`` to combine panes of sliding
windows, and ``get`` when the window closes: ``{"": value}`` or ``{"rate": v, "n": k}``,
stored as family ``custom`` with metric ``<name>`` or ``<name>.<key>``, so they reach
ClickHouse, Grafana, the metrics topic and alert rules (``family: custom``) like any metric
(Prometheus gets the built-in ML gauges only). State must survive a checkpoint: plain attributes
(numbers, strings, lists, dicts, numpy arrays); the class is allowed into the checkpoint
codec when it is loaded. ``tests/unit/test_metric_contract.py`` holds plugins to the same
contract as the built-in metrics (merge of halves equals one pass, copies and checkpoints
change nothing).

>>> class HighScoreShare:
...     def __init__(self, above: float = 0.9):
...         self.above, self.high, self.n = above, 0, 0
...     def update_many(self, batch):
...         s = batch.scores()
...         self.high += int((s > self.above).sum()); self.n += batch.n
...         return self
...     def merge(self, other):
...         self.high += other.high; self.n += other.n
...         return self
...     def get(self):
...         return {"": self.high / self.n} if self.n else {}
>>> check_contract(HighScoreShare)
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from driftline.exceptions import ConfigError

ENTRY_POINT_GROUP = "driftline.metrics"
FAMILY = "custom"


class MetricPlugin(Protocol):
    """What the engine calls. `update_many` and `merge` return the plugin itself."""

    def update_many(self, batch: PluginBatch) -> Any: ...
    def merge(self, other: Any) -> Any: ...
    def get(self) -> Mapping[str, float]: ...


class _Columns(Protocol):
    n: int

    def predictions(self) -> list[Any]: ...
    def scores(self) -> list[float | None]: ...
    def event_ids(self) -> list[str]: ...
    def feature_columns(self, names: list[str]) -> list[Sequence[Any]]: ...


class PluginBatch:
    """One pane's events of one model version, as columns in event order (built lazily, per batch)."""

    def __init__(self, columns: _Columns):
        self._columns = columns
        self.n = columns.n

    def feature(self, name: str) -> list[Any]:
        """A feature's values (None where an event lacks it)."""
        return list(self._columns.feature_columns([name])[0])

    def numeric(self, name: str) -> np.ndarray:
        """A feature as float64, NaN where missing or not a number."""
        return np.array([_number(v) for v in self.feature(name)], dtype=np.float64)

    def predictions(self) -> list[Any]:
        """The predictions, a copy: the engine's own list is shared by its families and the other plugins."""
        return list(self._columns.predictions())

    def scores(self) -> np.ndarray:
        """The scores as float64, NaN where an event has none."""
        return np.array([np.nan if s is None else s for s in self._columns.scores()], dtype=np.float64)

    def event_ids(self) -> list[str]:
        """The event ids, a copy (as `predictions`)."""
        return list(self._columns.event_ids())


def _number(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return float(value) if isinstance(value, bool) else np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


@dataclass(frozen=True)
class PluginSpec:
    name: str
    target: str  # module:Class, or the entry point's name
    params: dict[str, Any] = field(default_factory=dict)
    entry_point: bool = False

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> PluginSpec:
        if not isinstance(raw, dict) or not raw.get("name") or ("class" in raw) == ("entry_point" in raw):
            raise ConfigError(f"monitor spec, {where}: expected {{name, class: module:Class | entry_point, params}}")
        unknown = sorted(set(raw) - {"name", "class", "entry_point", "params"})
        if unknown:
            raise ConfigError(f"monitor spec, {where}: unknown setting(s) {unknown}")
        name = str(raw["name"])
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"monitor spec, {where}.name: {name!r} must be letters, digits, _ and -")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"monitor spec, {where}.params: expected a mapping of constructor arguments")
        if "class" in raw:
            return cls(name, str(raw["class"]), dict(params))
        return cls(name, str(raw["entry_point"]), dict(params), entry_point=True)

    def load(self) -> type:
        """The plugin class (imported once; checked for the contract)."""
        return load_class(self.target, self.entry_point)

    def factory(self) -> Callable[[], MetricPlugin]:
        cls = self.load()
        params = self.params

        def make() -> MetricPlugin:
            try:
                return cls(**params)  # type: ignore[no-any-return]
            except TypeError as exc:
                raise ConfigError(f"metric plugin {self.name} ({self.target}): {exc}") from None

        return make


def load_class(target: str, entry_point: bool = False) -> type:
    if entry_point:
        found = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == target]
        if not found:
            known = sorted(e.name for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
            raise ConfigError(f"no metric plugin {target!r} in entry points {ENTRY_POINT_GROUP!r} (found: {known})")
        cls = found[0].load()
    else:
        module, sep, name = target.partition(":")
        if not sep or not module or not name:
            raise ConfigError(f"metric plugin class {target!r}: write module:Class, e.g. mycompany.metrics:Rate")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"metric plugin class {target!r} cannot be imported: {exc}") from None
    missing = [m for m in ("update_many", "merge", "get") if not callable(getattr(cls, m, None))]
    if not isinstance(cls, type) or missing:
        raise ConfigError(f"metric plugin {target!r} lacks {missing or 'a class'}: see driftline.metrics.plugins")
    return cls


def rows_of(name: str, values: Mapping[str, float]) -> list[tuple[str, float]]:
    """(metric, value) pairs of a plugin's `get()`: ``name`` for the key "" (or the name), else name.key."""
    out = []
    for key, value in sorted(values.items()):
        metric = name if key in ("", name) else f"{name}.{key}"
        out.append((metric, float(value)))
    return out


def check_contract(cls: type, params: Mapping[str, Any] | None = None, n: int = 400) -> None:
    """Raise AssertionError unless `cls` merges like one pass and survives a copy (a quick self-test; the
    checkpoint round trip is in tests/unit/test_metric_contract.py)."""
    import copy

    rng = np.random.default_rng(0)
    batch = _SyntheticColumns(rng, n)
    half = n // 2
    whole = cls(**(params or {})).update_many(PluginBatch(batch))
    first = cls(**(params or {})).update_many(PluginBatch(batch.take(range(half))))
    second = cls(**(params or {})).update_many(PluginBatch(batch.take(range(half, n))))
    merged = first.merge(second)
    assert dict(merged.get()) == dict(whole.get()), (merged.get(), whole.get())
    assert dict(copy.deepcopy(whole).get()) == dict(whole.get())


class _SyntheticColumns:
    """A small deterministic batch for `check_contract`: features x (numeric) and c (categorical)."""

    def __init__(self, rng: np.random.Generator, n: int, rows: dict[str, list[Any]] | None = None):
        self._rows = rows or {
            "x": rng.normal(size=n).tolist(),
            "c": rng.choice(["a", "b"], n).tolist(),
            "score": rng.uniform(size=n).tolist(),
            "prediction": rng.integers(0, 2, n).tolist(),
            "event_id": [f"e{i}" for i in range(n)],
        }
        self.n = len(self._rows["event_id"])

    def take(self, index: range) -> _SyntheticColumns:
        return _SyntheticColumns(np.random.default_rng(0), 0, {k: [v[i] for i in index] for k, v in self._rows.items()})

    def predictions(self) -> list[Any]:
        return self._rows["prediction"]

    def scores(self) -> list[float | None]:
        return self._rows["score"]

    def event_ids(self) -> list[str]:
        return self._rows["event_id"]

    def feature_columns(self, names: list[str]) -> list[Sequence[Any]]:
        return [self._rows.get(n, [None] * self.n) for n in names]
