"""Linear algebra (the matrix product `@` is an operator, in operators.py)."""

from __future__ import annotations

from ..ir import Apply, Node
from ..types import FLOAT, TensorType
from . import intervals as iv
from .shapes import dot, transpose
from .table import LOCAL, MIXES, NoRule, Param, define


def _dot_sharding(g, n: Apply) -> Node:
    """`dot` along the sharded axis: the sum of the replicas' partial sums."""
    a, b = n.args
    if not a.type.shape:
        return n
    rank, axis = max(a.type.rank, b.type.rank), n.attr("axis")
    for t in (a.type, b.type):
        k = axis - (rank - t.rank)
        if 0 <= k < t.rank and t.shape[k] == g.dim:
            g.made_global.append(n)
            return g.all_sum(n)
    return n


define(
    "dot",
    (Param("a"), Param("b"), Param("axis", "axis", -1)),
    "linalg",
    dot,
    "sum(a * b, axis)",
    grad_args=(0, 1),
    vjp=NoRule("the framework differentiates it"),
    value_range=iv.unbounded,
    fold=NoRule("its operands have at least one axis"),
    lanes=MIXES,
    sharding=_dot_sharding,
)
define(
    "transpose",
    (Param("x"),),
    "linalg",
    transpose,
    "swap the last two axes",
    vjp=lambda b, n, g, give: give(n.args[0], b.ap("transpose", (g,), TensorType(FLOAT, n.args[0].type.shape))),
    value_range=iv.same_as_operand,
    fold=NoRule("its operand has at least two axes"),
    lanes=MIXES,
    sharding=LOCAL,
)  # each replica's rows stay its own
