"""Layout: functions that move, extend or join axes without computing on values (`permute`,
`pad`, `concat`, `stack`)."""

from __future__ import annotations

from ..ir import Apply, Index, Node, SliceItem
from ..types import FLOAT, TensorType
from . import intervals as iv
from .axis import refused_along_sharded_axis
from .shapes import concat, flatten, pad, permute, stack, unflatten
from .table import MIXES, NoRule, Param, define

NOT_SCALAR = NoRule("its operand has at least one axis: there is no scalar to fold")


def _permute_vjp(b, n, g, give):
    perm = n.attr("perm")
    inverse = tuple(perm.index(i) for i in range(len(perm)))
    x = n.args[0]
    give(x, b.ap("permute", (g,), TensorType(FLOAT, x.type.shape), (("perm", inverse),)))


def _permute_sharding(g, n: Apply) -> Node:
    return n  # each replica's rows stay its own, wherever the sharded axis goes


def _pad_vjp(b, n, g, give):
    # the gradient of the padded lanes is dropped: the slice of g where x's lanes are
    x = n.args[0]
    items = tuple(SliceItem(lo or None, -hi if hi else None, None) for lo, hi in n.attr("widths"))
    give(x, Index(TensorType(FLOAT, x.type.shape), n.span, g, items))


define(
    "permute",
    (Param("x"), Param("order", "axis")),
    "layout",
    permute,
    "x with its axes in the order named: `permute(x, [B, H, W, C])`",
    known_as=("transpose_axes",),
    vjp=_permute_vjp,
    value_range=iv.same_as_operand,
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_permute_sharding,
)
define(
    "pad",
    (Param("x"), Param("before", "int"), Param("after", "int"), Param("axis", "axis", -1)),
    "layout",
    pad,
    "x with `before` zeros before and `after` zeros after it along `axis` (size + before + after)",
    vjp=_pad_vjp,
    value_range=lambda a, n: iv.hull(a[0], (0.0, 0.0)),
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("`pad`"),
)


def _concat_sharding(g, n: Apply) -> Node:
    axis = n.attr("axis")
    if any(g.sym in a.type.shape[axis].terms() for a in n.args):
        g.fail(n, "`concat`")
    return n


def _joined_range(a, n):
    return (min(r[0] for r in a), max(r[1] for r in a))


define(
    "concat",
    (Param("xs", "tensors"), Param("axis", "axis", -1)),
    "layout",
    concat,
    "the operands end to end along `axis`, of size the sum of theirs (`A + C`)",
    known_as=("concatenate", "cat"),
    vjp=NoRule("the framework differentiates it"),
    value_range=_joined_range,
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_concat_sharding,
)
define(
    "stack",
    (Param("xs", "tensors"), Param("axis", "axis", 0)),
    "layout",
    stack,
    "operands of one shape along a new axis at `axis`, of size the number of operands",
    vjp=NoRule("the framework differentiates it"),
    value_range=_joined_range,
    fold=NoRule("a list of operands is no scalar"),
    lanes=MIXES,
    sharding=_permute_sharding,  # a new axis: each replica's rows stay its own
)


def _flatten_sharding(g, n: Apply) -> Node:
    x = n.args[0]
    merged = x.type.shape[n.attr("start") : n.attr("end") + 1]
    if any(g.sym in d.symbols() for d in merged):
        g.fail(n, "`flatten`")
    return n


def _unflatten_sharding(g, n: Apply) -> Node:
    if g.sym in n.args[0].type.shape[n.attr("axis")].symbols():
        g.fail(n, "`unflatten`")
    return n


define(
    "flatten",
    (Param("x"), Param("axes", "axis")),
    "layout",
    flatten,
    "adjacent axes merged into one of size their product: `flatten(x, [H, W])` has an axis `H*W`",
    vjp=NoRule("the framework differentiates a reshape"),
    value_range=iv.same_as_operand,
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_flatten_sharding,
)
define(
    "unflatten",
    (Param("x"), Param("sizes", "dims"), Param("axis", "axis", -1)),
    "layout",
    unflatten,
    "an axis of size `H*W` split into `H` and `W`: `unflatten(x, [H, W], axis=-1)`",
    vjp=NoRule("the framework differentiates a reshape"),
    value_range=iv.same_as_operand,
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_unflatten_sharding,
)
