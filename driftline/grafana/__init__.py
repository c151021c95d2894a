"""Grafana dashboards as code: built from the monitor spec, provisioned from files or pushed over the API; Live push.

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "dashboards",
    "live",
    "macros",
]
