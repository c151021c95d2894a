"""Alerting: rules, the alert lifecycle, grouping, silences, matchers, notifiers (webhooks, the live stream)
and the alert store.

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "alertmanager",
    "dispatcher",
    "evaluator",
    "live",
    "matchers",
    "rules",
    "silences",
    "store",
    "subscriptions",
    "webhook",
]
