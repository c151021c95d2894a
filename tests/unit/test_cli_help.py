"""The whole `driftline --help` tree, pinned: every command, flag and env var a user sees.

The snapshot was taken before the CLI moved into `driftline/cli/` modules; it must stay identical
unless a change means to alter what users see. To accept such a change on purpose, run
`DRIFTLINE_UPDATE_HELP_SNAPSHOT=1 pytest tests/unit/test_cli_help.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from driftline.cli import main

SNAPSHOT = Path(__file__).parent / "snapshots" / "cli_help.txt"


def _walk(group: click.Command, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    if isinstance(group, click.Group):
        for name in sorted(group.commands):
            paths += _walk(group.commands[name], (*path, name))
    return paths


def help_tree() -> str:
    runner = CliRunner()
    parts = []
    for path in _walk(main):
        result = runner.invoke(main, [*path, "--help"], prog_name="driftline", terminal_width=100, env={})
        assert result.exit_code == 0, (path, result.output)
        parts.append(f"=== driftline {' '.join(path)}\n{result.output}")
    return "\n".join(parts)


def test_help_tree_is_unchanged() -> None:
    text = help_tree()
    if os.environ.get("DRIFTLINE_UPDATE_HELP_SNAPSHOT") == "1":
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text()


def test_worker_takes_its_consumer_group_from_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17.10: the group had no flag, so two deployments on one broker split each other's partitions."""
    import driftline.streams.worker as worker_module

    seen = {}
    monkeypatch.setattr(worker_module, "run_worker", lambda settings, **kw: seen.setdefault("group", settings.group_id))
    result = CliRunner().invoke(main, ["worker", "--group-id", "fraud-prod", "--broker", "127.0.0.1:1"])
    assert result.exit_code == 0, result.output
    assert seen == {"group": "fraud-prod"} and "(group fraud-prod)" in result.output


def test_worker_listens_where_it_is_told(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue 19.3: the web server was bound to 127.0.0.1 with no way to change it (no container could scrape it)."""
    import driftline.streams.worker as worker_module
    from driftline.config import Settings

    seen = {}
    monkeypatch.setattr(worker_module, "run_worker", lambda settings, **kw: seen.setdefault("host", settings.web_host))
    result = CliRunner().invoke(main, ["worker", "--web-host", "0.0.0.0", "--broker", "127.0.0.1:1"])
    assert result.exit_code == 0, result.output
    assert seen == {"host": "0.0.0.0"} and "GET /stats on 0.0.0.0:6066" in result.output
    app = worker_module.faust_app(Settings(web_host="0.0.0.0", data_dir=str(tmp_path)))
    assert (app.conf.web_bind, app.conf.web_host) == ("0.0.0.0", "0.0.0.0")
    assert worker_module.faust_app(Settings(data_dir=str(tmp_path))).conf.web_bind == "127.0.0.1"  # the default
