"""Data parallelism: the loss of the global batch when a dimension is split across replicas.

    globalize(root, "B") -> (root, [the reductions made global])

With `lossdsl.compile(spec, ..., sharded="B")` every replica holds a slice of the axis `B`
(usually the batch). Each reduction over `B` is then computed over the global batch with the
framework's collectives (`all_sum`, `all_max`, `all_min` nodes, printed by each backend):

    sum(x)          all_sum(sum(x))
    mean(x)         all_sum(sum(x)) / all_sum(local size)
    max/min(x)      the global max; the gradient split evenly among ties on every replica
    logsumexp(x)    m + log(all_sum(sum(exp(x - m)))), m the global max
    var/std(x)      around the global mean, over the global count
    norm(x)         the root of all_sum(sum(|x|^p)), gradient 0 at 0 as always
    segment_*       all_sum of the per-group sums (and counts)
    a @ b, dot      all_sum when the contracted axis is `B`
    B as a value    the global size

Each function's rule is in the function table (`sharding` in lossdsl/functions/), written
with the building blocks of `_Globalizer` below; elementwise functions need none (`LOCAL`).
Reductions over other axes stay local. What cannot be computed from per-replica partial
results without moving the data — `prod`, `argmax`/`argmin`, `softmax`, `log_softmax` and
`cumsum` along `B`, slicing or gathering along `B` — is an error at compile time (E811).

A split vocabulary (`sharded="V"` with V the first axis of W in `h @ transpose(W)`, the
language-model head): the head is selected first as one kernel marked `sharded`, whose
statistics each replica combines with collectives (lossdsl/lm_head.py); sizes of V elsewhere are
the global size, as above.

Gradients. The backward of `all_sum` is chosen per framework so that its own data-parallel
aggregation yields the gradient of the global loss (docs/distributed.md): PyTorch's DDP
averages the replicas' gradients, so torch's `all_sum` passes the summed gradient back (the
derivative of the replicated global loss); TensorFlow's MirroredStrategy sums them, so its
`all_sum` passes the gradient through unchanged; JAX's `psum` under `shard_map` is
differentiated by JAX itself.
"""

from __future__ import annotations

from .diagnostics import Diagnostic, LossError
from .functions import FUNCTIONS, LOCAL, NoRule
from .ir import Apply, Const, DimSize, Gather, Index, Node, SliceItem, apply, describe, rewrite_bottom_up, topological
from .lm_head import shard_vocabulary, split_collectives
from .types import FLOAT, INT, ONE, Dim, TensorType


def _scalar(dtype=FLOAT) -> TensorType:
    return TensorType(dtype)


class _Globalizer:
    def __init__(self, sym: str, source_name: str):
        self.sym = sym
        self.dim = Dim(sym)
        self.made_global: list[Node] = []
        self.source_name = source_name

    def fail(self, node: Node, what: str) -> None:
        raise LossError(
            [
                Diagnostic(
                    f"{what} along the sharded dimension `{self.sym}` needs the whole batch on one replica",
                    node.span,
                    "E811",
                    help=f"compute it on each replica's part (along another axis), or compile without "
                    f"`sharded={self.sym!r}` and gather the batch first",
                )
            ]
        )

    def axes_on(self, x: Node, axes) -> list[int]:
        hits = []
        for k in axes:
            d = x.type.shape[k]
            if d.sym == self.sym and d.offset != 0:
                self.fail(x, f"a slice of `{self.sym}`")
            if d == self.dim:
                hits.append(k)
        return hits

    # ---- building blocks ----
    def all_sum(self, x: Node) -> Node:
        return apply("all_sum", (x,), x.type, x.span)

    def all_max(self, x: Node, fn: str = "all_max") -> Node:
        sg = apply("stop_gradient", (x,), x.type, x.span)
        return apply(fn, (sg,), x.type, x.span)

    def reduce(self, fn: str, x: Node, axes, keep: bool, span, dtype=None) -> Node:
        shape = (
            tuple(ONE if i in axes else d for i, d in enumerate(x.type.shape))
            if keep
            else tuple(d for i, d in enumerate(x.type.shape) if i not in axes)
        )
        return apply(
            fn, (x,), TensorType(dtype or x.type.dtype, shape), span, (("axis", tuple(axes)), ("keepdims", keep))
        )

    def global_count(self, x: Node, axes, span) -> Node:
        """The number of elements reduced, over all replicas, as a float scalar."""
        local = apply("cast_float", (DimSize(_scalar(INT), span, self.dim),), _scalar(), span)
        total: Node = self.all_sum(local)
        for k in axes:
            d = x.type.shape[k]
            if d == self.dim:
                continue
            size = (
                Const(_scalar(), span, float(d.value))
                if d.is_literal
                else apply("cast_float", (DimSize(_scalar(INT), span, d),), _scalar(), span)
            )
            total = apply("mul", (total, size), _scalar(), span)
        return total

    # ---- the rewrite ----
    def visit(self, node: Node) -> Node:
        if isinstance(node, DimSize):
            if node.dim == self.dim:
                self.made_global.append(node)
                return self.all_sum(node)
            if node.dim.sym == self.sym:
                self.fail(node, f"the size `{node.dim}`")
            return node
        if isinstance(node, Index):
            for k, item in enumerate(_consumed(node)):
                if item is not None and node.x.type.shape[k] == self.dim and not _full(item):
                    self.fail(node, "indexing")
            return node
        if isinstance(node, Gather):
            if any(node.x.type.shape[k] == self.dim for k in range(len(node.indices))):
                self.fail(node, "a gather")
            return node
        if not isinstance(node, Apply):
            return node
        rule = FUNCTIONS[node.fn].sharding
        if rule == LOCAL:
            return node
        if isinstance(rule, (NoRule, str)):
            raise AssertionError(f"`{node.fn}` before the sharding pass: {rule}")
        return rule(self, node)


def _consumed(node: Index):
    """The index item applied to each axis of node.x (None items insert axes and are skipped)."""
    return [it for it in node.items if it is not None]


def _full(item) -> bool:
    return isinstance(item, SliceItem) and item.start is None and item.stop is None and item.step in (None, 1)


def globalize(root: Node, sym: str, source_name: str = "") -> tuple[Node, list[Node]]:
    g = _Globalizer(sym, source_name)
    root = shard_vocabulary(root, sym)
    # a head split along `sym` combines its statistics with collectives of its own
    g.made_global += [n for n in topological(root) if isinstance(n, Apply) and n.attr("sharded") == sym]
    return rewrite_bottom_up(root, g.visit), g.made_global


def describe_global(node: Node) -> str:
    """A reduction made global, for `global_reductions` and `lossdsl ir --sharded`: what it is and where."""
    what = split_collectives(node) if isinstance(node, Apply) and node.attr("sharded") else describe(node)
    return f"{what} at line {node.span.line}, column {node.span.col}"
