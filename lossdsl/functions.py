"""The table of functions: one entry per function and operator of the language.

Each entry says how it is called (parameters, which are static), its dtype and
shape rule, which operands the gradient flows through, and its gradient
convention where the frameworks disagree (docs/language.md §4). The checker uses the
rules; `lossdsl.analysis` uses `grad_args`; each backend's printer maps every
entry's name to its framework's spelling (tests/test_function_table.py checks
that no backend misses one). Adding a function is one entry here, one spelling
per backend, and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .types import BOOL, FLOAT, INT, ONE, Dim, DType, Shape, TensorType, promote

if TYPE_CHECKING:
    from .ir import Node
    from .source import Span

REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    """`kind` is "tensor" (any expression) or a static kind, given as a literal:
    "axis" (int, dimension symbol, or a tuple of them), "bool", "int", "number",
    "dim" (a dimension symbol or an integer)."""

    name: str
    kind: str = "tensor"
    default: Any = REQUIRED

    @property
    def static(self) -> bool:
        return self.kind != "tensor"


@dataclass
class StaticArg:
    value: Any
    span: Span | None


@dataclass
class CallSite:
    """One call being checked: typed tensor operands and static arguments, with spans."""

    fn: Function
    args: list[Node]
    arg_spans: list[Span]
    arg_texts: list[str]
    static: dict[str, StaticArg]
    span: Span

    def t(self, i: int) -> TensorType:
        return self.args[i].type


class RuleContext(Protocol):
    """What a rule may ask of the checker (lossdsl/checker.py implements it)."""

    def fail(self, message: str, span: Span, code: str, help: str | None = None,
             notes: Sequence[str] = ()) -> Any: ...

    def need_dtype(self, site: CallSite, i: int, allowed: set[DType], what: str = "") -> DType: ...

    def broadcast(self, site: CallSite, indices: Sequence[int] | None = None,
                  shapes: Sequence[Shape] | None = None) -> Shape: ...

    def axes(self, site: CallSite, t: TensorType, *, single: bool = False,
             param: str = "axis") -> tuple[int, ...] | None: ...

    def same_shape(self, a: Shape, b: Shape, span: Span, what: str) -> None: ...

    def same_dim(self, a: Dim, b: Dim, span: Span, message: str, code: str, help: str | None = None) -> None: ...

    def const_value(self, node: Node) -> Any: ...

    def need_size(self, dim: Dim, minimum: int, span: Span, what: str) -> None: ...


Rule = Callable[[RuleContext, CallSite], "tuple[TensorType, dict[str, Any]]"]


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[Param, ...]
    group: str
    rule: Rule
    doc: str
    grad_args: tuple[int, ...] = (0,)  # operands (by position) the gradient flows through
    grad: str = "smooth"  # the convention where it is not plain calculus (docs/language.md §4)
    symbol: str | None = None  # operators: how they are written
    user: bool = True  # callable by name in the language
    aliases: tuple[str, ...] = field(default=())
    # A reduction with no value over an empty axis (no identity element): each axis it reduces
    # must have at least one element, checked at each call like an index's minimum size.
    needs_elements: bool = False

    @property
    def tensor_params(self) -> list[Param]:
        return [p for p in self.params if not p.static]

    def signature(self) -> str:
        if self.symbol:
            return self.symbol
        parts = []
        for p in self.params:
            if p.default is REQUIRED:
                parts.append(p.name)
            else:
                d = p.default
                d = "true" if d is True else "false" if d is False else d
                parts.append(f"{p.name}={d}")
        return f"{self.name}({', '.join(parts)})"


NUMERIC = {FLOAT, INT}
ANY = {FLOAT, INT, BOOL}

# ---- rules ---------------------------------------------------------------------------


def _same(ck: RuleContext, site: CallSite):
    dt = ck.need_dtype(site, 0, NUMERIC)
    return TensorType(dt, site.t(0).shape), {}


def _to_float(ck: RuleContext, site: CallSite):
    ck.need_dtype(site, 0, NUMERIC)
    return TensorType(FLOAT, site.t(0).shape), {}


def _arith(out: str) -> Rule:
    def rule(ck: RuleContext, site: CallSite):
        dts = [ck.need_dtype(site, i, NUMERIC) for i in range(len(site.args))]
        shape = ck.broadcast(site)
        dt = FLOAT if out == "float" else dts[0]
        for d in dts[1:]:
            dt = promote(dt, d)
        return TensorType(dt, shape), {}

    return rule


def _pow(ck: RuleContext, site: CallSite):
    a = ck.need_dtype(site, 0, NUMERIC)
    b = ck.need_dtype(site, 1, NUMERIC)
    shape = ck.broadcast(site)
    exp = ck.const_value(site.args[1])
    # int ^ int stays int only for a non-negative integer literal exponent (docs/language.md §2).
    is_int = a is INT and b is INT and isinstance(exp, int) and not isinstance(exp, bool) and exp >= 0
    return TensorType(INT if is_int else FLOAT, shape), {}


def _order(ck: RuleContext, site: CallSite):
    ck.need_dtype(site, 0, NUMERIC, "ordered comparisons need numbers")
    ck.need_dtype(site, 1, NUMERIC, "ordered comparisons need numbers")
    return TensorType(BOOL, ck.broadcast(site)), {}


def _equality(ck: RuleContext, site: CallSite):
    a, b = site.t(0).dtype, site.t(1).dtype
    if (a is BOOL) != (b is BOOL):
        ck.fail(f"cannot compare `{a}` with `{b}`", site.span, "E301",
                help="compare bools with bools and numbers with numbers")
    return TensorType(BOOL, ck.broadcast(site)), {}


def _logical(ck: RuleContext, site: CallSite):
    for i in range(len(site.args)):
        ck.need_dtype(site, i, {BOOL}, f"`{site.fn.symbol or site.fn.name}` needs bool operands")
    return TensorType(BOOL, ck.broadcast(site)), {}


def _where(ck: RuleContext, site: CallSite):
    ck.need_dtype(site, 0, {BOOL}, "the condition of `where` must be bool")
    a, b = site.t(1).dtype, site.t(2).dtype
    if (a is BOOL) != (b is BOOL):
        ck.fail(f"the branches of `where` have dtypes `{a}` and `{b}`", site.span, "E301",
                help="give both branches the same kind of value, e.g. `float(mask)`")
    dt = BOOL if a is BOOL else promote(a, b)
    return TensorType(dt, ck.broadcast(site)), {}


def _reduce(out: str, *, arg_dtypes=NUMERIC) -> Rule:
    def rule(ck: RuleContext, site: CallSite):
        dt = ck.need_dtype(site, 0, arg_dtypes)
        t = site.t(0)
        single = out == "index"
        if single and t.rank > 1 and site.static["axis"].value is None:
            ck.fail(f"`{site.fn.name}` of a rank-{t.rank} value needs `axis=`", site.span, "E405",
                    help=f"say which axis holds the candidates, e.g. `{site.fn.name}({site.arg_texts[0]}, axis=-1)`")
        axes = ck.axes(site, t, single=single)
        keep = bool(site.static["keepdims"].value)
        all_axes = tuple(range(t.rank)) if axes is None else axes
        if site.fn.needs_elements:
            for i in all_axes:
                ck.need_size(t.shape[i], 1, site.span, f"`{site.fn.name}` over `{t.shape[i]}`")
        shape = tuple(ONE if i in all_axes else d for i, d in enumerate(t.shape)) if keep else tuple(
            d for i, d in enumerate(t.shape) if i not in all_axes)
        dtype = {"same": dt, "float": FLOAT, "index": INT}[out]
        attrs: dict[str, Any] = {"axis": all_axes, "keepdims": keep}
        if "ddof" in site.static:
            ddof = site.static["ddof"].value
            if ddof < 0:
                ck.fail("`ddof` must be 0 or more", site.static["ddof"].span or site.span, "E504")
            attrs["ddof"] = ddof
        if "p" in site.static:
            p = site.static["p"].value
            if not p >= 1:
                ck.fail(f"`p` must be 1 or more, found {p}", site.static["p"].span or site.span, "E504",
                        help="`norm` is a norm for p >= 1")
            attrs["p"] = float(p)
        return TensorType(dtype, shape), attrs

    return rule


def _along_axis(out: str) -> Rule:
    def rule(ck: RuleContext, site: CallSite):
        dt = ck.need_dtype(site, 0, NUMERIC)
        t = site.t(0)
        if t.rank == 0:
            ck.fail(f"`{site.fn.name}` needs a value with at least one axis, found a scalar", site.span, "E404")
        (axis,) = ck.axes(site, t, single=True) or (t.rank - 1,)
        return TensorType(FLOAT if out == "float" else dt, t.shape), {"axis": axis}

    return rule


def _pick(ck: RuleContext, site: CallSite):
    ck.need_dtype(site, 1, {INT}, "`pick` indices must be int")
    x, idx = site.t(0), site.t(1)
    if x.rank == 0:
        ck.fail("`pick` needs a value with at least one axis, found a scalar", site.span, "E404")
    if idx.rank != x.rank - 1:
        ck.fail(f"`pick` indices must have the shape of `{site.arg_texts[0]}` less its last axis "
                f"({_shape(x.shape[:-1])}), found {_shape(idx.shape)}", site.arg_spans[1], "E404",
                help="`pick(x, idx)` is `x[..., idx[...]]`: one index per row of the last axis")
    ck.same_shape(x.shape[:-1], idx.shape, site.arg_spans[1], "`pick` indices")
    return TensorType(x.dtype, x.shape[:-1]), {}


def _one_hot(ck: RuleContext, site: CallSite):
    ck.need_dtype(site, 0, {INT}, "`one_hot` classes must be int")
    depth: Dim = site.static["C"].value
    return TensorType(FLOAT, site.t(0).shape + (depth,)), {"depth": depth}


def _segment(out: str) -> Rule:
    def rule(ck: RuleContext, site: CallSite):
        dt = ck.need_dtype(site, 0, NUMERIC)
        ck.need_dtype(site, 1, {INT}, "segment ids must be int")
        v, ids = site.t(0), site.t(1)
        if ids.rank == 0 or ids.rank > v.rank:
            ck.fail(f"segment ids must have the leading axes of `{site.arg_texts[0]}` ({_shape(v.shape)}), "
                    f"found {_shape(ids.shape)}", site.arg_spans[1], "E404",
                    help="give one group id per row: ids of shape [N] for values of shape [N, ...]")
        ck.same_shape(v.shape[: ids.rank], ids.shape, site.arg_spans[1], "segment ids")
        groups: Dim = site.static["G"].value
        return TensorType(dt if out == "same" else FLOAT, (groups,) + v.shape[ids.rank:]), {"groups": groups}

    return rule


def _matmul(ck: RuleContext, site: CallSite):
    a_dt = ck.need_dtype(site, 0, NUMERIC)
    b_dt = ck.need_dtype(site, 1, NUMERIC)
    a, b = site.t(0).shape, site.t(1).shape
    if not a or not b:
        ck.fail("`@` needs operands with at least one axis; use `*` for scalars", site.span, "E404")
    a2 = a if len(a) > 1 else (ONE,) + a
    b2 = b if len(b) > 1 else b + (ONE,)
    ck.same_dim(a2[-1], b2[-2], site.span, "the inner dimensions of `@` differ: `{a}` and `{b}`", "E410",
                help=f"`a @ b` needs the last axis of `{site.arg_texts[0]}` to match the second-to-last of "
                     f"`{site.arg_texts[1]}`; `transpose(...)` swaps the last two axes")
    batch = ck.broadcast(site, shapes=(a2[:-2], b2[:-2]))
    shape = batch + ((a2[-2],) if len(a) > 1 else ()) + ((b2[-1],) if len(b) > 1 else ())
    return TensorType(promote(a_dt, b_dt), shape), {}


def _dot(ck: RuleContext, site: CallSite):
    a = ck.need_dtype(site, 0, NUMERIC)
    b = ck.need_dtype(site, 1, NUMERIC)
    shape = ck.broadcast(site)
    t = TensorType(promote(a, b), shape)
    if not shape:
        ck.fail("`dot` needs operands with at least one axis", site.span, "E404")
    (axis,) = ck.axes(site, t, single=True) or (len(shape) - 1,)
    return TensorType(t.dtype, tuple(d for i, d in enumerate(shape) if i != axis)), {"axis": axis}


def _transpose(ck: RuleContext, site: CallSite):
    t = site.t(0)
    if t.rank < 2:
        ck.fail(f"`transpose` swaps the last two axes and needs rank 2 or more, found {t}", site.span, "E404")
    return TensorType(t.dtype, t.shape[:-2] + (t.shape[-1], t.shape[-2])), {}


def _cast(to: DType) -> Rule:
    def rule(ck: RuleContext, site: CallSite):
        return TensorType(to, site.t(0).shape), {}

    return rule


def _identity(ck: RuleContext, site: CallSite):
    return site.t(0), {}


def _shape(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


# ---- the table ----------------------------------------------------------------------------

X = (Param("x"),)
REDUCE = (Param("x"), Param("axis", "axis", None), Param("keepdims", "bool", False))

_ENTRIES: list[Function] = []


def _add(name: str, params, group: str, rule: Rule, doc: str, **kw) -> None:
    _ENTRIES.append(Function(name, tuple(params), group, rule, doc, **kw))


# operators (written with symbols; not callable by name)
for _name, _sym, _rule, _doc, _gargs in [
    ("add", "+", _arith("promote"), "a + b", (0, 1)),
    ("sub", "-", _arith("promote"), "a - b", (0, 1)),
    ("mul", "*", _arith("promote"), "a * b", (0, 1)),
    ("div", "/", _arith("float"), "a / b, always true division in the compute dtype", (0, 1)),
    ("pow", "^", _pow, "a ^ b; `x ^ 0` is 1 with gradient 0, also at x = 0", (0, 1)),
    ("matmul", "@", _matmul, "matrix product with NumPy's rules for 1-D operands and batch axes", (0, 1)),
]:
    _add(_name, (Param("a"), Param("b")), "operator", _rule, _doc, symbol=_sym, user=False, grad_args=_gargs)
_add("neg", X, "operator", _same, "-x", symbol="-", user=False)
for _name, _sym in [("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")]:
    _add(_name, (Param("a"), Param("b")), "operator", _order, f"a {_sym} b (bool)", symbol=_sym, user=False,
         grad_args=(), grad="none: comparisons stop the gradient")
for _name, _sym in [("eq", "=="), ("ne", "!=")]:
    _add(_name, (Param("a"), Param("b")), "operator", _equality, f"a {_sym} b (bool)", symbol=_sym, user=False,
         grad_args=(), grad="none: comparisons stop the gradient")
_add("and", (Param("a"), Param("b")), "operator", _logical, "logical and", symbol="and", user=False, grad_args=())
_add("or", (Param("a"), Param("b")), "operator", _logical, "logical or", symbol="or", user=False, grad_args=())
_add("not", X, "operator", _logical, "logical not", symbol="not", user=False, grad_args=())

# elementwise
_add("abs", X, "elementwise", _same, "|x|", grad="0 at x = 0 (JAX alone gives 1)")
_add("sign", X, "elementwise", _same, "-1, 0 or 1", grad_args=(), grad="none: stops the gradient")
_add("square", X, "elementwise", _same, "x * x")
_add("relu", X, "elementwise", _same, "max(x, 0)", grad="0 at x = 0")
_add("floor", X, "elementwise", _same, "round down", grad_args=(), grad="none: stops the gradient")
_add("ceil", X, "elementwise", _same, "round up", grad_args=(), grad="none: stops the gradient")
_add("round", X, "elementwise", _same, "round half to even", grad_args=(), grad="none: stops the gradient")
for _name, _doc in [("exp", "e^x"), ("expm1", "e^x - 1, accurate near 0"), ("log", "natural logarithm"),
                    ("log1p", "log(1 + x), accurate near 0"), ("sin", "sine"), ("cos", "cosine"),
                    ("tanh", "hyperbolic tangent"), ("sigmoid", "1 / (1 + e^-x)"),
                    ("log_sigmoid", "log(sigmoid(x)), stable for large |x|"),
                    ("softplus", "log(1 + e^x), stable for large |x|")]:
    _add(_name, X, "elementwise", _to_float, _doc)
_add("sqrt", X, "elementwise", _to_float, "square root", grad="+inf at x = 0 (as all three frameworks)")
_add("minimum", (Param("a"), Param("b")), "elementwise", _arith("promote"), "elementwise minimum",
     grad_args=(0, 1), grad="0.5 to each operand where a == b (TensorFlow alone gives 1 to one side)")
_add("maximum", (Param("a"), Param("b")), "elementwise", _arith("promote"), "elementwise maximum",
     grad_args=(0, 1), grad="0.5 to each operand where a == b (TensorFlow alone gives 1 to one side)")
_add("clip", (Param("x"), Param("lo"), Param("hi")), "elementwise", _arith("promote"),
     "x limited to [lo, hi]", grad_args=(0, 1, 2),
     grad="1 to x at x == lo and x == hi (JAX alone gives 0.5); lo and hi get the gradient where they are the value")
_add("where", (Param("cond"), Param("a"), Param("b")), "elementwise", _where, "a where cond, else b",
     grad_args=(1, 2), grad="the branch not taken contributes exactly 0, even where it is inf or NaN")

# reductions
_add("sum", REDUCE, "reduction", _reduce("same"), "sum")
_add("mean", REDUCE, "reduction", _reduce("float"), "arithmetic mean")
_add("prod", REDUCE, "reduction", _reduce("same"), "product")
_add("max", REDUCE, "reduction", _reduce("same"), "largest element",
     grad="split evenly among tied elements", needs_elements=True)
_add("min", REDUCE, "reduction", _reduce("same"), "smallest element",
     grad="split evenly among tied elements", needs_elements=True)
_add("logsumexp", REDUCE, "reduction", _reduce("float"), "log(sum(exp(x))), stable", needs_elements=True)
_add("var", REDUCE + (Param("ddof", "int", 0),), "reduction", _reduce("float"),
     "variance, population form (ddof=0) unless `ddof=` is given")
_add("std", REDUCE + (Param("ddof", "int", 0),), "reduction", _reduce("float"),
     "standard deviation, population form (ddof=0) unless `ddof=` is given",
     grad="0 where the spread is 0 (JAX and TensorFlow give NaN)")
_add("norm", (Param("x"), Param("p", "number", 2), Param("axis", "axis", None), Param("keepdims", "bool", False)),
     "reduction", _reduce("float"), "p-norm (p >= 1)", grad="0 at x = 0 (JAX and TensorFlow give NaN)")
_add("argmax", REDUCE, "reduction", _reduce("index"), "index of the largest element (the first, on ties)",
     grad_args=(), grad="none: not differentiable", needs_elements=True)
_add("argmin", REDUCE, "reduction", _reduce("index"), "index of the smallest element (the first, on ties)",
     grad_args=(), grad="none: not differentiable", needs_elements=True)

# along an axis
_add("softmax", (Param("x"), Param("axis", "axis", -1)), "axis", _along_axis("float"), "softmax along `axis`")
_add("log_softmax", (Param("x"), Param("axis", "axis", -1)), "axis", _along_axis("float"),
     "log(softmax(x)), stable")
_add("cumsum", (Param("x"), Param("axis", "axis", -1)), "axis", _along_axis("same"), "running sum along `axis`")

# picking
_add("pick", (Param("x"), Param("idx")), "picking", _pick,
     "x[..., idx[...]] along the last axis; idx has x's shape less the last axis")
_add("one_hot", (Param("idx"), Param("C", "dim")), "picking", _one_hot,
     "float[..., C]: 1 at idx, 0 elsewhere (also 0 everywhere for an idx outside [0, C))", grad_args=())

# linear algebra
_add("dot", (Param("a"), Param("b"), Param("axis", "axis", -1)), "linalg", _dot, "sum(a * b, axis)",
     grad_args=(0, 1))
_add("transpose", X, "linalg", _transpose, "swap the last two axes")

# groups
_add("segment_sum", (Param("v"), Param("ids"), Param("G", "dim")), "group", _segment("same"),
     "sum of the rows of v with each id, shape [G, ...]; ids outside [0, G) are dropped")
_add("segment_mean", (Param("v"), Param("ids"), Param("G", "dim")), "group", _segment("float"),
     "mean of the rows of v with each id, shape [G, ...]; the mean of an empty group is 0")

# conversion and gradient
_add("float", X, "conversion", _cast(FLOAT), "to the compute dtype")
_add("int", X, "conversion", _cast(INT), "to int, truncating toward zero", grad_args=(),
     grad="none: stops the gradient")
_add("stop_gradient", X, "gradient", _identity, "x, with no gradient", grad_args=(),
     grad="none: stops the gradient")
# Inserted by the lowering passes, never written by users.
_add("cast_float", X, "internal", _cast(FLOAT), "conversion to the compute dtype", user=False)
_add("cast_int", X, "internal", _cast(INT), "conversion to int", user=False, grad_args=())
_add("ones_like", X, "internal", _cast(FLOAT), "ones of x's shape in the compute dtype", user=False, grad_args=())
_add("all_sum", X, "internal", _identity, "sum over the replicas of a sharded dimension (lossdsl/sharding.py)",
     user=False)
_add("all_max", X, "internal", _identity, "max over the replicas (of a value with no gradient)", user=False,
     grad_args=())
_add("all_min", X, "internal", _identity, "min over the replicas (of a value with no gradient)", user=False,
     grad_args=())
# The backward of a derived gradient (lossdsl/autodiff.py): shape bookkeeping.
_add("sum_to", (Param("g"), Param("like")), "internal", _identity, "g summed down to the shape of `like`",
     user=False, grad_args=())
_add("unreduce", (Param("g"), Param("like")), "internal", _identity,
     "the gradient of a reduction spread back over the reduced axes of `like`", user=False, grad_args=())
_add("index_grad", (Param("g"), Param("like")), "internal", _identity,
     "the gradient of an index: g placed in zeros of `like`'s shape", user=False, grad_args=())
_add("kernel", (), "internal", _identity, "a loss a framework ships fused (lossdsl/kernels.py); attrs name it",
     user=False, grad_args=(0, 1, 2))

FUNCTIONS: dict[str, Function] = {f.name: f for f in _ENTRIES}
USER_FUNCTIONS: dict[str, Function] = {f.name: f for f in _ENTRIES if f.user}
BINARY_OPERATORS: dict[str, str] = {f.symbol: f.name for f in _ENTRIES if f.symbol and len(f.params) == 2}

# Functions that stop the gradient (for the differentiability analysis and its messages).
NON_DIFFERENTIABLE = frozenset(f.name for f in _ENTRIES if not f.grad_args)
