"""Elementwise functions: each lane of the result reads the same lane of every operand."""

from __future__ import annotations

import math

from ..ir import Apply, Node, is_literal
from ..types import BOOL, FLOAT, TensorType
from . import intervals as iv
from .intervals import INF
from .shapes import arithmetic, predicate, same_type, select, to_float
from .table import ELEMENTWISE, LOCAL, DomainWarning, Param, define

X = (Param("x"),)
_EACH = {"lanes": ELEMENTWISE, "sharding": LOCAL}
NO_GRAD = "none: stops the gradient"


def _unary(fn):
    """The vjp of f(x) from f'(x) built as IR: `deriv(builder, node, x)`."""

    def vjp(b, n, g, give):
        give(n.args[0], b.mul(g, fn(b, n, n.args[0])))

    return vjp


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _bound_away(fn: str) -> str:
    return (
        f"bound it away from 0: `{fn}(clip(p, 1e-7, 1.0))` or `{fn}(p + 1e-7)`; "
        "on logits, use `log_softmax` or `log_sigmoid`"
    )


def stable_log(node: Apply) -> Node | None:
    """The stable form of `log(u)` when u is one of the patterns of docs/language.md §4, else None."""
    (u,) = node.args
    if not isinstance(u, Apply):
        return None
    t, span = node.type, node.span
    if u.fn == "softmax":
        return Apply(t, span, "log_softmax", u.args, u.attrs)
    if u.fn == "sigmoid":
        return Apply(t, span, "log_sigmoid", u.args)
    if u.fn == "sub" and is_literal(u.args[0], 1) and isinstance(u.args[1], Apply) and u.args[1].fn == "sigmoid":
        z = u.args[1].args[0]
        return Apply(t, span, "log_sigmoid", (Apply(z.type, z.span, "neg", (z,)),))
    if u.fn == "sum" and isinstance(u.args[0], Apply) and u.args[0].fn == "exp":
        return Apply(t, span, "logsumexp", u.args[0].args, u.attrs)
    if u.fn == "add":
        a, b = u.args
        x = b if is_literal(a, 1) else a if is_literal(b, 1) else None
        if x is not None and x.type.shape == u.type.shape:
            if isinstance(x, Apply) and x.fn == "exp":
                return Apply(t, span, "softplus", x.args)  # log(1 + exp(z)) overflows for large z
            return Apply(t, span, "log1p", (x,))
    return None


define(
    "abs",
    X,
    "elementwise",
    same_type,
    "|x|",
    grad="0 at x = 0 (JAX alone gives 1)",
    vjp=_unary(lambda b, n, x: b.ap("sign", (x,), x.type)),  # sign(0) = 0: §4
    value_range=iv.constant(0.0, INF),
    fold=abs,
    kernel_arith=True,
    **_EACH,
)
define(
    "sign",
    X,
    "elementwise",
    same_type,
    "-1, 0 or 1",
    grad_args=(),
    grad=NO_GRAD,
    value_range=iv.unbounded,
    fold=lambda a: (a > 0) - (a < 0),
    **_EACH,
)
define(
    "square",
    X,
    "elementwise",
    same_type,
    "x * x",
    vjp=_unary(lambda b, n, x: b.mul(b.c(2.0), x)),
    value_range=iv.constant(0.0, INF),
    fold=lambda a: a * a,
    kernel_arith=True,
    **_EACH,
)
define(
    "relu",
    X,
    "elementwise",
    same_type,
    "max(x, 0)",
    grad="0 at x = 0",
    # 0 at 0 (§4); one pass, not a mask made, cast and multiplied
    vjp=lambda b, n, g, give: give(n.args[0], b.ap("relu_grad", (g, n.args[0]), n.args[0].type.with_dtype(FLOAT))),
    value_range=lambda a, n: (max(0.0, a[0][0]), INF),
    fold=lambda a: max(a, 0),
    **_EACH,
)
define(
    "floor",
    X,
    "elementwise",
    same_type,
    "round down",
    grad_args=(),
    grad=NO_GRAD,
    value_range=iv.unbounded,
    fold=math.floor,
    **_EACH,
)
define(
    "ceil",
    X,
    "elementwise",
    same_type,
    "round up",
    grad_args=(),
    grad=NO_GRAD,
    value_range=iv.unbounded,
    fold=math.ceil,
    **_EACH,
)
define(
    "round",
    X,
    "elementwise",
    same_type,
    "round half to even",
    grad_args=(),
    grad=NO_GRAD,
    value_range=iv.unbounded,
    fold=round,
    **_EACH,
)
define(
    "exp",
    X,
    "elementwise",
    to_float,
    "e^x",
    vjp=_unary(lambda b, n, x: n),
    value_range=iv.constant(0.0, INF),
    fold=math.exp,
    safe={0: 0},
    **_EACH,
)
define(
    "expm1",
    X,
    "elementwise",
    to_float,
    "e^x - 1, accurate near 0",
    vjp=_unary(lambda b, n, x: b.add(n, b.c(1.0))),
    value_range=iv.unbounded,
    fold=math.expm1,
    safe={0: 0},
    **_EACH,
)
define(
    "log",
    X,
    "elementwise",
    to_float,
    "natural logarithm",
    vjp=lambda b, n, g, give: give(n.args[0], b.div(g, n.args[0])),
    value_range=iv.unbounded,
    fold=math.log,
    safe={0: 1},
    lower=stable_log,
    domain=DomainWarning(
        0,
        lambda r: not r[0] > 0,
        "`log` may see 0 or a negative value here",
        "0 gives -inf and a negative value NaN",
        _bound_away("log"),
    ),
    **_EACH,
)
define(
    "log1p",
    X,
    "elementwise",
    to_float,
    "log(1 + x), accurate near 0",
    vjp=lambda b, n, g, give: give(n.args[0], b.div(g, b.add(n.args[0], b.c(1.0)))),
    value_range=iv.unbounded,
    fold=math.log1p,
    safe={0: 0},
    domain=DomainWarning(
        0, lambda r: not r[0] > -1, "`log1p` may see a value at or below -1 here", None, _bound_away("log1p")
    ),
    **_EACH,
)
define(
    "sin",
    X,
    "elementwise",
    to_float,
    "sine",
    vjp=_unary(lambda b, n, x: b.ap("cos", (x,), x.type)),
    value_range=iv.constant(-1.0, 1.0),
    fold=math.sin,
    **_EACH,
)
define(
    "cos",
    X,
    "elementwise",
    to_float,
    "cosine",
    vjp=lambda b, n, g, give: give(n.args[0], b.neg(b.mul(g, b.ap("sin", (n.args[0],), n.args[0].type)))),
    value_range=iv.constant(-1.0, 1.0),
    fold=math.cos,
    **_EACH,
)
define(
    "tanh",
    X,
    "elementwise",
    to_float,
    "hyperbolic tangent",
    vjp=lambda b, n, g, give: give(n.args[0], b.ap("tanh_grad", (g, n), n.type)),
    value_range=iv.constant(-1.0, 1.0),
    fold=math.tanh,
    **_EACH,
)
define(
    "sigmoid",
    X,
    "elementwise",
    to_float,
    "1 / (1 + e^-x)",
    vjp=lambda b, n, g, give: give(n.args[0], b.ap("sigmoid_grad", (g, n), n.type)),
    value_range=iv.constant(0.0, 1.0),
    fold=_sigmoid,
    **_EACH,
)
define(
    "log_sigmoid",
    X,
    "elementwise",
    to_float,
    "log(sigmoid(x)), stable for large |x|",
    known_as=("logsigmoid",),
    vjp=_unary(lambda b, n, x: b.ap("sigmoid", (b.neg(x),), x.type)),
    value_range=iv.unbounded,
    fold=lambda a: min(a, 0) - math.log1p(math.exp(-abs(a))),
    **_EACH,
)
define(
    "softplus",
    X,
    "elementwise",
    to_float,
    "log(1 + e^x), stable for large |x|",
    vjp=_unary(lambda b, n, x: b.ap("sigmoid", (x,), x.type)),
    value_range=iv.constant(0.0, INF),
    fold=lambda a: max(a, 0) + math.log1p(math.exp(-abs(a))),
    **_EACH,
)
define(
    "sqrt",
    X,
    "elementwise",
    to_float,
    "square root",
    grad="+inf at x = 0 (as all three frameworks)",
    vjp=lambda b, n, g, give: give(n.args[0], b.div(b.mul(g, b.c(0.5)), n)),  # +inf at 0, as the frameworks
    # Increasing: a positive operand keeps the root positive (a divisor `sqrt(s + eps)`).
    value_range=lambda args, node: (math.sqrt(max(args[0][0], 0.0)), math.sqrt(max(args[0][1], 0.0))),
    fold=math.sqrt,
    safe={0: 1},
    domain=DomainWarning(
        0, lambda r: r[0] < 0, "`sqrt` may see a negative value here", "a negative value gives NaN", _bound_away("sqrt")
    ),
    **_EACH,
)

define(
    "cosh",
    X,
    "elementwise",
    to_float,
    "hyperbolic cosine",
    vjp=_unary(lambda b, n, x: b.ap("sinh", (x,), x.type)),
    value_range=iv.constant(1.0, INF),
    fold=math.cosh,
    **_EACH,
)
define(
    "sinh",
    X,
    "elementwise",
    to_float,
    "hyperbolic sine",
    vjp=_unary(lambda b, n, x: b.ap("cosh", (x,), x.type)),
    value_range=lambda a, n: (_monotone(math.sinh, a[0][0]), _monotone(math.sinh, a[0][1])),
    fold=math.sinh,
    **_EACH,
)


def _monotone(fn, bound: float) -> float:
    """fn at an interval's bound, for an increasing fn that may overflow there."""
    try:
        return fn(bound)
    except OverflowError:
        return INF if bound > 0 else -INF


def _inverse_root(b, x):
    """sqrt(1 - x^2): the derivative of asin and acos is +-1 over it (infinite at x = +-1)."""
    return b.ap("sqrt", (b.sub(b.c(1.0), b.ap("square", (x,), x.type)),), x.type)


def _unit_interval(fn: str) -> DomainWarning:
    return DomainWarning(
        0,
        lambda r: r[0] < -1 or r[1] > 1,
        f"`{fn}` may see a value outside [-1, 1] here",
        "outside [-1, 1] the value is NaN, and at -1 and 1 the gradient is infinite",
        f"clip it inside the domain: `{fn}(clip(c, -1.0 + 1e-7, 1.0 - 1e-7))`",
    )


EDGE = "-inf or +inf at x = -1 and x = 1 (as all three frameworks); NaN outside [-1, 1]"
define(
    "acos",
    X,
    "elementwise",
    to_float,
    "inverse cosine, in [0, pi]",
    known_as=("arccos",),
    grad=EDGE,
    vjp=lambda b, n, g, give: give(n.args[0], b.neg(b.div(g, _inverse_root(b, n.args[0])))),
    value_range=iv.constant(0.0, math.pi),
    fold=math.acos,
    safe={0: 0},
    domain=_unit_interval("acos"),
    **_EACH,
)
define(
    "asin",
    X,
    "elementwise",
    to_float,
    "inverse sine, in [-pi/2, pi/2]",
    known_as=("arcsin",),
    grad=EDGE,
    vjp=lambda b, n, g, give: give(n.args[0], b.div(g, _inverse_root(b, n.args[0]))),
    value_range=iv.constant(-math.pi / 2, math.pi / 2),
    fold=math.asin,
    safe={0: 0},
    domain=_unit_interval("asin"),
    **_EACH,
)
define(
    "atan",
    X,
    "elementwise",
    to_float,
    "inverse tangent, in (-pi/2, pi/2)",
    known_as=("arctan",),
    vjp=lambda b, n, g, give: give(n.args[0], b.div(g, b.add(b.c(1.0), b.ap("square", (n.args[0],), n.args[0].type)))),
    value_range=lambda a, n: (math.atan(a[0][0]), math.atan(a[0][1])),
    fold=math.atan,
    **_EACH,
)


def _test_floats(fn: str):
    """`isnan(k)` of an int `k` tests `float(k)` (an int is never NaN nor infinite)."""

    def lower(node: Apply) -> Node | None:
        (x,) = node.args
        if x.type.dtype is FLOAT:
            return None
        as_float = Apply(x.type.with_dtype(FLOAT), x.span, "cast_float", (x,))
        return Apply(node.type, node.span, fn, (as_float,))

    return lower


for _name, _doc, _fold, _known_as in [
    ("isnan", "true where x is NaN (bool)", math.isnan, ("is_nan",)),
    ("isfinite", "true where x is neither NaN nor infinite (bool)", math.isfinite, ("is_finite",)),
]:
    define(
        _name,
        X,
        "elementwise",
        predicate,
        _doc,
        grad_args=(),
        grad=NO_GRAD,
        value_range=iv.unbounded,
        fold=_fold,
        lower=_test_floats(_name),
        known_as=_known_as,
        keep_dtype=(0,),
        **_EACH,
    )


def _extremum_vjp(wins_fn: str):
    def vjp(b, n, g, give):
        x, y = n.args
        wins = b.cmp(wins_fn, x, y)
        half = b.mul(b.c(0.5), b.as_float(b.cmp("eq", x, y)))
        share_x = b.add(b.as_float(wins), half)  # 1 where x wins, 0.5 on a tie: §4
        give(x, b.mul(g, share_x))
        give(y, b.mul(g, b.sub(b.c(1.0), share_x)))

    return vjp


def _clip_vjp(b, n, g, give):
    x, lo, hi = n.args
    inside = b.ap("and", (b.cmp("ge", x, lo), b.cmp("le", x, hi)), TensorType(BOOL, n.type.shape))
    give(x, b.mul(g, b.as_float(inside)))  # 1 at the bounds: §4
    give(lo, b.mul(g, b.as_float(b.cmp("lt", x, lo))))
    give(hi, b.mul(g, b.as_float(b.cmp("gt", x, hi))))


def _where_vjp(b, n, g, give):
    c, x, y = n.args
    zero = b.c(0.0)
    t = b.float_like(c, g)
    give(x, b.where(c, g, zero, t))  # exactly 0 in the lanes not taken: §4
    give(y, b.where(c, zero, g, t))


def _logaddexp_vjp(b, n, g, give):
    a, c = n.args  # each operand gets its share of the sum: e^a / (e^a + e^c), 0.5 each at a == c
    # Where both are -inf so is the result, and each share is 0: e^a over e^0, not e^(-inf - -inf).
    total = b.where(b.cmp("gt", n, b.c(-INF)), n, b.c(0.0), n.type)
    give(a, b.mul(g, b.ap("exp", (b.sub(a, total, n.type),), n.type)))
    give(c, b.mul(g, b.ap("exp", (b.sub(c, total, n.type),), n.type)))


def _logaddexp(a: float, b: float) -> float:
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b))) if math.isfinite(m) else m


define(
    "logaddexp",
    (Param("a"), Param("b")),
    "elementwise",
    arithmetic("float"),
    "log(e^a + e^b), stable for large |a| and |b|",
    grad_args=(0, 1),
    grad="0.5 to each operand where a == b; 0 to each where both are -inf",
    vjp=_logaddexp_vjp,
    value_range=lambda a, n: (max(a[0][0], a[1][0]), max(a[0][1], a[1][1]) + math.log(2.0)),
    fold=_logaddexp,
    **_EACH,
)


def _atan2_vjp(b, n, g, give):
    # d/dy = x / (x^2 + y^2), d/dx = -y / (x^2 + y^2); both 0 at the origin (§4), where the
    # plain formula is 0 / 0: the squared radius is read as 1 there.
    y, x = n.args
    r2 = b.add(b.ap("square", (y,), y.type), b.ap("square", (x,), x.type))
    positive = b.cmp("gt", r2, b.c(0.0))
    r2 = b.where(positive, r2, b.c(1.0), r2.type)
    give(y, b.div(b.mul(g, x), r2))
    give(x, b.neg(b.div(b.mul(g, y), r2)))


def _atan2(y: float, x: float) -> float:
    return math.atan2(y, x)


define(
    "atan2",
    (Param("y"), Param("x")),
    "elementwise",
    arithmetic("float"),
    "the angle of the point (x, y), in [-pi, pi]; atan2(0, 0) = 0",
    known_as=("arctan2",),
    grad_args=(0, 1),
    grad="0 to both operands at x = y = 0 (PyTorch's rule; JAX and TensorFlow give NaN)",
    vjp=_atan2_vjp,
    value_range=iv.constant(-math.pi, math.pi),
    fold=_atan2,
    safe={1: 1},
    **_EACH,
)

TIES = "0.5 to each operand where a == b (TensorFlow alone gives 1 to one side)"
define(
    "minimum",
    (Param("a"), Param("b")),
    "elementwise",
    arithmetic("promote"),
    "elementwise minimum",
    grad_args=(0, 1),
    grad=TIES,
    vjp=_extremum_vjp("lt"),
    value_range=lambda a, n: (min(a[0][0], a[1][0]), min(a[0][1], a[1][1])),
    fold=min,
    **_EACH,
)
define(
    "maximum",
    (Param("a"), Param("b")),
    "elementwise",
    arithmetic("promote"),
    "elementwise maximum",
    grad_args=(0, 1),
    grad=TIES,
    vjp=_extremum_vjp("gt"),
    value_range=lambda a, n: (max(a[0][0], a[1][0]), max(a[0][1], a[1][1])),
    fold=max,
    **_EACH,
)
define(
    "clip",
    (Param("x"), Param("lo"), Param("hi")),
    "elementwise",
    arithmetic("promote"),
    "x limited to [lo, hi]",
    known_as=("clamp", "clip_by_value"),
    grad_args=(0, 1, 2),
    grad="1 to x at x == lo and x == hi (JAX alone gives 0.5); lo and hi get the gradient where they are the value",
    vjp=_clip_vjp,
    value_range=lambda a, n: (max(a[0][0], a[1][0]), min(max(a[0][1], a[1][1]), a[2][1])),
    fold=lambda x, lo, hi: min(max(x, lo), hi),
    **_EACH,
)
define(
    "where",
    (Param("cond"), Param("a"), Param("b")),
    "elementwise",
    select,
    "a where cond, else b",
    grad_args=(1, 2),
    grad="the branch not taken contributes exactly 0, even where it is inf or NaN",
    vjp=_where_vjp,
    value_range=lambda a, n: iv.hull(a[1], a[2]),
    fold=lambda c, a, b: a if c else b,
    keep_dtype=(0,),
    **_EACH,
)
