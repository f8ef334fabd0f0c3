"""Conversions and the gradient stop, and the internal functions the lowering inserts."""

from __future__ import annotations

from ..ir import Apply
from ..types import FLOAT, INT
from . import intervals as iv
from .shapes import cast_to, identity
from .table import ELEMENTWISE, LOCAL, MIXES, NoRule, Param, define

X = (Param("x"),)
NO_GRAD = "none: stops the gradient"
_EACH = {"lanes": ELEMENTWISE, "sharding": LOCAL}


def _cast_float_vjp(b, n, g, give):
    if n.args[0].type.dtype is FLOAT:  # an int or bool operand has no gradient
        give(n.args[0], g)


define(
    "float",
    X,
    "conversion",
    cast_to(FLOAT),
    "to the compute dtype",
    cast="convert",
    vjp=NoRule("replaced by `cast_float` before differentiation"),
    value_range=iv.same_as_operand,
    fold=float,
    **_EACH,
)
define(
    "int",
    X,
    "conversion",
    cast_to(INT),
    "to int, truncating toward zero",
    grad_args=(),
    grad=NO_GRAD,
    cast="convert",
    value_range=iv.unbounded,
    fold=int,
    **_EACH,
)
define(
    "stop_gradient",
    X,
    "gradient",
    identity,
    "x, with no gradient",
    known_as=("detach",),
    grad_args=(),
    grad=NO_GRAD,
    value_range=iv.same_as_operand,
    fold=lambda a: a,
    keep_dtype=(0,),
    **_EACH,
)

# Inserted by the lowering passes, never written by users.
define(
    "cast_float",
    X,
    "internal",
    cast_to(FLOAT),
    "conversion to the compute dtype",
    user=False,
    vjp=_cast_float_vjp,
    value_range=iv.same_as_operand,
    fold=float,
    keep_dtype=(0,),
    **_EACH,
)
define(
    "cast_int",
    X,
    "internal",
    cast_to(INT),
    "conversion to int",
    user=False,
    grad_args=(),
    value_range=iv.unbounded,
    fold=int,
    keep_dtype=(0,),
    **_EACH,
)
define(
    "ones_like",
    X,
    "internal",
    cast_to(FLOAT),
    "ones of x's shape in the compute dtype",
    user=False,
    grad_args=(),
    value_range=iv.constant(1.0, 1.0),
    fold=lambda a: 1,
    keep_dtype=(0,),
    **_EACH,
)

# Collectives, inserted by lossdsl/sharding.py: lane-wise in shape, but across replicas.
_COLLECTIVE = {
    "lanes": MIXES,
    "sharding": NoRule("inserted by the sharding pass itself"),
    "fold": NoRule("a value of every replica"),
    "value_range": iv.unbounded,
    "user": False,
}
define(
    "all_sum",
    X,
    "internal",
    identity,
    "sum over the replicas of a sharded dimension (lossdsl/sharding.py)",
    vjp=NoRule("each backend's collective has its own backward (docs/distributed.md)"),
    **_COLLECTIVE,
)
define(
    "all_max",
    X,
    "internal",
    identity,
    "max over the replicas (of a value with no gradient)",
    grad_args=(),
    **_COLLECTIVE,
)
define(
    "all_min",
    X,
    "internal",
    identity,
    "min over the replicas (of a value with no gradient)",
    grad_args=(),
    **_COLLECTIVE,
)

# The backward of a derived gradient (lossdsl/autodiff.py): shape bookkeeping, built after
# every analysis and pass.
_BACKWARD = {
    "lanes": MIXES,
    "sharding": NoRule("built after the sharding pass"),
    "fold": NoRule("built after constant folding"),
    "value_range": NoRule("built after the domain analysis"),
    "user": False,
    "grad_args": (),
    "shape_only": (1,),
}
_LINEAR_IN_G = {**_BACKWARD, "linear_in": (0,)}
define(
    "sum_to", (Param("g"), Param("like")), "internal", identity, "g summed down to the shape of `like`", **_LINEAR_IN_G
)
define(
    "unreduce",
    (Param("g"), Param("like")),
    "internal",
    identity,
    "the gradient of a reduction spread back over the reduced axes of `like`",
    **_LINEAR_IN_G,
)
define(
    "relu_grad",
    (Param("g"), Param("x")),
    "internal",
    identity,
    "the gradient of relu: 0 where x <= 0, else g (one pass, as the frameworks' own relu backward)",
    **{**_LINEAR_IN_G, "shape_only": ()},
)
define(
    "sigmoid_grad",
    (Param("g"), Param("y")),
    "internal",
    identity,
    "the gradient of sigmoid from its value y: g * y * (1 - y) (one pass, as the frameworks' own)",
    **{**_LINEAR_IN_G, "shape_only": ()},
)
define(
    "tanh_grad",
    (Param("g"), Param("y")),
    "internal",
    identity,
    "the gradient of tanh from its value y: g * (1 - y^2) (one pass, as the frameworks' own)",
    **{**_LINEAR_IN_G, "shape_only": ()},
)
define(
    "index_grad",
    (Param("g"), Param("like")),
    "internal",
    identity,
    "the gradient of an index: g placed in zeros of `like`'s shape",
    **_BACKWARD,
)


def _kernel_sharding(g, node: Apply) -> Apply:
    # Kernels are selected after the sharding pass, except a language-model head whose vocabulary
    # is the split dimension: the pass selects it itself and the kernel reduces across replicas.
    if node.attr("sharded") != g.sym:
        raise AssertionError(f"kernel `{node.attr('kernel')}` before the sharding pass")
    return node


def _kernel_lanes(n: Apply) -> str:
    # An elementwise fused loss (mse, huber... per element) treats the lanes of its operands.
    return ELEMENTWISE if n.attr("reduction") == "none" else MIXES


define(
    "kernel",
    (),
    "internal",
    identity,
    "a loss a framework ships fused (lossdsl/kernels.py); attrs name it",
    user=False,
    grad_args=(0, 1, 2),
    vjp=NoRule("the framework differentiates its fused loss"),
    value_range=NoRule("selected after the domain analysis"),
    fold=NoRule("its operands are tensors"),
    lanes=_kernel_lanes,
    sharding=_kernel_sharding,
)
