"""A restart repeats no firing notification (issue 18.6): the notification log survives it.

Before: silences survived a restart, firing state did not; a firing alert was notified again with a
new webhook id after a restart although repeat_interval was 4 h.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from driftline.alerts.dispatcher import Dispatcher
from driftline.alerts.store import AlertStore
from driftline.alerts.subscriptions import Subscription
from driftline.alerts.webhook import RetryPolicy
from driftline.config import Settings
from driftline.sinks.clickhouse import ClickHouseSink
from driftline.streams.alert_job import AlertingAgent
from tests.integration.test_webhooks_and_stream import Receiver, psi, spec, wait_for


def test_a_restart_sends_nothing_new_and_later_the_resolution(
    settings_factory: Callable[..., Settings], sink_factory: Callable[[Settings], ClickHouseSink]
) -> None:
    settings = settings_factory()
    sink = sink_factory(settings)
    store = AlertStore(sink.client, settings.clickhouse_database)

    async def main() -> Receiver:
        receiver = Receiver([])
        base = await receiver.start()
        sub = Subscription.create("ops", f"{base}/ops", created_by="test", now=time.time())

        def worker() -> AlertingAgent:
            agent = AlertingAgent(spec(), store=store, retry=RetryPolicy(first_delay_s=0.01, deadline_s=5))
            agent.dispatcher.subscriptions[sub.id] = sub
            return agent

        async def step(agent: AlertingAgent, i: int, value: float) -> None:
            row = psi(i, value)
            sink.write_metrics([row])  # as the worker does: stored first, then alerted on
            await agent.observe([row])

        first = worker()
        await first.start()
        await step(first, 0, 0.5)
        await wait_for(lambda: first.attempts["delivered"] == 1)
        await first.stop()  # the "restart": a new agent on the same ClickHouse

        second = worker()
        await second.start()
        await step(second, 1, 0.6)  # still breaching
        await asyncio.sleep(1.0)  # five group intervals: a new notification would have gone by now
        assert len(receiver.requests) == 1, [json.loads(b)["status"] for _, b in receiver.requests]
        assert second.evaluator.firing()  # it knows the alert fires
        await step(second, 2, 0.01)  # recovered: the restarted worker sends the resolution
        await wait_for(lambda: second.attempts["delivered"] == 1)
        await second.stop()
        await receiver.runner.cleanup()
        return receiver

    receiver = asyncio.run(main())
    bodies = [json.loads(body) for _, body in receiver.requests]
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
    assert bodies[0]["groupKey"] == bodies[1]["groupKey"]
    assert bodies[0]["alerts"][0]["fingerprint"] == bodies[1]["alerts"][0]["fingerprint"]
    ids = [h["webhook-id"] for h, _ in receiver.requests]
    assert len(set(ids)) == 2  # two different messages


def test_a_notification_resent_after_a_restart_keeps_its_id() -> None:
    """Delivery in flight at a crash: the restarted worker sends it again with the same webhook-id."""
    now = [1_000.0]
    sub = Subscription.create("ops", "http://127.0.0.1:9/ops", created_by="test", now=now[0])
    cfg = spec().alerts
    from driftline.alerts.evaluator import AlertEvaluator

    evaluator = AlertEvaluator(cfg.rules, clock=lambda: now[0])
    (event,) = evaluator.observe([psi(0, 0.5)])
    before = Dispatcher(cfg, subscriptions={sub.id: sub}, clock=lambda: now[0])
    before.receive([event])
    (sent,) = before.due()  # ... and the worker dies before the receiver answers
    after = Dispatcher(cfg, subscriptions={sub.id: sub}, clock=lambda: now[0])
    after.restore([event], [])  # nothing was delivered, so nothing was logged
    (again,) = after.due()
    assert again.id == sent.id
    entry = after.done(again, ok=True)
    assert entry is not None and entry.firing == {event.fingerprint}
    now[0] += cfg.repeat_interval_s
    (repeat,) = after.due()  # a repeat is a new message: a new id
    assert repeat.id != sent.id
