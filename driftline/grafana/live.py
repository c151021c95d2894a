"""Push window metrics to Grafana Live, so dashboards update without polling (off by default).

Each metric row becomes one line of Influx line protocol posted to
``<grafana>/api/live/push/<stream>``; Grafana publishes it on the channel
``stream/<stream>/driftline_metric``, which a panel subscribes to (the overview dashboard
has one). Set ``DRIFTLINE_GRAFANA_LIVE_URL`` (and ``DRIFTLINE_GRAFANA_TOKEN``, a service
account token with the Editor role) to switch it on. Posting happens in the background:
a slow or absent Grafana never holds up metrics, and failures are logged, not retried
(the next window's numbers supersede them).

>>> from driftline.metrics.rows import MetricRow
>>> print(line_protocol([MetricRow(60.0, 120.0, "a b", "v1", "drift", "psi", "x,y", "", 0.25, 500)]).rsplit(" ", 2)[0])
driftline_metric,model=a\\ b,version=v1,family=drift,metric=psi,feature=x\\,y
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable
from typing import Any

import aiohttp

from driftline.values import Secret

log = logging.getLogger(__name__)
MEASUREMENT = "driftline_metric"


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def line_protocol(rows: Iterable[Any]) -> str:
    """Influx line protocol for metric rows (timestamp = window start, in ns)."""
    lines = []
    for r in rows:
        if not math.isfinite(r.value):
            continue  # line protocol has no NaN/inf
        tags = f"model={_tag(r.model)},version={_tag(r.version)},family={_tag(r.family)},metric={_tag(r.metric)}"
        if r.feature:
            tags += f",feature={_tag(r.feature)}"
        if r.segment:
            tags += f",segment={_tag(r.segment)}"
        lines.append(
            f"{MEASUREMENT},{tags} value={float(r.value)!r},n={int(r.n)}i,window_end={float(r.window_end)!r} "
            f"{round(r.window_start * 1e9)}"
        )
    return "\n".join(lines)


class GrafanaLive:
    def __init__(self, url: str, token: Secret, stream: str = "driftline", timeout_s: float = 5.0):
        self.endpoint = f"{url.rstrip('/')}/api/live/push/{stream}"
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.sent = 0
        self.failed = 0
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, rows: list[Any]) -> None:
        """Post in the background; returns at once."""
        body = line_protocol(rows)
        if not body:
            return
        task = asyncio.create_task(self._post(body, len(rows)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, body: str, n: int) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"Authorization": f"Bearer {self.token.get()}", "Content-Type": "text/plain"}
        try:
            async with self._session.post(self.endpoint, data=body.encode(), headers=headers) as resp:
                await resp.read()
                if resp.status >= 300:
                    raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status)
            self.sent += n
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.failed += n
            log.warning("Grafana Live push of %d rows failed: %s", n, type(exc).__name__)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._session is not None:
            await self._session.close()
