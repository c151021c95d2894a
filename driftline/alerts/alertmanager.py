"""Forwarding alerts to the Alertmanagers a team already runs, as Prometheus does.

Alertmanager's API takes *alerts*, not notifications: a client posts the list of its active
alerts to ``POST /api/v2/alerts`` (labels, annotations, ``startsAt``, ``endsAt``,
``generatorURL``) and re-sends it while they fire; Alertmanager groups, routes (Slack,
PagerDuty, e-mail, on-call), silences, inhibits and de-duplicates. So the forwarder keeps the
firing alerts and the recently resolved ones, and says *when* to post them:

* at once when the set changes (an alert fires or resolves);
* every ``resend_s`` while any alert fires (Prometheus's ``--rules.alert.resend-delay``), with
  ``endsAt`` = now + 4 x ``resend_s``: if driftline stops, Alertmanager resolves its alerts
  by itself rather than keep them firing for ever;
* a resolved alert with ``endsAt`` = when it resolved, re-sent with the rest for
  ``resolved_retention_s`` (15 min, as Prometheus) so an Alertmanager that missed the first
  post still learns it;
* after a failed post, again after a back-off (1 s doubling to ``resend_s``).

No I/O and no reading of the clock except through ``clock``: the alerting agent posts the
payload to every configured Alertmanager and reports back with ``sent(ok)``.

>>> from driftline.alerts.evaluator import AlertEvent
>>> now = [1000.0]
>>> fw = AlertmanagerForwarder(AlertmanagerConfig(("http://am:9093",), resend_s=60), clock=lambda: now[0])
>>> fw.receive([AlertEvent("f1", "firing", {"alertname": "Drift", "model": "loan"}, {}, 0.3, 0, 60, 0, 0, 990)])
>>> [a["labels"]["alertname"] for a in fw.due()], fw.due()
(['Drift'], None)
>>> fw.sent(True); now[0] += 61; fw.due()[0]["endsAt"]  # re-sent while firing, ends 4 resends ahead
'1970-01-01T00:21:41Z'
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from driftline.alerts.evaluator import AlertEvent
from driftline.alerts.rules import AlertmanagerConfig

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
#: The Grafana dashboard of each metric family (uids in infra/grafana/dashboards), for generatorURL.
DASHBOARDS = {
    "drift": "driftline-drift",
    "data_quality": "driftline-data-quality",
    "fairness": "driftline-fairness",
    "labeling": "driftline-labeling",
    "quality": "driftline-quality",
    "canary": "driftline-canary",
}


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def generator_url(base: str, labels: dict[str, str]) -> str:
    """The dashboard of the alert's family, filtered to its model and version (empty without a base)."""
    if not base:
        return ""
    uid = DASHBOARDS.get(labels.get("family", ""), "driftline-overview")
    query = urllib.parse.urlencode({f"var-{k}": labels[k] for k in ("model", "version", "feature") if labels.get(k)})
    return f"{base}/d/{uid}" + (f"?{query}" if query else "")


def am_labels(labels: dict[str, str]) -> dict[str, str]:
    """Alertmanager takes Prometheus label names only: others get `_` for each character it refuses."""
    out = {}
    for name, value in labels.items():
        key = name if _LABEL_NAME.match(name) else re.sub(r"[^a-zA-Z0-9_]", "_", name)
        out["_" + key if key[:1].isdigit() else key] = str(value)
    return out


class AlertmanagerForwarder:
    def __init__(self, config: AlertmanagerConfig, clock: Callable[[], float] = time.time):
        self.config = config
        self.clock = clock
        self._firing: dict[str, AlertEvent] = {}
        self._resolved: dict[str, AlertEvent] = {}
        self._changed = False
        self._last_sent: float | None = None
        self._retry_at: float | None = None
        self._backoff = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.config.urls)

    def receive(self, events: Iterable[AlertEvent]) -> None:
        for event in events:
            if event.state == "firing":
                self._firing[event.fingerprint] = event
                self._resolved.pop(event.fingerprint, None)
                self._changed = True
            elif event.state == "resolved" and self._firing.pop(event.fingerprint, None) is not None:
                self._resolved[event.fingerprint] = event
                self._changed = True

    def due(self) -> list[dict[str, Any]] | None:
        """The alerts to post now, or None."""
        if not self.enabled:
            return None
        now = self.clock()
        keep = now - self.config.resolved_retention_s
        self._resolved = {fp: e for fp, e in self._resolved.items() if e.at >= keep}
        if not self._firing and not self._resolved:
            return None
        if self._retry_at is not None:
            if now < self._retry_at:
                return None
        elif not self._changed and (
            self._last_sent is not None and (now - self._last_sent < self.config.resend_s or not self._firing)
        ):
            return None
        self._changed = False
        self._last_sent = now
        self._retry_at = now + 3600.0  # in flight: nothing more until sent() reports
        return [self._alert(e, now) for e in [*self._firing.values(), *self._resolved.values()]]

    def sent(self, ok: bool) -> None:
        """The outcome of the post `due()` returned (ok: every Alertmanager took it)."""
        if ok:
            self._retry_at = None
            self._backoff = 1.0
        else:
            self._retry_at = self.clock() + self._backoff
            self._backoff = min(self._backoff * 2, self.config.resend_s)

    def _alert(self, event: AlertEvent, now: float) -> dict[str, Any]:
        firing = event.state == "firing"
        annotations = {k: str(v) for k, v in event.annotations.items()}
        annotations.setdefault("value", f"{event.value:.6g}")
        return {
            "labels": am_labels(event.labels),
            "annotations": annotations,
            "startsAt": rfc3339(min(event.starts_at or event.at, event.at)),
            "endsAt": rfc3339(now + 4 * self.config.resend_s if firing else max(event.at, event.starts_at)),
            "generatorURL": generator_url(self.config.external_url, event.labels),
        }
