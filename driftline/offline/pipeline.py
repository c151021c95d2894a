"""`driftline offline train`: baseline, private runs, edge export, reference profile, report, lineage.

One command, every artefact hashed and linked: the dataset snapshot, the baseline model,
each private model, the ONNX files, the reference profile (the format the streaming engine
compares against) and the report (HTML with charts, plus JSON).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from driftline.metrics.profiles import ReferenceProfile
from driftline.offline.export import Variant, edge_variants
from driftline.offline.spread import Spread
from driftline.offline.train import TrainResult, agrawal, require_torch, train
from driftline.reports.charts import Series, svg_chart
from driftline.reports.page import write_report
from driftline.sinks.lineage import Artefact, model_card, record
from driftline.sinks.profiles import write_artifact


def run_training(
    out: Path,
    *,
    rows: int = 12_000,
    epochs: int = 8,
    epsilons: tuple[float, ...] = (0.5, 1.0, 2.0, 8.0),
    model_name: str = "loan-approval",
    version: str = "offline-1",
    quiet: bool = False,
    seeds: int = 3,
) -> dict[str, Any]:
    """Train, export and report. Every accuracy is also measured over `seeds` training seeds (model
    initialisation, batch sampling and DP noise; the data split is fixed) and reported as mean, sd and
    range; the files written are seed 0's models."""
    torch = require_torch()
    out.mkdir(parents=True, exist_ok=True)
    # disable=None: no bar when stderr is not a terminal (redirected logs get no carriage returns)
    steps = tqdm(total=3 + len(epsilons), desc="offline train", disable=True if quiet else None)
    data = agrawal(rows)
    np.savez_compressed(
        out / "dataset.npz",
        x_train=data.x_train,
        y_train=data.y_train,
        x_test=data.x_test,
        y_test=data.y_test,
        groups_train=data.groups_train,
        groups_test=data.groups_test,
        num_mean=data.num_mean,
        num_std=data.num_std,
    )
    source = {"generator": "river.synth.Agrawal(function=2)", "rows": rows, "features": len(data.feature_names)}
    dataset = record(out / "dataset.npz", "dataset", params=source)
    profile = ReferenceProfile.build(
        model_name, version, data.raw_train, kinds={c: "categorical" for c in ("elevel", "car", "zipcode")}
    )
    profile_art = record(write_artifact(profile, out / "reference-profile.json"), "profile", parents=[dataset])
    steps.update(1)
    baseline = train(data, epochs=epochs)
    spreads = {"baseline": _over_seeds(data, baseline.accuracy, seeds, epochs=epochs)}
    torch.save(baseline.model.state_dict(), out / "model-baseline.pt")
    model_art = record(
        out / "model-baseline.pt",
        "model",
        params={"epochs": epochs, "hidden": 64, "private": False},
        metrics={"accuracy": baseline.accuracy},
        parents=[dataset],
    )
    steps.update(1)
    private: list[TrainResult] = []
    artefacts: list[Artefact] = [dataset, profile_art, model_art]
    for eps in epsilons:
        result = train(data, epochs=epochs, target_epsilon=eps)
        spreads[f"{eps:g}"] = _over_seeds(data, result.accuracy, seeds, epochs=epochs, target_epsilon=eps)
        path = out / f"model-dp-eps{eps:g}.pt"
        torch.save(result.model.state_dict(), path)
        artefacts.append(
            record(
                path,
                "model",
                parents=[dataset],
                metrics={"accuracy": result.accuracy, "epsilon_spent": result.epsilon},
                params={
                    "target_epsilon": eps,
                    "delta": result.delta,
                    "accountant": result.accountant,
                    "noise_multiplier": result.noise_multiplier,
                    "max_grad_norm": result.max_grad_norm,
                    "epochs": epochs,
                },
            )
        )
        private.append(result)
        steps.update(1)
    variants = edge_variants(baseline.model, data, out)
    for v in variants:
        if v.path != Path(""):
            artefacts.append(
                record(
                    v.path,
                    "onnx",
                    name=v.name,
                    parents=[model_art],
                    metrics={
                        "accuracy": v.accuracy,
                        "size_bytes": v.size_bytes,
                        "parity_max_abs": v.parity,
                        **v.latency,
                    },
                )
            )
    steps.update(1)
    summary = _summary(baseline, private, variants, spreads)
    files = write_report(out, "report", _markdown(summary), [_chart(summary)], summary)
    report_art = record(files.html, "report", parents=[a.artefact_id for a in artefacts])
    (out / "MODEL_CARD.md").write_text(model_card(model_art, [model_art, dataset]))
    steps.close()
    summary["artefacts"] = {a.name: a.artefact_id for a in [*artefacts, report_art]}
    files.json.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return summary


def _over_seeds(data: Any, first: float, seeds: int, **kwargs: Any) -> Spread:
    """The accuracy of seed 0 (already trained) and of seeds 1 .. seeds-1, as a spread."""
    return Spread.of([first, *(train(data, seed=s, **kwargs).accuracy for s in range(1, seeds))])


def _summary(
    baseline: TrainResult, private: list[TrainResult], variants: list[Variant], spreads: dict[str, Spread]
) -> dict[str, Any]:
    fp32 = next(v for v in variants if v.name == "onnx fp32")
    return {
        "baseline": {
            "accuracy": baseline.accuracy,
            "train_seconds": baseline.seconds,
            "accuracy_over_seeds": asdict(spreads["baseline"]),
        },
        "private": [
            {
                "accuracy_over_seeds": asdict(spreads[f"{r.target_epsilon:g}"]),
                **{
                    k: getattr(r, k)
                    for k in (
                        "target_epsilon",
                        "epsilon",
                        "delta",
                        "noise_multiplier",
                        "max_grad_norm",
                        "accountant",
                        "sample_rate",
                        "steps",
                        "accuracy",
                        "seconds",
                    )
                },
            }
            for r in private
        ],
        "edge": [{**asdict(v), "path": str(v.path)} for v in variants],
        "notes": _notes(private, variants, fp32, spreads),
    }


def _notes(private: list[TrainResult], variants: list[Variant], fp32: Variant, spreads: dict[str, Spread]) -> list[str]:
    notes = []
    for r in private:
        notes.append(
            f"DP-SGD at epsilon {r.epsilon:.2f} (delta {r.delta:.1e}, {r.accountant} accountant, noise "
            f"{r.noise_multiplier:.2f}, clip {r.max_grad_norm:g}): accuracy "
            f"{spreads[f'{r.target_epsilon:g}'].text()} vs {spreads['baseline'].text()} without privacy"
        )
    for v in variants:
        if "int8" in v.name:
            single = v.latency["batch=1,threads=1"] / fp32.latency["batch=1,threads=1"]
            bulk = v.latency["batch=1024,threads=1"] / fp32.latency["batch=1024,threads=1"]
            verdict = (
                "does not pay at batch 1 (the model is tiny: quantize/dequantize overhead dominates)"
                if (single >= 1.0)
                else "is faster at batch 1"
            )
            notes.append(
                f"{v.name}: {v.size_bytes / fp32.size_bytes:.0%} of the fp32 size, latency x{single:.2f} "
                f"at batch 1 and x{bulk:.2f} at batch 1024 (1 thread); int8 {verdict}; accuracy "
                f"{v.accuracy - fp32.accuracy:+.4f}"
            )
    return notes


def _parity(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _chart(summary: dict[str, Any]) -> str:
    points = [(f"{r['epsilon']:06.2f}", r["accuracy"]) for r in summary["private"]]
    return svg_chart(
        "Accuracy vs epsilon spent (DP-SGD)",
        [
            Series("private", points),
            Series("no privacy", [(x, summary["baseline"]["accuracy"]) for x, _ in points]),
        ],
        y_label="accuracy",
    )


def _markdown(summary: dict[str, Any]) -> str:
    """The training report as Markdown, like every other offline command's (report.md; .html and .json beside)."""
    lines = [
        "# Offline training report",
        "",
        f"Baseline (no privacy): accuracy {_spread(summary['baseline']).text()}.",
        "",
        "## DP-SGD runs (Opacus)",
        "",
        "Accuracy over training seeds (initialisation, batches, DP noise; same data split): mean ± sd [min, max]. "
        "The model files are seed 0's.",
        "",
        "| target epsilon | epsilon spent | delta | noise multiplier | clip | accountant | accuracy over seeds |",
        "|---:|---:|---:|---:|---:|---|---|",
        *[
            f"| {r['target_epsilon']:g} | {r['epsilon']:.2f} | {r['delta']:.1e} | {r['noise_multiplier']:.2f} | "
            f"{r['max_grad_norm']:g} | {r['accountant']} | {_spread(r).text()} |"
            for r in summary["private"]
        ],
        "",
        "## Edge variants",
        "",
        "| variant | accuracy | bytes | max abs logit diff | " + " | ".join(_latency_keys(summary)) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(_latency_keys(summary)),
        *[
            f"| {v['name']} | {v['accuracy']:.4f} | {v['size_bytes']:,} | {_parity(v['parity'])} | "
            + " | ".join(f"{ms:.3f}" for ms in v["latency"].values())
            + " |"
            for v in summary["edge"]
        ],
        "",
        "Latency in ms per call.",
        "",
        "## Notes",
        "",
        *[f"- {n}" for n in summary["notes"]],
    ]
    return "\n".join(lines) + "\n"


def _spread(entry: dict[str, Any]) -> Spread:
    return Spread(**entry["accuracy_over_seeds"])


def _latency_keys(summary: dict[str, Any]) -> list[str]:
    return [str(k) for k in summary["edge"][0]["latency"]] if summary["edge"] else []
