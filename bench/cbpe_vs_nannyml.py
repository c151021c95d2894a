"""driftline's CBPE against NannyML's on the same data and chunks.

    python -m venv /tmp/nml && /tmp/nml/bin/pip install nannyml statsmodels   # NannyML pins its own stack
    python bench/cbpe_vs_nannyml.py --nannyml-python /tmp/nml/bin/python
    python bench/cbpe_vs_nannyml.py --nannyml-python /tmp/nml/bin/python --multiclass

Data: x ~ N(mean, 1), P(y=1 | x) = sigmoid(2x), the model's score sigmoid(1.2x) (well ranked,
miscalibrated), predicting 1 at score >= 0.5. Reference: 10,000 labelled events at mean 0.
Analysis: 20 chunks of 1,000 events, the mean moving from 0 to 2.5 (covariate shift; no label
used by either estimator). Prints per chunk the estimates of both and the realised value, then
the largest difference between the two estimators and each one's mean absolute error.

--multiclass: three classes, x in R^2 ~ N((mean, 0), I), P(y | x) = softmax(W x), the model's
class scores softmax(0.6 W x) (well ranked, under-confident), predicting the argmax; the same
reference size, chunks and shift. Both estimators calibrate each class one versus the rest;
compared: accuracy and the macro precision, recall, F1 and ROC AUC.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from driftline.metrics.cbpe import Calibration, EstimatedQuality

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")

NANNYML = """
import json, sys
import pandas as pd
import nannyml as nml
ref, ana = pd.read_csv(sys.argv[1]), pd.read_csv(sys.argv[2])
est = nml.CBPE(y_pred_proba="score", y_pred="pred", y_true="y", problem_type="classification_binary",
               metrics=["accuracy", "precision", "recall", "f1", "roc_auc"], chunk_size=1000)
est.fit(ref)
res = est.estimate(ana).filter(period="analysis").to_df()
out = {m: res[(m, "value")].tolist() for m in ["accuracy", "precision", "recall", "f1", "roc_auc"]}
print(json.dumps(out))
"""


NANNYML_MULTICLASS = """
import json, sys
import pandas as pd
import nannyml as nml
ref, ana = pd.read_csv(sys.argv[1]), pd.read_csv(sys.argv[2])
for frame in (ref, ana):
    frame["pred"], frame["y"] = frame["pred"].astype(str), frame["y"].astype(str)
est = nml.CBPE(y_pred_proba={c: f"p{c}" for c in "012"}, y_pred="pred", y_true="y",
               problem_type="classification_multiclass",
               metrics=["accuracy", "precision", "recall", "f1", "roc_auc"], chunk_size=1000)
est.fit(ref)
res = est.estimate(ana).filter(period="analysis").to_df()
out = {m: res[(m, "value")].tolist() for m in ["accuracy", "precision", "recall", "f1", "roc_auc"]}
print(json.dumps(out))
"""
W = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def population_multiclass(n: int, mean: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    x = rng.normal(0.0, 1.0, (n, 2)) + np.array([mean, 0.0])
    truth = softmax(x @ W.T)
    y = (rng.uniform(size=(n, 1)) > np.cumsum(truth, axis=1)).sum(axis=1)
    scores = softmax(0.6 * x @ W.T)
    return {"p0": scores[:, 0], "p1": scores[:, 1], "p2": scores[:, 2], "pred": scores.argmax(axis=1), "y": y}


def realised_multiclass(chunk: dict[str, np.ndarray]) -> dict[str, float]:
    from sklearn import metrics as skm

    y, p = chunk["y"], chunk["pred"]
    proba = np.column_stack([chunk["p0"], chunk["p1"], chunk["p2"]])
    return {
        "accuracy": skm.accuracy_score(y, p),
        "precision": skm.precision_score(y, p, average="macro", zero_division=0),
        "recall": skm.recall_score(y, p, average="macro", zero_division=0),
        "f1": skm.f1_score(y, p, average="macro", zero_division=0),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
    }


def estimate_multiclass(ref: dict[str, np.ndarray], chunks: list[dict[str, np.ndarray]]) -> list[dict[str, float]]:
    from driftline.metrics.cbpe import EstimatedClassQuality, class_calibrations_from

    calibrations = class_calibrations_from({c: ref[f"p{c}"].tolist() for c in "012"}, ref["y"].tolist())
    out = []
    for c in chunks:
        est = EstimatedClassQuality(calibrations)
        est.update_many(["0", "1", "2"], np.column_stack([c["p0"], c["p1"], c["p2"]]), c["pred"].astype(str).tolist())
        got = est.get()
        out.append({m: got["accuracy" if m == "accuracy" else f"{m}_macro"] for m in METRICS})
    return out


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-z)), dtype=np.float64)


def population(n: int, mean: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    x = rng.normal(mean, 1.0, n)
    score = sigmoid(1.2 * x)
    y = (rng.uniform(size=n) < sigmoid(2 * x)).astype(int)
    return {"x": x, "score": score, "pred": (score >= 0.5).astype(int), "y": y}


def realised(chunk: dict[str, np.ndarray]) -> dict[str, float]:
    from sklearn import metrics as skm

    y, p, s = chunk["y"], chunk["pred"], chunk["score"]
    return {
        "accuracy": skm.accuracy_score(y, p),
        "precision": skm.precision_score(y, p),
        "recall": skm.recall_score(y, p),
        "f1": skm.f1_score(y, p),
        "roc_auc": skm.roc_auc_score(y, s),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nannyml-python", required=True, help="A Python with nannyml installed.")
    ap.add_argument("--multiclass", action="store_true", help="Three classes, one versus the rest.")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    make = population_multiclass if args.multiclass else population
    ref = make(10_000, 0.0, rng)
    chunks = [make(1000, float(m), rng) for m in np.linspace(0.0, 2.5, 20)]
    if args.multiclass:
        ours = estimate_multiclass(ref, chunks)
        fields: tuple[str, ...] = ("p0", "p1", "p2", "pred", "y")
    else:
        calibration = Calibration.fit(ref["score"], ref["y"])
        ours = [EstimatedQuality(calibration).update_many(c["score"].tolist(), c["pred"] == 1).get() for c in chunks]
        fields = ("score", "pred", "y")
    with tempfile.TemporaryDirectory() as tmp:

        def dump(name: str, parts: list[dict[str, np.ndarray]]) -> Path:
            path = Path(tmp) / name
            cols = {k: np.concatenate([p[k] for p in parts]) for k in fields}
            rows = zip(*cols.values(), strict=True)
            lines = [",".join(fields)] + [",".join(_cell(v) for v in row) for row in rows]
            path.write_text("\n".join(lines) + "\n")
            return path

        out = subprocess.run(
            [
                args.nannyml_python,
                "-c",
                NANNYML_MULTICLASS if args.multiclass else NANNYML,
                str(dump("ref.csv", [ref])),
                str(dump("ana.csv", chunks)),
            ],
            capture_output=True,
            text=True,
        )
        if out.returncode:
            sys.exit(f"NannyML failed:\n{out.stderr[-3000:]}")
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    truth = [(realised_multiclass if args.multiclass else realised)(c) for c in chunks]
    print("chunk | metric | driftline | NannyML | realised")
    worst = dict.fromkeys(METRICS, 0.0)
    mae_ours = dict.fromkeys(METRICS, 0.0)
    mae_theirs = dict.fromkeys(METRICS, 0.0)
    for i, (o, t) in enumerate(zip(ours, truth, strict=True)):
        for m in METRICS:
            n = theirs[m][i]
            worst[m] = max(worst[m], abs(o[m] - n))
            mae_ours[m] += abs(o[m] - t[m]) / len(chunks)
            mae_theirs[m] += abs(n - t[m]) / len(chunks)
            if m == "accuracy":
                print(f"{i:5d} | {m} | {o[m]:.4f} | {n:.4f} | {t[m]:.4f}")
    print("\nmetric | max |driftline - NannyML| | MAE driftline vs realised | MAE NannyML vs realised")
    for m in METRICS:
        print(f"{m} | {worst[m]:.4f} | {mae_ours[m]:.4f} | {mae_theirs[m]:.4f}")
    sys.stdout.flush()


def _cell(value: np.generic) -> str:
    return repr(float(value)) if isinstance(value, np.floating) else str(int(value))


if __name__ == "__main__":
    main()
