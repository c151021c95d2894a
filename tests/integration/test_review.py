"""The model review from ClickHouse: its numbers equal the rows written, its actions follow from them,
it is stored with lineage, and its publication reaches a signed webhook and the live stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from driftline.alerts.evaluator import AlertEvent
from driftline.alerts.store import AlertStore
from driftline.alerts.subscriptions import Subscription
from driftline.alerts.webhook import RetryPolicy, verify
from driftline.config import Settings
from driftline.metrics.rows import MetricRow
from driftline.models.canary import Decision
from driftline.reports.review_job import review_all, run_review
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.sinks.lineage import ClickHouseLineage
from driftline.spec import MonitorSpec
from driftline.streams.alert_job import AlertingAgent
from tests.integration.test_webhooks_and_stream import Receiver, wait_for

DAY = 86_400.0
W = 3600.0


def metrics(end: float) -> list[MetricRow]:
    """Two weeks of hourly windows; the second week has drift on income, worse accuracy, a fairness gap."""
    rng = np.random.default_rng(3)
    rows = []
    for h in range(14 * 24):
        start = end - 14 * DAY + h * W
        current = start >= end - 7 * DAY

        def add(family: str, metric: str, value: float, feature: str = "", s: float = start) -> None:
            rows.append(MetricRow(s, s + W, "credit", "v1", family, metric, feature, "", value, 100))

        add("volume", "predictions", 100 + (20 if current else 0))
        add("quality", "accuracy", float(rng.normal(0.80 if current else 0.90, 0.01)))
        add("quality", "label_coverage", 0.7)
        add("kpi", "latency_p95_ms", 12.0)
        add("kpi", "sum", 1000.0 if current else 800.0, "revenue")
        add("drift", "psi", 0.4 if current and h % 24 < 4 else 0.02, "income")
        if current and h % 24 < 4:
            add("drift", "drifted", 1.0, "income")
        add("fairness", "demographic_parity_difference", 0.15 if current else 0.05, "sex")
        rows.append(MetricRow(start, start + W, "credit", "v1", "fairness", "selection_rate", "sex", "f", 0.3, 50))
        add("data_quality", "missing_rate", 0.2 if current and h % 48 == 0 else 0.0, "age")
    return rows


def test_review_numbers_actions_lineage_and_announcement(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink], tmp_path: Path
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    db = settings.clickhouse_database
    end = time.time() // DAY * DAY  # midnight: the week is seven calendar days
    rows = metrics(end)
    sink.write_metrics(rows)
    store = AlertStore(sink.client, db)
    store.alert_events(
        [
            AlertEvent(
                "f1",
                "firing",
                {"alertname": "FeatureDrift", "model": "credit", "version": "v1", "severity": "warning"},
                {"summary": "drift"},
                0.4,
                end - 2 * DAY,
                end - 2 * DAY + W,
                end - 2 * DAY,
                0.0,
                end,
            )
        ]
    )
    store.decision(
        Decision(
            "d1",
            "credit",
            "v2",
            "v1",
            end - DAY,
            end - DAY + W,
            "rollback",
            10.0,
            0.0,
            2,
            (),
            "accuracy_drop: v2 0.70 vs v1 0.80",
        ),
        end - DAY + W,
    )

    review, files, art = run_review(sink.client, db, "credit", 7 * DAY, tmp_path / "reviews", end=end)

    current = [r for r in rows if r.window_start >= end - 7 * DAY]
    previous = [r for r in rows if r.window_start < end - 7 * DAY]

    def mean(rs: list[MetricRow], metric: str) -> float:
        return float(np.mean([r.value for r in rs if r.metric == metric]))

    acc = review["data_science"]["quality"]["v1"]["accuracy"]
    assert acc["current"] == pytest.approx(mean(current, "accuracy")) and acc["previous"] == pytest.approx(
        mean(previous, "accuracy")
    )
    volume = review["engineering"]["predictions"]["v1"]
    assert volume == {"current": 120.0 * 7 * 24, "previous": 100.0 * 7 * 24}
    assert review["product"]["kpis"]["revenue"]["v1"] == {"current": 1000.0 * 7 * 24, "previous": 800.0 * 7 * 24}
    (drift,) = review["data_science"]["drift"]
    assert (drift["feature"], drift["windows"], drift["max_psi"]) == ("income", 28, pytest.approx(0.4))
    (fair,) = review["data_science"]["fairness"]
    assert fair["attribute"] == "sex" and fair["days_above"] == 7 and fair["current"] == pytest.approx(0.15)
    assert fair["selection_rate"] == {"f": {"current": pytest.approx(0.3), "previous": pytest.approx(0.3)}}
    (incident,) = review["engineering"]["data_quality_incidents"]
    assert incident["feature"] == "age" and incident["windows"] == sum(
        1 for r in current if r.metric == "missing_rate" and r.value > 0.05
    )
    assert review["engineering"]["alerts"]["fired"] == [
        {"alertname": "FeatureDrift", "version": "v1", "severity": "warning", "count": 1}
    ]
    texts = [a["text"] for a in review["actions"]]
    assert any(t.startswith("retrain credit v1: drift on income since") for t in texts), texts
    assert any("accuracy fell from 0.90" in t for t in texts), texts
    assert any("fairness gap on sex (v1) above 0.1 for 7 days" in t for t in texts), texts
    assert any("canary v2 was rolled back" in t for t in texts), texts
    assert any("missing_rate of age" in t for t in texts), texts
    # three audiences, plots, and the lineage record in ClickHouse
    text = files.markdown.read_text()
    assert "## Product" in text and "## Data science" in text and "## Engineering" in text
    assert files.html.read_text().count("<svg") >= 5
    stored = ClickHouseLineage(sink.client, db).get(art.artefact_id)
    assert stored is not None and stored.params["model"] == "credit" and stored.kind == "report"

    # its publication: a signed webhook to a subscriber of the model, and the live stream
    async def announce() -> tuple[Receiver, Subscription, list[str]]:
        receiver = Receiver([])
        base = await receiver.start()
        sub = Subscription.create("product", f"{base}/product", created_by="t", now=time.time(), models=["credit"])
        other = Subscription.create("other", f"{base}/other", created_by="t", now=time.time(), models=["fraud"])
        from driftline.alerts.live import AlertStream
        from driftline.values import Secret

        stream = AlertStream(Secret("t"))
        agent = AlertingAgent(MonitorSpec(), stream=stream, retry=RetryPolicy(first_delay_s=0.05, deadline_s=5))
        agent.dispatcher.subscriptions = {s.id: s for s in (sub, other)}
        await agent.start()
        try:
            # what the worker's schedule (DRIFTLINE_REVIEW_EVERY_S) runs
            written = await review_all(sink.client, db, 7 * DAY, tmp_path / "scheduled", agent.announce)
            assert [p.parent for p in written] == [tmp_path / "scheduled"]
            await wait_for(lambda: len(receiver.requests) == 1)
            await asyncio.sleep(0.2)
        finally:
            await agent.stop()
            await receiver.runner.cleanup()
        return receiver, sub, [kind for _, kind, _ in stream._buffer]

    receiver, sub, kinds = asyncio.run(announce())
    assert len(receiver.requests) == 1 and kinds == ["review"]  # the subscriber of another model got nothing
    headers, body = receiver.requests[0]
    assert verify(sub.reveal(), headers["webhook-id"], headers["webhook-timestamp"], body, headers["webhook-signature"])
    payload = json.loads(body)
    assert payload["type"] == "review.published" and payload["data"]["model"] == "credit"
    assert payload["data"]["artefact"] and payload["data"]["report"].endswith(".html")
    assert payload["data"]["actions"][0].startswith("[")


def test_the_review_lists_the_worst_segments(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    """Issue 20.2: segment rows (drift share, accuracy, volume) ranked; the whole traffic's rows stay unsegmented."""
    from driftline.reports.review import build_review
    from driftline.reports.review_page import review_markdown

    settings = settings_factory()
    sink = sink_factory(settings)
    end = float(int(time.time()) // 3600 * 3600)
    rows = []
    for h in range(24):
        s = end - DAY + h * W
        for segment, share, accuracy in (("region=eu", 0.05, 0.91), ("region=us", 0.6, 0.71), ("seniors", 0.2, 0.8)):
            rows += [
                MetricRow(s, s + W, "credit", "v1", "drift", "drift_share", "", segment, share, 100),
                MetricRow(s, s + W, "credit", "v1", "quality", "accuracy", "", segment, accuracy, 80),
                MetricRow(s, s + W, "credit", "v1", "volume", "predictions", "", segment, 100, 100),
                MetricRow(s, s + W, "credit", "v1", "drift", "psi", "income", segment, 0.9, 100),
                MetricRow(s, s + W, "credit", "v1", "drift", "drifted", "income", segment, 1.0, 100),
            ]
        rows.append(MetricRow(s, s + W, "credit", "v1", "volume", "predictions", "", "", 300, 300))
    sink.write_metrics(rows)
    review = build_review(sink.client, settings.clickhouse_database, "credit", DAY, end=end)
    worst = review["data_science"]["worst_segments"]
    assert [w["segment"] for w in worst] == ["region=us", "seniors", "region=eu"]
    assert worst[0]["drift_share"] == pytest.approx(0.6) and worst[0]["accuracy"] == pytest.approx(0.71)
    assert worst[0]["predictions"] == 2400
    assert review["data_science"]["drift"] == []  # segment rows do not count as the whole traffic's drift
    assert "| v1 | region=us | 0.600 | 0.710 | 2,400 |" in review_markdown(review)
