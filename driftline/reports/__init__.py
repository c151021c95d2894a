"""Reports for people: the model report, the periodic review, the audit report, alert timelines, charts, pages.

`__all__` names the public modules; import what you need from them (a package import stays cheap)."""

__all__ = [
    "audit",
    "charts",
    "model_report",
    "page",
    "review",
    "review_job",
    "review_page",
    "timeline",
]
