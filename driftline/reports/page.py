"""One report in three files: Markdown (for diffs and chat), HTML with plots (for people), JSON (for tools).

Commands build their report as Markdown text plus SVG charts (``driftline.reports.charts``) and
the data behind it; ``write_report`` writes ``<name>.md``, ``<name>.html`` and
``<name>.json`` side by side. The HTML is self-contained (no scripts, no network): the
Markdown subset that reports use (headings, pipe tables, bullet lists, paragraphs,
``**bold**`` and ``code``) is rendered here, with every piece of text escaped.

>>> print(markdown_to_html("# T\\n\\n| a | b |\\n|---|--:|\\n| x | **1** |"))
<h1>T</h1>
<table><tr><th>a</th><th>b</th></tr><tr><td>x</td><td style='text-align:right'><b>1</b></td></tr></table>
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftline.events import strict_dumps

_STYLE = (
    "body{font-family:sans-serif;max-width:1040px;margin:24px auto;color:#222;padding:0 12px}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px}"
    "th{background:#f4f4f4}div.chart{margin:12px 0}code{background:#f4f4f4;padding:0 3px}"
)


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    json: Path


def _inline(text: str) -> str:
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    head, rule, body = _cells(lines[0]), _cells(lines[1]), [_cells(line) for line in lines[2:]]
    right = [c.endswith(":") for c in rule]  # "---:" and ":--:" columns hold numbers

    def cell(tag: str, i: int, text: str) -> str:
        style = " style='text-align:right'" if tag == "td" and i < len(right) and right[i] else ""
        return f"<{tag}{style}>{_inline(text)}</{tag}>"

    rows = ["<tr>" + "".join(cell("th", i, c) for i, c in enumerate(head)) + "</tr>"]
    rows += ["<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in body]
    return "<table>" + "".join(rows) + "</table>"


def markdown_to_html(text: str) -> str:
    """The Markdown subset reports use, as HTML (text escaped)."""
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.match(r"^(#{1,4}) (.*)$", line):
            blocks.append(f"<h{len(m.group(1))}>{_inline(m.group(2))}</h{len(m.group(1))}>")
            i += 1
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            blocks.append(_table(lines[i:j]))
            i = j
        elif re.match(r"^\s*[-*] ", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*] ", lines[i]):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,4} |\s*\||\s*[-*] )", lines[i]):
                para.append(lines[i].strip())
                i += 1
            blocks.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(blocks)


def file_name(*parts: str) -> str:
    """A file name made of untrusted parts (model names, versions): only letters, digits, '.', '_' and
    '-', never a path, never hidden; a name that had to change gets a hash of the original, so two
    different models never share a file.

    >>> file_name("report", "loan-approval", "v1")
    'report-loan-approval-v1'
    >>> file_name("report", "../../etc/x", "v1")  # doctest: +ELLIPSIS
    'report-____etc_x-v1-...'
    """
    raw = "-".join(parts)
    clean = re.sub(r"\.\.+", "_", re.sub(r"[^A-Za-z0-9._-]+", "_", raw)).strip("._-")[:150] or "_"
    if clean == raw:
        return clean
    return f"{clean}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"


def write_report(out: Path, name: str, markdown: str, charts: Sequence[str], data: Any) -> ReportFiles:
    """Write `<name>.md`, `<name>.html` (charts after the title) and `<name>.json` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / f"{name}.md", out / f"{name}.html", out / f"{name}.json")
    files.markdown.write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    body = markdown_to_html(markdown)
    title_end = body.find("</h1>")
    plots = "".join(f"<div class='chart'>{c}</div>" for c in charts)
    body = body[: title_end + 5] + plots + body[title_end + 5 :] if title_end >= 0 else plots + body
    m = re.search(r"<h1>(.*?)</h1>", body)
    title = m.group(1) if m else html.escape(name)
    files.html.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_STYLE}</style>"
        f"</head><body>{body}</body></html>\n"
    )
    files.json.write_text(strict_dumps(data, indent=1, default=_plain) + "\n")
    return files


def _plain(value: Any) -> Any:
    """JSON for numpy scalars/arrays and paths."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
