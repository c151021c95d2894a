"""The offline module (extra ``driftline[offline]``): private training, distillation, edge export, explanations,
fairness mitigation, federated learning, the deployment gate, and their reports.

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "distill",
    "energy",
    "explain",
    "export",
    "fairness",
    "federated",
    "gate",
    "hybrid",
    "pipeline",
    "reports",
    "spread",
    "tradeoff",
    "train",
]
