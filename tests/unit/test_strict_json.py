"""Nothing driftline emits carries NaN or Infinity (issue 17.8): every channel, read by a strict parser.

Before: rollout events on the live stream carried bare `NaN` (`"canary": NaN`), which `JSON.parse`
in a browser rejects; CLI JSON output and the worker's JSON endpoints could too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import msgspec

from driftline.alerts.dispatcher import Notification
from driftline.alerts.evaluator import AlertEvent
from driftline.alerts.live import _frame
from driftline.alerts.subscriptions import Subscription
from driftline.alerts.webhook import payload
from driftline.metrics.rows import MetricRow
from driftline.reports.page import write_report
from driftline.streams.logs import JsonFormatter, context
from driftline.streams.worker import _encode_row, _json

NAN, INF = float("nan"), float("inf")
ROLLOUT = {"model": "loan", "canary": NAN, "weight_before": 10.0, "weight_after": INF, "checks": [{"value": -INF}]}


def strict(text: str | bytes) -> Any:
    """A parser that refuses NaN, Infinity and -Infinity, as JSON.parse does."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_the_live_stream() -> None:
    frame = _frame(1, "rollout", ROLLOUT).decode()
    data = frame.split("data: ", 1)[1].strip()
    assert strict(data) == {**ROLLOUT, "canary": None, "weight_after": None, "checks": [{"value": None}]}


def test_the_worker_endpoints() -> None:
    response = _json({"firing": [], "decisions": [ROLLOUT]})
    assert response.body is not None
    assert strict(bytes(response.body))["decisions"][0]["canary"] is None


def test_webhooks_and_kafka_topics() -> None:
    alert = AlertEvent("fp", "firing", {"alertname": "A", "model": "loan"}, {}, NAN, 0.0, 60.0, 0.0, 0.0, 1.0)
    sub = Subscription.create("ops", "http://127.0.0.1:9/x", created_by="t", now=0.0)
    body = msgspec.json.encode(payload(Notification("msg_1", sub, (("alertname", "A"),), (alert,))))
    assert strict(body)["driftline"]["alerts"][0]["value"] is None
    row = MetricRow(0.0, 60.0, "loan", "v1", "quality", "accuracy", "", "", NAN, 0)
    assert strict(_encode_row(row))["value"] is None  # the metrics topic


def test_json_logs() -> None:
    record = logging.LogRecord("driftline.x", logging.WARNING, __file__, 1, "psi %s", (NAN,), None)
    record.__dict__.update(context(model="loan", version="v1", window_start=NAN))
    line = strict(JsonFormatter().format(record))
    assert line["msg"] == "psi nan" and line.get("window_start") is None


def test_report_json_files(tmp_path: Path) -> None:
    import numpy as np

    files = write_report(tmp_path, "r", "# r\n", [], {"psi": NAN, "bins": np.array([1.0, INF])})
    data = strict(files.json.read_text())
    assert data == {"psi": None, "bins": [1.0, None]}
