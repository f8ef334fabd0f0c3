"""Tensors built from sizes: `arange`, `eye`, and `diag`, which spreads a vector over a square."""

from __future__ import annotations

from ..ir import Apply, Node
from . import intervals as iv
from .shapes import arange, diag, eye
from .table import MIXES, NoRule, Param, define

SIZE = (Param("N", "dim"),)
NOT_SCALAR = NoRule("its result has an axis: there is no scalar to fold")


def _refused_over_sharded_size(what: str):
    """Positions along the sharded dimension are global ones, which a replica does not know."""

    def shard(g, n: Apply) -> Node:
        if n.attr("size") == g.dim:
            g.fail(n, what)
        return n

    return shard


def _diag_sharding(g, n: Apply) -> Node:
    if n.args[0].type.shape[-1] == g.dim:
        g.fail(n, "`diag`")
    return n


define(
    "arange",
    SIZE,
    "construction",
    arange,
    "int[N]: 0, 1, ..., N - 1",
    known_as=("range",),
    grad_args=(),
    value_range=lambda a, n: (0.0, iv.INF),
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_refused_over_sharded_size("`arange`"),
)
define(
    "eye",
    SIZE,
    "construction",
    eye,
    "float[N, N]: 1 on the diagonal, 0 elsewhere",
    known_as=("identity",),
    grad_args=(),
    value_range=iv.constant(0.0, 1.0),
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_refused_over_sharded_size("`eye`"),
)
define(
    "diag",
    (Param("x"),),
    "construction",
    diag,
    "[..., N, N] with the last axis of x on the diagonal, 0 elsewhere",
    known_as=("diag_embed", "diagflat"),
    vjp=NoRule("the framework differentiates it"),
    value_range=lambda a, n: iv.hull(a[0], (0.0, 0.0)),
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_diag_sharding,
)
