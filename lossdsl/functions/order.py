"""Order along an axis: `sort`, `argsort`, `topk`, `argtopk`.

Each is one stable permutation of the axis, read with a gather: a value's gradient goes back
to the element that was moved to its position, and tied elements keep their order (the first
in the operand comes first), so on every backend the same element gets the same share of the
gradient (docs/language.md §4)."""

from __future__ import annotations

from . import intervals as iv
from .axis import AXIS, HAS_AXIS, refused_along_sharded_axis
from .intervals import INF
from .shapes import along_axis, top
from .table import MIXES, NoRule, Param, define

TOP = (Param("x"), Param("k", "int"), Param("axis", "axis", -1))
GATHERED = NoRule("the framework differentiates the gather by the permutation")
STABLE = "through the permutation: each value's gradient goes to the element moved there; ties keep their order"


define(
    "sort",
    AXIS,
    "order",
    along_axis("same"),
    "x sorted along `axis`, smallest first; stable",
    grad=STABLE,
    vjp=GATHERED,
    value_range=iv.same_as_operand,
    fold=HAS_AXIS,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("a sort"),
)
define(
    "argsort",
    AXIS,
    "order",
    along_axis("index"),
    "int: the positions that sort x along `axis`, smallest first; ties in their order",
    grad_args=(),
    value_range=iv.constant(0.0, INF),
    fold=HAS_AXIS,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("an argsort"),
    keep_dtype=(0,),  # positions of the values as they are, not of the values made int
)
define(
    "topk",
    TOP,
    "order",
    top("same"),
    "the k largest values along `axis`, largest first (an axis of size k); ties: the first first",
    known_as=("top_k",),
    grad=STABLE,
    vjp=GATHERED,
    value_range=iv.same_as_operand,
    fold=HAS_AXIS,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("a top-k"),
)
define(
    "argtopk",
    TOP,
    "order",
    top("index"),
    "int: the positions of the k largest values along `axis`, largest first; ties: the first first",
    grad_args=(),
    value_range=iv.constant(0.0, INF),
    fold=HAS_AXIS,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("an argtopk"),
    keep_dtype=(0,),
)
