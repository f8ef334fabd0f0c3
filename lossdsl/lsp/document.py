"""One open document as the language server sees it: the same findings as `lossdsl check`,
the names in scope (those the file defines and the `def`s its `use`s bring in), and the type
the checker gave each expression.

The checker is run once per change with an observer (lossdsl/checker/expressions.py) that
records what every expression became, so hover has types even in a file with errors: an
expression the checker reached before the error still has its type. The check is in two
halves (`type_check`, then `finish`), so that the server can answer requests as soon as the
types are known.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field, replace
from typing import Any

from .. import syntax as S
from ..checked import CheckedModule
from ..checker.report import Reporter
from ..checker.reuse import LetMemo
from ..checker.uses import Uses
from ..diagnostics import Diagnostic, LossError
from ..frontend import analyze as analyze_checked
from ..frontend import check_types
from ..parser import parse_source
from ..source import Source, Span
from .incremental import IncrementalParser


@dataclass(frozen=True)
class Definition:
    """A name the file defines, where it is written, and how hover shows it."""

    name: str
    kind: str  # pred | target | input | context | param | let | def | dim
    span: Span  # in another file for a `def` a `use` brings in
    node: Any = None  # the Decl, Let or Def statement; the first DimSymbol for a dimension
    via: S.Use | None = None  # the `use` that brought a `def` of another file in

    @property
    def file(self) -> str | None:
        """The used file a `def` comes from, as its `use` names it; None for the file's own."""
        if self.via is None:
            return None
        return f"{self.via.library}.{self.via.target}" if self.via.library else f'"{self.via.target}"'


@dataclass
class Document:
    source: Source
    module: S.Module | None
    findings: list[Diagnostic]
    definitions: dict[str, Definition] = field(default_factory=dict)  # every name in scope
    values: dict[int, list[Any]] = field(default_factory=dict)  # id(expression) -> what it became

    def types_of(self, expr: S.Expr) -> list[str]:
        """The types the checker gave `expr`, each once (a `def` body has one per call); a
        record's type for a record, none where the expression had an error."""
        seen: dict[str, None] = {}
        for v in self.values.get(id(expr), ()):
            t = getattr(v, "type", None)
            if t is not None:
                seen[str(t)] = None
        return list(seen)


def analyze(
    text: str, name: str = "<string>", parser: IncrementalParser | None = None, memo: LetMemo | None = None
) -> Document:
    """Parse and check `text` as `lossdsl check` does, keeping what the editor features read.
    `parser`: the document's parser, which re-parses only the statements an edit changed;
    `memo`: what its last check did, replayed for the `let`s an edit cannot have changed."""
    doc, checked = type_check(text, name, parser, memo)
    return doc if checked is None else finish(doc, checked)


def type_check(
    text: str, name: str = "<string>", parser: IncrementalParser | None = None, memo: LetMemo | None = None
) -> tuple[Document, CheckedModule | None]:
    """The first half of `analyze`: parse and type-check. The document has every type and
    name that hover, definition and completion read. Its findings are complete when no checked
    module comes back (a syntax or type error); otherwise `finish` adds those of the analyses
    after type checking (gradient paths, domains)."""
    # The file's own path, so that `use "helpers.loss"` is read next to it.
    source = Source(text, name, pathlib.Path(name) if os.path.isabs(name) else None)
    values: dict[int, list[Any]] = {}

    def observe(expr: S.Expr, value: Any) -> None:
        values.setdefault(id(expr), []).append(value)

    try:
        parsed = parser.parse(source) if parser is not None else parse_source(source, allow_quick=False)
    except LossError as err:
        return Document(source, None, err.findings), None
    checked: CheckedModule | None = None
    findings: list[Diagnostic] = []
    try:
        checked = check_types(parsed, observe=observe, memo=memo)
    except LossError as err:
        findings = err.findings
    return Document(source, parsed.module, findings, _definitions(parsed.module), values), checked


def finish(doc: Document, checked: CheckedModule) -> Document:
    """The document with the findings of the analyses after type checking, as `lossdsl check`
    reports them."""
    try:
        findings = list(analyze_checked(checked).warnings)
    except LossError as err:
        findings = err.findings
    return replace(doc, findings=findings)


def _definitions(module: S.Module) -> dict[str, Definition]:
    """Each name defined at the top of the file, then each `def` its `use`s bring in; the first
    definition wins (a second is E203, a name both here and in a used file E214)."""
    found: dict[str, Definition] = {}
    for stmt in module.statements:
        if isinstance(stmt, S.Decl):
            found.setdefault(stmt.name, Definition(stmt.name, stmt.kind, stmt.name_span, stmt))
            for sym in dim_symbols(stmt.type):
                found.setdefault(sym.name, Definition(sym.name, "dim", sym.span, sym))
        elif isinstance(stmt, S.Let):
            found.setdefault(stmt.name, Definition(stmt.name, "let", stmt.name_span, stmt))
        elif isinstance(stmt, S.Def):
            found.setdefault(stmt.name, Definition(stmt.name, "def", stmt.name_span, stmt))
    if any(isinstance(s, S.Use) for s in module.statements):
        # read as the checker reads them; its findings about the `use`s are the checker's to report
        for used in Uses(Reporter()).collect(module):
            d = used.definition
            found.setdefault(d.name, Definition(d.name, "def", d.name_span, d, used.via))
    return found


def dim_symbols(t: S.TypeExpr) -> list[S.DimSymbol]:
    if isinstance(t, S.TensorTypeExpr):
        return [d for d in t.dims if isinstance(d, S.DimSymbol)]
    return [sym for f in t.fields for sym in dim_symbols(f.type)]


def written_type(t: S.TypeExpr) -> str:
    """A declared type as the checker prints types: `float[B, C]`, `{w: float[B]}`."""
    if isinstance(t, S.TensorTypeExpr):
        if not t.dims:
            return t.dtype
        dims = ", ".join(d.name if isinstance(d, S.DimSymbol) else str(d.value) for d in t.dims)
        return f"{t.dtype}[{dims}]"
    return "{" + ", ".join(f"{f.name}: {written_type(f.type)}" for f in t.fields) + "}"


def def_head(d: S.Def) -> str:
    """`def sq(a)`; a standard loss used as a function shows its params' defaults."""
    defaults = {name: value.span.text for name, value in d.defaults}
    return f"def {d.name}({', '.join(p if p not in defaults else f'{p}={defaults[p]}' for p in d.params)})"
