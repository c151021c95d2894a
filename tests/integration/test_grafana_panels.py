"""Every Grafana panel's SQL, expanded as the ClickHouse data source would, runs on ClickHouse (chdb)
after a short real pipeline and returns rows of the expected shape. Grafana itself does not run here:
this checks the queries, variables and macros, not the rendering."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from driftline.alerts.rules import AlertingConfig, AlertRule
from driftline.alerts.store import AlertStore
from driftline.config import Settings
from driftline.events import DeadLetter, Label, Prediction
from driftline.exceptions import DriftlineError
from driftline.grafana.dashboards import annotation_queries, build, panels, push, write
from driftline.grafana.macros import expand
from driftline.models.canary import CanaryAnalyzer
from driftline.models.registry import ModelState
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch, SourcedDeadLetter
from driftline.spec import MonitorSpec
from driftline.streams.alert_job import AlertingAgent
from driftline.streams.labeling_requests import request_store, utc
from driftline.streams.monitor import MonitoringEngine
from driftline.streams.quality_job import QualityJob
from driftline.streams.shadow_job import ShadowJob

W = 300


def _pipeline(settings: Settings, sink: ClickHouseSink) -> tuple[float, float]:
    rng = np.random.default_rng(9)
    t0 = float(int(time.time()) // W * W - 12 * W)
    preds, labels = [], []
    for i in range(6000):
        ts = t0 + i * (10 * W / 6000)
        version = "v2" if i % 10 == 0 else "v1"
        y = int(rng.uniform() < 0.5)
        p = int(rng.uniform() < (0.9 if y else 0.1)) if version == "v1" else int(rng.uniform() < 0.5)  # v2 is bad
        preds.append(
            Prediction(
                event_id=f"e{i}",
                model="loan",
                version=version,
                ts=ts,
                prediction=p,
                score=0.95 if p else 0.05,
                features={
                    "income": float(rng.normal(50 + (30 if i > 4000 else 0), 10)),
                    "age": float(rng.normal(40, 9)),
                    "city": str(rng.choice(["a", "b", "c"])),
                    "debt": float(rng.normal(5, 2)),
                },
                attributes={"sex": str(rng.choice(["f", "m"]))},
                latency_ms=float(rng.uniform(1, 4)),
                request_id=f"r{i}",
            )
        )
        if i % 7 == 0:
            shadow = Prediction(
                event_id=f"s{i}",
                model="loan",
                version="v3",
                ts=ts,
                prediction=1 - p,
                route="shadow",
                request_id=f"r{i}",
                score=0.5,
            )
            preds.append(shadow)
        labels.append(Label(event_id=f"e{i}", label=y, ts=ts + 30, annotator="ann", guideline_version="g1"))
        if i % 3 == 0:  # a second annotator on a third of the items, agreeing nine times in ten
            second = y if rng.uniform() < 0.9 else 1 - y
            labels.append(Label(event_id=f"e{i}", label=second, ts=ts + 40, annotator="bob", guideline_version="g1"))
    bad = SourcedDeadLetter(DeadLetter("malformed", "bad", b"{"), settings.topic("predictions"), 0, 1, time.time())
    sink.write(SinkBatch(preds, labels, [bad], token="grafana-test"))
    request_store(sink.client, settings.clickhouse_database)(
        [
            [p.event_id, "loan", p.version, utc(p.ts), utc(p.ts // W * W), "margin", 0.5, utc(time.time())]
            for p in preds[::50]
            if p.route != "shadow"
        ]
    )
    segmented = MonitorSpec.from_yaml("defaults: {segments: [{attribute: sex, top_k: 2}]}")
    engine = MonitoringEngine(segmented, reference_events=1000, window_s=W, allowed_lateness_s=0)
    rows = engine.update([p for p in preds if p.route != "shadow"]) + engine.flush()
    rows += QualityJob(sink.client, settings.clickhouse_database, segmented).run_once()
    rows += ShadowJob(sink.client, settings.clickhouse_database, MonitorSpec()).run_once()
    sink.write_metrics(rows)
    store = AlertStore(sink.client, settings.clickhouse_database)
    spec = MonitorSpec(alerts=AlertingConfig(rules=(AlertRule("Drift", "psi", above=0.2),)))

    async def alerts() -> None:
        agent = AlertingAgent(spec, store=store)
        await agent.observe(rows)

    asyncio.run(alerts())
    state = ModelState("loan").register("v1", "production", by="t", reason="r", now=t0)
    state = state.register("v2", "canary", weight=10, by="t", reason="r", now=t0)
    store.registry(state)
    analyzer = CanaryAnalyzer()
    analyzer.observe(rows)
    for canary, start, end in analyzer.windows_to_analyze(state, rows):
        decision = analyzer.analyze(state, canary, start, end)
        if decision is not None:
            store.decision(decision, time.time())
    return t0, time.time() + 60  # a range ending now, as Grafana's default


def test_every_panel_query_runs_and_has_the_expected_shape(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    start, end = _pipeline(settings, sink)
    variables: dict[str, str | list[str]] = {
        "model": "loan",
        "version": ["v1", "v2"],
        "feature": "income",
        "attribute": "sex",
        "segment": "sex=f",
    }
    db = settings.clickhouse_database
    empty = []
    for uid, panel in panels(MonitorSpec(), db):
        sql = expand(panel.sql, start, end, variables, interval_s=60)
        assert "$" not in sql, (uid, panel.title, sql)
        result = sink.client.query(sql)
        if not result.result_rows:
            empty.append(panel.title)
            continue
        if panel.is_time_series:
            assert result.column_names[0] == "time", (panel.title, result.column_names)
            assert "DateTime" in result.column_types[0].name, (panel.title, result.column_types[0].name)
            assert result.column_names[1:] == ("series", "value") or panel.title.startswith("Dead letters")
    # every panel has data after this pipeline
    assert empty == [], empty
    for annotation in annotation_queries(db):
        rows = sink.client.query(expand(annotation["target"]["rawSql"], start, end, variables)).result_rows
        assert rows, annotation["name"]
    # template variable queries too
    board = build(MonitorSpec.from_yaml("models: {loan: {}}"), db)[0]
    for var in board["templating"]["list"]:
        assert sink.client.query(expand(var["query"], start, end, variables)).result_rows, var["name"]
    assert board["templating"]["list"][0]["current"]["value"] == "loan"


class _Grafana(BaseHTTPRequestHandler):
    """Grafana's dashboard API on 127.0.0.1, enough to check what `driftline grafana push` sends."""

    received: ClassVar[list[tuple[str, dict[str, str], dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.headers.get("Authorization") != "Bearer glsa_test":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"message": "invalid API key"}')
            return
        uid = body["dashboard"]["uid"]
        out = json.dumps({"status": "success", "uid": uid, "url": f"/d/{uid}/x", "version": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


def test_dashboards_written_as_files_and_pushed_over_the_api(tmp_path: Path) -> None:
    paths = write(MonitorSpec(), tmp_path)
    assert len(paths) == 7 and all(json.loads(p.read_text())["panels"] for p in paths)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Grafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        urls = push(build(MonitorSpec()), url, "glsa_test", folder_uid="ml")
        assert urls[0].startswith("/d/driftline-") and len(urls) == 7
        path, headers, body = _Grafana.received[0]
        assert path == "/api/dashboards/db" and body["overwrite"] is True and body["folderUid"] == "ml"
        assert body["dashboard"]["id"] is None and headers["authorization"] == "Bearer glsa_test"
        with pytest.raises(DriftlineError, match="refused dashboard"):
            push(build(MonitorSpec()), url, "wrong")
    finally:
        server.shutdown()
    with pytest.raises(DriftlineError, match="cannot reach Grafana"):
        push(build(MonitorSpec()), "http://127.0.0.1:1", "x")
