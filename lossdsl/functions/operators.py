"""Operators: written with symbols, not callable by name."""

from __future__ import annotations

import operator

from ..ir import Apply, Const, Node, is_literal
from . import intervals as iv
from .intervals import INF
from .shapes import arithmetic, equality, logical, matmul, ordered, power, same_type
from .table import ELEMENTWISE, LOCAL, MIXES, DomainWarning, NoRule, Param, define

AB = (Param("a"), Param("b"))
X = (Param("x"),)


def _add_vjp(b, n, g, give):
    give(n.args[0], g)
    give(n.args[1], g)


def _sub_vjp(b, n, g, give):
    give(n.args[0], g)
    give(n.args[1], b.neg(g))


def _mul_vjp(b, n, g, give):
    give(n.args[0], b.mul(g, n.args[1]))
    give(n.args[1], b.mul(g, n.args[0]))


def _div_vjp(b, n, g, give):
    x, y = n.args
    give(x, b.div(g, y))
    give(y, b.neg(b.div(b.mul(g, n), y)))


def _pow_vjp(b, n, g, give):
    x, c = n.args
    p = float(c.value)
    give(x, b.mul(g, b.mul(b.c(p), b.ap("pow", (x, b.c(p - 1.0)), x.type))))


def _literal_exponent(n: Apply) -> bool:
    c = n.args[1]
    return isinstance(c, Const) and not isinstance(c.value, bool)


def _positive_power(lo: float, hi: float, p: int):
    """(at least the smallest |base|^p, but above 0; inf) for a base whose interval excludes 0."""
    base = min(abs(lo), abs(hi))
    try:
        low = base**p
    except OverflowError:
        low = INF
    return (max(low, 5e-324), INF)


def _pow_range(args, n):
    exp = n.args[1]
    if isinstance(exp, Const) and isinstance(exp.value, int) and not isinstance(exp.value, bool):
        lo, hi = args[0]
        if exp.value > 0 and (lo > 0 or (hi < 0 and exp.value % 2 == 0)):
            # a power of a base away from 0 is away from 0, even where the bound underflows
            return _positive_power(lo, hi, exp.value)
        if exp.value % 2 == 0:
            return (0.0, INF)
        if args[0][0] >= 0:
            return (0.0 if args[0][0] == 0 else args[0][0] ** exp.value, INF)
    if args[0][0] > 0:
        return (0.0, INF)
    return iv.FULL


def _pow_safe(n: Apply):
    """A power with a non-negative integer literal exponent is defined everywhere; any other
    needs a positive base."""
    exp = n.args[1]
    if isinstance(exp, Const) and isinstance(exp.value, int) and exp.value >= 0:
        return {}
    return {0: 1}


def small_powers(n: Apply) -> Node | None:
    """`x ^ 0` is ones with no gradient (docs/language.md §4), also at x = 0; `x ^ 1` is x; `x ^ 2`
    is `square(x)`, which every framework differentiates without the log of x that a general
    power's gradient computes (TensorFlow computes it even for a constant exponent)."""
    base, exp = n.args
    if not isinstance(exp, Const) or base.type.shape != n.type.shape or isinstance(exp.value, bool):
        return None
    if is_literal(exp, 0):
        return Apply(n.type, n.span, "ones_like", (base,))
    if is_literal(exp, 1) and base.type == n.type:
        return base
    if is_literal(exp, 2):
        return Apply(n.type, n.span, "square", (base,))
    return None


def _matmul_sharding(g, n: Apply) -> Node:
    """`a @ b` contracting the sharded axis: the sum of the replicas' partial products."""
    a = n.args[0]
    if a.type.shape and a.type.shape[-1] == g.dim:
        g.made_global.append(n)
        return g.all_sum(n)
    return n


_arith = {"lanes": ELEMENTWISE, "sharding": LOCAL, "kernel_arith": True, "grad_args": (0, 1)}
define(
    "add",
    AB,
    "operator",
    arithmetic("promote"),
    "a + b",
    symbol="+",
    user=False,
    vjp=_add_vjp,
    value_range=lambda a, n: iv.add(a[0], a[1]),
    fold=operator.add,
    **_arith,
)
define(
    "sub",
    AB,
    "operator",
    arithmetic("promote"),
    "a - b",
    symbol="-",
    user=False,
    vjp=_sub_vjp,
    value_range=lambda a, n: iv.add(a[0], iv.neg(a[1])),
    fold=operator.sub,
    **_arith,
)
define(
    "mul",
    AB,
    "operator",
    arithmetic("promote"),
    "a * b",
    symbol="*",
    user=False,
    vjp=_mul_vjp,
    linear_in=(0, 1),
    value_range=lambda a, n: iv.mul(a[0], a[1]),
    fold=operator.mul,
    **_arith,
)
define(
    "div",
    AB,
    "operator",
    arithmetic("float"),
    "a / b, always true division in the compute dtype",
    symbol="/",
    user=False,
    vjp=_div_vjp,
    linear_in=(0,),
    value_range=lambda a, n: iv.div(a[0], a[1]),
    fold=operator.truediv,
    safe={1: 1},
    domain=DomainWarning(
        1,
        lambda r: r[0] <= 0 <= r[1],
        "the divisor may be 0 here",
        "x / 0 is inf or NaN, and so is its gradient",
        "add a small constant (`x / (s + 1e-7)`) or select with `where(s != 0, x / s, 0.0)`",
    ),
    **_arith,
)
define(
    "pow",
    AB,
    "operator",
    power,
    "a ^ b; `x ^ 0` is 1 with gradient 0, also at x = 0",
    symbol="^",
    user=False,
    vjp=_pow_vjp,
    vjp_needs=_literal_exponent,
    value_range=_pow_range,
    fold=operator.pow,
    safe=_pow_safe,
    lower=small_powers,
    cast="exponent",
    **_arith,
)
define(
    "matmul",
    AB,
    "operator",
    matmul,
    "matrix product with NumPy's rules for 1-D operands and batch axes",
    symbol="@",
    user=False,
    grad_args=(0, 1),
    vjp=NoRule("the framework differentiates a matrix product"),
    value_range=iv.unbounded,
    fold=NoRule("its operands have at least one axis"),
    lanes=MIXES,
    sharding=_matmul_sharding,
)
define(
    "neg",
    X,
    "operator",
    same_type,
    "-x",
    symbol="-",
    user=False,
    vjp=lambda b, n, g, give: give(n.args[0], b.neg(g)),
    linear_in=(0,),
    value_range=lambda a, n: iv.neg(a[0]),
    fold=operator.neg,
    lanes=ELEMENTWISE,
    sharding=LOCAL,
    kernel_arith=True,
)

# Comparisons stop the gradient. Compared with a literal, they tell the domain analysis an
# interval for the other operand in each branch of a `where`.
TINY = 1e-300
_REFINE = {
    "gt": lambda k: (k + TINY if k >= 0 else k, INF),
    "ge": lambda k: (k, INF),
    "lt": lambda k: (-INF, k - TINY if k <= 0 else k),
    "le": lambda k: (-INF, k),
}
for _name, _sym, _fold, _negation in [
    ("lt", "<", operator.lt, "ge"),
    ("le", "<=", operator.le, "gt"),
    ("gt", ">", operator.gt, "le"),
    ("ge", ">=", operator.ge, "lt"),
]:
    define(
        _name,
        AB,
        "operator",
        ordered,
        f"a {_sym} b (bool)",
        symbol=_sym,
        user=False,
        grad_args=(),
        grad="none: comparisons stop the gradient",
        value_range=iv.unbounded,
        fold=_fold,
        lanes=ELEMENTWISE,
        sharding=LOCAL,
        cast="compare",
        negation=_negation,
        refine=_REFINE[_name],
    )
for _name, _sym, _fold in [("eq", "==", operator.eq), ("ne", "!=", operator.ne)]:
    define(
        _name,
        AB,
        "operator",
        equality,
        f"a {_sym} b (bool)",
        symbol=_sym,
        user=False,
        grad_args=(),
        grad="none: comparisons stop the gradient",
        value_range=iv.unbounded,
        fold=_fold,
        lanes=ELEMENTWISE,
        sharding=LOCAL,
        cast="compare",
    )
define(
    "and",
    AB,
    "operator",
    logical,
    "logical and",
    symbol="and",
    user=False,
    grad_args=(),
    value_range=iv.unbounded,
    fold=lambda a, b: a and b,
    lanes=ELEMENTWISE,
    sharding=LOCAL,
    keep_dtype=(0, 1),
)
define(
    "or",
    AB,
    "operator",
    logical,
    "logical or",
    symbol="or",
    user=False,
    grad_args=(),
    value_range=iv.unbounded,
    fold=lambda a, b: a or b,
    lanes=ELEMENTWISE,
    sharding=LOCAL,
    keep_dtype=(0, 1),
)
define(
    "not",
    X,
    "operator",
    logical,
    "logical not",
    symbol="not",
    user=False,
    grad_args=(),
    value_range=iv.unbounded,
    fold=operator.not_,
    lanes=ELEMENTWISE,
    sharding=LOCAL,
    keep_dtype=(0,),
)
