"""The offline commands as a user runs them: train, gate (fails a worse candidate, passes an equal one and
registers it as a canary on the real broker), fairness mitigation, federated training, lineage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from driftline.cli import main
from driftline.config import Settings
from driftline.control import ControlClient


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def assert_report(folder: Path, name: str) -> dict[str, object] | list[object]:
    """Every offline command writes Markdown, HTML with at least one plot, and JSON."""
    assert (folder / f"{name}.md").read_text().startswith("# ")
    page = (folder / f"{name}.html").read_text()
    assert "<svg" in page and "<table>" in page, name
    data: dict[str, object] | list[object] = json.loads((folder / f"{name}.json").read_text())
    return data


def test_offline_commands_end_to_end(settings_factory: Callable[..., Settings], tmp_path: Path) -> None:
    out = tmp_path / "offline"
    trained = CliRunner().invoke(
        main,
        ["offline", "train", "--out", str(out), "--rows", "4000", "--epochs", "3", "--epsilons", "0.3", "--seeds", "2"],
    )
    assert trained.exit_code == 0, trained.output
    assert "baseline accuracy" in trained.stdout and "DP-SGD epsilon" in trained.stdout
    # Issue 22.6: no report.md, and the progress bar went into redirected logs.
    assert "\r" not in trained.stderr and "offline train" not in trained.stderr, trained.stderr
    report = assert_report(out, "report")
    assert "## DP-SGD runs (Opacus)" in (out / "report.md").read_text() and report["baseline"]  # type: ignore[call-overload]
    assert "2 seeds" in trained.stdout and "2 seeds" in (out / "report.md").read_text()  # issue 22.5
    data = str(out / "dataset.npz")
    worse = run(
        "offline",
        "gate",
        "--candidate",
        str(out / "model-dp-eps0.3.pt"),
        "--production",
        str(out / "model-baseline.pt"),
        "--data",
        data,
        code=1,
    )
    assert "**FAILED**" in worse and "| accuracy |" in worse
    assert assert_report(out, "gate")["passed"] is False  # type: ignore[call-overload]
    s = settings_factory()
    ok = run(
        "offline",
        "gate",
        "--candidate",
        str(out / "model-baseline.pt"),
        "--production",
        str(out / "model-baseline.pt"),
        "--data",
        data,
        "--max-latency-ratio",
        "3",
        "--register-canary",
        "loan-approval/v9",
        "--broker",
        s.broker,
        "--topic-prefix",
        s.topic_prefix,
    )
    assert "**PASSED**" in ok and "registered loan-approval v9 as a 10 % canary" in ok
    client = ControlClient(s.broker, s.topic("control"))
    try:
        state = client.sync().models["loan-approval"]
    finally:
        client.close()
    assert state.canaries == {"v9": 10.0} and state.change is not None and state.change.by == "offline-gate"
    # with --clickhouse the registered version's lineage chain lands in the lineage table; the review shows it
    import subprocess
    import sys

    dsn = f"chdb://{tmp_path}/ch"
    gate_out = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "offline",
            "gate",
            "--candidate",
            str(out / "model-baseline.pt"),
            "--production",
            str(out / "model-baseline.pt"),
            "--data",
            data,
            "--max-latency-ratio",
            "3",
            "--register-canary",
            "loan-approval/v10",
            "--broker",
            s.broker,
            "--topic-prefix",
            s.topic_prefix,
            "--clickhouse",
            dsn,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gate_out.returncode == 0, gate_out.stdout + gate_out.stderr
    assert "lineage of loan-approval v10: 3 artefact(s) stored" in gate_out.stdout, gate_out.stdout
    args = ["review", "--model", "loan-approval", "--clickhouse", dsn, "--out", str(tmp_path / "rev")]
    review = subprocess.run([sys.executable, "-m", "driftline", *args], capture_output=True, text=True, timeout=300)
    assert review.returncode == 0, review.stdout + review.stderr
    (line,) = [x for x in review.stdout.splitlines() if x.startswith("- v10:")]
    assert "gate gate.md" in line and "model model-baseline.pt" in line and "dataset dataset.npz" in line, line
    distilled = run("offline", "distill", "--data", data)
    assert "| distilled student |" in distilled and (out / "model-student.pt.lineage.json").is_file()
    distill_json = assert_report(out, "distill")
    assert "reliability" in distill_json
    energy = distill_json["energy"]  # type: ignore[call-overload]
    assert {(e["model"], e["batch"], e["threads"]) for e in energy} == {
        (m, b, t)
        for m in ("teacher (gradient boosting)", "student (torch)", "student ONNX fp32", "student ONNX int8")
        for b in (1, 1024)
        for t in (1, 2)
    }
    assert "## Energy per inference" in distilled and "Method: **" in distilled
    hybrid = run(
        "offline",
        "hybrid",
        "--data",
        data,
        "--threshold",
        "0.9",
        "--broker",
        s.broker,
        "--topic-prefix",
        s.topic_prefix,
    )
    assert "| 0.5 |" in hybrid and "logged 1,000 routing decisions" in hybrid
    assert len(assert_report(out, "hybrid")["curve"]) == 8  # type: ignore[call-overload]
    # Issue 22.7: --threshold changed nothing in the report without --broker.
    alone = run("offline", "hybrid", "--data", data, "--threshold", "0.75")
    assert "At the chosen threshold 0.75" in alone and "| **0.75** (chosen) |" in alone
    assert assert_report(out, "hybrid")["threshold"] == 0.75  # type: ignore[call-overload]
    fair = run("offline", "fairness", "--data", data, "--seeds", "3")
    assert "Over 3 seeds of the randomised predictions" in fair and " ± " in fair
    assert "ExponentiatedGradient" in fair and "ThresholdOptimizer" in fair
    assert len(assert_report(out, "fairness")) == 3
    fed = run("offline", "federated", "--clients", "5", "--rounds", "4", "--out", str(tmp_path / "fed"))
    assert "federated accuracy" in fed
    assert len(assert_report(tmp_path / "fed", "federated")["history"]) == 4  # type: ignore[call-overload]
    privacy = run(
        "offline",
        "privacy",
        "--clients",
        "10",
        "--rounds",
        "4",
        "--noise-multipliers",
        "1",
        "--epsilons",
        "2",
        "--out",
        str(tmp_path / "privacy"),
    )
    assert "| FedAvg + secure aggregation + client DP (sigma 1, clip 1) | client |" in privacy
    assert len(assert_report(tmp_path / "privacy", "privacy")["rows"]) == 4  # type: ignore[call-overload]
    chain = run("offline", "lineage", str(out / "model-int8-static.onnx"), "--root", str(out))
    assert [line.split()[1] for line in chain.splitlines()] == ["onnx", "model", "dataset"]
    assert "no lineage record" in run("offline", "lineage", "deadbeef", "--root", str(out), code=2)
    assert "--register-canary" in run(
        "offline",
        "gate",
        "--candidate",
        str(out / "model-baseline.pt"),
        "--production",
        str(out / "model-baseline.pt"),
        "--data",
        data,
        "--register-canary",
        "nomodel",
        code=2,
    )


_WRITE_WINDOW = """
import sys, time
from river.datasets import synth
from driftline.config import Settings
from driftline.events import Prediction
from driftline.sinks.clickhouse import ClickHouseSink, SinkBatch
sink = ClickHouseSink(Settings(clickhouse=sys.argv[1]))
sink.migrate()
t0 = time.time() - 3600
events = []
for i, (x, y) in enumerate(synth.Agrawal(classification_function=2, seed=99).take(600)):
    x = dict(x)
    x["age"] = 45.0  # production sends a constant age: the model cannot use it any more
    events.append(Prediction(event_id=f"p{i}", model="loan-approval", version="v1", ts=t0 + i,
                             features={k: float(v) for k, v in x.items()}, prediction=int(y)))
sink.write(SinkBatch(events, [], [], token="explain"))
"""


def test_explain_flags_the_feature_production_broke(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "offline"
    run("offline", "train", "--out", str(out), "--rows", "4000", "--epochs", "1", "--epsilons", "8", "--seeds", "1")
    dsn = f"chdb://{tmp_path}/ch"
    subprocess.run([sys.executable, "-c", _WRITE_WINDOW, dsn], check=True, timeout=120)
    text = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "offline",
            "explain",
            "--data",
            str(out / "dataset.npz"),
            "--clickhouse",
            dsn,
            "--since",
            "2000-01-01",
            "--until",
            "2100-01-01",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "## Global importance" in text and "## Counterfactual for row 0" in text
    assert "## The same prediction by LIME" in text and "rank correlation of |contribution|" in text
    report = assert_report(out, "explain")
    assert report["lime"]["seed"] == 0 and report["shift"]["age"][2] is True  # type: ignore[call-overload,index]
    shift = {
        line.split("|")[1].strip(): line
        for line in text.split("## Importance shift")[1].splitlines()
        if line.startswith("| ") and "share" not in line
    }
    assert shift["age"].rstrip().endswith("| yes |"), text
