"""Every metric and detector class in driftline.metrics holds to one contract.

Engine state is pickled into checkpoints and copied when sliding windows merge panes, so a
state that does not survive pickling or copying would silently change numbers after a
restart. This test discovers the classes, so a new one without a case here fails it.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import pickle
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import driftline.metrics as metrics_pkg
from driftline.metrics.cbpe import Calibration, EstimatedClassQuality, EstimatedQuality
from driftline.metrics.data_quality import DuplicateTracker
from driftline.metrics.detectors import ErrorStreamDetector, MeanShiftDetector, WindowSignalDetector
from driftline.metrics.drift import CategoricalDrift, NumericDrift
from driftline.metrics.embeddings import EmbeddingDrift, VectorProfile
from driftline.metrics.fairness import GroupFairness
from driftline.metrics.label_noise import ConfidentDisagreement
from driftline.metrics.profiles import profile_column
from driftline.metrics.quality import BinaryQuality, MulticlassQuality, RegressionQuality
from driftline.metrics.segments import TopK
from driftline.streams import state_codec

# Value types that live beside the metrics in driftline.metrics: a spec section, the DP budget and
# its releases, reference profiles, the rows the stream stores. They have no update/merge/get.
NOT_METRICS = {
    "PrivacySpec",
    "PrivacyBudget",
    "NoisyRelease",
    "FeatureProfile",
    "PcaProfile",
    "ReferenceProfile",
    "MetricRow",
    "SketchRow",
    "Calibration",  # the score -> probability map a profile carries (cbpe.py)
    "SegmentSpec",  # a spec entry (segments.py)
    "VectorProfile",  # an embedding feature's reference (embeddings.py)
    "GridLookup",  # a search table of a profile's grid (drift.py), shared, never in a state
    # the plugin API: the batch view a plugin reads, its spec entry, the protocol it follows
    "MetricPlugin",
    "PluginBatch",
    "PluginSpec",
}

RNG = np.random.default_rng(21)
Y = RNG.integers(0, 2, 2_000)
SCORE = np.clip(RNG.normal(0.35 + 0.3 * Y, 0.2), 0, 1)
GROUP = RNG.choice(["a", "b", "c"], 2_000)
NUM_REF = profile_column("x", RNG.normal(size=3_000))
CAT_REF = profile_column("c", RNG.choice(["p", "q", "r"], 3_000, p=[0.5, 0.3, 0.2]))
NUM = np.r_[RNG.normal(size=1_000), RNG.normal(0.5, 1, 1_000)]
CAT = RNG.choice(["p", "q", "r", "new"], 2_000, p=[0.4, 0.3, 0.2, 0.1])
IDS = [f"e{i}" for i in RNG.integers(0, 1_500, 2_000)]
TS = np.sort(RNG.uniform(0, 100, 2_000)).tolist()
Z = np.r_[RNG.normal(size=60), RNG.normal(6, 1, 60)]
CALIBRATION = Calibration.fit(SCORE, Y)
EMBEDDED = RNG.normal(size=(2_000, 3)) @ RNG.normal(size=(3, 8)) + 0.1 * RNG.normal(size=(2_000, 8))
VECTORS = VectorProfile.fit(EMBEDDED[:500])
CLASS_SCORES = RNG.dirichlet([1.0, 1.0, 1.0], 2_000)
CLASS_CALIBRATIONS = {c: Calibration.fit(CLASS_SCORES[:, i], np.equal(GROUP, c)) for i, c in enumerate("abc")}


@dataclass
class Case:
    make: Callable[[], Any]
    feed: Callable[[Any, slice], Any]  # feeds one part of the data, returns what the call returned
    bad: dict[str, Any] | None  # constructor arguments that must raise ValueError (None: no parameters)


CASES: dict[type, Case] = {
    NumericDrift: Case(
        lambda: NumericDrift(NUM_REF), lambda m, s: m.update_many(NUM[s]) and None, {"reference": CAT_REF}
    ),
    CategoricalDrift: Case(
        lambda: CategoricalDrift(CAT_REF), lambda m, s: m.update_many(CAT[s]) and None, {"reference": NUM_REF}
    ),
    DuplicateTracker: Case(
        lambda: DuplicateTracker(ttl_s=30), lambda m, s: m.update_many(IDS[s], TS[s]).tolist(), {"ttl_s": 0}
    ),
    WindowSignalDetector: Case(
        WindowSignalDetector, lambda m, s: [m.update(v) for v in np.abs(Z[s]) / 10], {"threshold": 0}
    ),
    MeanShiftDetector: Case(MeanShiftDetector, lambda m, s: [m.update(v) for v in Z[s]], {"kswin_alpha": 2.0}),
    ErrorStreamDetector: Case(ErrorStreamDetector, lambda m, s: m.update_many((SCORE[s] >= 0.5) != Y[s]), None),
    BinaryQuality: Case(BinaryQuality, lambda m, s: m.update_many(Y[s], SCORE[s]) and None, {"threshold": 1.0}),
    RegressionQuality: Case(RegressionQuality, lambda m, s: m.update_many(Y[s] * 10.0, SCORE[s] * 10) and None, None),
    MulticlassQuality: Case(
        MulticlassQuality, lambda m, s: m.update_many(GROUP[s], np.roll(GROUP, 1)[s]) and None, {"max_classes": 0}
    ),
    GroupFairness: Case(
        GroupFairness,
        lambda m, s: m.update_many(Y[s], (SCORE[s] >= 0.5).astype(int), GROUP[s]) and None,
        {"min_group_size": 0},
    ),
    ConfidentDisagreement: Case(
        ConfidentDisagreement, lambda m, s: m.update_many(Y[s], SCORE[s], GROUP[s]) and None, {"confidence": 0.2}
    ),
    EmbeddingDrift: Case(
        lambda: EmbeddingDrift(VECTORS),
        lambda m, s: m.update_many(EMBEDDED[s]) and None,
        {"reference": NUM_REF},
    ),
    TopK: Case(lambda: TopK(3), lambda m, s: m.update_many(CAT[s].tolist()), {"k": 0}),
    EstimatedQuality: Case(
        lambda: EstimatedQuality(CALIBRATION),
        lambda m, s: m.update_many(SCORE[s].tolist(), SCORE[s] >= 0.5) and None,
        {"calibration": None, "task": "regression"},
    ),
    EstimatedClassQuality: Case(
        lambda: EstimatedClassQuality(CLASS_CALIBRATIONS),
        lambda m, s: m.update_many(["a", "b", "c"], CLASS_SCORES[s], GROUP[s].tolist()) and None,
        {"calibrations": {"a": CALIBRATION}},
    ),
}


def _discovered() -> set[type]:
    found = set()
    for info in pkgutil.iter_modules(metrics_pkg.__path__):
        module = importlib.import_module(f"{metrics_pkg.__name__}.{info.name}")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            own = obj.__module__ == module.__name__ and not name.startswith("_")
            if own and name not in NOT_METRICS and not issubclass(obj, Exception):
                found.add(obj)
    return found


def _state(m: Any) -> str:
    """What a metric reports, as text that compares NaN equal to NaN."""
    return repr(m.get()) if hasattr(m, "get") else repr(getattr(m, "alarms", None))


def test_every_metric_class_has_a_contract_case() -> None:
    assert _discovered() == set(CASES)


@pytest.mark.parametrize("cls", sorted(CASES, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_state_survives_pickling_checkpoints_and_copying_mid_stream(cls: type) -> None:
    case = CASES[cls]
    half = len(Z) // 2 if cls in (WindowSignalDetector, MeanShiftDetector) else 1_000  # per-window series are short
    first, second = slice(0, half), slice(half, None)
    original = case.make()
    case.feed(original, first)
    restored = pickle.loads(pickle.dumps(original))
    cloned = copy.deepcopy(original)
    checkpointed = state_codec.decode(state_codec.encode(original))  # the worker's checkpoint format
    outputs = [case.feed(m, second) for m in (original, restored, cloned, checkpointed)]
    assert outputs[0] == outputs[1] == outputs[2] == outputs[3]
    assert _state(original) == _state(restored) == _state(cloned) == _state(checkpointed)
    assert repr(original)  # printable in logs and tracebacks


@pytest.mark.parametrize(
    "cls", sorted((c for c in CASES if CASES[c].bad is not None), key=lambda c: c.__name__), ids=lambda c: c.__name__
)
def test_bad_parameters_raise_value_error(cls: type) -> None:
    case = CASES[cls]
    assert case.bad is not None
    with pytest.raises(ValueError):
        cls(**case.bad)


# --- plugins: user classes named in the spec hold to the same contract -------------------------

from driftline.metrics.plugins import PluginBatch, _SyntheticColumns, check_contract  # noqa: E402
from tests.unit.plugin_examples import ApprovalRateAbove, BrokenMerge, ScoreMoments  # noqa: E402

PLUGINS: dict[type, dict[str, Any]] = {ApprovalRateAbove: {"feature": "x", "above": 0.0}, ScoreMoments: {}}


@pytest.mark.parametrize("cls", list(PLUGINS), ids=lambda c: c.__name__)
def test_plugins_hold_to_the_metric_contract(cls: type) -> None:
    """Merge of halves equals one pass; pickling, copying and the checkpoint codec mid-stream change nothing."""
    params = PLUGINS[cls]
    check_contract(cls, params)
    state_codec.allow(cls)  # as the engine does when it loads a plugin
    columns = _SyntheticColumns(np.random.default_rng(5), 600)
    first, second = PluginBatch(columns.take(range(300))), PluginBatch(columns.take(range(300, 600)))
    original = cls(**params).update_many(first)
    copies = [
        pickle.loads(pickle.dumps(original)),
        copy.deepcopy(original),
        state_codec.decode(state_codec.encode(original)),  # the worker's checkpoint format
    ]
    expected = repr(original.update_many(second).get())
    assert [repr(c.update_many(second).get()) for c in copies] == [expected] * 3


def test_the_contract_check_catches_a_broken_merge() -> None:
    with pytest.raises(AssertionError):
        check_contract(BrokenMerge, {"feature": "x", "above": 0.0})
