"""Layout: functions that move or extend axes without computing on values (`permute`, `pad`)."""

from __future__ import annotations

from ..ir import Apply, Index, Node, SliceItem
from ..types import FLOAT, TensorType
from . import intervals as iv
from .shapes import pad, permute
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


def _pad_sharding(g, n: Apply) -> Node:
    if n.args[0].type.shape[n.attr("axis")] == g.dim:
        g.fail(n, "`pad`")
    return n


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
    sharding=_pad_sharding,
)
