"""Quality and fairness per window, once labels arrive — attributed to the prediction's window.

Labels come minutes or days after their prediction, so quality cannot be computed when a
window closes. The join lives in ClickHouse instead of worker memory: the `predictions`
and `labels` tables are the TTL-bounded join state, and it survives restarts. Every run
(each minute in the worker, and once at stop) finds the windows that received labels
since the previous run, recomputes their quality and fairness from all their labelled
predictions, and writes the rows; the `metrics` table's ReplacingMergeTree key makes the
new rows replace the old ones. A late label therefore updates its prediction's window.

The task comes from the monitor spec; for a model it does not name, binary classification
is assumed when every label is 0/1 (true/false). Binary: accuracy, precision, recall, F1,
ROC AUC, log loss, Brier and ECE (scores needed for the last four), and per sensitive
attribute the fairness gaps. Regression (numeric labels): MAE, RMSE and MAPE.
Multiclass: accuracy and macro/weighted precision, recall and F1. With several annotators
per prediction, the label scored against is their majority (``label_metrics``), and the
``labeling`` family adds their agreement and the confident-disagreement signal.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from driftline.metrics.detectors import ErrorStreamDetector
from driftline.metrics.fairness import GroupFairness
from driftline.metrics.quality import BinaryQuality, MulticlassQuality, RegressionQuality
from driftline.metrics.rows import MetricRow
from driftline.sinks.client import ClickHouseClient
from driftline.spec import ModelSpec, MonitorSpec
from driftline.streams.label_metrics import CONSENSUS_LABELS, agreement_by_window, agreement_rows, disagreement_rows

log = logging.getLogger(__name__)

_BINARY = {"0", "1"}
T = TypeVar("T")


class QualityJob:
    """Recomputes quality and fairness rows for windows whose labels changed."""

    def __init__(
        self,
        client: ClickHouseClient,
        database: str,
        spec: MonitorSpec | None = None,
        label_ttl_s: int = 7 * 86_400,
        overlap_s: float = 10.0,
        window_s: int | None = None,
    ):
        """`window_s`, when given, replaces the spec's default window (as in MonitoringEngine)."""
        spec = spec or MonitorSpec()
        if window_s is not None:
            spec = MonitorSpec(replace(spec.defaults, window_s=int(window_s)), spec.models)
        self.client = client
        self.database = database
        self.spec = spec
        self.label_ttl_s = int(label_ttl_s)
        # Re-read labels ingested this long before the newest one seen: an insert that began
        # earlier may become visible later. Recomputing a window twice is harmless.
        self.overlap_ms = int(overlap_s * 1000)
        self._since_ms = 0  # labels ingested after this (ms since epoch) are new
        self._newest_ms = 0  # the newest label ingestion time already processed
        # Predictions can be stored after their labels (two topics, fetched independently):
        # such a window is recomputed when the prediction lands.
        self._pred_since_ms = 0
        self._pred_newest_ms = 0
        self._detectors: dict[tuple[str, str], ErrorStreamDetector] = {}
        self._budgets: dict[str, Any] = {}  # model -> PrivacyBudget (when the spec asks for DP)
        self._rng = np.random.default_rng()

    def run_once(self) -> list[MetricRow]:
        """Rows for every window that got labels since the last run."""
        newest_ms = int(
            self.client.command(
                f"SELECT toUnixTimestamp64Milli(max(ingested_at)) FROM {self.database}.labels "
                "WHERE ingested_at > fromUnixTimestamp64Milli({since:Int64}, 'UTC')",
                parameters={"since": self._since_ms},
            )
            or 0
        )
        pred_newest_ms = int(
            self.client.command(
                f"SELECT toUnixTimestamp64Milli(max(ingested_at)) FROM {self.database}.predictions "
                "WHERE ingested_at > fromUnixTimestamp64Milli({since:Int64}, 'UTC')",
                parameters={"since": self._pred_since_ms},
            )
            or 0
        )
        new_labels = newest_ms > self._newest_ms
        if not new_labels and pred_newest_ms <= self._pred_newest_ms:
            return []
        rows: list[MetricRow] = []
        models = set(self._models_with_new_labels()) if new_labels else set()
        late = self._late_prediction_windows()
        models |= {m for m, _ in late}
        for model in sorted(models):
            spec = self.spec.for_model(model)
            if not (spec.on("quality") or spec.on("fairness")):
                continue
            pane = _pane(spec)
            changed = self._changed_panes(model, pane) if new_labels else defaultdict(list)
            for key, starts in late.items():
                if key[0] == model:
                    changed[key] = sorted(set(changed.get(key, [])) | {s // pane * pane for s in starts})
            for (model_, version), panes in changed.items():
                rows.extend(self._compute(model_, version, _windows_holding(panes, spec), spec))
        if new_labels:
            rows.extend(self._error_stream_rows(self._newest_ms, newest_ms))
            self._newest_ms = newest_ms
            self._since_ms = max(self._since_ms, newest_ms - self.overlap_ms)
        if pred_newest_ms > self._pred_newest_ms:
            self._pred_newest_ms = pred_newest_ms
            self._pred_since_ms = max(self._pred_since_ms, pred_newest_ms - self.overlap_ms)
        return rows

    def _late_prediction_windows(self) -> dict[tuple[str, str], list[float]]:
        """Event times of predictions stored since the last run whose labels were stored before them."""
        db = self.database
        result = self.client.query(
            f"""
            SELECT p.model, p.version, groupUniqArray(toUnixTimestamp(toStartOfMinute(p.ts)))
            FROM (SELECT model, version, ts, event_id, ingested_at FROM {db}.predictions
                  WHERE ingested_at > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')) AS p
            INNER JOIN (SELECT event_id, min(ingested_at) AS first_label FROM {db}.labels
                        WHERE ingested_at > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC') - toIntervalSecond(900)
                        GROUP BY event_id) AS l ON p.event_id = l.event_id
            WHERE l.first_label <= p.ingested_at
            GROUP BY p.model, p.version
            """,
            parameters={"since": self._pred_since_ms},
        ).result_rows
        return {(str(m), str(v)): [float(x) for x in starts] for m, v, starts in result}

    def _error_stream_rows(self, after_ms: int, upto_ms: int) -> list[MetricRow]:
        """Feed each newly labelled prediction's error, in event-time order, to HDDM_A per version."""
        db = self.database
        data = self.client.query(
            f"""
            SELECT p.model, p.version, toUnixTimestamp64Milli(p.ts) / 1000, p.prediction_norm, l.label
            FROM {db}.predictions AS p FINAL
            INNER JOIN (SELECT event_id, argMax(label_norm, ingested_at) AS label FROM {db}.labels
                        WHERE ingested_at > fromUnixTimestamp64Milli({{a:Int64}}, 'UTC')
                          AND ingested_at <= fromUnixTimestamp64Milli({{b:Int64}}, 'UTC')
                        GROUP BY event_id) AS l ON p.event_id = l.event_id
            ORDER BY p.model, p.version, p.ts
            """,
            parameters={"a": after_ms, "b": upto_ms},
        ).result_rows
        by_version: dict[tuple[str, str], list[tuple[float, bool]]] = defaultdict(list)
        for model, version, ts, pred, label in data:
            by_version[(model, version)].append((float(ts), pred != label))
        rows = []
        for (model, version), items in by_version.items():
            spec = self.spec.for_model(model)
            if not spec.on("quality") or (spec.task == "regression" and model in self.spec.models):
                continue
            detector = self._detectors.setdefault((model, version), ErrorStreamDetector())
            pane = _pane(spec)
            for i in detector.update_many([err for _, err in items]):
                # the window that closes with the alarm's pane (the tumbling window itself when not sliding)
                start = items[i][0] // pane * pane + pane - spec.window_s
                rows.append(
                    MetricRow(
                        start, start + spec.window_s, model, version, "quality", "error_drift_alarm", "", "", 1.0, 1
                    )
                )
        return rows

    def _new_labels_filter(self) -> str:
        db = self.database
        return f"""p.event_id IN (
                SELECT event_id FROM {db}.labels WHERE ingested_at > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC'))
              AND p.ts >= (SELECT min(ts) FROM {db}.labels
                           WHERE ingested_at > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC'))
                          - toIntervalSecond({self.label_ttl_s})"""

    def _models_with_new_labels(self) -> list[str]:
        rows = self.client.query(
            f"SELECT DISTINCT p.model FROM {self.database}.predictions AS p WHERE {self._new_labels_filter()}",
            parameters={"since": self._since_ms},
        ).result_rows
        return sorted(str(r[0]) for r in rows)

    def _changed_panes(self, model: str, pane_s: int) -> dict[tuple[str, str], list[float]]:
        """Starts of the panes (slides; whole windows when tumbling) holding newly labelled predictions."""
        db, w = self.database, int(pane_s)
        result = self.client.query(
            f"""
            SELECT p.model, p.version,
                   toUnixTimestamp(toStartOfInterval(p.ts, toIntervalSecond({w}), 'UTC')) AS ws
            FROM {db}.predictions AS p
            WHERE p.model = {{m:String}} AND p.event_id IN (
                SELECT event_id FROM {db}.labels WHERE ingested_at > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC'))
              AND p.ts >= (SELECT min(ts) FROM {db}.labels
                           WHERE ingested_at > fromUnixTimestamp64Milli({{since:Int64}}, 'UTC'))
                          - toIntervalSecond({self.label_ttl_s})
            GROUP BY p.model, p.version, ws
            """,
            parameters={"since": self._since_ms, "m": model},
        ).result_rows
        out: dict[tuple[str, str], list[float]] = defaultdict(list)
        for model, version, ws in result:
            out[(model, version)].append(float(ws))
        return out

    def _compute(self, model: str, version: str, starts: list[float], spec: ModelSpec) -> list[MetricRow]:
        """Rows of the windows that begin at `starts`, each from all the predictions in it.

        Predictions are read by pane and each pane's rows go to every window that holds it:
        one window when tumbling, window/slide windows when sliding.
        """
        db, w = self.database, _pane(spec)
        panes = _panes_of(starts, spec)
        data = self.client.query(
            f"""
            SELECT toUnixTimestamp(toStartOfInterval(p.ts, toIntervalSecond({w}), 'UTC')) AS ws,
                   p.prediction_norm, p.score, l.label, p.attributes,
                   if(l.event_id = '', nan, (toUnixTimestamp64Milli(l.ts) - toUnixTimestamp64Milli(p.ts)) / 1000),
                   arrayMap(f -> JSONExtract(p.features, f, 'Nullable(Float64)'), {{pf:Array(String)}})
            FROM (SELECT event_id, ts, prediction_norm, score, attributes, features FROM {db}.predictions FINAL
                  WHERE model = {{m:String}} AND version = {{v:String}}
                    AND toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({w}), 'UTC')) IN {{ws:Array(UInt32)}}
                 ) AS p
            LEFT JOIN ({CONSENSUS_LABELS.format(db=db)}) AS l
            ON p.event_id = l.event_id
            SETTINGS join_use_nulls = 0
            """,
            parameters={
                "m": model,
                "v": version,
                "ws": [int(s) for s in panes],
                "pf": [seg.feature for seg in spec.segments if seg.feature],  # predicate segments' features
            },
        ).result_rows
        by_pane: dict[float, list[tuple[Any, ...]]] = defaultdict(list)
        for row in data:
            by_pane[float(row[0])].append(row[1:])
        by_window = _into_windows(by_pane, starts, spec)
        rows: list[MetricRow] = []
        annotated = (
            _into_windows(agreement_by_window(self.client, db, model, version, w, panes), starts, spec)
            if spec.on("labeling")
            else {}
        )
        for start, items in sorted(by_window.items()):
            rows.extend(self._window_rows(model, version, start, items, spec, annotated.get(start, [])))
        if spec.on("estimated_quality"):
            rows += self._estimation_errors(model, version, rows)
        return rows

    def _estimation_errors(self, model: str, version: str, realised: list[MetricRow]) -> list[MetricRow]:
        """Once labels arrive: each estimated metric (cbpe.py) minus the realised one, per window.

        The realised value is over the window's labelled predictions, the estimate over all of them:
        with partial label coverage the difference also holds which predictions got labels."""
        wanted = {(r.window_start, r.metric): r for r in realised if r.family == "quality" and r.metric in ESTIMATED}
        if not wanted:
            return []
        data = self.client.query(
            f"""SELECT toUnixTimestamp64Milli(window_start), metric, argMax(value, computed_at)
                FROM {self.database}.metrics
                WHERE model = {{m:String}} AND version = {{v:String}} AND family = 'estimated_quality'
                  AND metric IN {{metrics:Array(String)}} AND feature = '' AND segment = ''
                  AND toUnixTimestamp(window_start) IN {{ws:Array(UInt32)}}
                GROUP BY window_start, metric""",
            parameters={
                "m": model,
                "v": version,
                "metrics": sorted(ESTIMATED),
                "ws": sorted({int(start) for start, _ in wanted}),
            },
        ).result_rows
        out = []
        for start_ms, metric, estimate in data:
            row = wanted.get((start_ms / 1000, str(metric)))
            if row is not None:
                out.append(
                    replace(row, family="estimated_quality", metric=f"{metric}_error", value=estimate - row.value)
                )
        return out

    def _window_rows(
        self,
        model: str,
        version: str,
        start: float,
        items: list[tuple[Any, ...]],
        spec: ModelSpec,
        annotated: Sequence[tuple[str, str, str]] = (),
    ) -> list[MetricRow]:
        end = start + spec.window_s
        n = len(items)
        labelled = [it for it in items if it[2] != ""]
        out: list[MetricRow] = []

        def add(family: str, metric: str, value: float, feature: str = "", segment: str = "", k: int = 0) -> None:
            out.append(MetricRow(start, end, model, version, family, metric, feature, segment, float(value), k))

        add("quality", "label_coverage", len(labelled) / n if n else 0.0, k=n)
        if not labelled:
            return out
        if spec.on("labeling"):
            agreement_rows(list(annotated), add)
        delays = np.array([it[4] for it in labelled], dtype=np.float64)
        add("quality", "label_delay_mean_s", float(np.nanmean(delays)), k=len(labelled))
        add("quality", "label_delay_p50_s", float(np.nanmedian(delays)), k=len(labelled))
        preds = [it[0] for it in labelled]
        labels = [it[2] for it in labelled]
        k = len(labelled)
        task = self._task(model, spec, preds, labels)
        if task != "regression" and spec.on("data_quality"):
            classes, counts = np.unique(np.array(labels, dtype=str), return_counts=True)
            for cls, count in zip(classes.tolist(), counts.tolist(), strict=True):
                add("data_quality", "label_share", count / k, segment=f"class={cls}", k=k)
        if task == "binary":
            positive = spec.positive_class
            y = np.array([lab == positive for lab in labels], dtype=np.int64)
            p = np.array([pred == positive for pred in preds], dtype=np.int64)
            scores = [it[1] for it in labelled]
            if all(s is not None for s in scores):
                q = BinaryQuality().update_many(y, np.array(scores, dtype=np.float64)).get()
            else:
                q = BinaryQuality().update_many(y, p.astype(np.float64)).get()
                q = {m: v for m, v in q.items() if m in ("accuracy", "precision", "recall", "f1")}
            if spec.on("quality"):
                for metric, value in q.items():
                    add("quality", metric, value, k=k)
            if spec.on("fairness"):
                self._fairness(model, labelled, y, p, add, spec)
            if spec.on("labeling") and all(s is not None for s in scores):
                disagreement_rows(y, np.array(scores, dtype=np.float64), [it[3] for it in labelled], add)
        elif task == "regression" and spec.on("quality"):
            r = RegressionQuality().update_many(np.array(labels, float), np.array(preds, float)).get()
            for metric, value in r.items():
                add("quality", metric, value, k=k)
        elif spec.on("quality"):
            for metric, value in MulticlassQuality().update_many(labels, preds).get().items():
                add("quality", metric, value, k=k)
        if spec.segments and spec.on("quality"):
            for label, members in _segments_of(items, spec).items():
                seg_labelled = [it for it in members if it[2] != ""]
                add("quality", "label_coverage", len(seg_labelled) / len(members), segment=label, k=len(members))
                if seg_labelled:
                    for metric, value in _quality(task, spec, seg_labelled).items():
                        add("quality", metric, value, segment=label, k=len(seg_labelled))
        return out

    def _task(self, model: str, spec: ModelSpec, preds: list[str], labels: list[str]) -> str:
        """The spec's task for a model it names; otherwise inferred from the values."""
        if model in self.spec.models:
            if spec.task == "regression" and not (_all_numeric(labels) and _all_numeric(preds)):
                log.warning("model %s: task is regression but labels or predictions are not numbers", model)
                return "multiclass"
            return spec.task
        if set(labels) <= _BINARY and set(preds) <= _BINARY:
            return "binary"
        return "regression" if _all_numeric(labels) and _all_numeric(preds) else "multiclass"

    def _private_fairness(
        self, model: str, name: str, y: np.ndarray, p: np.ndarray, groups: np.ndarray, add: Any, spec: ModelSpec
    ) -> None:
        from driftline.metrics.private_fairness import BudgetExhausted, PrivacyBudget, private_group_metrics

        privacy = spec.privacy
        assert privacy is not None  # the caller runs this only for models with a privacy section
        budget = self._budgets.get(model)
        if budget is None:
            # The spend survives restarts: it is the largest `dp_epsilon_spent` published so far.
            # Privacy is lost when noisy numbers are published, and they are published together with
            # that row, so a crash between a release and its row spent nothing that is not recorded.
            spent = self.client.command(
                f"SELECT max(value) FROM {self.database}.metrics WHERE model = {{m:String}} "
                "AND family = 'fairness' AND metric = 'dp_epsilon_spent'",
                parameters={"m": model},
            )
            budget = self._budgets[model] = PrivacyBudget(epsilon=privacy.budget)
            budget.spent_epsilon = min(float(spent or 0.0), budget.epsilon)
        try:
            fair = private_group_metrics(y, p, groups, privacy, budget, spec.thresholds.min_group_size, self._rng)
        except BudgetExhausted:
            add("fairness", "dp_budget_exhausted", 1.0, name)
            log.warning(
                "model %s: differential-privacy budget spent; fairness of %s is no longer published", model, name
            )
            return
        for metric in ("demographic_parity_difference", "equalized_odds_difference", "equal_opportunity_difference"):
            if metric in fair:
                add("fairness", metric, fair[metric], name, k=len(y))
        add("fairness", "dp_epsilon_spent", budget.spent_epsilon, name)
        add("fairness", "dp_noise_scale", fair["noise_scale"], name)
        for group, stats in fair["groups"].items():
            for metric in ("selection_rate", "tpr", "fpr"):
                if not np.isnan(stats[metric]):
                    add("fairness", metric, stats[metric], name, group, k=max(0, round(stats["size"])))
            if group in fair["flagged"]:
                add("fairness", "dp_flagged", 1.0, name, group)

    def _fairness(
        self, model: str, labelled: list[tuple[Any, ...]], y: np.ndarray, p: np.ndarray, add: Any, spec: ModelSpec
    ) -> None:
        k = len(labelled)
        names = sorted({name for it in labelled for name in it[3]})
        if spec.sensitive_attributes is not None:
            names = [n for n in names if n in spec.sensitive_attributes]
        for name in names:
            groups = np.array([it[3].get(name, "(missing)") for it in labelled], dtype=object)
            if spec.privacy is not None:
                self._private_fairness(model, name, y, p, groups, add, spec)
                continue
            fair = GroupFairness(spec.thresholds.min_group_size).update_many(y, p, groups).get()
            for metric in (
                "demographic_parity_difference",
                "demographic_parity_ratio",
                "equalized_odds_difference",
                "equal_opportunity_difference",
            ):
                if metric in fair:
                    add("fairness", metric, fair[metric], name, k=k)
            for group, stats in fair["groups"].items():
                # each rate with its denominator as n; a TPR (FPR) without positives (negatives) is a row
                # of value NaN (null in JSON) and n 0, so a dashboard shows the group and why it has none
                for metric, of in (("selection_rate", "size"), ("tpr", "positives"), ("fpr", "negatives")):
                    add("fairness", metric, stats[metric], name, group, k=int(stats[of]))


def _quality(task: str, spec: ModelSpec, labelled: list[tuple[Any, ...]]) -> dict[str, float]:
    """The quality metrics of some labelled predictions (one segment's), as the whole window's are computed."""
    preds = [it[0] for it in labelled]
    labels = [it[2] for it in labelled]
    if task == "binary":
        y = np.array([lab == spec.positive_class for lab in labels], dtype=np.int64)
        scores = [it[1] for it in labelled]
        if all(s is not None for s in scores):
            return BinaryQuality().update_many(y, np.array(scores, dtype=np.float64)).get()
        p = np.array([pred == spec.positive_class for pred in preds], dtype=np.float64)
        q = BinaryQuality().update_many(y, p).get()
        return {m: v for m, v in q.items() if m in ("accuracy", "precision", "recall", "f1")}
    if task == "regression":
        return RegressionQuality().update_many(np.array(labels, float), np.array(preds, float)).get()
    return MulticlassQuality().update_many(labels, preds).get()


def _segments_of(items: list[tuple[Any, ...]], spec: ModelSpec) -> dict[str, list[tuple[Any, ...]]]:
    """A window's predictions per segment (metrics/segments.py): an attribute's top-K values by the window's
    volume plus "other", or a predicate on a feature (its values are the query's last column)."""
    out: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    predicate = 0
    for seg in spec.segments:
        if seg.attribute:
            values = [dict(it[3]).get(seg.attribute) for it in items]
            counts = Counter(v for v in values if v is not None)
            top = {v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: seg.top_k]}
            for it, label in zip(items, seg.labels(values, top), strict=True):
                out[label].append(it)
        else:
            mask = seg.mask([it[5][predicate] for it in items])
            out[seg.name] += [it for it, m in zip(items, mask, strict=True) if m]
            predicate += 1
    return dict(out)


#: The metrics both estimated before labels (metrics/cbpe.py) and realised once they arrive.
#: The _macro ones are multiclass, one versus the rest.
ESTIMATED = frozenset(
    {"accuracy", "precision", "recall", "f1", "roc_auc", "precision_macro", "recall_macro", "f1_macro"}
)


def _pane(spec: ModelSpec) -> int:
    """The unit windows are made of: the slide when windows slide, else the window itself."""
    return spec.slide_s or spec.window_s


def _windows_holding(panes: Sequence[float], spec: ModelSpec) -> list[float]:
    """Starts of every window that holds one of `panes` (a window ends where one of its panes ends)."""
    pane, k = _pane(spec), spec.window_s // _pane(spec)
    return sorted({p - j * pane for p in panes for j in range(k)})


def _panes_of(starts: Sequence[float], spec: ModelSpec) -> list[float]:
    """Starts of the panes that make up the windows beginning at `starts`."""
    pane, k = _pane(spec), spec.window_s // _pane(spec)
    return sorted({s + j * pane for s in starts for j in range(k)})


def _into_windows(by_pane: dict[float, list[T]], starts: Sequence[float], spec: ModelSpec) -> dict[float, list[T]]:
    """Each pane's items in every window (of those beginning at `starts`) that holds the pane."""
    pane, k = _pane(spec), spec.window_s // _pane(spec)
    wanted = set(starts)
    out: dict[float, list[T]] = defaultdict(list)
    for p, items in sorted(by_pane.items()):
        for j in range(k):
            if p - j * pane in wanted:
                out[p - j * pane].extend(items)
    return out


def _all_numeric(values: list[str]) -> bool:
    try:
        np.array(values, dtype=np.float64)
    except ValueError:
        return False
    return True
