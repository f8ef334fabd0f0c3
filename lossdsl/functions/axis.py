"""Functions along one axis: each lane of the result reads every lane along `axis`."""

from __future__ import annotations

from ..ir import Apply, Node
from ..types import FLOAT, ONE, TensorType
from . import intervals as iv
from .intervals import INF
from .shapes import along_axis
from .table import MIXES, NoRule, Param, define

AXIS = (Param("x"), Param("axis", "axis", -1))
HAS_AXIS = NoRule("its operand has at least one axis: there is no scalar to fold")


def refused_along_sharded_axis(what: str):
    """An op that reads the whole of its axis (an order, a running total, a softmax) compares
    or accumulates lanes held by different replicas when that axis is the sharded one."""

    def shard(g, n: Apply) -> Node:
        if n.args[0].type.shape[n.attr("axis")] == g.dim:
            g.fail(n, what)
        return n

    return shard


def _kept(n: Apply) -> TensorType:
    """The type of a sum along the node's axis, keeping it."""
    axis = n.attr("axis")
    return TensorType(FLOAT, tuple(ONE if i == axis else d for i, d in enumerate(n.type.shape)))


def _sum_along(b, x, n: Apply):
    return b.ap("sum", (x,), _kept(n), (("axis", (n.attr("axis"),)), ("keepdims", True)))


def _log_softmax_vjp(b, n, g, give):
    soft = b.ap("exp", (n,), n.type)
    give(n.args[0], b.sub(g, b.mul(soft, _sum_along(b, g, n), n.type), n.type))


def _softmax_vjp(b, n, g, give):
    total = _sum_along(b, b.mul(g, n, n.type), n)
    give(n.args[0], b.mul(n, b.sub(g, total, n.type), n.type))


def _cumsum_range(a, n):
    return iv.FULL if a[0][0] < 0 else a[0]


def _cumprod_range(a, n):
    lo, hi = a[0]
    if lo >= 0:
        return (0.0, 1.0 if hi <= 1 else INF)  # products of values in [0, 1] stay there
    return iv.FULL


define(
    "softmax",
    AXIS,
    "axis",
    along_axis("float"),
    "softmax along `axis`",
    vjp=_softmax_vjp,
    value_range=iv.constant(0.0, 1.0),
    fold=HAS_AXIS,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("a softmax"),
)
define(
    "log_softmax",
    AXIS,
    "axis",
    along_axis("float"),
    "log(softmax(x)), stable",
    vjp=_log_softmax_vjp,
    value_range=iv.unbounded,
    fold=HAS_AXIS,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("a log-softmax"),
)
define(
    "cumsum",
    AXIS,
    "axis",
    along_axis("same"),
    "running sum along `axis`",
    vjp=NoRule("the framework differentiates it"),
    value_range=_cumsum_range,
    fold=lambda a: a,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("a running sum"),
)
define(
    "cumprod",
    AXIS,
    "axis",
    along_axis("same"),
    "running product along `axis`",
    grad="exact where x has zeros: each factor's gradient is the product of the others (TensorFlow's gives 0)",
    vjp=NoRule("the framework differentiates it"),
    value_range=_cumprod_range,
    fold=lambda a: a,
    lanes=MIXES,
    sharding=refused_along_sharded_axis("a running product"),
)
define(
    "logcumsumexp",
    AXIS,
    "axis",
    along_axis("float"),
    "log(cumsum(exp(x))) along `axis`, stable for large |x|",
    known_as=("cumulative_logsumexp", "cumlogsumexp"),
    grad="each element's share e^x_i / sum of e^x_j over the prefix, as softmax",
    vjp=NoRule("the framework differentiates it"),
    value_range=lambda a, n: (a[0][0], INF),
    fold=lambda a: float(a),
    lanes=MIXES,
    sharding=refused_along_sharded_axis("a running log-sum-exp"),
)
