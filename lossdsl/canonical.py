"""A normal form of the lowered IR, so that one kernel pattern covers the spellings people write.

    canonical(root) -> root        the same value and gradient everywhere, kinks included

Kernel selection (lossdsl/kernels.py) matches structure; without this pass each of
`square(a - b)`, `(a - b) * (a - b)`, `abs(a - b)^2` and `mean(mean(x, axis=D))` would need a
pattern of its own. Each rewrite keeps value and gradient (docs/language.md §4), so the
rewritten IR is also the decomposed form a fused call replaces:

    x * x                   -> square(x)              (the same node: lets and shared terms)
    square(abs(x)), square(-x) -> square(x)           2|x| sign(x) = 2x, also at 0
    abs(-x)                 -> abs(x)
    -(-x)                   -> x
    a + (-b), (-b) + a      -> a - b
    a - (-b)                -> a + b
    a >= b, a > b           -> b <= a, b < a          (one orientation for the knots of a `where`)
    mean(-x)                -> -mean(x)               (a minus outside the reduction, where BCE has it)
    mean(mean(x, axis=A))   -> mean(x)                when the outer mean takes every axis left: the
                                                      per-sample means have equal sizes
    logsumexp(z, axis=last) - pick(z, y) -> -pick(log_softmax(z, axis=last), y)
                                                      the same value; gradient softmax - one_hot either way
"""

from __future__ import annotations

from .ir import Apply, Node, apply, rewrite_bottom_up
from .types import FLOAT, TensorType


def _is(node: Node, fn: str) -> bool:
    return isinstance(node, Apply) and node.fn == fn


def _full(node: Apply) -> bool:
    """A reduction over every axis of its operand, to a scalar."""
    return not node.attr("keepdims") and len(node.attr("axis") or ()) == node.args[0].type.rank


def _minus_of_neg(n: Apply) -> bool:
    """`a - (-b)` with a, b and the result of one float type."""
    return (
        n.fn == "sub"
        and _is(n.args[1], "neg")
        and n.type.dtype is FLOAT
        and n.args[0].type == n.type
        and n.args[1].args[0].type == n.type  # type: ignore[attr-defined]
    )


def _mean_all(x: Node, like: Apply) -> Apply:
    axes = tuple(range(x.type.rank))
    return apply("mean", (x,), TensorType(like.type.dtype, ()), like.span, (("axis", axes), ("keepdims", False)))


def _rewrite(n: Node) -> Node:
    if not isinstance(n, Apply):
        return n
    fn, args = n.fn, n.args
    if fn == "mul" and len(args) == 2 and args[0] is args[1] and n.type.dtype is FLOAT and args[0].type == n.type:
        return _rewrite(apply("square", (args[0],), n.type, n.span))
    if fn == "square" and (_is(args[0], "abs") or _is(args[0], "neg")) and args[0].type == n.type:
        return _rewrite(apply("square", (args[0].args[0],), n.type, n.span))  # type: ignore[attr-defined]
    if fn == "abs" and _is(args[0], "neg") and args[0].type == n.type:
        return apply("abs", (args[0].args[0],), n.type, n.span)  # type: ignore[attr-defined]
    if fn == "neg" and _is(args[0], "neg") and args[0].args[0].type == n.type:  # type: ignore[attr-defined]
        return args[0].args[0]  # type: ignore[attr-defined]
    if fn == "add" and n.type.dtype is FLOAT and all(a.type == n.type for a in args):
        a, b = args
        if _is(b, "neg") and b.args[0].type == n.type:  # type: ignore[attr-defined]
            return apply("sub", (a, b.args[0]), n.type, n.span)  # type: ignore[attr-defined]
        if _is(a, "neg") and a.args[0].type == n.type:  # type: ignore[attr-defined]
            return apply("sub", (b, a.args[0]), n.type, n.span)  # type: ignore[attr-defined]
    if _minus_of_neg(n):
        return apply("add", (args[0], args[1].args[0]), n.type, n.span)  # type: ignore[attr-defined]
    if fn == "sub" and _is(args[0], "logsumexp") and _is(args[1], "pick"):
        lse, picked = args
        z = lse.args[0]  # type: ignore[attr-defined]
        if (
            picked.args[0] is z  # type: ignore[attr-defined]
            and z.type.rank == 2
            and lse.attr("axis") == (1,)  # type: ignore[attr-defined]
            and not lse.attr("keepdims")  # type: ignore[attr-defined]
        ):
            logp = apply("log_softmax", (z,), z.type, n.span, (("axis", 1),))
            return apply("neg", (apply("pick", (logp, picked.args[1]), n.type, n.span),), n.type, n.span)  # type: ignore[attr-defined]
    if fn in ("ge", "gt"):
        return apply("le" if fn == "ge" else "lt", (args[1], args[0]), n.type, n.span)
    if fn == "mean" and _is(args[0], "neg") and n.type.dtype is FLOAT:
        inner = _rewrite(apply("mean", (args[0].args[0],), n.type, n.span, n.attrs))  # type: ignore[attr-defined]
        return apply("neg", (inner,), n.type, n.span)
    if fn == "mean" and _full(n) and _is(args[0], "mean") and not args[0].attr("keepdims"):  # type: ignore[attr-defined]
        return _mean_all(args[0].args[0], n)  # type: ignore[attr-defined]
    return n


def canonical(root: Node) -> Node:
    return rewrite_bottom_up(root, _rewrite)


def _fold_minus(n: Node) -> Node:
    if not isinstance(n, Apply):
        return n
    if n.fn == "neg" and _is(n.args[0], "neg") and n.args[0].args[0].type == n.type:  # type: ignore[attr-defined]
        return n.args[0].args[0]  # type: ignore[attr-defined]
    if _minus_of_neg(n):
        return apply("add", (n.args[0], n.args[1].args[0]), n.type, n.span)  # type: ignore[attr-defined]
    return n


def fold_minus(root: Node) -> Node:
    """`-(-x)` -> x and `a - (-b)` -> `a + b`: after kernel selection, which finds a loss the
    normal form left without its minus (`a - sum(y * log_softmax(z))`) as `-kernel`."""
    return rewrite_bottom_up(root, _fold_minus)
