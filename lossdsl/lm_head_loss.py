"""A language-model head whose per-token loss is summed: the sum folded into the head.

    fold_token_losses(root, supported) -> root with each such sum an `lm_head` kernel of rank 0

The head's kernel (lossdsl/lm_head.py) gives per-token statistics [N, K]. Where everything the
loss does with them is a per-token expression `u` (each token's value from that token's
statistics and values that do not depend on them: weights, a mask, a z-loss coefficient) reduced
by one `sum` or `mean` over the tokens, and nothing else reads them, that reduction becomes one
kernel node of type float[] with the reduction `sum` or `mean` and the attribute `token_loss`:
`u` over placeholders for the statistics' columns and for the values it reads from outside
(captured, the kernel's operands after the head's), and `u`'s derivative to each column, derived
on the IR (lossdsl/autodiff.py).

Since the loss's upstream gradient is then one number, each token's gradient coefficient is known
in the forward: a backend computes the statistics over chunks of tokens (each with every class),
evaluates `u` and its derivative on the chunk, and makes dh, dW and db from the chunk's softmax
while it holds it. The backward only scales them by the upstream gradient: three matrix products
in all, as the dense loss, never the N x V logits (docs/backends.md, "The language-model head").
Only backends that list `reduced` among the head's reductions get the fold; the values it reads
from outside must not depend on a pred (no gradient reaches them).
"""

from __future__ import annotations

from dataclasses import dataclass

from .autodiff import derive
from .functions import ELEMENTWISE, FUNCTIONS
from .functions.recurrence import close_over
from .ir import Apply, Arg, Const, Index, Node, SliceItem, depends_on_preds, topological
from .lm_head import KERNEL, substitute, users_of
from .types import FLOAT, TensorType

#: functions only some printers have (the derived backward's helpers): a derivative using one stays unfolded
_NOT_PRINTED_EVERYWHERE = frozenset({"sum_to", "index_grad"})


@dataclass(frozen=True, eq=False)
class TokenLoss:
    """The per-token loss a folded head reduces: IR over one placeholder per statistic (a
    column, [N]) and one per captured value, with its derivative to each column (None: none)."""

    loss: Node
    columns: tuple[Arg, ...]
    captured: tuple[Arg, ...]
    grads: tuple[Node | None, ...]

    def __repr__(self) -> str:  # `lossdsl ir` prints attributes
        return "token_loss"


def fold_token_losses(root: Node, supported: dict[str, set[str]]) -> Node:
    if "reduced" not in supported.get(KERNEL, ()):
        return root
    users = users_of(root)
    on_preds = depends_on_preds(root)
    replace: dict[int, Node] = {}
    for n in topological(root):
        # (a split vocabulary keeps the statistics: its replicas combine them with collectives)
        if isinstance(n, Apply) and n.fn == "kernel" and n.attr("kernel") == KERNEL and n.attr("reduction") == "stats":
            folded = _fold(n, users, on_preds) if n.attr("sharded") is None else None
            if folded is not None:
                replace[id(folded[0])] = folded[1]
    return substitute(root, replace) if replace else root


def _is_column(node: Node, stats: Node) -> bool:
    if not (isinstance(node, Index) and node.x is stats and len(node.items) == stats.type.rank):
        return False
    return all(i == SliceItem(None, None, None) for i in node.items[:-1]) and isinstance(node.items[-1], int)


def _token_local(node: Node, tokens) -> bool:
    """One value per token from the same token's operands (after broadcasting scalars)."""
    if not (isinstance(node, Apply) and node.type.shape == tokens and node.fn in FUNCTIONS):
        return False
    return FUNCTIONS[node.fn].lanes_of(node) == ELEMENTWISE


def _fold(stats: Apply, users: dict[int, list[Node]], on_preds: set[int]) -> tuple[Node, Apply] | None:
    """(the reduction, the kernel that replaces it) for the head `stats`, or None."""
    tokens = stats.type.shape[:-1]  # the leading axes of h
    region: dict[int, Node] = {}  # the per-token nodes that read the statistics
    reduction: Apply | None = None
    pending: list[Node] = [stats]
    while pending:
        node = pending.pop()
        for u in users.get(id(node), []):
            if id(u) in region or u is reduction:
                continue
            if node is stats and not _is_column(u, stats):
                return None
            if _is_column(u, stats) or _token_local(u, tokens):
                region[id(u)] = u
                pending.append(u)
            elif (
                isinstance(u, Apply) and u.fn in ("sum", "mean") and u.type.rank == 0 and u.args[0].type.shape == tokens
            ):
                if reduction is not None:
                    return None  # two reductions read the statistics: the gradient is not one scalar's
                reduction = u
            else:
                return None
    if reduction is None or id(reduction.args[0]) not in region:
        return None
    # the statistics' columns as placeholders, then every value from outside captured
    cols = [Arg(TensorType(FLOAT, tokens), stats.span, "step", f"t{k}") for k in range(len(stats.attr("stats")))]
    columns: dict[int, Node] = {}
    for i, n in region.items():
        if isinstance(n, Index) and _is_column(n, stats):
            columns[i] = cols[int(n.items[-1])]  # type: ignore[arg-type]
    body = substitute(reduction.args[0], columns)
    loss, captured, params = close_over(body, {id(c) for c in cols})
    if any(id(c) in on_preds or (c.type.rank > 0 and c.type.shape != tokens) for c in captured):
        return None
    derivative = derive(loss, cols)  # per token: the seed is 1 for each
    if derivative is None:
        return None
    one: dict[int, Node] = {id(derivative.seed): Const(TensorType(FLOAT, ()), reduction.span, 1.0)}  # each token's seed
    grads = tuple(
        substitute(g, one) if g is not None else None for g in (derivative.grads.get((c.name, ())) for c in cols)
    )
    if any(
        isinstance(x, Apply) and x.fn in _NOT_PRINTED_EVERYWHERE for g in grads if g is not None for x in topological(g)
    ):
        return None
    token_loss = TokenLoss(loss, tuple(cols), tuple(params), grads)
    attrs = tuple((k, v) for k, v in stats.attrs if k not in ("reduction", "uniform", "decomposed"))
    attrs += (
        ("captured", len(captured)),
        ("decomposed", reduction),
        ("reduction", reduction.fn),
        ("token_loss", token_loss),
    )
    kernel = Apply(
        reduction.type,
        reduction.span,
        "kernel",
        stats.args + tuple(captured),
        tuple(sorted(attrs, key=lambda kv: kv[0])),
    )
    return reduction, kernel


__all__ = ["TokenLoss", "fold_token_losses"]
