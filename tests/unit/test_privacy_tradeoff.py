"""The privacy trade-off table: its epsilons are the accountant's, its bytes follow the stated formula."""

from __future__ import annotations

import math

import pytest
from opacus.accountants import RDPAccountant

from driftline.offline.tradeoff import KEY_BYTES, round_bytes, tradeoff


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
    assert all(r.delta == pytest.approx(1 / 200) and r.sample_rate == 0.5 and r.steps == 8 for r in fed)
    d = 8  # features of the generated clients
    assert all(r.bytes_per_client_per_round == (d + 2) * 4 + (d + 1) * 8 + 9 * KEY_BYTES for r in rows[2:])
    assert round_bytes(d, 1.0) == (d + 2) * 4 + (d + 1) * 8
    plain = by["FedAvg + secure aggregation"]
    if plain.rounds_to_target is not None:
        assert plain.bytes_per_client_to_target == math.floor(
            plain.bytes_per_client_per_round * 0.5 * plain.rounds_to_target
        )
    assert 0.5 < target < 1 and all(0 <= r.accuracy <= 1 for r in rows)
