"""Reverse-mode differentiation on the IR: the backward of a loss, derived at compile time.

    derive(root, preds) -> Derivative | None

For a lowered loss whose every operation has a backward rule (`vjp` in the function table,
lossdsl/functions/), the gradient with respect to each pred is
built as IR (it references the forward nodes it needs), so a backend can run the forward without
recording a tape and the backward as one function that reads only what it saved — PyTorch's
`autograd.Function` (backends/torch_backend.py). For anything else (a fused kernel, a gather, a
segment sum...) it returns None and the framework's own autodiff is used.

The rules, with their functions, follow docs/language.md §4: `abs` and `relu` have gradient 0 at 0, `clip` gives x a
gradient of 1 at its bounds, `maximum`/`minimum` split ties 0.5/0.5, the untaken branch of
`where` gets exactly 0, rounding and comparisons stop the gradient. The parity suite runs
through this path on PyTorch wherever it applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from .functions import FUNCTIONS, NoRule
from .ir import Apply, Arg, Const, DimSize, Index, Node, topological
from .types import BOOL, FLOAT, ONE, TensorType


@dataclass
class Derivative:
    seed: Arg  # the incoming gradient, of the root's type
    grads: dict[tuple[str, tuple[str, ...]], Node]  # (pred name, path) -> its gradient


def supported(root: Node) -> bool:
    """Every operation of the loss has a backward rule, or no gradient at all."""
    for n in topological(root):
        if isinstance(n, Apply):
            f = FUNCTIONS[n.fn]
            if f.grad_args and (isinstance(f.vjp, NoRule) or (f.vjp_needs is not None and not f.vjp_needs(n))):
                return False
        elif not isinstance(n, (Arg, Const, DimSize, Index)):
            return False
    return True


class _Builder:
    def __init__(self, span):
        self.span = span
        # One node per (function, operands, attributes): a term two rules build alike (`g / y`
        # in both gradients of a quotient) is computed once in the backward.
        self._made: dict[tuple, Apply] = {}

    def ap(self, fn: str, args, t: TensorType, attrs=()) -> Apply:
        args, attrs = tuple(args), tuple(attrs)
        try:
            key = (fn, tuple(id(a) for a in args), attrs, t)
            hash(key)
        except TypeError:  # an unhashable attribute: a node of its own
            return Apply(t, self.span, fn, args, attrs)
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = Apply(t, self.span, fn, args, attrs)
        return made

    def c(self, v: float) -> Const:
        return Const(TensorType(FLOAT), self.span, float(v))

    def mul(self, a, b, t=None):
        """a * b, with literal factors gathered into one (and dropped when 1), and a literal
        factor moved inside a masked term `where(c, x, 0)` so masked terms can still merge."""
        t = t or _bcast(a, b)
        ka, a = _split_const(a)
        kb, b = _split_const(b)
        k = ka * kb
        if a is None and b is None:
            return self.c(k)
        if a is None or b is None:
            x = a if b is None else b
            if k == 1.0 and x.type.shape == t.shape:
                return x
            masked = _masked(x)
            if masked is not None:
                c, inner, side = masked
                scaled = self.mul(self.c(k), inner)
                return self.where(c, scaled, self.c(0.0), t) if side else self.where(c, self.c(0.0), scaled, t)
            return self.scale(k, x) if x.type.shape == t.shape else self.ap("mul", (self.c(k), x), t)
        for x, y in ((a, b), (b, a)):
            masked = _masked(x)
            if masked is not None and y.type.shape == t.shape == x.type.shape:
                # where(c, m, 0) * y is where(c, m * y, 0): the same work, and it can still merge
                c, inner, side = masked
                scaled = self.mul(self.mul(self.c(k), inner), y)
                return self.where(c, scaled, self.c(0.0), t) if side else self.where(c, self.c(0.0), scaled, t)
        if k != 1.0:  # the factor where it costs least: on the smaller operand, before it is spread out
            if _absorbs(b, t) and not _absorbs(a, t):
                b = self.scale(k, b)
            else:
                a = self.scale(k, a)
        return self.ap("mul", (a, b), t)

    def scale(self, k: float, x: Node) -> Node:
        """k * x with the literal moved into the cheapest place `_absorbs` finds: a reduced
        gradient spread out by `unreduce` is scaled before it is spread (a pass over B values,
        not B * D), a product or quotient on the factor that can take it."""
        ka, rest = _split_const(x)
        if rest is None:
            return self.c(k * ka)
        if ka != 1.0:
            k, x = k * ka, rest
        if k == 1.0:
            return x
        masked = _masked(x)
        if masked is not None:  # k * where(c, m, 0) is where(c, k * m, 0)
            c, inner, side = masked
            scaled = self.scale(k, inner)
            return self.where(c, scaled, self.c(0.0), x.type) if side else self.where(c, self.c(0.0), scaled, x.type)
        if isinstance(x, Apply) and len(x.type.shape) > 0:
            for i in FUNCTIONS[x.fn].linear_in:
                if _absorbs(x.args[i], x.type):
                    args = list(x.args)
                    args[i] = self.scale(k, args[i])
                    return self.ap(x.fn, args, x.type, x.attrs)
        if k == -1.0:
            return self.ap("neg", (x,), x.type)
        return self.ap("mul", (self.c(k), x), x.type)

    def div(self, a, b, t=None):
        return self.ap("div", (a, b), t or _bcast(a, b))

    def add(self, a, b, t=None):
        """a + b; two masked terms of one condition merge: where(c, x, 0) + where(c, 0, y) is
        where(c, x, y), one pass instead of three."""
        t = t or _bcast(a, b)
        ma, mb = _masked(a), _masked(b)
        if ma is not None and mb is not None and ma[0] is mb[0] and a.type == b.type == t:
            c = ma[0]
            if ma[2] != mb[2]:
                taken, other = (ma[1], mb[1]) if ma[2] else (mb[1], ma[1])
                return self.where(c, taken, other, t)
            inner = self.add(ma[1], mb[1])
            return self.where(c, inner, self.c(0.0), t) if ma[2] else self.where(c, self.c(0.0), inner, t)
        return self.ap("add", (a, b), t)

    def sub(self, a, b, t=None):
        return self.ap("sub", (a, b), t or _bcast(a, b))

    def neg(self, a):
        """-a: the sign folded into a literal factor or moved where `scale` moves one, else a negation."""
        if _split_const(a)[0] != 1.0 or (isinstance(a, Apply) and _absorbs(a, a.type)):
            return self.scale(-1.0, a)
        return self.ap("neg", (a,), a.type)

    def where(self, c, a, b, t):
        """where(c, a, b); a branch that is itself a `where` of the same condition is read through:
        where(c, where(c, x, _), y) is where(c, x, y) in every lane, one pass fewer."""
        if _is_where_of(a, c, t):
            a = a.args[1]
        if _is_where_of(b, c, t):
            b = b.args[2]
        return self.ap("where", (c, a, b), t)

    def cmp(self, fn, a, b):
        return self.ap(fn, (a, b), TensorType(BOOL, _bcast(a, b).shape))

    def as_float(self, b):
        return self.ap("cast_float", (b,), TensorType(FLOAT, b.type.shape))

    def float_like(self, a: Node, b: Node) -> TensorType:
        """The float type of a and b broadcast together."""
        return TensorType(FLOAT, _bcast(a, b).shape)


def _absorbs(x: Node, t: TensorType) -> bool:
    """A literal factor of a value of type t costs less on x's side: x is a literal, has fewer
    axes than t (a reduced gradient, a per-sample term), or is linear in an operand that absorbs
    it (`unreduce` of a reduced gradient, a product, a quotient's numerator)."""
    if isinstance(x, Const):
        return not isinstance(x.value, bool)
    if len(x.type.shape) < len(t.shape):
        return True
    if isinstance(x, Apply):
        masked = _masked(x)
        if masked is not None:
            return _absorbs(masked[1], t)
        return any(_absorbs(x.args[i], t) for i in FUNCTIONS[x.fn].linear_in)
    return False


def _is_where_of(x: Node, c: Node, t: TensorType) -> bool:
    return isinstance(x, Apply) and x.fn == "where" and x.args[0] is c and x.type == t


def _split_const(x: Node) -> tuple[float, Node | None]:
    """(literal factor, the rest) of x: 3.0 -> (3.0, None); 2 * y -> (2.0, y); y -> (1.0, y)."""
    if isinstance(x, Const) and not isinstance(x.value, bool):
        return float(x.value), None
    if isinstance(x, Apply) and x.fn == "mul":
        a, b = x.args
        if isinstance(a, Const) and not isinstance(a.value, bool) and b.type == x.type:
            return float(a.value), b
    return 1.0, x


def _masked(x: Node):
    """(c, inner, True) for where(c, inner, 0); (c, inner, False) for where(c, 0, inner); else None."""
    if isinstance(x, Apply) and x.fn == "where":
        c, a, b = x.args
        if isinstance(b, Const) and b.value == 0 and a.type.shape == x.type.shape:
            return c, a, True
        if isinstance(a, Const) and a.value == 0 and b.type.shape == x.type.shape:
            return c, b, False
    return None


def _bcast(a: Node, b: Node) -> TensorType:
    """The broadcast type of two operands (shapes already checked compatible)."""
    sa, sb = a.type.shape, b.type.shape
    out = []
    for k in range(1, max(len(sa), len(sb)) + 1):
        da = sa[-k] if k <= len(sa) else ONE
        db = sb[-k] if k <= len(sb) else ONE
        out.append(db if da == ONE else da)
    return TensorType(FLOAT, tuple(reversed(out)))


def derive(root: Node, preds: list[Arg]) -> Derivative | None:
    if root.type.dtype is not FLOAT or not supported(root):
        return None
    order = topological(root)
    pred_ids = {id(p) for p in preds}
    # Nodes through which a pred reaches the root differentiably: only they get gradients.
    live: set[int] = set()
    for n in order:
        if id(n) in pred_ids:
            live.add(id(n))
        elif isinstance(n, Apply) and FUNCTIONS[n.fn].grad_args and n.type.dtype is FLOAT:
            if any(id(a) in live for a in n.args):
                live.add(id(n))
        elif isinstance(n, Index) and id(n.x) in live:
            live.add(id(n))
    if id(root) not in live:
        return None
    b = _Builder(root.span)
    seed = Arg(root.type, root.span, "grad", "_g", ())
    adj: dict[int, Node] = {id(root): seed}

    def give(x: Node, g: Node) -> None:
        if id(x) not in live:
            return
        if g.type.shape != x.type.shape:  # undo broadcasting: sum back to the operand's shape
            g = b.ap("sum_to", (g, x), TensorType(FLOAT, x.type.shape))
        prev = adj.get(id(x))
        adj[id(x)] = g if prev is None else b.add(prev, g, TensorType(FLOAT, x.type.shape))

    for n in reversed(order):
        g = adj.get(id(n))
        if g is None or isinstance(n, (Arg, Const, DimSize)):
            continue
        if isinstance(n, Index):
            give(n.x, b.ap("index_grad", (g, n.x), TensorType(FLOAT, n.x.type.shape), (("items", n.items),)))
            continue
        assert isinstance(n, Apply)  # only preds (Args), Applys and Indexes are live
        vjp = FUNCTIONS[n.fn].vjp
        assert not isinstance(vjp, NoRule)  # `supported` keeps everything else out
        vjp(b, n, g, give)
    grads = {}
    for p in preds:
        g = adj.get(id(p))
        if g is not None:
            grads[(p.name, p.path)] = g
    return Derivative(seed, grads)
