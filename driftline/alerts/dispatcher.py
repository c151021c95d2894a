"""Grouping, silences, inhibition and the notification log, after Alertmanager.

Firing and resolved alerts are put in groups by their `group_by` labels. A new group is
flushed after `group_wait` (so alerts that come together are sent together), then at most
every `group_interval`. At a flush, each subscription gets the group's alerts it matches,
minus the silenced and the inhibited ones, when that set changed since its last
*successful* notification (a new firing alert, or a firing one resolved), or when
`repeat_interval` passed with alerts still firing. Each subscription keeps its own log, so a
failing receiver is retried at the next flush without sending duplicates to the healthy ones.

The dispatcher does no I/O and reads time only through `clock`: `due()` returns the
notifications to send, the caller sends them (in the background) and reports back with
`done()`, which returns the log entry to keep. `restore()` takes the firing alerts and the
log entries back after a restart (the caller stores and loads them), so a restarted worker
sends nothing it had sent already. A notification's id (the webhook-id) is derived from what
it says and from when the subscription was last told about the group, so the same notification
re-sent after a restart carries the same id and receivers can drop the duplicate.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from driftline.alerts.evaluator import AlertEvent
from driftline.alerts.matchers import matches_all
from driftline.alerts.rules import AlertingConfig
from driftline.alerts.silences import SilenceSet
from driftline.alerts.subscriptions import Subscription

GroupKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Notification:
    """One message to one subscription; `id` stays the same across its retries (webhook-id)."""

    id: str
    subscription: Subscription
    group_key: GroupKey
    alerts: tuple[AlertEvent, ...]  # firing first, then resolved

    @property
    def status(self) -> str:
        return "firing" if any(a.state == "firing" for a in self.alerts) else "resolved"

    @property
    def group_labels(self) -> dict[str, str]:
        return dict(self.group_key)

    def group_key_text(self) -> str:
        return "{}:{" + ",".join(f'{k}="{v}"' for k, v in self.group_key) + "}"


@dataclass(frozen=True)
class LogEntry:
    """What one subscription was last told about one group: the firing and resolved alerts of the
    last notification delivered to it, and when (a row of the ``notification_log`` table)."""

    group_key: GroupKey
    subscription_id: str
    notification_id: str
    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float


def notification_id(
    sub_id: str, group: GroupKey, firing: frozenset[str], resolved: frozenset[str], last_sent: float | None
) -> str:
    """The same content to the same subscription after the same previous delivery: the same id."""
    text = "\x00".join([sub_id, repr(group), ",".join(sorted(firing)), ",".join(sorted(resolved)), repr(last_sent)])
    return "msg_" + hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class _Log:
    firing: frozenset[str] = frozenset()
    resolved: frozenset[str] = frozenset()
    sent_at: float | None = None
    in_flight: bool = False


@dataclass
class _Group:
    key: GroupKey
    next_flush: float
    alerts: dict[str, AlertEvent] = field(default_factory=dict)  # fingerprint -> latest state
    logs: dict[str, _Log] = field(default_factory=dict)  # subscription id -> its notification log


class Dispatcher:
    def __init__(
        self,
        config: AlertingConfig,
        silences: SilenceSet | None = None,
        subscriptions: Mapping[str, Subscription] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config
        self.silences = silences if silences is not None else SilenceSet()
        self.subscriptions: dict[str, Subscription] = dict(subscriptions or {})
        self.clock = clock
        self._groups: dict[GroupKey, _Group] = {}

    def group_key(self, labels: Mapping[str, str]) -> GroupKey:
        return tuple((name, labels.get(name, "")) for name in self.config.group_by)

    def receive(self, events: Iterable[AlertEvent]) -> None:
        """Take alert state changes; pending alerts are not notified."""
        now = self.clock()
        for event in events:
            if event.state == "pending":
                continue
            key = self.group_key(event.labels)
            group = self._groups.get(key)
            if group is None:
                if event.state == "resolved":
                    continue  # resolved before anybody was told it fired
                group = self._groups[key] = _Group(key, now + self.config.group_wait_s)
            group.alerts[event.fingerprint] = event

    def next_due(self) -> float | None:
        return min((g.next_flush for g in self._groups.values()), default=None)

    def due(self) -> list[Notification]:
        """Notifications to send now; each must be reported back with `done()`."""
        now = self.clock()
        out: list[Notification] = []
        for group in list(self._groups.values()):
            if group.next_flush > now:
                continue
            group.next_flush = now + self.config.group_interval_s
            for sub in self.subscriptions.values():
                log = group.logs.setdefault(sub.id, _Log())
                if log.in_flight:
                    continue
                alerts = [a for a in group.alerts.values() if sub.matches(a.labels) and not self.muted(a, now)]
                firing = frozenset(a.fingerprint for a in alerts if a.state == "firing")
                resolved = frozenset(a.fingerprint for a in alerts if a.state == "resolved") & log.firing
                if self._needs_update(log, firing, resolved, now):
                    alerts.sort(key=lambda a: (a.state != "firing", a.starts_at, a.fingerprint))
                    shown = [a for a in alerts if a.state == "firing" or a.fingerprint in resolved]
                    log.in_flight = True
                    told = frozenset(a.fingerprint for a in shown if a.state == "firing")
                    nid = notification_id(sub.id, group.key, told, resolved, log.sent_at)
                    out.append(Notification(nid, sub, group.key, tuple(shown)))
            self._forget_resolved(group)
        return out

    def done(self, notification: Notification, ok: bool) -> LogEntry | None:
        """Record the outcome; only a delivered notification enters the subscription's log, and its
        entry is returned for the caller to keep (see `restore`)."""
        group = self._groups.get(notification.group_key)
        if group is None:
            return None
        log = group.logs.setdefault(notification.subscription.id, _Log())
        log.in_flight = False
        entry = None
        if ok:
            log.firing = frozenset(a.fingerprint for a in notification.alerts if a.state == "firing")
            log.resolved = frozenset(a.fingerprint for a in notification.alerts if a.state == "resolved")
            log.sent_at = self.clock()
            entry = LogEntry(
                group.key, notification.subscription.id, notification.id, log.firing, log.resolved, log.sent_at
            )
        self._forget_resolved(group)
        return entry

    def restore(self, alerts: Iterable[AlertEvent], entries: Iterable[LogEntry]) -> None:
        """After a restart: each alert's newest state (the firing ones, and the resolved ones a
        subscription was told were firing) and what each subscription was last told.

        A restored group is flushed after group_wait like a new one; a subscription that was told
        about its firing alerts gets nothing before repeat_interval, one that was told an alert
        fired and missed its resolution gets the resolution."""
        now = self.clock()
        entries = list(entries)
        for entry in entries:
            if entry.firing:  # it announced alerts as firing: its group exists for their resolution too
                group = self._groups.setdefault(
                    entry.group_key, _Group(entry.group_key, now + self.config.group_wait_s)
                )
                group.logs[entry.subscription_id] = _Log(entry.firing, entry.resolved, entry.sent_at)
        self.receive(alerts)
        for entry in entries:
            restored = self._groups.get(entry.group_key)
            if restored is not None and entry.subscription_id not in restored.logs:
                restored.logs[entry.subscription_id] = _Log(entry.firing, entry.resolved, entry.sent_at)

    def muted(self, alert: AlertEvent, now: float) -> bool:
        """Silenced, or inhibited by another firing alert."""
        return self.silences.muted(alert.labels, now) or self._inhibited(alert)

    def _inhibited(self, alert: AlertEvent) -> bool:
        for rule in self.config.inhibit:
            if not matches_all(rule.target, alert.labels):
                continue
            for group in self._groups.values():
                for source in group.alerts.values():
                    if (
                        source.state == "firing"
                        and source.fingerprint != alert.fingerprint
                        and matches_all(rule.source, source.labels)
                        and all(source.labels.get(n, "") == alert.labels.get(n, "") for n in rule.equal)
                    ):
                        return True
        return False

    def _needs_update(self, log: _Log, firing: frozenset[str], resolved: frozenset[str], now: float) -> bool:
        if log.sent_at is None:
            return bool(firing)
        if not firing <= log.firing or resolved - log.resolved:
            return True
        return bool(firing) and now - log.sent_at >= self.config.repeat_interval_s

    def _forget_resolved(self, group: _Group) -> None:
        """Drop resolved alerts that no subscription still believes firing; drop empty groups."""
        still_told = set().union(*(log.firing for log in group.logs.values())) if group.logs else set()
        in_flight = any(log.in_flight for log in group.logs.values())
        if not in_flight:
            for fp in [fp for fp, a in group.alerts.items() if a.state == "resolved" and fp not in still_told]:
                del group.alerts[fp]
        if not group.alerts and not in_flight:
            del self._groups[group.key]
