"""DP mechanisms against their formulas, and secure aggregation: exact sums, cancelling masks, a blind server."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from driftline.metrics.privacy import BudgetExhausted, PrivacyBudget, gaussian_sigma, release_counts
from driftline.offline.federated import (
    MOD,
    SecureAggregation,
    centralized_accuracy,
    decode,
    encode,
    fedavg,
    non_iid_clients,
)


def _noise(mechanism: str, epsilon: float, delta: float = 0.0, bound: int = 1) -> np.ndarray:
    budget = PrivacyBudget(epsilon=1e9, delta=1.0)
    rng = np.random.default_rng(11)
    draws = []
    for _ in range(4000):
        out = release_counts(
            {"g": {"a": 1000, "b": 1000}},
            budget,
            epsilon=epsilon,
            delta=delta,
            mechanism=mechanism,
            contribution_bound=bound,
            rng=rng,
        )
        draws += [out.counts["g"]["a"] - 1000, out.counts["g"]["b"] - 1000]
    return np.array(draws)


def test_laplace_noise_has_scale_sensitivity_over_epsilon() -> None:
    noise = _noise("laplace", epsilon=0.5, bound=2)
    b = 2 / 0.5
    assert np.mean(np.abs(noise)) == pytest.approx(b, rel=0.03)  # E|X| = b for Laplace(0, b)
    assert stats.kstest(noise, stats.laplace(scale=b).cdf).pvalue > 0.01


def test_gaussian_noise_has_the_classic_sigma() -> None:
    sigma = gaussian_sigma(1, 0.5, 1e-5)
    assert sigma == pytest.approx(math.sqrt(2 * math.log(1.25 / 1e-5)) / 0.5)
    noise = _noise("gaussian", epsilon=0.5, delta=1e-5)
    assert np.std(noise) == pytest.approx(sigma, rel=0.03)
    assert stats.kstest(noise, stats.norm(scale=sigma).cdf).pvalue > 0.01


def test_budget_is_spent_and_refused_when_gone() -> None:
    budget = PrivacyBudget(epsilon=1.0)
    release_counts({"g": {"a": 5}}, budget, epsilon=0.6, rng=np.random.default_rng(0))
    with pytest.raises(BudgetExhausted, match=r"left: 0\.4"):
        release_counts({"g": {"a": 5}}, budget, epsilon=0.6, rng=np.random.default_rng(0))
    assert budget.ledger == [("laplace counts", 0.6, 0.0)]


def test_small_or_noisy_groups_are_flagged() -> None:
    out = release_counts(
        {"big": {"tp": 900, "fn": 100}, "tiny": {"tp": 4, "fn": 2}},
        PrivacyBudget(5.0),
        epsilon=1.0,
        rng=np.random.default_rng(3),
    )
    assert out.flagged == frozenset({"tiny"})
    assert out.rates["big"]["tp"] == pytest.approx(0.9, abs=0.01)


def test_fixed_point_round_trip_and_range() -> None:
    x = np.array([-3.5, 0.0, 1 / 3, 1000.25])
    assert np.allclose(decode(encode(x)), x, atol=2**-16)
    with pytest.raises(ValueError, match="too large"):
        encode([1e6])


def test_secure_sum_is_exact_and_masks_cancel() -> None:
    rng = np.random.default_rng(5)
    updates = [rng.normal(size=50) for _ in range(7)]
    agg = SecureAggregation(7, dim=50, rng=np.random.default_rng(9))
    masked = [agg.mask(i, u) for i, u in enumerate(updates)]
    plain = sum((encode(u) for u in updates), start=np.zeros(50, dtype=np.uint64)) % MOD
    assert np.array_equal(sum(masked, start=np.zeros(50, dtype=np.uint64)) % MOD, plain)  # masks cancel exactly
    assert np.allclose(agg.unmask_sum(masked, survivors=range(7)), sum(updates), atol=7 * 2**-16)


def test_dropped_clients_masks_are_removed_with_the_survivors_seeds() -> None:
    rng = np.random.default_rng(6)
    updates = [rng.normal(size=20) for _ in range(6)]
    agg = SecureAggregation(6, dim=20, rng=np.random.default_rng(2))
    survivors = [0, 2, 3, 5]
    masked = [agg.mask(i, updates[i]) for i in survivors]
    assert np.allclose(agg.unmask_sum(masked, survivors), sum(updates[i] for i in survivors), atol=1e-3)


def test_the_server_cannot_tell_one_clients_update_from_another() -> None:
    """A masked update is uniform mod 2**32 whatever the input: two very different inputs look alike."""
    outputs = {}
    for name, value in (("zeros", np.zeros(8)), ("large", np.full(8, 500.0))):
        draws = [SecureAggregation(3, 8, np.random.default_rng(s)).mask(0, value) for s in range(2000)]
        outputs[name] = np.concatenate(draws).astype(np.float64) / MOD
        assert stats.kstest(outputs[name], "uniform").pvalue > 0.01  # uniform on [0, 1)
    assert stats.ks_2samp(outputs["zeros"], outputs["large"]).pvalue > 0.01


def test_fedavg_with_dropout_matches_pooled_training_and_dp_costs_little() -> None:
    clients, test = non_iid_clients(10, 300, seed=1)
    pooled = centralized_accuracy(clients, test)
    plain = fedavg(clients, rounds=15, test=test, dropout=0.2, seed=2)
    assert plain.history[-1]["accuracy"] >= pooled - 0.03
    assert min(h["survivors"] for h in plain.history) < 10  # clients did drop out
    private = fedavg(clients, rounds=15, test=test, clip=1.0, noise_multiplier=0.5, seed=2)
    assert private.dp_sigma == 0.5 and private.history[-1]["accuracy"] >= pooled - 0.06


def test_hybrid_curve_ends_are_the_edge_and_the_server() -> None:
    from driftline.offline.hybrid import curve, routing_events

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    edge = np.clip(np.where(y == 1, 0.7, 0.3) + rng.normal(0, 0.25, 2000), 0, 1)
    server = np.where(y == 1, 0.95, 0.05)
    points = {p.threshold: p for p in curve(edge, server, y, edge_ms=0.01, server_ms=1.0)}
    assert points[0.5].escalation_rate == 0.0
    assert points[0.5].accuracy == pytest.approx(np.mean((edge >= 0.5) == y))
    assert points[1.01].escalation_rate == 1.0 and points[1.01].accuracy == 1.0
    assert points[1.01].mean_latency_ms == pytest.approx(1.01)
    rates = [p.escalation_rate for p in sorted(points.values(), key=lambda p: p.threshold)]
    assert rates == sorted(rates)  # a higher threshold escalates more
    events = routing_events("m", edge[:10], server[:10], 0.9, 0.01, 1.0, ts=1.8e9)
    assert {e.version for e in events} <= {"edge", "server"}
    assert all(e.attributes["tier"] == e.version for e in events)
    assert all((e.latency_ms or 0) > 1 for e in events if e.version == "server")


def test_private_fairness_is_close_with_a_large_epsilon_and_spends_and_flags() -> None:
    from fairlearn.metrics import demographic_parity_difference

    from driftline.metrics.private_fairness import private_group_metrics
    from driftline.spec import MonitorSpec

    spec = MonitorSpec.from_yaml("models: {m: {privacy: {epsilon_per_window: 0.5, budget: 1.0}}}")
    privacy = spec.for_model("m").privacy
    rng = np.random.default_rng(1)
    groups = rng.choice(["a", "b", "tiny"], size=4000, p=[0.6, 0.398, 0.002])
    y = rng.integers(0, 2, 4000)
    p = (rng.uniform(size=4000) < np.where(groups == "a", 0.6, 0.4)).astype(int)
    budget = PrivacyBudget(epsilon=privacy.budget)
    out = private_group_metrics(y, p, groups, privacy, budget, 30, rng)
    exact = demographic_parity_difference(y, p, sensitive_features=np.where(groups == "tiny", "a", groups))
    assert out["demographic_parity_difference"] == pytest.approx(exact, abs=0.03)  # noise of scale 2 on ~1,600-2,400
    assert "tiny" in out["flagged"] and out["noise_scale"] == 2.0
    private_group_metrics(y, p, groups, privacy, budget, 30, rng)
    with pytest.raises(BudgetExhausted):
        private_group_metrics(y, p, groups, privacy, budget, 30, rng)
    with pytest.raises(Exception, match="epsilon_per_window <= budget"):
        MonitorSpec.from_yaml("models: {m: {privacy: {epsilon_per_window: 2, budget: 1}}}")


def test_a_round_below_the_survivor_threshold_is_never_unmasked() -> None:
    """Issue 22.3: with one survivor the server's "sum" was that client's exact update, and when everyone
    dropped out the code forced client 0 in alone."""
    from driftline.offline.federated import TooFewSurvivors, default_threshold

    assert [default_threshold(n) for n in (2, 3, 4, 7, 10)] == [2, 2, 2, 4, 5]
    updates = [np.random.default_rng(i).normal(size=5) for i in range(6)]
    agg = SecureAggregation(6, dim=5, rng=np.random.default_rng(3))
    masked = [agg.mask(i, u) for i, u in enumerate(updates)]
    with pytest.raises(TooFewSurvivors):
        agg.unmask_sum([masked[0]], survivors=[0])  # alone, its "sum" would be its own update
    with pytest.raises(TooFewSurvivors):
        agg.unmask_sum([masked[0], masked[4]], survivors=[0, 4])  # 2 < 3 of 6
    assert np.allclose(agg.unmask_sum(masked[:3], [0, 1, 2]), sum(updates[:3]), atol=1e-3)
    with pytest.raises(ValueError, match="threshold"):
        SecureAggregation(6, dim=5, rng=np.random.default_rng(3), threshold=1)


def test_no_federated_round_reveals_a_single_update() -> None:
    clients, test = non_iid_clients(4, 200, seed=5)
    result = fedavg(clients, rounds=30, dropout=0.6, test=test, seed=5)
    refused = [h for h in result.history if h["skipped"]]
    applied = [h for h in result.history if not h["skipped"]]
    assert refused and applied  # at 60 % dropout some rounds fall below 2 of 4, others do not
    assert all(h["survivors"] >= 2 for h in applied) and all(h["survivors"] < 2 for h in refused)
    # a refused round leaves the model as it was: its accuracy equals the round before's
    by_round = {int(h["round"]): h["accuracy"] for h in result.history}
    for h in refused:
        if int(h["round"]) > 1:
            assert h["accuracy"] == by_round[int(h["round"]) - 1]
