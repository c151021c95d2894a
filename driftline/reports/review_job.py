"""Make a review (``driftline review`` or the worker's schedule): build it, write it, record its lineage,
and the event that announces it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from driftline.reports.page import ReportFiles
from driftline.reports.review import build_review
from driftline.reports.review_page import write_review
from driftline.sinks.client import ClickHouseClient
from driftline.sinks.lineage import Artefact, ClickHouseLineage, record

log = logging.getLogger(__name__)


def run_review(
    client: ClickHouseClient, database: str, model: str, period_s: float, out: Path, end: float | None = None
) -> tuple[dict[str, Any], ReportFiles, Artefact]:
    review = build_review(client, database, model, period_s, end)
    files = write_review(out, review)
    artefact = record(
        files.json,
        "report",
        name=files.json.name,
        params={
            "kind": "review",
            "model": model,
            "period_start": review["period"]["start"],
            "period_end": review["period"]["end"],
            "versions": review["versions"],
        },
        metrics={"actions": len(review["actions"])},
    )
    ClickHouseLineage(client, database).store([artefact])
    return review, files, artefact


def review_event(review: dict[str, Any], files: ReportFiles, artefact: Artefact) -> dict[str, Any]:
    """What subscribers get: the period, the actions, where the report is, its lineage id."""
    return {
        "model": review["model"],
        "period": review["period"],
        "versions": review["versions"],
        "actions": [f"[{a['audience']}] {a['text']}" for a in review["actions"]],
        "report": str(files.html.resolve()),
        "markdown": str(files.markdown.resolve()),
        "artefact": artefact.artefact_id,
    }


def models_with_metrics(client: ClickHouseClient, database: str, period_s: float) -> list[str]:
    since = f"now64(3) - toIntervalSecond({int(period_s)})"
    rows = client.query(f"SELECT DISTINCT model FROM {database}.metrics WHERE window_start >= {since}").result_rows
    return sorted(str(r[0]) for r in rows)


Announce = Callable[[str, dict[str, Any], dict[str, str]], Awaitable[int]]


async def review_all(
    client: ClickHouseClient, database: str, period_s: float, out: Path, announce: Announce
) -> list[Path]:
    """What the worker's schedule runs: a review of every model with metrics in the period, each announced."""
    written = []
    for model in await asyncio.to_thread(models_with_metrics, client, database, period_s):
        try:
            review, files, art = await asyncio.to_thread(run_review, client, database, model, period_s, out)
        except Exception:  # the next period tries again; a review is never worth stopping ingest for
            log.exception("review of %s failed", model)
            continue
        sent = await announce(
            "review", review_event(review, files, art), {"model": model, "severity": "info", "alertname": "ModelReview"}
        )
        log.warning("review of %s written to %s; announced to %d subscription(s)", model, files.html, sent)
        written.append(files.html)
    return written
