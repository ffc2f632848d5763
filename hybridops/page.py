"""A page for people, said once and written twice: as markdown and as one self-contained HTML
page (no scripts, no external assets) with an SVG timeline.

Both reports HybridOps writes are a :class:`Page`: a run's own report (:mod:`hybridops.report`,
from its evidence) and the audit report (:mod:`hybridops.audit.render`, from its history). What
a page says is decided where it is built; how markdown and HTML spell it is decided here, and
every piece of text goes out through :mod:`hybridops.markup`, so nothing a person typed can
forge a heading, a list item, a table row or a tag. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from hybridops.markup import html_text, md, md_code, md_line, md_span


@dataclass(frozen=True)
class Code:
    """Inline code: an id, a path."""

    text: str


@dataclass(frozen=True)
class Strong:
    """Text to stand out: who approved."""

    text: str


Inline = str | Code | Strong
Line = Inline | tuple[Inline, ...]
"""One line of text: plain text, or its pieces."""


@dataclass(frozen=True)
class Items:
    """A bulleted list, an item a line."""

    lines: Sequence[Line]


@dataclass(frozen=True)
class Text:
    """A paragraph of one line."""

    line: Line
    small: bool = False


@dataclass(frozen=True)
class Banner:
    """What the reader must see first: an alarm (evidence changed), a run's error, an
    all-clear, a note; with its items."""

    kind: Literal["alarm", "error", "ok", "note"]
    line: Line
    items: Sequence[Line] = ()


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells."""

    header: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


@dataclass(frozen=True)
class Bar:
    """A step on the chart: from its start to its end, coloured by its outcome."""

    name: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    """A key of :data:`COLOURS`."""
    attempts: int
    tip: str
    """The hover text."""


@dataclass(frozen=True)
class Mark:
    """A moment on the chart's last row: an approval (diamond) or a signal (triangle)."""

    at: datetime
    shape: Literal["diamond", "triangle"]
    colour: str
    tip: str


@dataclass(frozen=True)
class Chart:
    """A Gantt chart of the steps on the run's time axis, with its legend. HTML only: the
    markdown has the step table that follows it."""

    label: str
    """What it shows, for screen readers (``timeline of <workflow id>``)."""
    started_at: datetime
    ended_at: datetime | None
    """The run's end, drawn as a dashed line; ``None`` when the run had not ended."""
    bars: list[Bar]
    marks: list[Mark]
    marks_label: str = "approvals, signals"
    closed: str = ""
    """The end line's hover text."""


Block = Items | Text | Banner | Table | Chart


@dataclass(frozen=True)
class Section:
    """A titled part of the page."""

    title: str
    blocks: list[Block]


@dataclass(frozen=True)
class Page:
    """A whole report."""

    title: Line
    head: list[Block]
    """What stands right under the title (an alarm, the run's error)."""
    sections: list[Section]
    html_title: str
    """The HTML page's ``<title>``."""
    foot: list[Block] = field(default_factory=list)
    """What closes the page (where it came from)."""


COLOURS = {
    "changed": "#2e7d32",
    "unchanged": "#81c784",
    "skipped": "#e0e0e0",
    "failed": "#c62828",
    "compensation": "#ef6c00",
    "wait": "#90a4ae",
    "canceled": "#bdbdbd",
    "running": "#1565c0",
}
"""Bar colour per outcome (the legend shows them)."""


def seconds_text(value: float | None) -> str:
    """A duration as people read it: milliseconds under 10 s, else seconds."""
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


# ---------------------------------------------------------------------- markdown


def _pieces(line: Line) -> tuple[Inline, ...]:
    return line if isinstance(line, tuple) else (line,)


def _md_line(line: Line) -> str:
    out = []
    for piece in _pieces(line):
        if isinstance(piece, Code):
            out.append(f"`{md_code(piece.text)}`")
        elif isinstance(piece, Strong):
            out.append(f"**{md_span(piece.text).strip()}**")
        else:
            out.append(md_span(piece))
    return md_line("".join(out))


def _md_table(table: Table) -> list[str]:
    # A row begins with "|": a cell cannot start a block, so only inline markup is escaped.
    def cells(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(md_span(c).strip() for c in row) + " |"

    rule = "| " + " | ".join("---" for _ in table.header) + " |"
    return [cells(table.header), rule] + [cells(r) for r in table.rows]


def _md_block(block: Block) -> list[str]:
    match block:
        case Items():
            return [f"- {_md_line(line)}" for line in block.lines]
        case Text():
            return [_md_line(block.line)]
        case Banner():
            lines = [_md_line(block.line)] + [f"- {_md_line(i)}" for i in block.items]
            if block.kind in ("alarm", "note"):
                return [f"> {line}" for line in lines]
            return lines
        case Table():
            return _md_table(block)
        case Chart():
            return []


def markdown(page: Page) -> str:
    """The page as markdown."""
    lines = [f"# {_md_line(page.title)}", ""]
    for block in page.head:
        lines += [*_md_block(block), ""]
    for section in page.sections:
        written = [[*b, ""] for b in map(_md_block, section.blocks) if b]
        if written:  # a section of a chart alone is the HTML's
            lines += [f"## {md(section.title)}", "", *(line for b in written for line in b)]
    for block in page.foot:
        lines += [*_md_block(block), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#212121;max-width:1100px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left}
td:not(:last-child){white-space:nowrap}
th{background:#f5f5f5}.alarm{background:#ffebee;border:2px solid #c62828;padding:.6em 1em;font-weight:bold}
.error{background:#ffebee;border:1px solid #c62828;padding:.4em 1em}
.ok{background:#e8f5e9;border:1px solid #2e7d32;padding:.4em 1em}.note{background:#fff8e1;padding:.4em 1em}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:middle}code{background:#f5f5f5;padding:0 3px}
"""


def _html_line(line: Line) -> str:
    out = []
    for piece in _pieces(line):
        if isinstance(piece, Code):
            out.append(f"<code>{html_text(piece.text)}</code>")
        elif isinstance(piece, Strong):
            out.append(f"<strong>{html_text(piece.text)}</strong>")
        else:
            out.append(html_text(piece))
    return "".join(out)


def _html_list(lines: Sequence[Line]) -> str:
    return "<ul>" + "".join(f"<li>{_html_line(line)}</li>" for line in lines) + "</ul>" if lines else ""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html_text(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in r) + "</tr>" for r in table.rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_block(block: Block) -> str:
    match block:
        case Items():
            return _html_list(block.lines)
        case Text():
            text = _html_line(block.line)
            return f"<p><small>{text}</small></p>" if block.small else f"<p>{text}</p>"
        case Banner():
            return f'<div class="{block.kind}">{_html_line(block.line)}{_html_list(block.items)}</div>'
        case Table():
            return _html_table(block)
        case Chart():
            legend = "".join(
                f'<span><i style="background:{c}"></i>{html_text(k)}</span>' for k, c in COLOURS.items()
            )
            return f'<div class="legend">{legend}</div>\n{svg(block)}'


def html(page: Page) -> str:
    """The page as one HTML document: no scripts, no external assets."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html_text(page.html_title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_html_line(page.title)}</h1>",
        *(_html_block(b) for b in page.head),
    ]
    for section in page.sections:
        parts.append(f"<h2>{html_text(section.title)}</h2>")
        parts += [_html_block(b) for b in section.blocks]
    parts += [_html_block(b) for b in page.foot]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p) + "\n"


def _nice_step(span: float) -> float:
    raw = span / 8
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return float(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


def svg(chart: Chart) -> str:
    """The chart as SVG: a bar a step, coloured by outcome, its retries marked; approvals
    (diamonds) and signals (triangles) on a row of their own when there are any; the run's
    end as a dashed line."""
    label_w, chart_w, row_h, top = 230, 760, 20, 30
    t0 = chart.started_at
    ends = [b.ended_at or b.started_at for b in chart.bars] + [chart.ended_at or t0]
    ends += [m.at for m in chart.marks]
    span = max((max(ends) - t0).total_seconds(), 1e-3)

    def x(at: datetime) -> float:
        return label_w + (at - t0).total_seconds() / span * chart_w

    rows = len(chart.bars) + (1 if chart.marks else 0)  # the marks' row, when there are any
    height = top + rows * row_h + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 20}" height="{height}"'
        f' role="img" aria-label="{html_text(chart.label)}" font-size="11"'
        ' font-family="system-ui,sans-serif">'
    ]
    step = _nice_step(span)
    t = 0.0
    while t <= span + 1e-9:
        px = label_w + t / span * chart_w
        out.append(
            f'<line x1="{px:.1f}" y1="{top - 5}" x2="{px:.1f}" y2="{top + rows * row_h}" stroke="#eee"/>'
        )
        tick = f"{t * 1000:.0f} ms" if span < 10 else f"{t:.0f} s"
        out.append(f'<text x="{px:.1f}" y="{top - 10}" text-anchor="middle" fill="#757575">{tick}</text>')
        t += step
    for i, b in enumerate(chart.bars):
        y = top + i * row_h
        end = b.ended_at or chart.ended_at or b.started_at
        x1, x2 = x(b.started_at), x(end)
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{html_text(b.name)}</text>')
        out.append(
            f'<rect class="bar" data-outcome="{html_text(b.outcome)}" x="{x1:.1f}" y="{y + 3}"'
            f' width="{max(x2 - x1, 2):.1f}" height="{row_h - 6}" fill="{COLOURS.get(b.outcome, "#000")}">'
            f"<title>{html_text(b.tip)}</title></rect>"
        )
        if b.attempts > 1:
            out.append(
                f'<text x="{max(x2, x1 + 2) + 4:.1f}" y="{y + 14}" fill="#c62828">&#215;{b.attempts}</text>'
            )
    y = top + len(chart.bars) * row_h
    if chart.marks:
        marks_label = html_text(chart.marks_label)
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{marks_label}</text>')
    for m in chart.marks:
        px, cy = x(m.at), y + row_h / 2
        if m.shape == "diamond":
            d = f"M{px:.1f},{cy - 7} L{px + 7:.1f},{cy} L{px:.1f},{cy + 7} L{px - 7:.1f},{cy} Z"
        else:
            d = f"M{px - 6:.1f},{cy + 6} L{px + 6:.1f},{cy + 6} L{px:.1f},{cy - 6} Z"
        out.append(f'<path d="{d}" fill="{m.colour}"><title>{html_text(m.tip)}</title></path>')
    if chart.ended_at is not None:
        px = x(chart.ended_at)
        out.append(
            f'<line x1="{px:.1f}" y1="{top - 5}" x2="{px:.1f}" y2="{top + rows * row_h}" stroke="#212121"'
            f' stroke-dasharray="3,3"><title>{html_text(chart.closed)}</title></line>'
        )
    out.append("</svg>")
    return "\n".join(out)
