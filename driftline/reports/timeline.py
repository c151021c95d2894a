"""Alert timelines and alert/rollout events as text lines for people (`driftline alerts`, the demo's summary)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def when(ts: float) -> str:
    """An instant as 'YYYY-MM-DD HH:MM:SS UTC', or '-' for none."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def _hm(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M")


def timeline_lines(t: dict[str, Any]) -> list[str]:
    """The alert timeline and the canary decisions other than hold, for people."""
    out = ["alert timeline (window end, UTC):"]
    for end, state, severity, name, version, summary in t["alerts"]:
        out.append(f"  {_hm(end)}  {state.upper():<9}{severity:<9}{name:<18}{version:<4} {summary}")
    moves = [d for d in t["decisions"] if d[1] != "hold"]
    out.append(f"\ncanary analysis: {len(t['decisions'])} intervals analysed; decisions other than hold:")
    for end, action, canary, before, after, failed, reason in moves:
        out.append(
            f"  {_hm(end)}  {action.upper():<16}{canary} weight {before:g} -> {after:g} % "
            f"(failed intervals {failed}): {reason}"
        )
    revisions = "; ".join(f"r{rev} {action} {version} by {by}" for rev, action, version, by, _ in t["registry"])
    out.append(f"registry history: {revisions}")
    return out


def format_event(kind: str, data: dict[str, Any]) -> str:
    """One line per alert change or rollout decision, for people."""
    labels = data.get("labels", {})
    if kind == "rollout":
        weights = f"weight {data['weight_before']:g} -> {data['weight_after']:g} %"
        return (
            f"{when(data.get('window_end', 0))}  ROLLOUT {data['action'].upper():<15} {data['model']} "
            f"{data['canary']} {weights}: {data['reason']}"
        )
    where = " ".join(f"{k}={labels[k]}" for k in ("model", "version", "feature") if labels.get(k))
    summary = data.get("annotations", {}).get("summary", "")
    return (
        f"{when(data.get('window_end', 0))}  {data.get('state', '').upper():<9}{labels.get('severity', ''):<9}"
        f"{labels.get('alertname', '')}  {where}  {summary}"
    )
