"""Expressions: every node gets a dtype and a symbolic shape from the rule of its function in
`lossdsl.functions` (docs/language.md §3). Names resolve to declarations, `let`s (checked once,
in any order) and the parameters of the `def` being inlined; a `def` is inlined at each call,
so it is checked with that call's types. An expression with an error is POISON, which keeps
whatever uses it quiet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .. import syntax as S
from ..checked import Declaration
from ..functions import BINARY_OPERATORS, FUNCTIONS, USER_FUNCTIONS, CallSite, Function, StaticArg
from ..ir import Apply, Arg, Const, DimSize, Node
from ..source import Span
from ..types import BOOL, FLOAT, INT, Dim, RecordType, TensorType
from .calls import bind_arguments, static_argument
from .declarations import Names
from .indexing import Indexing, is_tensor_index
from .loss_defs import bind_dimensions, rename_dimensions
from .report import POISON, Reporter, RuleFailed, SpanTexts, did_you_mean, function_hint
from .reuse import LetMemo
from .rule_context import CheckerRuleContext


@dataclass(frozen=True)
class RecordRef:
    """A record (or sub-record) named in an expression; only `.field` may follow it."""

    decl: Declaration
    path: tuple[str, ...]
    type: RecordType
    span: Span

    @property
    def label(self) -> str:
        return ".".join((self.decl.name,) + self.path)


# Told of every expression checked and what it became (a Node, a RecordRef, or POISON); the
# language server reads types off it, including in a file with errors. An expression in a
# `def` body is told once per call of the `def`.
Observer = Callable[[S.Expr, Any], None]


class Expressions:
    def __init__(
        self,
        names: Names,
        report: Reporter,
        rules: CheckerRuleContext,
        indexing: Indexing,
        observe: Observer | None = None,
        memo: LetMemo | None = None,
    ):
        self.names = names
        self.observe = observe
        self.memo = memo  # what the last check of the file did (checker/reuse.py)
        self.report = report
        self.rules = rules
        self.indexing = indexing
        self.locals: dict[str, Any] = {}  # the parameters of the `def` being inlined
        self.args: dict[tuple[str, tuple[str, ...]], Arg] = {}  # one node per declared tensor (or field)
        self.let_values: dict[str, Any] = {}
        self.let_stack: list[str] = []  # the lets being checked, to find a cycle

    def expr(self, e: S.Expr) -> Any:
        """Node, RecordRef, or POISON."""
        method = getattr(self, "_expr_" + type(e).__name__)
        value = method(e)
        if self.observe is not None:
            self.observe(e, value)
        if self.memo is not None:
            self.memo.observed.append((e, value))
        return value

    def value(self, e: S.Expr) -> Node:
        """An expression that must be a tensor value (not a record)."""
        v = self.expr(e)
        if isinstance(v, RecordRef):
            fields = ", ".join(f"`{n}`" for n in v.type.names)
            self.report.error(
                f"`{v.label}` is a record, not a value",
                e.span,
                "E307",
                help=f"read one of its fields: {fields}" if fields else None,
            )
            return POISON
        return v

    def let_value(self, name: str) -> Any:
        """The value of `let name`, checked the first time it is read (a cycle is E206)."""
        if name in self.let_values:
            return self.let_values[name]
        lets = self.names.lets
        if name in self.let_stack:
            cycle = self.let_stack[self.let_stack.index(name) :] + [name]
            self.report.error(
                f"`{name}` is defined in terms of itself ({' -> '.join(f'`{c}`' for c in cycle)})",
                lets[name].name_span,
                "E206",
                help="a `let` cannot refer to itself, directly or not",
            )
            for c in cycle:
                self.let_values[c] = POISON
            return POISON
        if self.memo is not None and not self.let_stack:
            # a `let` checked at the top: as the last check did, if nothing it reads changed
            if not self.memo.replay(name, self):
                self.memo.record(name, self, lambda: self._check_let(name))
            return self.let_values[name]
        return self._check_let(name)

    def _check_let(self, name: str) -> Any:
        self.let_stack.append(name)
        try:
            with self._scope({}, ()):  # a let sees no def's parameters
                v = self.expr(self.names.lets[name].value)
        finally:
            self.let_stack.pop()
        self.let_values.setdefault(name, v)
        return self.let_values[name]

    def _is_value(self, name: str) -> bool:
        return self.names.is_value(name) or name in self.locals

    @contextmanager
    def _scope(self, locals: dict[str, Any], calls: tuple[tuple[str, Span], ...]) -> Iterator[None]:
        saved = self.locals, self.report.calls
        self.locals, self.report.calls = locals, calls
        try:
            yield
        finally:
            self.locals, self.report.calls = saved

    # ---- atoms and names --------------------------------------------------------------------

    def _expr_Number(self, e: S.Number) -> Node:
        return Const(TensorType(INT if e.is_int else FLOAT), e.span, e.value)

    def _expr_Bool(self, e: S.Bool) -> Node:
        return Const(TensorType(BOOL), e.span, e.value)

    def _expr_Tuple(self, e: S.Tuple) -> Node:
        self.report.error(
            "a tuple is only allowed as `axis=`",
            e.span,
            "E308",
            help="remove the comma, or pass several axes as `axis=(B, C)`",
        )
        return POISON

    def _expr_Name(self, e: S.Name) -> Any:
        name = e.id
        names = self.names
        if name in self.locals:
            return self.locals[name]
        if name in names.decls:
            decl = names.decls[name]
            if isinstance(decl.type, RecordType):
                return RecordRef(decl, (), decl.type, e.span)
            return self._arg(decl, (), decl.type)
        if name in names.lets:
            return self.let_value(name)
        if name in names.broken:
            return POISON
        if name in names.defs:
            self.report.error(f"`{name}` is a function; call it as `{name}(...)`", e.span, "E208")
            return POISON
        if name in names.known_symbols:
            return DimSize(TensorType(INT), e.span, Dim(name))
        if name in USER_FUNCTIONS:
            self.report.error(f"`{name}` is a function; call it as `{name}(...)`", e.span, "E208")
            return POISON
        if name == "loss":
            self.report.error(
                "`loss` is the result and cannot be used in an expression",
                e.span,
                "E201",
                help="name the value with `let` and use that name",
            )
            return POISON
        candidates = list(self.locals) + list(names.decls) + list(names.lets) + sorted(names.known_symbols)
        self.report.error(f"unknown name `{name}`", e.span, "E201", help=did_you_mean(name, candidates, "declare it"))
        return POISON

    def _arg(self, decl: Declaration, path: tuple[str, ...], t: TensorType) -> Arg:
        key = (decl.name, path)
        node = self.args.get(key)
        if self.memo is not None:
            self.memo.args_read.append(key)
            if node is None:
                node = self.memo.arg(key, decl)  # declared alike, so replayed values share it
        if node is None:
            node = Arg(t, decl.leaf_spans.get(path, decl.type_span), decl.kind, decl.name, path)
        self.args.setdefault(key, node)
        return node

    def _expr_FieldAccess(self, e: S.FieldAccess) -> Any:
        base = self.expr(e.value)
        if base is POISON:
            return POISON
        if not isinstance(base, RecordRef):
            self.report.error(
                f"`.{e.field}` on a value of type `{base.type}`, which is not a record",
                e.field_span,
                "E210",
                help="only inputs declared as records (`input x: {w: float[B]}`) have fields",
            )
            return POISON
        sub = base.type.field(e.field)
        if sub is None:
            self.report.error(
                f"`{base.label}` has no field `{e.field}`",
                e.field_span,
                "E210",
                help=did_you_mean(
                    e.field, base.type.names, f"its fields are {', '.join(f'`{n}`' for n in base.type.names)}"
                ),
            )
            return POISON
        path = base.path + (e.field,)
        if isinstance(sub, RecordType):
            return RecordRef(base.decl, path, sub, e.span)
        return self._arg(base.decl, path, sub)

    # ---- operators, calls and indexing ------------------------------------------------------

    def _expr_UnaryOp(self, e: S.UnaryOp) -> Node:
        if e.op == "-" and isinstance(e.operand, S.Number):
            return Const(TensorType(INT if e.operand.is_int else FLOAT), e.span, -e.operand.value)
        fn = FUNCTIONS["neg" if e.op == "-" else "not"]
        return self._apply(fn, [e.operand], [], e.span)

    def _expr_BinOp(self, e: S.BinOp) -> Node:
        return self._apply(FUNCTIONS[BINARY_OPERATORS[e.op]], [e.left, e.right], [], e.span)

    def _expr_Call(self, e: S.Call) -> Any:
        name = e.func
        names = self.names
        if name in names.defs and name not in self.locals:
            return self._inline(names.defs[name], e)
        if name in USER_FUNCTIONS:
            return self._apply(USER_FUNCTIONS[name], list(e.args), list(e.kwargs), e.span)
        if self._is_value(name):
            self.report.error(f"`{name}` is a value, not a function", e.func_span, "E208")
            return POISON
        if name in names.broken:
            return POISON
        self.report.error(
            f"unknown function `{name}`",
            e.func_span,
            "E202",
            help=function_hint(name, list(names.defs)),
        )
        return POISON

    def _expr_Index(self, e: S.Index) -> Node:
        x = self.value(e.value)
        tensor_items = [self.value(it) if is_tensor_index(it) else None for it in e.items]
        if x is POISON or any(t is POISON for t in tensor_items):
            return POISON
        return self.indexing.index(x, e, tensor_items)

    def _inline(self, d: S.Def, e: S.Call) -> Any:
        """The body of `d` checked with the call's arguments bound to its parameters."""
        if d.name in self.names.recursive_defs:
            return POISON
        if len(self.report.calls) > 64:  # defensive: recursion is rejected above
            return POISON
        n = len(d.params)
        given = len(e.args) + len(e.kwargs)
        bound: dict[str, S.Expr] = dict(zip(d.params, e.args))
        ok = True
        if len(e.args) > n:
            self.report.error(
                f"`{d.name}` takes {n} argument{'s' if n != 1 else ''} ({', '.join(d.params)}), found {given}",
                e.span,
                "E501",
            )
            ok = False
        for kw in e.kwargs:
            if kw.name not in d.params:
                self.report.error(
                    f"`{d.name}` has no parameter `{kw.name}`",
                    kw.span,
                    "E502",
                    help=did_you_mean(kw.name, d.params, f"its parameters are {', '.join(d.params)}"),
                )
                ok = False
            elif kw.name in bound:
                self.report.error(f"`{kw.name}` is given twice", kw.span, "E503")
                ok = False
            else:
                bound[kw.name] = kw.value
        for p, default in d.defaults:
            bound.setdefault(p, default)
        missing = [p for p in d.params if p not in bound]
        if ok and missing:
            self.report.error(
                f"`{d.name}` takes {n} argument{'s' if n != 1 else ''} ({', '.join(d.params)}), found {given}",
                e.span,
                "E501",
                help=f"missing: {', '.join(f'`{m}`' for m in missing)}",
            )
            ok = False
        values = {p: self.expr(x) for p, x in bound.items()}
        if not ok or any(v is POISON for v in values.values()):
            return POISON
        body = d.body
        if d.types:
            dims = bind_dimensions(self.report, d, values, bound, e)
            if dims is None:
                return POISON
            body = rename_dimensions(body, dims, set(d.params))
        with self._scope(values, self.report.calls + ((d.name, e.span),)):
            return self.expr(body)

    def _listed(self, fn: Function, pname: str, e: S.Expr) -> tuple[S.Expr, ...] | None:
        """The items of the list argument `[a, b]` of a parameter that takes several tensors."""
        if isinstance(e, S.Tuple) and e.items:
            return e.items
        self.report.error(
            f"`{pname}` of `{fn.name}` must be a list of values",
            e.span,
            "E504",
            help=f"for example `{fn.name}([a, b], axis=-1)`",
        )
        return None

    def _apply(self, fn: Function, args: list[S.Expr], kwargs: list[S.Keyword], span: Span) -> Node:
        """A call of a function of the table: arguments bound, operands typed, static arguments
        read, then the function's rule gives the result type."""
        bound, arity_ok = bind_arguments(self.report, fn, args, kwargs, span, self._is_value)
        nodes: list[Node] = []
        spans: list[Span] = []
        static: dict[str, StaticArg] = {}
        poisoned = not arity_ok
        for p in fn.params:
            if p.kind == "def":
                d = self._def_argument(fn, p.name, bound[p.name][0]) if p.name in bound else POISON
                poisoned = poisoned or d is POISON
                static[p.name] = StaticArg(d, bound[p.name][0].span if p.name in bound else None)
            elif p.static:
                if p.name in bound:
                    value = static_argument(
                        self.report, fn, p.name, p.kind, bound[p.name][0], self._is_value, self.names.known_symbols
                    )
                    if value is POISON:
                        poisoned = True
                    static[p.name] = StaticArg(value, bound[p.name][0].span)
                else:
                    d = p.default
                    if p.kind == "axis" and d is not None:
                        d = [(d, None)]
                    static[p.name] = StaticArg(d, None)
            elif p.kind == "tensors" and p.name in bound:
                items = self._listed(fn, p.name, bound[p.name][0])
                if items is None:
                    poisoned = True
                for expr in items or ():
                    node = self.value(expr)
                    poisoned = poisoned or node is POISON
                    nodes.append(node)
                    spans.append(expr.span)
            elif p.name in bound:
                expr = bound[p.name][0]
                node = self.value(expr)
                if node is POISON:
                    poisoned = True
                nodes.append(node)
                spans.append(expr.span)
        if poisoned:
            return POISON
        site = CallSite(fn, nodes, spans, SpanTexts(spans), static, span)
        try:
            t, attrs = fn.rule(self.rules, site)
        except RuleFailed:
            return POISON
        # values a `def` argument reads from outside become operands (a `scan`'s step)
        nodes += attrs.pop("captured", ())
        return Apply(t, span, fn.name, tuple(nodes), tuple(sorted(attrs.items())))

    def _def_argument(self, fn: Function, pname: str, e: S.Expr) -> Any:
        """The `def` a parameter of kind "def" names (`scan(step, ...)`), or POISON (reported)."""
        if isinstance(e, S.Name) and e.id in self.names.defs and e.id not in self.locals:
            if e.id in self.names.recursive_defs:
                return POISON
            return self.names.defs[e.id]
        if isinstance(e, S.Name) and e.id in self.names.broken:
            return POISON
        self.report.error(
            f"`{pname}` of `{fn.name}` must name a `def` of the spec",
            e.span,
            "E504",
            help=f"define the step, e.g. `def {pname}(carry, x) = ...`, and pass its name",
        )
        return POISON

    def inline_with(self, d: S.Def, args: list[Node], span: Span) -> Any:
        """The body of `d` checked with its parameters bound to `args` (a rule's `inline`)."""
        if len(args) != len(d.params):
            self.report.error(
                f"`{d.name}` takes {len(d.params)} argument{'s' if len(d.params) != 1 else ''} "
                f"({', '.join(d.params)}), and is called here with {len(args)}",
                span,
                "E501",
                help="a step takes the carry, then one slice of each sequence",
            )
            return POISON
        with self._scope(dict(zip(d.params, args)), self.report.calls + ((d.name, span),)):
            return self.value(d.body)
