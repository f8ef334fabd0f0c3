"""The language-model head: cross-entropy over a large vocabulary without the N x V logits.

    select_lm_heads(root, supported) -> root with `kernel` nodes named `lm_head`

Recognised on the IR: logits `z = h @ transpose(W)` (h: [N, D], W: [V, D]; or `h @ W` with W:
[D, V], which the kernel reads transposed; or h of rank 3 or more, the tokens along its leading
axes, which the backends flatten into rows), optionally plus a
bias `b: [V]` and soft-capped as `s * tanh(z / s)` (s a positive literal), whose only uses are
`log_softmax(z, axis=V)` and `logsumexp(z, axis=V)`, where the log-softmax's only uses are
`pick(logp, idx)` (one index tensor) and `mean`/`sum(logp, axis=V)` (label smoothing).
Everything the loss does with those [N] vectors (z-loss, class and token weights, an ignore
index under `where`, the reduction or none) stays ordinary IR; the logits' part becomes one
`kernel` node of type [N, K] whose K columns are the statistics the loss reads:

    lse        logsumexp_v z[i, v]
    logp       z[i, idx[i]] - lse[i]                 (the picked log-probability)
    mean_logp  mean_v z[i, v] - lse[i]
    sum_logp   sum_v z[i, v] - V * lse[i]

Each backend computes them over chunks of the vocabulary with an online logsumexp, and the
gradient of any loss of them is, per token i and class v,

    dz[i, v] = a[i] * softmax(z)[i, v] + c[i] + g_logp[i] * [v == idx[i]]

with a = g_lse - g_logp - g_mean - V g_sum and c = g_mean / V + g_sum: the backward
recomputes each chunk's logits and never holds more than one chunk (docs/backends.md,
"The language-model head"). Each token's upstream gradient is applied to that token alone.

Where the loss's gradient to each statistic is the same for every token (`_uniform_gradient`:
`mean(-logp)`, label smoothing), the kernel is marked `uniform` and a backend may prepare the
gradient in the forward, up to scalars known only in the backward (torch does).

Where the loss sums one per-token expression of the statistics over the tokens, the backends
that list `reduced` (torch, TensorFlow) fold that sum into the head (lossdsl/lm_head_loss.py)
and prepare the gradient in the forward for every variant.

Below `min_logits()` logits the backends compute the same statistics densely (framework
autodiff, any derivative order); the chunk size comes from `chunk_size(N, D, V)`. Both are
overridable with `options(chunk=..., min_logits=...)` or the environment variables
LOSSDSL_LM_HEAD_CHUNK and LOSSDSL_LM_HEAD_MIN_LOGITS.

Split vocabulary (`sharded="V"`, V the first axis of W, or the second of a W given as [D, V];
docs/distributed.md): the sharding pass
selects the head first (`shard_vocabulary`), with the attribute `sharded`, so that the log-softmax
along V never has to see the whole vocabulary. Each replica computes its shard's statistics over
its own chunks and `global_statistics` combines them with three collectives (the maximum of the
local lse, the sum of exp(lse - max), and the sums of the picked logits and row sums, the picked
logit taken on the replica that owns the label). The gradient's coefficients a and c are read from
these global statistics, so each replica's dz, dW and db are exact locally; dh is the sum of every
replica's part, one all-reduce in the backward.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from .ir import Apply, Const, Index, Node, SliceItem, rebuild, topological, use_counts
from .types import FLOAT, Dim, TensorType

KERNEL = "lm_head"

# ---- sizes: when to chunk, and by how much ------------------------------------------------

#: below this many logits (N * V) the dense statistics are cheaper than a loop over chunks
DEFAULT_MIN_LOGITS = 1 << 20
_overrides: dict[str, int | None] = {}


def _setting(name: str, env: str, default: int | None) -> int | None:
    if name in _overrides:
        return _overrides[name]
    text = os.environ.get(env)
    return int(text) if text else default


def min_logits() -> int:
    """N * V from which the chunked path is taken (in force now)."""
    value = _setting("min_logits", "LOSSDSL_LM_HEAD_MIN_LOGITS", DEFAULT_MIN_LOGITS)
    return DEFAULT_MIN_LOGITS if value is None else value


def fixed_chunk() -> int | None:
    """The chunk size in force now, None where it is chosen from N, D and V."""
    return _setting("chunk", "LOSSDSL_LM_HEAD_CHUNK", None) or None


def chunk_size(n: int, d: int, v: int, fixed: int | None = None) -> int:
    """Classes per chunk: `fixed` if given, else such that a chunk's logits take no more memory
    than h itself (N x C <= N x D, C a power of two, at least 128, and at least 2^18 / N so that
    a small batch still makes large matrix products), and at most V."""
    if fixed:
        return max(1, min(int(fixed), v))
    c = max(128, 1 << max(0, int(d) - 1).bit_length(), 1 << max(0, (1 << 18) // max(int(n), 1)).bit_length() - 1)
    return max(1, min(c, v))


def plan(n: int, d: int, v: int, chunk: int | None, threshold: int) -> int | None:
    """Classes per chunk for a head of these sizes, or None for the dense statistics (below
    `threshold` logits N * V)."""
    if int(n) * int(v) < threshold:
        return None
    return chunk_size(n, d, v, chunk)


def token_rows(n: int, v: int, step: int) -> int:
    """Tokens per chunk where a backend runs over chunks of tokens, each with all V classes: as
    many logits as a chunk of `step` classes for all N tokens, raised to 32 tokens (for matrix
    products of a useful size) where that holds at most four times as many."""
    rows = max(1, min(int(n), int(n) * int(step) // max(int(v), 1)))
    return min(int(n), 32) if rows < 32 and 32 * int(v) <= 4 * int(n) * int(step) else rows


@contextlib.contextmanager
def options(*, chunk: int | None = None, min_logits: int | None = None) -> Iterator[None]:
    """Losses compiled within the block use this chunk size (classes per chunk; 0: chosen from N,
    D and V at each call) and this threshold of N * V logits for the chunked path (0: always
    chunked); None leaves a setting as it is. The generated code carries both (`lossdsl emit`
    shows them)."""
    saved = dict(_overrides)
    if chunk is not None:
        _overrides["chunk"] = chunk
    if min_logits is not None:
        _overrides["min_logits"] = min_logits
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)


def global_statistics(dist, lse, picked, rowsum, v, exp, log, stop=lambda x: x):
    """(lse, picked, rowsum) over the whole vocabulary from one shard's, combined across the
    replicas by `dist` (the backend's collectives: `max`, `sum`); `v` the global class count.
    The shift of the logsumexp is any constant, held out of the gradient (`stop`)."""
    m = stop(dist.max(stop(lse)))
    lse = m + log(dist.sum(exp(lse - m)))
    picked = dist.sum(picked) if picked is not None else None
    rowsum = dist.sum(rowsum) if rowsum is not None else None
    return lse, picked, rowsum


def columns(stats, lse, logp, rowsum, v):
    """The statistics a head's kernel returns, in its order, from lse, the picked logit minus lse
    (`logp`) and the row sum of the logits."""
    cols = {"lse": lambda: lse, "logp": lambda: logp, "mean_logp": lambda: rowsum / v - lse}
    cols["sum_logp"] = lambda: rowsum - v * lse
    return [cols[k]() for k in stats]


# ---- recognition -------------------------------------------------------------------------


def _is(node: Node, fn: str) -> bool:
    return isinstance(node, Apply) and node.fn == fn


def _literal(node: Node) -> float | None:
    if isinstance(node, Const) and not isinstance(node.value, bool):
        return float(node.value)
    return None


def _over_classes(node: Apply, rank: int) -> bool:
    """A reduction over the last axis of a rank-`rank` operand (the classes)."""
    axis = node.attr("axis")
    return (axis == rank - 1 or axis == (rank - 1,)) and not node.attr("keepdims")


@dataclass
class _Head:
    h: Node
    W: Node
    b: Node | None
    softcap: float | None
    z: Node  # the logits the loss reads
    chain: list[Node]  # the nodes from the matmul to z, which nothing else may read
    transposed: bool = False  # W given as [D, V] (`h @ W`): the kernel reads a transpose of it


def _logits(z: Node) -> _Head | None:
    """`z` as [s * tanh(] h @ transpose(W) [+ b] [/ s)], or with `h @ W` for W: [D, V] (given
    to the kernel as transpose(W)); h of rank 2 or more (the tokens along its leading axes)."""
    if not (z.type.dtype is FLOAT and z.type.rank >= 2):
        return None
    chain: list[Node] = [z]
    inner, cap = z, None
    if _is(z, "mul"):
        for s_node, t in (z.args, z.args[::-1]):  # type: ignore[attr-defined]
            s = _literal(s_node)
            if s is not None and s > 0 and _is(t, "tanh") and _is(t.args[0], "div"):  # type: ignore[attr-defined]
                q = t.args[0]  # type: ignore[attr-defined]
                if _literal(q.args[1]) == s:
                    inner, cap = q.args[0], s
                    chain += [t, q]
                    break
        else:
            return None
    b = None
    if _is(inner, "add"):
        for left, right in (inner.args, inner.args[::-1]):  # type: ignore[attr-defined]
            if right.type.rank == 1 and right.type.dtype is FLOAT and left.type == z.type:
                if inner is not z:
                    chain.append(inner)
                inner, b = left, right
                break
        else:
            return None
    if not (_is(inner, "matmul") and inner.type == z.type):
        return None
    h, wt = inner.args  # type: ignore[attr-defined]
    if h.type.rank != z.type.rank or wt.type.rank != 2:
        return None
    chain += [inner] if inner is not z else []
    if _is(wt, "transpose"):
        chain.append(wt)
        W = wt.args[0]  # type: ignore[attr-defined]
        transposed = False
    else:  # W: [D, V], read as its transpose (a view on torch, fused into the products on XLA)
        W = Apply(TensorType(wt.type.dtype, wt.type.shape[::-1]), wt.span, "transpose", (wt,))
        transposed = True
    if b is not None and b.type.shape[0] != W.type.shape[0]:
        return None
    return _Head(h, W, b, cap, z, chain, transposed)


def users_of(root: Node) -> dict[int, list[Node]]:
    out: dict[int, list[Node]] = {}
    for n in topological(root):
        for a in n.inputs:
            users = out.setdefault(id(a), [])
            if not any(u is n for u in users):
                users.append(n)
    return out


def _column(stats: Node, k: int, like: Node) -> Index:
    every = (SliceItem(None, None, None),) * (stats.type.rank - 1)
    return Index(TensorType(FLOAT, stats.type.shape[:-1]), like.span, stats, (*every, k))


def _plan(head: _Head, users: dict[int, list[Node]], uses: dict[int, int]) -> dict[int, tuple[str, Node]] | None:
    """What replaces each node that reads the logits: id -> (statistic, node), or None where
    some use of the logits is not a statistic the kernel computes."""
    for n in head.chain[1:]:
        if uses.get(id(n), 0) != 1:
            return None
    out: dict[int, tuple[str, Node]] = {}
    index: Node | None = None
    rank = head.z.type.rank
    for u in users.get(id(head.z), []):
        if _is(u, "logsumexp") and _over_classes(u, rank):  # type: ignore[arg-type]
            out[id(u)] = ("lse", u)
        elif _is(u, "log_softmax") and u.attr("axis") == rank - 1:  # type: ignore[attr-defined]
            for r in users.get(id(u), []):
                if _is(r, "pick") and r.args[0] is u:  # type: ignore[attr-defined]
                    idx = r.args[1]  # type: ignore[attr-defined]
                    if index is not None and idx is not index:
                        return None  # one index tensor per head
                    index = idx
                    out[id(r)] = ("logp", r)
                elif (_is(r, "mean") or _is(r, "sum")) and _over_classes(r, rank):  # type: ignore[arg-type]
                    out[id(r)] = (r.fn + "_logp", r)  # type: ignore[attr-defined]
                else:
                    return None
        else:
            return None
    return out or None


def shard_vocabulary(root: Node, sym: str) -> Node:
    """Select the heads whose vocabulary (W's first axis) is the dimension `sym` split across
    replicas, as kernels marked `sharded`: the sharding pass runs this first, since the
    log-softmax along a split axis has no per-replica form (E811) but the head's statistics have."""
    return select_lm_heads(root, {KERNEL: {"stats"}}, vocabulary=sym)


def split_collectives(node: Apply) -> str:
    """What a head split along its vocabulary combines across the replicas (`global_reductions`,
    `lossdsl ir --sharded`)."""
    stats = node.attr("stats")
    parts = ["all_max and all_sum of the logsumexp"]
    if "logp" in stats:
        parts.append("all_sum of the picked logit")
    if "mean_logp" in stats or "sum_logp" in stats:
        parts.append("all_sum of the row sums")
    return (
        f"the language-model head over `{node.attr('sharded')}` ({', '.join(stats)}): "
        f"{', '.join(parts)} in the forward, all_sum of dh in the backward"
    )


def select_lm_heads(root: Node, supported: dict[str, set[str]], *, vocabulary: str | None = None) -> Node:
    """Replace every recognised head's statistics with columns of one `lm_head` kernel; with
    `vocabulary`, only the heads whose W has that dimension first, marked as split along it."""
    if KERNEL not in supported:
        return root
    users = users_of(root)
    uses = use_counts(root)
    replace: dict[int, Node] = {}
    for n in topological(root):
        if not _is(n, "matmul") and not _is(n, "add") and not _is(n, "mul"):
            continue
        head = _logits(n)
        if head is None or any(id(c) in replace for c in head.chain):
            continue
        if vocabulary is not None and not _split_vocabulary(head, vocabulary):
            continue
        plan = _plan(head, users, uses)
        if plan is None:
            continue
        kinds = sorted({k for k, _ in plan.values()}, key=["lse", "logp", "mean_logp", "sum_logp"].index)
        uniform = vocabulary is None and head.softcap is None and _uniform_gradient(root, set(plan))
        index = next((node.args[1] for k, node in plan.values() if k == "logp"), None)  # type: ignore[attr-defined]
        args = (head.h, head.W) + ((head.b,) if head.b is not None else ()) + ((index,) if index is not None else ())
        decomposed = next((node for k, node in plan.values() if k == "logp"), next(iter(plan.values()))[1])
        attrs = (
            ("bias", head.b is not None),
            ("decomposed", decomposed),  # the entry's index check reads the labels through it
            ("kernel", KERNEL),
            ("reduction", "stats"),
            *((("sharded", vocabulary),) if vocabulary is not None else ()),
            ("softcap", head.softcap),
            ("stats", tuple(kinds)),
            *((("uniform", True),) if uniform else ()),
        )
        shape = (*head.z.type.shape[:-1], Dim(None, len(kinds)))
        stats = Apply(TensorType(FLOAT, shape), head.z.span, "kernel", args, attrs)
        for nid, (kind, node) in plan.items():
            replace[nid] = _column(stats, kinds.index(kind), node)
    if not replace:
        return root
    return substitute(root, replace)


def _uniform_gradient(root: Node, columns: set[int]) -> bool:
    """Whether the loss's gradient to each statistic (the nodes `columns` replaces) is the same
    for every token, known before the backward up to a few scalars: the loss is a scalar function
    of sums or means over the tokens of affine combinations of the statistics whose coefficients
    do not depend on them (`mean(-logp)`, label smoothing). The backends may then prepare the
    gradient in the forward (torch: `uniform=True`). A z-loss, an ignore index under `where`,
    per-token weights or a per-token loss are not."""
    if root.type.rank != 0:
        return False
    kind: dict[int, str] = {}  # "free" of the statistics, "affine" [N], "scalar" (uniform), "other"
    for n in topological(root):
        kind[id(n)] = "affine" if id(n) in columns else _kind(n, [kind[id(a)] for a in n.inputs])
    return kind[id(root)] == "scalar"


def _kind(n: Node, kinds: list[str]) -> str:
    if all(k == "free" for k in kinds):
        return "free"
    if not isinstance(n, Apply) or "other" in kinds:
        return "other"
    args = n.args
    if n.type.rank == 0:
        if n.fn in ("mean", "sum") and kinds == ["affine"] and args[0].type.rank == 1:
            return "scalar"
        # any function of uniform scalars: the chain rule multiplies by a scalar
        return "scalar" if all(a.type.rank == 0 and k in ("free", "scalar") for a, k in zip(args, kinds)) else "other"
    if n.type.rank != 1 or "scalar" in kinds:
        return "other"
    free_scalars = all(k == "affine" or a.type.rank == 0 for a, k in zip(args, kinds))
    if n.fn in ("add", "sub", "neg") or (n.fn == "mul" and free_scalars and kinds.count("affine") == 1):
        return "affine"
    if n.fn == "div" and kinds == ["affine", "free"] and args[1].type.rank == 0:
        return "affine"
    return "other"


def _split_vocabulary(head: _Head, sym: str) -> bool:
    """Whether the head's classes, and only they, run along `sym` (h holds no part of it): W's
    first axis, or its second where W is given as [D, V] (the kernel then reads each replica's
    columns transposed); h of any rank, its tokens read as rows on every replica alike."""
    return head.W.type.shape[0] == Dim(sym) and all(d.sym != sym for d in head.h.type.shape + head.W.type.shape[1:])


def substitute(root: Node, replace: dict[int, Node]) -> Node:
    """root with each node whose id is in `replace` replaced (ids of the original DAG)."""
    done: dict[int, Node] = {}
    for node in topological(root, stop=set(replace)):
        if id(node) in replace:
            done[id(node)] = replace[id(node)]
        else:
            done[id(node)] = rebuild(node, tuple(done[id(a)] for a in node.inputs)) if node.inputs else node
    return done[id(root)]


__all__ = [
    "KERNEL",
    "chunk_size",
    "columns",
    "fixed_chunk",
    "global_statistics",
    "min_logits",
    "options",
    "plan",
    "select_lm_heads",
    "shard_vocabulary",
    "split_collectives",
    "token_rows",
]
