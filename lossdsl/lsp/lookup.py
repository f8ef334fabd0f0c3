"""What is written at a position: the syntax node under the cursor, and what its name means.

Positions are 1-based (line, column) in characters, as spans are; lossdsl/lsp/server.py converts
from the client's units. The innermost node wins: in `mean(x * y)` the cursor on `x` is the
name `x`, on `*` the product, on `mean` the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import syntax as S
from ..source import Span
from .document import Definition, Document


@dataclass(frozen=True)
class Hit:
    """`what`: "name" (a name used in an expression), "call" (the function of a call),
    "operator", "field" (`.field` of a record), "keyword" (the name of a keyword argument;
    `node` is its call), "expr" (any other expression),
    "definition" (the name a statement defines), "param" (a `def` parameter where it is
    declared), "dim" (a dimension symbol in a declared type), "decl_field" (a field of a
    declared record type)."""

    what: str
    node: Any
    span: Span
    statement: S.Statement
    name: str = ""

    @property
    def enclosing_def(self) -> S.Def | None:
        return self.statement if isinstance(self.statement, S.Def) else None


def contains(span: Span, line: int, col: int) -> bool:
    return (span.line, span.col) <= (line, col) < (span.end_line, span.end_col)


def hit_at(doc: Document, line: int, col: int) -> Hit | None:
    if doc.module is None:
        return None
    for stmt in doc.module.statements:
        if contains(stmt.span, line, col):
            return _in_statement(stmt, line, col)
    return None


def _in_statement(stmt: S.Statement, line: int, col: int) -> Hit | None:
    name_span = getattr(stmt, "name_span", None)
    if name_span is not None and contains(name_span, line, col):
        return Hit("definition", stmt, name_span, stmt, stmt.name)  # type: ignore[union-attr]
    if isinstance(stmt, S.Def):
        for p, sp in zip(stmt.params, stmt.param_spans):
            if contains(sp, line, col):
                return Hit("param", stmt, sp, stmt, p)
    if isinstance(stmt, S.Decl):
        return _in_type(stmt.type, stmt, line, col)
    if isinstance(stmt, S.Use):
        return None
    expr = stmt.body if isinstance(stmt, S.Def) else stmt.value
    return _in_expr(expr, stmt, line, col)


def _in_type(t: S.TypeExpr, stmt: S.Statement, line: int, col: int) -> Hit | None:
    if isinstance(t, S.TensorTypeExpr):
        for d in t.dims:
            if isinstance(d, S.DimSymbol) and contains(d.span, line, col):
                return Hit("dim", d, d.span, stmt, d.name)
        return None
    for f in t.fields:
        name_span = Span(f.span.source, f.span.line, f.span.col, f.span.line, f.span.col + len(f.name))
        if contains(name_span, line, col):
            return Hit("decl_field", f, name_span, stmt, f.name)
        if contains(f.span, line, col):
            return _in_type(f.type, stmt, line, col)
    return None


def _in_expr(expr: S.Expr, stmt: S.Statement, line: int, col: int) -> Hit | None:
    best = None
    for node in S.walk(expr):  # parents first: the last node that contains the position is innermost
        if contains(node.span, line, col):
            best = node
    if best is None:
        # A keyword's name (`axis=` in `sum(x, axis=C)`) is not an expression; its call is.
        return None
    if isinstance(best, S.Name):
        return Hit("name", best, best.span, stmt, best.id)
    if isinstance(best, S.Call) and contains(best.func_span, line, col):
        return Hit("call", best, best.func_span, stmt, best.func)
    if isinstance(best, S.Call):
        for kw in best.kwargs:
            name_span = Span(kw.span.source, kw.span.line, kw.span.col, kw.span.line, kw.span.col + len(kw.name))
            if contains(name_span, line, col):
                return Hit("keyword", best, name_span, stmt, kw.name)
    if isinstance(best, S.FieldAccess) and contains(best.field_span, line, col):
        return Hit("field", best, best.field_span, stmt, best.field)
    if isinstance(best, S.BinOp) and contains(best.op_span, line, col):
        return Hit("operator", best, best.op_span, stmt, best.op)
    return Hit("expr", best, best.span, stmt)


def resolve(doc: Document, name: str, enclosing_def: S.Def | None) -> Definition | tuple[S.Def, int] | None:
    """What `name` means where it is used: a parameter of the enclosing `def` (the def and
    the parameter's position) or a name in scope: one the file defines, or a `def` of a used file."""
    if enclosing_def is not None and name in enclosing_def.params:
        return enclosing_def, enclosing_def.params.index(name)
    return doc.definitions.get(name)


def definition_at(doc: Document, line: int, col: int) -> Span | None:
    """Where the name under the cursor is defined: its `let`, `def` (in a used file for a `def`
    a `use` brings in), declaration, the `def` parameter it names, the first place a dimension
    symbol is written, or a record's field."""
    hit = hit_at(doc, line, col)
    if hit is None:
        return None
    if hit.what in ("name", "call", "dim", "definition"):
        meaning = resolve(doc, hit.name, hit.enclosing_def)
        if isinstance(meaning, tuple):
            d, i = meaning
            return d.param_spans[i]
        if meaning is not None and (hit.what != "call" or meaning.kind == "def"):
            return meaning.span
        return None
    if hit.what == "param":
        return hit.span
    if hit.what == "field":
        return _field_span(doc, hit.node)
    return None


def _field_span(doc: Document, node: S.FieldAccess) -> Span | None:
    """The declaration of `x.a.b`'s field `b` in the record type of `x`."""
    path: list[str] = []
    base: S.Expr = node
    while isinstance(base, S.FieldAccess):
        path.insert(0, base.field)
        base = base.value
    if not isinstance(base, S.Name):
        return None
    d = doc.definitions.get(base.id)
    if d is None or not isinstance(d.node, S.Decl):
        return None
    t: S.TypeExpr = d.node.type
    span = None
    for name in path:
        if not isinstance(t, S.RecordTypeExpr):
            return None
        f = next((f for f in t.fields if f.name == name), None)
        if f is None:
            return None
        t, span = f.type, Span(f.span.source, f.span.line, f.span.col, f.span.line, f.span.col + len(f.name))
    return span
