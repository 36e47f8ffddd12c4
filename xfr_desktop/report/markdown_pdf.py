"""A small, safe Markdown subset as reportlab flowables, for model cards in the report.

Handled: ``#`` headings, paragraphs, ``-``/``*`` and ``1.`` lists (with indented continuation lines), pipe tables,
indented code blocks, and inline ``**bold**``, ``*italic*``, `` `code` `` and ``[text](link)`` (the link text
only: a report links nowhere). Everything else is printed as text: all input is escaped before the few inline
forms are turned into reportlab mini-markup, so a card can never inject markup.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .pdfa import BOLD_FONT, ITALIC_FONT, MONO_FONT

_TABLE_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
_LIST_ITEM = re.compile(r"^(\s*)([-*]|\d+\.)\s+(.*)$")


@dataclass
class Block:
    kind: str                     # heading | paragraph | list | table | code
    text: str = ""
    level: int = 0                # heading level
    items: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    ordered: bool = False


def inline(text: str) -> str:
    """Escaped text with the inline forms as reportlab markup."""
    out, pos = [], 0
    text = re.sub(r"\[(`[^`]+`)\]\([^)]*\)", r"\1", text)  # a link whose text is code: the code alone
    for m in re.finditer(r"`([^`]+)`", text):        # code spans first: nothing inside them is markup
        out.append(_emphasis(escape(text[pos:m.start()])))
        out.append(f"<font name='{MONO_FONT}'>{escape(m.group(1))}</font>")
        pos = m.end()
    out.append(_emphasis(escape(text[pos:])))
    return "".join(out)


def _emphasis(s: str) -> str:
    s = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"\*\*(.+?)\*\*", lambda m: f"<font name='{BOLD_FONT}'>{m.group(1)}</font>", s)
    return re.sub(r"(?<![*\w])\*(?!\s)(.+?)(?<!\s)\*(?![*\w])",
                  lambda m: f"<font name='{ITALIC_FONT}'>{m.group(1)}</font>", s)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse(markdown: str) -> list[Block]:
    """Markdown text -> blocks (the subset above)."""
    lines = markdown.replace("\r\n", "\n").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            blocks.append(Block("heading", heading.group(2).strip(), level=len(heading.group(1))))
            i += 1
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and _TABLE_SEPARATOR.match(lines[i + 1].strip()):
            rows = [_cells(line)]
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            blocks.append(Block("table", rows=rows))
        elif line.startswith("    ") and not _LIST_ITEM.match(line):
            code = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                code.append(lines[i][4:])
                i += 1
            blocks.append(Block("code", "\n".join(code).rstrip("\n")))
        elif _LIST_ITEM.match(line):
            block = Block("list", ordered=_LIST_ITEM.match(line).group(2)[0].isdigit())
            while i < len(lines) and lines[i].strip():
                m = _LIST_ITEM.match(lines[i])
                if m and len(m.group(1)) < 2:
                    block.items.append(m.group(3).strip())
                elif block.items:
                    block.items[-1] += " " + lines[i].strip()
                i += 1
            blocks.append(block)
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#{1,6}\s|\|)", lines[i]) \
                    and not _LIST_ITEM.match(lines[i]):
                para.append(lines[i].strip())
                i += 1
            blocks.append(Block("paragraph", " ".join(para)))
    return blocks


def flowables(blocks: list[Block], st: dict, width: float) -> list:
    """Blocks -> reportlab flowables in the report's styles (``st`` from pdf_sections.styles())."""
    from reportlab.lib.units import cm
    from reportlab.platypus import ListFlowable, ListItem, Paragraph, Preformatted, Spacer, Table

    from .pdf_sections import table_style

    out = []
    for b in blocks:
        if b.kind == "heading":
            out.append(Paragraph(inline(b.text), st["h2"] if b.level <= 2 else st["h3"]))
        elif b.kind == "paragraph":
            out.append(Paragraph(inline(b.text), st["card"]))
        elif b.kind == "code":
            out.append(Preformatted(b.text, st["mono"]))
        elif b.kind == "list":
            items = [ListItem(Paragraph(inline(t), st["card"]), leftIndent=12) for t in b.items]
            out.append(ListFlowable(items, bulletType="1" if b.ordered else "bullet", start="1" if b.ordered else
                                    "•", bulletFontName=st["card"].fontName, bulletFontSize=7, leftIndent=12))
        elif b.kind == "table":
            n = max(len(r) for r in b.rows)
            rows = [[Paragraph(inline(c), st["small"]) for c in r + [""] * (n - len(r))] for r in b.rows]
            has_header = any(c.strip() for c in b.rows[0])
            t = Table(rows if has_header else rows[1:], colWidths=[width / n] * n, repeatRows=1 if has_header else 0,
                      splitInRow=0, hAlign="LEFT")
            t.setStyle(table_style(header=has_header))
            out.append(t)
        out.append(Spacer(1, 0.08 * cm))
    return out


def sections_until(markdown: str, max_headings: int) -> str:
    """The card up to (not including) its ``max_headings``-th heading of level 1 or 2."""
    count = 0
    kept = []
    for line in markdown.split("\n"):
        if re.match(r"^#{1,2}\s", line):
            count += 1
            if count >= max_headings:
                break
        kept.append(line)
    return "\n".join(kept).rstrip()


def table_after_heading(markdown: str, heading_words: str) -> list[list[str]]:
    """The first pipe table under the first heading containing ``heading_words`` (case-insensitive); [] if none."""
    blocks = parse(markdown)
    inside = False
    for b in blocks:
        if b.kind == "heading":
            inside = heading_words.lower() in b.text.lower()
        elif inside and b.kind == "table":
            return b.rows
    return []
