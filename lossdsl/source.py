"""Source text and positions in it.

A `Source` is the text of one spec and the name it is shown under; a `Span` is a
range in it, 1-based like every compiler's messages. Every later stage keeps the
spans of what it builds, so an error found anywhere can point back at the text.

This module is below `diagnostics` (a finding points at a `Span`); reading a spec from a
file, which can fail with a finding, is `lossdsl.loading`.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class Source:
    """The text of one spec. Compared by identity: two reads of a file are two sources."""

    text: str
    name: str = "<string>"
    path: pathlib.Path | None = None
    _lines: list[str] | None = field(default=None, repr=False, compare=False)

    def line(self, number: int) -> str:
        """Line `number` (1-based) without its newline; '' past the end."""
        lines = self._lines
        if lines is None:
            lines = self.text.split("\n")
            object.__setattr__(self, "_lines", lines)
        if 1 <= number <= len(lines):
            return lines[number - 1].rstrip("\r")
        return ""


@dataclass(frozen=True)
class Span:
    """A range of a source: from (line, col) to (end_line, end_col), end exclusive, 1-based."""

    source: Source = field(compare=False, repr=False)
    line: int
    col: int
    end_line: int
    end_col: int

    @property
    def path(self) -> str:
        return self.source.name

    @property
    def text(self) -> str | None:
        """The source text it covers, when on one line."""
        if self.line != self.end_line:
            return None
        return self.source.line(self.line)[self.col - 1 : self.end_col - 1]

    def to(self, other: Span) -> Span:
        """The span from the start of self to the end of other."""
        return Span(self.source, self.line, self.col, other.end_line, other.end_col)

    def __str__(self) -> str:
        return f"{self.source.name}:{self.line}:{self.col}"


def is_path_like(spec: object) -> bool:
    """docs/language.md §6: a Path, or a string ending in `.loss`, is a file; other strings are source."""
    if isinstance(spec, os.PathLike):
        return True
    return isinstance(spec, str) and spec.rstrip().endswith(".loss") and "\n" not in spec.strip()
