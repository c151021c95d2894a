"""Federated averaging with secure aggregation by pairwise additive masking.

Each pair of clients (i, j) agrees on a seed (in deployment by Diffie-Hellman key
agreement; simulated here by a `KeyAgreement` that hands each pair its seed and never the
server). A client's update is encoded in fixed point modulo 2**32 and masked:

    y_i = x_i + sum_{j > i} PRG(s_ij) - sum_{j < i} PRG(s_ji)   (mod 2**32)

Every mask appears once with + and once with -, so the masks cancel in the sum over all
clients and the server learns the sum of the updates and nothing else: each y_i alone is
uniformly distributed whatever x_i is. When clients drop out after the masks were agreed,
the survivors reveal their seeds shared with the dropped ones, and the server removes
those masks from the survivors' sum. (This is the core of Bonawitz et al. 2017 without its
self-masks and secret sharing, which additionally protect a client that was only late; the
README says so.) As SecAgg's t-out-of-n, the server refuses to unmask a round with fewer than
`threshold` survivors (default: half the clients, rounded up, and never fewer than 2): with
one survivor, the "sum" would be that client's own update. Optional client-level DP: clip each
update's L2 norm and add Gaussian noise before masking.

The model is logistic regression in numpy, so federated training needs no extra packages.

>>> rng = np.random.default_rng(0)
>>> updates = [rng.normal(size=5) for _ in range(4)]
>>> agg = SecureAggregation(4, dim=5, rng=np.random.default_rng(1))
>>> masked = [agg.mask(i, u) for i, u in enumerate(updates)]
>>> bool(np.allclose(agg.unmask_sum(masked, survivors=[0, 1, 2, 3]), sum(updates), atol=1e-3))
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

MOD = 2**32
SCALE = 2**16  # fixed point: 16 fractional bits; |value| * clients must stay below 2**15
# What the simulated protocol puts on the wire, counted where the simulation does each step:
KEY_BYTES = 32  # one public key of the pairwise key agreement (X25519)
SEED_BYTES = 32  # one pairwise secret a survivor reveals for a dropped client
VALUE_BYTES = 4  # one masked value (uint32)
WEIGHT_BYTES = 8  # one model weight downloaded at the start of a round (float64)


def encode(x: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    v = np.round(np.asarray(x, dtype=np.float64) * SCALE).astype(np.int64)
    if np.any(np.abs(v) >= MOD // 4):
        raise ValueError("an update is too large for the fixed-point range; clip it first")
    return (v % MOD).astype(np.uint64)


def decode(y: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    signed = np.where(y >= MOD // 2, y.astype(np.int64) - MOD, y.astype(np.int64))
    return signed.astype(np.float64) / SCALE


class KeyAgreement:
    """Pairwise seeds known to the two clients of each pair only (stands in for Diffie-Hellman)."""

    def __init__(self, clients: int, rng: np.random.Generator):
        self._seeds = {(i, j): int(rng.integers(0, 2**63)) for i in range(clients) for j in range(i + 1, clients)}

    def seed(self, me: int, other: int) -> int:
        return self._seeds[(min(me, other), max(me, other))]


def default_threshold(clients: int) -> int:
    """The fewest survivors a round may be unmasked with: half the clients, rounded up, at least 2."""
    return max(2, math.ceil(clients / 2))


class TooFewSurvivors(ValueError):
    """Unmasking this round would reveal too little aggregation: fewer survivors than the threshold."""


class SecureAggregation:
    def __init__(self, clients: int, dim: int, rng: np.random.Generator, threshold: int | None = None):
        self.clients = clients
        self.dim = dim
        self.threshold = default_threshold(clients) if threshold is None else threshold
        if not 2 <= self.threshold <= clients:
            raise ValueError(f"threshold {self.threshold} must be between 2 and the {clients} clients")
        self._keys = KeyAgreement(clients, rng)  # held by the clients, not by the server
        # Bytes each client sent and received: one public key up, the cohort's other keys down.
        self.traffic = np.full(clients, clients * KEY_BYTES, dtype=np.int64)

    def _prg(self, seed: int) -> npt.NDArray[np.uint64]:
        return np.random.default_rng(seed).integers(0, MOD, self.dim, dtype=np.uint64)

    def mask(self, client: int, update: npt.ArrayLike) -> npt.NDArray[np.uint64]:
        """What client `client` sends: its encoded update plus its pairwise masks, mod 2**32."""
        y = encode(update)
        self.traffic[client] += self.dim * VALUE_BYTES
        for other in range(self.clients):
            if other == client:
                continue
            m = self._prg(self._keys.seed(client, other))
            y = (y + m) % MOD if client < other else (y + MOD - m) % MOD
        return y

    def reveal(self, survivor: int, dropped: Sequence[int]) -> dict[int, int]:
        """A survivor's seeds shared with the dropped clients (sent to the server only after the dropout)."""
        self.traffic[survivor] += len(dropped) * SEED_BYTES
        return {d: self._keys.seed(survivor, d) for d in dropped}

    def unmask_sum(self, masked: Sequence[npt.NDArray[np.uint64]], survivors: Sequence[int]) -> npt.NDArray[np.float64]:
        """The server: sum the survivors' masked updates, remove masks shared with dropped clients, decode.

        Refused (TooFewSurvivors) below `threshold` survivors: the masks of the dropped clients are
        never revealed for such a round, so nothing about any one update leaves it."""
        if len(set(survivors)) < self.threshold:
            raise TooFewSurvivors(
                f"{len(set(survivors))} survivor(s) < threshold {self.threshold}: the round is not unmasked"
            )
        total = np.zeros(self.dim, dtype=np.uint64)
        for y in masked:
            total = (total + y) % MOD
        dropped = [c for c in range(self.clients) if c not in set(survivors)]
        for s in survivors:
            for d, seed in self.reveal(s, dropped).items():
                m = self._prg(seed)
                # survivor s added +m if s < d, -m if s > d: take it back out
                total = (total + MOD - m) % MOD if s < d else (total + m) % MOD
        return decode(total)


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def local_sgd(
    w: npt.NDArray[np.float64],
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    *,
    epochs: int,
    lr: float,
    batch: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    """Logistic regression (bias as the last weight) by minibatch SGD on one client's data."""
    w = w.copy()
    xb = np.hstack([x, np.ones((len(x), 1))])
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            grad = xb[idx].T @ (_sigmoid(xb[idx] @ w) - y[idx]) / len(idx)
            w -= lr * grad
    return w


def predict_proba(w: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return _sigmoid(np.hstack([x, np.ones((len(x), 1))]) @ w)


@dataclass
class FederatedResult:
    weights: npt.NDArray[np.float64]
    history: list[dict[str, float]] = field(default_factory=list)  # per round: accuracy, cohort, survivors, bytes
    dp_sigma: float = 0.0

    @property
    def bytes_per_client_per_round(self) -> float:
        """Mean bytes one cohort member sent and received in a round, as the simulation counted them."""
        cohort = sum(h["cohort"] for h in self.history)
        return sum(h["bytes"] for h in self.history) / cohort if cohort else 0.0


def fedavg(
    clients: Sequence[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    *,
    rounds: int = 20,
    local_epochs: int = 2,
    lr: float = 0.5,
    batch: int = 32,
    participation: float = 1.0,
    dropout: float = 0.0,
    clip: float | None = None,
    noise_multiplier: float = 0.0,
    test: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    seed: int = 0,
    on_round: Callable[[dict[str, float]], None] | None = None,
    min_survivors: int | None = None,
) -> FederatedResult:
    """FedAvg with every round's updates summed by secure aggregation; the server never sees one update.

    Each round the server samples a cohort (each client with probability `participation`), the
    cohort agrees on pairwise keys and downloads the model, and each member drops out with
    probability `dropout` after the keys are agreed. Survivors send (n_i * delta_i, n_i) masked,
    so the server can weight by data size without learning any n_i. With `clip`, each delta's L2
    norm is clipped to `clip` before weighting and Gaussian noise of std `noise_multiplier * clip`
    is added by each client. A round with fewer survivors than `min_survivors` (default:
    `default_threshold` of the cohort) is refused, never unmasked, and leaves the model as it
    was (history entry ``skipped`` = 1). Every round records the bytes the protocol moved.
    """
    rng = np.random.default_rng(seed)
    dim = clients[0][0].shape[1] + 1
    w = np.zeros(dim)
    result = FederatedResult(w, dp_sigma=noise_multiplier * (clip or 0.0))
    sizes = np.array([len(x) for x, _ in clients], dtype=np.float64)
    scale = float(sizes.max())
    for r in range(rounds):
        cohort = [i for i in range(len(clients)) if rng.uniform() < participation]
        survivors = [k for k in range(len(cohort)) if rng.uniform() >= dropout]  # positions in the cohort
        threshold = default_threshold(len(cohort)) if min_survivors is None else min_survivors
        entry = {"round": float(r + 1), "cohort": float(len(cohort)), "survivors": float(len(survivors))}
        if len(cohort) < max(2, threshold):  # too few even to agree keys: nothing is sent
            entry.update(skipped=1.0, bytes=float(len(cohort) * dim * WEIGHT_BYTES))
        else:
            agg = SecureAggregation(len(cohort), dim + 1, np.random.default_rng(rng.integers(0, 2**63)), threshold)
            masked = []
            for k in survivors:
                x, y = clients[cohort[k]]
                delta = local_sgd(w, x, y, epochs=local_epochs, lr=lr, batch=batch, rng=rng) - w
                if clip is not None:
                    delta = delta * min(1.0, clip / max(float(np.linalg.norm(delta)), 1e-12))
                    if noise_multiplier > 0:
                        delta = delta + rng.normal(0.0, noise_multiplier * clip, dim)
                weight = sizes[cohort[k]] / scale  # in (0, 1]: keeps the fixed-point values small
                masked.append(agg.mask(k, np.concatenate([weight * delta, [weight]])))
            try:
                total = agg.unmask_sum(masked, survivors)
                w = w + total[:-1] / total[-1]
                entry["skipped"] = 0.0
            except TooFewSurvivors:  # refused, as SecAgg does: the model stays as it was
                entry["skipped"] = 1.0
            entry["bytes"] = float(agg.traffic.sum() + len(cohort) * dim * WEIGHT_BYTES)
        if test is not None:
            entry["accuracy"] = float(np.mean((predict_proba(w, test[0]) >= 0.5) == test[1]))
        result.history.append(entry)
        if on_round is not None:
            on_round(entry)
    result.weights = w
    return result


def non_iid_clients(
    n_clients: int, per_client: int, features: int = 8, seed: int = 0
) -> tuple[
    list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
]:
    """Generated data: one true linear rule, clients with shifted feature means and skewed label shares."""
    rng = np.random.default_rng(seed)
    true_w = rng.normal(size=features)

    def sample(n: int, shift: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        x = rng.normal(size=(n, features)) + shift
        y = (x @ true_w + rng.normal(0, 0.5, n) > shift @ true_w * 0.5).astype(np.float64)
        return x, y

    clients = []
    for _ in range(n_clients):
        size = int(per_client * rng.uniform(0.3, 1.7))
        clients.append(sample(max(size, 20), rng.normal(0, 1.0, features)))
    test = sample(4000, np.zeros(features))
    return clients, test


def centralized_accuracy(
    clients: Sequence[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]],
    test: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
    epochs: int = 10,
    seed: int = 0,
) -> float:
    """The same model trained on all clients' data pooled: the reference FedAvg is compared with."""
    x = np.vstack([c[0] for c in clients])
    y = np.concatenate([c[1] for c in clients])
    w = local_sgd(np.zeros(x.shape[1] + 1), x, y, epochs=epochs, lr=0.5, batch=32, rng=np.random.default_rng(seed))
    return float(np.mean((predict_proba(w, test[0]) >= 0.5) == test[1]))


def client_delta(clients: int) -> float:
    """The delta of client-level DP: well below one in the number of clients."""
    return min(1e-5, 1.0 / (10 * clients))


def client_epsilon(noise_multiplier: float, participation: float, rounds: int, delta: float) -> float:
    """Client-level epsilon of a whole run: `rounds` subsampled Gaussian rounds (Opacus RDP accountant).

    A client takes part in a round with probability `participation` x (1 - dropout) at most,
    independently of the data, and adds noise of `noise_multiplier` x clip itself, so the
    bound holds even if the other clients collude. Every round is counted, refused ones too.
    """
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, participation, rounds)]
    return float(accountant.get_epsilon(delta))


def client_dp_note(noise_multiplier: float, participation: float, rounds: int, clients: int) -> str:
    if noise_multiplier <= 0:
        return "no DP noise on client updates: no formal privacy guarantee"
    delta = client_delta(clients)
    eps = client_epsilon(noise_multiplier, participation, rounds, delta)
    return (
        f"client-level (epsilon {eps:.2f}, delta {delta:.0e}) for the whole run of {rounds} rounds: Opacus' RDP "
        f"accountant, noise multiplier {noise_multiplier:g}, a client in a round with probability "
        f"{participation:.2f}"
    )
