"""Pure metric math, no I/O: drift, quality, fairness, data quality, detectors, label noise, profiles,
the DP mechanisms the stream uses, and the rows it stores.

Every class here follows one contract (`update_many` over numpy columns, `merge`, `get`), checked by
``tests/unit/test_metric_contract.py``; nothing here imports the stream runtime, storage or an I/O library
(an import-linter contract in pyproject.toml).

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "cbpe",
    "data_quality",
    "detectors",
    "drift",
    "embeddings",
    "fairness",
    "label_noise",
    "plugins",
    "privacy",
    "private_fairness",
    "profiles",
    "quality",
    "rows",
    "segments",
]
