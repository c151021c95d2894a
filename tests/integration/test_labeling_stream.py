"""The label side through the real broker and ClickHouse: several annotators per prediction (each
with a guideline version), agreement per window equal to the reference implementations, the
majority label scored, the confident-disagreement signal per segment, and an alert on an
agreement drop."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score

from driftline.alerts.evaluator import AlertEvaluator
from driftline.alerts.rules import AlertingConfig
from driftline.config import Settings
from driftline.labeling.agreement import MISSING
from driftline.producer import Producer
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.spec import MonitorSpec
from driftline.streams.ingest import BatchIngestor
from driftline.streams.quality_job import QualityJob
from tests.integration.conftest import ingested, run_ingestor

W = 300
ANNOTATORS = ("ann", "bob", "cyd")


def test_agreement_majority_labels_and_noise_signal_per_window(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    rng = np.random.default_rng(11)
    t0 = float(int(time.time() // W * W) - 3600)
    n = 900  # 300 per window
    truth = rng.integers(0, 2, n)
    scores = np.clip(np.where(truth == 1, rng.normal(0.8, 0.12, n), rng.normal(0.2, 0.12, n)), 0, 1)
    vendor = np.where(rng.uniform(size=n) < 0.5, "a", "b")
    given: dict[tuple[int, str], int] = {}
    for i in range(n):
        window = i * 3 // n
        for ann in ANNOTATORS:
            if ann == "cyd" and rng.uniform() < 0.3:
                continue  # cyd skips some items: missing ratings
            careless = ann == "cyd" and window == 2  # cyd stops reading the guideline in window 2
            right = rng.uniform() < (0.5 if careless else 0.93)
            given[(i, ann)] = int(truth[i]) if right else 1 - int(truth[i])
    with Producer(settings.broker, topic_prefix=settings.topic_prefix) as producer:
        for i in range(n):
            producer.log_prediction(
                model="credit",
                version="v1",
                features={"x": float(scores[i])},
                prediction=int(scores[i] >= 0.5),
                score=float(scores[i]),
                attributes={"vendor": str(vendor[i])},
                event_id=f"e{i}",
                ts=t0 + i * (3 * W / n),
            )
        for (i, ann), label in given.items():
            producer.log_label(
                f"e{i}",
                label,
                ts=t0 + i * (3 * W / n) + 60,
                annotator=ann,
                guideline_version="2026-11" if ann != "cyd" else "2026-10",
            )
    run_ingestor(BatchIngestor(settings, sink), ingested(n + len(given)))
    db = settings.clickhouse_database
    stored = Counter(sink.client.query(f"SELECT guideline_version FROM {db}.labels FINAL").result_rows)
    assert stored[("2026-11",)] == 2 * n and stored[("2026-10",)] == len(given) - 2 * n

    rows = QualityJob(sink.client, db, MonitorSpec.from_dict({"defaults": {"window": W}}), overlap_s=0).run_once()
    wanted = [r for r in rows if r.family in ("labeling", "quality")]
    got = {(r.window_start, r.metric, r.feature, r.segment): r.value for r in wanted}
    alphas = []
    for w in range(3):
        start = t0 + w * W
        items = [i for i in range(n) if i * 3 // n == w]
        table = np.array([[given.get((i, a), MISSING) for a in ANNOTATORS] for i in items])
        reference = krippendorff.alpha(
            reliability_data=np.where(table == MISSING, np.nan, table).T.astype(float), level_of_measurement="nominal"
        )
        alphas.append(got[(start, "krippendorff_alpha", "", "")])
        assert alphas[-1] == pytest.approx(reference, abs=1e-9)
        both = (table[:, 0] != MISSING) & (table[:, 2] != MISSING)
        assert got[(start, "cohen_kappa", "ann|cyd", "")] == pytest.approx(
            cohen_kappa_score(table[both, 0], table[both, 2]), abs=1e-9
        )
        # quality is scored against the majority of the annotators (ties: the newest label)
        majority = [Counter(v for v in row if v != MISSING).most_common(1)[0][0] for row in table]
        has_tie = [
            len(set(Counter(v for v in row if v != MISSING).values())) == 1
            and (row != MISSING).sum() == 2
            and len(set(row[row != MISSING])) == 2
            for row in table
        ]
        clear = ~np.array(has_tie)
        preds = (scores[items] >= 0.5).astype(int)
        acc_clear = accuracy_score(np.array(majority)[clear], preds[clear])
        assert abs(got[(start, "accuracy", "", "")] - acc_clear) <= has_tie.count(True) / len(items)
        # the noise signal per vendor equals its definition
        labels = np.array(majority)
        confident = (scores[items] >= 0.9) | (scores[items] <= 0.1)
        for v in ("a", "b"):
            m = confident & (vendor[items] == v) & clear
            expected = float(np.mean(preds[m] != labels[m]))
            tie_slack = int((confident & (vendor[items] == v) & ~clear).sum()) / max(1, int(m.sum()))
            assert abs(got[(start, "confident_disagreement_rate", "vendor", v)] - expected) <= tie_slack + 1e-9
    assert alphas[2] < 0.6 < min(alphas[:2])
    agreement = {
        (w, a): got[(t0 + w * W, "annotator_agreement", "", f"annotator={a}")] for w in range(3) for a in ANNOTATORS
    }
    assert agreement[(2, "cyd")] < 0.65 < 0.85 < agreement[(1, "cyd")]

    rules = AlertingConfig.from_dict(
        {
            "rules": [
                {"name": "AnnotatorAgreementDrop", "family": "labeling", "metric": "krippendorff_alpha", "below": 0.6}
            ]
        }
    ).rules
    fired = AlertEvaluator(rules).observe(sorted(rows, key=lambda r: r.window_start))
    assert [(e.state, e.labels["model"]) for e in fired] == [("firing", "credit")]
    assert fired[0].window_start == t0 + 2 * W  # window 2, the careless one
