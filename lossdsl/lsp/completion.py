"""Completion: the names in scope (the file's own and the `def`s its `use`s bring in), the
functions of the table with their signatures, and the keywords of the grammar; after
`record.`, the record's fields."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import syntax as S
from ..functions import USER_FUNCTIONS
from ..parser import KEYWORDS
from .document import Document, def_head, written_type


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # "variable" | "function" | "keyword" | "field" | "dimension"
    detail: str = ""
    doc: str = ""


_FIELD_PATH = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\.[A-Za-z0-9_]*$")


def completions(doc: Document, line_text_before: str) -> list[Item]:
    """What may be written at the cursor, given the text of its line up to the cursor."""
    m = _FIELD_PATH.search(line_text_before)
    if m:
        return _fields(doc, m.group(1).split("."))
    items = [_defined(doc, name) for name in doc.definitions]
    items += [
        Item(f.name, "function", f.signature(), f"{f.doc}\n\ngradient: {f.grad}") for f in USER_FUNCTIONS.values()
    ]
    taken = {i.label for i in items}
    items += [Item(k, "keyword") for k in sorted(KEYWORDS) if k not in taken]
    return items


def _defined(doc: Document, name: str) -> Item:
    d = doc.definitions[name]
    stmt = d.node
    if d.kind == "dim":
        return Item(name, "dimension", "dimension")
    if d.kind == "def":
        where = f"from `use {d.file}`" if d.file is not None else ""
        return Item(name, "function", def_head(stmt), where)
    if d.kind == "let":
        types = doc.types_of(stmt.value)
        return Item(name, "variable", f"let {name}" + (f": {types[0]}" if len(types) == 1 else ""))
    return Item(name, "variable", f"{stmt.kind} {name}: {written_type(stmt.type)}")


def _fields(doc: Document, path: list[str]) -> list[Item]:
    d = doc.definitions.get(path[0])
    if d is None or not isinstance(d.node, S.Decl):
        return []
    t: S.TypeExpr = d.node.type
    for name in path[1:]:
        if not isinstance(t, S.RecordTypeExpr):
            return []
        sub = next((f.type for f in t.fields if f.name == name), None)
        if sub is None:
            return []
        t = sub
    if not isinstance(t, S.RecordTypeExpr):
        return []
    return [Item(f.name, "field", written_type(f.type)) for f in t.fields]
