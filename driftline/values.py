"""Value types that the settings, the monitor spec and the spec's sections share: durations and secrets.

Their own module because the sections (alerts, canary, labeling, privacy) parse durations and
hold secrets while `config.py` and `spec.py` compose those sections: nothing here imports back.

>>> parse_duration("5m", "models.m.window")
300
"""

from __future__ import annotations

import re
from typing import Any

from driftline.exceptions import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, where: str) -> int:
    """Seconds in '30s', '5m', '1h', '1d' or a bare number of seconds."""
    match = _DURATION.match(str(value))
    if not match or isinstance(value, bool):
        raise ConfigError(f"monitor spec, {where}: {value!r} is not a duration; write e.g. 30s, 5m, 1h or 1d")
    return int(float(match.group(1)) * _UNIT[match.group(2)])


class Secret:
    """A string that never shows itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
