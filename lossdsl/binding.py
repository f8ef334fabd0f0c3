"""Values given once rather than at each call: context tensors and params, checked against
their declarations as a call's arguments are (dtype E803, rank E804, sizes E805), at
`lossdsl.compile` and at `set_params`. Sizes they fix are recorded in `static`, the sizes
the generated code takes as known."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from lossdsl.backends import get_backend

from .checked import CheckedModule, Declaration
from .diagnostics import Diagnostic, LossError, name_hint
from .types import BOOL, FLOAT, INT, TensorType


def value_kind(x: Any, be) -> tuple[str, tuple]:
    """(dtype kind, shape) of a value given at compile time: a tensor of the backend `be`
    (None where no framework is loaded), or anything NumPy reads."""
    if be is None or not be.is_tensor(x):
        be = get_backend("numpy")
        try:
            x = be.asarray(x)
        except (TypeError, ValueError):  # not numbers: reported as such
            return "other", ()
    return be.dtype_kind(x), tuple(int(s) for s in be.shape(x))


def check_static_value(
    decl: Declaration,
    path: tuple[str, ...],
    t: TensorType,
    value: Any,
    static: dict[str, tuple[int, str]],
    what: str,
    be,
) -> None:
    kind, shape = value_kind(value, be)
    label = ".".join((decl.name,) + path)
    span = decl.leaf_spans.get(path, decl.type_span)
    want = t.dtype
    ok = (
        (want is FLOAT and kind in ("float", "int", "bool"))
        or (want is INT and kind == "int")
        or (want is BOOL and kind == "bool")
    )
    if not ok:
        raise LossError(
            [Diagnostic(f"{decl.kind} `{label}` must be {want} (`{t}`), found {kind} values", span, "E803")]
        )
    if len(shape) != t.rank:
        raise LossError(
            [
                Diagnostic(
                    f"{decl.kind} `{label}` must have rank {t.rank} (`{t}`), found shape {tuple(shape)}", span, "E804"
                )
            ]
        )
    leaf = next(lf for lf in decl.leaves if lf.path == path)
    for k, (d, n) in enumerate(zip(t.shape, shape)):
        dspan = leaf.dim_spans[k] if k < len(leaf.dim_spans) else span
        if d.is_literal:
            if d.value != n:
                raise LossError(
                    [
                        Diagnostic(
                            f"axis {k} of {decl.kind} `{label}` must have size {d.value}, found {n}", dspan, "E805"
                        )
                    ]
                )
            continue
        assert d.sym is not None  # not is_literal
        if d.sym in static and static[d.sym][0] != n:
            raise LossError(
                [Diagnostic(f"`{d.sym}` is {static[d.sym][0]} {static[d.sym][1]} but {n} {what}", dspan, "E805")]
            )
        static.setdefault(d.sym, (n, what))


def bind_context(checked: CheckedModule, be, context: Mapping[str, Any], static) -> dict[str, Any]:
    decls = checked.of_kind("context")
    names = {d.name for d in decls}
    for key in context:
        if key not in names:
            listing = f"its context tensors: {', '.join(sorted(names))}" if names else "it declares no context"
            raise LossError(
                [
                    Diagnostic(
                        f"`{key}` is not a context of this spec",
                        None,
                        "E806",
                        path=checked.source.name,
                        help=name_hint(key, sorted(names), listing),
                    )
                ]
            )
    values: dict[str, Any] = {}
    for d in decls:
        if d.name not in context:
            raise LossError(
                [
                    Diagnostic(
                        f"context `{d.name}: {d.type}` is not bound",
                        d.name_span,
                        "E806",
                        help=f"pass it once: `lossdsl.compile(..., context={{'{d.name}': ...}})`",
                    )
                ]
            )
        value = context[d.name]
        for leaf in d.leaves:
            v = value
            for p in leaf.path:
                if not isinstance(v, Mapping) or p not in v:
                    raise LossError([Diagnostic(f"context `{leaf.label}` is missing", d.name_span, "E807")])
                v = v[p]
            check_static_value(d, leaf.path, leaf.type, v, static, f"from context `{leaf.label}`", be)
            values[leaf.label] = v
    return values


def bind_params(checked: CheckedModule, be, params: Mapping[str, Any], static) -> dict[str, Any]:
    decls = {d.name: d for d in checked.of_kind("param")}
    for key in params:
        if key not in decls:
            raise LossError(
                [
                    Diagnostic(
                        f"`{key}` is not a param of this spec",
                        None,
                        "E806",
                        path=checked.source.name,
                        help=name_hint(key, list(decls)),
                    )
                ]
            )
    values: dict[str, Any] = {}
    for name, d in decls.items():
        if name in params:
            check_static_value(d, (), cast(TensorType, d.type), params[name], static, f"from param `{name}`", be)
            values[name] = params[name]
        elif d.has_default:
            values[name] = d.default
    return values
