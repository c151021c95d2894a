"""The routing client for serving code: which version answers a request, and which shadow it.

Sticky by request key: a key's bucket (CRC32, 10,000 buckets) decides whether it goes to
a canary, so a user sees one version throughout a rollout. The client follows the
``control`` topic in a background thread; a rollback reaches it within one poll interval.

.. code-block:: python

    router = RoutingClient("127.0.0.1:9092", "loan-approval")
    route = router.route(user_id)        # Route(version='v2', route='canary', shadows=['v3'])
    answer = models[route.version].predict(x)
    for v in route.shadows:              # off the request path: never affects the answer
        shadow_pool.submit(models[v].predict, x)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from driftline.control import ControlClient
from driftline.exceptions import DriftlineError
from driftline.kafka_security import KafkaSecurity
from driftline.models.registry import ModelState

BUCKETS = 10_000


@dataclass(frozen=True)
class Route:
    version: str
    route: str  # primary | canary
    shadows: tuple[str, ...] = ()


def bucket(model: str, key: str) -> float:
    """The key's place in [0, 100): a percentage point, stable across processes and restarts."""
    return (zlib.crc32(f"{model}\x00{key}".encode()) % BUCKETS) * 100.0 / BUCKETS


def route_for(state: ModelState, key: str) -> Route:
    """The route of `key` under `state` (pure: the client and the tests share it)."""
    production = state.production
    if production is None:
        raise DriftlineError(f"model {state.model!r} has no production version; register one first")
    point, edge = bucket(state.model, key), 0.0
    for version, weight in sorted(state.canaries.items()):
        edge += weight
        if point < edge:
            return Route(version, "canary", tuple(state.shadows))
    return Route(production, "primary", tuple(state.shadows))


class RoutingClient:
    def __init__(
        self,
        broker: str,
        model: str,
        *,
        topic: str = "driftline.control",
        poll_interval_s: float = 0.2,
        security: KafkaSecurity | None = None,
    ):
        self.model = model
        self._control = ControlClient(broker, topic, poll_interval_s=poll_interval_s, security=security)
        self._control.follow()

    @property
    def state(self) -> ModelState:
        return self._control.state.models.get(self.model, ModelState(self.model))

    @property
    def revision(self) -> int:
        return self.state.revision

    def route(self, key: str) -> Route:
        return route_for(self.state, key)

    def close(self) -> None:
        self._control.close()

    def __enter__(self) -> RoutingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
