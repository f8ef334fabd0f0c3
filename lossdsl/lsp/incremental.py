"""Parsing a document again after an edit, reusing the statements whose text did not change.

Typing changes one statement at a time, and parsing is most of the time a check takes. A
document's text is cut into the pieces of one statement each that the parser reports syntax
errors per (`parser.statement_chunks`); a piece whose text and first line are those of the last
parse keeps its statements, and only the others are parsed. Whenever that does not give a
clean parse (a syntax error anywhere, a piece that only parses with its neighbours) or most
pieces changed, the whole file is parsed as `lossdsl check` parses it, so the result is
always the one `parser.parse_source` gives.
"""

from __future__ import annotations

import bisect

from .. import syntax as S
from ..parser import ParseResult, parse_chunk, parse_source, statement_chunks
from ..source import Source

# More changed pieces than this and one parse of the whole file is quicker: a piece is parsed
# at its line (after that many newlines), so parsing many pieces alone costs more.
MAX_CHANGED_PIECES = 8

Piece = tuple[int, str]  # (first line, text)


class IncrementalParser:
    def __init__(self) -> None:
        self.pieces: dict[Piece, list[S.Statement]] = {}

    def parse(self, source: Source) -> ParseResult:
        chunks = [c for c in statement_chunks(source.text) if c[1].strip()]
        changed = [c for c in chunks if c not in self.pieces]
        if not self.pieces or len(changed) > MAX_CHANGED_PIECES:
            return self._whole(source, chunks)
        fresh: dict[Piece, list[S.Statement]] = {}
        for c in changed:
            statements = parse_chunk(source, *c)
            if statements is None:
                return self._whole(source, chunks)
            fresh[c] = statements
        self.pieces = {c: fresh[c] if c in fresh else self.pieces[c] for c in chunks}
        statements = [s for c in chunks for s in self.pieces[c]]
        return ParseResult(S.Module(source, tuple(statements)), [], {})

    def _whole(self, source: Source, chunks: list[Piece]) -> ParseResult:
        """Parse the whole file; remember its statements by piece when it parsed cleanly."""
        result = parse_source(source, allow_quick=False)
        self.pieces = {}
        if result.findings or result.broken:
            return result
        by_piece: dict[Piece, list[S.Statement]] = {c: [] for c in chunks}
        starts = [c[0] for c in chunks]
        for stmt in result.module.statements:
            # the last piece that starts at or before the statement's first line
            i = bisect.bisect_right(starts, stmt.span.line) - 1
            if i < 0:
                return result
            by_piece[chunks[i]].append(stmt)
        self.pieces = by_piece
        return result
