"""Grouping, repeat, silences and inhibition with a fake clock, after Alertmanager's acceptance tests."""

from __future__ import annotations

from collections.abc import Callable

from driftline.alerts.dispatcher import Dispatcher, Notification
from driftline.alerts.evaluator import AlertEvent, fingerprint
from driftline.alerts.matchers import parse_matchers
from driftline.alerts.rules import AlertingConfig, InhibitRule
from driftline.alerts.silences import Silence
from driftline.alerts.subscriptions import Subscription


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def alert(name: str, state: str = "firing", **labels: str) -> AlertEvent:
    full = {"alertname": name, "model": "m", "severity": "warning", **labels}
    return AlertEvent(
        fingerprint(full), state, full, {}, 1.0, 0.0, 60.0, 0.0, 60.0 if state == "resolved" else 0.0, 0.0
    )


def sub(name: str, **kw: object) -> Subscription:
    return Subscription.create(name, f"http://127.0.0.1:1/{name}", created_by="t", now=0.0, **kw)  # type: ignore[arg-type]


def setup(**cfg: object) -> tuple[Clock, Dispatcher, Subscription]:
    clock = Clock()
    s = sub("ops")
    config = AlertingConfig(**{"group_wait_s": 30.0, "group_interval_s": 300.0, "repeat_interval_s": 3600.0, **cfg})  # type: ignore[arg-type]
    return clock, Dispatcher(config, subscriptions={s.id: s}, clock=clock), s


def run(d: Dispatcher, ok: Callable[[Notification], bool] = lambda n: True) -> list[Notification]:
    out = d.due()
    for n in out:
        d.done(n, ok(n))
    return out


def names(n: Notification) -> list[tuple[str, str]]:
    return [(a.labels["alertname"] + a.labels.get("feature", ""), a.state) for a in n.alerts]


def test_group_wait_batches_alerts_that_come_together() -> None:
    clock, d, _ = setup(group_by=("model",))
    d.receive([alert("A", feature="x")])
    clock.now += 10
    d.receive([alert("B", feature="y")])
    assert run(d) == []  # group_wait (30 s) not over yet
    clock.now += 20
    (n,) = run(d)
    assert names(n) == [("Ax", "firing"), ("By", "firing")] and n.status == "firing"


def test_group_interval_then_repeat_interval() -> None:
    clock, d, _ = setup()
    d.receive([alert("A")])
    clock.now += 30
    assert len(run(d)) == 1
    clock.now += 300
    assert run(d) == []  # nothing changed, repeat_interval not over
    d.receive([alert("A", feature="z")])  # same group (alertname, model), new alert
    clock.now += 100
    assert run(d) == []  # waits for the group interval
    clock.now += 200
    (n,) = run(d)
    assert len(n.alerts) == 2
    clock.now += 3600
    (again,) = run(d)  # unchanged but still firing: repeated after repeat_interval
    assert len(again.alerts) == 2 and again.id != n.id


def test_resolved_is_notified_once_and_then_forgotten() -> None:
    clock, d, _ = setup()
    d.receive([alert("A")])
    clock.now += 30
    run(d)
    d.receive([alert("A", state="resolved")])
    clock.now += 300
    (n,) = run(d)
    assert names(n) == [("A", "resolved")] and n.status == "resolved"
    clock.now += 300
    assert run(d) == [] and d.next_due() is None  # group gone


def test_resolved_before_first_notification_is_never_sent() -> None:
    clock, d, _ = setup()
    d.receive([alert("A")])
    d.receive([alert("A", state="resolved")])
    clock.now += 30
    assert run(d) == []


def test_failing_receiver_is_retried_without_duplicates_to_the_healthy_one() -> None:
    clock, d, ops = setup()
    broken = sub("broken")
    d.subscriptions[broken.id] = broken
    d.receive([alert("A")])
    clock.now += 30
    first = run(d, ok=lambda n: n.subscription.id == ops.id)
    assert sorted(n.subscription.name for n in first) == ["broken", "ops"]
    clock.now += 300
    retry = run(d)  # only the failed receiver gets it again
    assert [n.subscription.name for n in retry] == ["broken"]
    clock.now += 300
    assert run(d) == []


def test_in_flight_notification_is_not_sent_twice() -> None:
    clock, d, _ = setup()
    d.receive([alert("A")])
    clock.now += 30
    (n,) = d.due()
    clock.now += 300
    assert d.due() == []  # still being delivered
    d.done(n, True)
    clock.now += 300
    assert d.due() == []


def test_silence_mutes_until_it_expires() -> None:
    clock, d, _ = setup()
    silence = Silence.create(
        parse_matchers(["alertname=A"]), ends_at=clock.now + 500, created_by="ana", comment="known", now=clock.now
    )
    d.silences.put(silence)
    d.receive([alert("A"), alert("B")])
    clock.now += 30
    sent = run(d)
    assert [names(n) for n in sent] == [[("B", "firing")]]
    clock.now += 600  # the silence ended: A is new to the receiver
    (n,) = run(d)
    assert names(n) == [("A", "firing")]


def test_expired_silence_stops_muting() -> None:
    clock, d, _ = setup()
    silence = Silence.create(
        parse_matchers(["alertname=A"]), ends_at=clock.now + 10**6, created_by="ana", comment="known", now=clock.now
    )
    d.silences.put(silence)
    d.receive([alert("A")])
    clock.now += 30
    assert run(d) == []
    d.silences.put(silence.expire(clock.now))
    clock.now += 300
    assert len(run(d)) == 1


def test_critical_inhibits_warning_on_the_same_feature() -> None:
    rule = InhibitRule(
        parse_matchers(["severity=critical"]), parse_matchers(["severity=warning"]), ("model", "feature")
    )
    clock, d, _ = setup(inhibit=(rule,), group_by=("model",))
    d.receive(
        [
            alert("DriftCritical", severity="critical", feature="salary"),
            alert("DriftWarning", feature="salary"),
            alert("DriftWarning", feature="age"),
        ]
    )
    clock.now += 30
    (n,) = run(d)
    assert sorted(names(n)) == [("DriftCriticalsalary", "firing"), ("DriftWarningage", "firing")]


def test_subscription_filters_by_model_and_severity() -> None:
    clock, d, ops = setup(group_by=("model",))
    d.subscriptions = {ops.id: sub("crit", models=("m",), min_severity="critical")}
    d.receive([alert("A"), alert("B", severity="critical")])
    clock.now += 30
    (n,) = run(d)
    assert names(n) == [("B", "firing")]
