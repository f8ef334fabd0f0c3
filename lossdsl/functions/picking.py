"""Picking and grouping: functions that read some of their operands as indices."""

from __future__ import annotations

from ..ir import Apply, Const, Index, Node, SliceItem
from ..types import FLOAT, ONE, TensorType
from . import intervals as iv
from .shapes import one_hot, pick, segment
from .table import MIXES, ROWS, NoRule, Param, define

FRAMEWORK = NoRule("the framework differentiates a gather or scatter")
NOT_SCALAR = NoRule("its operands have at least one axis: there is no scalar to fold")


def _pick_sharding(g, n: Apply) -> Node:
    if n.args[0].type.shape[-1] == g.dim:
        g.fail(n, "`pick`")
    return n


def _one_hot_sharding(g, n: Apply) -> Node:
    if n.attr("depth") == g.dim:
        g.fail(n, "`one_hot`")
    return n


def _segment_sharding(g, n: Apply) -> Node:
    """Grouping rows spread over replicas: the sum of the per-replica group sums (and counts)."""
    v, ids = n.args
    if g.dim not in ids.type.shape:
        return n
    g.made_global.append(n)
    if n.fn == "segment_sum":
        return g.all_sum(n)
    groups, span = n.attr("groups"), n.span
    vf = v if v.type.dtype is FLOAT else Apply(v.type.with_dtype(FLOAT), span, "cast_float", (v,))
    out_t = TensorType(FLOAT, n.type.shape)
    total = g.all_sum(Apply(out_t, span, "segment_sum", (vf, ids), (("groups", groups),)))
    ones = Apply(ids.type.with_dtype(FLOAT), span, "ones_like", (ids,))
    count_t = TensorType(FLOAT, (groups,))
    count: Node = g.all_sum(Apply(count_t, span, "segment_sum", (ones, ids), (("groups", groups),)))
    count = Apply(count_t, span, "maximum", (count, Const(TensorType(FLOAT), span, 1.0)))
    if out_t.rank > 1:
        items = (SliceItem(None, None, None),) + (None,) * (out_t.rank - 1)
        count = Index(TensorType(FLOAT, (groups,) + (ONE,) * (out_t.rank - 1)), span, count, items)
    return Apply(out_t, span, "div", (total, count))


def _segment_ids(n: Apply):
    return [(n.args[1], n.attr("groups"))]


define(
    "pick",
    (Param("x"), Param("idx")),
    "picking",
    pick,
    "x[..., idx[...]] along the last axis; idx has x's shape less the last axis",
    known_as=("take_along_axis", "gather"),
    vjp=FRAMEWORK,
    value_range=iv.same_as_operand,
    fold=NOT_SCALAR,
    lanes=ROWS,
    sharding=_pick_sharding,
    safe={1: 0},
    keep_dtype=(1,),
    index_operands=lambda n: [(n.args[1], n.args[0].type.shape[-1])],
)
define(
    "one_hot",
    (Param("idx"), Param("C", "dim")),
    "picking",
    one_hot,
    "float[..., C]: 1 at idx, 0 elsewhere (also 0 everywhere for an idx outside [0, C))",
    grad_args=(),
    value_range=iv.constant(0.0, 1.0),
    fold=NoRule("its result has an axis more than its operand"),
    lanes=MIXES,
    sharding=_one_hot_sharding,
    keep_dtype=(0,),
    index_operands=lambda n: [(n.args[0], n.attr("depth"))],
)
define(
    "segment_sum",
    (Param("v"), Param("ids"), Param("G", "dim")),
    "group",
    segment("same"),
    "sum of the rows of v with each id, shape [G, ...]; ids outside [0, G) are dropped",
    vjp=FRAMEWORK,
    value_range=lambda a, n: iv.sum_of(a[0]),
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_segment_sharding,
    keep_dtype=(1,),
    index_operands=_segment_ids,
)
define(
    "segment_mean",
    (Param("v"), Param("ids"), Param("G", "dim")),
    "group",
    segment("float"),
    "mean of the rows of v with each id, shape [G, ...]; the mean of an empty group is 0",
    vjp=FRAMEWORK,
    value_range=iv.unbounded,
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_segment_sharding,
    keep_dtype=(1,),
    index_operands=_segment_ids,
)
