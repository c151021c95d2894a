"""Tabular training, with a non-private baseline and differentially private runs (Opacus DP-SGD).

Data comes from a generator that ships with River (``synth.Agrawal``, the loan-approval
stream the demo monitors), so nothing is downloaded. Categorical columns are one-hot
encoded, numeric ones standardised with the training split's statistics.

The private runs use Opacus's `make_private_with_epsilon`: for a target epsilon, a delta
below 1/N (here 1/(10 N)), the clipping norm and the number of epochs, Opacus finds the
noise multiplier, and its accountant (RDP by default here, named in the report) reports the
epsilon actually spent.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.exceptions import DriftlineError

#: Each categorical column's values as River's Agrawal generator draws them (randint, both ends included):
#: elevel 0-4, car 1-20, zipcode 0-8. One one-hot column per value, named `col=value`.
AGRAWAL_CATEGORICAL: dict[str, range] = {"elevel": range(0, 5), "car": range(1, 21), "zipcode": range(0, 9)}
AGRAWAL_NUMERIC = ("salary", "commission", "age", "hvalue", "hyears", "loan")


def require_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise DriftlineError("the offline module needs its extra: pip install 'driftline[offline]'") from None
    return torch


@dataclass
class Dataset:
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]
    feature_names: list[str]
    raw_train: dict[str, list[Any]]  # the training split before encoding (for the reference profile)
    groups_train: npt.NDArray[np.str_]  # sensitive attribute: age group (<40, 40-59, 60+)
    groups_test: npt.NDArray[np.str_]
    num_mean: npt.NDArray[np.float64]  # standardisation of the numeric columns (training split)
    num_std: npt.NDArray[np.float64]


def encode_rows(
    rows: list[dict[str, Any]], mean: npt.NDArray[np.float64], std: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """Raw Agrawal-like feature rows (e.g. read back from ClickHouse) encoded as the training data was."""
    numeric = np.array([[float(r.get(c) or 0.0) for c in AGRAWAL_NUMERIC] for r in rows], dtype=np.float64)
    parts = [(numeric - mean) / std]
    for col, values in AGRAWAL_CATEGORICAL.items():
        parts.append(one_hot([_code(r.get(col)) for r in rows], values))
    return np.hstack(parts).astype(np.float32)


def _code(value: Any) -> int:
    """A category as read back (a number, or its text as ClickHouse stores it); -1 when missing or unreadable."""
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return -1


def one_hot(codes: list[int], values: range) -> npt.NDArray[np.float64]:
    """One column per value; a value outside the range sets none (it is unknown, not the nearest one).

    >>> one_hot([1, 20, 21], range(1, 21)).argmax(axis=1).tolist(), float(one_hot([21], range(1, 21)).sum())
    ([0, 19, 0], 0.0)
    """
    c = np.asarray(codes, dtype=np.int64) - values.start
    out = np.zeros((c.size, len(values)))
    ok = (c >= 0) & (c < len(values))
    out[np.nonzero(ok)[0], c[ok]] = 1.0
    return out


def feature_names() -> list[str]:
    return list(AGRAWAL_NUMERIC) + [f"{c}={v}" for c, values in AGRAWAL_CATEGORICAL.items() for v in values]


def agrawal(n: int = 12_000, function: int = 2, seed: int = 7, test_share: float = 0.25) -> Dataset:
    """River's Agrawal loan-approval data, encoded for a neural network; a stratified-enough random split."""
    from river.datasets import synth

    rows = list(synth.Agrawal(classification_function=function, seed=seed, balance_classes=True).take(n))
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    cut = int(n * (1 - test_share))
    train_idx, test_idx = order[:cut], order[cut:]
    numeric = np.array([[float(x[c]) for c in AGRAWAL_NUMERIC] for x, _ in rows])
    mean, std = numeric[train_idx].mean(axis=0), numeric[train_idx].std(axis=0) + 1e-9
    parts = [(numeric - mean) / std]
    for col, values in AGRAWAL_CATEGORICAL.items():
        parts.append(one_hot([int(x[col]) for x, _ in rows], values))
    names = feature_names()
    x = np.hstack(parts).astype(np.float32)
    y = np.array([int(label) for _, label in rows], dtype=np.int64)
    raw: dict[str, list[Any]] = {c: [float(rows[i][0][c]) for i in train_idx] for c in AGRAWAL_NUMERIC}
    raw.update({c: [str(rows[i][0][c]) for i in train_idx] for c in AGRAWAL_CATEGORICAL})
    ages = np.array([float(x["age"]) for x, _ in rows])
    groups = np.where(ages < 40, "<40", np.where(ages < 60, "40-59", "60+"))
    return Dataset(
        x[train_idx], y[train_idx], x[test_idx], y[test_idx], names, raw, groups[train_idx], groups[test_idx], mean, std
    )


def load_dataset(path: Path) -> Dataset:
    """A dataset snapshot written by `driftline offline train` (dataset.npz)."""
    if not path.is_file():
        raise DriftlineError(f"no dataset snapshot at {path}; run `driftline offline train --out {path.parent}` first")
    needed = ("x_train", "y_train", "x_test", "y_test", "groups_train", "groups_test", "num_mean", "num_std")
    try:
        z = np.load(path, allow_pickle=False)
        missing = [k for k in needed if k not in getattr(z, "files", ())]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise DriftlineError(
            f"{path} is not a dataset snapshot (not an .npz archive); `driftline offline train --out DIR` "
            "writes DIR/dataset.npz"
        ) from None
    if missing:
        raise DriftlineError(f"{path} is not a dataset snapshot of `driftline offline train`: no {', '.join(missing)}")
    return Dataset(
        z["x_train"],
        z["y_train"],
        z["x_test"],
        z["y_test"],
        feature_names(),
        {},
        z["groups_train"],
        z["groups_test"],
        z["num_mean"],
        z["num_std"],
    )


def mlp(inputs: int, hidden: int = 64) -> Any:
    nn = require_torch().nn
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)
    )


@dataclass
class TrainResult:
    model: Any
    accuracy: float
    seconds: float
    epsilon: float | None = None  # spent, as the accountant reports it
    target_epsilon: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    accountant: str | None = None
    sample_rate: float | None = None
    steps: int | None = None


def accuracy(model: Any, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]) -> float:
    torch = require_torch()
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    return float(np.mean(pred == y))


def train(
    data: Dataset,
    *,
    epochs: int = 8,
    batch: int = 256,
    lr: float = 0.01,
    hidden: int = 64,
    target_epsilon: float | None = None,
    max_grad_norm: float = 1.0,
    accountant: str = "rdp",
    seed: int = 0,
) -> TrainResult:
    """Train the MLP; with `target_epsilon`, privately with DP-SGD."""
    torch = require_torch()
    torch.manual_seed(seed)
    model = mlp(data.x_train.shape[1], hidden)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train))
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    engine = None
    delta = 1.0 / (10 * len(dataset))
    if target_epsilon is not None:
        from opacus import PrivacyEngine

        engine = PrivacyEngine(accountant=accountant)
        model, optimizer, loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=target_epsilon,
            target_delta=delta,
            epochs=epochs,
            max_grad_norm=max_grad_norm,
        )
    loss_fn = torch.nn.CrossEntropyLoss()
    started = time.perf_counter()
    steps = 0
    for _ in range(epochs):
        for xb, yb in loader:
            if len(xb) == 0:
                continue  # Poisson sampling can draw an empty batch
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
            steps += 1
    seconds = time.perf_counter() - started
    model.eval()
    result = TrainResult(model, accuracy(model, data.x_test, data.y_test), seconds)
    if engine is not None:
        result.epsilon = float(engine.get_epsilon(delta))
        result.target_epsilon = target_epsilon
        result.delta = delta
        result.noise_multiplier = float(optimizer.noise_multiplier)
        result.max_grad_norm = max_grad_norm
        result.accountant = accountant
        result.sample_rate = 1 / len(loader)
        result.steps = steps
        result.model = model._module  # the plain module inside Opacus's wrapper
    return result
