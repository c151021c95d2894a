"""Subscriptions: who receives which alerts, and how (a signed webhook).

The secret signs every delivery (Standard Webhooks); it prints as ``***`` and only
`Subscription.reveal()` shows it, once, to the person who created it.

>>> s = Subscription.create("ops", "https://hooks.example/alerts", models=("loan",), min_severity="critical",
...                         created_by="ana", now=0.0)
>>> s.matches({"model": "loan", "severity": "critical"}), s.matches({"model": "loan", "severity": "warning"})
(True, False)
>>> Subscription.create("ops", "ftp://x", created_by="ana", now=0.0)
Traceback (most recent call last):
...
driftline.exceptions.ConfigError: subscription 'ops': url 'ftp://x' must be http(s)://host[:port]/path
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from driftline.alerts.matchers import Matcher, matches_all, parse_matchers
from driftline.alerts.rules import SEVERITIES
from driftline.exceptions import ConfigError
from driftline.values import Secret

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def check_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: url {url!r} must be http(s)://host[:port]/path")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"{where}: url {url!r} has a bad port") from None
    return url


@dataclass(frozen=True)
class Subscription:
    id: str
    name: str
    url: str
    secret: Secret
    models: tuple[str, ...] = ()  # empty: every model
    min_severity: str = "info"
    matchers: tuple[Matcher, ...] = ()
    created_by: str = ""
    created_at: float = 0.0
    deleted: bool = False

    @classmethod
    def create(
        cls,
        name: str,
        url: str,
        *,
        created_by: str,
        now: float,
        models: Iterable[str] = (),
        min_severity: str = "info",
        matchers: Iterable[str] = (),
        secret: str | None = None,
    ) -> Subscription:
        where = f"subscription {name!r}"
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where}: a name is letters, digits, - and _ only")
        check_url(url, where)
        if min_severity not in SEVERITIES:
            raise ConfigError(f"{where}: severity {min_severity!r} is not one of {list(SEVERITIES)}")
        if secret is not None and (not secret.startswith(SECRET_PREFIX) or len(secret) < len(SECRET_PREFIX) + 16):
            raise ConfigError(f"{where}: a secret is whsec_ followed by base64 of at least 16 bytes; omit it for one")
        try:
            parsed = parse_matchers(list(matchers), f"{where} filter")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return cls(
            id=f"sub-{uuid.uuid4().hex[:12]}",
            name=name,
            url=url,
            secret=Secret(secret or new_secret()),
            models=tuple(models),
            min_severity=min_severity,
            matchers=parsed,
            created_by=created_by,
            created_at=now,
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.deleted:
            return False
        if self.models and labels.get("model", "") not in self.models:
            return False
        severity = labels.get("severity", "info")
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else 0
        return rank >= SEVERITIES.index(self.min_severity) and matches_all(self.matchers, labels)

    def delete(self) -> Subscription:
        return replace(self, deleted=True)

    def reveal(self) -> str:
        return self.secret.get()

    def as_dict(self, with_secret: bool = False) -> dict[str, Any]:
        """As data; without `with_secret`, the signing secret is left out and the URL loses its user
        info, query and fragment (they often carry tokens): what may be shown or stored."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "url": self.url if with_secret else safe_url(self.url),
            "models": list(self.models),
            "min_severity": self.min_severity,
            "matchers": [str(m) for m in self.matchers],
            "created_by": self.created_by,
            "created_at": self.created_at,
            "deleted": self.deleted,
        }
        if with_secret:
            out["secret"] = self.secret.get()
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Subscription:
        return cls(
            id=str(raw["id"]),
            name=str(raw["name"]),
            url=str(raw["url"]),
            secret=Secret(str(raw.get("secret", ""))),
            models=tuple(raw.get("models", ())),
            min_severity=str(raw.get("min_severity", "info")),
            matchers=parse_matchers(list(raw.get("matchers", []))),
            created_by=str(raw.get("created_by", "")),
            created_at=float(raw.get("created_at", 0.0)),
            deleted=bool(raw.get("deleted", False)),
        )


def safe_url(url: str) -> str:
    """scheme://host[:port]/path: no user info, query or fragment (they often carry tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
