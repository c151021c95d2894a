"""Labels and the people who make them: audit, guidelines, agreement, label noise, active learning, augmentation.

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "active",
    "agreement",
    "audit",
    "augment",
    "guidelines",
    "noise",
    "spec",
]
