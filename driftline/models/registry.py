"""The model registry: versions of a model, their stage and traffic weight, and who changed what, when, why.

A model's whole state is one value (so a change such as a promotion is atomic for every
reader) and carries a revision that grows by one per change. The state travels on the
compacted ``control`` topic keyed ``model/<name>``; ClickHouse keeps the history.

Weights are percentages of traffic for canary versions; the production version takes the
rest. Shadow versions get a copy of every request and never answer it.

>>> s = ModelState("loan").register("v1", "production", by="ana", reason="first", now=1.0)
>>> s = s.register("v2", "canary", weight=10, by="ana", reason="new tree", now=2.0)
>>> s.production, s.canaries, s.revision
('v1', {'v2': 10.0}, 2)
>>> s.rollback("v2", by="canary-analysis", reason="accuracy -12 %", now=3.0).canaries
{}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from driftline.exceptions import ConfigError

STAGES = ("production", "canary", "shadow", "retired")


@dataclass(frozen=True)
class VersionState:
    version: str
    stage: str
    weight: float = 0.0
    updated_at: float = 0.0
    updated_by: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Change:
    """The change that produced a revision (the audit trail's unit)."""

    action: str  # register | set_weight | promote | rollback | retire | lock | unlock
    version: str
    by: str
    reason: str
    at: float


@dataclass(frozen=True)
class ModelState:
    model: str
    versions: Mapping[str, VersionState] = field(default_factory=dict)
    locked: bool = False
    revision: int = 0
    change: Change | None = None

    @property
    def production(self) -> str | None:
        return next((v.version for v in self.versions.values() if v.stage == "production"), None)

    @property
    def canaries(self) -> dict[str, float]:
        return {v.version: v.weight for v in self.versions.values() if v.stage == "canary" and v.weight > 0}

    @property
    def shadows(self) -> list[str]:
        return sorted(v.version for v in self.versions.values() if v.stage == "shadow")

    def stage_of(self, version: str) -> str | None:
        state = self.versions.get(version)
        return state.stage if state else None

    def _with(self, states: dict[str, VersionState], change: Change, **kw: Any) -> ModelState:
        return replace(self, versions=states, revision=self.revision + 1, change=change, **kw)

    def _check_unlocked(self, action: str) -> None:
        if self.locked:
            raise ConfigError(f"model {self.model!r} is locked; run `driftline models unlock {self.model}` ({action})")

    def register(
        self, version: str, stage: str, *, weight: float = 0.0, by: str, reason: str, now: float
    ) -> ModelState:
        self._check_unlocked("register")
        if stage not in STAGES:
            raise ConfigError(f"stage {stage!r} is not one of {list(STAGES)}")
        if not version or len(version) > 256:
            raise ConfigError("a version is 1 to 256 characters")
        states = dict(self.versions)
        if stage == "production":
            states = {
                k: replace(v, stage="retired", weight=0.0) if v.stage == "production" else v for k, v in states.items()
            }
        if stage == "canary":
            _check_weight(weight, sum(w for v, w in self.canaries.items() if v != version))
        w = 100.0 if stage == "production" else (float(weight) if stage == "canary" else 0.0)
        states[version] = VersionState(version, stage, w, now, by, reason)
        return self._with(states, Change("register", version, by, reason, now))

    def set_weight(self, version: str, weight: float, *, by: str, reason: str, now: float) -> ModelState:
        self._check_unlocked("set_weight")
        current = self.versions.get(version)
        if current is None or current.stage != "canary":
            raise ConfigError(f"{self.model} {version} is not a canary; register it with --stage canary first")
        _check_weight(weight, sum(w for v, w in self.canaries.items() if v != version))
        states = dict(self.versions)
        states[version] = replace(current, weight=float(weight), updated_at=now, updated_by=by, reason=reason)
        return self._with(states, Change("set_weight", version, by, reason, now))

    def promote(self, version: str, *, by: str, reason: str, now: float) -> ModelState:
        """`version` becomes production (weight 100); the old production version is retired."""
        self._check_unlocked("promote")
        if version not in self.versions:
            raise ConfigError(f"{self.model} has no version {version!r}; known: {sorted(self.versions)}")
        states = {
            k: replace(v, stage="retired", weight=0.0, updated_at=now, updated_by=by, reason=reason)
            if v.stage == "production" and k != version
            else v
            for k, v in self.versions.items()
        }
        states[version] = replace(
            states[version], stage="production", weight=100.0, updated_at=now, updated_by=by, reason=reason
        )
        return self._with(states, Change("promote", version, by, reason, now))

    def rollback(self, version: str, *, by: str, reason: str, now: float) -> ModelState:
        """Take `version` out of traffic: weight 0, stage retired. Production keeps (or gets back) its traffic."""
        self._check_unlocked("rollback")
        current = self.versions.get(version)
        if current is None:
            raise ConfigError(f"{self.model} has no version {version!r}; known: {sorted(self.versions)}")
        if current.stage == "production":
            raise ConfigError(
                f"{self.model} {version} is the production version; promote another version instead of rolling back"
            )
        states = dict(self.versions)
        states[version] = replace(current, stage="retired", weight=0.0, updated_at=now, updated_by=by, reason=reason)
        return self._with(states, Change("rollback", version, by, reason, now))

    def lock(self, *, by: str, reason: str, now: float) -> ModelState:
        """Freeze the rollout: automated analysis leaves the model alone until unlocked."""
        return replace(self, locked=True, revision=self.revision + 1, change=Change("lock", "", by, reason, now))

    def unlock(self, *, by: str, reason: str, now: float) -> ModelState:
        return replace(self, locked=False, revision=self.revision + 1, change=Change("unlock", "", by, reason, now))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "revision": self.revision,
            "locked": self.locked,
            "versions": {k: asdict(v) for k, v in self.versions.items()},
            "change": asdict(self.change) if self.change else None,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelState:
        change = raw.get("change")
        return cls(
            model=str(raw["model"]),
            versions={k: VersionState(**v) for k, v in dict(raw.get("versions", {})).items()},
            locked=bool(raw.get("locked", False)),
            revision=int(raw.get("revision", 0)),
            change=Change(**change) if change else None,
        )


def _check_weight(weight: float, others: float) -> None:
    if not 0 <= weight <= 100:
        raise ConfigError(f"weight {weight} must be a percentage from 0 to 100")
    if weight + others > 100:
        raise ConfigError(f"canary weights would add up to {weight + others:g} % of traffic; at most 100")
