"""Privacy, communication and accuracy side by side, to choose a technique by numbers.

All rows train the same logistic-regression model on the same generated non-IID clients
(``federated.non_iid_clients``) and are scored on the same test set:

* **centralised, no privacy**: clients upload their rows once; no guarantee;
* **centralised DP-SGD** (Opacus, RDP accountant): clients upload their rows once to a
  trusted curator; *record-level* (epsilon, delta), delta = 1/(10 N rows);
* **FedAvg + secure aggregation**: rows never leave the clients; the server sees only
  the sum of masked updates; no formal DP guarantee;
* **FedAvg + secure aggregation + client-level DP**: each participating client clips its
  update to ``clip`` and adds Gaussian noise of std ``sigma x clip``. Epsilon is computed
  by Opacus' RDP accountant for the subsampled Gaussian mechanism with noise multiplier
  sigma (the noise one client adds itself, so the bound holds even if the other clients
  collude), sampling rate = the participation probability, steps = rounds; *client-level*
  (a whole client's data), delta = 1/(10 x clients). The sum of the clients' size weights
  is revealed to the server unnoised (see README).

Communication is counted by the simulation as it runs the protocol
(``federated.SecureAggregation.traffic``): each round the server samples a cohort (each
client with the participation probability); each cohort member uploads one 32-byte public
key and downloads the others' (the Diffie-Hellman exchange the simulation stands in for,
with the cohort only), downloads the model (d + 1 values of 8 bytes) and uploads its
masked update ((d + 1) values of 4 bytes, fixed point mod 2^32, + the size weight); a
survivor reveals 32 bytes per cohort member that dropped out. "Bytes per client per round"
is the mean over cohort members; "bytes per client to target" is everything the rounds up
to the target moved, divided by the number of clients. Rounds to target: the first round
whose test accuracy reaches ``target_ratio`` x the centralised non-private accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.offline.federated import (
    centralized_accuracy,
    client_delta,
    client_epsilon,
    fedavg,
    non_iid_clients,
    predict_proba,
)


@dataclass(frozen=True)
class TradeoffRow:
    technique: str
    guarantee: str  # what one unit of privacy protects: "record", "client" or "none"
    epsilon: float | None
    delta: float | None
    noise_multiplier: float | None
    sample_rate: float | None  # what the accountant was given: records per batch / N, or participation
    steps: int | None
    bytes_per_client_per_round: int  # federated rows: the mean over the clients in a round's cohort
    rounds: int
    rounds_to_target: int | None
    bytes_per_client_to_target: int | None
    accuracy: float


def _dp_sgd(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    test: tuple[Any, Any],
    epsilon: float,
    epochs: int,
    seed: int,
) -> tuple[float, float, float, float, float, int]:
    """Logistic regression with Opacus DP-SGD: (accuracy, epsilon spent, delta, noise multiplier, q, steps)."""
    from opacus import PrivacyEngine

    from driftline.offline.train import require_torch

    torch = require_torch()
    torch.manual_seed(seed)
    model = torch.nn.Linear(x.shape[1], 1)
    data = torch.utils.data.TensorDataset(
        torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    delta = 1.0 / (10 * len(data))
    engine = PrivacyEngine(accountant="rdp")
    model, optimizer, loader = engine.make_private_with_epsilon(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        target_epsilon=epsilon,
        target_delta=delta,
        epochs=epochs,
        max_grad_norm=1.0,
    )
    loss = torch.nn.BCEWithLogitsLoss()
    steps = 0
    for _ in range(epochs):
        for xb, yb in loader:
            if len(xb) == 0:
                continue
            optimizer.zero_grad()
            loss(model(xb).squeeze(1), yb).backward()
            optimizer.step()
            steps += 1
    with torch.no_grad():
        logits = model(torch.from_numpy(test[0].astype(np.float32))).squeeze(1).numpy()
    acc = float(np.mean((logits >= 0) == test[1]))
    sigma = float(optimizer.noise_multiplier)
    return acc, float(engine.get_epsilon(delta)), delta, sigma, 1 / len(loader), epochs * len(loader)


def tradeoff(
    clients: int = 50,
    per_client: int = 200,
    rounds: int = 30,
    participation: float = 0.3,
    noise_multipliers: tuple[float, ...] = (0.7, 1.0, 2.0),
    clip: float = 1.0,
    dp_sgd_epsilons: tuple[float, ...] = (0.5, 2.0),
    target_ratio: float = 0.97,
    seed: int = 0,
    progress: Any = None,
) -> tuple[list[TradeoffRow], float]:
    """The table's rows, and the target accuracy (target_ratio x centralised non-private)."""
    data, test = non_iid_clients(clients, per_client, seed=seed)
    dim = data[0][0].shape[1]
    x = np.vstack([c[0] for c in data])
    y = np.concatenate([c[1] for c in data])
    upload_once = int(x.shape[0] / clients * (dim + 1) * 4)  # a client's rows, once
    pooled = centralized_accuracy(data, test, seed=seed)
    target = target_ratio * pooled
    rows = [
        TradeoffRow(
            "centralised, no privacy", "none", None, None, None, None, None, upload_once, 1, 1, upload_once, pooled
        )
    ]
    tick = progress or (lambda: None)
    tick()
    for eps in dp_sgd_epsilons:
        acc, spent, delta, sigma, q, steps = _dp_sgd(x, y, test, eps, epochs=10, seed=seed)
        ok = acc >= target
        name = f"centralised DP-SGD (target epsilon {eps:g})"
        rows.append(
            TradeoffRow(
                name,
                "record",
                spent,
                delta,
                sigma,
                q,
                steps,
                upload_once,
                1,
                1 if ok else None,
                upload_once if ok else None,
                acc,
            )
        )
        tick()
    delta_c = client_delta(clients)
    for sigma in (0.0, *noise_multipliers):
        result = fedavg(
            data,
            rounds=rounds,
            participation=participation,
            clip=clip if sigma > 0 else None,
            noise_multiplier=sigma,
            test=test,
            seed=seed,
        )
        reached = next((int(h["round"]) for h in result.history if h["accuracy"] >= target), None)
        acc = float(np.mean((predict_proba(result.weights, test[0]) >= 0.5) == test[1]))
        name = "FedAvg + secure aggregation" + (f" + client DP (sigma {sigma:g}, clip {clip:g})" if sigma else "")
        fed_eps = client_epsilon(sigma, participation, rounds, delta_c) if sigma else None
        to_target = sum(h["bytes"] for h in result.history[:reached]) / clients if reached else None
        rows.append(
            TradeoffRow(
                name,
                "client" if sigma else "none",
                fed_eps,
                delta_c if sigma else None,
                sigma or None,
                participation if sigma else None,
                rounds if sigma else None,
                round(result.bytes_per_client_per_round),
                rounds,
                reached,
                round(to_target) if to_target is not None else None,
                acc,
            )
        )
        tick()
    return rows, target
