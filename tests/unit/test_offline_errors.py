"""Issue 22.7: offline commands given the wrong file say what is wrong in one line and exit 2, no traceback;
`offline hybrid --threshold` shows in the report without `--broker`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.offline.train import feature_names, mlp, require_torch


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A dataset snapshot with the keys `offline train` writes (random numbers: no model is trained here)."""
    rng = np.random.default_rng(0)
    d = len(feature_names())
    path = tmp_path / "dataset.npz"
    np.savez(
        path,
        x_train=rng.normal(size=(50, d)).astype(np.float32),
        y_train=rng.integers(0, 2, 50),
        x_test=rng.normal(size=(20, d)).astype(np.float32),
        y_test=rng.integers(0, 2, 20),
        groups_train=np.array(["<40"] * 50),
        groups_test=np.array(["<40"] * 20),
        num_mean=np.zeros(6),
        num_std=np.ones(6),
    )
    return path


def one_line_error(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.output.startswith("driftline: error: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output
    return result.output


def test_gate_with_a_model_of_another_architecture(snapshot: Path) -> None:
    torch = require_torch()
    d = len(feature_names())
    production = snapshot.parent / "model-baseline.pt"
    torch.save(mlp(d).state_dict(), production)
    student = snapshot.parent / "model-student.pt"  # the distilled student: 16 hidden units, not 64
    torch.save(mlp(d, 16).state_dict(), student)
    args = ["offline", "gate", "--production", str(production), "--data", str(snapshot)]
    text = one_line_error([*args, "--candidate", str(student)])
    assert "is not the gate's architecture (an MLP of 40 inputs, 64 hidden units" in text
    notes = snapshot.parent / "notes.txt"
    notes.write_text("not a model")
    assert "is not a torch state dict" in one_line_error([*args, "--candidate", str(notes)])


@pytest.mark.parametrize("content", [b"a,b\n1,2\n", b"", b"PK\x03\x04broken"])
def test_distill_given_a_file_that_is_not_a_snapshot(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    text = one_line_error(["offline", "distill", "--data", str(path)])
    assert "is not a dataset snapshot" in text and "offline train --out DIR" in text


def test_a_snapshot_missing_arrays_is_named(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, x_train=np.zeros((2, 2)))
    assert "no y_train, x_test" in one_line_error(["offline", "fairness", "--data", str(path)])


def test_hybrid_report_shows_the_chosen_threshold() -> None:
    from driftline.offline.hybrid import THRESHOLDS, curve
    from driftline.offline.reports import hybrid_report

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    edge = np.clip(y * 0.6 + rng.uniform(0, 0.4, 500), 0, 1)
    server = np.where(y == 1, 0.9, 0.1)
    texts = {}
    for t in (0.75, 0.9):
        points = curve(edge, server, y, 0.01, 1.0, (*THRESHOLDS, t))
        out = Path(f"/tmp/driftline-hybrid-{t}")
        files = hybrid_report(out, points, 0.01, 1.0, t)
        texts[t] = files.markdown.read_text()
        assert f"At the chosen threshold {t:g} (`--threshold`)" in texts[t]
        assert f"| **{t:g}** (chosen) |" in texts[t]
    assert texts[0.75] != texts[0.9]
    assert len(curve(edge, server, y, 0.01, 1.0, (*THRESHOLDS, 0.9))) == len(THRESHOLDS)  # no duplicate row
