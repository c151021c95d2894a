"""Label matchers as in Prometheus and Alertmanager: ``name=value``, ``!=``, ``=~regex``, ``!~regex``.

Regexes are anchored (they must match the whole value), and a missing label reads as "".

>>> m = Matcher.parse("severity=~warning|critical")
>>> m.matches({"severity": "critical"}), m.matches({"severity": "info"})
(True, False)
>>> Matcher.parse("severity")
Traceback (most recent call last):
...
driftline.exceptions.ConfigError: matcher 'severity' is not name=value, name!=value, name=~regex or name!~regex
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from driftline.exceptions import ConfigError

_SYNTAX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")
OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigError(f"matcher operator {self.op!r} is not one of {list(OPS)}")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(f"(?:{self.value})\\Z"))
            except re.error as exc:
                raise ConfigError(f"matcher {self}: {self.value!r} is not a valid regex ({exc})") from None

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = _SYNTAX.match(text)
        if not match:
            raise ConfigError(f"matcher {text!r} is not name=value, name!=value, name=~regex or name!~regex")
        name, op, value = match.groups()
        return cls(name, op, value.strip('"'))

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self._regex is not None:
            return bool(self._regex.match(value)) == (self.op == "=~")
        return (value == self.value) == (self.op == "=")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matchers(raw: Iterable[str] | Mapping[str, str] | None, where: str = "matchers") -> tuple[Matcher, ...]:
    """Matchers from a list of ``name=value`` strings or a ``{name: value}`` mapping (equality)."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        return tuple(Matcher(str(k), "=", str(v)) for k, v in raw.items())
    if isinstance(raw, str) or not all(isinstance(x, str) for x in raw):
        raise ConfigError(f"{where}: expected a list like ['severity=critical'] or a mapping {{severity: critical}}")
    return tuple(Matcher.parse(x) for x in raw)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
