"""The privacy trade-off table: its epsilons are the accountant's, its bytes what the simulated protocol sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opacus.accountants import RDPAccountant

from driftline.offline.federated import KEY_BYTES, SEED_BYTES, fedavg, non_iid_clients
from driftline.offline.tradeoff import tradeoff


def test_epsilons_match_the_accountant_and_bytes_the_formula() -> None:
    rows, target = tradeoff(
        clients=20,
        per_client=150,
        rounds=8,
        participation=0.5,
        noise_multipliers=(1.0, 3.0),
        dp_sgd_epsilons=(2.0,),
        seed=1,
    )
    by = {r.technique.split(" (")[0] if "DP-SGD" in r.technique else r.technique: r for r in rows}
    assert [r.guarantee for r in rows] == ["none", "record", "none", "client", "client"]
    for r in rows:
        if r.epsilon is None:
            continue
        accountant = RDPAccountant()
        accountant.history = [(r.noise_multiplier, r.sample_rate, r.steps)]
        assert r.epsilon == pytest.approx(accountant.get_epsilon(r.delta), rel=1e-9), r.technique
    dp_sgd = by["centralised DP-SGD"]
    assert dp_sgd.epsilon is not None and dp_sgd.epsilon <= 2.0 + 1e-6 and dp_sgd.delta < 1 / (20 * 75)
    fed = [r for r in rows if r.guarantee == "client"]
    assert fed[0].epsilon > fed[1].epsilon  # more noise, less privacy lost
    assert all(r.delta == pytest.approx(1e-5) and r.sample_rate == 0.5 and r.steps == 8 for r in fed)
    d = 8  # features of the generated clients
    # About 10 of 20 clients per cohort: keys with the cohort only, no dropout, so no seeds revealed.
    for r in rows[2:]:
        per_member = r.bytes_per_client_per_round - (d + 2) * 4 - (d + 1) * 8
        assert 6 * KEY_BYTES <= per_member <= 14 * KEY_BYTES, r
    plain = by["FedAvg + secure aggregation"]
    assert plain.rounds_to_target is not None and plain.accuracy >= target  # rounds are not refused
    assert plain.bytes_per_client_to_target is not None
    assert 0.5 < target < 1 and all(0 <= r.accuracy <= 1 for r in rows)


def test_round_bytes_are_what_the_protocol_as_simulated_sends() -> None:
    """Issue 22.4: the formula counted keys with ~14 participants while the simulation masked against all 49
    other clients and revealed ~35 seeds a round. Now each round's bytes follow from its cohort and survivors."""
    clients, _ = non_iid_clients(50, 60, seed=2)
    d = clients[0][0].shape[1]
    result = fedavg(clients, rounds=6, participation=0.3, dropout=0.2, seed=2, local_epochs=1)
    for h in result.history:
        m, s = int(h["cohort"]), int(h["survivors"])
        assert 5 <= m <= 25  # a cohort of about 15, not all 50
        expected = m * (m * KEY_BYTES + (d + 1) * 8) + s * (d + 2) * 4 + s * (m - s) * SEED_BYTES
        assert h["bytes"] == expected, h
    assert result.bytes_per_client_per_round == pytest.approx(
        sum(h["bytes"] for h in result.history) / sum(h["cohort"] for h in result.history)
    )


def test_federated_cli_prints_the_accountants_epsilon_for_the_whole_run(tmp_path: Path) -> None:
    """Issue 22.4: it printed "9.69 = epsilon per round by the classic bound" (valid below 1, not composed)."""
    from click.testing import CliRunner

    from driftline.cli import main

    args = ["offline", "federated", "--clients", "10", "--rounds", "20", "--dropout", "0.1"]
    result = CliRunner().invoke(main, [*args, "--clip", "1", "--noise-multiplier", "0.5", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    accountant = RDPAccountant()
    accountant.history = [(0.5, 0.9, 20)]  # every client sampled, 10 % drop out: in a round with p = 0.9
    expected = accountant.get_epsilon(1e-5)
    assert expected == pytest.approx(75.8, abs=0.1)  # the figure the check found
    assert f"epsilon {expected:.2f}, delta 1e-05) for the whole run of 20 rounds" in result.output
    assert "classic bound" not in result.output and "bytes per client per round" in result.output
    report = json.loads((tmp_path / "federated.json").read_text())
    assert f"epsilon {expected:.2f}" in report["privacy"] and report["bytes_per_client_per_round"] > 0
