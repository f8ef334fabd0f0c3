"""The whole file: its names declared, every `let` checked, and the rules about the file as a
whole (docs/language.md §1-§2): a `pred` is declared, there is exactly one `loss`, and it is a
float scalar or per-sample `[B]`; unknown names in a `def` body are errors even if the `def`
is never called; each index's minimum size is met where the size is known."""

from __future__ import annotations

from .. import syntax as S
from ..checked import CheckedModule, Declaration
from ..functions import USER_FUNCTIONS
from ..ir import Node
from ..source import Source, Span
from ..types import FLOAT, TensorType
from .declarations import Names
from .dims import Dims
from .expressions import Expressions, Observer, RecordRef
from .indexing import Indexing
from .report import POISON, Reporter, did_you_mean, function_hint
from .reuse import LetMemo
from .rule_context import CheckerRuleContext
from .value_domains import check_value_domains


def check_module(
    module: S.Module,
    *,
    broken: dict[str, str] | None = None,
    observe: Observer | None = None,
    memo: LetMemo | None = None,
) -> CheckedModule:
    """`broken`: the names (and kinds) of statements that failed to parse; their uses stay quiet.
    `observe`: told of every expression checked and its value (the language server's types).
    `memo`: what the last check of this file did, replayed for each `let` an edit cannot have
    changed (checker/reuse.py); the result is the same as without it."""
    broken = broken or {}
    report = Reporter()
    dims = Dims()
    names = Names(report, dims, set(broken))
    names.declare(module)
    names.find_recursive_defs()
    check_value_domains(names.decl_order, names.known_symbols, report)
    rules = CheckerRuleContext(report, dims, quick=module.quick)
    ex = Expressions(names, report, rules, Indexing(report, dims, rules), observe, memo)
    rules.inline_def = ex.inline_with

    loss_stmts = _check_file_shape(module, names, report, set(broken.values()))
    if memo is None:
        _check_lets(ex)
    else:
        memo.begin(names, module.quick)
        report.log, rules.sizes_log = memo.findings, memo.sizes
        try:
            _check_lets(ex)
        except BaseException:
            memo.forget()
            raise
        memo.end(ex)
        report.log = rules.sizes_log = None
    _check_def_bodies(names, report)
    loss = ex.expr(loss_stmts[0].value) if loss_stmts else POISON
    if isinstance(loss, RecordRef):
        report.error(f"`loss` must be a value, found the record `{loss.label}`", loss.span, "E307")
        loss = POISON
    if loss is not POISON:
        _check_loss(loss, loss_stmts[0].value.span, names.decl_order, dims, report)
    for c in rules.constraints:
        rd = dims.resolve(c.dim)
        if rd.is_literal and rd.value < c.minimum:
            report.error(
                f"this index needs an axis of at least {c.minimum}, but `{c.dim}` is {rd.value}", c.span, "E406"
            )
    report.diags.raise_if_errors()
    lets = {k: v for k, v in ex.let_values.items() if isinstance(v, Node) and v is not POISON}
    return CheckedModule(
        module.source,
        names.decl_order,
        loss,
        lets,
        dict(ex.args),
        dict(dims.bound),
        [c for c in rules.constraints if not dims.resolve(c.dim).is_literal],
        [],
        quick=module.quick,
    )


def _check_lets(ex: Expressions) -> None:
    # Every let is checked, used or not, so each of its errors is reported.
    for name in ex.names.lets:
        ex.let_value(name)


def _check_file_shape(module: S.Module, names: Names, report: Reporter, broken_kinds: set[str]) -> list[S.LossStmt]:
    """A `pred` is declared and `loss` defined exactly once; returns the `loss` statements."""
    src = module.source
    loss_stmts = [s for s in module.statements if isinstance(s, S.LossStmt)]
    preds = [d for d in names.decl_order if d.kind == "pred"]
    if not preds and "pred" not in broken_kinds:
        help = "declare the model output, e.g. `pred yhat: float[B]`"
        if module.quick:
            help = "a bare expression is the quick form, which only the Python API accepts; " + help
        report.error(
            "no `pred` is declared; the loss must depend on a model output", _file_start(src), "E209", help=help
        )
    if not loss_stmts:
        if "loss" not in broken_kinds:
            report.error("no `loss` statement", _file_end(src), "E204", help="end the file with `loss = <expression>`")
    elif len(loss_stmts) > 1:
        for extra in loss_stmts[1:]:
            report.error(
                "`loss` is defined twice",
                extra.span,
                "E205",
                notes=[f"first defined at line {loss_stmts[0].span.line}"],
                help="a file has exactly one `loss`; combine the terms with `+`",
            )
    return loss_stmts


def _check_def_bodies(names: Names, report: Reporter) -> None:
    """Unknown names inside a `def` body are errors even if the def is never called."""
    for d in names.defs.values():
        known = (
            set(d.params)
            | set(names.decls)
            | set(names.lets)
            | set(names.defs)
            | names.known_symbols
            | names.broken
            | set(d.dims)  # a standard loss's dimensions, bound at each call
        )
        choices = _choice_arguments(d.body)
        for node in S.walk(d.body):
            if isinstance(node, S.Name) and node.id not in known and node.id not in USER_FUNCTIONS:
                if id(node) in choices:
                    continue
                report.error(
                    f"unknown name `{node.id}`",
                    node.span,
                    "E201",
                    help=did_you_mean(node.id, list(known), "declare it"),
                    notes=[f"in the body of `{d.name}`"],
                )
            elif (
                isinstance(node, S.Call)
                and node.func not in USER_FUNCTIONS
                and node.func not in names.defs
                and node.func not in names.broken
                and node.func not in d.params
            ):
                report.error(
                    f"unknown function `{node.func}`",
                    node.func_span,
                    "E202",
                    help=function_hint(node.func, list(names.defs)),
                )


def _choice_arguments(body: S.Expr) -> set[int]:
    """The bare names given to a function's choice parameters (`padding=same`): words, not values."""
    out: set[int] = set()
    for node in S.walk(body):
        fn = USER_FUNCTIONS.get(node.func) if isinstance(node, S.Call) else None
        if fn is None:
            continue
        assert isinstance(node, S.Call)
        given = list(zip(fn.params, node.args)) + [
            (p, k.value) for k in node.kwargs for p in fn.params if p.name == k.name
        ]
        out.update(id(e) for p, e in given if p.kind == "choice")
    return out


def _check_loss(loss: Node, span: Span, decls: list[Declaration], dims: Dims, report: Reporter) -> None:
    """`loss` is a float scalar, or per sample: `[B]` where B leads a pred (docs/language.md §2)."""
    t = loss.type
    if t.dtype is not FLOAT:
        report.error(f"`loss` must be float, found `{t}`", span, "E601", help="convert with `float(...)`")
        return
    if t.rank == 0:
        return
    leading = [
        d.type.shape[0] for d in decls if d.kind == "pred" and isinstance(d.type, TensorType) and d.type.rank > 0
    ]
    if t.rank == 1 and any(dims.resolve(t.shape[0]) == dims.resolve(b) for b in leading):
        return
    if t.rank == 1:
        lead = ", ".join(f"`{b}`" for b in dict.fromkeys(map(str, leading))) or "none"
        report.error(
            f"`loss` of shape `{t}` is per `{t.shape[0]}`, which is not the leading dimension of a pred",
            span,
            "E602",
            notes=[f"leading dimensions of the preds: {lead}"],
            help="reduce it: `mean(...)` or `sum(...)`",
        )
        return
    rest = ", ".join(str(d) for d in t.shape[1:])
    axes = t.shape[1:]
    axis_txt = (
        str(axes[0])
        if len(axes) == 1 and axes[0].is_symbol
        else ("(" + ", ".join(str(i + 1) for i in range(len(axes))) + ")" if len(axes) > 1 else "-1")
    )
    report.error(
        f"`loss` must be a scalar or per-sample `[{t.shape[0]}]`, found `{t}`",
        span,
        "E602",
        help=f"reduce the other axes ({rest}): `mean(..., axis={axis_txt})`, or everything: `mean(...)`",
    )


def _file_start(src: Source) -> Span:
    return Span(src, 1, 1, 1, max(2, len(src.line(1)) + 1))


def _file_end(src: Source) -> Span:
    lines = src.text.rstrip("\n").split("\n")
    n = len(lines)
    return Span(src, n, 1, n, max(2, len(lines[-1]) + 1))
