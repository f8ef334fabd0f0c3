"""Parsing a document again after an edit, reusing the statements whose text did not change.

Typing changes one statement at a time, and parsing is a large part of a check. The parser
reports syntax errors per piece of one statement (`parser.statement_chunks`); a piece whose
text and first line are those of the last parse keeps what it parsed to (its statements, or
its syntax error), and only the others are parsed. That is what `parser.parse_source` gives
for the whole file, whether or not it has a syntax error: a file parses as a whole exactly
when each of its pieces does, and otherwise is reported per piece. The one exception is a
line continued with a backslash, which the pieces cut in two; such a file is parsed whole.
"""

from __future__ import annotations

import re

from .. import syntax as S
from ..parser import ParseResult, Piece, line_offsets, parse_piece, parse_source, statement_chunks
from ..source import Source

_CONTINUED = re.compile(r"^[^#\n]*\\[ \t\f]*\r?$", re.MULTILINE)


class IncrementalParser:
    def __init__(self) -> None:
        self.pieces: dict[tuple[int, str], Piece] = {}

    def parse(self, source: Source) -> ParseResult:
        text = source.text
        if _CONTINUED.search(text):
            self.pieces = {}
            return parse_source(source, allow_quick=False)
        offsets = line_offsets(text)
        pieces: dict[tuple[int, str], Piece] = {}
        for first, chunk in statement_chunks(text):
            if chunk.strip() and (first, chunk) not in pieces:
                old = self.pieces.get((first, chunk))
                pieces[(first, chunk)] = old or parse_piece(source, offsets[first - 1], first, chunk)
        self.pieces = pieces
        statements: list[S.Statement] = [s for p in pieces.values() for s in p.statements]
        findings = [d for p in pieces.values() for d in p.findings]
        broken = {k: v for p in pieces.values() for k, v in p.broken.items()}
        return ParseResult(S.Module(source, tuple(statements)), findings, broken)
