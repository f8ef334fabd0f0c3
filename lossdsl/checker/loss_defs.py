"""A standard loss used as a function: `use std.huber` defines `huber(yhat, y, delta=1.0)`
(docs/language.md §1).

The file's `loss` becomes the body of a `def` named after the file, its lets and its own
`def`s written out in place, so that nothing of the file but its declarations is needed
where it is called. The parameters are the file's declarations in order: preds, targets,
inputs and context tensors first (positional, as `lossdsl.compile`'s function takes them),
then params, which keep their defaults (given by keyword, or left out). The body names the
file's dimensions (`axis=D`); a call binds each to the argument's dimension at that place,
so `huber(a, b)` of `float[N, K]` values reduces over `K`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .. import syntax as S

CALL_KINDS = ("pred", "target", "input", "context")
_DEPTH = 32  # a file's defs do not recur (E206 there): a bound against a runaway substitution


def loss_as_def(module: S.Module, name: str) -> S.Def | None:
    """The file's `loss` as `def name(...)`, or None for a file without one."""
    loss = next((s for s in module.statements if isinstance(s, S.LossStmt)), None)
    if loss is None:
        return None
    decls = [d for d in module.decls if d.kind in CALL_KINDS] + [d for d in module.decls if d.kind == "param"]
    defs = {s.name: s for s in module.statements if isinstance(s, S.Def)}
    lets: dict[str, S.Expr] = {}
    for let in (s for s in module.statements if isinstance(s, S.Let)):
        lets[let.name] = _substitute(let.value, dict(lets), defs, 0)
    body = _substitute(loss.value, lets, defs, 0)
    dims: list[str] = []
    for d in decls:
        for sym in _symbols(d.type):
            if sym not in dims:
                dims.append(sym)
    defaults = tuple((d.name, e) for d in decls if d.default is not None and (e := _literal(d.default)) is not None)
    return S.Def(
        name,
        tuple(d.name for d in decls),
        tuple(d.name_span for d in decls),
        body,
        loss.span,
        loss.span,
        defaults=defaults,
        types=tuple((d.name, d.type) for d in decls),
        dims=tuple(dims),
    )


def _literal(lit: S.Literal) -> S.Expr | None:
    v = lit.value
    if isinstance(v, bool):
        return S.Bool(v, lit.span)
    if isinstance(v, (int, float)):
        return S.Number(v, lit.span)
    return None  # a list: the param is then given at the call


def _symbols(t: S.TypeExpr) -> list[str]:
    if isinstance(t, S.RecordTypeExpr):
        return [s for f in t.fields for s in _symbols(f.type)]
    return [d.name for d in t.dims if isinstance(d, S.DimSymbol)]


def _substitute(e: Any, names: dict[str, S.Expr], defs: dict[str, S.Def], depth: int) -> Any:
    """`e` with each name of `names` replaced by its expression and each call of one of `defs`
    by the def's body, its parameters replaced by the call's arguments (all at once: what is
    put in is not substituted again)."""
    if depth > _DEPTH:
        return e
    if isinstance(e, S.Name):
        return names.get(e.id, e)
    if isinstance(e, S.Call) and e.func in defs and e.func not in names:
        d = defs[e.func]
        given = dict(zip(d.params, e.args)) | {k.name: k.value for k in e.kwargs}
        if set(given) == set(d.params) and len(e.args) <= len(d.params):
            bound = {p: _substitute(given[p], names, defs, depth) for p in d.params}
            return _substitute(d.body, {**{k: v for k, v in names.items() if k not in bound}, **bound}, defs, depth + 1)
    if isinstance(e, tuple):
        out = tuple(_substitute(x, names, defs, depth) for x in e)
        return out if any(a is not b for a, b in zip(out, e)) else e
    if dataclasses.is_dataclass(e) and not isinstance(e, type) and not isinstance(e, S.Span):
        changes = {}
        for f in dataclasses.fields(e):
            v = getattr(e, f.name)
            new = _substitute(v, names, defs, depth)
            if new is not v:
                changes[f.name] = new
        return dataclasses.replace(e, **changes) if changes else e
    return e


def _shown(t: S.TypeExpr) -> str:
    if isinstance(t, S.RecordTypeExpr):
        return "{" + ", ".join(f"{f.name}: {_shown(f.type)}" for f in t.fields) + "}"
    dims = ", ".join(d.name if isinstance(d, S.DimSymbol) else str(d.value) for d in t.dims)
    return f"{t.dtype}[{dims}]" if t.dims else t.dtype


def bind_dimensions(report: Any, d: S.Def, values: dict[str, Any], bound: dict[str, S.Expr], call: S.Call):
    """Each dimension symbol of the standard loss `d` -> the name of the argument's dimension at
    its place, or None (reported): an argument of another rank, a dimension bound to two
    names, or one without a name (a literal size, or a size a slice derived)."""
    out: dict[str, str] = {}
    where: dict[str, str] = {}

    def fail(message: str, pname: str, code: str, help: str | None = None) -> None:
        report.error(message, bound[pname].span if pname in bound else call.span, code, help=help)

    def walk(pname: str, label: str, texpr: S.TypeExpr, vtype: Any) -> bool:
        if isinstance(texpr, S.RecordTypeExpr):
            for f in texpr.fields:
                sub = vtype.field(f.name) if hasattr(vtype, "field") else None
                if sub is None:
                    fail(f"`{d.name}` takes `{label}` as `{_shown(texpr)}`, found `{vtype}`", pname, "E404")
                    return False
                if not walk(pname, f"{label}.{f.name}", f.type, sub):
                    return False
            return True
        shape = getattr(vtype, "shape", None)
        if shape is None or len(shape) != len(texpr.dims):
            fail(f"`{d.name}` takes `{label}` as `{_shown(texpr)}`, found `{vtype}`", pname, "E404")
            return False
        for dexpr, dim in zip(texpr.dims, shape):
            if not isinstance(dexpr, S.DimSymbol):
                continue  # a literal size: the body's shapes check it
            sym = dexpr.name
            if not dim.is_symbol:
                fail(
                    f"`{d.name}` reads axis `{sym}` of `{label}` by name, and this argument's axis there is `{dim}`",
                    pname,
                    "E405",
                    help=f"pass a value whose axes are declared dimensions (e.g. `float[B, {sym}]`)",
                )
                return False
            if out.setdefault(sym, dim.sym) != dim.sym:  # type: ignore[arg-type]
                fail(
                    f"`{d.name}` needs one size for `{sym}`: `{where[sym]}` has `{out[sym]}` there, `{label}` has `{dim}`",
                    pname,
                    "E402",
                )
                return False
            where.setdefault(sym, label)
        return True

    for pname, texpr in d.types:
        if pname in values and not walk(pname, pname, texpr, values[pname].type):
            return None
    return out


def rename_dimensions(e: Any, names: dict[str, str], keep: set[str]) -> Any:
    """`e` with the dimension names of `names` renamed (all at once), leaving the names in `keep`."""
    if isinstance(e, S.Name):
        new = names.get(e.id)
        return S.Name(new, e.span) if new is not None and new != e.id and e.id not in keep else e
    if isinstance(e, tuple):
        out = tuple(rename_dimensions(x, names, keep) for x in e)
        return out if any(a is not b for a, b in zip(out, e)) else e
    if dataclasses.is_dataclass(e) and not isinstance(e, type) and not isinstance(e, S.Span):
        changes = {}
        for f in dataclasses.fields(e):
            v = getattr(e, f.name)
            new_v = rename_dimensions(v, names, keep)
            if new_v is not v:
                changes[f.name] = new_v
        return dataclasses.replace(e, **changes) if changes else e
    return e
