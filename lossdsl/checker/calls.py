"""A call's arguments: binding them to the parameters of a function of the table, and reading
its static arguments (axes, flags, literal numbers, dims), which are literals, not values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import syntax as S
from ..functions import REQUIRED, Function
from ..source import Span
from ..types import Dim
from .literals import int_literal, number_literal
from .report import POISON, Reporter, did_you_mean

# What users of other libraries write for our keywords.
KEYWORD_ALIASES = {
    "dim": "axis",
    "axes": "axis",
    "keepdim": "keepdims",
    "keep_dims": "keepdims",
    "correction": "ddof",
    "unbiased": "ddof",
    "ord": "p",
    "num_classes": "C",
    "depth": "C",
    "num_segments": "G",
    "min": "lo",
    "max": "hi",
    "a_min": "lo",
    "a_max": "hi",
}


def bind_arguments(
    report: Reporter,
    fn: Function,
    args: list[S.Expr],
    kwargs: list[S.Keyword],
    span: Span,
    is_value: Callable[[str], bool],
) -> tuple[dict[str, tuple[S.Expr, Span]], bool]:
    """Each parameter's argument (and the span to blame), and whether the call's arity and
    keywords are right; every mistake is reported. `is_value(name)`: a value of that name is in
    scope, so `f(x, name=...)` was likely meant as a comparison."""
    params = fn.params
    bound: dict[str, tuple[S.Expr, Span]] = {}
    label = fn.symbol or fn.name
    arity_ok = True
    if len(args) > len(params):
        report.error(arity_message(fn, len(args) + len(kwargs)), span, "E501")
        arity_ok = False
    for p, a in zip(params, args):
        bound[p.name] = (a, a.span)
    for kw in kwargs:
        param = next((p for p in params if p.name == kw.name), None)
        if param is None:
            help = None
            if is_value(kw.name):
                help = f"to compare, write `{kw.name} == ...`"
            else:
                names = [q.name for q in params]
                alias = KEYWORD_ALIASES.get(kw.name)
                if alias in names:
                    help = f"the language calls it `{alias}`"
                else:
                    help = did_you_mean(kw.name, names, f"`{label}` takes {', '.join(names)}")
            report.error(f"`{label}` has no keyword argument `{kw.name}`", kw.span, "E502", help=help)
            arity_ok = False
        elif param.name in bound:
            report.error(f"`{kw.name}` is given twice", kw.span, "E503")
            arity_ok = False
        else:
            bound[param.name] = (kw.value, kw.span)
    missing = [p.name for p in params if p.default is REQUIRED and p.name not in bound]
    if arity_ok and missing:
        report.error(
            arity_message(fn, len(args) + len(kwargs)),
            span,
            "E501",
            help=f"missing: {', '.join(f'`{m}`' for m in missing)}",
        )
        arity_ok = False
    return bound, arity_ok


def arity_message(fn: Function, given: int) -> str:
    required = [p.name for p in fn.params if p.default is REQUIRED]
    if fn.symbol:
        return f"`{fn.symbol}` takes {len(required)} operands"
    total = len(fn.params)
    if len(required) == total:
        count = f"{total} argument{'s' if total != 1 else ''}"
    else:
        count = f"{len(required)} to {total} arguments"
    return f"`{fn.name}` takes {count} ({fn.signature()[len(fn.name) + 1 : -1]}), found {given}"


def static_argument(
    report: Reporter,
    fn: Function,
    pname: str,
    kind: str,
    e: S.Expr,
    is_value: Callable[[str], bool],
    known_symbols: set[str],
) -> Any:
    """The value of a static argument of kind `kind` (see `functions.Param`), or POISON
    (reported). An axis is a list of (integer or dimension name, span)."""
    label = fn.name
    v: int | float | None
    if kind == "axis":
        items = e.items if isinstance(e, S.Tuple) else (e,)
        out: list[tuple[int | str, Span]] = []
        for it in items:
            v = int_literal(it)
            if v is not None:
                out.append((v, it.span))
            elif isinstance(it, S.Name) and not is_value(it.id):
                out.append((it.id, it.span))
            else:
                report.error(
                    f"`{pname}` of `{label}` must be an integer, a dimension name or a tuple of them",
                    it.span,
                    "E504",
                    help="for example `axis=-1`, `axis=C` or `axis=(H, W)`",
                )
                return POISON
        return out
    if kind == "bool":
        if isinstance(e, S.Bool):
            return e.value
        report.error(f"`{pname}` of `{label}` must be `true` or `false`", e.span, "E504")
        return POISON
    if kind == "int":
        v = int_literal(e)
        if v is None:
            report.error(f"`{pname}` of `{label}` must be an integer literal", e.span, "E504")
            return POISON
        return v
    if kind == "number":
        v = number_literal(e)
        if v is None:
            report.error(f"`{pname}` of `{label}` must be a number literal", e.span, "E504")
            return POISON
        return v
    if kind == "choice":
        choices = next(p.choices for p in fn.params if p.name == pname)
        if isinstance(e, S.Name) and e.id in choices:
            return e.id
        report.error(
            f"`{pname}` of `{label}` must be one of {', '.join(choices)}",
            e.span,
            "E504",
            help=f"for example `{pname}={choices[0]}` (a bare name)",
        )
        return POISON
    if kind == "dims":
        items = e.items if isinstance(e, S.Tuple) else (e,)
        dims = [static_argument(report, fn, pname, "dim", it, is_value, known_symbols) for it in items]
        return POISON if any(d is POISON for d in dims) else tuple(dims)
    if kind == "dim":
        v = int_literal(e)
        if v is not None:
            if v < 1:
                report.error(f"`{pname}` of `{label}` must be a positive size, found {v}", e.span, "E504")
                return POISON
            return Dim.lit(v)
        if isinstance(e, S.Name):
            if e.id not in known_symbols:
                report.error(
                    f"dimension `{e.id}` is not declared anywhere, so nothing gives its size",
                    e.span,
                    "E809",
                    help=f"use it in a declaration (e.g. `param group_w: float[{e.id}]`), "
                    "or write the size as an integer",
                )
                return POISON
            return Dim(e.id)
        report.error(
            f"`{pname}` of `{label}` must be a dimension name or an integer",
            e.span,
            "E504",
            help=f"for example `{label}(..., C)`",
        )
        return POISON
    raise AssertionError(kind)
