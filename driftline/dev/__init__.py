"""The embedded broker and the demo: for one machine and tests, not for production.

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "broker",
    "demo",
    "rollout",
]
