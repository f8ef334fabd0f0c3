"""Dimension symbols: the sizes the spec itself fixes, and when two dims agree (docs/language.md §2)."""

from __future__ import annotations

from ..source import Span
from ..types import ONE, Dim
from .report import where as where_text


class Dims:
    """Sizes of dimension symbols fixed by the spec itself (literal sizes met by a symbol)."""

    def __init__(self) -> None:
        self.bound: dict[str, tuple[int, str]] = {}

    def resolve(self, d: Dim) -> Dim:
        if d.sym is not None and d.sym in self.bound:
            return Dim.lit(self.bound[d.sym][0] + d.offset)
        return d

    def bind(self, sym: str, value: int, where: str) -> None:
        self.bound.setdefault(sym, (value, where))

    def unify(self, a: Dim, b: Dim, *, broadcast: bool, span: Span, where: str | None = None) -> Dim | None:
        """The dim `a` and `b` agree on (with `broadcast`, a 1 stretches), or None if they clash.
        `where` (by default the text at `span`, quoted) and `span` say where a symbol got
        bound, for later messages; the text is read only when a symbol is bound."""
        ra, rb = self.resolve(a), self.resolve(b)
        if ra == rb:
            return a if a.sym else b
        if broadcast and ra == ONE:
            return b
        if broadcast and rb == ONE:
            return a
        if ra.is_literal and rb.is_literal:
            return None
        # A symbol meeting a literal other than 1 is bound to it (docs/language.md §2).
        for sym_dim, lit in ((ra, rb), (rb, ra)):
            if sym_dim.sym is not None and sym_dim.sym.isidentifier() and lit.is_literal:
                size = lit.value - sym_dim.offset
                if size < 0:
                    return None
                self.bind(
                    sym_dim.sym, size, f"from {where if where is not None else where_text(span)} (line {span.line})"
                )
                return a if a.sym else b
        return None
