"""`driftline offline ...`: training with and without privacy, edge export, federated learning, lineage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from driftline.cli.data import profile_build
from driftline.cli.options import fail_cleanly
from driftline.exceptions import ConfigError


def _progress(total: int, desc: str) -> Any:
    """A progress bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=None)


@click.group()
def offline() -> None:
    """Offline module (needs the extra: pip install 'driftline[offline]')."""


# the offline module writes reference profiles with the same command as the streaming side
offline.add_command(profile_build, name="profile")


@offline.command("train")
@click.option("--out", type=click.Path(path_type=Path), default=Path(".driftline/offline"), show_default=True)
@click.option("--rows", type=int, default=12_000, show_default=True, help="Generated rows (River's Agrawal).")
@click.option("--epochs", type=int, default=8, show_default=True)
@click.option("--epsilons", default="0.5,1,2,8", show_default=True, help="Target epsilons of the DP-SGD runs.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Training seeds each accuracy is measured over.")
@fail_cleanly
def offline_train(out: Path, rows: int, epochs: int, epsilons: str, seeds: int) -> None:
    """Baseline + DP-SGD models, ONNX fp32/int8/pruned with parity and latency, profile, report, lineage."""
    from driftline.offline.pipeline import run_training
    from driftline.offline.spread import Spread

    try:
        eps = tuple(float(e) for e in epsilons.split(",") if e.strip())
    except ValueError:
        raise ConfigError(f"--epsilons {epsilons!r}: give numbers separated by commas, e.g. 0.5,1,8") from None
    if not eps or min(eps) <= 0 or rows < 500 or epochs < 1 or seeds < 1:
        raise ConfigError("need positive epsilons, --rows >= 500, --epochs >= 1 and --seeds >= 1")
    summary = run_training(out, rows=rows, epochs=epochs, epsilons=eps, seeds=seeds)
    click.echo(f"baseline accuracy {Spread(**summary['baseline']['accuracy_over_seeds']).text()}")
    for r in summary["private"]:
        click.echo(
            f"DP-SGD epsilon {r['epsilon']:.2f} (target {r['target_epsilon']:g}, delta {r['delta']:.1e}, "
            f"{r['accountant']}): accuracy {Spread(**r['accuracy_over_seeds']).text()}"
        )
    for note in summary["notes"]:
        click.echo(f"- {note}")
    click.echo(f"report: {out / 'report.html'} (+ .md, .json); model card {out / 'MODEL_CARD.md'}")


@offline.command("federated")
@click.option("--clients", type=int, default=10, show_default=True)
@click.option("--rounds", type=int, default=20, show_default=True)
@click.option(
    "--participation", type=float, default=1.0, show_default=True, help="Chance a client is sampled into a round."
)
@click.option("--dropout", type=float, default=0.1, show_default=True, help="Chance a sampled client drops out.")
@click.option("--clip", type=float, default=None, help="Clip each client update's L2 norm (client-level DP).")
@click.option("--noise-multiplier", type=float, default=0.0, show_default=True)
@click.option(
    "--min-survivors",
    type=int,
    default=None,
    help="Fewest clients a round is unmasked with (default: half the clients, at least 2); fewer: refused.",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path(".driftline/federated"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@fail_cleanly
def offline_federated(
    clients: int,
    rounds: int,
    participation: float,
    dropout: float,
    clip: float | None,
    noise_multiplier: float,
    min_survivors: int | None,
    out: Path,
    seed: int,
) -> None:
    """FedAvg over simulated non-IID clients, each round summed by secure aggregation."""
    from driftline.offline.federated import centralized_accuracy, client_dp_note, fedavg, non_iid_clients

    _check_federated(clients, rounds, participation, dropout, clip, noise_multiplier, min_survivors)

    data, test = non_iid_clients(clients, 400, seed=seed)
    pooled = centralized_accuracy(data, test, seed=seed)
    with _progress(rounds, "federated rounds") as bar:
        result = fedavg(
            data,
            rounds=rounds,
            participation=participation,
            dropout=dropout,
            clip=clip,
            noise_multiplier=noise_multiplier,
            test=test,
            seed=seed,
            on_round=lambda _: bar.update(),
            min_survivors=min_survivors,
        )
    summary = {
        "clients": clients,
        "rounds": rounds,
        "participation": participation,
        "dropout": dropout,
        "min_survivors": min_survivors,
        "pooled_accuracy": pooled,
        "federated_accuracy": result.history[-1]["accuracy"],
        "bytes_per_client_per_round": result.bytes_per_client_per_round,
        "history": result.history,
        # A client's contribution is in a round with probability participation x (1 - dropout).
        "privacy": client_dp_note(noise_multiplier, participation * (1 - dropout), rounds, clients),
    }
    _write_federated(out, result, summary)


def _write_federated(out: Path, result: Any, summary: dict[str, Any]) -> None:
    """The federated run's weights, lineage record and report."""
    import numpy as np

    from driftline.offline.reports import federated_report
    from driftline.sinks.lineage import record

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "weights.npy", result.weights)
    final, rounds, pooled = summary["federated_accuracy"], summary["rounds"], summary["pooled_accuracy"]
    art = record(
        out / "weights.npy",
        "federated_model",
        params={k: v for k, v in summary.items() if k != "history"},
        metrics={"accuracy": final},
    )
    files = federated_report(out, summary, art.artefact_id)
    click.echo(
        f"federated accuracy {final:.4f} after {rounds} rounds (pooled training: {pooled:.4f}); "
        f"{summary['bytes_per_client_per_round']:,.0f} bytes per client per round; privacy: {summary['privacy']}"
    )
    click.echo(f"report {files.html} (+ .md, .json)")


def _check_federated(
    clients: int,
    rounds: int,
    participation: float,
    dropout: float,
    clip: float | None,
    noise_multiplier: float,
    min_survivors: int | None,
) -> None:
    if clients < 2 or rounds < 1 or not 0 <= dropout < 1 or noise_multiplier < 0 or not 0 < participation <= 1:
        raise ConfigError(
            "need --clients >= 2, --rounds >= 1, 0 < --participation <= 1, 0 <= --dropout < 1, --noise-multiplier >= 0"
        )
    if noise_multiplier > 0 and clip is None:
        raise ConfigError("--noise-multiplier needs --clip (noise is scaled to the clipping norm)")
    if min_survivors is not None and not 2 <= min_survivors <= clients:
        raise ConfigError("--min-survivors must be between 2 and --clients (one survivor's sum is its own update)")


@offline.command("privacy")
@click.option("--clients", type=int, default=50, show_default=True)
@click.option("--rounds", type=int, default=30, show_default=True)
@click.option("--participation", type=float, default=0.3, show_default=True, help="Chance a client takes part.")
@click.option("--noise-multipliers", default="0.7,1,2", show_default=True, help="Client-level DP sigmas.")
@click.option("--epsilons", default="0.5,2", show_default=True, help="Target epsilons of centralised DP-SGD.")
@click.option("--out", type=click.Path(path_type=Path), default=Path(".driftline/privacy"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@fail_cleanly
def offline_privacy(
    clients: int, rounds: int, participation: float, noise_multipliers: str, epsilons: str, out: Path, seed: int
) -> None:
    """Privacy (epsilon, delta), communication and accuracy of DP-SGD and federated variants, side by side."""
    from driftline.offline.reports import tradeoff_report
    from driftline.offline.tradeoff import tradeoff

    try:
        sigmas = tuple(float(v) for v in noise_multipliers.split(",") if v.strip())
        eps = tuple(float(v) for v in epsilons.split(",") if v.strip())
    except ValueError:
        raise ConfigError("--noise-multipliers and --epsilons take numbers separated by commas") from None
    if clients < 2 or rounds < 1 or not 0 < participation <= 1 or min((*sigmas, *eps), default=1) <= 0:
        raise ConfigError("need --clients >= 2, --rounds >= 1, 0 < --participation <= 1, positive sigmas/epsilons")
    with _progress(1 + len(eps) + 1 + len(sigmas), "privacy trade-off") as bar:
        rows, target = tradeoff(
            clients=clients,
            rounds=rounds,
            participation=participation,
            noise_multipliers=sigmas,
            dp_sgd_epsilons=eps,
            seed=seed,
            progress=bar.update,
        )
    settings = {
        "clients": clients,
        "per_client": 200,
        "rounds": rounds,
        "participation": participation,
        "target_ratio": 0.97,
        "seed": seed,
    }
    files = tradeoff_report(out, rows, target, settings)
    click.echo(files.markdown.read_text())
    click.echo(f"report: {files.html} (+ .md, .json)")


@offline.command("gate")
@click.option("--candidate", type=click.Path(path_type=Path, exists=True), required=True, help="Model (.pt).")
@click.option("--production", type=click.Path(path_type=Path, exists=True), required=True, help="Model (.pt).")
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=Path(".driftline/offline/dataset.npz"),
    show_default=True,
    help="Holdout: a dataset snapshot from `driftline offline train`.",
)
@click.option("--max-quality-drop", type=float, default=0.01, show_default=True)
@click.option("--max-fairness-increase", type=float, default=0.02, show_default=True)
@click.option("--max-latency-ratio", type=float, default=1.5, show_default=True)
@click.option(
    "--register-canary",
    "canary",
    default=None,
    metavar="MODEL/VERSION",
    help="If it passes, register the candidate as a 10 % canary of MODEL as VERSION.",
)
@click.option("--broker", envvar="DRIFTLINE_BROKER", show_envvar=True, help="Kafka, for --register-canary.")
@click.option("--topic-prefix", envvar="DRIFTLINE_TOPIC_PREFIX", show_envvar=True, help="Prefix of topic names.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Report directory (default: --data's).")
@click.option(
    "--clickhouse",
    envvar="DRIFTLINE_CLICKHOUSE",
    show_envvar=True,
    default=None,
    help="With --register-canary: store the candidate's lineage chain in this ClickHouse, so that "
    "`driftline review` shows where the version came from.",
)
@fail_cleanly
def offline_gate(
    candidate: Path,
    production: Path,
    data: Path,
    max_quality_drop: float,
    max_fairness_increase: float,
    max_latency_ratio: float,
    canary: str | None,
    broker: str | None,
    topic_prefix: str | None,
    out: Path | None,
    clickhouse: str | None,
) -> None:
    """Compare a candidate with production on a holdout; exit 1 when it is worse beyond the tolerances."""
    import sys

    from driftline.offline.gate import Tolerances, gate, load_model
    from driftline.offline.train import load_dataset
    from driftline.sinks.lineage import content_hash, record

    if canary is not None and "/" not in canary:
        raise ConfigError(f"--register-canary {canary!r}: write MODEL/VERSION, e.g. loan-approval/v7")
    from driftline.offline.reports import gate_report

    holdout = load_dataset(data)
    inputs = holdout.x_test.shape[1]
    with _progress(1, "gate: scoring both models") as bar:
        result = gate(
            load_model(candidate, inputs),
            load_model(production, inputs),
            holdout,
            Tolerances(max_quality_drop, max_fairness_increase, max_latency_ratio),
        )
        bar.update()
    files = gate_report(out or data.parent, result, candidate.name, production.name)
    target = dict(zip(("model", "version"), canary.split("/", 1), strict=True)) if canary else {}
    gate_art = record(
        files.markdown,
        "gate",
        params=target,
        metrics={"passed": result.passed},
        parents=[content_hash(candidate), content_hash(production), content_hash(data)],
    )
    click.echo(files.markdown.read_text())
    click.echo(f"report: {files.html} (+ .md, .json)")
    if not result.passed:
        sys.exit(1)
    if canary is not None:
        model, version = canary.split("/", 1)
        _register_canary(model, version, candidate.name, broker, topic_prefix)
        if clickhouse:
            roots = [candidate.parent, production.parent, data.parent, files.markdown.parent]
            stored = _store_lineage(gate_art, roots, clickhouse)
            click.echo(f"lineage of {model} {version}: {stored} artefact(s) stored in ClickHouse")


def _register_canary(model: str, version: str, candidate: str, broker: str | None, topic_prefix: str | None) -> None:
    """Register a candidate that passed the gate as a 10 % canary on the control topic."""
    from driftline.config import Settings
    from driftline.control import ControlClient

    settings = Settings.from_env(broker=broker, topic_prefix=topic_prefix)
    control = ControlClient(settings.broker, settings.topic("control"), security=settings.kafka)
    try:
        control.change_model(
            model,
            lambda s: s.register(
                version, "canary", weight=10, by="offline-gate", reason=f"gate passed: {candidate}", now=time.time()
            ),
        )
    finally:
        control.close()
    click.echo(f"registered {model} {version} as a 10 % canary")


def _store_lineage(artefact: Any, roots: list[Path], clickhouse: str) -> int:
    """The artefact and every ancestor found in `roots`, stored in ClickHouse ``lineage``; how many."""
    from driftline.config import Settings
    from driftline.sinks.clickhouse import ClickHouseSink
    from driftline.sinks.lineage import store_chain

    sink = ClickHouseSink(Settings.from_env(clickhouse=clickhouse))
    try:
        sink.migrate()
        return store_chain(artefact, roots, sink.client, sink.settings.clickhouse_database)
    finally:
        sink.close()


@offline.command("fairness")
@click.option(
    "--data", type=click.Path(path_type=Path), default=Path(".driftline/offline/dataset.npz"), show_default=True
)
@click.option("--seeds", type=int, default=5, show_default=True, help="Seeds of the randomised predictions.")
@fail_cleanly
def offline_fairness(data: Path, seeds: int) -> None:
    """Demographic-parity mitigation (ExponentiatedGradient, ThresholdOptimizer) and what it costs."""
    from driftline.offline.fairness import mitigate
    from driftline.offline.reports import fairness_report
    from driftline.offline.train import load_dataset

    if seeds < 1:
        raise ConfigError("--seeds must be at least 1")
    holdout = load_dataset(data)
    with _progress(1, "fairness: fitting mitigations") as bar:
        results = mitigate(holdout, seeds=seeds)
        bar.update()
    files = fairness_report(data.parent, results)
    click.echo(files.markdown.read_text())
    click.echo(f"report: {files.html} (+ .md, .json)")


@offline.command("distill")
@click.option(
    "--data", type=click.Path(path_type=Path), default=Path(".driftline/offline/dataset.npz"), show_default=True
)
@click.option("--hidden", type=int, default=16, show_default=True, help="Units of the student's hidden layer.")
@click.option("--temperature", type=float, default=2.0, show_default=True)
@click.option("--energy/--no-energy", default=True, show_default=True, help="Measure energy per inference.")
@click.option(
    "--watts-per-core",
    type=float,
    default=3.5,
    show_default=True,
    help="Power of a busy core, for the estimate where no RAPL counters can be read.",
)
@fail_cleanly
def offline_distill(data: Path, hidden: int, temperature: float, energy: bool, watts_per_core: float) -> None:
    """Gradient-boosting teacher -> small MLP student on soft labels; accuracy, AUC, fidelity, calibration."""
    from dataclasses import asdict

    from driftline.offline.distill import distill
    from driftline.offline.reports import distill_report
    from driftline.offline.train import load_dataset, require_torch
    from driftline.sinks.lineage import content_hash, record

    holdout = load_dataset(data)
    with _progress(2 if energy else 1, "distill: teacher, students, energy") as bar:
        result = distill(holdout, hidden=hidden, temperature=temperature)
        bar.update()
        points = []
        if energy:
            from driftline.offline.energy import Meter, model_energy
            from driftline.offline.export import export_onnx, quantize_dynamic

            fp32 = export_onnx(result.student_model, data.parent / "student-fp32.onnx", holdout.x_test.shape[1])
            int8 = quantize_dynamic(fp32, data.parent / "student-int8.onnx")
            points = model_energy(
                result.teacher_model,
                result.student_model,
                fp32,
                int8,
                holdout.x_test,
                meter=Meter(watts_per_core=watts_per_core),
            )
            bar.update()
    files = distill_report(data.parent, result, points)
    require_torch().save(result.student_model.state_dict(), data.parent / "model-student.pt")
    record(
        data.parent / "model-student.pt",
        "model",
        params={"hidden": hidden, "temperature": temperature, "teacher": "HistGradientBoostingClassifier"},
        metrics=asdict(result.student),
        parents=[content_hash(data)],
    )
    click.echo(files.markdown.read_text())
    click.echo(f"report: {files.html} (+ .md, .json)")


@offline.command("hybrid")
@click.option(
    "--data", type=click.Path(path_type=Path), default=Path(".driftline/offline/dataset.npz"), show_default=True
)
@click.option("--threshold", type=float, default=0.9, show_default=True, help="Edge confidence to answer locally.")
@click.option(
    "--broker",
    envvar="DRIFTLINE_BROKER",
    show_envvar=True,
    default=None,
    help="Log every routing decision as a prediction event to this Kafka.",
)
@click.option("--topic-prefix", envvar="DRIFTLINE_TOPIC_PREFIX", show_envvar=True, default=None)
@fail_cleanly
def offline_hybrid(data: Path, threshold: float, broker: str | None, topic_prefix: str | None) -> None:
    """Edge model (distilled student, ONNX int8) answers when confident, the server model otherwise."""
    import numpy as np

    from driftline.offline.distill import distill
    from driftline.offline.export import export_onnx, quantize_dynamic, session
    from driftline.offline.hybrid import THRESHOLDS, curve, per_row_latency_ms, routing_events
    from driftline.offline.reports import hybrid_report
    from driftline.offline.train import load_dataset

    holdout = load_dataset(data)
    bar = _progress(3, "hybrid: distil, export, measure")
    result = distill(holdout)
    bar.update()
    edge_path = quantize_dynamic(
        export_onnx(result.student_model, data.parent / "edge-fp32.onnx", holdout.x_test.shape[1]),
        data.parent / "edge-int8.onnx",
    )
    edge = session(edge_path)
    bar.update()

    def edge_predict(x: np.ndarray) -> np.ndarray:
        logits = edge.run(None, {"x": x})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray((e / e.sum(axis=1, keepdims=True))[:, 1], dtype=np.float64)

    server = result.teacher_model
    edge_p = edge_predict(holdout.x_test)
    server_p = server.predict_proba(holdout.x_test)[:, 1]
    edge_ms = per_row_latency_ms(edge_predict, holdout.x_test)
    server_ms = per_row_latency_ms(server.predict_proba, holdout.x_test)
    points = curve(edge_p, server_p, holdout.y_test, edge_ms, server_ms, (*THRESHOLDS, threshold))
    bar.update()
    bar.close()
    files = hybrid_report(data.parent, points, edge_ms, server_ms, threshold)
    click.echo(files.markdown.read_text())
    click.echo(f"report: {files.html} (+ .md, .json)")
    if broker:
        from driftline.producer import Producer

        events = routing_events("hybrid-loan", edge_p, server_p, threshold, edge_ms, server_ms)
        with Producer(broker, topic_prefix=topic_prefix or "driftline.") as producer:
            for e in events:
                producer.send(e)
        edge_n = sum(e.version == "edge" for e in events)
        click.echo(f"logged {len(events):,} routing decisions ({edge_n:,} edge, {len(events) - edge_n:,} server)")


@offline.command("explain")
@click.option(
    "--data", type=click.Path(path_type=Path), default=Path(".driftline/offline/dataset.npz"), show_default=True
)
@click.option(
    "--clickhouse",
    envvar="DRIFTLINE_CLICKHOUSE",
    show_envvar=True,
    default=None,
    help="Compare importances with a production window read from this ClickHouse.",
)
@click.option("--model", "model_name", default="loan-approval", show_default=True)
@click.option("--version", "version_", default="v1", show_default=True)
@click.option("--since", default=None, help="Production window start (ISO time, UTC).")
@click.option("--until", default=None, help="Production window end (ISO time, UTC).")
@click.option("--threshold", type=float, default=0.1, show_default=True, help="Share change that flags a feature.")
@click.option("--lime-samples", type=int, default=5000, show_default=True, help="Perturbed samples LIME draws.")
@fail_cleanly
def offline_explain(
    data: Path,
    clickhouse: str | None,
    model_name: str,
    version_: str,
    since: str | None,
    until: str | None,
    threshold: float,
    lime_samples: int,
) -> None:
    """SHAP importance (global, one prediction), partial dependence, a counterfactual, importance shift."""
    from driftline.offline import explain as ex
    from driftline.offline.distill import distill
    from driftline.offline.reports import explain_report
    from driftline.offline.train import encode_rows, load_dataset

    if clickhouse and not (since and until):
        raise ConfigError("--clickhouse needs --since and --until (the production window)")
    holdout = load_dataset(data)
    names = holdout.feature_names
    with _progress(4 + bool(clickhouse), "explain") as bar:
        model = distill(holdout).teacher_model  # the gradient-boosting model: TreeExplainer applies
        bar.update()
        report = ex.explain(
            model,
            "gradient-boosting model, TreeExplainer",
            holdout.x_train,
            holdout.x_test,
            names,
            holdout.num_std,
            lime_samples=lime_samples,
            progress=lambda step: bar.update(),
        )
        if clickhouse:
            rows = _production_rows(clickhouse, model_name, version_, str(since), str(until))
            x = encode_rows(rows[:500], holdout.num_mean, holdout.num_std)
            production = ex.importance(ex.shap_values(model, holdout.x_train[:500], x), names)
            report["shift"] = ex.importance_shift(report["importance"], production, threshold)
            report["production_rows"] = len(rows)
            bar.update()
    files = explain_report(data.parent, report)
    click.echo(files.markdown.read_text())
    click.echo(f"report: {files.html} (+ .md, .json)")


def _production_rows(clickhouse: str, model: str, version: str, since: str, until: str) -> list[Any]:
    """A model version's production predictions in [since, until), as feature rows."""
    from driftline.config import Settings
    from driftline.sinks.clickhouse import ClickHouseSink
    from driftline.sinks.profiles import rows_from_clickhouse

    settings = Settings.from_env(clickhouse=clickhouse)
    sink = ClickHouseSink(settings)
    try:
        rows = list(rows_from_clickhouse(sink.client, settings.clickhouse_database, model, version, since, until))
    finally:
        sink.close()
    if not rows:
        raise ConfigError(f"no predictions of {model} {version} in [{since}, {until})")
    return rows


@offline.command("lineage")
@click.argument("artefact")
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=Path(".driftline"),
    show_default=True,
    help="Where to look for *.lineage.json records.",
)
@fail_cleanly
def offline_lineage(artefact: str, root: Path) -> None:
    """Print ARTEFACT's ancestry (an id prefix or a file path)."""
    from driftline.sinks.lineage import LocalLineage, ancestry, content_hash

    key = content_hash(Path(artefact)) if Path(artefact).is_file() else artefact
    for art in ancestry(key, LocalLineage(root)):
        parents = ", ".join(p[:12] for p in art.parents) or "-"
        click.echo(f"{art.artefact_id[:12]}  {art.kind:<16}{art.name:<34}{art.code_version:<28}parents: {parents}")
