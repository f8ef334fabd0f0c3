"""Kernel selection: subexpressions that are exactly a loss a framework ships fused.

    select_kernels(root) -> root with `kernel` nodes

The IR is first put in a normal form (lossdsl/canonical.py), so that one pattern covers the
spellings people write: `(y - yhat)^2`, `r * r` and `square(r)`; a per-sample mean under the
API's mean. A `kernel` node names the loss (`KERNELS` below: `mse`, `l1`, `huber`, `smooth_l1`,
`nll`, `soft_ce`, `bce_logits`, `ce`), its reduction over the whole tensor (`none`, `mean`, or
`weighted_mean` for class-weighted cross-entropy), and the decomposed IR it replaces. Its
operands are the loss's tensors, then its hyperparameters (`Kernel.hypers`): each a literal or a
scalar `param`. A param reaches the framework's call as a Python number when the caller gave
one (`n_<name>` in the generated code, None for a tensor); otherwise the printer falls back to
the decomposed IR. A printer with a fused call for the kernel prints that (torch's
`F.huber_loss`, TensorFlow's `sparse_softmax_cross_entropy_with_logits`); any other prints the
decomposed IR. Recognition is by the IR's structure, never by names: the elementwise part of
Huber and smooth L1 is recognised by evaluating the two branches of the `where` as functions
of the residual and the knot. Each fused call is used only where its value and gradient
satisfy docs/language.md §4 (at 0 and at the Huber/smooth-L1 knots its gradient equals the
decomposed one); tests/test_kernels.py proves it on each backend, at the kinks too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

from .canonical import canonical, fold_minus
from .functions import FUNCTIONS, NoRule
from .ir import Apply, Arg, Const, DimSize, Gather, Node, depends_on_preds, rebuild, topological, use_counts
from .lm_head import select_lm_heads
from .lm_head_loss import fold_token_losses
from .types import FLOAT, INT, TensorType


@dataclass(frozen=True)
class Kernel:
    """One fused loss: its operands, then its scalar hyperparameters (a literal or a param)."""

    name: str
    operands: tuple[str, ...]
    hypers: tuple[str, ...] = ()
    # Per element under reduction "none" and only arithmetic (a subtraction and an abs or a
    # square): worth less than a backward derived for the whole loss, which it would prevent
    # (lossdsl/pipeline.py). BCE's logarithms are worth more fused: per sample, B=4096, D=784,
    # value and gradient, F.binary_cross_entropy_with_logits took 14 ms, the derived backward 36 ms.
    yields_to_derived: bool = False


KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (
        Kernel("mse", ("a", "b"), yields_to_derived=True),
        Kernel("l1", ("a", "b"), yields_to_derived=True),
        Kernel("huber", ("a", "b"), ("delta",), yields_to_derived=True),
        Kernel("smooth_l1", ("a", "b"), ("beta",), yields_to_derived=True),
        # the weight of positives: a literal or param as a hyperparameter, another scalar an operand
        Kernel("bce_logits", ("z", "y", "pos_weight?"), ("pos_weight?",)),
        Kernel("nll", ("z", "y", "class_w?")),
        Kernel("soft_ce", ("z", "y")),
        # softmax cross-entropy with label smoothing and, where `ignore` is set, an ignored label:
        # the mean over the samples not ignored, 0 when every sample is (docs/language.md §6)
        Kernel("ce", ("z", "y"), ("label_smoothing", "ignore_index")),
        # the same with a weight per class, over the weights of the labels seen (0 where none is):
        # `seen` each sample's (0 where ignored), `total` their sum
        Kernel("weighted_ce", ("z", "y", "class_w", "seen", "total"), ("label_smoothing", "ignore_index")),
    )
}


def yields_to_derived(name: str) -> bool:
    """Whether the kernel `name` under reduction "none" gives way to a backward derived for the
    whole loss (graph kernels, such as the language-model head, do not)."""
    kernel = KERNELS.get(name)
    return kernel is not None and kernel.yields_to_derived


def reduces_in_a_kernel(root: Node) -> bool:
    """Whether the lowered IR `root` reaches a fused call that reduces (not reduction "none")."""
    return any(isinstance(n, Apply) and n.fn == "kernel" and n.attr("reduction") != "none" for n in topological(root))


def hyper_nodes(node: Apply) -> tuple[Node, ...]:
    """The hyperparameter operands of a kernel node (literals or params), in `Kernel.hypers` order."""
    n = len(node.attr("hyper_params") or ())
    return node.args[len(node.args) - n :] if n else ()


def _kernel(
    name: str, args: tuple[Node, ...], t: TensorType, span, decomposed: Node, hypers: tuple[Node, ...] = (), **attrs
) -> Apply:
    params = tuple(h.name if isinstance(h, Arg) else None for h in hypers)
    items = tuple(sorted(attrs.items())) + (
        ("decomposed", decomposed),
        ("hyper_params", params),
        ("kernel", name),
    )
    return Apply(t, span, "kernel", tuple(args) + tuple(hypers), items)


def _is(node: Node, fn: str, n: int | None = None) -> TypeGuard[Apply]:
    return isinstance(node, Apply) and node.fn == fn and (n is None or len(node.args) == n)


def _const(node: Node) -> float | None:
    if isinstance(node, Const) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _scalar_param(node: Node, dtype=FLOAT) -> bool:
    return isinstance(node, Arg) and node.kind == "param" and node.type.rank == 0 and node.type.dtype is dtype


def _hyper(node: Node, dtype=FLOAT) -> bool:
    """A hyperparameter a fused call may take: a number literal or a scalar param."""
    if dtype is INT:
        return (isinstance(node, Const) and isinstance(node.value, int) and not isinstance(node.value, bool)) or (
            _scalar_param(node, INT)
        )
    return _const(node) is not None or _scalar_param(node)


def _residual(node: Node) -> tuple[Node, Node] | None:
    """(a, b) when node is `a - b` with both operands of the node's full float shape."""
    if _is(node, "sub") and node.type.dtype is FLOAT and all(a.type == node.type for a in node.args):
        return node.args[0], node.args[1]
    return None


# ---- a tiny evaluator: is this expression of r the function we think? ---------------------------

Fn2 = Callable[[float, float], float]


def _as_function(expr: Node, var: Node, knot: Node | None = None) -> Fn2 | None:
    """`expr` as a Python function of (`var`, `knot`), if it uses only those, literals and the
    functions the table marks `kernel_arith` (polynomial or piecewise linear: + - * / ^ neg
    square abs)."""
    if expr is var:
        return lambda r, k: r
    if knot is not None and expr is knot:
        return lambda r, k: k
    c = _const(expr)
    if c is not None:
        return lambda r, k: c
    if isinstance(expr, Apply) and FUNCTIONS[expr.fn].kernel_arith:
        rule = FUNCTIONS[expr.fn].fold
        parts = [_as_function(a, var, knot) for a in expr.args]
        if isinstance(rule, NoRule) or any(p is None for p in parts):
            return None
        op: Callable[..., float] = rule
        return lambda r, k: op(*(p(r, k) for p in parts))  # type: ignore[misc]
    return None


def _same_function(f: Fn2 | None, g: Fn2, knots) -> bool:
    if f is None:
        return False
    try:
        for k in knots:
            for x in (0.0, 0.1, 0.5, 0.99, 1.0, 1.5, 3.0, 10.0):
                for r in (x * k, -x * k):
                    if not math.isclose(f(r, k), g(r, k), rel_tol=1e-12, abs_tol=1e-12):
                        return False
        return True
    except (ArithmeticError, ValueError):
        return False


def _piecewise(node: Node) -> tuple[str, Node, Node, Node] | None:
    """Huber or smooth L1 of `a - b`, elementwise: ("huber"|"smooth_l1", a, b, delta or beta),
    the knot a positive literal or a scalar param (checked positive where the call is made)."""
    if not (_is(node, "where", 3) and node.type.dtype is FLOAT):
        return None
    cond, quad, lin = node.args
    if not (_is(cond, "le") or _is(cond, "lt")):
        return None
    r, knot = cond.args
    if not (_is(r, "abs", 1) and _hyper(knot)) or r.type != node.type:
        return None
    k = _const(knot)
    if k is not None and k <= 0:
        return None
    residual = r.args[0]
    ab = _residual(residual)
    if ab is None:
        return None
    knots = (k,) if k is not None else (0.5, 1.0, 2.5)
    fq, fl = _as_function(quad, residual, knot), _as_function(lin, residual, knot)
    if _same_function(fq, lambda x, k: 0.5 * x * x, knots) and _same_function(
        fl, lambda x, k: k * (abs(x) - 0.5 * k), knots
    ):
        return "huber", ab[0], ab[1], knot
    if _same_function(fq, lambda x, k: 0.5 * x * x / k, knots) and _same_function(
        fl, lambda x, k: abs(x) - 0.5 * k, knots
    ):
        return "smooth_l1", ab[0], ab[1], knot
    return None


def _elementwise(node: Node):
    """(kernel, args, hypers) for an elementwise loss of two tensors, else None."""
    if _is(node, "square", 1):
        ab = _residual(node.args[0])
        if ab is not None:
            return "mse", ab, ()
    if _is(node, "abs", 1):
        ab = _residual(node.args[0])
        if ab is not None:
            return "l1", ab, ()
    pw = _piecewise(node)
    if pw is not None:
        name, a, b, knot = pw
        return name, (a, b), (knot,)
    if _is(node, "neg", 1):
        bce = _bce_body(node.args[0])
        if bce is not None:
            z, y, weight = bce
            if weight is not None and _hyper(weight):  # a number a printer may test (1.0: no weight)
                return "bce_logits", (z, y), (weight,)
            return "bce_logits", (z, y) + ((weight,) if weight is not None else ()), ()
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


def _log_softmax_rows(node: Node) -> Node | None:
    """z when node is `log_softmax(z, axis=last)` for z of rank 2."""
    if _is(node, "log_softmax", 1) and node.type.rank == 2 and node.attr("axis") == 1:
        return node.args[0]
    return None


def _nll(node: Node):
    """`-pick(log_softmax(z, axis=last), y)` for z of rank 2: (z, y)."""
    if not (_is(node, "neg", 1) and _is(node.args[0], "pick", 2)):
        return None
    logp, y = node.args[0].args
    z = _log_softmax_rows(logp)
    return (z, y) if z is not None else None


def _soft_ce(node: Node):
    """`-sum(y * log_softmax(z, axis=last), axis=last)` for z of rank 2 (soft or one-hot labels): (z, y)."""
    if not (_is(node, "neg", 1) and _is(node.args[0], "sum", 1)):
        return None
    total = node.args[0]
    if total.attr("keepdims") or total.attr("axis") != (1,) or not _is(total.args[0], "mul", 2):
        return None
    y, logp = total.args[0].args if _is(total.args[0].args[1], "log_softmax") else total.args[0].args[::-1]
    z = _log_softmax_rows(logp)
    if z is not None and y.type == logp.type:
        return z, y
    return None


def _full_mean(node: Node) -> Node | None:
    if _is(node, "mean", 1) and not node.attr("keepdims") and len(node.attr("axis")) == node.args[0].type.rank:
        return node.args[0]
    return None


def _full_sum(node: Node) -> Node | None:
    if _is(node, "sum", 1) and not node.attr("keepdims") and len(node.attr("axis")) == node.args[0].type.rank:
        return node.args[0]
    return None


# ---- softmax cross-entropy with label smoothing and an ignored label -----------------------------


def _ignore_guard(node: Node) -> tuple[Node, Node, Node] | None:
    """`y != k` for int labels y of rank 1 and k a literal or an int param: (the guard, y, k)."""
    if not (_is(node, "ne", 2) and node.type.rank == 1):
        return None
    for y, k in (node.args, node.args[::-1]):
        if y.type.dtype is INT and y.type.rank == 1 and _hyper(k, INT):
            return node, y, k
    return None


def _unguard(node: Node, valid: Node | None) -> Node | None:
    """x for `where(valid, x, 0.0)` (with a guard), or node itself (without); else None."""
    if valid is None:
        return node
    if _is(node, "where", 3) and node.args[0] is valid and _const(node.args[2]) == 0.0:
        return node.args[1]
    return None


def _ce_term(node: Node, valid: Node | None, y_seen: list):
    """One term of a smoothed cross-entropy, per sample: ("nll", z) for `-pick(log_softmax(z), y)`
    (the label read through the guard `where(valid, y, 0)`), ("smooth", z) for
    `-mean(log_softmax(z), axis=last)`, each under `where(valid, ., 0.0)` when there is a guard."""
    x = _unguard(node, valid)
    if x is None or not _is(x, "neg", 1):
        return None
    inner = x.args[0]
    if _is(inner, "pick", 2):
        z = _log_softmax_rows(inner.args[0])
        idx = inner.args[1]
        if valid is not None:
            if not (_is(idx, "where", 3) and idx.args[0] is valid and _const(idx.args[2]) == 0.0):
                return None
            idx = idx.args[1]
        y_seen.append(idx)
        return ("nll", z) if z is not None else None
    if _is(inner, "mean", 1) and inner.attr("axis") == (1,) and not inner.attr("keepdims"):
        z = _log_softmax_rows(inner.args[0])
        return ("smooth", z) if z is not None else None
    return None


def _smoothed(node: Node, valid: Node | None):
    """`(1 - ls) * NLL + ls * SMOOTH` (or NLL alone): (z, y, ls)."""
    y_seen: list = []
    terms = node.args if _is(node, "add", 2) else (node,)
    found: dict[str, tuple[Node, Node | None]] = {}
    for t in terms:
        coef, x = None, t
        if _is(t, "mul", 2):
            for c, v in (t.args, t.args[::-1]):
                if c.type.rank == 0:
                    coef, x = c, v
                    break
        hit = _ce_term(x, valid, y_seen)
        if hit is None or hit[0] in found:
            return None
        found[hit[0]] = (hit[1], coef)
    if "nll" not in found or len({id(z) for z, _ in found.values()}) != 1 or len(y_seen) != 1:
        return None
    z, nll_coef = found["nll"]
    if "smooth" not in found:
        if nll_coef is not None:
            return None
        return z, y_seen[0], Const(TensorType(FLOAT), node.span, 0.0)
    ls = found["smooth"][1]
    if ls is None or nll_coef is None or not _hyper(ls):
        return None
    lit = _const(ls)
    if lit is not None:  # the literals folded: 1 - 0.1 is 0.9
        if _const(nll_coef) is None or not math.isclose(_const(nll_coef), 1.0 - lit, rel_tol=1e-12):  # type: ignore[arg-type]
            return None
    elif not (_is(nll_coef, "sub", 2) and _const(nll_coef.args[0]) == 1.0 and nll_coef.args[1] is ls):
        return None
    return z, y_seen[0], ls


def _ce(node: Node):
    """Softmax cross-entropy with label smoothing, as torch's `F.cross_entropy(z, y,
    label_smoothing=ls, ignore_index=k)` computes it: `sum(TERMS) / maximum(sum(float(y != k)), 1)`
    with every term under `where(y != k, ., 0.0)` (0 when every label is ignored), or
    `mean(TERMS)` without an ignored label. (kernel args, hypers, attrs) or None."""
    body = _full_mean(node)
    if body is not None and body.type.rank == 1:
        hit = _smoothed(body, None)
        if hit is not None and _const(hit[2]) != 0.0:  # without smoothing it is `nll`'s
            z, y, ls = hit
            return (z, y), (ls,), {"ignore": False}
        return None
    if not (_is(node, "div", 2) and node.type.rank == 0):
        return None
    num, den = node.args
    body = _full_sum(num)
    if body is None or body.type.rank != 1 or not _is(den, "maximum", 2):
        return None
    count, one = den.args if _const(den.args[1]) == 1.0 else den.args[::-1]
    counted = _full_sum(count)
    if _const(one) != 1.0 or counted is None or not _is(counted, "cast_float", 1):
        return None
    guard = _ignore_guard(counted.args[0])
    if guard is None:
        return None
    valid, y, k = guard
    hit = _smoothed(body, valid)
    if hit is None or hit[1] is not y:
        return None
    z, _, ls = hit
    return (z, y), (ls, k), {"ignore": True}


# ---- the same with a weight per class ----------------------------------------------------------------


def _through(node: Node, cond: Node, fallback: float) -> Node:
    """x for the guard `where(cond, x, fallback)` lowering puts on a division's operands, else node."""
    if _is(node, "where", 3) and node.args[0] is cond and _const(node.args[2]) == fallback:
        return node.args[1]
    return node


def _scaled(node: Node) -> tuple[Node | None, Node]:
    """(c, s) for `c * s` in either order with s a sum over every axis; (None, node) otherwise."""
    if _is(node, "mul", 2):
        for c, x in (node.args, node.args[::-1]):
            if c.type.rank == 0 and _full_sum(x) is not None:
                return c, x
    return None, node


def _weighted_terms(num: Node, guard: Node, valid: Node, w: Node, class_w: Node, z_seen: list, y_seen: list):
    """The label smoothing of `(1 - ls) * sum(W * NLL) + ls / C * sum(SMOOTH)` (or the NLL term
    alone, smoothing 0), with NLL `where(valid, -pick(log_softmax(z), y'), 0.0)` and SMOOTH
    `where(valid, -sum(class_w * log_softmax(z), axis=last), 0.0)`; else None."""
    terms = num.args if _is(num, "add", 2) else (num,)
    ls: Node | None = None
    nll_coef: Node | None = None
    for t in terms:
        coef, x = _scaled(t)
        total = _full_sum(x)
        if total is None:
            return None
        if _is(total, "mul", 2) and w in total.args:  # sum(W * NLL)
            nll = total.args[1] if total.args[0] is w else total.args[0]
            z = _ce_term(nll, valid, y_seen)
            if z is None or z[0] != "nll":
                return None
            z_seen.append(z[1])
            nll_coef = coef
            continue
        smooth = _unguard(total, valid)  # sum(SMOOTH)
        if (
            smooth is None
            or not (_is(smooth, "neg", 1) and _is(smooth.args[0], "sum", 1))
            or smooth.args[0].attr("axis") != (1,)
        ):
            return None
        prod = smooth.args[0].args[0]
        if not (_is(prod, "mul", 2) and class_w in prod.args):
            return None
        z = _log_softmax_rows(prod.args[1] if prod.args[0] is class_w else prod.args[0])
        if z is None or coef is None or not _is(coef, "div", 2):
            return None
        z_seen.append(z)
        ls = _through(coef.args[0], guard, 0.0)
        size = _through(coef.args[1].args[0], guard, 1) if _is(coef.args[1], "cast_float", 1) else None
        if not (isinstance(size, DimSize) and size.dim == z.type.shape[1]):  # the number of classes
            return None
    if not z_seen or len({id(z) for z in z_seen}) != 1 or len(z_seen) != len(terms):
        return None
    if ls is None:
        return Const(TensorType(FLOAT), num.span, 0.0) if nll_coef is None else None
    if not (_hyper(ls) and nll_coef is not None):
        return None
    one_minus = _through(nll_coef, guard, 0.0)
    if _is(one_minus, "sub", 2) and _const(one_minus.args[0]) == 1.0 and _through(one_minus.args[1], guard, 0.0) is ls:
        return ls
    return None


def _weighted_ce(node: Node):
    """Class-weighted softmax cross-entropy with label smoothing and an ignored label, as
    torch's `F.cross_entropy(z, y, weight=class_w, label_smoothing=ls, ignore_index=k)` computes
    it, and 0 where no weight is seen: `where(0.0 < T, NUM / T, 0.0)` with T =
    `sum(where(y != k, class_w[y'], 0.0))` (y' the label read through the guard). (args, hypers)."""
    if not (_is(node, "where", 3) and node.type.rank == 0 and _const(node.args[2]) == 0.0):
        return None
    guard, q = node.args[0], node.args[1]
    if not (_is(guard, "lt", 2) and _const(guard.args[0]) == 0.0 and _is(q, "div", 2)):
        return None
    total = guard.args[1]
    w = _full_sum(total)
    num, den = q.args
    if w is None or _through(den, guard, 1.0) is not total or not _is(w, "where", 3) or _const(w.args[2]) != 0.0:
        return None
    valid, w_y = w.args[0], w.args[1]
    hit = _ignore_guard(valid)
    if hit is None or not isinstance(w_y, Gather) or not isinstance(w_y.x, Arg) or len(w_y.indices) != 1:
        return None
    _, y, k = hit
    idx = w_y.indices[0]
    if not (_is(idx, "where", 3) and idx.args[0] is valid and idx.args[1] is y and _const(idx.args[2]) == 0.0):
        return None
    z_seen: list = []
    y_seen: list = []
    ls = _weighted_terms(num, guard, valid, w, w_y.x, z_seen, y_seen)
    if ls is None or len(y_seen) != 1 or y_seen[0] is not y:
        return None
    return (z_seen[0], y, w_y.x, w, total), (ls, k)


def select(node: Node) -> Node:
    """`node` as a kernel (or with a kernel below it, for the recursion to find), else `node`."""
    hit = _signed(node)
    if hit is not None:
        return hit
    if node.type.dtype is FLOAT and not _is(node, "neg") and not _reduces_neg(node):
        # The normal form folds a loss's minus into the expression around it (`a + -sum(...)` is
        # `a - sum(...)`), so a loss may stand without its minus: -(-loss) is the loss.
        hit = _signed(Apply(node.type, node.span, "neg", (node,), ()))
        if hit is not None:
            return Apply(node.type, node.span, "neg", (hit,), ())
    return node


def _reduces_neg(node: Node) -> bool:
    return (_is(node, "mean", 1) or _is(node, "sum", 1)) and _is(node.args[0], "neg", 1)


def _signed(node: Node) -> Node | None:
    """A kernel for `node`; for `-reduce(body)` with an elementwise loss in `-body`, the minus
    moved inside the reduction (a mean or sum over any axes: the kernel per element under
    reduction "none", then the framework's reduction); else None."""
    hit = _select(node)
    if hit is not node:
        return hit
    if _is(node, "neg", 1) and (_is(node.args[0], "mean", 1) or _is(node.args[0], "sum", 1)):
        # The normal form keeps a minus outside a mean; the losses have it inside:
        # -mean(y log s(z) + ...) is mean(-(y log s(z) + ...)), -mean(pick(...)) is mean(-pick(...))
        m = node.args[0]
        body = m.args[0]
        per = Apply(body.type, body.span, "neg", (body,), ())
        moved = Apply(m.type, m.span, m.fn, (per,), m.attrs)
        hit = _select(moved)
        if hit is not moved:
            return hit
        if _elementwise(per) is not None:
            return moved  # the reduction of an elementwise kernel, which the recursion finds below
    return None


def _select(node: Node) -> Node:
    wce = _weighted_ce(node)
    if wce is not None:
        args, hypers = wce
        return _kernel("weighted_ce", args, node.type, node.span, node, hypers, reduction="mean")
    ce = _ce(node)
    if ce is not None:
        args, hypers, attrs = ce
        return _kernel("ce", args, node.type, node.span, node, hypers, reduction="mean", **attrs)
    inner = _full_mean(node)
    if inner is not None:
        hit = _elementwise(inner)
        if hit is not None:
            name, args, hypers = hit
            return _kernel(name, args, node.type, node.span, node, hypers, reduction="mean")
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
    hit = _elementwise(node)
    if hit is not None and node.type.rank > 0:
        name, args, hypers = hit
        return _kernel(name, args, node.type, node.span, node, hypers, reduction="none")
    nll = _nll(node)
    if nll is not None:
        return _kernel("nll", nll, node.type, node.span, node, reduction="none")
    soft = _soft_ce(node)
    if soft is not None:
        return _kernel("soft_ce", soft, node.type, node.span, node, reduction="none")
    return node


def _absorbs_shared(n: Node, kernel: Apply, uses: dict[int, int], on_preds: set[int]) -> bool:
    """Whether the kernel would hide a node of the preds that something outside it also uses: the
    node and its gradient would then be computed twice, once inside the fused call (`mean(sq) +
    sum(sq)`). A node of the targets alone (focal's `1 - y`) costs the outside use one forward
    pass and the fused call nothing extra (its own formula reads the targets in the same pass)."""
    operands = {id(a) for a in kernel.args}
    inside = [x for x in topological(n, stop=operands) if id(x) not in operands]
    users: dict[int, int] = {}
    for x in inside:
        for a in x.inputs:
            users[id(a)] = users.get(id(a), 0) + 1
    return any(uses.get(id(x), 0) > users.get(id(x), 0) for x in inside if x is not n and id(x) in on_preds)


#: kernels recognised on the whole graph (they replace several nodes that read one value), before
#: the per-node patterns above: name -> (root, supported) -> root
GRAPH_KERNELS: dict[str, Callable[[Node, dict[str, set[str]]], Node]] = {
    "lm_head": lambda root, supported: fold_token_losses(select_lm_heads(root, supported), supported)
}


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
    root = canonical(root)
    uses = use_counts(root)
    on_preds = depends_on_preds(root)

    def visit(n: Node) -> Node:
        hit = memo.get(id(n))
        if hit is not None:
            return hit
        m = select(n)
        k = m.args[0] if _is(m, "neg", 1) else m  # a loss found without its minus
        if _is(k, "kernel") and (
            k.attr("reduction") not in supported.get(k.attr("kernel"), ()) or _absorbs_shared(n, k, uses, on_preds)
        ):
            m = n
        out = rebuild(m, tuple(visit(a) for a in m.inputs)) if m.inputs else m
        memo[id(n)] = out
        return out

    return fold_minus(visit(root))
