"""Shadow analysis: each shadow prediction against the primary's answer to the same request.

Runs in ClickHouse (a join on ``request_id``) for the windows that received shadow
predictions since the last run, and yields per (model, shadow version, window):
``disagreement_rate`` (the predictions differ), ``score_divergence`` (mean absolute score
difference), ``latency_ratio_p50`` (shadow median latency / primary's, interpolated medians as numpy) and ``matched``
(pairs found), in the metrics family ``shadow``. Shadow answers never reach callers; this
only measures them.
"""

from __future__ import annotations

import math

from driftline.metrics.rows import MetricRow
from driftline.sinks.client import ClickHouseClient
from driftline.spec import MonitorSpec


class ShadowJob:
    def __init__(self, client: ClickHouseClient, database: str, spec: MonitorSpec):
        self.client = client
        self.database = database
        self.spec = spec
        self._since_ms = 0

    def run_once(self) -> list[MetricRow]:
        db = self.database
        newest = int(
            self.client.command(
                f"SELECT toUnixTimestamp64Milli(max(ingested_at)) FROM {db}.predictions "
                "WHERE route = 'shadow' AND ingested_at > fromUnixTimestamp64Milli({since:Int64}, 'UTC')",
                parameters={"since": self._since_ms},
            )
            or 0
        )
        if newest <= self._since_ms:
            return []
        touched = self.client.query(
            f"""SELECT DISTINCT model FROM {db}.predictions
                WHERE route = 'shadow' AND ingested_at > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')""",
            parameters={"since": self._since_ms},
        ).result_rows
        rows: list[MetricRow] = []
        for (model,) in touched:
            rows.extend(self._model(str(model)))
        self._since_ms = newest
        return rows

    def _model(self, model: str) -> list[MetricRow]:
        db, w = self.database, int(self.spec.for_model(model).window_s)
        data = self.client.query(
            f"""
            WITH changed AS (
                SELECT DISTINCT toStartOfInterval(ts, toIntervalSecond({w}), 'UTC') AS ws FROM {db}.predictions
                WHERE model = {{m:String}} AND route = 'shadow'
                  AND ingested_at > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC'))
            SELECT s.version, toUnixTimestamp(toStartOfInterval(s.ts, toIntervalSecond({w}), 'UTC')) AS ws, count(),
                   avg(s.prediction_norm != p.prediction_norm),
                   avgIf(abs(s.score - p.score), s.score IS NOT NULL AND p.score IS NOT NULL),
                   quantileExactInclusiveIf(0.5)(s.latency_ms, s.latency_ms IS NOT NULL),
                   quantileExactInclusiveIf(0.5)(p.latency_ms, p.latency_ms IS NOT NULL)
            FROM (SELECT version, ts, request_id, prediction_norm, score, latency_ms FROM {db}.predictions FINAL
                  WHERE model = {{m:String}} AND route = 'shadow' AND request_id != ''
                    AND toStartOfInterval(ts, toIntervalSecond({w}), 'UTC') IN (SELECT ws FROM changed)) AS s
            INNER JOIN (SELECT request_id, prediction_norm, score, latency_ms FROM {db}.predictions FINAL
                        WHERE model = {{m:String}} AND route != 'shadow' AND request_id != '') AS p
            ON s.request_id = p.request_id
            GROUP BY s.version, ws ORDER BY ws
            """,
            parameters={"m": model, "since": self._since_ms},
        ).result_rows
        out = []
        for version, ws, n, disagree, divergence, lat_s, lat_p in data:
            start, end = float(ws), float(ws) + w

            def add(
                metric: str,
                value: float,
                version: str = str(version),
                start: float = start,
                end: float = end,
                n: int = int(n),
            ) -> None:
                if value is not None and not math.isnan(value):
                    out.append(MetricRow(start, end, model, version, "shadow", metric, "", "", float(value), n))

            add("matched", float(n))
            add("disagreement_rate", disagree)
            add("score_divergence", divergence)
            if lat_p and lat_s is not None:
                add("latency_ratio_p50", float(lat_s) / float(lat_p))
        return out
