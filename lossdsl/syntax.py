"""The syntax tree of a spec: what was written, with where it was written.

`lossdsl.parse` returns a `Module` of these nodes; names are not resolved and
nothing is typed yet (that is `lossdsl.checker`'s work). Node class names match
the grammar's aliases (`binop` -> `BinOp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .source import Source, Span

# ---- types as written ---------------------------------------------------------


@dataclass(frozen=True)
class DimSymbol:
    name: str
    span: Span


@dataclass(frozen=True)
class DimLiteral:
    value: int
    span: Span


DimExpr = Union[DimSymbol, DimLiteral]


@dataclass(frozen=True)
class DomainBound:
    """An end of an interval as written: a number (`inf` is `math.inf`) or a dimension symbol."""

    value: int | float | str
    span: Span


@dataclass(frozen=True)
class IntervalDomain:
    """`in [low, high)` and the like: `low_closed` is `[`, `high_closed` is `]`."""

    low: DomainBound
    high: DomainBound
    low_closed: bool
    high_closed: bool
    span: Span


@dataclass(frozen=True)
class NamedDomain:
    """`in simplex`, `in onehot` (the names are checked, not parsed, so they are not keywords)."""

    name: str
    span: Span


DomainExpr = Union[IntervalDomain, NamedDomain]


@dataclass(frozen=True)
class TensorTypeExpr:
    dtype: str  # "float" | "int" | "bool"
    dims: tuple[DimExpr, ...]
    span: Span
    domain: DomainExpr | None = None  # `in ...` after the type (docs/language.md §2)


@dataclass(frozen=True)
class FieldExpr:
    name: str
    type: TypeExpr
    span: Span


@dataclass(frozen=True)
class RecordTypeExpr:
    fields: tuple[FieldExpr, ...]
    span: Span


TypeExpr = Union[TensorTypeExpr, RecordTypeExpr]

# ---- expressions ----------------------------------------------------------------


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Number:
    value: int | float
    span: Span

    @property
    def is_int(self) -> bool:
        return isinstance(self.value, int)


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / @ ^ and or, and comparisons < <= > >= == !=
    left: Expr
    right: Expr
    span: Span
    op_span: Span


@dataclass(frozen=True)
class UnaryOp:
    op: str  # "-" or "not"
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    kwargs: tuple[Keyword, ...]
    span: Span
    func_span: Span


@dataclass(frozen=True)
class FieldAccess:
    value: Expr
    field: str
    span: Span
    field_span: Span


@dataclass(frozen=True)
class Slice:
    start: Expr | None
    stop: Expr | None
    step: Expr | None
    span: Span


@dataclass(frozen=True)
class EllipsisIndex:
    span: Span


@dataclass(frozen=True)
class NewAxis:
    span: Span


Subscript = Union["Expr", Slice, EllipsisIndex, NewAxis]


@dataclass(frozen=True)
class Index:
    value: Expr
    items: tuple[Subscript, ...]
    span: Span


@dataclass(frozen=True)
class Tuple:
    items: tuple[Expr, ...]
    span: Span


Expr = Union[Name, Number, Bool, BinOp, UnaryOp, Call, FieldAccess, Index, Tuple]

# ---- statements --------------------------------------------------------------------

DECL_KINDS = ("pred", "target", "input", "context", "param")


@dataclass(frozen=True)
class Literal:
    """A param default: a number, a bool, or a nested list of them."""

    value: object  # int | float | bool | list
    span: Span


@dataclass(frozen=True)
class Decl:
    kind: str  # one of DECL_KINDS
    name: str
    type: TypeExpr
    default: Literal | None
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Def:
    name: str
    params: tuple[str, ...]
    param_spans: tuple[Span, ...]
    body: Expr
    span: Span
    name_span: Span
    # A standard loss used as a function (docs/language.md §1, `use std.NAME`) has more: the
    # default of each param that has one, the declared type of each parameter, and the
    # dimension symbols of its file, which its body names and a call binds to the arguments'.
    defaults: tuple[tuple[str, Expr], ...] = ()
    types: tuple[tuple[str, TypeExpr], ...] = ()
    dims: tuple[str, ...] = ()


@dataclass(frozen=True)
class LossStmt:
    value: Expr
    span: Span


@dataclass(frozen=True)
class Use:
    """`use "helpers.loss"` (a path, relative to the file) or `use std.NAME` (a file of the
    standard library): the `def`s of that file are in scope (docs/language.md §1)."""

    target: str  # the path as written, or NAME of `std.NAME`
    library: str | None  # "std" for `use std.NAME`, None for a path
    span: Span
    target_span: Span


Statement = Union[Decl, Let, Def, LossStmt, Use]


@dataclass(frozen=True)
class Module:
    """A parsed spec. `quick` is true for the quick form (a bare expression)."""

    source: Source
    statements: tuple[Statement, ...]
    quick: bool = False

    @property
    def decls(self) -> list[Decl]:
        return [s for s in self.statements if isinstance(s, Decl)]

    @property
    def quick_expr(self) -> Expr:
        assert self.quick
        stmt = self.statements[0]
        assert isinstance(stmt, LossStmt)
        return stmt.value


def walk(expr: Expr):
    """Every expression node below (and including) `expr`, parents first."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, BinOp):
            stack += [e.right, e.left]
        elif isinstance(e, UnaryOp):
            stack.append(e.operand)
        elif isinstance(e, Call):
            stack += [k.value for k in reversed(e.kwargs)] + list(reversed(e.args))
        elif isinstance(e, FieldAccess):
            stack.append(e.value)
        elif isinstance(e, Index):
            for it in reversed(e.items):
                if isinstance(it, Slice):
                    stack += [p for p in (it.step, it.stop, it.start) if p is not None]
                elif not isinstance(it, (EllipsisIndex, NewAxis)):
                    stack.append(it)
            stack.append(e.value)
        elif isinstance(e, Tuple):
            stack += list(reversed(e.items))
