"""The review as Markdown (sections per audience), HTML with plots, and JSON; stored with lineage and
announced as a `review` event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftline.reports.charts import Series, svg_chart
from driftline.reports.page import ReportFiles, file_name, write_report


def _n(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _change(pair: dict[str, float | None], digits: int = 3) -> str:
    cur, prev = pair.get("current"), pair.get("previous")
    if cur is None:
        return "-"
    if prev is None:
        return f"{_n(cur, digits)} (no previous data)"
    delta = cur - prev
    return f"{_n(cur, digits)} ({'+' if delta >= 0 else ''}{delta:,.{digits}f} vs {_n(prev, digits)})"


def review_markdown(r: dict[str, Any]) -> str:
    eng, ds, prod = r["engineering"], r["data_science"], r["product"]
    lines = [
        f"# Model review: {r['model']}",
        "",
        f"Period {r['period']['start']} .. {r['period']['end']} UTC, compared with {r['previous']['start']} .. "
        f"{r['previous']['end']}. Versions seen: {', '.join(r['versions']) or 'none'}.",
        "",
        "## Suggested actions",
        "",
        "| for | action | evidence |",
        "|---|---|---|",
    ]
    lines += [f"| {a['audience']} | {a['text']} | {a['evidence']} |" for a in r["actions"]]
    lines += ["", "## Product", "", "| version | predictions (change vs previous period) |", "|---|---|"]
    lines += [f"| {v} | {_change(p, 0)} |" for v, p in eng["predictions"].items()]
    for name, per in prod["kpis"].items():
        lines += ["", f"Business KPI **{name}** (sum over the period):", ""]
        lines += [f"- {v}: {_change(p, 2)}" for v, p in per.items()]
    lines += [
        "",
        "Versions in production: "
        + (
            ", ".join(f"{v} ({s['stage']}, {s['weight']} %)" for v, s in prod["in_production"].items())
            or "none registered"
        ),
    ]
    if prod["rollouts"]:
        lines += ["", "| when | decision | canary | weight | reason |", "|---|---|---|---|---|"]
        lines += [
            f"| {x['at']} | {x['action']} | {x['canary']} | {x['weight_before']:g} -> {x['weight_after']:g} | "
            f"{x['reason'][:160]} |"
            for x in prod["rollouts"]
        ]
    lines += ["", "Lineage of the versions:", ""]
    for v, arts in prod["lineage"].items():
        chain = "; ".join(f"{a['kind']} {a['name']} `{a['artefact']}` ({a['code_version']})" for a in arts)
        lines.append(f"- {v}: {chain or 'no lineage recorded (record artefacts with params model and version)'}")
    lines += ["", "## Data science", "", "| version | metric | current (change vs previous) |", "|---|---|---|"]
    for v, metrics in ds["quality"].items():
        lines += [f"| {v} | {m} | {_change(p)} |" for m, p in metrics.items()]
    for v, metrics in ds.get("estimated_quality", {}).items():  # before labels: CBPE, assumes no concept drift
        lines += [f"| {v} | estimated {m} (before labels) | {_change(p)} |" for m, p in metrics.items()]
    lines += [f"| {v} | drift share | {_change(p)} |" for v, p in ds["drift_share"].items()]
    lines += [
        f"| {v} | Krippendorff's alpha | {_change(p)} |" for v, p in ds["labeling"].items() if p["current"] is not None
    ]
    if ds.get("worst_segments"):
        lines += [
            "",
            "Worst segments (highest mean drift share in the period, then lowest accuracy):",
            "",
            "| version | segment | drift share | accuracy | predictions |",
            "|---|---|---:|---:|---:|",
        ]
        lines += [
            f"| {w['version']} | {w['segment']} | {_n(w['drift_share'], 3)} | {_n(w['accuracy'], 3)} | "
            f"{w['predictions']:,} |"
            for w in ds["worst_segments"]
        ]
    if ds["drift"]:
        lines += [
            "",
            "Top drifting features:",
            "",
            "| version | feature | windows flagged | first | max PSI |",
            "|---|---|---:|---|---:|",
        ]
        lines += [
            f"| {d['version']} | {d['feature']} | {d['windows']} | {d['first']} | {_n(d['max_psi'])} |"
            for d in ds["drift"]
        ]
    if ds["fairness"]:
        lines += [
            "",
            "Fairness (demographic-parity difference):",
            "",
            "| version | attribute | mean | change vs previous | days above threshold |",
            "|---|---|---:|---|---:|",
        ]
        lines += [
            f"| {f['version']} | {f['attribute']} | {_n(f['mean'])} | {_change(f)} | {f['days_above']} |"
            for f in ds["fairness"]
        ]
        rates = [(f, g, p) for f in ds["fairness"] for g, p in f["selection_rate"].items()]
        if rates:
            head = "| version | attribute | group | current (change vs previous) |"
            lines += ["", "Selection rate by group:", "", head, "|---|---|---|---|"]
            lines += [f"| {f['version']} | {f['attribute']} | {g} | {_change(p)} |" for f, g, p in rates]
    lines += ["", "## Engineering", "", "| version | latency p50 ms | p95 ms | p99 ms |", "|---|---|---|---|"]
    lines += [
        f"| {v} | {_change(lat['p50'], 1)} | {_change(lat['p95'], 1)} | {_change(lat['p99'], 1)} |"
        for v, lat in eng["latency_ms"].items()
    ]
    dl = eng["dead_letters"]
    lines += ["", f"Dead letters: {dl['current']} (previous period {dl['previous']})."]
    if eng["data_quality_incidents"]:
        lines += [
            "",
            "| version | data-quality metric | feature | windows above limit | max |",
            "|---|---|---|---:|---:|",
        ]
        lines += [
            f"| {i['version']} | {i['metric']} | {i['feature']} | {i['windows']} | {i['max']:.3f} |"
            for i in eng["data_quality_incidents"]
        ]
    al = eng["alerts"]
    lines += [
        "",
        f"Alerts: {sum(a['count'] for a in al['fired'])} fired, {al['resolved']} resolved; "
        f"{len(al['silences'])} silences active; notifications "
        + (", ".join(f"{k} {v}" for k, v in sorted(al["notifications"].items())) or "none")
        + ".",
    ]
    if al["fired"]:
        lines += ["", "| alert | version | severity | times fired |", "|---|---|---|---:|"]
        lines += [f"| {a['alertname']} | {a['version']} | {a['severity']} | {a['count']} |" for a in al["fired"]]
    return "\n".join(lines) + "\n"


def _charts(r: dict[str, Any]) -> list[str]:
    daily: dict[str, list[tuple[str, float]]] = r["daily"]

    def series(family: str, metric: str, by_feature: bool = False) -> list[Series]:
        out = []
        for key, points in sorted(daily.items()):
            version, fam, met, feature = key.split("|", 3)
            if fam == family and met == metric:
                out.append(Series(f"{version} {feature}".strip() if by_feature else version, points))
        return out

    top = {d["feature"] for d in r["data_science"]["drift"][:5]}
    drift = [s for s in series("drift", "psi", True) if s.label.split(" ", 1)[-1] in top]
    return [
        svg_chart(
            "Predictions per day", series("volume", "predictions"), "predictions", empty="no predictions in the period"
        ),
        svg_chart(
            "Accuracy per day",
            series("quality", "accuracy"),
            "accuracy",
            empty="no labelled predictions in the period: accuracy needs label events",
        ),
        svg_chart(
            "PSI per day of the top drifting features",
            drift,
            "PSI",
            empty="no drift rows: build a reference profile (`driftline profile build`) or wait for the first window",
        ),
        svg_chart(
            "Demographic-parity difference per day",
            series("fairness", "demographic_parity_difference", True),
            empty="no fairness rows: declare sensitive attributes in the monitor spec and send labels",
        ),
        svg_chart(
            "Latency p95 per day (ms)",
            series("kpi", "latency_p95_ms"),
            "ms",
            empty="no events carried latency_ms",
        ),
        svg_chart(
            "Business KPIs per day (mean window sum)",
            series("kpi", "sum", True),
            empty="no events carried kpis",
        ),
    ]


def write_review(out: Path, review: dict[str, Any]) -> ReportFiles:
    name = file_name("review", review["model"], review["period"]["end"][:10])
    return write_report(out, name, review_markdown(review), _charts(review), review)
