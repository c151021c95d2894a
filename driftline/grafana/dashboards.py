"""driftline's Grafana dashboards, built in Python from the monitor spec.

Six dashboards over the ClickHouse tables (through the grafana-clickhouse-datasource
plugin): overview (volume, alerts, versions), drift (heatmap and top drifting features),
quality (with label coverage), fairness, data quality, and canary vs primary. Every
dashboard has the template variables model, version, feature and attribute, and
annotations for alert state changes and rollout decisions. Each panel is one SQL query
using the plugin's macros; `panels()` lists them so tests can run every query.

>>> boards = build(MonitorSpec())
>>> sorted(b["uid"] for b in boards)[:3]
['driftline-canary', 'driftline-data-quality', 'driftline-drift']
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftline.spec import MonitorSpec

DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "driftline-clickhouse"}


@dataclass(frozen=True)
class Panel:
    title: str
    sql: str
    kind: str = "timeseries"  # timeseries | table | heatmap | barchart | stat
    unit: str = ""
    threshold: float | None = None
    width: int = 12
    height: int = 8

    @property
    def is_time_series(self) -> bool:
        return self.kind in ("timeseries", "heatmap")


def _metric_series(metric: str, family: str = "", by: str = "version", extra: str = "") -> str:
    fam = f" AND family = '{family}'" if family else ""
    if by != "segment" and "segment" not in extra:
        fam += " AND segment = ''"  # the whole traffic's rows; segments (metrics/segments.py) have their own panels
    return (
        f"SELECT window_start AS time, {by} AS series, value\n"
        f"FROM {{db}}.metrics FINAL\n"
        f"WHERE model = '${{model}}' AND metric = '{metric}'{fam}{extra}\n"
        f"  AND $__timeFilter(window_start)\n"
        f"ORDER BY time"
    )


def _overview() -> tuple[str, list[Panel]]:
    return (
        "driftline: overview",
        [
            Panel("Predictions per window, by version", _metric_series("predictions", "volume")),
            Panel(
                "Alert state changes",
                "SELECT at AS time, state, severity, alertname, version, "
                "annotations['summary'] AS summary\nFROM {db}.alert_events FINAL\n"
                "WHERE model = '${model}' AND $__timeFilter(at)\nORDER BY at DESC LIMIT 200",
                kind="table",
            ),
            Panel(
                "Firing alerts now",
                "SELECT count() AS firing\nFROM (SELECT fingerprint, argMax(state, at) AS s "
                "FROM {db}.alert_events FINAL WHERE model = '${model}' GROUP BY fingerprint)\nWHERE s = 'firing'",
                kind="stat",
                width=6,
            ),
            Panel(
                "Versions (registry)",
                "SELECT changed_version AS version, action, changed_by, reason, revision, at\n"
                "FROM {db}.model_registry FINAL\nWHERE model = '${model}'\nORDER BY revision DESC LIMIT 50",
                kind="table",
                width=18,
            ),
            Panel(
                "Dead letters per minute, by reason",
                # per minute whatever the bucket Grafana picks: the count per $__timeInterval, rescaled
                "SELECT $__timeInterval(received_at) AS time, code AS series, "
                "count() * 60 / $__interval_s AS value\nFROM {db}.dead_letters FINAL\n"
                "WHERE $__timeFilter(received_at)\nGROUP BY time, series ORDER BY time",
            ),
        ],
    )


def _drift(psi: float, versions: str) -> tuple[str, list[Panel]]:
    return (
        "driftline: drift",
        [
            Panel(
                "PSI per feature (heatmap)",
                _metric_series("psi", "drift", by="feature", extra=versions),
                kind="heatmap",
                threshold=psi,
                width=24,
            ),
            Panel(
                "Top drifting features in range",
                "SELECT feature, max(value) AS max_psi, avg(value) AS mean_psi\n"
                "FROM {db}.metrics FINAL\nWHERE model = '${model}' AND metric = 'psi' AND segment = ''"
                + versions
                + "\n"
                "  AND $__timeFilter(window_start)\nGROUP BY feature ORDER BY max_psi DESC LIMIT 10",
                kind="barchart",
                threshold=psi,
            ),
            Panel(
                "Drift share (BH-controlled)",
                _metric_series("drift_share", "drift", extra=versions),
                unit="percentunit",
            ),
            Panel("KS statistic of ${feature}", _metric_series("ks", "drift", extra=" AND feature = '${feature}'")),
            Panel(
                "Mean shift of ${feature} (z vs reference; ADWIN/KSWIN watch it)",
                _metric_series("mean_shift_z", "drift", extra=" AND feature = '${feature}'"),
            ),
            Panel("Multivariate: PCA reconstruction error ratio", _metric_series("pca_error_ratio", "drift")),
            Panel(
                "Drift share of segment ${segment}",
                _metric_series("drift_share", "drift", extra=versions + " AND segment = '${segment}'"),
                unit="percentunit",
            ),
        ],
    )


def _quality(versions: str) -> tuple[str, list[Panel]]:
    return (
        "driftline: prediction quality",
        [
            Panel("Accuracy", _metric_series("accuracy", "quality", extra=versions), unit="percentunit"),
            Panel(
                "Accuracy estimated before labels (CBPE, with its band) beside the realised",
                "SELECT window_start AS time,\n"
                "       concat(version, ' ', if(family = 'quality', 'realised', metric)) AS series, value\n"
                "FROM {db}.metrics FINAL\nWHERE model = '${model}'" + versions + " AND feature = '' AND segment = ''\n"
                "  AND ((family = 'estimated_quality' AND metric IN ('accuracy', 'accuracy_lower', 'accuracy_upper'))"
                " OR (family = 'quality' AND metric = 'accuracy'))\n"
                "  AND $__timeFilter(window_start)\nORDER BY time",
                unit="percentunit",
            ),
            Panel("ROC AUC", _metric_series("roc_auc", "quality", extra=versions)),
            Panel(
                "Accuracy of segment ${segment}",
                _metric_series("accuracy", "quality", extra=versions + " AND segment = '${segment}'"),
                unit="percentunit",
            ),
            Panel("Label coverage", _metric_series("label_coverage", "quality", extra=versions), unit="percentunit"),
            Panel("Label delay (median, s)", _metric_series("label_delay_p50_s", "quality", extra=versions), unit="s"),
            Panel("Latency p99 (ms)", _metric_series("latency_p99_ms", "kpi", extra=versions), unit="ms"),
        ],
    )


def _fairness(versions: str) -> tuple[str, list[Panel]]:
    return (
        "driftline: fairness",
        [
            Panel(
                "Demographic parity difference, by attribute",
                _metric_series("demographic_parity_difference", "fairness", by="feature", extra=versions),
            ),
            Panel(
                "Equalized odds difference, by attribute",
                _metric_series("equalized_odds_difference", "fairness", by="feature", extra=versions),
            ),
            Panel(
                "Selection rate of ${attribute}, by group",
                _metric_series(
                    "selection_rate", "fairness", by="segment", extra=versions + " AND feature = '${attribute}'"
                ),
                unit="percentunit",
                width=24,
            ),
        ],
    )


def _data_quality(versions: str) -> tuple[str, list[Panel]]:
    return (
        "driftline: data quality",
        [
            Panel(
                "Missing rate, by feature",
                _metric_series("missing_rate", "data_quality", by="feature", extra=versions),
                unit="percentunit",
            ),
            Panel(
                "Out-of-range rate, by feature",
                _metric_series("out_of_range_rate", "data_quality", by="feature", extra=versions),
                unit="percentunit",
            ),
            Panel(
                "Type violations, by feature",
                _metric_series("type_violation_rate", "data_quality", by="feature", extra=versions),
                unit="percentunit",
            ),
            Panel(
                "Duplicate event ids",
                _metric_series("duplicate_rate", "data_quality", extra=versions),
                unit="percentunit",
            ),
        ],
    )


def _labeling(versions: str) -> tuple[str, list[Panel]]:
    return (
        "driftline: labels and annotators",
        [
            Panel(
                "Annotator agreement (Krippendorff's alpha)",
                _metric_series("krippendorff_alpha", "labeling", extra=versions),
                threshold=0.67,
            ),
            Panel(
                "Agreement with the other annotators' majority, by annotator",
                _metric_series("annotator_agreement", "labeling", by="segment", extra=versions),
                unit="percentunit",
            ),
            Panel(
                "Confident predictions the labels contradict",
                _metric_series("confident_disagreement_rate", "labeling", extra=versions + " AND feature = ''"),
                unit="percentunit",
            ),
            Panel(
                "Labeling requests per window (active learning)",
                "SELECT window_start AS time, version AS series, toFloat64(count()) AS value\n"
                "FROM {db}.labeling_requests FINAL\nWHERE model = '${model}' AND $__timeFilter(window_start)\n"
                "GROUP BY time, series ORDER BY time",
            ),
        ],
    )


def _canary() -> tuple[str, list[Panel]]:
    return (
        "driftline: canary vs primary",
        [
            Panel("Accuracy by version", _metric_series("accuracy", "quality")),
            Panel("Drift share by version", _metric_series("drift_share", "drift")),
            Panel("Latency p99 by version (ms)", _metric_series("latency_p99_ms", "kpi"), unit="ms"),
            Panel("Shadow disagreement rate", _metric_series("disagreement_rate", "shadow"), unit="percentunit"),
            Panel(
                "Rollout decisions",
                "SELECT window_end AS time, action, canary, weight_before, weight_after, "
                "failed_checks, reason\nFROM {db}.rollout_decisions FINAL\nWHERE model = '${model}' AND "
                "$__timeFilter(window_end)\nORDER BY time DESC LIMIT 200",
                kind="table",
                width=24,
            ),
        ],
    )


def _dashboards(spec: MonitorSpec) -> dict[str, tuple[str, list[Panel]]]:
    psi = spec.defaults.thresholds.psi
    versions = " AND version IN (${version:singlequote})"
    return {
        "driftline-overview": _overview(),
        "driftline-drift": _drift(psi, versions),
        "driftline-quality": _quality(versions),
        "driftline-fairness": _fairness(versions),
        "driftline-data-quality": _data_quality(versions),
        "driftline-labeling": _labeling(versions),
        "driftline-canary": _canary(),
    }


def panels(spec: MonitorSpec, database: str = "driftline") -> Iterator[tuple[str, Panel]]:
    """(dashboard uid, panel) for every panel, with the database filled in."""
    for uid, (_, items) in _dashboards(spec).items():
        for p in items:
            yield uid, Panel(p.title, p.sql.replace("{db}", database), p.kind, p.unit, p.threshold, p.width, p.height)


def _variables(spec: MonitorSpec, database: str) -> list[dict[str, Any]]:
    models = sorted(spec.models)

    def query(name: str, sql: str, multi: bool = False, default: str | None = None) -> dict[str, Any]:
        var: dict[str, Any] = {
            "name": name,
            "label": name,
            "type": "query",
            "datasource": DATASOURCE,
            "query": sql,
            "definition": sql,
            "refresh": 2,
            "multi": multi,
            "includeAll": multi,
            "sort": 1,
        }
        if default is not None:
            var["current"] = {"text": default, "value": default}
        return var

    db = database
    return [
        query("model", f"SELECT DISTINCT model FROM {db}.metrics", default=models[0] if models else None),
        query("version", f"SELECT DISTINCT version FROM {db}.metrics WHERE model = '${{model}}'", multi=True),
        query(
            "feature",
            f"SELECT DISTINCT feature FROM {db}.metrics WHERE model = '${{model}}' AND family = 'drift' "
            "AND feature != '' AND NOT startsWith(feature, '[')",
        ),
        query(
            "attribute", f"SELECT DISTINCT feature FROM {db}.metrics WHERE model = '${{model}}' AND family = 'fairness'"
        ),
        query(
            "segment",
            f"SELECT DISTINCT segment FROM {db}.metrics WHERE model = '${{model}}' "
            "AND family IN ('drift', 'quality') AND segment != ''",
        ),
    ]


#: The ClickHouse plugin version the targets are written for (docker-compose installs it). Without
#: `pluginVersion` the 4.x plugin takes a target for a 3.x one and migrates it, reading the query type
#: from `format` (absent: table), so every time series would turn into a table.
PLUGIN_VERSION = "4.5.1"
#: The plugin's `format` per query type (grafana/sqlds: 0 time series, 1 table, 2 logs, 3 traces).
FORMATS = {"timeSeries": 0, "table": 1}


def _target_meta(query_type: str) -> dict[str, Any]:
    return {
        "pluginVersion": PLUGIN_VERSION,
        "editorType": "sql",
        "queryType": query_type,
        "format": FORMATS[query_type],
    }


def annotation_queries(database: str = "driftline") -> list[dict[str, Any]]:
    """Alert state changes and rollout decisions as annotations on every time series."""
    return [
        {
            "name": "alerts",
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": "red",
            "target": {
                **_target_meta("table"),
                "rawSql": f"SELECT window_end AS time, concat(state, ': ', alertname, ' ', version, ' ', "
                f"annotations['summary']) AS text, severity AS tags\nFROM {database}.alert_events FINAL\n"
                f"WHERE model = '${{model}}' AND state != 'pending' AND $__timeFilter(window_end)",
            },
        },
        {
            "name": "rollouts",
            "datasource": DATASOURCE,
            "enable": True,
            "iconColor": "purple",
            "target": {
                **_target_meta("table"),
                "rawSql": f"SELECT window_end AS time, concat(upper(action), ' ', canary, ': ', reason) AS text, "
                f"action AS tags\nFROM {database}.rollout_decisions FINAL\n"
                f"WHERE model = '${{model}}' AND action != 'hold' AND $__timeFilter(window_end)",
            },
        },
    ]


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    field: dict[str, Any] = {"unit": p.unit} if p.unit else {}
    if p.threshold is not None:
        field["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": p.threshold}],
        }
        field["custom"] = {"thresholdsStyle": {"mode": "line"}}
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": p.width, "h": p.height},
        "fieldConfig": {"defaults": field, "overrides": []},
        "targets": [
            {
                "refId": "A",
                "datasource": DATASOURCE,
                **_target_meta("timeSeries" if p.is_time_series else "table"),
                "rawSql": p.sql,
            }
        ],
    }


def _live_panel(pid: int, y: int) -> dict[str, Any]:
    """Window metrics as they close, from Grafana Live (empty unless the worker pushes; see grafana/live.py)."""
    grafana = {"type": "datasource", "uid": "grafana"}
    return {
        "id": pid,
        "type": "timeseries",
        "title": "Live: window metrics as they close (Grafana Live)",
        "datasource": grafana,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 8},
        "fieldConfig": {"defaults": {}, "overrides": []},
        "targets": [
            {
                "refId": "A",
                "datasource": grafana,
                "queryType": "measurements",
                "channel": "stream/driftline/driftline_metric",
            }
        ],
    }


def build(spec: MonitorSpec, database: str = "driftline") -> list[dict[str, Any]]:
    """The dashboards as Grafana JSON models."""
    out = []
    by_uid: dict[str, list[Panel]] = {}
    for uid, p in panels(spec, database):
        by_uid.setdefault(uid, []).append(p)
    for uid, (title, _) in _dashboards(spec).items():
        items, x, y, row_h = [], 0, 0, 0
        for i, p in enumerate(by_uid[uid], start=1):
            if x + p.width > 24:
                x, y = 0, y + row_h
                row_h = 0
            items.append(_panel_json(p, i, x, y))
            x += p.width
            row_h = max(row_h, p.height)
        if uid == "driftline-overview":
            items.append(_live_panel(len(items) + 1, y + row_h))
        out.append(
            {
                "uid": uid,
                "title": title,
                "tags": ["driftline"],
                "timezone": "utc",
                "schemaVersion": 39,
                "time": {"from": "now-6h", "to": "now"},
                "refresh": "30s",
                "editable": True,
                "templating": {"list": _variables(spec, database)},
                "annotations": {"list": annotation_queries(database)},
                "links": [{"type": "dashboards", "tags": ["driftline"], "asDropdown": True, "title": "driftline"}],
                "panels": items,
            }
        )
    return out


def write(spec: MonitorSpec, directory: Path, database: str = "driftline") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for board in build(spec, database):
        path = directory / f"{board['uid']}.json"
        path.write_text(json.dumps(board, indent=1) + "\n")
        paths.append(path)
    return paths


def push(boards: list[dict[str, Any]], url: str, token: str, folder_uid: str | None = None) -> list[str]:
    """Create or replace the dashboards through Grafana's HTTP API (grafana-client); returns their URLs."""
    from grafana_client.api import GrafanaApi
    from grafana_client.client import GrafanaException

    from driftline.exceptions import DriftlineError

    api = GrafanaApi.from_url(url, credential=token)
    out = []
    for board in boards:
        body: dict[str, Any] = {
            "dashboard": {**board, "id": None},
            "overwrite": True,
            "message": "driftline grafana push",
        }
        if folder_uid:
            body["folderUid"] = folder_uid
        try:
            result = api.dashboard.update_dashboard(body)
        except GrafanaException as exc:
            raise DriftlineError(f"Grafana at {url} refused dashboard {board['uid']}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - connection errors come from niquests
            raise DriftlineError(f"cannot reach Grafana at {url} ({type(exc).__name__}); check --url") from None
        out.append(str(result.get("url", board["uid"])))
    return out
