"""Lineage of offline artefacts: what each dataset, model, ONNX file, profile or report was made from.

An artefact is identified by the SHA-256 of its content (so the same bytes are the same
artefact wherever they are), and recorded with its kind, the code version that made it,
its parameters, its metrics and its parents. Records go to ClickHouse ``lineage`` and to a
JSON file next to the artefact (``<file>.lineage.json``); `ancestry()` walks the parents.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "data.csv").write_text("x,y\\n1,0\\n")
8
>>> data = record(d / "data.csv", "dataset", params={"rows": 1})
>>> model = record_bytes(b"weights", d / "model.bin", "model", parents=[data])
>>> [a.kind for a in ancestry(model.artefact_id, LocalLineage(d))]
['model', 'dataset']
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from driftline.exceptions import DriftlineError
from driftline.sinks.client import ClickHouseClient

KINDS = ("dataset", "model", "onnx", "profile", "report", "federated_model", "gate", "guideline")


@dataclass(frozen=True)
class Artefact:
    artefact_id: str  # sha256 of the content
    kind: str
    name: str
    path: str
    created_at: float
    code_version: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    parents: tuple[str, ...] = ()


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_version() -> str:
    """The package version plus the git commit when run from a checkout (with + when it has local changes)."""
    try:
        pkg = version("driftline")
    except PackageNotFoundError:
        pkg = "0+unknown"
    repo = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None or not (repo / ".git").exists():
        return pkg
    try:
        commit = subprocess.run(
            [git, "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [git, "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{pkg}+g{commit}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return pkg


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".lineage.json")


def record(
    path: Path,
    kind: str,
    *,
    name: str = "",
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    parents: Sequence[Artefact | str] = (),
) -> Artefact:
    """Hash the file at `path` and write its lineage record beside it."""
    if kind not in KINDS:
        raise DriftlineError(f"artefact kind {kind!r} is not one of {list(KINDS)}")
    artefact = Artefact(
        artefact_id=content_hash(path),
        kind=kind,
        name=name or path.name,
        path=str(path.resolve()),
        created_at=time.time(),
        code_version=code_version(),
        params=dict(params or {}),
        metrics=dict(metrics or {}),
        parents=tuple(p.artefact_id if isinstance(p, Artefact) else p for p in parents),
    )
    _sidecar(path).write_text(json.dumps(asdict(artefact), indent=1, default=str) + "\n")
    return artefact


def record_bytes(content: bytes, path: Path, kind: str, **kw: Any) -> Artefact:
    """Write `content` to `path`, then record it."""
    path.write_bytes(content)
    return record(path, kind, **kw)


class LineageStore(Protocol):
    def get(self, artefact_id: str) -> Artefact | None: ...


class LocalLineage:
    """Lineage records from the ``*.lineage.json`` files below a directory."""

    def __init__(self, root: Path):
        self._by_id: dict[str, Artefact] = {}
        for sidecar in root.rglob("*.lineage.json"):
            raw = json.loads(sidecar.read_text())
            raw["parents"] = tuple(raw.get("parents", ()))
            art = Artefact(**raw)
            self._by_id[art.artefact_id] = art

    def get(self, artefact_id: str) -> Artefact | None:
        if artefact_id in self._by_id:
            return self._by_id[artefact_id]
        matches = [a for key, a in self._by_id.items() if key.startswith(artefact_id)]
        return matches[0] if len(matches) == 1 else None


class ClickHouseLineage:
    """The ``lineage`` table."""

    def __init__(self, client: ClickHouseClient, database: str):
        self.client = client
        self.database = database

    def store(self, artefacts: Iterable[Artefact]) -> None:
        rows = [
            [
                a.artefact_id,
                a.kind,
                a.name,
                a.path,
                int(a.created_at * 1000),
                a.code_version,
                json.dumps(a.params, default=str),
                json.dumps(a.metrics, default=str),
                list(a.parents),
            ]
            for a in artefacts
        ]
        if rows:
            self.client.insert(
                "lineage",
                rows,
                database=self.database,
                column_names=[
                    "artefact_id",
                    "kind",
                    "name",
                    "path",
                    "created_at",
                    "code_version",
                    "params",
                    "metrics",
                    "parents",
                ],
            )

    def get(self, artefact_id: str) -> Artefact | None:
        rows = self.client.query(
            f"SELECT artefact_id, kind, name, path, toUnixTimestamp64Milli(created_at) / 1000, code_version, params, "
            f"metrics, parents FROM {self.database}.lineage FINAL WHERE startsWith(artefact_id, {{a:String}})",
            parameters={"a": artefact_id},
        ).result_rows
        if len(rows) != 1:
            return None
        r = rows[0]
        return Artefact(r[0], r[1], r[2], r[3], float(r[4]), r[5], json.loads(r[6]), json.loads(r[7]), tuple(r[8]))


def store_chain(artefact: Artefact, roots: Sequence[Path], client: ClickHouseClient, database: str) -> int:
    """Store `artefact` and every ancestor found in the sidecars below `roots` in the lineage table."""
    local: dict[str, Artefact] = {}
    for root in dict.fromkeys(r.resolve() for r in roots):
        local.update(LocalLineage(root)._by_id)
    chain, queue = {artefact.artefact_id: artefact}, list(artefact.parents)
    while queue:
        current = local.get(queue.pop(0))
        if current is not None and current.artefact_id not in chain:
            chain[current.artefact_id] = current
            queue.extend(current.parents)
    ClickHouseLineage(client, database).store(chain.values())
    return len(chain)


def ancestry(artefact_id: str, store: LineageStore) -> list[Artefact]:
    """The artefact and every ancestor, breadth first; raises if a link is missing."""
    out: list[Artefact] = []
    queue, seen = [artefact_id], set()
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        art = store.get(current)
        if art is None:
            raise DriftlineError(f"no lineage record for artefact {current[:12]}; the chain is broken there")
        seen.add(art.artefact_id)
        out.append(art)
        queue.extend(art.parents)
    return out


def model_card(artefact: Artefact, chain: list[Artefact]) -> str:
    """A Markdown model card: what it is, its metrics and parameters, and where it came from."""
    made = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(artefact.created_at))
    lines = [
        f"# Model card: {artefact.name}",
        "",
        f"- artefact: `{artefact.artefact_id}` ({artefact.kind})",
        f"- made by driftline {artefact.code_version} at {made}",
        "",
        "## Metrics",
        "",
    ]
    table = ["| name | value |", "|---|---|"]
    lines += (
        table + [f"| {k} | {v} |" for k, v in sorted(artefact.metrics.items())]
        if artefact.metrics
        else ["(none recorded)"]
    )
    lines += ["", "## Parameters", ""]
    lines += (
        table + [f"| {k} | {v} |" for k, v in sorted(artefact.params.items())]
        if artefact.params
        else ["(none recorded)"]
    )
    lines += ["", "## Lineage", ""]
    lines += [
        f"- {a.kind} `{a.artefact_id[:12]}` {a.name} (parents: {', '.join(p[:12] for p in a.parents) or 'none'})"
        for a in chain
    ]
    return "\n".join(lines) + "\n"
