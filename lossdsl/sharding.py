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

Reductions over other axes stay local. What cannot be computed from per-replica partial
results without moving the data — `prod`, `argmax`/`argmin`, `softmax`, `log_softmax` and
`cumsum` along `B`, slicing or gathering along `B` — is an error at compile time (E811).

Gradients. The backward of `all_sum` is chosen per framework so that its own data-parallel
aggregation yields the gradient of the global loss (docs/distributed.md): PyTorch's DDP
averages the replicas' gradients, so torch's `all_sum` passes the summed gradient back (the
derivative of the replicated global loss); TensorFlow's MirroredStrategy sums them, so its
`all_sum` passes the gradient through unchanged; JAX's `psum` under `shard_map` is
differentiated by JAX itself.
"""

from __future__ import annotations

from .diagnostics import Diagnostic, LossError
from .ir import Apply, Const, DimSize, Gather, Index, Node, SliceItem
from .passes import rewrite_bottom_up
from .types import BOOL, FLOAT, INT, ONE, Dim, TensorType

_UNSUPPORTED = {"prod": "a product", "argmax": "an index", "argmin": "an index", "softmax": "a softmax",
                "log_softmax": "a log-softmax", "cumsum": "a running sum"}


def _apply(fn, args, t, span, attrs=()):
    return Apply(t, span, fn, tuple(args), tuple(attrs))


def _scalar(dtype=FLOAT) -> TensorType:
    return TensorType(dtype)


class _Globalizer:
    def __init__(self, sym: str, source_name: str):
        self.sym = sym
        self.dim = Dim(sym)
        self.made_global: list[Node] = []
        self.source_name = source_name

    def fail(self, node: Node, what: str) -> None:
        raise LossError([Diagnostic(
            f"{what} along the sharded dimension `{self.sym}` needs the whole batch on one replica", node.span,
            "E811", help=f"compute it on each replica's part (along another axis), or compile without "
                         f"`sharded={self.sym!r}` and gather the batch first")])

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
        return _apply("all_sum", (x,), x.type, x.span)

    def all_max(self, x: Node, fn: str = "all_max") -> Node:
        sg = _apply("stop_gradient", (x,), x.type, x.span)
        return _apply(fn, (sg,), x.type, x.span)

    def reduce(self, fn: str, x: Node, axes, keep: bool, span, dtype=None) -> Node:
        shape = tuple(ONE if i in axes else d for i, d in enumerate(x.type.shape)) if keep else tuple(
            d for i, d in enumerate(x.type.shape) if i not in axes)
        return _apply(fn, (x,), TensorType(dtype or x.type.dtype, shape), span,
                      (("axis", tuple(axes)), ("keepdims", keep)))

    def global_count(self, x: Node, axes, span) -> Node:
        """The number of elements reduced, over all replicas, as a float scalar."""
        local = _apply("cast_float", (DimSize(_scalar(INT), span, self.dim),), _scalar(), span)
        total: Node = self.all_sum(local)
        for k in axes:
            d = x.type.shape[k]
            if d == self.dim:
                continue
            size = Const(_scalar(), span, float(d.value)) if d.is_literal else _apply(
                "cast_float", (DimSize(_scalar(INT), span, d),), _scalar(), span)
            total = _apply("mul", (total, size), _scalar(), span)
        return total

    @staticmethod
    def bcast(a: Node, b: Node, fn: str, t: TensorType, span) -> Node:
        return _apply(fn, (a, b), t, span)

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
        fn = node.fn
        if fn in ("sum", "mean", "max", "min", "logsumexp", "var", "std", "norm", "prod", "argmax", "argmin"):
            x = node.args[0]
            axes = node.attr("axis")
            if not self.axes_on(x, axes):
                return node
            if fn in _UNSUPPORTED:
                self.fail(node, _UNSUPPORTED[fn])
            self.made_global.append(node)
            return getattr(self, "_" + fn)(node, x, axes, bool(node.attr("keepdims")))
        if fn in ("softmax", "log_softmax", "cumsum"):
            if node.args[0].type.shape[node.attr("axis")] == self.dim:
                self.fail(node, _UNSUPPORTED[fn])
            return node
        if fn == "pick" and node.args[0].type.shape[-1] == self.dim:
            self.fail(node, "`pick`")
        if fn == "one_hot" and node.attr("depth") == self.dim:
            self.fail(node, "`one_hot`")
        if fn in ("segment_sum", "segment_mean"):
            v, ids = node.args
            if self.dim in ids.type.shape:
                self.made_global.append(node)
                return self._segment(node, v, ids)
            return node
        if fn == "dot":
            if node.args[0].type.shape and self._dot_axis_is_sharded(node):
                self.made_global.append(node)
                return self.all_sum(node)
            return node
        if fn == "matmul":
            a = node.args[0]
            if a.type.shape and a.type.shape[-1] == self.dim:
                self.made_global.append(node)
                return self.all_sum(node)
            return node
        return node

    def _dot_axis_is_sharded(self, node: Apply) -> bool:
        a, b = node.args
        rank = max(a.type.rank, b.type.rank)
        axis = node.attr("axis")
        for t in (a.type, b.type):
            k = axis - (rank - t.rank)
            if 0 <= k < t.rank and t.shape[k] == self.dim:
                return True
        return False

    def _sum(self, node, x, axes, keep):
        return self.all_sum(node)

    def _mean(self, node, x, axes, keep):
        total = self.all_sum(self.reduce("sum", x, axes, keep, node.span))
        return _apply("div", (total, self.global_count(x, axes, node.span)), node.type, node.span)

    def _max(self, node, x, axes, keep, fn="max"):
        collective = "all_max" if fn == "max" else "all_min"
        value = self.all_max(self.reduce(fn, x, axes, keep, node.span), collective)
        if x.type.dtype is not FLOAT:
            return value
        # The value is the global max; the gradient goes in equal parts to the tied elements on
        # every replica: (S - stop_gradient(S)) / k is 0, with gradient 1/k on each tie.
        m_keep = self.all_max(self.reduce(fn, x, axes, True, node.span), collective)
        tie = _apply("eq", (x, m_keep), TensorType(BOOL, x.type.shape), node.span)
        zero = Const(_scalar(), node.span, 0.0)
        picked = _apply("where", (tie, x, zero), x.type, node.span)
        s = self.all_sum(self.reduce("sum", picked, axes, keep, node.span))
        ones = _apply("cast_float", (tie,), x.type, node.span)
        k = self.all_sum(self.reduce("sum", ones, axes, keep, node.span))
        diff = _apply("sub", (s, _apply("stop_gradient", (s,), s.type, node.span)), s.type, node.span)
        return _apply("add", (value, _apply("div", (diff, k), s.type, node.span)), node.type, node.span)

    def _min(self, node, x, axes, keep):
        return self._max(node, x, axes, keep, fn="min")

    def _logsumexp(self, node, x, axes, keep):
        m_keep = self.all_max(self.reduce("max", x, axes, True, node.span))
        m_out = self.all_max(self.reduce("max", x, axes, keep, node.span))
        shifted = _apply("exp", (_apply("sub", (x, m_keep), x.type, node.span),), x.type, node.span)
        total = self.all_sum(self.reduce("sum", shifted, axes, keep, node.span))
        return _apply("add", (m_out, _apply("log", (total,), total.type, node.span)), node.type, node.span)

    def _var(self, node, x, axes, keep, root=False):
        n = self.global_count(x, axes, node.span)
        mean = _apply("div", (self.all_sum(self.reduce("sum", x, axes, True, node.span)), n),
                      self.reduce("sum", x, axes, True, node.span).type, node.span)
        dev = _apply("square", (_apply("sub", (x, mean), x.type, node.span),), x.type, node.span)
        ss = self.all_sum(self.reduce("sum", dev, axes, keep, node.span))
        ddof = node.attr("ddof") or 0
        denom = _apply("sub", (n, Const(_scalar(), node.span, float(ddof))), _scalar(), node.span) if ddof else n
        v = _apply("div", (ss, denom), node.type, node.span)
        return _apply("sqrt", (v,), node.type, node.span) if root else v

    def _std(self, node, x, axes, keep):
        return self._var(node, x, axes, keep, root=True)

    def _norm(self, node, x, axes, keep):
        p = node.attr("p")
        span = node.span
        absx = _apply("abs", (x,), x.type, span)
        if p == 1:
            return self.all_sum(self.reduce("sum", absx, axes, keep, span))
        powered = _apply("square", (x,), x.type, span) if p == 2 else _apply(
            "pow", (absx, Const(_scalar(), span, float(p))), x.type, span)
        s = self.all_sum(self.reduce("sum", powered, axes, keep, span))
        zero, one = Const(_scalar(), span, 0.0), Const(_scalar(), span, 1.0)
        nonzero = _apply("gt", (s, zero), TensorType(BOOL, s.type.shape), span)
        safe = _apply("where", (nonzero, s, one), s.type, span)
        root = _apply("sqrt", (safe,), s.type, span) if p == 2 else _apply(
            "pow", (safe, Const(_scalar(), span, 1.0 / p)), s.type, span)
        return _apply("where", (nonzero, root, zero), node.type, span)

    def _segment(self, node, v, ids):
        groups = node.attr("groups")
        span = node.span
        if node.fn == "segment_sum":
            return self.all_sum(node)
        vf = v if v.type.dtype is FLOAT else _apply("cast_float", (v,), v.type.with_dtype(FLOAT), span)
        out_t = TensorType(FLOAT, node.type.shape)
        total = self.all_sum(_apply("segment_sum", (vf, ids), out_t, span, (("groups", groups),)))
        ones = _apply("ones_like", (ids,), ids.type.with_dtype(FLOAT), span)
        count_t = TensorType(FLOAT, (groups,))
        count = self.all_sum(_apply("segment_sum", (ones, ids), count_t, span, (("groups", groups),)))
        one = Const(_scalar(), span, 1.0)
        count = _apply("maximum", (count, one), count_t, span)
        if out_t.rank > 1:
            items = (SliceItem(None, None, None),) + (None,) * (out_t.rank - 1)
            count = Index(TensorType(FLOAT, (groups,) + (ONE,) * (out_t.rank - 1)), span, count, items)
        return _apply("div", (total, count), out_t, span)


def _consumed(node: Index):
    """The index item applied to each axis of node.x (None items insert axes and are skipped)."""
    return [it for it in node.items if it is not None]


def _full(item) -> bool:
    return isinstance(item, SliceItem) and item.start is None and item.stop is None and item.step in (None, 1)


def globalize(root: Node, sym: str, source_name: str = "") -> tuple[Node, list[Node]]:
    g = _Globalizer(sym, source_name)
    return rewrite_bottom_up(root, g.visit), g.made_global
