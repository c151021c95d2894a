"""A self-contained HTML report of a model's metrics over time, read from the `metrics` table.

Charts are inline SVG (`driftline.reports.charts`: no plotting dependency, opens in any browser, no
network): one line per series, windows on the x axis, and markers where a detector
fired. Untrusted names (models, features) are HTML-escaped.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

from driftline.reports.charts import Series, svg_chart
from driftline.sinks.client import ClickHouseClient


def model_report(
    client: ClickHouseClient, database: str, model: str, version: str, path: Path, top_features: int = 6
) -> Path:
    """Write an HTML report of one model version's metrics; returns its path."""
    rows = client.query(
        f"""SELECT formatDateTime(window_start, '%Y-%m-%d %H:%i', 'UTC') AS w, family, metric, feature, segment, value
            FROM {database}.metrics FINAL WHERE model = {{m:String}} AND version = {{v:String}}
            ORDER BY window_start""",
        parameters={"m": model, "v": version},
    ).result_rows
    by: dict[tuple[str, str, str, str], list[tuple[str, float]]] = defaultdict(list)
    for w, family, metric, feature, segment, value in rows:
        by[(family, metric, feature, segment)].append((w, float(value)))

    def series(family: str, metric: str, feature: str = "", segment: str = "", label: str = "") -> Series:
        return Series(label or metric, by.get((family, metric, feature, segment), []))

    def peak(feature: str) -> float:
        points = by.get(("drift", "psi", feature, ""), by.get(("drift", "js", feature, ""), []))
        return max((v for _, v in points), default=0.0)

    drift_features = {f for (fam, met, f, _) in by if fam == "drift" and met in ("psi", "js") and f}
    psi_features = sorted(drift_features, key=peak, reverse=True)[:top_features]
    drift_series = [series("drift", "psi" if ("drift", "psi", f, "") in by else "js", f, label=f) for f in psi_features]
    drifted = {w for (fam, met, _, _), pts in by.items() if met == "drifted" for w, _ in pts}
    alarms = {w for (fam, met, _, _), pts in by.items() if met.endswith("_alarm") for w, _ in pts}
    fair_attrs = sorted({f for (fam, met, f, _) in by if fam == "fairness" and met == "demographic_parity_difference"})
    quality = [series("quality", m) for m in ("accuracy", "roc_auc", "f1", "label_coverage")]
    fairness = [series("fairness", "demographic_parity_difference", a, label=a) for a in fair_attrs]
    dq_metrics = ("missing_rate", "type_violation_rate", "out_of_range_rate", "unseen_category_rate", "duplicate_rate")
    dq_keys = [k for k in sorted(by) if k[0] == "data_quality" and k[1] in dq_metrics and any(v > 0 for _, v in by[k])]
    data_quality = [series(*k, label=f"{k[1]} {k[2]}".strip()) for k in dq_keys[:8]]
    latency = [series("kpi", f"latency_p{q}_ms", label=f"p{q}") for q in (50, 95, 99)]
    estimated = [
        series("estimated_quality", m, label=label)
        for m, label in (
            ("accuracy", "estimated (before labels)"),
            ("accuracy_lower", "estimate - 3 SE"),
            ("accuracy_upper", "estimate + 3 SE"),
        )
    ] + [series("quality", "accuracy", label="realised (labelled)")]
    charts = [
        svg_chart("Drift per feature (PSI; JS if categorical); shaded: flagged drifted", drift_series, "", drifted),
        svg_chart("Drift share after FDR control", [series("drift", "drift_share")], "share", drifted),
        svg_chart(
            "Quality with delayed labels; shaded: a detector fired", [q for q in quality if q.points], "", alarms
        ),
        svg_chart(
            "Accuracy estimated before labels (CBPE; assumes no concept drift) beside the realised",
            [e for e in estimated if e.points],
            "accuracy",
            empty="no estimate: build the profile with --label to calibrate the scores (driftline profile build)",
        ),
        svg_chart("Fairness: demographic-parity difference per sensitive attribute", fairness, "gap"),
        svg_chart("Data quality (rates that were ever above 0)", data_quality, "rate"),
        svg_chart("Latency (ms)", latency, "ms"),
    ]
    body = "\n".join(f"<div>{c}</div>" for c in charts)
    title = html.escape(f"driftline — {model} {version}")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;margin:24px;color:#222}div{margin:12px 0}</style></head>"
        f"<body><h1>{title}</h1><p>{len(rows):,} metric rows; windows in UTC. Read from ClickHouse table "
        f"<code>{html.escape(database)}.metrics</code>.</p>{body}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
