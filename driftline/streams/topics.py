"""Create driftline's topics with an admin client (the Faust worker declares them itself)."""

from __future__ import annotations

from collections.abc import Iterable

from driftline.config import Settings

#: Topic name (without prefix) -> compacted? `control` is a change feed keyed by model.
TOPICS = {
    "predictions": False,
    "labels": False,
    "dlq": False,
    "metrics": False,
    "alerts": False,
    "control": True,
    "labeling": False,
    "window-parts": False,  # spread models' window shares, keyed by window (streams/window_parts.py)
}


async def ensure_topics(settings: Settings, names: Iterable[str] | None = None) -> None:
    """Create the missing driftline topics (all, or those `names`) with the configured partitions."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.broker, **settings.kafka.aiokafka_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                settings.topic(name),
                num_partitions=settings.partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if compacted else {},
            )
            for name, compacted in TOPICS.items()
            if settings.topic(name) not in existing and (names is None or name in names)
        ]
        if wanted:
            await admin.create_topics(wanted)
    finally:
        await admin.close()
