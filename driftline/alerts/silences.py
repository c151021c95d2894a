"""Silences: matchers that mute notifications of matching alerts for a while, with who and why.

>>> from driftline.alerts.matchers import parse_matchers
>>> s = Silence.create(parse_matchers(["model=loan"]), ends_at=200.0, created_by="ana", comment="retraining",
...                    now=100.0)
>>> s.active(150.0), s.mutes({"model": "loan"}, 150.0), s.mutes({"model": "loan"}, 250.0)
(True, True, False)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from driftline.alerts.matchers import Matcher, matches_all, parse_matchers
from driftline.exceptions import ConfigError


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    @classmethod
    def create(
        cls,
        matchers: Iterable[Matcher],
        *,
        ends_at: float,
        created_by: str,
        comment: str,
        now: float,
        starts_at: float | None = None,
    ) -> Silence:
        matchers = tuple(matchers)
        if not matchers:
            raise ConfigError("a silence needs at least one matcher, e.g. model=loan-approval")
        if not created_by.strip() or not comment.strip():
            raise ConfigError("a silence needs an author (--author) and a comment (--comment)")
        start = now if starts_at is None else starts_at
        if ends_at <= start:
            raise ConfigError("a silence must end after it starts; give e.g. --duration 2h")
        return cls(f"sil-{uuid.uuid4().hex[:12]}", matchers, start, ends_at, created_by, comment, now)

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and matches_all(self.matchers, labels)

    def expire(self, now: float) -> Silence:
        return replace(self, ends_at=min(self.ends_at, now), updated_at=now)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Silence:
        return cls(
            id=str(raw["id"]),
            matchers=parse_matchers(list(raw["matchers"])),
            starts_at=float(raw["starts_at"]),
            ends_at=float(raw["ends_at"]),
            created_by=str(raw["created_by"]),
            comment=str(raw["comment"]),
            updated_at=float(raw.get("updated_at", raw["starts_at"])),
        )


class SilenceSet:
    """The silences a dispatcher knows, by id; a newer version of a silence replaces the older."""

    def __init__(self, silences: Iterable[Silence] = ()):
        self._by_id: dict[str, Silence] = {}
        for s in silences:
            self.put(s)

    def put(self, silence: Silence) -> None:
        old = self._by_id.get(silence.id)
        if old is None or silence.updated_at >= old.updated_at:
            self._by_id[silence.id] = silence

    def get(self, silence_id: str) -> Silence | None:
        return self._by_id.get(silence_id)

    def muted(self, labels: Mapping[str, str], now: float) -> bool:
        return any(s.mutes(labels, now) for s in self._by_id.values())

    def all(self) -> list[Silence]:
        return sorted(self._by_id.values(), key=lambda s: s.starts_at)
