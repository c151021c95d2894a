"""The reports of the offline commands: Markdown + HTML with plots + JSON (``driftline.reports.page``).

Each function takes a command's results, writes ``<name>.md/.html/.json`` into `out` and
returns the Markdown (what the command prints).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from driftline.offline.distill import DistillResult
from driftline.offline.energy import EnergyPoint
from driftline.offline.fairness import MitigationResult
from driftline.offline.gate import GateResult
from driftline.offline.hybrid import CurvePoint
from driftline.offline.tradeoff import TradeoffRow
from driftline.reports.charts import Series, svg_bars, svg_chart
from driftline.reports.page import ReportFiles, write_report

__all__ = [
    "distill_report",
    "explain_report",
    "fairness_report",
    "federated_report",
    "gate_report",
    "hybrid_report",
    "tradeoff_report",
]


def federated_report(out: Any, summary: dict[str, Any], artefact_id: str) -> ReportFiles:
    history = summary["history"]
    lines = [
        f"# Federated training ({time.strftime('%Y-%m-%d')})",
        "",
        f"{summary['clients']} clients with shifted feature means and label shares, {summary['rounds']} rounds; "
        f"each round a cohort is sampled (each client with probability {summary.get('participation', 1.0):.2f}) "
        f"and each member drops out with probability {summary['dropout']:.0%} after the keys are agreed. Every "
        "round's updates are summed by secure aggregation within the cohort (the server sees masked updates and "
        "their sum only). A round with fewer survivors than "
        f"{summary.get('min_survivors') or 'half its cohort (at least 2)'} is refused (never unmasked) and leaves "
        "the model as it was.",
        "",
        "| round | cohort | survivors | unmasked | bytes per cohort member | accuracy |",
        "|---:|---:|---:|---|---:|---:|",
    ]
    lines += [
        f"| {int(h['round'])} | {int(h.get('cohort', 0))} | {int(h['survivors'])} | "
        f"{'no (refused)' if h.get('skipped') else 'yes'} | {h.get('bytes', 0) / max(h.get('cohort', 1), 1):,.0f} | "
        f"{h['accuracy']:.4f} |"
        for h in history
    ]
    lines += [
        "",
        f"Pooled (centralised) training on the same data: accuracy {summary['pooled_accuracy']:.4f}.",
        f"Communication, as the simulated protocol sends it: {summary.get('bytes_per_client_per_round', 0):,.0f} "
        "bytes per cohort member per round (keys with the cohort, the model down, the masked update up, and "
        "32 bytes per dropped member a survivor reveals).",
        f"Privacy: {summary['privacy']}.",
        f"Model artefact: `{artefact_id}`.",
    ]
    rounds = [f"{int(h['round']):03d}" for h in history]
    charts = [
        svg_chart(
            "Test accuracy per round (FedAvg with secure aggregation)",
            [
                Series("federated", [(r, h["accuracy"]) for r, h in zip(rounds, history, strict=True)]),
                Series("pooled training", [(r, summary["pooled_accuracy"]) for r in rounds]),
            ],
            "accuracy",
        ),
        svg_bars(
            "Clients that reported per round",
            rounds,
            [Series("survivors", [(r, h["survivors"]) for r, h in zip(rounds, history, strict=True)])],
        ),
    ]
    return write_report(out, "federated", "\n".join(lines), charts, summary)


def gate_report(out: Any, result: GateResult, candidate: str, production: str) -> ReportFiles:
    names = [c.name for c in result.checks]
    chart = svg_bars(
        "Candidate vs production per check",
        names,
        [
            Series(f"candidate ({candidate})", [(c.name, c.candidate) for c in result.checks]),
            Series(f"production ({production})", [(c.name, c.production) for c in result.checks]),
        ],
    )
    data = {"candidate": candidate, "production": production, **result.as_dict()}
    return write_report(out, "gate", result.markdown(candidate, production), [chart], data)


def fairness_report(out: Any, results: Sequence[MitigationResult]) -> ReportFiles:
    seeds = results[0].accuracy_spread.n if results and results[0].accuracy_spread else 1
    lines = [
        "# Fairness mitigation (fairlearn)",
        "",
        f"Over {seeds} seeds of the randomised predictions (the fits and the data split are fixed): "
        "mean ± sd [min, max].",
        "",
        "| method | accuracy | demographic-parity gap | accuracy cost | selection rate by age group |",
        "|---|---|---|---:|---|",
    ]
    for r in results:
        rates = ", ".join(f"{g} {v:.2f}" for g, v in sorted(r.selection_rate.items()))
        acc = r.accuracy_spread.text() if r.accuracy_spread else f"{r.accuracy:.3f}"
        gap = r.gap_spread.text() if r.gap_spread else f"{r.parity_gap:.3f}"
        lines.append(f"| {r.method} | {acc} | {gap} | {r.accuracy_cost:+.3f} | {rates} |")
    lines += ["", "Accuracy cost: the unmitigated model's mean accuracy minus the method's (negative: it gained)."]
    groups = sorted({g for r in results for g in r.selection_rate})
    short = [r.method.split(" ")[0] for r in results]
    charts = [
        svg_bars(
            "Selection rate per age group, before and after mitigation",
            groups,
            [Series(s, sorted(r.selection_rate.items())) for s, r in zip(short, results, strict=True)],
            "selection rate",
        ),
        svg_bars(
            "Accuracy and demographic-parity gap per method",
            short,
            [
                Series("accuracy", [(s, r.accuracy) for s, r in zip(short, results, strict=True)]),
                Series("parity gap", [(s, r.parity_gap) for s, r in zip(short, results, strict=True)]),
            ],
        ),
    ]
    return write_report(out, "fairness", "\n".join(lines), charts, [asdict(r) for r in results])


def _energy_lines(energy: Sequence[EnergyPoint]) -> list[str]:
    if not energy:
        return []
    method = energy[0].method
    lines = [
        "",
        "## Energy per inference",
        "",
        f"Method: **{method}**."
        + (
            ""
            if method.startswith("measured")
            else " This machine exposes no readable RAPL energy counters, so these are estimates: the process's CPU "
            "time per inference x the stated watts per busy core (idle and memory power not attributed). The "
            "ratios between models hold; the absolute joules depend on the assumption."
        ),
        "",
        "| model | batch | threads | joules per inference | CPU ms per inference | wall ms per call |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {e.model} | {e.batch} | {e.threads} | {e.joules_per_inference:.3e} | {e.cpu_ms_per_inference:.3g} | "
        f"{e.wall_ms_per_call:.3f} |"
        for e in energy
    ]
    return lines


def distill_report(out: Any, result: DistillResult, energy: Sequence[EnergyPoint] = ()) -> ReportFiles:
    rows = [
        ("teacher (gradient boosting)", result.teacher),
        ("student on hard labels", result.hard_student),
        ("distilled student", result.student),
    ]
    lines = [
        f"# Distillation ({result.student_parameters:,} student parameters)",
        "",
        "| model | accuracy | ROC AUC | fidelity to teacher | ECE |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {s.accuracy:.4f} | {s.roc_auc:.4f} | {s.fidelity:.4f} | {s.ece:.4f} |" for n, s in rows]
    lines += [
        "",
        "Fidelity: share of test rows where the model agrees with the teacher. ECE: expected calibration "
        "error over 10 equal-width probability bins (the reliability plot shows them).",
    ]
    lines += _energy_lines(energy)
    metrics = ["accuracy", "roc_auc", "fidelity"]
    charts = [
        svg_bars("Test scores", metrics, [Series(n, [(m, getattr(s, m)) for m in metrics]) for n, s in rows]),
        svg_chart(
            "Reliability: observed positive rate per predicted-probability bin (diagonal = calibrated)",
            [
                Series(n, [(f"{p:.2f}", obs) for p, obs in result.reliability[key]])
                for n, key in zip([r[0] for r in rows], ("teacher", "hard_student", "student"), strict=True)
            ]
            + [Series("perfect calibration", [(f"{p:.2f}", p) for p, _ in result.reliability["teacher"]])],
            "observed rate",
        ),
    ]
    if energy:
        names = list(dict.fromkeys(e.model for e in energy))
        for batch in sorted({e.batch for e in energy}):
            charts.append(
                svg_bars(
                    f"Joules per inference at batch {batch} ({energy[0].method})",
                    names,
                    [
                        Series(
                            f"{t} thread(s)",
                            [(e.model, e.joules_per_inference) for e in energy if e.batch == batch and e.threads == t],
                        )
                        for t in sorted({e.threads for e in energy})
                    ],
                )
            )
    data = {n: asdict(s) for n, s in rows} | {
        "reliability": result.reliability,
        "student_parameters": result.student_parameters,
        "energy": [asdict(e) for e in energy],
    }
    return write_report(out, "distill", "\n".join(lines), charts, data)


def hybrid_report(
    out: Any, points: Sequence[CurvePoint], edge_ms: float, server_ms: float, threshold: float
) -> ReportFiles:
    chosen = next(p for p in points if p.threshold == threshold)
    lines = [
        f"# Hybrid edge/server inference (edge {edge_ms:.3f} ms, server {server_ms:.3f} ms per row)",
        "",
        f"At the chosen threshold {threshold:g} (`--threshold`): accuracy {chosen.accuracy:.4f}, "
        f"{chosen.escalation_rate:.1%} of rows escalated to the server, {chosen.mean_latency_ms:.3f} ms per row "
        f"on average.",
        "",
        "| threshold | accuracy | escalation rate | mean latency ms |",
        "|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {f'**{p.threshold:g}** (chosen)' if p is chosen else f'{p.threshold:g}'} | {p.accuracy:.4f} | "
        f"{p.escalation_rate:.3f} | {p.mean_latency_ms:.3f} |"
        for p in points
    ]
    lines += [
        "",
        "A row is answered on the edge when the edge model's confidence reaches the threshold; an "
        "escalated row costs the edge's latency plus the server's.",
    ]
    xs = [f"{p.threshold:.2f}" for p in points]
    charts = [
        svg_chart(
            "Accuracy and escalation rate over the confidence threshold",
            [
                Series("accuracy", [(x, p.accuracy) for x, p in zip(xs, points, strict=True)]),
                Series("escalation rate", [(x, p.escalation_rate) for x, p in zip(xs, points, strict=True)]),
            ],
        ),
        svg_chart(
            "Mean latency per row (ms) over the threshold",
            [Series("mean latency", [(x, p.mean_latency_ms) for x, p in zip(xs, points, strict=True)])],
            "ms",
        ),
    ]
    data = {
        "edge_ms": edge_ms,
        "server_ms": server_ms,
        "threshold": threshold,
        "chosen": asdict(chosen),
        "curve": [asdict(p) for p in points],
    }
    return write_report(out, "hybrid", "\n".join(lines), charts, data)


def _lime_agreement(lime: dict[str, Any]) -> list[str]:
    """What the SHAP/LIME comparison compares, and how well LIME's local model fits at all."""
    k = lime["k"]
    top = lime["comparison"][0]
    if not lime["same_top"]:
        first = f"different top features (SHAP: {top['feature']})"
    elif lime["same_top_sign"]:
        first = f"the same top feature ({top['feature']}) with the same sign"
    else:
        first = f"the same top feature ({top['feature']}) but opposite signs: they disagree on it"
    lines = [
        "SHAP is in the model's raw output (log-odds for gradient boosting), LIME in probability "
        "(weights of its local linear model on quartile and same-category indicators): compare ranks "
        "and signs, not sizes. LIME perturbs each categorical feature as one category, so every sample "
        "is a valid encoding.",
        "",
        f"Agreement over all {len(lime['comparison'])} features: rank correlation of |contribution| "
        f"(Spearman) {lime['spearman']:.3f}. Of SHAP's top {k}, LIME ranks {lime['topk_overlap']} in its "
        f"top {k} and gives {lime['topk_same_sign']} of {k} the same sign; {first}.",
    ]
    if lime["score"] < 0.5:
        lines += [
            "",
            f"LIME's local model explains little of the model near this row (R² {lime['score']:.2f} < 0.5): "
            "read its weights with care.",
        ]
    return lines


def explain_report(out: Any, data: dict[str, Any]) -> ReportFiles:
    """`data`: importance, local, top, pd (grid, average), counterfactual, optional shift and lime."""
    importance: dict[str, float] = data["importance"]
    ordered = sorted(importance.items(), key=lambda kv: -kv[1])
    lines = [
        f"# Explanations ({data['model']})",
        "",
        "## Global importance (mean |SHAP|)",
        "",
        "| feature | importance |",
        "|---|---:|",
    ]
    lines += [f"| {f} | {v:.4f} |" for f, v in ordered]
    lines += ["", f"## One prediction (holdout row {data['row']}): SHAP contributions", ""]
    lines += [f"- {f}: {v:+.4f}" for f, v in data["local"]]
    if data.get("lime"):
        lime = data["lime"]
        lines += [
            "",
            f"## The same prediction by LIME (seed {lime['seed']}, {lime['samples']:,} samples, "
            f"local R² {lime['score']:.3f})",
            "",
            "| feature | SHAP | LIME | SHAP rank | LIME rank |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {c['feature']} | {c['shap']:+.4f} | {c['lime']:+.4f} | {c['shap_rank']} | {c['lime_rank']} |"
            for c in lime["comparison"]
        ]
        lines += ["", *_lime_agreement(lime)]
    grid, avg = data["pd"]
    if grid:
        lines += [
            "",
            f"## Partial dependence of {data['top']} (standardised units -> mean P(approve))",
            "",
            " ".join(f"{g:+.2f}:{a:.3f}" for g, a in zip(grid, avg, strict=True)),
        ]
    lines += ["", f"## Counterfactual for row {data['row']}", "", data["counterfactual"]]
    shift = data.get("shift")
    if shift:
        lines += [
            "",
            f"## Importance shift: reference vs {data['production_rows']:,} production rows",
            "",
            "| feature | reference share | production share | flagged |",
            "|---|---:|---:|---|",
        ]
        lines += [f"| {f} | {r:.3f} | {p:.3f} | {'yes' if flag else ''} |" for f, (r, p, flag) in shift.items()]
    names = [f for f, _ in ordered]
    charts = [svg_bars("Global importance (mean |SHAP|)", names, [Series("importance", ordered)])]
    local_series = [Series("SHAP", [(f, v) for f, v in data["local"]])]
    if data.get("lime"):
        local_series = [
            Series("SHAP", [(c["feature"], c["shap"]) for c in data["lime"]["comparison"]]),
            Series("LIME", [(c["feature"], c["lime"]) for c in data["lime"]["comparison"]]),
        ]
    charts.append(
        svg_bars(f"Contributions to row {data['row']}'s decision", [p[0] for p in local_series[0].points], local_series)
    )
    if grid:
        charts.append(
            svg_chart(
                f"Partial dependence of {data['top']}",
                [Series("mean P(approve)", [(f"{g:+.2f}", a) for g, a in zip(grid, avg, strict=True)])],
                "P(approve)",
            )
        )
    if shift:
        charts.append(
            svg_bars(
                "Share of total |SHAP| per feature: reference vs production",
                list(shift),
                [
                    Series("reference", [(f, v[0]) for f, v in shift.items()]),
                    Series("production", [(f, v[1]) for f, v in shift.items()]),
                ],
            )
        )
    return write_report(out, "explain", "\n".join(lines), charts, data)


def tradeoff_report(out: Any, rows: Sequence[TradeoffRow], target: float, settings: dict[str, Any]) -> ReportFiles:
    def eps(r: TradeoffRow) -> str:
        return "-" if r.epsilon is None else f"{r.epsilon:.2f}"

    lines = [
        "# Privacy, communication and accuracy",
        "",
        f"Same data and model for every row: {settings['clients']} generated non-IID clients (about "
        f"{settings['per_client']} rows each), logistic regression, one test set. Target accuracy "
        f"{target:.4f} ({settings['target_ratio']:g} x the centralised non-private accuracy). Federated rows: "
        f"{settings['rounds']} rounds, each client taking part with probability {settings['participation']:g}. "
        "Epsilon from Opacus' RDP accountant; a *record* guarantee protects one row, a *client* guarantee a "
        "client's whole data (stronger per unit of epsilon).",
        "",
        "| technique | guarantee | epsilon | delta | bytes per client per round | rounds to target | "
        "bytes per client to target | accuracy |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        delta = "-" if r.delta is None else f"{r.delta:.1e}"
        to_target = "not reached" if r.rounds_to_target is None else str(r.rounds_to_target)
        total = "-" if r.bytes_per_client_to_target is None else f"{r.bytes_per_client_to_target:,}"
        lines.append(
            f"| {r.technique} | {r.guarantee} | {eps(r)} | {delta} | {r.bytes_per_client_per_round:,} | "
            f"{to_target} | {total} | {r.accuracy:.4f} |"
        )
    lines += [
        "",
        "Centralised rows move each client's rows once (their bytes are that upload). Federated rows count "
        "what the simulated protocol sends, per member of a round's cohort: a public key up and the cohort's "
        "others down, the model down, the masked update up, and 32 bytes per dropped member a survivor "
        "reveals; to the target: all the rounds' bytes divided by the clients. The sum of the clients' size "
        "weights reaches the server unnoised.",
    ]
    names = [
        r.technique.replace("FedAvg + secure aggregation", "FedAvg+SA").replace("centralised", "central") for r in rows
    ]
    charts = [
        svg_bars(
            "Accuracy per technique, and the target",
            names,
            [
                Series("accuracy", [(n, r.accuracy) for n, r in zip(names, rows, strict=True)]),
                Series("target", [(n, target) for n in names]),
            ],
        ),
        svg_bars(
            "Epsilon (lower is more private; none = no formal guarantee)",
            names,
            [Series("epsilon", [(n, r.epsilon) for n, r in zip(names, rows, strict=True) if r.epsilon])],
        ),
        svg_bars(
            "Bytes per client to reach the target",
            names,
            [
                Series(
                    "bytes",
                    [
                        (n, float(r.bytes_per_client_to_target))
                        for n, r in zip(names, rows, strict=True)
                        if r.bytes_per_client_to_target
                    ],
                )
            ],
        ),
    ]
    data = {"settings": settings, "target": target, "rows": [asdict(r) for r in rows]}
    return write_report(out, "privacy", "\n".join(lines), charts, data)
