"""Labeling guidelines in ClickHouse ``labeling_guidelines``, each version recorded in the lineage."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from driftline.exceptions import ConfigError
from driftline.labeling.guidelines import Guideline
from driftline.sinks.client import ClickHouseClient
from driftline.sinks.lineage import Artefact, ClickHouseLineage, code_version


class GuidelineStore:
    """Guidelines in ClickHouse `labeling_guidelines`; their lineage in the `lineage` table."""

    def __init__(self, client: ClickHouseClient, database: str):
        self.client = client
        self.database = database

    def publish(self, guideline: Guideline) -> tuple[str, bool]:
        """Store it; returns (artefact id, whether it was new). Same version, other content: ConfigError."""
        existing = self.get(guideline.task, guideline.version)
        if existing is not None:
            if existing.content_hash != guideline.content_hash:
                raise ConfigError(
                    f"guideline {guideline.task} {guideline.version} is already published with other "
                    "content; publish the change as a new version"
                )
            return existing.content_hash, False
        previous = self.versions(guideline.task)
        row = [
            guideline.task,
            guideline.version,
            datetime.now(tz=UTC),
            guideline.author,
            guideline.content_hash,
            guideline.label_set,
            guideline.canonical(),
        ]
        self.client.insert(
            "labeling_guidelines",
            [row],
            column_names=["task", "version", "created_at", "author", "content_hash", "labels", "document"],
            database=self.database,
        )
        parent = self.get(guideline.task, previous[-1]) if previous else None
        ClickHouseLineage(self.client, self.database).store(
            [
                Artefact(
                    guideline.content_hash,
                    "guideline",
                    f"{guideline.task} {guideline.version}",
                    f"clickhouse:{self.database}.labeling_guidelines",
                    time.time(),
                    code_version(),
                    params={"task": guideline.task, "version": guideline.version, "labels": guideline.label_set},
                    parents=(parent.content_hash,) if parent else (),
                ),
            ]
        )
        return guideline.content_hash, True

    def versions(self, task: str) -> list[str]:
        rows = self.client.query(
            f"SELECT version FROM {self.database}.labeling_guidelines FINAL WHERE task = {{t:String}} "
            "ORDER BY created_at",
            parameters={"t": task},
        ).result_rows
        return [str(r[0]) for r in rows]

    def get(self, task: str, version: str | None = None) -> Guideline | None:
        """One version (default: the newest) of a task's guideline."""
        where = "task = {t:String}" + (" AND version = {v:String}" if version else "")
        rows = self.client.query(
            f"SELECT document FROM {self.database}.labeling_guidelines FINAL WHERE {where} "
            "ORDER BY created_at DESC LIMIT 1",
            parameters={"t": task, "v": version or ""},
        ).result_rows
        if not rows:
            return None
        raw = json.loads(rows[0][0])
        raw["labels"] = [dict(d) for d in raw["labels"]]
        guideline = Guideline.from_dict({**raw.pop("extra", {}), **raw})
        return guideline
