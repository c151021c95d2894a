"""Deployment gate: a candidate model against production on the same holdout, before it takes traffic.

Compared: accuracy and ROC AUC (the candidate may lose at most `max_quality_drop`), the
demographic-parity gap across the sensitive groups (fairlearn's definition; it may grow by at
most `max_fairness_increase`), latency at batch 1 (at most `max_latency_ratio` times
production's), and the candidate's ONNX export against the framework (logits within
`onnx_tolerance`). Each check passes or fails with its numbers; the gate passes when all
pass. `driftline offline gate` exits 1 on a failing gate, so CI/CD can stop a deploy, and
with ``--register-canary`` registers a passing candidate as a canary in the model registry.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.exceptions import ConfigError
from driftline.offline.export import export_onnx, parity
from driftline.offline.train import Dataset, mlp, require_torch


@dataclass(frozen=True)
class Tolerances:
    max_quality_drop: float = 0.01
    max_fairness_increase: float = 0.02
    max_latency_ratio: float = 1.5
    onnx_tolerance: float = 1e-4


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    candidate: float
    production: float
    limit: str


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: tuple[Check, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}

    def markdown(self, candidate: str, production: str) -> str:
        lines = [
            f"# Deployment gate: {candidate} vs {production}",
            "",
            f"**{'PASSED' if self.passed else 'FAILED'}**",
            "",
            "| check | candidate | production | limit | result |",
            "|---|---:|---:|---|---|",
        ]
        for c in self.checks:
            verdict = "pass" if c.passed else "FAIL"
            lines.append(f"| {c.name} | {c.candidate:.4f} | {c.production:.4f} | {c.limit} | {verdict} |")
        return "\n".join(lines) + "\n"


def load_model(path: Path, inputs: int, hidden: int = 64) -> Any:
    """An MLP written by `driftline offline train` (a torch state dict) for `inputs` input columns."""
    torch = require_torch()
    model = mlp(inputs, hidden)
    if not path.is_file():
        raise ConfigError(f"no model at {path}; `driftline offline train` writes model-*.pt files")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise ConfigError(f"{path} is not a torch state dict ({type(exc).__name__}); give a model-*.pt") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        got = ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(state.items())[:3]) if isinstance(state, dict) else ""
        raise ConfigError(
            f"{path} is not the gate's architecture (an MLP of {inputs} inputs, {hidden} hidden units, as "
            f"`offline train` writes){f'; it has {got}' if got else ''}: compare models of the same kind"
        ) from exc
    model.eval()
    return model


def _scores(model: Any, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    torch = require_torch()
    with torch.no_grad():
        probs: npt.NDArray[np.float64] = torch.softmax(model(torch.from_numpy(x)), dim=1)[:, 1].numpy().astype(float)
    return probs


def _latency_ms(model: Any, x: npt.NDArray[np.float32], repeats: int = 200) -> float:
    torch = require_torch()
    row = torch.from_numpy(x[:1])
    with torch.no_grad():
        for _ in range(10):
            model(row)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(row)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def evaluate(model: Any, data: Dataset) -> dict[str, float]:
    from fairlearn.metrics import demographic_parity_difference
    from sklearn.metrics import roc_auc_score

    scores = _scores(model, data.x_test)
    pred = (scores >= 0.5).astype(int)
    return {
        "accuracy": float(np.mean(pred == data.y_test)),
        "roc_auc": float(roc_auc_score(data.y_test, scores)),
        "parity_gap": float(demographic_parity_difference(data.y_test, pred, sensitive_features=data.groups_test)),
        "latency_ms": _latency_ms(model, data.x_test),
    }


def gate(candidate: Any, production: Any, data: Dataset, tol: Tolerances = Tolerances()) -> GateResult:
    c, p = evaluate(candidate, data), evaluate(production, data)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_diff = parity(candidate, export_onnx(candidate, Path(tmp) / "c.onnx", data.x_test.shape[1]), data.x_test)
    checks = (
        Check(
            "accuracy",
            c["accuracy"] >= p["accuracy"] - tol.max_quality_drop,
            c["accuracy"],
            p["accuracy"],
            f">= production - {tol.max_quality_drop:g}",
        ),
        Check(
            "roc_auc",
            c["roc_auc"] >= p["roc_auc"] - tol.max_quality_drop,
            c["roc_auc"],
            p["roc_auc"],
            f">= production - {tol.max_quality_drop:g}",
        ),
        Check(
            "demographic parity gap (age group)",
            c["parity_gap"] <= p["parity_gap"] + tol.max_fairness_increase,
            c["parity_gap"],
            p["parity_gap"],
            f"<= production + {tol.max_fairness_increase:g}",
        ),
        Check(
            "latency ms (batch 1)",
            c["latency_ms"] <= p["latency_ms"] * tol.max_latency_ratio,
            c["latency_ms"],
            p["latency_ms"],
            f"<= {tol.max_latency_ratio:g} x production",
        ),
        Check(
            "ONNX parity (max |logit diff|)",
            onnx_diff <= tol.onnx_tolerance,
            onnx_diff,
            0.0,
            f"<= {tol.onnx_tolerance:g}",
        ),
    )
    return GateResult(all(ch.passed for ch in checks), checks)
