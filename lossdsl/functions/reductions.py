"""Reductions: each lane of the result reads the lanes along the reduced axes.

Their sharding rules compute a reduction over a dimension split across replicas from the
replicas' partial results (lossdsl/sharding.py gives the building blocks as `g`)."""

from __future__ import annotations

from ..ir import Apply, Const, DimSize, Node, apply, is_literal
from ..types import BOOL, FLOAT, INT, ONE, TensorType
from . import intervals as iv
from .intervals import INF
from .shapes import reduction
from .table import REDUCES, NoRule, Param, define

REDUCE = (Param("x"), Param("axis", "axis", None), Param("keepdims", "bool", False))
TIES = "split evenly among tied elements"
FRAMEWORK = NoRule("the framework differentiates it")


SCALAR = TensorType(FLOAT)  # a float scalar, as counts and literals are


def _over_sharded_axis(rule):
    """A reduction's sharding rule: nothing to do unless it reduces the sharded dimension."""

    def shard(g, n: Apply) -> Node:
        x, axes = n.args[0], n.attr("axis")
        if not g.axes_on(x, axes):
            return n
        g.made_global.append(n)
        return rule(g, n, x, axes, bool(n.attr("keepdims")))

    return shard


def _refused_over_sharded_axis(what: str):
    """A reduction that partial results cannot give: an error (E811) along the sharded dimension."""

    def shard(g, n: Apply) -> Node:
        if g.axes_on(n.args[0], n.attr("axis")):
            g.fail(n, what)
        return n

    return shard


def _global_sum(g, n, x, axes, keep):
    return g.all_sum(n)


def _global_mean(g, n, x, axes, keep):
    total = g.all_sum(g.reduce("sum", x, axes, keep, n.span))
    return apply("div", (total, g.global_count(x, axes, n.span)), n.type, n.span)


def _global_extremum(fn: str):
    collective = "all_max" if fn == "max" else "all_min"

    def rule(g, n, x, axes, keep):
        value = g.all_max(g.reduce(fn, x, axes, keep, n.span), collective)
        if x.type.dtype is not FLOAT:
            return value
        # The value is the global max; the gradient goes in equal parts to the tied elements on
        # every replica: (S - stop_gradient(S)) / k is 0, with gradient 1/k on each tie.
        m_keep = g.all_max(g.reduce(fn, x, axes, True, n.span), collective)
        tie = apply("eq", (x, m_keep), TensorType(BOOL, x.type.shape), n.span)
        zero = Const(SCALAR, n.span, 0.0)
        picked = apply("where", (tie, x, zero), x.type, n.span)
        s = g.all_sum(g.reduce("sum", picked, axes, keep, n.span))
        ones = apply("cast_float", (tie,), x.type, n.span)
        k = g.all_sum(g.reduce("sum", ones, axes, keep, n.span))
        diff = apply("sub", (s, apply("stop_gradient", (s,), s.type, n.span)), s.type, n.span)
        return apply("add", (value, apply("div", (diff, k), s.type, n.span)), n.type, n.span)

    return rule


def _global_logsumexp(g, n, x, axes, keep):
    m_keep = g.all_max(g.reduce("max", x, axes, True, n.span))
    m_out = g.all_max(g.reduce("max", x, axes, keep, n.span))
    shifted = apply("exp", (apply("sub", (x, m_keep), x.type, n.span),), x.type, n.span)
    total = g.all_sum(g.reduce("sum", shifted, axes, keep, n.span))
    return apply("add", (m_out, apply("log", (total,), total.type, n.span)), n.type, n.span)


def _global_var(g, n, x, axes, keep):
    """Around the global mean, over the global count."""
    count = g.global_count(x, axes, n.span)
    local_sum = g.reduce("sum", x, axes, True, n.span)
    mean = apply("div", (g.all_sum(local_sum), count), local_sum.type, n.span)
    dev = apply("square", (apply("sub", (x, mean), x.type, n.span),), x.type, n.span)
    ss = g.all_sum(g.reduce("sum", dev, axes, keep, n.span))
    ddof = n.attr("ddof") or 0
    denom = apply("sub", (count, Const(SCALAR, n.span, float(ddof))), SCALAR, n.span) if ddof else count
    return apply("div", (ss, denom), n.type, n.span)


def _global_norm(g, n, x, axes, keep):
    p, span = n.attr("p"), n.span
    absx = apply("abs", (x,), x.type, span)
    if p == 1:
        return g.all_sum(g.reduce("sum", absx, axes, keep, span))
    powered = (
        apply("square", (x,), x.type, span)
        if p == 2
        else apply("pow", (absx, Const(SCALAR, span, float(p))), x.type, span)
    )
    return root_with_gradient_zero_at_zero(g.all_sum(g.reduce("sum", powered, axes, keep, span)), n.type, span, p)


def root_with_gradient_zero_at_zero(v: Node, out: TensorType, span, p: float = 2.0) -> Node:
    """The p-th root of v >= 0 with gradient 0 where v is 0, where the plain root's is infinite
    (JAX and TensorFlow give NaN for `std` and `norm` there, PyTorch 0):
    where(v > 0, root(where(v > 0, v, 1)), 0)."""
    zero, one = Const(SCALAR, span, 0.0), Const(SCALAR, span, 1.0)
    positive = apply("gt", (v, zero), TensorType(BOOL, v.type.shape), span)
    safe = apply("where", (positive, v, one), v.type, span)
    root = (
        apply("sqrt", (safe,), v.type, span)
        if p == 2
        else apply("pow", (safe, Const(SCALAR, span, 1.0 / p)), v.type, span)
    )
    return apply("where", (positive, root, zero), out, span)


def _unreduce(b, g, x, n):
    return b.ap(
        "unreduce",
        (g, x),
        TensorType(FLOAT, x.type.shape),
        (("axis", n.attr("axis")), ("keepdims", n.attr("keepdims"))),
    )


def _sum_vjp(b, n, g, give):
    give(n.args[0], _unreduce(b, g, n.args[0], n))


def _mean_vjp(b, n, g, give):
    x = n.args[0]
    count: Node | None = None  # divide the (small) reduced gradient before spreading it out
    for k in n.attr("axis"):
        d = x.type.shape[k]
        if d == ONE:
            continue
        size = b.c(d.value) if d.is_literal else b.as_float(DimSize(TensorType(INT), n.span, d))
        count = size if count is None else b.mul(count, size, TensorType(FLOAT))
    if count is not None:
        g = b.div(g, count, g.type)
    give(x, _unreduce(b, g, x, n))


def _logsumexp_vjp(b, n, g, give):
    x = n.args[0]
    lse_keep = n if n.attr("keepdims") else _unreduce(b, n, x, n)
    soft = b.ap("exp", (b.sub(x, lse_keep, x.type),), x.type)
    give(x, b.mul(_unreduce(b, g, x, n), soft, x.type))


def safe_std(n: Apply) -> Node:
    """`std` is the root of `var` with gradient 0 where the spread is 0, as `norm` at 0."""
    return root_with_gradient_zero_at_zero(Apply(n.type, n.span, "var", n.args, n.attrs), n.type, n.span)


def _masked_out(x: Node) -> bool:
    """x is `where(c, a, -inf)` or `where(c, -inf, a)`: a row may be -inf throughout."""
    return isinstance(x, Apply) and x.fn == "where" and any(is_literal(a, -INF) for a in x.args[1:])


def empty_safe_logsumexp(n: Apply) -> Node | None:
    """`logsumexp` of a masked row (`where(c, x, -inf)`) is -inf, with derivatives of every
    order 0, when the mask takes the whole row (an anchor without a positive): the frameworks'
    own logsumexp gives NaN second derivatives there, on every row of a shared input. The max
    is shifted by 0 where it is not finite and the log reads 1 where the sum is 0:
    log(s + [s == 0]) + m + [s == 0] * -inf, s = sum(exp(x - m))."""
    x = n.args[0]
    if not _masked_out(x):
        return None
    span, axes, keep = n.span, n.attr("axis"), bool(n.attr("keepdims"))
    kept = TensorType(FLOAT, tuple(ONE if k in axes else d for k, d in enumerate(x.type.shape)))
    zero = Const(SCALAR, span, 0.0)
    big = apply("max", (x,), kept, span, (("axis", axes), ("keepdims", True)))
    shift = apply(
        "stop_gradient",
        (apply("where", (apply("isfinite", (big,), TensorType(BOOL, kept.shape), span), big, zero), kept, span),),
        kept,
        span,
    )
    total = apply(
        "sum",
        (apply("exp", (apply("sub", (x, shift), x.type, span),), x.type, span),),
        n.type,
        span,
        (("axis", axes), ("keepdims", keep)),
    )
    if not keep:  # the shift without its kept axes (each of size 1)
        shift = apply("sum", (shift,), n.type, span, (("axis", axes), ("keepdims", False)))
    # Written without a `where` around the log (whose branches the where-guard pass would
    # guard again): log(s + [s == 0]) + m + (0 or -inf).
    some = apply("gt", (total, zero), TensorType(BOOL, n.type.shape), span)

    def either(a: float, b: float) -> Node:
        return apply("where", (some, Const(SCALAR, span, a), Const(SCALAR, span, b)), n.type, span)

    log = apply("log", (apply("add", (total, either(0.0, 1.0)), n.type, span),), n.type, span)
    return apply("add", (apply("add", (log, shift), n.type, span), either(0.0, -INF)), n.type, span)


def _identity(a):
    return a


_R = {"lanes": REDUCES}
define(
    "sum",
    REDUCE,
    "reduction",
    reduction("same"),
    "sum",
    known_as=("reduce_sum",),
    vjp=_sum_vjp,
    value_range=lambda a, n: iv.sum_of(a[0]),
    fold=_identity,
    sharding=_over_sharded_axis(_global_sum),
    **_R,
)
define(
    "mean",
    REDUCE,
    "reduction",
    reduction("float"),
    "arithmetic mean",
    known_as=("reduce_mean",),
    vjp=_mean_vjp,
    value_range=iv.same_as_operand,
    fold=_identity,
    sharding=_over_sharded_axis(_global_mean),
    **_R,
)
define(
    "prod",
    REDUCE,
    "reduction",
    reduction("same"),
    "product",
    known_as=("reduce_prod",),
    vjp=FRAMEWORK,
    value_range=iv.unbounded,
    fold=_identity,
    sharding=_refused_over_sharded_axis("a product"),
    **_R,
)
define(
    "max",
    REDUCE,
    "reduction",
    reduction("same"),
    "largest element",
    known_as=("amax", "reduce_max"),
    grad=TIES,
    needs_elements=True,
    vjp=FRAMEWORK,
    value_range=iv.same_as_operand,
    fold=_identity,
    sharding=_over_sharded_axis(_global_extremum("max")),
    **_R,
)
define(
    "min",
    REDUCE,
    "reduction",
    reduction("same"),
    "smallest element",
    known_as=("amin", "reduce_min"),
    grad=TIES,
    needs_elements=True,
    vjp=FRAMEWORK,
    value_range=iv.same_as_operand,
    fold=_identity,
    sharding=_over_sharded_axis(_global_extremum("min")),
    **_R,
)
define(
    "logsumexp",
    REDUCE,
    "reduction",
    reduction("float"),
    "log(sum(exp(x))), stable",
    known_as=("reduce_logsumexp",),
    needs_elements=True,
    vjp=_logsumexp_vjp,
    lower=empty_safe_logsumexp,
    value_range=iv.unbounded,
    fold=_identity,
    sharding=_over_sharded_axis(_global_logsumexp),
    **_R,
)
define(
    "var",
    REDUCE + (Param("ddof", "int", 0),),
    "reduction",
    reduction("float"),
    "variance, population form (ddof=0) unless `ddof=` is given",
    vjp=FRAMEWORK,
    value_range=iv.constant(0.0, INF),
    fold=lambda a: 0.0,
    sharding=_over_sharded_axis(_global_var),
    **_R,
)
define(
    "std",
    REDUCE + (Param("ddof", "int", 0),),
    "reduction",
    reduction("float"),
    "standard deviation, population form (ddof=0) unless `ddof=` is given",
    grad="0 where the spread is 0 (JAX and TensorFlow give NaN)",
    lower=safe_std,
    vjp=NoRule("lowered to `var` and `sqrt` before differentiation"),
    value_range=iv.constant(0.0, INF),
    fold=lambda a: 0.0,
    sharding=NoRule("lowered to `var` and `sqrt` before the sharding pass"),
    **_R,
)
define(
    "norm",
    (Param("x"), Param("p", "number", 2), Param("axis", "axis", None), Param("keepdims", "bool", False)),
    "reduction",
    reduction("float"),
    "p-norm (p >= 1)",
    grad="0 at x = 0 (JAX and TensorFlow give NaN)",
    vjp=FRAMEWORK,
    value_range=iv.constant(0.0, INF),
    fold=abs,
    sharding=_over_sharded_axis(_global_norm),
    **_R,
)
for _name, _doc in [
    ("argmax", "index of the largest element (the first, on ties)"),
    ("argmin", "index of the smallest element (the first, on ties)"),
]:
    define(
        _name,
        REDUCE,
        "reduction",
        reduction("index"),
        _doc,
        grad_args=(),
        grad="none: not differentiable",
        needs_elements=True,
        value_range=iv.unbounded,
        fold=NoRule("an index is not a value to fold"),
        sharding=_refused_over_sharded_axis("an index"),
        keep_dtype=(0,),
        **_R,
    )
