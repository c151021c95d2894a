"""Label-side metrics per window (family ``labeling``): inter-annotator agreement and label noise.

Computed by the quality job for the same windows and at the same time as quality, from
the same tables: a window's agreement is over the labels of the predictions in it.

Rows (model, version, window):

* ``krippendorff_alpha``, ``fleiss_kappa`` (k = items with two or more labels),
  ``cohen_kappa`` per pair of annotators (feature ``"a|b"``), ``annotator_agreement`` and
  ``annotator_labels`` per annotator (segment ``annotator=<name>``): their agreement with
  the majority of the others;
* ``confident_disagreement_rate``: of the labelled predictions the model was confident
  about, the share whose label disagrees — overall and per attribute value (feature = the
  attribute, segment = its value).

Alert on them like any metric, e.g. ``{family: labeling, metric: krippendorff_alpha,
below: 0.67, for: 2}``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from driftline.labeling.agreement import (
    MISSING,
    agreement_with_consensus,
    encode,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen,
)
from driftline.metrics.label_noise import ConfidentDisagreement
from driftline.sinks.client import ClickHouseClient

Add = Callable[..., None]  # add(family, metric, value, feature="", segment="", k=0)

#: The label a prediction is scored against: the majority of its annotators' labels (each
#: annotator's newest), ties broken by the newest label. One annotator: their newest label.
CONSENSUS_LABELS = """
    SELECT event_id, argMax(label_norm, (votes, newest)) AS label, argMax(label_ts, (votes, newest)) AS ts
    FROM (SELECT event_id, label_norm, count() AS votes, max(ingested_at) AS newest, max(ts) AS label_ts
          FROM {db}.labels FINAL GROUP BY event_id, label_norm)
    GROUP BY event_id"""


def agreement_by_window(
    client: ClickHouseClient, database: str, model: str, version: str, window_s: int, starts: list[float]
) -> dict[float, list[tuple[str, str, str]]]:
    """(event_id, annotator, label) per window start, for labels that name their annotator."""
    w = int(window_s)
    data = client.query(
        f"""
        SELECT toUnixTimestamp(toStartOfInterval(p.ts, toIntervalSecond({w}), 'UTC')) AS ws,
               p.event_id, l.annotator, l.label_norm
        FROM (SELECT event_id, ts FROM {database}.predictions FINAL
              WHERE model = {{m:String}} AND version = {{v:String}}
                AND toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({w}), 'UTC')) IN {{ws:Array(UInt32)}}
             ) AS p
        INNER JOIN (SELECT event_id, annotator, label_norm FROM {database}.labels FINAL WHERE annotator != ''
                   ) AS l ON p.event_id = l.event_id
        """,
        parameters={"m": model, "v": version, "ws": [int(s) for s in starts]},
    ).result_rows
    out: dict[float, list[tuple[str, str, str]]] = defaultdict(list)
    for ws, event_id, annotator, label in data:
        out[float(ws)].append((str(event_id), str(annotator), str(label)))
    return out


def agreement_rows(labels: list[tuple[str, str, str]], add: Add) -> None:
    """Agreement metrics of one window's annotator labels (nothing when no item has two labels)."""
    if not labels:
        return
    items, annotators, values = zip(*labels, strict=True)
    table, _, names, _ = encode(items, annotators, values)
    multi = int(np.sum((table != MISSING).sum(axis=1) >= 2))
    if multi == 0:
        return
    add("labeling", "annotators", len(names), k=multi)
    add("labeling", "multi_labelled_items", multi, k=multi)
    alpha, kappa = krippendorff_alpha(table), fleiss_kappa(table)
    if np.isfinite(alpha):
        add("labeling", "krippendorff_alpha", alpha, k=multi)
    if np.isfinite(kappa):
        add("labeling", "fleiss_kappa", kappa, k=multi)
    for (a, b), value in pairwise_cohen(table, names, min_overlap=2).items():
        if np.isfinite(value):
            add("labeling", "cohen_kappa", value, f"{a}|{b}", k=multi)
    for ann in agreement_with_consensus(table, names):
        add("labeling", "annotator_labels", ann.labels, segment=f"annotator={ann.annotator}", k=ann.labels)
        if ann.compared:
            add("labeling", "annotator_agreement", ann.agreement, segment=f"annotator={ann.annotator}", k=ann.compared)


def disagreement_rows(
    y: np.ndarray, scores: np.ndarray, attributes: list[dict[str, str]], add: Add, confidence: float = 0.9
) -> None:
    """Confident disagreement overall and per attribute value (binary scores)."""
    overall = ConfidentDisagreement(confidence).update_many(y, scores).get()[""]
    if overall[1] == 0:
        return
    add("labeling", "confident_disagreement_rate", overall[0], k=overall[1])
    for name in sorted({n for attrs in attributes for n in attrs}):
        groups = np.array([attrs.get(name, "(missing)") for attrs in attributes], dtype=object)
        for group, (rate, n) in sorted(ConfidentDisagreement(confidence).update_many(y, scores, groups).get().items()):
            if n:
                add("labeling", "confident_disagreement_rate", rate, name, group, k=n)
