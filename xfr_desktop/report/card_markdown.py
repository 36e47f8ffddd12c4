"""The small Markdown subset of model cards, parsed into blocks: the report reads a card's first sections and the
table under its evaluation heading (court_words puts that table into words; the card's text is never printed).

Handled: ``#`` headings, paragraphs, ``-``/``*`` and ``1.`` lists (with indented continuation lines), pipe tables
and indented code blocks; everything else is paragraph text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

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
