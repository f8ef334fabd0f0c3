"""Syntax tree -> typed IR, in one pass, with every independent error reported.

    check_module(module) -> CheckedModule      (raises LossError)

Names are resolved (declarations, `let`s in any order, `def`s inlined at each
call), every expression gets a dtype and a symbolic shape from the rule of its
function in lossdsl/functions.py, dimension symbols are unified across the file,
and `loss` must be a float scalar or a per-sample `[B]`. An error poisons the
expression it is in, so one mistake is reported once and the rest of the file
is still checked. The differentiability analysis and the domain warnings run
afterwards (lossdsl/analysis.py).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

from . import syntax as S
from .checked import CheckedModule, Declaration, Leaf, SizeConstraint
from .diagnostics import Collector
from .functions import (
    BINARY_OPERATORS,
    FUNCTIONS,
    REQUIRED,
    USER_FUNCTIONS,
    CallSite,
    Function,
    Param,
    StaticArg,
)
from .ir import Apply, Arg, Const, DimSize, Gather, Index, Node, SliceItem
from .source import Span
from .types import (
    BOOL,
    FLOAT,
    INT,
    NEW_AXIS,
    ONE,
    Dim,
    DType,
    RecordType,
    Shape,
    TensorType,
    ValueType,
    broadcast_suggestion,
    shape_str,
)

RESERVED = ("reduction", "sample_weight")
# What users of other libraries write for our keywords.
_KEYWORD_ALIASES = {"dim": "axis", "axes": "axis", "keepdim": "keepdims", "keep_dims": "keepdims",
                    "correction": "ddof", "unbiased": "ddof", "ord": "p", "num_classes": "C", "depth": "C",
                    "num_segments": "G", "min": "lo", "max": "hi", "a_min": "lo", "a_max": "hi"}


class _Poison(Node):
    """The value of an expression that already produced an error; silences what uses it."""


POISON = _Poison(type=None, span=None)  # type: ignore[arg-type]


class _RuleFailed(Exception):
    pass


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


@dataclass
class _Scope:
    """Local names of an inlined `def` and the chain of calls that led here."""

    locals: dict[str, Any] = field(default_factory=dict)
    calls: tuple[tuple[str, Span], ...] = ()


class Dims:
    """Sizes of dimension symbols fixed by the spec itself (literal sizes met by a symbol)."""

    def __init__(self) -> None:
        self.bound: dict[str, tuple[int, str]] = {}

    def resolve(self, d: Dim) -> Dim:
        if d.sym is not None and d.sym in self.bound:
            return Dim.lit(self.bound[d.sym][0] + d.offset)
        return d

    def bind(self, sym: str, value: int, where: str) -> None:
        self.bound.setdefault(sym, (value, where))


class Checker:
    """Implements `functions.RuleContext` for the rules of the function table."""

    def __init__(self, module: S.Module, *, broken: dict[str, str] | None = None):
        self.module = module
        self.src = module.source
        self.diags = Collector()
        self.dims = Dims()
        # Names (and kinds) of statements that failed to parse: their uses stay quiet.
        self.broken = set(broken or {})
        self.broken_kinds = set((broken or {}).values())
        self.decls: dict[str, Declaration] = {}
        self.decl_order: list[Declaration] = []
        self.lets: dict[str, S.Let] = {}
        self.defs: dict[str, S.Def] = {}
        self.let_values: dict[str, Any] = {}
        self.let_stack: list[str] = []
        self.recursive_defs: set[str] = set()
        self.args: dict[tuple[str, tuple[str, ...]], Arg] = {}
        self.constraints: list[SizeConstraint] = []
        self.known_symbols: set[str] = set()
        self._scope = _Scope()

    # ---- RuleContext ------------------------------------------------------------------

    def fail(self, message: str, span: Span, code: str, help: str | None = None,
             notes: Sequence[str] = ()) -> NoReturn:
        self.error(message, span, code, help, notes)
        raise _RuleFailed()

    def error(self, message: str, span: Span | None, code: str, help: str | None = None,
              notes: Sequence[str] = ()) -> None:
        notes = list(notes) + [f"in `{name}`, called at line {sp.line}, column {sp.col}"
                               for name, sp in reversed(self._scope.calls)]
        self.diags.error(message, span, code, help, notes)

    def need_dtype(self, site: CallSite, i: int, allowed: set[DType], what: str = "") -> DType:
        dt = site.t(i).dtype
        if dt in allowed:
            return dt
        span = site.arg_spans[i]
        name = site.fn.symbol or site.fn.name
        text = site.arg_texts[i]
        if dt is BOOL and BOOL not in allowed:
            self.fail(what or f"`{name}` needs numbers, found `bool`", span, "E302",
                      help=f"convert with `float({text})`, or select with `where({text}, a, b)`")
        if allowed == {BOOL}:
            self.fail(what + f": expected `bool`, found `{dt}`" if what else f"expected `bool`, found `{dt}`",
                      span, "E303", help=f"compare to get a bool, e.g. `{text} > 0`")
        if allowed == {INT}:
            self.fail((what + ": " if what else "") + f"expected `int`, found `{dt}`", span, "E304",
                      help=f"class indices come from `argmax(...)` or an `int` declaration; "
                           f"`int({text})` truncates")
        self.fail(f"expected {' or '.join(f'`{a}`' for a in sorted(map(str, allowed)))}, found `{dt}`", span, "E301")

    def broadcast(self, site: CallSite, indices: Sequence[int] | None = None,
                  shapes: Sequence[Shape] | None = None) -> Shape:
        types: list[TensorType | None]
        if shapes is None:
            idx = list(indices) if indices is not None else list(range(len(site.args)))
            shapes = [site.args[i].type.shape for i in idx]
            texts = [site.arg_texts[i] for i in idx]
            types = [site.args[i].type for i in idx]
        else:
            texts = ["a", "b"]
            types = [None, None]
        if self.module.quick:
            self._quick_same_shapes(site, shapes, types)
        rank = max((len(s) for s in shapes), default=0)
        out: list[Dim] = []
        for k in range(1, rank + 1):
            acc: Dim | None = None
            acc_from = -1
            for j, shape in enumerate(shapes):
                if len(shape) < k:
                    continue
                d = shape[-k]
                if acc is None:
                    acc, acc_from = d, j
                    continue
                merged = self._unify(acc, d, broadcast=True, span=site.span, where=self._where(site.span))
                if merged is None:
                    self._broadcast_error(site, shapes, types, texts, acc_from, j, acc, d)
                if merged == ONE and (acc.inserted or d.inserted):
                    merged = NEW_AXIS  # one explicit `None` is enough to say how the axes line up
                if merged != acc:
                    acc_from = j
                acc = merged
            out.append(acc)  # type: ignore[arg-type]
        result = tuple(reversed(out))
        self._no_self_outer_product(site, shapes, types, texts, result)
        return result

    def _quick_same_shapes(self, site: CallSite, shapes, types) -> None:
        """The quick form declares nothing, so it cannot know which axes are meant to line up:
        operands of different shapes are refused, except a scalar (docs/language.md §1). A size-1
        axis the expression inserts itself with `None` says how the axes line up, and is allowed."""
        tensors = [(i, s) for i, s in enumerate(shapes) if len(s) > 0]
        for (i, a), (j, b) in itertools.pairwise(tensors):
            if len(a) == len(b) and all(self.dims.resolve(x) == self.dims.resolve(y) or x.inserted or y.inserted
                                        for x, y in zip(a, b)):
                continue
            ta = str(types[i]) if types[i] is not None else shape_str(a)
            tb = str(types[j]) if types[j] is not None else shape_str(b)
            notes = ["without declarations the checker cannot tell which axes are meant to line up"]
            short, long_ = (a, b) if len(a) < len(b) else (b, a)
            if len(long_) == len(short) + 1 and long_[-1] == ONE:
                notes.append(f"`{shape_str(long_)}` against `{shape_str(short)}` would make a "
                             f"`{shape_str(long_[:-1] + short[-1:])}` outer product")
            self.fail(f"the quick form does not broadcast `{ta}` with `{tb}`", site.span, "E401", notes=notes,
                      help="declare the tensors in a spec, so that each axis has a name (`pred yhat: float[B]`), "
                           "or give the operands equal shapes in the expression (`yhat[:, 0]`, `w[:, None]`)")

    def _no_self_outer_product(self, site: CallSite, shapes, types, texts, result: Shape) -> None:
        """A declared size-1 axis stretched against a dimension the result already has on another
        axis makes an outer product of that dimension with itself: `float[B, 1]` with `float[B]`
        is `[B, B]`, the Dense(1)-output bug. Allowed when each stretched 1 was inserted with
        `None` (`x[:, None] - x[None, :]`), or when one operand already has both axes."""
        rank = len(result)
        resolved = [self.dims.resolve(d) for d in result]
        for p in range(rank):
            for q in range(rank):
                a = resolved[p]
                if p == q or a.sym is None or a != resolved[q]:
                    continue
                stretched = []  # operands whose declared 1 became the dim at axis p
                both = False
                for i, s in enumerate(shapes):
                    lp, lq = len(s) - rank + p, len(s) - rank + q  # the axes of s aligned with p and q
                    dp = s[lp] if lp >= 0 else None
                    dq = s[lq] if lq >= 0 else None
                    if dp is not None and dq is not None and dp != ONE and dq != ONE:
                        both = True
                    if dp == ONE and not dp.inserted:
                        stretched.append(i)
                if both or not stretched:
                    continue
                i = stretched[0]
                t = str(types[i]) if types[i] is not None else shape_str(shapes[i])
                others = [str(types[j]) if types[j] is not None else shape_str(shapes[j])
                          for j in range(len(shapes)) if j != i and shapes[j]]
                text = texts[i] if texts[i] and len(texts[i]) <= 24 else "x"
                lone = [k for k, d in enumerate(shapes[i]) if d == ONE and not d.inserted]
                fix = (f"`{text}[{', '.join([':'] * lone[0] + ['0'])}]`" if len(lone) == 1
                       else f"`{text}` reshaped so its axes line up")
                self.fail(f"broadcasting `{t}` with `{' with '.join(others) or 'itself'}` makes a "
                          f"`{shape_str(result)}` outer product of `{a}` with itself", site.span, "E403",
                          notes=[f"the size-1 axis of `{t}` is stretched to `{a}`, which the result already "
                                 "has on another axis; a `[B, 1]` model output against `[B]` labels is the "
                                 "usual cause"],
                          help=f"drop the size-1 axis: {fix}; for an outer product, write the axes with "
                               "`None`: `x[:, None] - x[None, :]`")

    def _broadcast_error(self, site, shapes, types, texts, i, j, a: Dim, b: Dim):
        ta = str(types[i]) if types[i] is not None else "[" + ", ".join(map(str, shapes[i])) + "]"
        tb = str(types[j]) if types[j] is not None else "[" + ", ".join(map(str, shapes[j])) + "]"
        ra, rb = self.dims.resolve(a), self.dims.resolve(b)
        help = None
        notes = []
        if ra.is_literal and rb.is_literal and (a.sym or b.sym):
            sym = a if a.sym else b
            other = b if a.sym else a
            value, where = self.dims.bound[sym.sym]  # type: ignore[index]
            self.fail(f"`{sym.sym}` is {value} {where} but {self.dims.resolve(other)} here", site.span, "E402",
                      notes=[f"in the shapes `{ta}` and `{tb}`"])
        if a.sym and b.sym and a.sym == b.sym:
            notes.append(f"`{a}` and `{b}` differ by {abs(a.offset - b.offset)}")
            help = "slice both operands the same way, e.g. `x[1:] - y[1:]`"
        else:
            notes.append(f"aligned from the right, `{a}` meets `{b}`"
                         + ("; different dimensions never broadcast, even when their sizes agree at run time"
                            if (a.sym or b.sym) else ""))
            small, big, text = (shapes[i], shapes[j], texts[i]) if len(shapes[i]) < len(shapes[j]) else (
                shapes[j], shapes[i], texts[j])
            if len(text) > 24 or not text:
                text = "x"
            suggestion = broadcast_suggestion(small, big, text)
            if suggestion:
                help = f"to line up the leading axes, insert an axis: `{suggestion}`"
        self.fail(f"cannot broadcast `{ta}` with `{tb}`", site.span, "E401", help=help, notes=notes)

    def axes(self, site: CallSite, t: TensorType, *, single: bool = False,
             param: str = "axis") -> tuple[int, ...] | None:
        spec = site.static[param].value
        if spec is None:
            return None
        items = spec if isinstance(spec, list) else [spec]
        out: list[int] = []
        for value, span in items:
            span = span or site.span
            if isinstance(value, int):
                if not -t.rank <= value < t.rank:
                    self.fail(f"axis {value} is out of range for `{t}` (rank {t.rank})", span, "E405")
                k = value % t.rank
            else:
                # The axis named `C` is also the one a slice left as `C - 1`.
                hits = [i for i, d in enumerate(t.shape) if d.sym == value]
                if not hits:
                    axes_txt = ", ".join(f"`{d}`" for d in t.shape) or "none"
                    self.fail(f"`{value}` is not an axis of `{t}`", span, "E405", help=f"its axes are {axes_txt}")
                if len(hits) > 1:
                    self.fail(f"`{value}` names {len(hits)} axes of `{t}`", span, "E405",
                              help="say which one with an integer axis, e.g. `axis=-1`")
                k = hits[0]
            if k in out:
                self.fail(f"axis {value} is given twice", span, "E405")
            out.append(k)
        if single and len(out) != 1:
            self.fail(f"`{site.fn.name}` takes a single axis", site.static[param].span or site.span, "E405")
        return tuple(sorted(out))

    def same_shape(self, a: Shape, b: Shape, span: Span, what: str) -> None:
        sa = "[" + ", ".join(map(str, a)) + "]"
        sb = "[" + ", ".join(map(str, b)) + "]"
        if len(a) != len(b):
            self.fail(f"{what} must have shape `{sa}`, found `{sb}`", span, "E404")
        for x, y in zip(a, b):
            if self._unify(x, y, broadcast=False, span=span, where=what) is None:
                rx, ry = self.dims.resolve(x), self.dims.resolve(y)
                if rx.is_literal and ry.is_literal and (x.sym or y.sym):
                    sym = x if x.sym else y
                    value, where = self.dims.bound[sym.sym]  # type: ignore[index]
                    other = y if x.sym else x
                    self.fail(f"`{sym.sym}` is {value} {where} but {self.dims.resolve(other)} in {what}", span,
                              "E402")
                self.fail(f"{what} must have shape `{sa}`, found `{sb}`", span, "E401",
                          notes=[f"`{x}` meets `{y}`; different dimensions never unify"])

    def _where(self, span: Span) -> str:
        text = self._text(span)
        return f"`{text}`" if len(text) <= 40 else "the expression"

    def same_dim(self, a: Dim, b: Dim, span: Span, message: str, code: str, help: str | None = None) -> None:
        if self._unify(a, b, broadcast=False, span=span, where=self._where(span)) is None:
            self.fail(message.format(a=a, b=b), span, code, help=help)

    def const_value(self, node: Node) -> Any:
        return node.value if isinstance(node, Const) else None

    # ---- dimensions -------------------------------------------------------------------

    def _unify(self, a: Dim, b: Dim, *, broadcast: bool, span: Span, where: str) -> Dim | None:
        ra, rb = self.dims.resolve(a), self.dims.resolve(b)
        if ra == rb:
            return a if a.sym else b
        if broadcast and ra == ONE:
            return b
        if broadcast and rb == ONE:
            return a
        if ra.is_literal and rb.is_literal:
            return None
        # A symbol meeting a literal other than 1 is bound to it (docs/language.md §2).
        for sym_dim, lit in ((ra, rb), (rb, ra)):
            if sym_dim.sym is not None and sym_dim.sym.isidentifier() and lit.is_literal:
                size = lit.value - sym_dim.offset
                if size < 0:
                    return None
                self.dims.bind(sym_dim.sym, size, f"from {where} (line {span.line})")
                return a if a.sym else b
        return None

    # ---- declarations -----------------------------------------------------------------

    def _declare(self) -> None:
        seen: dict[str, Span] = {}
        for stmt in self.module.statements:
            if isinstance(stmt, S.LossStmt):
                continue
            name = stmt.name
            span = stmt.name_span
            if name in RESERVED:
                self.broken.add(name)  # its uses stay quiet
                self.error(f"`{name}` is reserved for the Python API and cannot be declared", span, "E207",
                           help=f"`{name}=` is passed when the compiled loss is called (docs/language.md §6); "
                                "choose another name")
                continue
            if name in seen:
                self.error(f"`{name}` is defined twice", span, "E203",
                           notes=[f"first defined at line {seen[name].line}, column {seen[name].col}"],
                           help="a name is defined once; rename one of them")
                continue
            seen[name] = span
            if isinstance(stmt, S.Decl):
                decl = self._declaration(stmt)
                if decl is not None:
                    self.decls[name] = decl
                    self.decl_order.append(decl)
                else:
                    self.broken.add(name)
            elif isinstance(stmt, S.Let):
                self.lets[name] = stmt
            elif isinstance(stmt, S.Def):
                if name in USER_FUNCTIONS:
                    self.error(f"`{name}` is a built-in function and cannot be redefined", span, "E211",
                               help="choose another name for your function")
                    continue
                self.defs[name] = stmt

    def _declaration(self, d: S.Decl) -> Declaration | None:
        vtype = self._value_type(d.type)
        if vtype is None:
            return None
        # A declaration with an error is still declared, so that its uses do not cascade.
        decl = Declaration(d.kind, d.name, vtype, d.span, d.type.span, d.name_span)
        if d.kind == "pred" and not (isinstance(vtype, TensorType) and vtype.dtype is FLOAT):
            self.error(f"a pred must be a float tensor, found `{vtype}`", d.type.span, "E306",
                       help="declare one `pred` per model output, e.g. `pred yhat: float[B, C]`")
        if d.kind == "param" and not isinstance(vtype, TensorType):
            self.error(f"a param must be a tensor, found the record `{vtype}`", d.type.span, "E309",
                       help="declare one param per value")
        if d.default is not None:
            if d.kind != "param":
                self.error(f"only a param may have a default; `{d.name}` is a {d.kind}", d.default.span, "E305",
                           help="a default belongs to a hyperparameter: `param alpha: float = 0.5`")
            elif isinstance(vtype, TensorType) and self._check_default(d, vtype):
                decl.default, decl.has_default = d.default.value, True
        for path, texpr in self._leaves(d.type):
            t = self._tensor_type(texpr)
            decl.leaves.append(Leaf(decl, path, t, texpr.span, tuple(dim.span for dim in texpr.dims)))
            decl.leaf_spans[path] = texpr.span
        return decl

    def _leaves(self, texpr: S.TypeExpr, path=()):
        if isinstance(texpr, S.TensorTypeExpr):
            yield path, texpr
        else:
            for f in texpr.fields:
                yield from self._leaves(f.type, path + (f.name,))

    def _tensor_type(self, texpr: S.TensorTypeExpr) -> TensorType:
        dims = []
        for d in texpr.dims:
            if isinstance(d, S.DimSymbol):
                dims.append(Dim(d.name))
            else:
                dims.append(Dim.lit(d.value))
        return TensorType(DType(texpr.dtype), tuple(dims))

    def _value_type(self, texpr: S.TypeExpr) -> ValueType | None:
        if isinstance(texpr, S.TensorTypeExpr):
            for d in texpr.dims:
                if isinstance(d, S.DimSymbol):
                    self.known_symbols.add(d.name)
            return self._tensor_type(texpr)
        fields = []
        for f in texpr.fields:
            sub = self._value_type(f.type)
            if sub is None:
                return None
            fields.append((f.name, sub))
        return RecordType(tuple(fields))

    def _check_default(self, d: S.Decl, t: TensorType) -> bool:
        lit = d.default
        assert lit is not None

        def scalar_ok(v) -> bool:
            if t.dtype is BOOL:
                return isinstance(v, bool)
            if t.dtype is INT:
                return isinstance(v, int) and not isinstance(v, bool)
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        def shape_of(v):
            if not isinstance(v, list):
                return ()
            if not v:
                return (0,)
            subs = [shape_of(x) for x in v]
            if any(s != subs[0] for s in subs) or subs[0] is None:
                return None
            return (len(v),) + subs[0]

        def flat(v):
            if isinstance(v, list):
                for x in v:
                    yield from flat(x)
            else:
                yield v

        want = {BOOL: "`true` or `false`", INT: "an integer", FLOAT: "a number"}[t.dtype]
        bad = next((v for v in flat(lit.value) if not scalar_ok(v)), None)
        if bad is not None:
            shown = "true" if bad is True else "false" if bad is False else repr(bad)
            self.error(f"the default of `{d.name}: {t}` must be {want}, found `{shown}`", lit.span, "E305")
            return False
        shape = shape_of(lit.value)
        if shape is None:
            self.error(f"the default of `{d.name}` is a ragged list", lit.span, "E305",
                       help="every row of a list default must have the same length")
            return False
        if len(shape) != t.rank:
            what = "a number" if not shape else f"a list of shape {list(shape)}"
            self.error(f"the default of `{d.name}: {t}` must have rank {t.rank}, found {what}", lit.span, "E305")
            return False
        for dim, n in zip(t.shape, shape):
            if dim.is_literal and dim.value != n:
                self.error(f"the default of `{d.name}: {t}` has {n} entries where `{dim}` are declared", lit.span,
                           "E305")
                return False
            if dim.is_symbol:
                prev = self.dims.bound.get(dim.sym)  # type: ignore[arg-type]
                if prev is not None and prev[0] != n:
                    self.error(f"`{dim.sym}` is {prev[0]} {prev[1]} but {n} from the default of `{d.name}`",
                               lit.span, "E402")
                    return False
                self.dims.bind(dim.sym, n, f"from the default of `{d.name}` (line {lit.span.line})")  # type: ignore
        return True

    # ---- recursion among defs ------------------------------------------------------------

    def _find_recursive_defs(self) -> None:
        calls: dict[str, set[str]] = {}
        for name, d in self.defs.items():
            params = set(d.params)
            calls[name] = {e.func for e in S.walk(d.body) if isinstance(e, S.Call) and e.func in self.defs
                           and e.func not in params}
        for start in self.defs:
            path = self._cycle_from(start, calls)
            if path and start not in self.recursive_defs:
                self.recursive_defs.update(path[:-1])
                chain = " -> ".join(f"`{p}`" for p in path)
                self.error(f"`{start}` calls itself ({chain}); a `def` is inlined and cannot recurse",
                           self.defs[start].name_span, "E206",
                           help="write the repetition with a reduction or `cumsum` instead")

    @staticmethod
    def _cycle_from(start: str, calls: dict[str, set[str]]) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(calls.get(node, ())):
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    # ---- expressions --------------------------------------------------------------------

    def expr(self, e: S.Expr) -> Any:
        """Node, RecordRef, or POISON."""
        method = getattr(self, "_expr_" + type(e).__name__)
        return method(e)

    def value(self, e: S.Expr) -> Node:
        """An expression that must be a tensor value (not a record)."""
        v = self.expr(e)
        if isinstance(v, RecordRef):
            fields = ", ".join(f"`{n}`" for n in v.type.names)
            self.error(f"`{v.label}` is a record, not a value", e.span, "E307",
                       help=f"read one of its fields: {fields}" if fields else None)
            return POISON
        return v

    def _expr_Number(self, e: S.Number) -> Node:
        return Const(TensorType(INT if e.is_int else FLOAT), e.span, e.value)

    def _expr_Bool(self, e: S.Bool) -> Node:
        return Const(TensorType(BOOL), e.span, e.value)

    def _expr_Tuple(self, e: S.Tuple) -> Node:
        self.error("a tuple is only allowed as `axis=`", e.span, "E308",
                   help="remove the comma, or pass several axes as `axis=(B, C)`")
        return POISON

    def _expr_Name(self, e: S.Name) -> Any:
        name = e.id
        if name in self._scope.locals:
            return self._scope.locals[name]
        if name in self.decls:
            decl = self.decls[name]
            if isinstance(decl.type, RecordType):
                return RecordRef(decl, (), decl.type, e.span)
            return self._arg(decl, (), decl.type, e.span)
        if name in self.lets:
            return self._let_value(name, e.span)
        if name in self.broken:
            return POISON
        if name in self.defs:
            self.error(f"`{name}` is a function; call it as `{name}(...)`", e.span, "E208")
            return POISON
        if name in self.known_symbols:
            return DimSize(TensorType(INT), e.span, Dim(name))
        if name in USER_FUNCTIONS:
            self.error(f"`{name}` is a function; call it as `{name}(...)`", e.span, "E208")
            return POISON
        if name == "loss":
            self.error("`loss` is the result and cannot be used in an expression", e.span, "E201",
                       help="name the value with `let` and use that name")
            return POISON
        candidates = list(self._scope.locals) + list(self.decls) + list(self.lets) + sorted(self.known_symbols)
        self.error(f"unknown name `{name}`", e.span, "E201", help=self._did_you_mean(name, candidates, "declare it"))
        return POISON

    def _did_you_mean(self, name: str, candidates: Sequence[str], otherwise: str | None = None) -> str | None:
        match = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=1, cutoff=0.6)
        if match:
            return f"did you mean `{match[0]}`?"
        if otherwise == "declare it":
            return f"declare it, e.g. `input {name}: float[B]`, or define it with `let {name} = ...`"
        return otherwise

    def _arg(self, decl: Declaration, path: tuple[str, ...], t: TensorType, span: Span) -> Arg:
        key = (decl.name, path)
        node = self.args.get(key)
        if node is None:
            node = Arg(t, decl.leaf_spans.get(path, decl.type_span), decl.kind, decl.name, path)
            self.args[key] = node
        return node

    def _let_value(self, name: str, span: Span) -> Any:
        if name in self.let_values:
            return self.let_values[name]
        if name in self.let_stack:
            cycle = self.let_stack[self.let_stack.index(name):] + [name]
            self.error(f"`{name}` is defined in terms of itself ({' -> '.join(f'`{c}`' for c in cycle)})",
                       self.lets[name].name_span, "E206", help="a `let` cannot refer to itself, directly or not")
            for c in cycle:
                self.let_values[c] = POISON
            return POISON
        self.let_stack.append(name)
        saved, self._scope = self._scope, _Scope()
        try:
            v = self.expr(self.lets[name].value)
        finally:
            self._scope = saved
            self.let_stack.pop()
        self.let_values.setdefault(name, v)
        return self.let_values[name]

    def _expr_FieldAccess(self, e: S.FieldAccess) -> Any:
        base = self.expr(e.value)
        if base is POISON:
            return POISON
        if not isinstance(base, RecordRef):
            self.error(f"`.{e.field}` on a value of type `{base.type}`, which is not a record", e.field_span, "E210",
                       help="only inputs declared as records (`input x: {w: float[B]}`) have fields")
            return POISON
        sub = base.type.field(e.field)
        if sub is None:
            self.error(f"`{base.label}` has no field `{e.field}`", e.field_span, "E210",
                       help=self._did_you_mean(e.field, base.type.names,
                                               f"its fields are {', '.join(f'`{n}`' for n in base.type.names)}"))
            return POISON
        path = base.path + (e.field,)
        if isinstance(sub, RecordType):
            return RecordRef(base.decl, path, sub, e.span)
        return self._arg(base.decl, path, sub, e.span)

    def _expr_UnaryOp(self, e: S.UnaryOp) -> Node:
        if e.op == "-" and isinstance(e.operand, S.Number):
            return Const(TensorType(INT if e.operand.is_int else FLOAT), e.span, -e.operand.value)
        fn = FUNCTIONS["neg" if e.op == "-" else "not"]
        return self._apply(fn, [e.operand], [], e.span)

    def _expr_BinOp(self, e: S.BinOp) -> Node:
        return self._apply(FUNCTIONS[BINARY_OPERATORS[e.op]], [e.left, e.right], [], e.span)

    def _expr_Call(self, e: S.Call) -> Any:
        name = e.func
        if name in self.defs and name not in self._scope.locals:
            return self._inline(self.defs[name], e)
        if name in USER_FUNCTIONS:
            return self._apply(USER_FUNCTIONS[name], list(e.args), list(e.kwargs), e.span)
        if name in self.decls or name in self.lets or name in self._scope.locals:
            self.error(f"`{name}` is a value, not a function", e.func_span, "E208")
            return POISON
        if name in self.broken:
            return POISON
        self.error(f"unknown function `{name}`", e.func_span, "E202",
                   help=self._did_you_mean(name, list(USER_FUNCTIONS) + list(self.defs),
                                           "see the function list in docs/language.md"))
        return POISON

    def _inline(self, d: S.Def, e: S.Call) -> Any:
        if d.name in self.recursive_defs:
            return POISON
        if len(self._scope.calls) > 64:  # defensive: recursion is rejected above
            return POISON
        n = len(d.params)
        given = len(e.args) + len(e.kwargs)
        bound: dict[str, S.Expr] = dict(zip(d.params, e.args))
        ok = True
        if len(e.args) > n:
            self.error(f"`{d.name}` takes {n} argument{'s' if n != 1 else ''} ({', '.join(d.params)}), found {given}",
                       e.span, "E501")
            ok = False
        for kw in e.kwargs:
            if kw.name not in d.params:
                self.error(f"`{d.name}` has no parameter `{kw.name}`", kw.span, "E502",
                           help=self._did_you_mean(kw.name, d.params, f"its parameters are {', '.join(d.params)}"))
                ok = False
            elif kw.name in bound:
                self.error(f"`{kw.name}` is given twice", kw.span, "E503")
                ok = False
            else:
                bound[kw.name] = kw.value
        missing = [p for p in d.params if p not in bound]
        if ok and missing:
            self.error(f"`{d.name}` takes {n} argument{'s' if n != 1 else ''} ({', '.join(d.params)}), found {given}",
                       e.span, "E501", help=f"missing: {', '.join(f'`{m}`' for m in missing)}")
            ok = False
        values = {p: self.expr(x) for p, x in bound.items()}
        if not ok or any(v is POISON for v in values.values()):
            return POISON
        saved = self._scope
        self._scope = _Scope(values, saved.calls + ((d.name, e.span),))
        try:
            return self.expr(d.body)
        finally:
            self._scope = saved

    # ---- function application ------------------------------------------------------------

    def _apply(self, fn: Function, args: list[S.Expr], kwargs: list[S.Keyword], span: Span) -> Node:
        params = fn.params
        bound: dict[str, tuple[S.Expr, Span]] = {}
        label = fn.symbol or fn.name
        arity_ok = True
        p: Param | None
        if len(args) > len(params):
            self.error(self._arity_message(fn, len(args) + len(kwargs)), span, "E501")
            arity_ok = False
        for p, a in zip(params, args):
            bound[p.name] = (a, a.span)
        for kw in kwargs:
            p = next((p for p in params if p.name == kw.name), None)
            if p is None:
                help = None
                if kw.name in self.decls or kw.name in self.lets or kw.name in self._scope.locals:
                    help = f"to compare, write `{kw.name} == ...`"
                else:
                    names = [q.name for q in params]
                    alias = _KEYWORD_ALIASES.get(kw.name)
                    if alias in names:
                        help = f"the language calls it `{alias}`"
                    else:
                        help = self._did_you_mean(kw.name, names, f"`{label}` takes {', '.join(names)}")
                self.error(f"`{label}` has no keyword argument `{kw.name}`", kw.span, "E502", help=help)
                arity_ok = False
            elif p.name in bound:
                self.error(f"`{kw.name}` is given twice", kw.span, "E503")
                arity_ok = False
            else:
                bound[p.name] = (kw.value, kw.span)
        missing = [p.name for p in params if p.default is REQUIRED and p.name not in bound]
        if arity_ok and missing:
            self.error(self._arity_message(fn, len(args) + len(kwargs)), span, "E501",
                       help=f"missing: {', '.join(f'`{m}`' for m in missing)}")
            arity_ok = False

        nodes: list[Node] = []
        spans: list[Span] = []
        texts: list[str] = []
        static: dict[str, StaticArg] = {}
        poisoned = not arity_ok
        for p in params:
            if p.static:
                if p.name in bound:
                    value = self._static(fn, p.name, p.kind, bound[p.name][0])
                    if value is POISON:
                        poisoned = True
                    static[p.name] = StaticArg(value, bound[p.name][0].span)
                else:
                    d = p.default
                    if p.kind == "axis" and d is not None:
                        d = [(d, None)]
                    static[p.name] = StaticArg(d, None)
            elif p.name in bound:
                expr = bound[p.name][0]
                node = self.value(expr)
                if node is POISON:
                    poisoned = True
                nodes.append(node)
                spans.append(expr.span)
                texts.append(self._text(expr.span))
        if poisoned:
            return POISON
        site = CallSite(fn, nodes, spans, texts, static, span)
        try:
            t, attrs = fn.rule(self, site)
        except _RuleFailed:
            return POISON
        return Apply(t, span, fn.name, tuple(nodes), tuple(sorted(attrs.items())))

    @staticmethod
    def _arity_message(fn: Function, given: int) -> str:
        required = [p.name for p in fn.params if p.default is REQUIRED]
        if fn.symbol:
            return f"`{fn.symbol}` takes {len(required)} operands"
        total = len(fn.params)
        if len(required) == total:
            count = f"{total} argument{'s' if total != 1 else ''}"
        else:
            count = f"{len(required)} to {total} arguments"
        return f"`{fn.name}` takes {count} ({fn.signature()[len(fn.name) + 1:-1]}), found {given}"

    def _text(self, span: Span) -> str:
        text = span.text
        return "x" if text is None else text

    def _static(self, fn: Function, pname: str, kind: str, e: S.Expr) -> Any:
        label = fn.name
        v: int | float | None
        if kind == "axis":
            items = e.items if isinstance(e, S.Tuple) else (e,)
            out: list[tuple[int | str, Span]] = []
            for it in items:
                v = _int_literal(it)
                if v is not None:
                    out.append((v, it.span))
                elif isinstance(it, S.Name) and it.id not in self.decls and it.id not in self.lets and \
                        it.id not in self._scope.locals:
                    out.append((it.id, it.span))
                else:
                    self.error(f"`{pname}` of `{label}` must be an integer, a dimension name or a tuple of them",
                               it.span, "E504", help="for example `axis=-1`, `axis=C` or `axis=(H, W)`")
                    return POISON
            return out
        if kind == "bool":
            if isinstance(e, S.Bool):
                return e.value
            self.error(f"`{pname}` of `{label}` must be `true` or `false`", e.span, "E504")
            return POISON
        if kind == "int":
            v = _int_literal(e)
            if v is None:
                self.error(f"`{pname}` of `{label}` must be an integer literal", e.span, "E504")
                return POISON
            return v
        if kind == "number":
            v = _number_literal(e)
            if v is None:
                self.error(f"`{pname}` of `{label}` must be a number literal", e.span, "E504")
                return POISON
            return v
        if kind == "dim":
            v = _int_literal(e)
            if v is not None:
                if v < 1:
                    self.error(f"`{pname}` of `{label}` must be a positive size, found {v}", e.span, "E504")
                    return POISON
                return Dim.lit(v)
            if isinstance(e, S.Name):
                if e.id not in self.known_symbols:
                    self.error(f"dimension `{e.id}` is not declared anywhere, so nothing gives its size", e.span,
                               "E809", help=f"use it in a declaration (e.g. `param group_w: float[{e.id}]`), "
                                            "or write the size as an integer")
                    return POISON
                return Dim(e.id)
            self.error(f"`{pname}` of `{label}` must be a dimension name or an integer", e.span, "E504",
                       help=f"for example `{label}(..., C)`")
            return POISON
        raise AssertionError(kind)

    # ---- indexing ---------------------------------------------------------------------------

    def _expr_Index(self, e: S.Index) -> Node:
        x = self.value(e.value)
        tensor_items: list[Node | None] = []
        for it in e.items:
            if isinstance(it, (S.Slice, S.EllipsisIndex, S.NewAxis)) or _int_literal(it) is not None:
                tensor_items.append(None)
            else:
                tensor_items.append(self.value(it))
        if x is POISON or any(t is POISON for t in tensor_items):
            return POISON
        if any(t is not None for t in tensor_items):
            return self._gather(x, e, tensor_items)
        return self._basic_index(x, e)

    def _gather(self, x: Node, e: S.Index, tensor_items: list) -> Node:
        indices: list[Node] = []
        for it, node in zip(e.items, tensor_items):
            if isinstance(it, (S.Slice, S.EllipsisIndex, S.NewAxis)):
                self.error("an int-tensor index cannot be mixed with slices, `...` or `None`", it.span, "E409",
                           help="index every leading axis with int tensors or integers, or gather first and "
                                "slice the result")
                return POISON
            if node is None:
                node = Const(TensorType(INT), it.span, cast(int, _int_literal(it)))  # an int literal: see _expr_Index
            if node.type.dtype is BOOL:
                self.error("a bool mask cannot be an index: the result's shape would depend on the data", it.span,
                           "E408", help="keep the shape and zero the rest: `where(mask, x, 0.0)`")
                return POISON
            if node.type.dtype is not INT:
                self.error(f"indices must be int, found `{node.type}`", it.span, "E304",
                           help="class indices come from `argmax(...)` or an `int` declaration")
                return POISON
            indices.append(node)
        if len(indices) > x.type.rank:
            self.error(f"too many indices for `{x.type}`: {len(indices)} given", e.span, "E406")
            return POISON
        if not self._gather_indices_in_range(x, e, indices):
            return POISON
        site = CallSite(FUNCTIONS["add"], indices, [it.span for it in e.items], [self._text(it.span)
                                                                                 for it in e.items], {}, e.span)
        try:
            shape = self.broadcast(site) if len(indices) > 1 else indices[0].type.shape
        except _RuleFailed:
            return POISON
        out = TensorType(x.type.dtype, tuple(shape) + x.type.shape[len(indices):])
        return Gather(out, e.span, x, tuple(indices))

    def _gather_indices_in_range(self, x: Node, e: S.Index, indices: list[Node]) -> bool:
        """The indices whose value is known before any call: integer literals (as in basic
        indexing) and a dimension's own size (`x[B]` on an axis of size B, always past the end)."""
        for k, (it, node) in enumerate(zip(e.items, indices)):
            dim = self.dims.resolve(x.type.shape[k])
            if isinstance(node, Const):
                v = int(node.value)
                if dim.is_literal and not -dim.value <= v < dim.value:
                    self.error(f"index {v} is out of range for an axis of size {dim.value}", it.span, "E406")
                    return False
                if not dim.is_literal:
                    self.need_size(dim, v + 1 if v >= 0 else -v, it.span)
            elif isinstance(node, DimSize):
                size = self.dims.resolve(node.dim)
                past_end = (size.sym == dim.sym and size.offset >= dim.offset) if size.sym is not None \
                    else dim.is_literal and size.offset >= dim.value
                if past_end:
                    if len(indices) > 1 and all(isinstance(i, DimSize) for i in indices):
                        shape = "[" + ", ".join(self._text(i.span) for i in e.items) + "]"
                        hint = ("a shape written after an expression is read as an index; to note the shape, "
                                f"make it a comment: `# {shape}`")
                    else:
                        hint = "indices count from 0: the last element is at `-1`"
                    self.error(f"index `{self._text(it.span)}` is past the end of an axis of size {dim}", it.span,
                               "E406", help=hint)
                    return False
        return True

    def _basic_index(self, x: Node, e: S.Index) -> Node:
        n_ellipsis = sum(isinstance(it, S.EllipsisIndex) for it in e.items)
        if n_ellipsis > 1:
            self.error("an index may hold at most one `...`", e.span, "E406")
            return POISON
        consuming = sum(not isinstance(it, (S.EllipsisIndex, S.NewAxis)) for it in e.items)
        rank = x.type.rank
        if consuming > rank:
            self.error(f"too many indices for `{x.type}`: {consuming} given, it has {rank} "
                       f"ax{'is' if rank == 1 else 'es'}", e.span, "E406",
                       help="`None` adds an axis; an integer or a slice reads one" if rank else
                       "a scalar cannot be indexed")
            return POISON
        items: list = []
        for it in e.items:
            if isinstance(it, S.EllipsisIndex):
                items.extend([SliceItem(None, None, None)] * (rank - consuming))
            else:
                items.append(it)
        if not n_ellipsis:
            items.extend([SliceItem(None, None, None)] * (rank - consuming))
        shape: list[Dim] = []
        out_items: list = []
        axis = 0
        for it in items:
            if isinstance(it, S.NewAxis):
                shape.append(NEW_AXIS)
                out_items.append(None)
                continue
            dim = x.type.shape[axis]
            axis += 1
            if isinstance(it, SliceItem):
                shape.append(dim)
                out_items.append(it)
                continue
            if isinstance(it, S.Slice):
                bounds: list[int | None] = []
                for part in (it.start, it.stop, it.step):
                    if part is None:
                        bounds.append(None)
                        continue
                    v = _int_literal(part)
                    if v is None:
                        self.error("slice bounds must be integer literals", part.span, "E407",
                                   help="to select by a computed index, use an int tensor index or `pick`")
                        return POISON
                    bounds.append(v)
                start, stop, step = bounds
                if step is not None and step <= 0:
                    self.error(f"slice step must be positive, found {step}", it.span, "E406")
                    return POISON
                size = self._slice_size(dim, start, stop, step or 1, it.span)
                if size is None:
                    return POISON
                shape.append(size)
                out_items.append(SliceItem(start, stop, step))
                continue
            v = _int_literal(it)
            assert v is not None
            rd = self.dims.resolve(dim)
            if rd.is_literal:
                if not -rd.value <= v < rd.value:
                    self.error(f"index {v} is out of range for an axis of size {rd.value}", it.span, "E406")
                    return POISON
            else:
                self.need_size(dim, v + 1 if v >= 0 else -v, it.span)
            out_items.append(v)
        return Index(TensorType(x.type.dtype, tuple(shape)), e.span, x, tuple(out_items))

    def need_size(self, dim: Dim, minimum: int, span: Span, what: str = "this index") -> None:
        """Record that `dim` must be at least `minimum` (checked at each call); one per dim, the largest."""
        if minimum <= 0 or dim.is_literal:
            return
        for i, c in enumerate(self.constraints):
            if c.dim == dim:
                if minimum > c.minimum:
                    self.constraints[i] = SizeConstraint(dim, minimum, span, what)
                return
        self.constraints.append(SizeConstraint(dim, minimum, span, what))

    def _slice_size(self, dim: Dim, start: int | None, stop: int | None, step: int, span: Span) -> Dim | None:
        rd = self.dims.resolve(dim)
        if rd.is_literal:
            n = len(range(*slice(start, stop, step).indices(rd.value)))
            if n == 0:
                self.error(f"this slice of an axis of size {rd.value} is empty", span, "E406")
                return None
            return Dim.lit(n)
        a = start or 0
        if stop is None:
            if a >= 0:
                length = dim.plus(-a)
                self.need_size(dim, a, span)
            else:
                length = Dim.lit(-a)
                self.need_size(dim, -a, span)
        elif a >= 0 and stop >= 0:
            if stop <= a:
                self.error("this slice is empty", span, "E406")
                return None
            length = Dim.lit(stop - a)
            self.need_size(dim, stop, span)
        elif a >= 0 and stop < 0:
            length = dim.plus(stop - a)
            self.need_size(dim, a - stop, span)
        elif a < 0 and stop < 0:
            if stop <= a:
                self.error("this slice is empty", span, "E406")
                return None
            length = Dim.lit(stop - a)
            self.need_size(dim, -a, span)
        else:  # negative start, non-negative stop: the size depends on the axis length
            length = Dim(f"len({dim}[{a}:{stop}])")
        if step == 1:
            return length
        if length.is_literal:
            return Dim.lit(-(-length.value // step))
        return Dim(f"⌈({length})/{step}⌉")

    # ---- the whole module ------------------------------------------------------------------

    def run(self) -> CheckedModule:
        self._declare()
        self._find_recursive_defs()
        loss_stmts = [s for s in self.module.statements if isinstance(s, S.LossStmt)]
        preds = [d for d in self.decl_order if d.kind == "pred"]
        if not preds and "pred" not in self.broken_kinds:
            help = "declare the model output, e.g. `pred yhat: float[B]`"
            if self.module.quick:
                help = "a bare expression is the quick form, which only the Python API accepts; " + help
            self.error("no `pred` is declared; the loss must depend on a model output", self._file_start(),
                       "E209", help=help)
        if not loss_stmts:
            if "loss" not in self.broken_kinds:
                self.error("no `loss` statement", self._file_end(), "E204",
                           help="end the file with `loss = <expression>`")
        elif len(loss_stmts) > 1:
            for extra in loss_stmts[1:]:
                self.error("`loss` is defined twice", extra.span, "E205",
                           notes=[f"first defined at line {loss_stmts[0].span.line}"],
                           help="a file has exactly one `loss`; combine the terms with `+`")
        # Every let is checked, used or not, so each of its errors is reported.
        for name in self.lets:
            self._let_value(name, self.lets[name].name_span)
        self._check_unused_def_names()
        loss = self.expr(loss_stmts[0].value) if loss_stmts else POISON
        if isinstance(loss, RecordRef):
            self.error(f"`loss` must be a value, found the record `{loss.label}`", loss.span, "E307")
            loss = POISON
        if loss is not POISON:
            self._check_loss(loss, loss_stmts[0].value.span)
        for c in self.constraints:
            rd = self.dims.resolve(c.dim)
            if rd.is_literal and rd.value < c.minimum:
                self.error(f"this index needs an axis of at least {c.minimum}, but `{c.dim}` is {rd.value}",
                           c.span, "E406")
        self.diags.raise_if_errors()
        lets = {k: v for k, v in self.let_values.items() if isinstance(v, Node) and v is not POISON}
        return CheckedModule(self.src, self.decl_order, loss, lets, dict(self.args), dict(self.dims.bound),
                             [c for c in self.constraints if not self.dims.resolve(c.dim).is_literal], [],
                             quick=self.module.quick)

    def _check_unused_def_names(self) -> None:
        """Unknown names inside a `def` body are errors even if the def is never called."""
        for d in self.defs.values():
            known = set(d.params) | set(self.decls) | set(self.lets) | set(self.defs) | self.known_symbols | \
                self.broken
            for node in S.walk(d.body):
                if isinstance(node, S.Name) and node.id not in known and node.id not in USER_FUNCTIONS:
                    self.error(f"unknown name `{node.id}`", node.span, "E201",
                               help=self._did_you_mean(node.id, list(known), "declare it"),
                               notes=[f"in the body of `{d.name}`"])
                elif isinstance(node, S.Call) and node.func not in USER_FUNCTIONS and node.func not in self.defs \
                        and node.func not in self.broken and node.func not in d.params:
                    self.error(f"unknown function `{node.func}`", node.func_span, "E202",
                               help=self._did_you_mean(node.func, list(USER_FUNCTIONS) + list(self.defs)))

    def _check_loss(self, loss: Node, span: Span) -> None:
        t = loss.type
        if t.dtype is not FLOAT:
            self.error(f"`loss` must be float, found `{t}`", span, "E601", help="convert with `float(...)`")
            return
        if t.rank == 0:
            return
        leading = [d.type.shape[0] for d in self.decl_order if d.kind == "pred" and isinstance(d.type, TensorType)
                   and d.type.rank > 0]
        if t.rank == 1 and any(self.dims.resolve(t.shape[0]) == self.dims.resolve(b) for b in leading):
            return
        if t.rank == 1:
            lead = ", ".join(f"`{b}`" for b in dict.fromkeys(map(str, leading))) or "none"
            self.error(f"`loss` of shape `{t}` is per `{t.shape[0]}`, which is not the leading dimension of a pred",
                       span, "E602", notes=[f"leading dimensions of the preds: {lead}"],
                       help="reduce it: `mean(...)` or `sum(...)`")
            return
        rest = ", ".join(str(d) for d in t.shape[1:])
        axes = t.shape[1:]
        axis_txt = str(axes[0]) if len(axes) == 1 and axes[0].is_symbol else (
            "(" + ", ".join(str(i + 1) for i in range(len(axes))) + ")" if len(axes) > 1 else "-1")
        self.error(f"`loss` must be a scalar or per-sample `[{t.shape[0]}]`, found `{t}`", span, "E602",
                   help=f"reduce the other axes ({rest}): `mean(..., axis={axis_txt})`, or everything: `mean(...)`")

    def _file_start(self) -> Span:
        return Span(self.src, 1, 1, 1, max(2, len(self.src.line(1)) + 1))

    def _file_end(self) -> Span:
        lines = self.src.text.rstrip("\n").split("\n")
        n = len(lines)
        return Span(self.src, n, 1, n, max(2, len(lines[-1]) + 1))


def _int_literal(e: Any) -> int | None:
    if isinstance(e, S.Number) and e.is_int:
        return int(e.value)
    if isinstance(e, S.UnaryOp) and e.op == "-" and isinstance(e.operand, S.Number) and e.operand.is_int:
        return -int(e.operand.value)
    return None


def _number_literal(e: Any) -> float | int | None:
    if isinstance(e, S.Number):
        return e.value
    if isinstance(e, S.UnaryOp) and e.op == "-" and isinstance(e.operand, S.Number):
        return -e.operand.value
    return None


def check_module(module: S.Module, *, broken: dict[str, str] | None = None) -> CheckedModule:
    return Checker(module, broken=broken).run()
