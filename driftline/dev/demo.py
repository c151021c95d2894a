"""`driftline demo`: the whole embedded stack on one machine, in about a minute.

A Hoeffding tree (River) is trained on River's Agrawal loan-approval stream. The demo
then replays 100 minutes of its predictions while the world changes half-way (River's
ConceptDriftStream switches the labelling function, and salaries inflate by 30 %). A
second version, trained on far less data, starts as a 10 % canary: requests are routed by
driftline's routing client, which follows the registry on the control topic, and the
worker's canary analysis rolls the canary back once its accuracy has failed twice; a local
webhook receiver gets the signed alert notifications. Labels arrive minutes later for ~80 % of predictions. One
message in 500 of each kind is broken on purpose, cycling through every kind of bad
input, to show the dead-letter path. The worker runs as a separate process (a Faust
worker), exactly as in production; the demo checks at the end that ClickHouse holds
exactly what was sent.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from driftline.config import Settings
from driftline.dev.broker import EmbeddedBroker, free_port
from driftline.events import FeatureValue, Label, Prediction
from driftline.exceptions import DriftlineError

MODEL = "loan-approval"
#: Progress bars only on a terminal; logs get the summary.
_QUIET = not sys.stderr.isatty()
SIM_MINUTES = 100
CATEGORICAL = ("elevel", "car", "zipcode")

#: Broken messages the demo sends, one of each in turn: (expected dlq code, payload).
BAD_MESSAGES: list[tuple[str, bytes]] = [
    ("malformed", b'{"event_id": "x", "model": '),
    (
        "wrong_type",
        b'{"event_id": "b1", "model": "loan-approval", "version": "v1", "ts": "yesterday", "prediction": 1}',
    ),
    ("missing_field", b'{"event_id": "b2", "version": "v1", "ts": 1700000000, "prediction": 1}'),
    ("malformed", b'{"event_id": "b3", "model": "m", "version": "v1", "ts": 1700000000, "prediction": NaN}'),
    ("unknown_schema_version", b'{"schema_version": 9, "event_id": "b4", "label": 1, "ts": 1700000000}'),
    ("not_utf8", b'{"event_id": "\xff\xfe", "label": 1, "ts": 1700000000}'),
    ("oversize", b'{"event_id": "b5", "label": "' + b"x" * 1_200_000 + b'", "ts": 1700000000}'),
    (
        "out_of_range",
        b'{"event_id": "b6", "model": "m", "version": "v1", "ts": 1700000000, "prediction": 1, "score": 7}',
    ),
]


#: What the demo's worker watches, when it alerts, and how it judges the canary.
DEMO_SPEC = """\
defaults:
  window: 5m
  allowed_lateness: 1m
  canary:
    max_failed_checks: 2       # failed analysis intervals before an automatic rollback
    step_weight: 10
    max_weight: 50
    min_samples: 25            # labelled canary predictions per window before accuracy counts
    checks: {accuracy_drop: 0.1, parity_gap_increase: 0.25}
alerts:
  group_by: [alertname, model, version]
  group_wait: 1s
  group_interval: 3s
  rules:
    - name: FeatureDrift
      family: drift
      metric: psi
      above: 0.25
      for: 2
      severity: warning
      annotations:
        summary: "PSI of {feature} is {value:.2f} on {model} {version}"
        runbook_url: https://driftline.dev/runbooks/feature-drift
    - name: AccuracyDrop
      family: quality
      metric: accuracy
      relative: {below: 0.2, windows: 3}
      severity: critical
      annotations: {summary: "accuracy of {model} {version} fell to {value:.2f}"}
    - name: ErrorStreamDrift
      metric: error_drift_alarm
      detector: true
      severity: warning
    - name: AnnotatorAgreementDrop
      family: labeling
      metric: krippendorff_alpha
      below: 0.67
      severity: warning
      annotations: {summary: "annotators of {model} {version} agree less (alpha {value:.2f}): check the guideline"}
  inhibit:
    - {source: [alertname=AccuracyDrop], target: [alertname=ErrorStreamDrift], equal: [model, version]}
models:
  loan-approval:
    labeling: {budget_per_window: 10, strategy: margin}   # active learning: ask for the 10 least certain
"""


@dataclass
class DemoOptions:
    events: int = 60_000
    rate: float = 2_000.0
    data_dir: str = ".driftline/demo"
    seed: int = 42
    bad_every: int = 500
    label_share: float = 0.8
    timeout_s: float = 300.0


@dataclass
class Sent:
    predictions: int = 0
    labels: int = 0
    bad: Counter[str] = field(default_factory=Counter)

    @property
    def dead_letters(self) -> int:
        return sum(self.bad.values())


def _age_group(age: float) -> str:
    return "<40" if age < 40 else ("40-59" if age < 60 else "60+")


def _train(seed: int) -> tuple[Any, Any]:
    """The production model (v1) and a canary (v2) trained on less data."""
    from river import tree
    from river.datasets import synth

    v1, v2 = tree.HoeffdingTreeClassifier(), tree.HoeffdingTreeClassifier(grace_period=50)
    for i, (x, y) in enumerate(synth.Agrawal(classification_function=0, seed=seed).take(4000)):
        v1.learn_one(x, y)  # type: ignore[no-untyped-call]
        if i < 600:
            v2.learn_one(x, y)  # type: ignore[no-untyped-call]
    return v1, v2


def generate(
    options: DemoOptions, start_ts: float, route: Callable[[str], str] | None = None
) -> Iterator[Prediction | Label | tuple[str, bytes]]:
    """Events in the order a real system would emit them; labels come minutes after their prediction.

    `route(customer)` names the version that answers (default: v2 for a random 10 %).
    """
    import random

    from river.datasets import synth

    rng = random.Random(options.seed)
    v1, v2 = _train(options.seed)
    n = options.events
    stream = synth.ConceptDriftStream(
        stream=synth.Agrawal(classification_function=0, seed=options.seed + 1),
        drift_stream=synth.Agrawal(classification_function=2, seed=options.seed + 2),
        position=n // 2,
        width=max(1, n // 100),
        seed=options.seed + 3,
    )
    step = SIM_MINUTES * 60.0 / n
    pending: list[tuple[float, int, Label]] = []  # (label time, tie-break, label)
    bad_cycle = itertools.cycle(BAD_MESSAGES)
    for i, (x, y) in enumerate(stream.take(n)):
        ts = start_ts + i * step
        while pending and pending[0][0] <= ts:
            yield heapq.heappop(pending)[2]
        if i >= n // 2:
            x["salary"] *= 1.3  # the economy changed: salaries inflate
        customer = f"customer-{rng.randrange(100_000)}"
        canary = (route(customer) == "v2") if route is not None else rng.random() < 0.1
        model = v2 if canary else v1
        t0 = time.perf_counter()
        proba = model.predict_proba_one(x)
        latency = (time.perf_counter() - t0) * 1000.0
        score = float(proba.get(1, 0.0))
        event_id = f"demo-{options.seed}-{i}"
        features: dict[str, FeatureValue] = {k: (str(v) if k in CATEGORICAL else float(v)) for k, v in x.items()}
        yield Prediction(
            event_id=event_id,
            model=MODEL,
            version="v2" if canary else "v1",
            ts=ts,
            features=features,
            prediction=int(score >= 0.5),
            score=score,
            attributes={"age_group": _age_group(float(x["age"]))},
            route="canary" if canary else "primary",
            latency_ms=latency,
            kpis={"loan_amount": float(x["loan"]) if score >= 0.5 else 0.0},
        )
        if rng.random() < options.label_share:
            delay = rng.expovariate(1 / 120.0)  # mean two minutes
            heapq.heappush(pending, (ts + delay, i, Label(event_id=event_id, label=int(y), ts=ts + delay)))
        if (i + 1) % options.bad_every == 0:
            yield next(bad_cycle)
    while pending:
        yield heapq.heappop(pending)[2]


def worker_stats(port: int) -> dict[str, Any] | None:
    """The counters a worker serves on 127.0.0.1:`port`/stats, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=2) as resp:
            return dict(json.loads(resp.read()))
    except (OSError, ValueError):
        return None


class _Stack:
    """The broker and worker processes of one demo run."""

    def __init__(self, data: Path):
        self.data = data
        self.broker = EmbeddedBroker(log_path=data / "broker.log")
        self.web_port = free_port()
        self.worker: subprocess.Popen[bytes] | None = None

    def start(self) -> Settings:
        self.broker.start()
        settings = Settings(
            broker=self.broker.bootstrap,
            clickhouse=f"chdb://{(self.data / 'clickhouse').resolve()}",
            data_dir=str(self.data / "worker"),
            web_port=self.web_port,
            partitions=2,
        )
        env = {
            **os.environ,
            "DRIFTLINE_BROKER": settings.broker,
            "DRIFTLINE_CLICKHOUSE": settings.clickhouse,
            "DRIFTLINE_DATA_DIR": settings.data_dir,
            "DRIFTLINE_WEB_PORT": str(self.web_port),
            "DRIFTLINE_PARTITIONS": "2",
            "DRIFTLINE_QUALITY_INTERVAL_S": "2",
            "DRIFTLINE_SPEC": str(self.data / "spec.yaml"),
        }
        (self.data / "spec.yaml").write_text(DEMO_SPEC)
        log = open(self.data / "worker.log", "ab")  # noqa: SIM115 - closed with the process
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "driftline", "worker"],
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo only; the demo stops the worker in order
        )
        return settings

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        began = time.monotonic()
        print("waiting for the worker (Kafka group join, ClickHouse migrations) ...", flush=True)
        while time.monotonic() < deadline:
            self.check_alive()
            stats = worker_stats(self.web_port)
            if stats and stats.get("ready"):
                print(f"worker ready after {time.monotonic() - began:.1f}s", flush=True)
                return
            time.sleep(0.25)
        raise DriftlineError(f"the worker was not ready after {timeout:.0f}s; see {self.data / 'worker.log'}")

    def check_alive(self) -> None:
        assert self.worker is not None
        if self.worker.poll() is not None:
            raise DriftlineError(f"the worker exited with {self.worker.returncode}; see {self.data / 'worker.log'}")

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        self.broker.stop()


def _produce(options: DemoOptions, settings: Settings, route: Callable[[str], str]) -> tuple[Sent, float]:
    from confluent_kafka import Producer as RawProducer

    from driftline.producer import Producer

    sent = Sent()
    raw = RawProducer(
        {
            "bootstrap.servers": settings.broker,
            "message.max.bytes": 16 * 1024 * 1024,
            "log.connection.close": False,
            **settings.kafka.librdkafka_config(),
        }
    )
    start_ts = math.floor(time.time() / 3600) * 3600 - SIM_MINUTES * 60
    began = time.monotonic()
    with (
        Producer(settings.broker, topic_prefix=settings.topic_prefix, security=settings.kafka) as producer,
        tqdm(total=options.events, desc="predictions", unit="ev", disable=_QUIET) as bar,
    ):
        for item in generate(options, start_ts, route):
            if isinstance(item, tuple):
                code, payload = item
                topic = "labels" if b'"label"' in payload[:200] else "predictions"
                raw.produce(settings.topic(topic), payload)
                sent.bad[code] += 1
                continue
            producer.send(item)
            if isinstance(item, Label):
                sent.labels += 1
                continue
            sent.predictions += 1
            bar.update(1)
            if options.rate > 0 and sent.predictions % 100 == 0:
                ahead = sent.predictions / options.rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
    raw.flush(30)
    del raw  # let librdkafka go before the broker stops, so it does not log the disconnect
    return sent, time.monotonic() - began


def _wait_ingested(stack: _Stack, sent: Sent, timeout: float) -> dict[str, Any]:
    expected = sent.predictions + sent.labels + sent.dead_letters
    deadline = time.monotonic() + timeout
    stats: dict[str, Any] = {}
    with tqdm(total=expected, desc="ingested", unit="ev", disable=_QUIET) as bar:
        while time.monotonic() < deadline:
            stack.check_alive()
            stats = worker_stats(stack.web_port) or stats
            done = stats.get("predictions", 0) + stats.get("labels", 0) + stats.get("dead_letters", 0)
            bar.update(done - bar.n)
            if done >= expected:
                return stats
            time.sleep(0.2)
    raise DriftlineError(f"ingested {bar.n} of {expected} events within {timeout:.0f}s")


def _clickhouse_counts(settings: Settings) -> dict[str, Any]:
    from driftline.sinks.clickhouse import ClickHouseSink

    sink = ClickHouseSink(settings)
    counts: dict[str, Any] = sink.counts()
    db = settings.clickhouse_database
    counts["dead_letter_codes"] = dict(
        sink.client.query(f"SELECT code, count() FROM {db}.dead_letters FINAL GROUP BY code").result_rows
    )
    counts["by_version"] = dict(
        sink.client.query(f"SELECT version, count() FROM {db}.predictions FINAL GROUP BY version").result_rows
    )
    # Grouped and ordered by the window instant, not its time-of-day text: a run crossing midnight UTC
    # would otherwise list 00:00 before 23:20.
    counts["drift"] = sink.client.query(
        f"""SELECT formatDateTime(window_start, '%H:%i:%S', 'UTC'),
                   if(countIf(metric = 'drift_share') = 0, NULL, maxIf(value, metric = 'drift_share')),
                   arraySort(groupArrayIf(feature, metric = 'drifted')),
                   if(countIf(metric = 'psi' AND feature = 'salary') = 0, NULL,
                      maxIf(value, metric = 'psi' AND feature = 'salary')),
                   maxIf(value, metric = 'predictions'), min(complete),
                   maxIf(value, family = 'quality' AND metric = 'accuracy'),
                   maxIf(value, metric = 'label_coverage'),
                   maxIf(value, metric = 'demographic_parity_difference' AND feature = 'age_group')
            FROM {db}.metrics FINAL
            WHERE model = {{m:String}} AND version = 'v1'
            GROUP BY window_start ORDER BY window_start""",
        parameters={"m": MODEL},
    ).result_rows
    counts["metric_rows"] = int(sink.client.command(f"SELECT count() FROM {db}.metrics FINAL"))
    from driftline.reports.review_job import run_review

    review, files, _ = run_review(sink.client, db, MODEL, 86_400, Path(settings.data_dir).parent / "reviews")
    counts["review"] = (review["actions"], files.html)
    from driftline.alerts.store import AlertStore

    counts["timeline"] = AlertStore(sink.client, db).timeline(MODEL)
    counts["labeling"] = sink.client.query(
        f"""SELECT r.version, count(), countIf(l.event_id != ''), avgIf(r.uncertainty, 1)
            FROM {db}.labeling_requests AS r FINAL
            LEFT JOIN (SELECT DISTINCT event_id FROM {db}.labels) AS l ON r.event_id = l.event_id
            WHERE r.model = {{m:String}} GROUP BY r.version ORDER BY r.version
            SETTINGS join_use_nulls = 0""",
        parameters={"m": MODEL},
    ).result_rows
    from driftline.reports.model_report import model_report

    counts["reports"] = [
        model_report(sink.client, db, MODEL, version, Path(settings.data_dir).parent / f"report-{version}.html")
        for version in ("v1", "v2")
    ]
    sink.close()
    return counts


def _summary(sent: Sent, stats: dict[str, Any], counts: dict[str, Any], produce_s: float, ingest_s: float) -> bool:
    rows = [
        ("predictions", sent.predictions, stats.get("predictions"), counts["predictions"]),
        ("labels", sent.labels, stats.get("labels"), counts["labels"]),
        ("dead letters", sent.dead_letters, stats.get("dead_letters"), counts["dead_letters"]),
    ]
    ok = all(a == b == c for _, a, b, c in rows) and dict(sent.bad) == counts["dead_letter_codes"]
    print()
    print(f"{'':14}{'produced':>12}{'ingested':>12}{'in ClickHouse':>16}")
    for name, a, b, c in rows:
        print(f"{name:14}{a:>12,}{b:>12,}{c:>16,}{'' if a == b == c else '   MISMATCH'}")
    total = sent.predictions + sent.labels + sent.dead_letters
    print(
        f"\nthroughput: produced {total / produce_s:,.0f} events/s; ingested {total:,} events "
        f"in {ingest_s:.1f}s (worker busy {stats.get('busy_s', 0):.1f}s = "
        f"{total / max(stats.get('busy_s', 0), 1e-9):,.0f} events/s of worker time)"
    )
    print(f"predictions by version: {counts['by_version']}")
    print("dead letters by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(counts["dead_letter_codes"].items())))
    _drift_table(counts)
    print("\nall counts match" if ok else "\nCOUNTS DO NOT MATCH: see the table above")
    return ok


def _drift_table(counts: dict[str, Any]) -> None:
    print(f"\n{MODEL} v1 per 5-minute window ({counts['metric_rows']:,} metric rows in ClickHouse):")
    print(
        f"{'window (UTC)':>14}{'events':>8}{'drift share':>13}{'PSI salary':>12}{'accuracy':>10}"
        f"{'labelled':>10}{'parity gap':>12}  drifted features (BH, 5 %)"
    )
    for start, share, drifted, psi_salary, n, complete, acc, coverage, gap in counts["drift"]:
        note = "" if complete else "  (window still open at stop)"
        if share is None:  # opened before v1's reference profile was complete: no drift, by design
            share_s, psi_s, flagged = f"{'-':>13}", f"{'-':>12}", "(reference period)"
        else:
            share_s, psi_s, flagged = f"{share:>13.2f}", f"{psi_salary:>12.3f}", ", ".join(drifted) or "-"
        print(f"{start:>14}{int(n):>8}{share_s}{psi_s}{acc:>10.3f}{coverage:>10.2f}{gap:>12.3f}  {flagged}{note}")
    print("reference period: v1's first events become its reference profile; drift is computed after them")
    print("parity gap: demographic-parity difference of approvals between age groups (fairlearn's definition)")
    print("HTML reports with plots: " + ", ".join(str(p) for p in counts["reports"]))


def run_demo(options: DemoOptions) -> int:
    data = Path(options.data_dir)
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    stack = _Stack(data)
    rollout: tuple[Any, Any, Any] | None = None
    try:
        print(
            f"driftline demo: {options.events:,} predictions over {SIM_MINUTES} simulated minutes; "
            f"data and logs in {data}/"
        )
        settings = stack.start()
        print(
            f"Tansu broker on {settings.broker}; worker web on 127.0.0.1:{stack.web_port}; "
            f"ClickHouse {settings.clickhouse}"
        )
        stack.wait_ready(timeout=120)
        from driftline.dev import rollout as demo_rollout

        rollout = demo_rollout.set_up(settings, MODEL)
        router, receiver, subscription = rollout
        print(f"registry: {MODEL} v1 production, v2 canary at 10 %; webhooks to {receiver.url}")
        began = time.monotonic()
        sent, produce_s = _produce(options, settings, lambda key: str(router.route(key).version))
        stats = _wait_ingested(stack, sent, options.timeout_s)
        ingest_s = time.monotonic() - began
        time.sleep(4.0)  # the last label join (every 2 s) and the alert notifications it causes (group interval 3 s)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the worker and the broker", file=sys.stderr)
        _close(rollout)
        stack.stop()
        return 130
    except BaseException:
        _close(rollout)
        stack.stop()
        raise
    _close(rollout)
    stack.stop()  # chdb allows one engine per process path: read ClickHouse after the worker has let go
    counts = _clickhouse_counts(settings)
    ok = _summary(sent, stats, counts, produce_s, ingest_s)
    demo_rollout.print_timeline(counts["timeline"], len(receiver.received), receiver.verified(subscription.reveal()))
    actions, review_path = counts["review"]
    print(f"\nmodel review of the last day ({review_path}); suggested actions:")
    for a in actions:
        print(f"  [{a['audience']}] {a['text']} ({a['evidence']})")
    for version, asked, answered, mean_u in counts["labeling"]:
        print(
            f"labeling requests (active learning, margin, 10 per window): {version} {asked} asked, "
            f"{answered} labelled by now, mean uncertainty {mean_u:.2f}"
        )
    return 0 if ok else 1


def run_simulation(options: DemoOptions, settings: Settings) -> None:
    """The demo's stream against a running Kafka (no embedded stack, no summary)."""
    import asyncio

    from driftline.control import ControlClient
    from driftline.models.routing import RoutingClient
    from driftline.streams.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    control = ControlClient(settings.broker, settings.topic("control"), security=settings.kafka)
    try:
        if control.model(MODEL).production is None:
            now = time.time()
            control.change_model(MODEL, lambda s: s.register("v1", "production", by="simulate", reason="demo", now=now))
            control.change_model(
                MODEL, lambda s: s.register("v2", "canary", weight=10, by="simulate", reason="demo", now=now)
            )
    finally:
        control.close()
    with RoutingClient(settings.broker, MODEL, topic=settings.topic("control")) as router:
        sent, seconds = _produce(options, settings, lambda key: str(router.route(key).version))
    print(
        f"sent {sent.predictions:,} predictions, {sent.labels:,} labels and {sent.dead_letters} broken messages "
        f"to {settings.broker} in {seconds:.1f}s"
    )


def _close(rollout: tuple[Any, Any, Any] | None) -> None:
    if rollout is not None:
        rollout[0].close()
        rollout[1].close()
