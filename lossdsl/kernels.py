"""Kernel selection: subexpressions that are exactly a loss a framework ships fused.

    select_kernels(root) -> root with `kernel` nodes

A `kernel` node names the loss (`mse`, `l1`, `huber`, `smooth_l1`, `nll`, `soft_ce`, `bce_logits`), its
reduction over the whole tensor (`none`, `mean`, or `weighted_mean` for class-weighted
cross-entropy), its hyperparameters (literals only: the frameworks take them as Python
numbers) and the decomposed IR it replaces. A printer with a fused call for it prints that
(torch's `F.huber_loss`, TensorFlow's `sparse_softmax_cross_entropy_with_logits`); any other
prints the decomposed IR. Recognition is by the IR's structure, never by names: the
elementwise part of Huber and smooth L1 is recognised by evaluating the two branches of the
`where` as functions of the residual. Each fused call is used only where its value and
gradient satisfy docs/language.md §4 (at 0 and at the Huber/smooth-L1 knots its gradient equals the
decomposed one); tests/test_kernels.py proves it on each backend, at the kinks too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeGuard

from .functions import FUNCTIONS, NoRule
from .ir import Apply, Arg, Const, Gather, Node, rebuild, topological, use_counts
from .lm_head import select_lm_heads
from .types import FLOAT, TensorType


def _kernel(name: str, args: tuple[Node, ...], t: TensorType, span, decomposed: Node, **attrs) -> Apply:
    items = tuple(sorted(attrs.items())) + (("decomposed", decomposed), ("kernel", name))
    return Apply(t, span, "kernel", args, items)


def _is(node: Node, fn: str, n: int | None = None) -> TypeGuard[Apply]:
    return isinstance(node, Apply) and node.fn == fn and (n is None or len(node.args) == n)


def _const(node: Node) -> float | None:
    if isinstance(node, Const) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _residual(node: Node) -> tuple[Node, Node] | None:
    """(a, b) when node is `a - b` with both operands of the node's full float shape."""
    if _is(node, "sub") and node.type.dtype is FLOAT and all(a.type == node.type for a in node.args):
        return node.args[0], node.args[1]
    return None


# ---- a tiny evaluator: is this expression of r the function we think? ---------------------------


def _as_function(expr: Node, var: Node) -> Callable[[float], float] | None:
    """`expr` as a Python function of `var`, if it uses only `var`, literals and the functions the
    table marks `kernel_arith` (polynomial or piecewise linear: + - * / ^ neg square abs)."""
    if expr is var:
        return lambda r: r
    c = _const(expr)
    if c is not None:
        return lambda r: c
    if isinstance(expr, Apply) and FUNCTIONS[expr.fn].kernel_arith:
        rule = FUNCTIONS[expr.fn].fold
        parts = [_as_function(a, var) for a in expr.args]
        if isinstance(rule, NoRule) or any(p is None for p in parts):
            return None
        op: Callable[..., float] = rule
        return lambda r: op(*(p(r) for p in parts))  # type: ignore[misc]
    return None


def _same_function(f: Callable[[float], float] | None, g: Callable[[float], float], points) -> bool:
    if f is None:
        return False
    try:
        return all(math.isclose(f(x), g(x), rel_tol=1e-12, abs_tol=1e-12) for x in points)
    except (ArithmeticError, ValueError):
        return False


def _piecewise(node: Node) -> tuple[str, Node, Node, float] | None:
    """Huber or smooth L1 of `a - b`, elementwise: ("huber"|"smooth_l1", a, b, delta or beta)."""
    if not (_is(node, "where", 3) and node.type.dtype is FLOAT):
        return None
    cond, quad, lin = node.args
    if not (_is(cond, "le") or _is(cond, "lt")):
        return None
    r, knot = cond.args
    k = _const(knot)
    if k is None or k <= 0 or not _is(r, "abs", 1):
        return None
    ab = _residual(r.args[0])
    if ab is None or r.type != node.type:
        return None
    points = [0.0, 0.1 * k, 0.5 * k, 0.99 * k, k, 1.5 * k, 3.0 * k, 10.0 * k]
    fq, fl = _as_function(quad, r), _as_function(lin, r)
    if _same_function(fq, lambda x: 0.5 * x * x, points) and _same_function(fl, lambda x: k * (x - 0.5 * k), points):
        return "huber", ab[0], ab[1], k
    if _same_function(fq, lambda x: 0.5 * x * x / k, points) and _same_function(fl, lambda x: x - 0.5 * k, points):
        return "smooth_l1", ab[0], ab[1], k
    return None


def _elementwise(node: Node):
    """(kernel, args, params) for an elementwise loss of two tensors, else None."""
    if _is(node, "square", 1):
        ab = _residual(node.args[0])
        if ab is not None:
            return "mse", ab, {}
    if _is(node, "abs", 1):
        ab = _residual(node.args[0])
        if ab is not None:
            return "l1", ab, {}
    pw = _piecewise(node)
    if pw is not None:
        name, a, b, k = pw
        return name, (a, b), {"delta" if name == "huber" else "beta": k}
    if _is(node, "neg", 1):
        bce = _bce_body(node.args[0])
        if bce is not None:
            z, y, pw = bce  # type: ignore[assignment]  # `pw` reused for the positive weight; a fix means renaming
            return "bce_logits", (z, y) + ((pw,) if pw is not None else ()), {}
    return None


def _bce_body(node: Node) -> tuple[Node, Node, Node | None] | None:
    """`[pw *] y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)` (minus binary cross-entropy on
    logits, with an optional weight of positives): (z, y, pw)."""
    if not (_is(node, "add", 2) and node.type.dtype is FLOAT):
        return None
    for p, q in (node.args, node.args[::-1]):
        if not (_is(p, "mul", 2) and _is(q, "mul", 2)):
            continue
        pos, ls = p.args if _is(p.args[1], "log_sigmoid") else p.args[::-1]
        one_minus, ls_neg = q.args if _is(q.args[1], "log_sigmoid") else q.args[::-1]
        if not (
            _is(ls, "log_sigmoid", 1)
            and _is(ls_neg, "log_sigmoid", 1)
            and _is(ls_neg.args[0], "neg", 1)
            and ls_neg.args[0].args[0] is ls.args[0]
            and _is(one_minus, "sub", 2)
            and _const(one_minus.args[0]) == 1.0
        ):
            continue
        y, z = one_minus.args[1], ls.args[0]
        pw = None
        if pos is not y:
            if _is(pos, "mul", 2) and y in pos.args:
                pw = pos.args[1] if pos.args[0] is y else pos.args[0]
                if pw.type.rank != 0:
                    continue
            else:
                continue
        if z.type == y.type == node.type:
            return z, y, pw
    return None


def _nll(node: Node):
    """`-pick(log_softmax(z, axis=last), y)` for z of rank 2: (z, y)."""
    if not (_is(node, "neg", 1) and _is(node.args[0], "pick", 2)):
        return None
    logp, y = node.args[0].args
    if _is(logp, "log_softmax", 1) and logp.type.rank == 2 and logp.attr("axis") == 1:
        return logp.args[0], y
    return None


def _soft_ce(node: Node):
    """`-sum(y * log_softmax(z, axis=last), axis=last)` for z of rank 2 (soft or one-hot labels): (z, y)."""
    if not (_is(node, "neg", 1) and _is(node.args[0], "sum", 1)):
        return None
    total = node.args[0]
    if total.attr("keepdims") or total.attr("axis") != (1,) or not _is(total.args[0], "mul", 2):
        return None
    y, logp = total.args[0].args if _is(total.args[0].args[1], "log_softmax") else total.args[0].args[::-1]
    if _is(logp, "log_softmax", 1) and logp.type.rank == 2 and logp.attr("axis") == 1 and y.type == logp.type:
        return logp.args[0], y
    return None


def _full_mean(node: Node) -> Node | None:
    if _is(node, "mean", 1) and not node.attr("keepdims") and len(node.attr("axis")) == node.args[0].type.rank:
        return node.args[0]
    return None


def select(node: Node) -> Node:
    swapped = None
    if _is(node, "neg", 1) and _is(node.args[0], "mean", 1):
        # -mean(y log s(z) + ...) is mean(-(y log s(z) + ...)): move the minus inside
        bce = _bce_body(node.args[0].args[0])
        if bce is not None:
            m = node.args[0]
            body = m.args[0]
            per = Apply(body.type, body.span, "neg", (body,), ())
            node = swapped = Apply(m.type, m.span, "mean", (per,), m.attrs)
    inner = _full_mean(node)
    if inner is not None:
        hit = _elementwise(inner)
        if hit is not None:
            name, args, params = hit
            return _kernel(name, args, node.type, node.span, node, reduction="mean", **params)
        nll = _nll(inner)
        if nll is not None:
            return _kernel("nll", nll, node.type, node.span, node, reduction="mean")
    # sum(class_w[y] * nll) / sum(class_w[y]): torch's class-weighted mean
    if _is(node, "div", 2) and _is(node.args[0], "sum", 1) and _is(node.args[1], "sum", 1) and node.type.rank == 0:
        num, den = node.args[0].args[0], node.args[1].args[0]
        if isinstance(den, Gather) and isinstance(den.x, Arg) and len(den.indices) == 1 and _is(num, "mul", 2):
            w_y, loss = num.args if num.args[0] is den else num.args[::-1]
            nll = _nll(loss) if w_y is den else None
            if nll is not None and nll[1] is den.indices[0]:
                return _kernel("nll", (nll[0], nll[1], den.x), node.type, node.span, node, reduction="weighted_mean")
    if swapped is not None:
        return node  # the mean of an elementwise BCE, which the recursion finds below
    hit = _elementwise(node)
    if hit is not None and node.type.rank > 0:
        name, args, params = hit
        return _kernel(name, args, node.type, node.span, node, reduction="none", **params)
    nll = _nll(node)
    if nll is not None:
        return _kernel("nll", nll, node.type, node.span, node, reduction="none")
    soft = _soft_ce(node)
    if soft is not None:
        return _kernel("soft_ce", soft, node.type, node.span, node, reduction="none")
    return node


def _absorbs_shared(n: Node, kernel: Apply, uses: dict[int, int]) -> bool:
    """Whether the kernel would hide a node that something outside it also uses: the node
    would then be computed twice, once inside the fused call (`mean(sq) + sum(sq)`)."""
    operands = {id(a) for a in kernel.args}
    inside = [x for x in topological(n, stop=operands) if id(x) not in operands]
    users: dict[int, int] = {}
    for x in inside:
        for a in x.inputs:
            users[id(a)] = users.get(id(a), 0) + 1
    return any(uses.get(id(x), 0) > users.get(id(x), 0) for x in inside if x is not n)


#: kernels recognised on the whole graph (they replace several nodes that read one value), before
#: the per-node patterns above: name -> (root, supported) -> root
GRAPH_KERNELS: dict[str, Callable[[Node, dict[str, set[str]]], Node]] = {"lm_head": select_lm_heads}


def select_kernels(root: Node, supported: dict[str, set[str]]) -> Node:
    """Mark the kernels a backend has (`supported`: kernel -> reductions); top-down, so the
    largest match wins (`mean(square(a - b))` before `square(a - b)`)."""
    memo: dict[int, Node] = {}
    if not supported:
        return root
    for select_graph in GRAPH_KERNELS.values():
        root = select_graph(root, supported)
    supported = {k: v for k, v in supported.items() if k not in GRAPH_KERNELS}
    if not supported:
        return root
    uses = use_counts(root)

    def visit(n: Node) -> Node:
        hit = memo.get(id(n))
        if hit is not None:
            return hit
        m = select(n)
        if _is(m, "kernel") and (
            m.attr("reduction") not in supported.get(m.attr("kernel"), ()) or _absorbs_shared(n, m, uses)
        ):
            m = n
        out = rebuild(m, tuple(visit(a) for a in m.inputs)) if m.inputs else m
        memo[id(n)] = out
        return out

    return visit(root)
