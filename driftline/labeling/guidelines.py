"""Labeling guidelines as data: a versioned document per task (label set, definitions, examples).

A guideline is YAML, e.g.::

    task: loan-approval
    version: "2026-11"
    author: risk-team
    labels:
      - name: "1"
        definition: The applicant repaid on schedule for 12 months.
      - name: "0"
        definition: Any payment more than 30 days late within 12 months.
    examples:
      - item: {salary: 85000, loan: 120000}
        label: "1"
        why: Income covers the instalments twice over.
    notes: Label from the repayment ledger, never from the application.

Publishing stores it in ClickHouse ``labeling_guidelines`` (keyed by task and version) and
records it as a lineage artefact (content hash, code version, parent = the version it
replaces), so a metric computed on labels can be traced to the rules the annotators followed
(label events carry ``guideline_version``). A version, once published, cannot change: the
same version with other content is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from driftline.exceptions import ConfigError


@dataclass(frozen=True)
class LabelDefinition:
    name: str
    definition: str


@dataclass(frozen=True)
class Example:
    item: dict[str, Any]
    label: str
    why: str = ""


@dataclass(frozen=True)
class Guideline:
    task: str
    version: str
    labels: tuple[LabelDefinition, ...]
    examples: tuple[Example, ...] = ()
    author: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label_set(self) -> list[str]:
        return [d.name for d in self.labels]

    def canonical(self) -> str:
        """The content as canonical JSON (what the hash covers)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), default=str)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical().encode()).hexdigest()

    @classmethod
    def from_dict(cls, raw: Any, where: str = "guideline") -> Guideline:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping with task, version, labels")
        missing = [k for k in ("task", "version", "labels") if not raw.get(k)]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)} (see `driftline labels guideline --help`)")
        labels = []
        for i, d in enumerate(raw["labels"]):
            if not isinstance(d, dict) or "name" not in d or not str(d.get("definition", "")).strip():
                raise ConfigError(f"{where}.labels[{i}]: needs a name and a non-empty definition")
            labels.append(LabelDefinition(str(d["name"]), str(d["definition"]).strip()))
        names = [d.name for d in labels]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ConfigError(f"{where}.labels: duplicate label names {twice}")
        examples = []
        for i, e in enumerate(raw.get("examples") or []):
            if not isinstance(e, dict) or "label" not in e or not isinstance(e.get("item"), dict):
                raise ConfigError(f"{where}.examples[{i}]: needs an item (mapping) and a label")
            if str(e["label"]) not in names:
                raise ConfigError(f"{where}.examples[{i}]: label {e['label']!r} is not in the label set {names}")
            examples.append(Example(dict(e["item"]), str(e["label"]), str(e.get("why", ""))))
        known = {"task", "version", "labels", "examples", "author", "notes"}
        return cls(
            str(raw["task"]),
            str(raw["version"]),
            tuple(labels),
            tuple(examples),
            str(raw.get("author", "")),
            str(raw.get("notes", "")),
            {k: v for k, v in raw.items() if k not in known},
        )

    @classmethod
    def from_yaml(cls, path: Path) -> Guideline:
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read guideline {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"guideline {path} is not valid YAML: {exc}") from None
        return cls.from_dict(raw, where=str(path))

    def markdown(self) -> str:
        lines = [f"# Labeling guideline: {self.task} {self.version}", ""]
        if self.author:
            lines += [f"Author: {self.author}. Content hash `{self.content_hash[:16]}`.", ""]
        lines += ["| label | definition |", "|---|---|"] + [f"| {d.name} | {d.definition} |" for d in self.labels]
        if self.examples:
            lines += ["", "## Examples", ""]
            lines += [
                f"- {json.dumps(e.item)} -> **{e.label}**" + (f": {e.why}" if e.why else "") for e in self.examples
            ]
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"
