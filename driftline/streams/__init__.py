"""The Faust runtime: the typed worker, ingest, the monitoring engine, the jobs (alerting, quality, shadow,
labeling requests), checkpoints, the worker's logs and Prometheus metrics.

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "alert_job",
    "checkpoints",
    "consumer",
    "engine_checkpoint",
    "ingest",
    "label_metrics",
    "labeling_requests",
    "logs",
    "ml_gauges",
    "monitor",
    "observability",
    "prediction_batch",
    "quality_job",
    "shadow_job",
    "state_codec",
    "topics",
    "window_parts",
    "worker",
]
