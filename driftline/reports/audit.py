"""The audit's report: Markdown (printed), HTML with plots, JSON (``driftline.reports.page``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftline.labeling.audit import AuditResult
from driftline.reports.charts import Series, svg_bars
from driftline.reports.page import ReportFiles, write_report


def _verdict(passed: bool | None) -> str:
    return "skipped" if passed is None else ("pass" if passed else "**FAIL**")


def _noise_lines(noise: dict[str, Any]) -> list[str]:
    """The rare classes and the suspected label errors, as Markdown."""
    lines: list[str] = []
    if noise and noise.get("rare_classes"):
        n = noise
        lines += [
            "",
            "## Rare classes (too few rows to model; often a mistyped label)",
            "",
            "| class | rows |",
            "|---|---:|",
            *[f"| {k} | {v} |" for k, v in n["rare_classes"].items()],
            "",
            "Rows: " + ", ".join(f"{e['row']} ({e['label']})" for e in n["rare_rows"]),
        ]
    if noise and "examples" in noise:
        n = noise
        lines += [
            "",
            f"## Suspected label errors ({n['suspects']} of {n['rows']} rows; estimated noise rate "
            f"{n['rate']:.1%}; from {n['source']}; least confident first)",
            "",
            "| row | label | suggested | self-confidence |",
            "|---:|---|---|---:|",
        ]
        lines += [
            f"| {e['row']} | {e['label']} | {e['suggested']} | {e['self_confidence']:.3f} |" for e in n["examples"]
        ]
    return lines


def audit_report(out: Path, source: str, result: AuditResult, augmented: dict[str, Any] | None = None) -> ReportFiles:
    lines = [
        f"# Data audit: {source}",
        "",
        f"{result.rows:,} rows, {len(result.columns)} columns. **{'PASSED' if result.passed else 'FAILED'}**",
        "",
        "| check | value | limit | result | detail |",
        "|---|---:|---|---|---|",
    ]
    lines += [f"| {c.name} | {c.value:.4f} | {c.limit} | {_verdict(c.passed)} | {c.detail} |" for c in result.checks]
    missing = {c: v for c, v in sorted(result.missing.items(), key=lambda kv: -kv[1]) if v > 0}
    if missing:
        lines += ["", "## Missing values", "", "| column | missing |", "|---|---:|"]
        lines += [f"| {c} | {v:.2%} |" for c, v in missing.items()]
    if result.skew:
        lines += [
            "",
            "## Distribution vs reference",
            "",
            "| column | PSI | p-value | statistic |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {c} | {s['psi']:.4f} | {s['pvalue']:.3g} | {s['statistic']:.4f} |"
            for c, s in sorted(result.skew.items(), key=lambda kv: -kv[1]["psi"])
        ]
    d = result.duplicates
    lines += [
        "",
        "## Duplicates",
        "",
        f"{d['exact']} exact duplicate rows on {', '.join(d['keys'][:8])}"
        + (f"; {d['near']} near-duplicates on {', '.join(d['near_keys'])}" if d["near_keys"] else "")
        + (f". First rows: {d['examples'][:10]}" if d["examples"] else "."),
    ]
    if result.balance:
        lines += ["", "## Class balance", "", "| class | share |", "|---|---:|"]
        lines += [f"| {k} | {v:.2%} |" for k, v in sorted(result.balance.items())]
    if augmented:
        lines += [
            "",
            f"## After augmentation ({augmented['method']}, written to {augmented['path']})",
            "",
            f"{augmented['synthetic']:,} synthetic rows ({augmented['synthetic_share']:.1%} of the result, cap "
            f"{augmented['cap']:.0%}), each flagged in the `synthetic` column.",
            "",
            "| class | share before | share after |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {k} | {result.balance.get(k, 0.0):.2%} | {v:.2%} |" for k, v in sorted(augmented["after"].items())
        ]
    if result.segments:
        s = result.segments
        lines += [
            "",
            f"## Sampling: {s['column']} vs the reference population",
            "",
            "| segment | observed | expected |",
            "|---|---:|---:|",
        ]
        lines += [f"| {k} | {v:.2%} | {s['expected'][k]:.2%} |" for k, v in s["observed"].items()]
    lines += _noise_lines(result.noise)
    charts = []
    if result.missing:
        cols = list(result.missing)[:40]
        charts.append(
            svg_bars("Missing rate per column", cols, [Series("missing", [(c, result.missing[c]) for c in cols])])
        )
    if result.skew:
        cols = sorted(result.skew, key=lambda c: -result.skew[c]["psi"])[:40]
        charts.append(
            svg_bars(
                "PSI against the reference per column",
                cols,
                [Series("PSI", [(c, result.skew[c]["psi"]) for c in cols])],
            )
        )
    if result.balance:
        classes = sorted(result.balance)
        series = [Series("before", [(k, result.balance[k]) for k in classes])]
        if augmented:
            series.append(Series("after augmentation", [(k, augmented["after"].get(k, 0.0)) for k in classes]))
        charts.append(svg_bars("Class shares", classes, series))
    if result.segments:
        s = result.segments
        names = list(s["observed"])
        charts.append(
            svg_bars(
                f"{s['column']}: observed vs expected share",
                names,
                [
                    Series("observed", list(s["observed"].items())),
                    Series("expected", [(k, s["expected"][k]) for k in names]),
                ],
            )
        )
    data = {"source": source, **result.as_dict(), "augmentation": augmented}
    return write_report(out, "audit", "\n".join(lines), charts, data)
