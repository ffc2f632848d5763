"""Escaping what people typed before it goes into a report (report.md, report.html).

A reason, an approver's name, a comment, a tool's error: any of them may hold a newline, a
``|`` or markup. Unescaped, ``"ok\\n# Approved by CEO"`` forges a heading in report.md and a
``<script>`` becomes part of report.html. Every report renders such text through these
functions, and only these: one place to get right.
"""

from __future__ import annotations

import html
import re

_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
"""Newlines and other control characters: each run becomes one space (a line cannot be forged)."""
_MD_SPECIAL = re.compile(r"([\\`*|<>\[\]])")
"""Characters markdown gives a meaning inline: code, emphasis, tables, raw HTML, links. (``_``
is left: inside words it means nothing, and tool output is full of it.)"""
_MD_LEADING = re.compile(r"^([#>+=~-]|\d+(?=[.)]))")
"""What starts a heading, quote, list or rule when it begins a line (for ``1.``: the digits)."""


def one_line(text: object) -> str:
    """``text`` as one line: every run of control characters (newlines too) one space."""
    return _BREAKS.sub(" ", str(text)).strip()


def md(text: object) -> str:
    """``text`` for running markdown (a line's content or a table cell): one line, inline
    markup backslash-escaped, and a leading ``#``, ``-``, ``>``, ``1.`` neutralised, so it reads
    as the characters typed and can start no heading, list, quote or table row."""
    return md_line(md_span(text))


def md_span(text: object) -> str:
    """``text`` as a piece of a markdown line: one line (its spaces kept, so pieces join),
    inline markup backslash-escaped. The joined line goes through :func:`md_line`."""
    return _MD_SPECIAL.sub(r"\\\1", _BREAKS.sub(" ", str(text)))


def md_line(escaped: str) -> str:
    """A line joined from escaped pieces (:func:`md_span`, :func:`md_code` in a code span),
    stripped, with a leading ``#``, ``-``, ``>``, ``1.`` neutralised: it starts no block."""
    return _MD_LEADING.sub(_neutralise, escaped.strip())


def _neutralise(match: re.Match[str]) -> str:
    lead = match.group(1)
    return f"{lead}\\" if lead[0].isdigit() else f"\\{lead}"


def md_code(text: object) -> str:
    """``text`` inside a code span: one line, and no backtick that could end the span."""
    return one_line(text).replace("`", "'")


def html_text(text: object) -> str:
    """``text`` for HTML element content or an attribute value (quotes escaped too)."""
    return html.escape(str(text), quote=True)
