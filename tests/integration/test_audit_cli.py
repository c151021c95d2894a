"""`driftline audit` on files: clean data passes, each injected problem is flagged with the right number,
the suspects are mostly the flipped labels, augmentation fixes the balance with flagged rows; and the
same audit on a production window read from ClickHouse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer

from driftline.cli import main


def frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    df = x.iloc[:, :8].copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["label"] = np.where(y == 1, "benign", "malignant")
    rng = np.random.default_rng(seed)
    df["region"] = rng.choice(["north", "south"], size=len(df))
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return df.iloc[:280].reset_index(drop=True), df.iloc[280:].reset_index(drop=True)


def run(args: list[str], code: int) -> str:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_clean_data_passes_and_each_injected_problem_is_flagged(tmp_path: Path) -> None:
    reference, current = frames()
    reference.to_csv(tmp_path / "ref.csv", index=False)
    current.to_csv(tmp_path / "clean.csv", index=False)
    common = [
        "--reference",
        str(tmp_path / "ref.csv"),
        "--label",
        "label",
        "--segment",
        "region",
        "--min-class-share",
        "0.2",
        "--max-label-noise",
        "0.05",
    ]
    text = run(["audit", str(tmp_path / "clean.csv"), *common, "--out", str(tmp_path / "clean")], code=0)
    assert "**PASSED**" in text

    bad = current.copy()
    rng = np.random.default_rng(1)
    n = len(bad)
    missing = rng.choice(n, size=30, replace=False)
    bad.loc[missing, "mean_texture"] = np.nan  # 30 missing values
    bad["mean_area"] = bad["mean_area"] * 1.6  # skew
    flips = rng.choice(n, size=int(0.1 * n), replace=False)
    bad.loc[flips, "label"] = np.where(bad.loc[flips, "label"] == "benign", "malignant", "benign")
    near = bad.iloc[:5].copy()
    near["mean_radius"] = near["mean_radius"] * 1.0001  # near-duplicates: differ in the 4th digit
    bad = pd.concat([bad, bad.iloc[10:16], near], ignore_index=True)  # 6 exact duplicates, 5 near
    bad.to_csv(tmp_path / "bad.csv", index=False)
    near_keys = ["--near-duplicates", "mean_radius,mean_texture,label", "--tolerance", "0.001"]
    text = run(["audit", str(tmp_path / "bad.csv"), *common, *near_keys, "--out", str(tmp_path / "bad")], code=1)
    assert "**FAILED**" in text
    report = json.loads((tmp_path / "bad" / "audit.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["missing"]["passed"] and checks["missing"]["value"] == pytest.approx(30 / len(bad))
    assert not checks["skew"]["passed"] and "mean_area" in checks["skew"]["detail"]
    assert report["duplicates"]["exact"] == 6 and report["duplicates"]["near"] == 5
    assert not checks["label_noise"]["passed"]
    suspects = {e["row"] for e in report["noise"]["examples"]}
    flipped = set(flips.tolist())
    assert len(suspects & flipped) >= 0.7 * len(suspects)  # shown suspects are mostly the flipped labels
    assert checks["sampling_bias"]["passed"] and checks["class_balance"]["passed"]
    assert "<svg" in (tmp_path / "bad" / "audit.html").read_text()


def test_sampling_bias_guideline_and_augmentation(tmp_path: Path) -> None:
    _, current = frames()
    skewed = pd.concat([current[current.region == "north"], current[current.region == "south"].iloc[:20]])
    scarce = pd.concat([skewed[skewed.label == "benign"], skewed[skewed.label == "malignant"].iloc[:8]])
    scarce.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "g.yaml").write_text(
        "task: tumour\nversion: v1\nlabels:\n  - {name: benign, definition: not cancer}\n"
        "  - {name: malign, definition: cancer}\n"
    )
    text = run(
        [
            "audit",
            str(tmp_path / "d.csv"),
            "--label",
            "label",
            "--segment",
            "region",
            "--population",
            "north=0.5,south=0.5",
            "--guideline",
            str(tmp_path / "g.yaml"),
            "--min-class-share",
            "0.1",
            "--augment",
            str(tmp_path / "aug.csv"),
            "--augment-target",
            "0.2",
            "--max-synthetic",
            "0.3",
            "--out",
            str(tmp_path / "r"),
        ],
        code=1,
    )
    report = json.loads((tmp_path / "r" / "audit.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["sampling_bias"]["passed"] and report["segments"]["observed"]["south"] < 0.2
    assert not checks["guideline"]["passed"] and "malignant" in checks["guideline"]["detail"]
    assert not checks["class_balance"]["passed"]
    aug = pd.read_csv(tmp_path / "aug.csv")
    assert aug["synthetic"].sum() == report["augmentation"]["synthetic"] > 0
    assert aug["synthetic"].mean() <= 0.3 and (aug.label == "malignant").mean() >= 0.2
    assert (aug.loc[aug.synthetic, "label"] == "malignant").all()
    assert len(aug[~aug.synthetic]) == len(scarce)
    assert "After augmentation" in text


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    assert "does not exist" in run(["audit", str(tmp_path / "nope.csv")], code=2)
    pd.DataFrame({"a": [1, 2]}).to_csv(tmp_path / "a.csv", index=False)
    assert "column 'label' is not in the data" in run(["audit", str(tmp_path / "a.csv"), "--label", "label"], code=2)
    assert "give DATA" in run(["audit"], code=2)


_WRITE = """
import sys, time
import numpy as np
from driftline.config import Settings
from driftline.events import Label, Prediction
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
from driftline.streams.labeling_requests import request_store, utc
sink = ClickHouseSink(Settings(clickhouse=sys.argv[1]))
sink.migrate()
rng = np.random.default_rng(0)
t0 = time.time() - 7200
preds, labels = [], []
for i in range(400):
    y = int(rng.integers(0, 2))
    score = float(np.clip(rng.normal(0.8 if y else 0.2, 0.1), 0, 1))
    preds.append(Prediction(event_id=f"p{i}", model="credit", version="v1", ts=t0 + i * 10,
                            features={"income": float(rng.normal(50 + 10 * y, 5)), "plan": "ab"[i % 2]},
                            prediction=int(score >= 0.5), score=score, attributes={"region": "ns"[i % 2]}))
    label = 1 - y if i % 25 == 0 else y  # every 25th label is wrong: 16 of them
    labels.append(Label(event_id=f"p{i}", label=label, ts=t0 + i * 10 + 60, annotator="ann", guideline_version="v1"))
    if 0 < i < 40 and i % 25:  # a second annotator agreeing with the first on 38 items
        labels.append(Label(event_id=f"p{i}", label=label, ts=t0 + i * 10 + 90, annotator="bob"))
sink.write(SinkBatch(preds, labels, [], token="w"))
request_store(sink.client, "driftline")([[f"p{i}", "credit", "v1", utc(t0 + i * 10), utc(t0), "margin", 0.5,
                                          utc(time.time())] for i in range(0, 400, 40)])
"""


def test_labels_commands_and_the_window_audit_on_clickhouse(tmp_path: Path) -> None:
    import subprocess
    import sys

    dsn = f"chdb://{tmp_path}/ch"
    subprocess.run([sys.executable, "-c", _WRITE, dsn], check=True, timeout=120)

    def cli(*args: str, code: int = 0) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "driftline", *args, "--clickhouse", dsn], capture_output=True, text=True, timeout=180
        )
        assert out.returncode == code, out.stdout + out.stderr
        return out.stdout + out.stderr

    guide = tmp_path / "g.yaml"
    guide.write_text(
        "task: credit\nversion: v1\nauthor: risk\nlabels:\n  - {name: '0', definition: repaid}\n"
        "  - {name: '1', definition: defaulted}\nexamples:\n  - {item: {income: 20}, label: '1'}\n"
    )
    assert "credit v1: published" in cli("labels", "guideline", "publish", str(guide))
    assert "already published (same content)" in cli("labels", "guideline", "publish", str(guide))
    guide.write_text(guide.read_text().replace("repaid", "repaid on time"))
    assert "publish the change as a new version" in cli("labels", "guideline", "publish", str(guide), code=2)
    shown = cli("labels", "guideline", "show", "credit")
    assert "| 0 | repaid |" in shown and "versions: v1" in shown
    suspects = cli("labels", "suspects", "--model", "credit", "--confidence", "0.7")
    wrong = {f"p{i}" for i in range(0, 400, 25)}
    listed = {line.split()[0] for line in suspects.splitlines() if line.startswith("p")}
    assert listed and len(listed & wrong) >= 0.8 * len(listed)
    # Issue 22.7: an unknown model was "no confident disagreements", exit 0, as for a clean model.
    unknown = cli("labels", "suspects", "--model", "credt", code=2)
    assert "unknown model 'credt'" in unknown and "(models: credit)" in unknown
    agreement = cli("labels", "agreement", "--model", "credit")
    assert "2 annotators, 400 items (38 with two or more labels)" in agreement
    assert "Krippendorff's alpha (nominal): 1.000" in agreement and "ann|bob" in agreement
    assert "unknown model 'x'" in cli("labels", "agreement", "--model", "x", code=2)
    assert "10 asked, 10 answered (100%)" in cli("labels", "requests", "--model", "credit")
    review = cli("review", "--model", "credit", "--since", "1d", "--out", str(tmp_path / "rev"))
    assert "# Model review: credit" in review and "## Suggested actions" in review
    assert len(list((tmp_path / "rev").glob("review-credit-*.html"))) == 1
    assert "--until '2026-13-01' is not an ISO time" in cli(
        "review", "--model", "credit", "--until", "2026-13-01", code=2
    )
    window = cli(
        "audit",
        "--model",
        "credit",
        "--since",
        "2000-01-01",
        "--until",
        "2100-01-01",
        "--max-label-noise",
        "0.02",
        "--out",
        str(tmp_path / "w"),
        code=1,
    )
    report = json.loads((tmp_path / "w" / "audit.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert report["rows"] == 400 and "the model's scores (score)" in checks["label_noise"]["detail"]
    assert not checks["label_noise"]["passed"], window
