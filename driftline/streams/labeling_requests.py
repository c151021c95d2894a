"""Active learning on the stream: the worker asks for labels of its most uncertain predictions.

Opt-in per model in the monitor spec::

    models:
      loan-approval:
        labeling: {budget_per_window: 20, strategy: margin, diversity: 0}

Per (model, version) and window, a ``WindowSelector`` keeps the best candidates; when the
window closes its picks go to the ``labeling`` topic (JSON, keyed by event id, so a replayed
batch repeats a request rather than adding one) and to ClickHouse ``labeling_requests``
(deduplicated by event id). Labelers answer with ordinary label events; ``driftline labels
requests`` shows how the loop closes (answered share, time to answer, accuracy on them).
Candidates of windows still open at a restart are not kept: those windows may get fewer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import msgspec

from driftline.events import ColumnarEvents, Prediction, rows_of
from driftline.labeling.active import LabelingRequest, WindowSelector
from driftline.labeling.spec import LabelingSpec
from driftline.sinks.client import ClickHouseClient
from driftline.spec import MonitorSpec

log = logging.getLogger(__name__)

REQUEST_COLUMNS = ["event_id", "model", "version", "ts", "window_start", "strategy", "uncertainty", "requested_at"]


class LabelingRequester:
    """Feeds each ingested batch to the selectors of the models that asked for it; publishes the picks."""

    def __init__(
        self,
        spec: MonitorSpec,
        store: Callable[[list[list[Any]]], None],
        send: Callable[[bytes, bytes], Awaitable[None]],
    ):
        self.spec = spec
        self.store = store
        self.send = send
        self._selectors: dict[str, WindowSelector] = {}
        self.requested = 0

    def _selector(self, model: str) -> WindowSelector | None:
        ms = self.spec.for_model(model)
        if ms.labeling is None:
            return None
        if model not in self._selectors:
            ls: LabelingSpec = ms.labeling
            self._selectors[model] = WindowSelector(
                ls.budget_per_window, ms.window_s, ls.strategy, ls.diversity, ms.allowed_lateness_s
            )
        return self._selectors[model]

    def select(self, predictions: Sequence[Prediction]) -> list[LabelingRequest]:
        by_model: dict[str, list[Prediction]] = {}
        for p in predictions:
            by_model.setdefault(p.model, []).append(p)
        out: list[LabelingRequest] = []
        for model, events in by_model.items():
            selector = self._selector(model)
            if selector is not None:
                out.extend(selector.update_many(events))
        return out

    def select_columns(self, envelopes: Sequence[ColumnarEvents]) -> list[LabelingRequest]:
        """As `select`, for columnar envelopes: objects are made only for models that asked for labels."""
        wanted = [e for e in envelopes if any(self._selector(m) is not None for m in set(e.columns.model))]
        return self.select(rows_of(wanted)) if wanted else []

    def flush(self) -> list[LabelingRequest]:
        return [r for s in self._selectors.values() for r in s.flush()]

    async def publish(self, requests: list[LabelingRequest]) -> None:
        if not requests:
            return
        now = utc(time.time())
        rows = [
            [r.event_id, r.model, r.version, utc(r.ts), utc(r.window_start), r.strategy, r.uncertainty, now]
            for r in requests
        ]
        try:
            await asyncio.to_thread(self.store, rows)
        except Exception:  # the requests still go out; only the loop's bookkeeping misses them
            log.exception("could not store %d labeling requests in ClickHouse", len(rows))
        for r in requests:
            await self.send(r.event_id.encode(), msgspec.json.encode({"kind": "labeling_request", **asdict(r)}))
        self.requested += len(requests)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def request_store(client: ClickHouseClient, database: str) -> Callable[[list[list[Any]]], None]:
    def store(rows: list[list[Any]]) -> None:
        client.insert("labeling_requests", rows, column_names=REQUEST_COLUMNS, database=database)

    return store
