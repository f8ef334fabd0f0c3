"""Hover: what the name or call under the cursor is, with its type and symbolic shape
(`float[B, C]`), and for a function of the table its signature, what it computes and its
gradient convention (docs/language.md §4)."""

from __future__ import annotations

from .. import syntax as S
from ..functions import BINARY_OPERATORS, FUNCTIONS, REQUIRED, USER_FUNCTIONS, Function
from ..source import Span
from .document import Definition, Document, def_head, written_type
from .lookup import Hit, hit_at, resolve


def hover_at(doc: Document, line: int, col: int) -> tuple[str, Span] | None:
    """Markdown for the position (1-based), and the span it describes; None where nothing is."""
    hit = hit_at(doc, line, col)
    if hit is None or (hit.what == "expr" and doc.source.line(line)[col - 1 : col].isspace()):
        return None  # the space between two operands says nothing about the expression around them
    text = _describe(doc, hit)
    return (text, hit.span) if text else None


def _code(text: str) -> str:
    return f"```lossdsl\n{text}\n```"


def _typed(label: str, types: list[str]) -> str:
    """`label: T`, or one line per type where a `def` body is checked at several calls."""
    if not types:
        return label
    if len(types) == 1:
        return f"{label}: {types[0]}"
    return "\n".join(f"{label}: {t}" for t in types)


def _describe(doc: Document, hit: Hit) -> str | None:
    if hit.what == "call":
        return _call(doc, hit.node)
    if hit.what == "keyword":
        return _keyword(hit.node, hit.name)
    if hit.what == "operator":
        fn = FUNCTIONS[BINARY_OPERATORS[hit.node.op]]
        return _function(fn, doc.types_of(hit.node), f"`{hit.node.op}`")
    if hit.what in ("name", "definition", "param", "dim"):
        return _name(doc, hit)
    if hit.what == "field":
        return _code(_typed(_label(hit.node), doc.types_of(hit.node)))
    if hit.what == "decl_field":
        return _code(f"{hit.name}: {written_type(hit.node.type)}")
    types = doc.types_of(hit.node)
    return _code(_typed(_short(hit.node), types)) if types else None


def _name(doc: Document, hit: Hit) -> str | None:
    meaning = resolve(doc, hit.name, hit.enclosing_def)
    if isinstance(meaning, tuple):
        d, _ = meaning
        types = doc.types_of(hit.node) if hit.what == "name" else _param_types(doc, d, hit.name)
        return _code(_typed(hit.name, types)) + f"\n\nparameter of `{d.name}`" + _per_call(types)
    if meaning is None:
        return None
    stmt = meaning.node
    used = doc.types_of(hit.node) if hit.what == "name" else []
    if meaning.kind == "dim":
        return _code(f"{hit.name}: dimension") + "\n\na dimension symbol: one size everywhere in the file"
    if meaning.kind == "let":
        types = used or doc.types_of(stmt.value)
        return _code(_typed(f"let {hit.name}", types))
    if meaning.kind == "def":
        return _code(def_head(stmt)) + _def_text(meaning)
    return _code(f"{stmt.kind} {stmt.name}: {written_type(stmt.type)}") + f"\n\n{_KIND_TEXT[stmt.kind]}"


_KIND_TEXT = {
    "pred": "a model output: the loss is differentiated with respect to it",
    "target": "ground truth, given at each call",
    "input": "a per-call model input",
    "context": "bound once at compile time",
    "param": "a hyperparameter, changeable per call",
}


def _per_call(types: list[str]) -> str:
    return " (one type per call)" if len(types) > 1 else ""


def _param_types(doc: Document, d: S.Def, name: str) -> list[str]:
    """The types a parameter takes at the calls of its def: those of its uses in the body."""
    seen: dict[str, None] = {}
    for node in S.walk(d.body):
        if isinstance(node, S.Name) and node.id == name:
            for t in doc.types_of(node):
                seen[t] = None
    return list(seen)


def _call(doc: Document, call: S.Call) -> str | None:
    types = doc.types_of(call)
    fn = USER_FUNCTIONS.get(call.func)
    d = doc.definitions.get(call.func)
    if d is not None and d.kind == "def":
        return _code(_returns(def_head(d.node), types)) + _def_text(d)
    if fn is None:
        return None
    return _function(fn, types)


def _def_text(d: Definition) -> str:
    where = f", from `use {d.file}`" if d.file is not None else ""
    return f"\n\nan inlined function{where}"


def _keyword(call: S.Call, name: str) -> str | None:
    """A keyword argument of a built-in: which parameter it is, and its default."""
    fn = USER_FUNCTIONS.get(call.func)
    param = next((p for p in fn.params if p.name == name), None) if fn is not None else None
    if fn is None or param is None:
        return None
    kind = _PARAM_KINDS.get(param.kind, param.kind)
    default = "" if param.default is REQUIRED else f", default {_literal(param.default)}"
    return f"`{name}` of `{fn.signature()}`: {kind}{default}"


# What each kind of parameter of the table accepts (lossdsl/functions/table.py, `Param`).
_PARAM_KINDS = {
    "tensor": "any expression",
    "axis": "an axis: an integer, a dimension symbol, or a tuple of them",
    "bool": "`true` or `false`",
    "int": "an integer literal",
    "number": "a number literal",
    "dim": "a dimension symbol or an integer",
}


def _literal(value) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _function(fn: Function, types: list[str], title: str | None = None) -> str:
    if fn.symbol:
        a, b = (p.name for p in fn.params)
        sig = f"{a} {fn.symbol} {b}"
    else:
        sig = fn.signature()
    parts = [_code(_returns(sig, types)), (title + ": " if title else "") + fn.doc]
    parts.append(f"gradient: {_GRADIENT_TEXT.get(fn.grad, fn.grad)}")
    return "\n\n".join(parts)


# The table's word for "no special convention" says it plainly in a hover.
_GRADIENT_TEXT = {"smooth": "smooth (plain calculus)"}


def _returns(head: str, types: list[str]) -> str:
    if not types:
        return head
    return "\n".join(f"{head} -> {t}" for t in types)


def _label(node: S.Expr) -> str:
    if isinstance(node, S.Name):
        return node.id
    if isinstance(node, S.FieldAccess):
        return f"{_label(node.value)}.{node.field}"
    return _short(node)


def _short(node: S.Expr) -> str:
    text = node.span.text
    if text is None or len(text) > 40:
        return "(expression)"
    return text
