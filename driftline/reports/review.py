"""The model review: one period of a model read from ClickHouse, against the period before, for the
people who meet about it — data science, engineering and product — ending in suggested actions.

``build_review`` queries the ``metrics``, ``alert_events``, ``alert_notifications``,
``silences``, ``rollout_decisions``, ``model_registry``, ``dead_letters`` and ``lineage``
tables; every number in the report comes from one of those queries (the tests recompute
them). ``suggested_actions`` turns the numbers into a short list of actions with the
evidence beside each; the thresholds are ``ReviewThresholds``.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from driftline.sinks.client import ClickHouseClient


@dataclass(frozen=True)
class ReviewThresholds:
    drift_windows: int = 3  # a feature flagged drifted in at least this many windows: retrain
    quality_drop: float = 0.05  # accuracy (or the task's headline metric) fell by more than this
    fairness_gap: float = 0.1  # demographic-parity difference above this ...
    fairness_days: int = 3  # ... on at least this many days
    min_label_coverage: float = 0.5
    min_agreement: float = 0.67  # Krippendorff's alpha
    missing_rate: float = 0.05
    latency_increase: float = 0.2  # p95 latency up by more than 20 %


@dataclass(frozen=True)
class Action:
    audience: str  # data science, engineering, product
    text: str
    evidence: str


def _ts(x: Any) -> float:
    return float(x.timestamp()) if hasattr(x, "timestamp") else float(x)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _nan_none(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


class _Q:
    """Parameterised queries over one model and the two periods."""

    def __init__(self, client: ClickHouseClient, database: str, model: str, start: float, end: float, previous: float):
        self.client, self.db, self.model = client, database, model
        self.params = {"m": model, "a": int(previous * 1000), "s": int(start * 1000), "e": int(end * 1000)}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        text = (
            sql.replace("{db}", self.db)
            .replace("@prev", "fromUnixTimestamp64Milli({a:Int64}, 'UTC')")
            .replace("@start", "fromUnixTimestamp64Milli({s:Int64}, 'UTC')")
            .replace("@end", "fromUnixTimestamp64Milli({e:Int64}, 'UTC')")
        )
        return list(self.client.query(text, parameters=self.params).result_rows)


Stats = dict[str, dict[tuple[str, ...], dict[str, float]]]


class _Pairs:
    """Aggregates per (version, family, metric, feature, segment) in the current and previous period."""

    def __init__(self, q: _Q):
        self.stats: Stats = {"current": {}, "previous": {}}
        for period, version, family, metric, feature, segment, mean, mx, mn, total, n in q.rows(
            """SELECT if(window_start >= @start, 'current', 'previous'), version, family, metric, feature, segment,
                      avg(value), max(value), min(value), sum(value), count()
               FROM {db}.metrics FINAL
               WHERE model = {m:String} AND window_start >= @prev AND window_start < @end AND isFinite(value)
               GROUP BY 1, version, family, metric, feature, segment"""
        ):
            self.stats[period][(version, family, metric, feature, segment)] = {
                "mean": mean,
                "max": mx,
                "min": mn,
                "sum": total,
                "windows": n,
            }

    def __call__(
        self, version: str, family: str, metric: str, feature: str = "", segment: str = "", agg: str = "mean"
    ) -> dict[str, float | None]:
        cur = self.stats["current"].get((version, family, metric, feature, segment), {}).get(agg)
        prev = self.stats["previous"].get((version, family, metric, feature, segment), {}).get(agg)
        return {"current": _nan_none(cur), "previous": _nan_none(prev)}


def _daily(q: _Q) -> dict[str, list[tuple[str, float]]]:
    daily: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for day, version, family, metric, feature, value in q.rows(
        """SELECT toString(toDate(window_start)), version, family, metric, feature, avg(value)
           FROM {db}.metrics FINAL
           WHERE model = {m:String} AND window_start >= @start AND window_start < @end AND segment = ''
             AND isFinite(value)
             AND (metric IN ('accuracy', 'label_coverage', 'latency_p95_ms', 'demographic_parity_difference',
                             'drift_share', 'krippendorff_alpha') OR (family = 'kpi' AND metric = 'sum')
                  OR (family = 'drift' AND metric = 'psi') OR (family = 'volume' AND metric = 'predictions'))
           GROUP BY 1, version, family, metric, feature ORDER BY 1"""
    ):
        daily[f"{version}|{family}|{metric}|{feature}"].append((day, float(value)))
    return dict(daily)


def _drift(q: _Q) -> list[dict[str, Any]]:
    """Features flagged `drifted`, by windows flagged, with their first flagged window."""
    drift = [
        {"version": v, "feature": f, "windows": int(n), "first": _iso(_ts(first)), "max_psi": _nan_none(psi)}
        for v, f, n, first, psi in q.rows(
            """SELECT version, feature, countIf(metric = 'drifted'), minIf(window_start, metric = 'drifted'),
                      maxIf(value, metric = 'psi')
               FROM {db}.metrics FINAL
               WHERE model = {m:String} AND family = 'drift' AND window_start >= @start AND window_start < @end
                 AND feature != '' AND segment = ''
               GROUP BY version, feature HAVING countIf(metric = 'drifted') > 0
               ORDER BY 3 DESC, 5 DESC LIMIT 10"""
        )
    ]
    return drift


def _worst_segments(q: _Q, limit: int = 5) -> list[dict[str, Any]]:
    """Per version, the segments (metrics/segments.py) with the highest drift share and the lowest accuracy."""
    out = []
    for version, segment, drift_share, accuracy, n in q.rows(
        f"""SELECT version, segment, avgIf(value, family = 'drift' AND metric = 'drift_share'),
                   avgIf(value, family = 'quality' AND metric = 'accuracy'),
                   sumIf(value, family = 'volume')
            FROM {{db}}.metrics FINAL
            WHERE model = {{m:String}} AND segment != '' AND family IN ('drift', 'quality', 'volume')
              AND window_start >= @start AND window_start < @end
            GROUP BY version, segment
            ORDER BY version, 3 DESC, 4 ASC LIMIT {int(limit) * 4}"""
    ):
        out.append(
            {
                "version": version,
                "segment": segment,
                "drift_share": _nan_none(drift_share),
                "accuracy": _nan_none(accuracy),
                "predictions": int(n or 0),
            }
        )
    return out


def _fairness(q: _Q, t: ReviewThresholds, pair: _Pairs) -> list[dict[str, Any]]:
    fairness = []
    for version, attr, days_above, mean_gap in q.rows(
        f"""SELECT version, feature, countIf(g > {float(t.fairness_gap)}), avg(g)
            FROM (SELECT version, feature, toDate(window_start) AS d, avg(value) AS g FROM {{db}}.metrics FINAL
                  WHERE model = {{m:String}} AND metric = 'demographic_parity_difference' AND segment = ''
                    AND window_start >= @start AND window_start < @end GROUP BY version, feature, d)
            GROUP BY version, feature ORDER BY version, feature"""
    ):
        gap = pair(version, "fairness", "demographic_parity_difference", attr)
        groups = sorted(
            {
                k[4]
                for p in pair.stats.values()
                for k in p
                if k[:4] == (version, "fairness", "selection_rate", attr) and k[4]
            }
        )
        by_group = {g: pair(version, "fairness", "selection_rate", attr, g) for g in groups}
        fairness.append(
            {
                "version": version,
                "attribute": attr,
                "days_above": int(days_above),
                "mean": mean_gap,
                **gap,
                "selection_rate": by_group,
            }
        )
    return fairness


def _data_quality(q: _Q, t: ReviewThresholds) -> list[dict[str, Any]]:
    dq = [
        {"version": v, "metric": metric, "feature": f, "windows": int(n), "max": mx}
        for v, metric, f, n, mx in q.rows(
            f"""SELECT version, metric, feature, countIf(value > {float(t.missing_rate)}), max(value)
                FROM {{db}}.metrics FINAL
                WHERE model = {{m:String}} AND family = 'data_quality' AND window_start >= @start
                  AND window_start < @end AND segment = ''
                  AND metric IN ('missing_rate', 'type_violation_rate', 'out_of_range_rate', 'duplicate_rate',
                                 'unseen_category_rate')
                GROUP BY version, metric, feature HAVING countIf(value > {float(t.missing_rate)}) > 0
                ORDER BY 4 DESC LIMIT 15"""
        )
    ]
    return dq


def _alerts(q: _Q) -> dict[str, Any]:
    alerts = {
        "fired": [
            {"alertname": a, "version": v, "severity": s, "count": int(n)}
            for a, v, s, n in q.rows(
                """SELECT alertname, version, severity, count() FROM {db}.alert_events FINAL
               WHERE model = {m:String} AND state = 'firing' AND window_end >= @start AND window_end < @end
               GROUP BY alertname, version, severity ORDER BY 4 DESC"""
            )
        ],
        "resolved": int(
            q.rows("""SELECT count() FROM {db}.alert_events FINAL WHERE model = {m:String}
                                  AND state = 'resolved' AND window_end >= @start AND window_end < @end""")[0][0]
        ),
        "silences": [
            {"id": i, "matchers": list(m), "by": b, "comment": c}
            for i, m, b, c in q.rows(
                """SELECT id, matchers, created_by, comment FROM {db}.silences FINAL
               WHERE starts_at < @end AND ends_at > @start ORDER BY starts_at"""
            )
        ],
        "notifications": dict(
            q.rows("""SELECT status, count() FROM {db}.alert_notifications FINAL
                                        WHERE at >= @start AND at < @end GROUP BY status""")
        ),
    }
    return alerts


def _rollouts(q: _Q) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rollout decisions other than hold in the period, and the registry's history up to its end."""
    rollouts = [
        {"at": _iso(_ts(w)), "action": a, "canary": c, "weight_before": wb, "weight_after": wa, "reason": r}
        for w, a, c, wb, wa, r in q.rows(
            """SELECT window_end, action, canary, weight_before, weight_after, reason FROM {db}.rollout_decisions FINAL
               WHERE model = {m:String} AND action != 'hold' AND window_end >= @start AND window_end < @end
               ORDER BY window_end"""
        )
    ]
    registry = [
        {"revision": int(r), "action": a, "version": v, "by": b, "reason": why}
        for r, a, v, b, why in q.rows(
            """SELECT revision, action, changed_version, changed_by, reason FROM {db}.model_registry FINAL
               WHERE model = {m:String} AND at < @end ORDER BY revision"""
        )
    ]
    return rollouts, registry


def build_review(
    client: ClickHouseClient,
    database: str,
    model: str,
    period_s: float,
    end: float | None = None,
    thresholds: ReviewThresholds | None = None,
) -> dict[str, Any]:
    """Everything the review shows, as plain data (see the module docstring)."""
    t = thresholds or ReviewThresholds()
    end = time.time() if end is None else end
    start, previous = end - period_s, end - 2 * period_s
    q = _Q(client, database, model, start, end, previous)
    pair = _Pairs(q)
    versions = sorted({k[0] for k in pair.stats["current"]})
    rollouts, registry = _rollouts(q)
    state = q.rows("""SELECT argMax(versions, revision) FROM {db}.model_registry FINAL WHERE model = {m:String}
                      AND at < @end""")
    in_production = _production_versions(state[0][0] if state and state[0][0] else "")
    lineage = _lineage(client, database, q, sorted(set(in_production) | set(versions)))
    dead = q.rows("""SELECT countIf(received_at >= @start), countIf(received_at < @start) FROM {db}.dead_letters
                     WHERE received_at >= @prev AND received_at < @end""")[0]
    kpi_names = sorted({k[3] for p in pair.stats.values() for k in p if k[1] == "kpi" and k[2] == "sum"})
    review: dict[str, Any] = {
        "model": model,
        "period": {"start": _iso(start), "end": _iso(end), "seconds": period_s},
        "previous": {"start": _iso(previous), "end": _iso(start)},
        "versions": versions,
        "engineering": {
            "predictions": {v: pair(v, "volume", "predictions", agg="sum") for v in versions},
            "latency_ms": {v: {f"p{p}": pair(v, "kpi", f"latency_p{p}_ms") for p in (50, 95, 99)} for v in versions},
            "dead_letters": {"current": int(dead[0]), "previous": int(dead[1])},
            "data_quality_incidents": _data_quality(q, t),
            "alerts": _alerts(q),
        },
        "data_science": {
            "drift": _drift(q),
            "worst_segments": _worst_segments(q),
            "drift_share": {v: pair(v, "drift", "drift_share") for v in versions},
            "quality": {
                v: {
                    m: pair(v, "quality", m)
                    for m in ("accuracy", "roc_auc", "f1", "label_coverage", "mae")
                    if pair(v, "quality", m)["current"] is not None
                }
                for v in versions
            },
            "fairness": _fairness(q, t, pair),
            "labeling": {v: pair(v, "labeling", "krippendorff_alpha") for v in versions},
            # quality estimated before labels (cbpe.py): the numbers to read while labels are missing
            "estimated_quality": {
                v: {
                    m: pair(v, "estimated_quality", m)
                    for m in ("accuracy", "roc_auc", "f1", "f1_macro", "accuracy_error")
                    if pair(v, "estimated_quality", m)["current"] is not None
                }
                for v in versions
            },
        },
        "product": {
            "kpis": {name: {v: pair(v, "kpi", "sum", name, agg="sum") for v in versions} for name in kpi_names},
            "rollouts": rollouts,
            "registry": registry,
            "in_production": in_production,
            "lineage": lineage,
        },
        "daily": _daily(q),
    }
    review["actions"] = [asdict(a) for a in suggested_actions(review, t)]
    return review


def _lineage(client: ClickHouseClient, database: str, q: _Q, versions: list[str]) -> dict[str, list[dict[str, str]]]:
    """Per version: the artefacts recorded for it (params model and version, e.g. by `offline gate
    --register-canary --clickhouse`) and their ancestors in the lineage table, nearest first."""
    from driftline.exceptions import DriftlineError
    from driftline.sinks.lineage import ClickHouseLineage, ancestry

    roots: dict[str, list[str]] = defaultdict(list)
    for version, artefact in q.rows(
        """SELECT JSONExtractString(params, 'version'), artefact_id FROM {db}.lineage FINAL
           WHERE JSONExtractString(params, 'model') = {m:String} ORDER BY created_at"""
    ):
        roots[str(version)].append(str(artefact))
    store = ClickHouseLineage(client, database)
    out: dict[str, list[dict[str, str]]] = {}
    for v in sorted(set(versions) | set(roots)):
        chain: dict[str, Any] = {}
        for root in roots.get(v, []):
            try:
                found = ancestry(root, store)
            except DriftlineError:  # a parent was never stored: show what is there
                found = [a for a in [store.get(root)] if a is not None]
            chain.update({a.artefact_id: a for a in found})
        out[v] = [
            {"artefact": a.artefact_id[:12], "kind": a.kind, "name": a.name, "code_version": a.code_version}
            for a in chain.values()
        ]
    return out


def _production_versions(versions_json: str) -> dict[str, Any]:
    """{version: {stage, weight}} from the registry's versions column (JSON)."""
    if not versions_json:
        return {}
    try:
        raw = json.loads(versions_json)
    except ValueError:
        return {}
    items = raw.values() if isinstance(raw, dict) else raw
    out = {}
    for item in items:
        if isinstance(item, dict) and item.get("stage") in ("production", "canary", "shadow"):
            out[str(item.get("version"))] = {"stage": item.get("stage"), "weight": item.get("weight")}
    return out


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def suggested_actions(review: dict[str, Any], t: ReviewThresholds) -> list[Action]:
    """Actions the numbers call for, each with its evidence; "no action" when nothing does."""
    out: list[Action] = []
    ds, eng, prod = review["data_science"], review["engineering"], review["product"]
    for d in ds["drift"]:
        if d["windows"] >= t.drift_windows:
            out.append(
                Action(
                    "data science",
                    f"retrain {review['model']} {d['version']}: drift on {d['feature']} since {d['first']}",
                    f"flagged drifted in {d['windows']} windows, PSI up to {_fmt(d['max_psi'], 2)}",
                )
            )
    for v, metrics in ds["quality"].items():
        acc = metrics.get("accuracy")
        if (
            acc
            and acc["previous"] is not None
            and acc["current"] is not None
            and acc["previous"] - acc["current"] > t.quality_drop
        ):
            out.append(
                Action(
                    "data science",
                    f"investigate the quality of {v}: accuracy fell from {acc['previous']:.3f} to {acc['current']:.3f}",
                    "mean of the windows in each period",
                )
            )
        cov = metrics.get("label_coverage")
        if cov and cov["current"] is not None and cov["current"] < t.min_label_coverage:
            out.append(
                Action(
                    "data science",
                    f"get more labels for {v}: coverage {cov['current']:.0%}",
                    f"below {t.min_label_coverage:.0%}; quality numbers rest on few labels",
                )
            )
    for f in ds["fairness"]:
        if f["days_above"] >= t.fairness_days:
            out.append(
                Action(
                    "data science",
                    f"fairness gap on {f['attribute']} ({f['version']}) above "
                    f"{t.fairness_gap:g} for {f['days_above']} days",
                    f"demographic-parity difference, mean {_fmt(f['mean'])}",
                )
            )
    for v, alpha in ds["labeling"].items():
        if alpha["current"] is not None and alpha["current"] < t.min_agreement:
            out.append(
                Action(
                    "data science",
                    f"review the labeling guideline: annotator agreement on {v} is {alpha['current']:.2f}",
                    f"Krippendorff's alpha below {t.min_agreement}",
                )
            )
    for inc in eng["data_quality_incidents"]:
        out.append(
            Action(
                "engineering",
                f"fix the upstream data: {inc['metric']} of {inc['feature'] or 'the model'} "
                f"({inc['version']}) up to {inc['max']:.1%}",
                f"above {t.missing_rate:.0%} in {inc['windows']} windows",
            )
        )
    for v, lat in eng["latency_ms"].items():
        p95 = lat["p95"]
        if p95["previous"] and p95["current"] and p95["current"] > p95["previous"] * (1 + t.latency_increase):
            rise = f"p95 {p95['previous']:.1f} -> {p95['current']:.1f} ms"
            out.append(
                Action(
                    "engineering",
                    f"latency of {v} rose: {rise}",
                    f"more than {t.latency_increase:.0%} up on the previous period",
                )
            )
    for a in eng["alerts"]["fired"]:
        if a["severity"] == "critical":
            text = f"critical alert {a['alertname']} on {a['version']} fired {a['count']} time(s): follow it up"
            out.append(Action("engineering", text, "`driftline alerts history` has the timeline"))
    if eng["dead_letters"]["current"] > 0:
        out.append(
            Action(
                "engineering",
                f"{eng['dead_letters']['current']} events went to the dead-letter queue",
                "see `driftline counts` and the dead_letters table for their reasons",
            )
        )
    for r in prod["rollouts"]:
        if r["action"] == "rollback":
            out.append(
                Action(
                    "product",
                    f"canary {r['canary']} was rolled back at {r['at']}; fix before retrying",
                    r["reason"][:200],
                )
            )
        elif r["action"] == "promote":
            out.append(Action("product", f"{r['canary']} was promoted at {r['at']}: announce it", r["reason"][:200]))
    if not out:
        out.append(Action("all", "no action needed", "no threshold was crossed in the period"))
    return out
