"""The HTML report reads the metrics table and draws SVG charts; producer strings stay data."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from driftline.config import Settings
from driftline.metrics.rows import MetricRow
from driftline.reports.model_report import model_report
from driftline.sinks.clickhouse import ClickHouseSink

pytestmark = pytest.mark.integration


def test_report_draws_each_series_and_escapes_names(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink], tmp_path: Path
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    model, t0 = "<script>alert(1)</script>", float(int(time.time()) // 300 * 300 - 3000)
    rows = []
    for w in range(6):
        start = t0 + w * 300
        rows += [
            MetricRow(start, start + 300, model, "v1", "drift", "psi", "income", "", 0.01 + 0.1 * w, 100),
            MetricRow(start, start + 300, model, "v1", "quality", "accuracy", "", "", 0.9 - 0.05 * w, 80),
            MetricRow(start, start + 300, model, "v1", "kpi", "latency_p95_ms", "", "", 3.0, 100),
        ]
    rows.append(MetricRow(t0 + 1500, t0 + 1800, model, "v1", "drift", "drifted", "income", "", 1.0, 100))
    sink.write_metrics(rows)
    page = model_report(sink.client, settings.clickhouse_database, model, "v1", tmp_path / "r.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    # psi of income, accuracy, p95 latency, and accuracy again beside the (absent) estimate before labels
    assert page.count("<polyline") == 4
    assert len(re.findall(r'<rect [^>]*fill="#fdd"', page)) == 1  # the drifted window is shaded
    assert "no data" in page  # fairness: nothing recorded, said so


def test_report_plots_every_data_quality_rate_on_round_ticks(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink], tmp_path: Path
) -> None:
    """Issue 17.10: out-of-range reached 28 % in the demo while the report's chart said "no data"."""
    settings = settings_factory()
    sink = sink_factory(settings)
    t0 = float(int(time.time()) // 300 * 300 - 3000)
    rows = []
    for w in range(6):
        start = t0 + w * 300
        rows += [
            MetricRow(start, start + 300, "m", "v1", "data_quality", "out_of_range_rate", "salary", "", 0.0682, 100),
            MetricRow(start, start + 300, "m", "v1", "data_quality", "unseen_category_rate", "car", "", 0.0909, 100),
            MetricRow(start, start + 300, "m", "v1", "data_quality", "missing_rate", "age", "", 0.0, 100),
        ]
    sink.write_metrics(rows)
    page = model_report(sink.client, settings.clickhouse_database, "m", "v1", tmp_path / "r.html").read_text()
    chart = page[page.index("Data quality") : page.index("</svg>", page.index("Data quality"))]
    assert chart.count("<polyline") == 2  # the two rates above 0; missing_rate stayed 0
    assert "out_of_range_rate salary" in chart and "unseen_category_rate car" in chart
    ticks = [float(v) for v in re.findall(r'text-anchor="end">([^<]+)</text>', chart)]
    assert ticks == [0.0, 0.025, 0.05, 0.075, 0.1]  # round values, not 0.0682 or 0.0909


def test_file_names_from_model_names_stay_inside_the_target_folder(tmp_path: Path) -> None:
    """A model named `../x` made `driftline report` write outside the data dir (issue 18.7)."""
    import subprocess
    import sys

    data = tmp_path / "data"
    for model in ("../../escaped", "/abs/path", "..", "a/b\\c"):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "driftline",
                "report",
                "--model",
                model,
                "--version",
                "../v1",
                "--clickhouse",
                f"chdb://{tmp_path / 'ch'}",
                "--data-dir",
                str(data),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        written = Path(run.stdout.strip().removeprefix("wrote "))
        assert written.resolve().parent == data.resolve(), written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ch", "data"]
    assert len(list(data.iterdir())) == 4  # four models, four distinct files


def test_cli_json_output_is_strict_json(tmp_path: Path) -> None:
    """`driftline metrics` prints a NaN metric as null, never a bare NaN (issue 17.8)."""
    import json
    import subprocess
    import sys

    dsn = f"chdb://{tmp_path / 'ch'}"
    write = (
        "from driftline.config import Settings; from driftline.metrics.rows import MetricRow; "
        "from driftline.sinks.clickhouse import ClickHouseSink; "
        f"s = ClickHouseSink(Settings(clickhouse={dsn!r})); s.migrate(); "
        "import time; t = time.time() // 60 * 60; "
        "s.write_metrics([MetricRow(t, t + 60, 'm', 'v1', 'quality', 'roc_auc', '', '', float('nan'), 3)])"
    )
    subprocess.run([sys.executable, "-c", write], check=True, timeout=120)
    out = subprocess.run(
        [sys.executable, "-m", "driftline", "metrics", "--model", "m", "--clickhouse", dsn],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout

    def refuse(constant: str) -> None:
        raise ValueError(constant)

    (row,) = [json.loads(line, parse_constant=refuse) for line in out.splitlines()]
    assert row["metric"] == "roc_auc" and row["value"] is None
