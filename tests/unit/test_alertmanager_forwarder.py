"""The Alertmanager forwarder's timing (no I/O) and its place in the monitor spec (issue 19.1)."""

from __future__ import annotations

import pytest

from driftline.alerts.alertmanager import AlertmanagerForwarder, am_labels, generator_url
from driftline.alerts.evaluator import AlertEvent
from driftline.alerts.rules import AlertingConfig, AlertmanagerConfig
from driftline.exceptions import ConfigError
from driftline.spec import MonitorSpec


def event(state: str, at: float, fp: str = "f1") -> AlertEvent:
    return AlertEvent(fp, state, {"alertname": "Drift", "model": "m", "family": "drift"}, {}, 0.4, 0, 60, 900, 0, at)


def test_posts_on_change_resends_while_firing_and_keeps_resolved_for_a_while() -> None:
    now = [1000.0]
    fw = AlertmanagerForwarder(AlertmanagerConfig(("http://am",), resend_s=60.0), clock=lambda: now[0])
    assert fw.due() is None
    fw.receive([event("pending", 1000)])
    assert fw.due() is None  # pending alerts are not Alertmanager's business
    fw.receive([event("firing", 1000)])
    (first,) = fw.due() or []
    assert first["startsAt"] == "1970-01-01T00:15:00Z" and first["endsAt"] == "1970-01-01T00:20:40Z"
    assert fw.due() is None  # in flight
    fw.sent(True)
    now[0] = 1030
    assert fw.due() is None  # unchanged and within resend_s
    now[0] = 1061
    assert fw.due() is not None  # re-sent while firing
    fw.sent(True)
    now[0] = 1070
    fw.receive([event("resolved", 1070)])
    (resolved,) = fw.due() or []  # a change: at once
    assert resolved["endsAt"] == "1970-01-01T00:17:50Z"
    fw.sent(True)
    now[0] = 1200
    assert fw.due() is None  # nothing fires: no resend of a resolved-only set
    fw.receive([event("firing", 1200, "f2")])
    assert len(fw.due() or []) == 2  # the new one, and the resolved one kept for 15 min
    fw.sent(True)
    now[0] = 1070 + 901
    fw.receive([event("firing", now[0], "f3")])
    assert {a["endsAt"] > "1970-01-01T00:30" for a in fw.due() or []} == {True}  # the old resolution is gone


def test_failed_posts_back_off() -> None:
    now = [0.0]
    fw = AlertmanagerForwarder(AlertmanagerConfig(("http://am",), resend_s=8.0), clock=lambda: now[0])
    fw.receive([event("firing", 0)])
    times = []
    while now[0] < 30:
        if fw.due() is not None:
            times.append(now[0])
            fw.sent(False)
        now[0] += 0.25
    assert times[:5] == [0.0, 1.0, 3.0, 7.0, 15.0]  # 1, 2, 4, 8 s (capped at resend_s)


def test_labels_urls_and_the_spec() -> None:
    assert am_labels({"alertname": "x", "a.b": "1", "9z": "2"}) == {"alertname": "x", "a_b": "1", "_9z": "2"}
    assert generator_url("", {"model": "m"}) == ""
    assert generator_url("http://g", {"family": "kpi", "model": "m v"}) == "http://g/d/driftline-overview?var-model=m+v"
    spec = MonitorSpec.from_yaml(
        "alerts:\n  alertmanagers: {urls: [http://am1:9093/, http://am2:9093], resend: 30s}\n"
        "  external_url: https://grafana.example/\n"
    )
    assert spec.alerts.alertmanagers == AlertmanagerConfig(
        ("http://am1:9093", "http://am2:9093"), resend_s=30.0, external_url="https://grafana.example"
    )
    short = AlertingConfig.from_dict({"alertmanagers": ["http://am:9093"]})
    assert short.alertmanagers.urls == ("http://am:9093",) and short.alertmanagers.resend_s == 60.0
    with pytest.raises(ConfigError, match="is not an http"):
        AlertingConfig.from_dict({"alertmanagers": ["am:9093"]})
    with pytest.raises(ConfigError, match="unknown setting"):
        AlertingConfig.from_dict({"alertmanagers": {"urls": ["http://am"], "resends": "1m"}})
