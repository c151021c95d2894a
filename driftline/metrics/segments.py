"""Segments: drift, data quality and quality per slice of the traffic, with a bounded number of slices.

Declared per model in the spec:

.. code-block:: yaml

    models:
      loan-approval:
        segments:
          - {attribute: region, top_k: 5}          # region=<value> for the 5 largest, region=other for the rest
          - {name: seniors, where: "age >= 60"}    # a predicate on a numeric feature

An attribute segment follows the values with the most events: a Misra-Gries summary
(``TopK``, at most 4 x top_k counters, so memory is bounded whatever the number of distinct
values) is updated with every batch, and each window takes its segments from the summary
when it opens (its first batch included), so a value that grows into the top K gets its own
segment from the next window on. Events without the attribute go to ``<attribute>=(missing)``.
A predicate segment holds the events for which it is true (others are in the unsegmented
rows, as every event is). At most ``MAX_TOP_K`` segments per attribute.

>>> t = TopK(2)
>>> t.update_many(["a"] * 5 + ["b"] * 3 + ["c"])
>>> sorted(t.top())
['a', 'b']
>>> SegmentSpec.from_dict({"name": "seniors", "where": "age >= 60"}, "x").mask([59.0, 60.0, None]).tolist()
[False, True, False]
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline.exceptions import ConfigError

MAX_TOP_K = 100
OTHER = "other"
MISSING = "(missing)"
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_WHERE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|!=|>|<)\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class SegmentSpec:
    name: str
    attribute: str = ""  # by an attribute's values (top_k of them, plus "other")
    feature: str = ""  # or a predicate: feature op value
    op: str = ""
    value: float = 0.0
    top_k: int = 10

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> SegmentSpec:
        if not isinstance(raw, dict) or ("attribute" in raw) == ("where" in raw):
            raise ConfigError(
                f"monitor spec, {where}: expected {{attribute: A, top_k: K}} or {{name: N, where: 'f >= x'}}"
            )
        unknown = sorted(set(raw) - {"attribute", "top_k", "name", "where"})
        if unknown:
            raise ConfigError(f"monitor spec, {where}: unknown setting(s) {unknown}")
        if "attribute" in raw:
            top_k = raw.get("top_k", 10)
            if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
                raise ConfigError(f"monitor spec, {where}.top_k: a whole number from 1 to {MAX_TOP_K}")
            attribute = str(raw["attribute"])
            return cls(str(raw.get("name", attribute)), attribute=attribute, top_k=top_k)
        m = _WHERE.match(str(raw["where"]))
        if not m or not raw.get("name"):
            raise ConfigError(f"monitor spec, {where}: give a name and where: '<numeric feature> >= <number>'")
        return cls(str(raw["name"]), feature=m.group(1), op=m.group(2), value=float(m.group(3)))

    def mask(self, values: Sequence[Any]) -> np.ndarray:
        """For a predicate segment: which events it holds (missing and non-numbers: none)."""
        x = np.array([_number(v) for v in values], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return np.asarray(_OPS[self.op](x, self.value) & ~np.isnan(x), dtype=bool)

    def labels(self, values: Sequence[Any], top: set[str]) -> list[str]:
        """For an attribute segment: each event's segment label."""
        a = self.attribute
        label = {  # once per distinct value, then a lookup per event in C
            v: f"{a}={MISSING}" if v is None else f"{a}={v}" if v in top else f"{a}={OTHER}" for v in set(values)
        }
        return list(map(label.__getitem__, values))


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool | str):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class TopK:
    """Misra-Gries: the values with the most events, in at most 4 x k counters (mergeable, bounded)."""

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"TopK needs k >= 1, got {k}")
        self.k = k
        self.capacity = 4 * k
        self.counts: dict[str, int] = {}

    def update_many(self, values: Sequence[Any]) -> None:
        batch: dict[str, int] = {}
        for v in values:
            if v is not None:
                batch[v] = batch.get(v, 0) + 1
        for value, count in batch.items():
            self.counts[value] = self.counts.get(value, 0) + count
        if len(self.counts) > self.capacity:
            # drop to capacity by subtracting the (capacity+1)-th largest count from all (Misra-Gries)
            cut = sorted(self.counts.values(), reverse=True)[self.capacity]
            self.counts = {v: c - cut for v, c in self.counts.items() if c > cut}

    def get(self) -> dict[str, int]:
        """The counters (lower bounds of each kept value's count, off by at most n / (capacity + 1))."""
        return dict(self.counts)

    def top(self) -> set[str]:
        return set(sorted(self.counts, key=lambda v: (-self.counts[v], v))[: self.k])
