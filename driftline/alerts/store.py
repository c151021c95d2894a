"""ClickHouse history of alerting and rollouts: alert state changes, notification attempts,
registry revisions, canary decisions, silences and subscriptions (without secrets).

Rows go in as JSON lines (timestamps as epoch seconds); the tables' replacing keys make a
write replayed after a restart replace its first copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

from driftline.alerts.dispatcher import LogEntry
from driftline.alerts.evaluator import AlertEvent
from driftline.alerts.silences import Silence
from driftline.alerts.subscriptions import Subscription
from driftline.alerts.webhook import Attempt
from driftline.exceptions import SinkError
from driftline.models.canary import Decision
from driftline.models.registry import ModelState
from driftline.sinks.client import ClickHouseClient

_SETTINGS = {"date_time_input_format": "best_effort", "input_format_skip_unknown_fields": 1}


class AlertStore:
    def __init__(self, client: ClickHouseClient, database: str):
        self.client = client
        self.database = database

    def _insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        body = "\n".join(json.dumps(r, separators=(",", ":")) for r in rows).encode()
        try:
            self.client.raw_insert(
                f"{self.database}.{table}", list(rows[0]), insert_block=body, settings=_SETTINGS, fmt="JSONEachRow"
            )
        except Exception as exc:
            raise SinkError(f"ClickHouse insert into {table} failed: {exc}") from exc

    def alert_events(self, events: Iterable[AlertEvent]) -> None:
        self._insert(
            "alert_events",
            [
                {
                    "at": e.at,
                    "fingerprint": e.fingerprint,
                    "alertname": e.labels.get("alertname", ""),
                    "model": e.model,
                    "version": e.labels.get("version", ""),
                    "severity": e.severity,
                    "state": e.state,
                    "labels": e.labels,
                    "annotations": e.annotations,
                    "value": _finite(e.value),
                    "window_start": e.window_start,
                    "window_end": e.window_end,
                    "starts_at": e.starts_at,
                    "ends_at": e.ends_at,
                }
                for e in events
            ],
        )

    def attempts(self, attempts: Iterable[Attempt]) -> None:
        self._insert("alert_notifications", [asdict(a) for a in attempts])

    def log_notification(self, entry: LogEntry) -> None:
        """What a subscription was told about a group by a delivered notification (the nflog)."""
        self._insert(
            "notification_log",
            [
                {
                    "sent_at": entry.sent_at,
                    "group_key": json.dumps([list(pair) for pair in entry.group_key]),
                    "subscription_id": entry.subscription_id,
                    "notification_id": entry.notification_id,
                    "firing": sorted(entry.firing),
                    "resolved": sorted(entry.resolved),
                }
            ],
        )

    def notification_log(self) -> list[LogEntry]:
        """The newest entry of every (group, subscription): what a restarted worker was last heard saying."""
        rows = self.client.query(
            f"""SELECT toUnixTimestamp64Milli(sent_at) / 1000, group_key, subscription_id, notification_id,
                       firing, resolved
                FROM {self.database}.notification_log FINAL"""
        ).result_rows
        return [
            LogEntry(
                tuple((str(k), str(v)) for k, v in json.loads(key)),
                sub,
                nid,
                frozenset(firing),
                frozenset(resolved),
                float(at),
            )
            for at, key, sub, nid, firing, resolved in rows
        ]

    def alerts_to_restore(self, told_firing: Iterable[str] = ()) -> list[AlertEvent]:
        """Each alert's newest state, for the alerts firing now and those in `told_firing` (a
        subscription was told they fire, and may not have heard of their resolution), oldest first."""
        rows = self.client.query(
            f"""SELECT fingerprint, argMax(state, at), argMax(labels, at), argMax(annotations, at),
                       argMax(value, at), toUnixTimestamp64Milli(argMax(window_start, at)) / 1000,
                       toUnixTimestamp64Milli(argMax(window_end, at)) / 1000,
                       toUnixTimestamp64Milli(argMax(starts_at, at)) / 1000,
                       toUnixTimestamp64Milli(argMax(ends_at, at)) / 1000,
                       toUnixTimestamp64Milli(max(at)) / 1000
                FROM {self.database}.alert_events FINAL
                WHERE state != 'pending'
                GROUP BY fingerprint
                HAVING argMax(state, at) = 'firing' OR has({{told:Array(String)}}, fingerprint)
                ORDER BY 10""",
            parameters={"told": sorted(set(told_firing))},
        ).result_rows
        return [
            AlertEvent(
                str(fp),
                str(state),
                dict(labels),
                dict(notes),
                float(value),
                float(ws),
                float(we),
                float(sa),
                float(ea),
                float(at),
            )
            for fp, state, labels, notes, value, ws, we, sa, ea, at in rows
        ]

    def series_values(self, labels: dict[str, str], until: float, n: int) -> dict[float, float]:
        """The last `n` complete windows' values (window end -> value) of the metric series an alert watches."""
        rows = self.client.query(
            f"""SELECT toUnixTimestamp64Milli(window_end) / 1000, value FROM {self.database}.metrics FINAL
                WHERE model = {{m:String}} AND version = {{v:String}} AND family = {{f:String}}
                  AND metric = {{x:String}} AND feature = {{feat:String}} AND segment = {{seg:String}}
                  AND complete = 1 AND window_end <= fromUnixTimestamp64Milli({{until:Int64}}, 'UTC')
                ORDER BY window_end DESC LIMIT {{n:UInt32}}""",
            parameters={
                "m": labels.get("model", ""),
                "v": labels.get("version", ""),
                "f": labels.get("family", ""),
                "x": labels.get("metric", ""),
                "feat": labels.get("feature", ""),
                "seg": labels.get("segment", ""),
                "until": round(until * 1000),
                "n": n,
            },
        ).result_rows
        return {float(end): float(value) for end, value in rows}

    def registry(self, state: ModelState) -> None:
        change = state.change
        self._insert(
            "model_registry",
            [
                {
                    "at": change.at if change else time.time(),
                    "model": state.model,
                    "revision": state.revision,
                    "action": change.action if change else "",
                    "changed_version": change.version if change else "",
                    "changed_by": change.by if change else "",
                    "reason": change.reason if change else "",
                    "locked": int(state.locked),
                    "versions": json.dumps(state.as_dict()["versions"]),
                }
            ],
        )

    def decision(self, decision: Decision, at: float) -> None:
        row = decision.as_dict()
        row["checks"] = json.dumps(row["checks"], default=str)
        row["at"] = at
        row["decision_id"] = row.pop("id")
        self._insert("rollout_decisions", [row])

    def silence(self, silence: Silence) -> None:
        row = silence.as_dict()
        self._insert("silences", [row])

    def subscription(self, sub: Subscription) -> None:
        row = sub.as_dict(with_secret=False)
        row["updated_at"] = time.time()
        self._insert("subscriptions", [row])

    def timeline(self, model: str) -> dict[str, Any]:
        """Alert state changes, canary decisions and registry revisions of `model`, in order."""
        db = self.database
        alerts = self.client.query(
            f"""SELECT toUnixTimestamp64Milli(window_end) / 1000, state, severity, alertname, version,
                       annotations['summary']
                FROM {db}.alert_events FINAL WHERE model = {{m:String}} AND state != 'pending'
                ORDER BY window_end, at""",
            parameters={"m": model},
        ).result_rows
        decisions = self.client.query(
            f"""SELECT toUnixTimestamp64Milli(window_end) / 1000, action, canary, weight_before, weight_after,
                       failed_checks, reason
                FROM {db}.rollout_decisions FINAL WHERE model = {{m:String}} ORDER BY window_end, at""",
            parameters={"m": model},
        ).result_rows
        registry = self.client.query(
            f"""SELECT revision, action, changed_version, changed_by, reason FROM {db}.model_registry FINAL
                WHERE model = {{m:String}} ORDER BY revision""",
            parameters={"m": model},
        ).result_rows
        notifications = dict(
            self.client.query(f"SELECT status, count() FROM {db}.alert_notifications FINAL GROUP BY status").result_rows
        )
        return {"alerts": alerts, "decisions": decisions, "registry": registry, "notifications": notifications}


def _finite(x: float) -> float | None:
    return x if x == x and abs(x) != float("inf") else None
