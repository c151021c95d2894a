"""Structured logs: one JSON object per line, with model/version/window context where there is one.

`driftline worker --log-format json` (``DRIFTLINE_LOG_FORMAT=json``) switches the worker to
it; log calls pass context as ``extra=context(model=..., version=..., window_start=...)``.

>>> import json, logging
>>> record = logging.LogRecord("driftline.x", logging.WARNING, __file__, 1, "canary %s", ("v2",), None)
>>> record.__dict__.update(context(model="loan", version="v2", window_start=1.8e9))
>>> json.loads(JsonFormatter().format(record))["model"]
'loan'
"""

from __future__ import annotations

import logging
import time
from typing import Any

from driftline.events import strict_dumps

CONTEXT_KEYS = ("model", "version", "window_start", "window_end", "subscription", "topic", "partition")


def context(**fields: Any) -> dict[str, Any]:
    """`extra=` for a log call: the fields a JSON log line carries besides the message."""
    return {f"dl_{k}": v for k, v in fields.items() if v is not None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = record.__dict__.get(f"dl_{key}")
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return strict_dumps(out, default=str)


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig for mode/Faust's worker: JSON lines on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "driftline.streams.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
    }
