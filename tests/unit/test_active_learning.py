"""Active learning: uncertainty measures, budgeted selection per window, and a replay against random sampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from driftline.events import Prediction
from driftline.exceptions import ConfigError
from driftline.labeling.active import WindowSelector, k_centre, replay, select, uncertainty
from driftline.spec import MonitorSpec


def test_uncertainty_measures_match_their_definitions() -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(4), size=50)
    top = np.sort(p, axis=1)
    assert np.allclose(uncertainty(p, "least_confidence"), 1 - top[:, -1])
    assert np.allclose(uncertainty(p, "margin"), 1 - (top[:, -1] - top[:, -2]))
    assert np.allclose(uncertainty(p, "entropy"), scipy_entropy(p, axis=1))
    scores = np.array([0.5, 0.9, 0.02, 0.6])  # binary scores: P(positive)
    assert select(uncertainty(scores, "margin"), 2) == [0, 3]
    with pytest.raises(ValueError, match="not one of"):
        uncertainty(p, "vibes")  # type: ignore[arg-type]


def test_diverse_selection_spreads_over_uncertain_regions() -> None:
    rng = np.random.default_rng(1)
    # two uncertain clusters, one much denser; plain top-k takes only the dense one
    x = np.vstack([rng.normal(0, 0.05, (50, 2)), rng.normal(5, 0.05, (5, 2))])
    u = np.concatenate([np.full(50, 0.9), np.full(5, 0.8)]) + rng.uniform(0, 0.01, 55)
    plain = select(u, 4)
    diverse = select(u, 4, x, diversity=15)
    assert all(i < 50 for i in plain)
    assert any(i >= 50 for i in diverse) and any(i < 50 for i in diverse)
    assert len(set(k_centre(x, 3))) == 3


def events(window: int, n: int, seed: int, model: str = "m") -> list[Prediction]:
    rng = np.random.default_rng(seed)
    start = 999_960 + window * 60  # a multiple of 60: one window
    return [
        Prediction(
            event_id=f"{model}-{window}-{i}",
            model=model,
            version="v1",
            ts=start + i * 60 / n,
            features={"x": float(rng.normal())},
            prediction=1,
            score=float(rng.uniform()),
        )
        for i in range(n)
    ]


def test_window_selector_asks_for_the_budget_of_each_window_when_it_closes() -> None:
    sel = WindowSelector(budget=5, window_s=60, strategy="margin")
    w0, w1 = events(0, 400, 1), events(1, 400, 2)
    got = []
    for part in np.array_split(np.arange(400), 8):  # window 0 arrives in batches
        got += sel.update_many([w0[i] for i in part])
    assert got == []  # window 0 is still open
    closed = sel.update_many(w1[:1])  # the watermark passes window 0's end
    best = sorted(w0, key=lambda e: abs((e.score or 0) - 0.5))[:5]
    assert [r.event_id for r in closed] == [e.event_id for e in best]
    assert all(r.window_start == 999_960 for r in closed)
    assert sel.update_many(w0[:10]) == []  # late events for a closed window ask for nothing
    rest = sel.update_many(w1[1:]) + sel.flush()
    assert len(rest) == 5 and {r.event_id.split("-")[1] for r in rest} == {"1"}
    assert sel.capacity == 5  # bounded: at most the budget of candidates per open window


def test_labeling_spec_is_validated() -> None:
    spec = MonitorSpec.from_yaml("models: {m: {labeling: {budget_per_window: 7, strategy: entropy}}}")
    assert spec.for_model("m").labeling.budget_per_window == 7 and spec.for_model("other").labeling is None
    with pytest.raises(ConfigError, match="strategy"):
        MonitorSpec.from_yaml("models: {m: {labeling: {strategy: loudest}}}")
    with pytest.raises(ConfigError, match="budget_per_window"):
        MonitorSpec.from_yaml("models: {m: {labeling: {budget: 3}}}")


def test_uncertainty_sampling_needs_fewer_labels_than_random_on_a_replay() -> None:
    """Digits (shipped with scikit-learn): labels needed to reach 95 % of the accuracy with every label."""
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    target = 0.95 * LogisticRegression(max_iter=2000).fit(xtr, ytr).score(xte, yte)
    need = {
        s: [replay(xtr, ytr, xte, yte, s, seed=seed).labels_to_reach(target) for seed in range(3)]
        for s in ("random", "margin")
    }
    assert all(n is not None for ns in need.values() for n in ns), need
    assert np.mean(need["margin"]) <= 0.8 * np.mean(need["random"]), need  # type: ignore[arg-type]
