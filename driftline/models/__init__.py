"""Serving-side model management: the registry, the routing client, the canary analysis and its spec section.

Serving code imports `driftline.models.routing`: neither faust nor chdb comes with it (tested).

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "canary",
    "canary_spec",
    "registry",
    "routing",
]
