"""Lowering passes on the checked IR, decided once for every backend.

    lower(checked) -> Node      the root the backends print

In order:
  stable forms   log(softmax) -> log_softmax, log(sigmoid(z)) -> log_sigmoid(z),
                 log(1 - sigmoid(z)) -> log_sigmoid(-z), log(sum(exp(z))) -> logsumexp(z),
                 log(1 + x) -> log1p(x)                                     (docs/language.md §4)
                 and log(1 + exp(z)) -> softplus(z), which overflows otherwise
  x ^ 0          -> ones, with no gradient, also at x = 0 (and x ^ 1 -> x, x ^ 2 -> square(x))
  std            the root of var with gradient 0 where the spread is 0
  where guards   inside a branch of `where`, the operand of every op with a restricted
                 domain (log, sqrt, /, pow, exp, pick and gather indices...) is replaced by
                 `where(cond, operand, safe)`, so the lanes the branch does not take see
                 a safe value and their gradient is exactly 0 rather than 0 * inf = NaN;
                 so is every float argument the branch reads (it may be NaN in those lanes),
                 after kernel selection, which leaves a fused loss whole; a value several
                 branches read is guarded once, under the `or` of their conditions
  constants      scalar expressions of literals folded to one literal
  casts          int and bool operands of float arithmetic converted explicitly, so no
                 backend's own promotion rules (TensorFlow's int/int -> float64) leak
  sharing        identical subexpressions (from inlined `def`s) computed once
  kernels        losses a framework ships fused, marked for its printer (lossdsl/kernels.py)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

from .checked import CheckedModule
from .functions import ELEMENTWISE, FUNCTIONS, REDUCES, ROWS, NoRule
from .ir import (
    Apply,
    Arg,
    Const,
    DimSize,
    Gather,
    Index,
    Node,
    SliceItem,
    apply,
    rebuild,
    rewrite_bottom_up,
    topological,
)
from .kernels import select_kernels
from .sharding import globalize
from .types import BOOL, FLOAT, INT, ONE, DType, TensorType

# ---- helpers ------------------------------------------------------------------------


# ---- the functions' own lowering rules ---------------------------------------------------


def lowering_rules(root: Node) -> Node:
    """Each function's `lower` rule (lossdsl/functions/): the stable forms of `log`, small
    powers, `std` with gradient 0 where the spread is 0."""

    def fix(n: Node) -> Node:
        if isinstance(n, Apply):
            rule = FUNCTIONS[n.fn].lower
            if rule is not None:
                return rule(n) or n
        return n

    return rewrite_bottom_up(root, fix)


# ---- where guards ------------------------------------------------------------------------


def _safe_const(operand: Node, value) -> Const:
    dt = operand.type.dtype
    v = float(value) if dt is FLOAT else int(value)
    return Const(TensorType(dt), operand.span, v)


def _fits(cond: Node, shape) -> bool:
    """cond broadcasts into `shape` without making it larger."""
    cs = cond.type.shape
    if len(cs) > len(shape):
        return False
    return all(c in (s, ONE) for c, s in zip(reversed(cs), reversed(shape)))


def guard_wheres(root: Node, *, domains: bool = True, data: bool = False) -> Node:
    """`domains`: guard the operands of ops with a restricted domain; `data`: guard the float
    arguments a branch reads (run after kernel selection, so that a fused loss, which treats
    its own lanes, is left whole)."""
    return _WhereGuards(root, domains=domains, data=data).run()


Read = Callable[[Node, "Node | None"], Node]


class _WhereGuards:
    """One run of the pass. Each node is visited under the condition of the lanes its reader
    needs (None: every lane), and its restricted operands are guarded under that condition.

    A node read under several conditions (a `let` that two branches use) would be rebuilt, and
    computed, once per condition. When every read of it is under some condition, it is instead
    guarded once, under the `or` of them (`_share_reads`), and computed once. Values and
    gradients are those of the per-condition copies in every lane:
    - each reader sees the node through a select on its own condition, `where(cond, node, 0)`:
      in its own lanes the value its copy had, elsewhere 0, as finite as its copy's safe value,
      and its gradient to the node there is exactly 0 (a select, not a product, so also where
      the node is inf for a lane another branch takes). The ops it applies after the node are
      guarded under its own condition as before.
    - a lane some reading branch takes: the `or` holds, so the node sees its true operands and
      has the value that branch's copy had, and its gradient is that branch's.
    - a lane no reading branch takes: the `or` fails, the node sees the safe values, as each
      copy did, and gets gradient 0 from every reader, which its guards pass on as 0.
    The selects cost one pass over the node per reader; the node's own work is done once.
    A read that does not make its branch's value depend on the node (inside a `where`'s
    condition, or by an op that gives no gradient, such as a comparison) does not need the node
    finite, so it counts as a read under no condition: such a node keeps a copy per condition.
    """

    def __init__(self, root: Node, *, domains: bool, data: bool) -> None:
        self.root = root
        self.domains = domains
        self.data = data
        self.memo: dict[tuple[int, int], Node] = {}
        # Conditions built here, keyed by what they are built of, so each is built once and its
        # id stays valid for `memo`; an `or` an earlier run built is found again.
        self.conds: dict[tuple, Node] = {}
        for n in topological(root):
            if isinstance(n, Apply) and n.fn == "or":
                self.conds.setdefault(("or", id(n.args[0]), id(n.args[1])), n)
        # id(node) -> (the `or` it is guarded under, the ids of the conditions it stands for)
        self.shared: dict[int, tuple[Node, set[int]]] = {}

    def run(self) -> Node:
        self._share_reads()
        return self.visit(self.root, None)

    # ---- conditions ----

    def both(self, a: Node | None, b: Node) -> Node:
        if a is None or a is b:
            return b
        key = ("and", id(a), id(b))
        if key not in self.conds:
            shape = a.type.shape if len(a.type.shape) >= len(b.type.shape) else b.type.shape
            if not (_fits(a, shape) and _fits(b, shape)):
                return b
            self.conds[key] = apply("and", (a, b), TensorType(BOOL, shape), b.span)
        return self.conds[key]

    def either(self, conds: list[Node], node: Node) -> Node | None:
        """The `or` of the conditions `node` is read under, or None where one does not fit it."""
        if not all(_fits(c, node.type.shape) for c in conds):
            return None
        # A condition that implies another (`and(c, d)` beside `c`) adds no lanes.
        kept = [c for c in conds if not any(d is not c and _implies(c, d) for d in conds)] or list(conds)
        kept.reverse()  # the reads came last reader first: the `or` names them in source order
        out = kept[0]
        for c in kept[1:]:
            key = ("or", id(out), id(c))
            if key not in self.conds:
                self.conds[key] = apply("or", (out, c), TensorType(BOOL, _broadcast(out, c)), c.span)
            out = self.conds[key]
        return out

    def negate(self, c: Node) -> Node:
        key = ("not", id(c))
        if key not in self.conds:
            self.conds[key] = apply("not", (c,), c.type, c.span)
        return self.conds[key]

    def interned(self, cond: Node | None) -> Node | None:
        """One node for each indexing of a condition (an axis added for a reduction or a row)."""
        if not isinstance(cond, Index):
            return cond
        return self.conds.setdefault(("index", id(cond.x), cond.items), cond)

    @staticmethod
    def fitted(cond: Node | None, shape) -> Node | None:
        return cond if cond is not None and _fits(cond, shape) else None

    @staticmethod
    def guard(node: Node, cond: Node | None, safe, span) -> Node:
        # The guard takes the span of the operation it protects, not of its operand: a `let`
        # bound to the operand keeps naming the operand in the generated code.
        if cond is None or not _fits(cond, node.type.shape):
            return node
        return apply("where", (cond, node, _safe_const(node, safe)), node.type, span)

    # ---- the two walks ----

    def _share_reads(self) -> None:
        """Which nodes are guarded once under an `or`: readers before what they read, so the
        conditions a node is read under are all known when it is reached. The reads are found
        by `_visit` itself, so they are the ones `visit` makes."""
        order = topological(self.root)
        in_conditions: set[int] = set()
        for n in order:
            if isinstance(n, Apply) and n.fn == "where":
                topological(n.args[0], seen=in_conditions)
        reads: dict[int, list[Node | None]] = {id(self.root): [None]}

        def recorder(reader: Node) -> Read:
            gives_gradient = reader.type.dtype is FLOAT

            def record(child: Node, cond: Node | None) -> Node:
                if child.inputs and id(child) not in in_conditions:
                    seen = reads.setdefault(id(child), [])
                    cond = cond if gives_gradient else None
                    if not any(c is cond for c in seen):
                        seen.append(cond)
                return child

            return record

        for node in reversed(order):
            if not node.inputs or id(node) in in_conditions:
                continue
            under = reads[id(node)]
            if len(under) > 1 and all(c is not None for c in under):
                conds = cast("list[Node]", under)
                either = self.either(conds, node)
                if either is not None:
                    self.shared[id(node)] = (either, {id(c) for c in conds})
                    under = [either]
            record = recorder(node)
            for cond in under:
                self._visit(node, cond, record)

    def visit(self, node: Node, cond: Node | None) -> Node:
        if not node.inputs:
            return node
        key = (id(node), id(cond) if cond is not None else 0)
        if key in self.memo:
            return self.memo[key]
        out = self._visit(node, cond, self.visit)
        shared = self.shared.get(id(node))
        if out is not node and shared is not None and id(cond) in shared[1] and cond is not shared[0]:
            # Guards under this reader's condition would make it a copy of its own (any read not
            # counted in the `or` keeps one). Instead the one copy under the `or`, seen by this
            # reader only in its own lanes: elsewhere it reads 0 and sends back exactly 0.
            out = self.visit(node, shared[0])
            if node.type.dtype is FLOAT:
                out = self.guard(out, cond, 0, node.span)
        self.memo[key] = out
        return out

    def _visit(self, node: Node, cond: Node | None, read: Read) -> Node:
        """`node` under `cond`, its operands read through `read` with the condition of each."""
        fitted, guard = self.fitted, self.guard
        if isinstance(node, Apply) and node.fn == "where":
            c, a, b = node.args
            c2 = self.visit(c, fitted(cond, c.type.shape))
            outer = fitted(cond, node.type.shape)
            taken = self.both(outer, c2)
            not_taken = self.both(outer, self.negate(c2))
            return rebuild(node, (c2, read(a, fitted(taken, a.type.shape)), read(b, fitted(not_taken, b.type.shape))))
        if isinstance(node, Apply):
            f = FUNCTIONS[node.fn]
            domain = f.safe_of(node)
            lanes = f.lanes_of(node)
            if lanes == ELEMENTWISE:
                new_args = []
                for i, a in enumerate(node.args):
                    ca = fitted(cond, a.type.shape)
                    a2 = read(a, ca)
                    if i in domain:
                        if self.domains:
                            a2 = guard(a2, ca, domain[i], node.span)
                    elif self.data and _is_data(a) and node.type.dtype is FLOAT:
                        # (a comparison's operands need none: no gradient flows through a bool)
                        a2 = guard(a2, ca, 0, node.span)
                    new_args.append(a2)
                return rebuild(node, tuple(new_args))
            if lanes == REDUCES and cond is not None:
                x = node.args[0]
                cx = self.interned(_expand_for_reduction(cond, node, x))
                x2 = read(x, cx)
                if 0 in domain:
                    if self.domains:
                        x2 = guard(x2, cx, domain[0], node.span)
                elif self.data and _is_data(x):
                    x2 = guard(x2, cx, 0, node.span)
                return rebuild(node, (x2,))
            if lanes == ROWS and cond is not None:
                x, idx = node.args
                cidx = fitted(cond, idx.type.shape)
                crow = self.interned(_append_axis(cidx)) if cidx is not None else None
                x2 = read(x, fitted(crow, x.type.shape) if crow is not None else None)
                idx2 = read(idx, cidx)
                if self.domains and 1 in domain:
                    idx2 = guard(idx2, cidx, domain[1], node.span)
                return rebuild(node, (x2, idx2))
        if isinstance(node, Gather) and cond is not None:
            idx_shape = node.type.shape[: len(node.type.shape) - (node.x.type.rank - len(node.indices))]
            new_idx = []
            for ix in node.indices:
                cix = fitted(cond, ix.type.shape) if _fits(cond, idx_shape) else None
                ix2 = read(ix, cix)
                new_idx.append(guard(ix2, cix, 0, node.span) if self.domains else ix2)
            return rebuild(node, (read(node.x, None),) + tuple(new_idx))
        # Ops that mix lanes (softmax, cumsum, @, indexing...): a lane's guard says nothing
        # about the lanes it reads, so only nested `where`s below are guarded.
        return rebuild(node, tuple(read(a, None) for a in node.inputs))


def _implies(c: Node, d: Node) -> bool:
    """`c` holds only where `d` does, as seen from how they are built (`and`, `or`)."""
    if c is d:
        return True
    if isinstance(c, Apply) and c.fn == "and" and any(_implies(a, d) for a in c.args):
        return True
    return isinstance(d, Apply) and d.fn == "or" and any(_implies(c, a) for a in d.args)


def _broadcast(a: Node, b: Node) -> tuple:
    """The shape of `a` and `b` broadcast together (both fit one shape, so sizes agree)."""
    sa, sb = a.type.shape, b.type.shape
    n = max(len(sa), len(sb))
    sa = (ONE,) * (n - len(sa)) + tuple(sa)
    sb = (ONE,) * (n - len(sb)) + tuple(sb)
    return tuple(x if x != ONE else y for x, y in zip(sa, sb))


def _is_data(node: Node) -> bool:
    """A float target, input, context or param (or a slice of one): data that may hold NaN or
    inf in the lanes a branch does not take (a missing label), guarded like a domain so that the
    gradient through those lanes is 0 * finite (docs/language.md §4). Preds, the model's own
    outputs, are not: a guard on them would cost a pass in the backward too."""
    while isinstance(node, Index):
        node = node.x
    return isinstance(node, Arg) and node.kind != "pred" and node.type.dtype is FLOAT


def _append_axis(cond: Node) -> Node:
    items = tuple([SliceItem(None, None, None)] * cond.type.rank + [None])
    return Index(TensorType(BOOL, cond.type.shape + (ONE,)), cond.span, cond, items)


def _expand_for_reduction(cond: Node, red: Apply, x: Node) -> Node | None:
    """The guard of a reduction's output as a guard of its input: reduced axes get size 1."""
    if not _fits(cond, red.type.shape):
        return None
    if red.attr("keepdims"):
        return cond if _fits(cond, x.type.shape) else None
    axes = set(red.attr("axis"))
    missing = red.type.rank - cond.type.rank  # leading output axes the condition broadcasts over
    items: list = []
    shape: list = []
    p = 0  # position among the output's axes
    for k in range(x.type.rank):
        if k in axes or p < missing:
            items.append(None)
            shape.append(ONE)
        else:
            items.append(SliceItem(None, None, None))
            shape.append(cond.type.shape[p - missing])
        if k not in axes:
            p += 1
    expanded = Index(TensorType(BOOL, tuple(shape)), cond.span, cond, tuple(items))
    return expanded if _fits(expanded, x.type.shape) else None


# ---- constant folding ----------------------------------------------------------------------


def fold_constants(root: Node) -> Node:
    def fold(n: Node) -> Node:
        if isinstance(n, Apply) and n.fn == "where" and isinstance(n.args[0], Const):
            chosen = n.args[1] if n.args[0].value else n.args[2]
            if chosen.type == n.type:  # a literal condition picks a branch of the full shape
                return chosen
        if not (isinstance(n, Apply) and n.type.rank == 0 and n.args and all(isinstance(a, Const) for a in n.args)):
            return n
        rule = FUNCTIONS[n.fn].fold
        if isinstance(rule, NoRule):
            return n
        try:
            v = rule(*(cast(Const, a).value for a in n.args))
        except (ValueError, OverflowError, ZeroDivisionError):
            return n
        if isinstance(v, complex) or (isinstance(v, float) and not math.isfinite(v)):
            return n
        dt = n.type.dtype
        v = bool(v) if dt is BOOL else int(v) if dt is INT else float(v)
        return Const(n.type, n.span, v)

    return rewrite_bottom_up(root, fold)


# ---- casts ---------------------------------------------------------------------------------


def _cast(node: Node, dtype: DType) -> Node:
    if node.type.dtype is dtype:
        return node
    if isinstance(node, Const):
        v = node.value
        return Const(TensorType(dtype), node.span, float(v) if dtype is FLOAT else int(v))
    fn = "cast_float" if dtype is FLOAT else "cast_int"
    return apply(fn, (node,), TensorType(dtype, node.type.shape), node.span)


def insert_casts(root: Node) -> Node:
    def fix(n: Node) -> Node:
        if not isinstance(n, Apply):
            return n
        f = FUNCTIONS[n.fn]
        if f.cast == "convert":
            return _cast(n.args[0], n.type.dtype)
        if f.cast == "keep":
            return n
        if f.cast == "compare":
            dts = [a.type.dtype for a in n.args]
            target = FLOAT if FLOAT in dts else dts[0]
        elif f.cast == "exponent":
            base, exp = n.args
            target = n.type.dtype
            new_base = _cast(base, target)
            new_exp = exp if (isinstance(exp, Const) and not isinstance(exp.value, bool)) else _cast(exp, target)
            return rebuild(n, (new_base, new_exp))
        elif n.type.dtype in (FLOAT, INT):
            target = n.type.dtype
        else:
            return n
        args = tuple(
            a if i in f.keep_dtype or (a.type.dtype is BOOL and target is BOOL) else _cast(a, target)
            for i, a in enumerate(n.args)
        )
        return rebuild(n, args)

    return rewrite_bottom_up(root, fix)


# ---- common subexpressions -------------------------------------------------------------------


def share_common(root: Node) -> Node:
    table: dict[tuple, Node] = {}

    def key(n: Node):
        if isinstance(n, Const):
            return ("const", n.type, type(n.value), n.value)
        if isinstance(n, DimSize):
            return ("dim", n.dim)
        if isinstance(n, Arg):
            return ("arg", n.name, n.path)
        ins = tuple(id(a) for a in n.inputs)
        if isinstance(n, Apply):
            return ("apply", n.fn, ins, n.attrs, n.type)
        if isinstance(n, Index):
            return ("index", ins, n.items)
        return ("gather", ins)

    def merge(n: Node) -> Node:
        k = key(n)
        if k in table:
            return table[k]
        table[k] = n
        return n

    return rewrite_bottom_up(root, merge)


def _lower_held(body: Node) -> Node:
    body = lower_inner(body)
    for p in (lowering_rules, share_common, guard_wheres, fold_constants, insert_casts, share_common):
        body = p(body)
    return guard_wheres(body, domains=False, data=True)


def lower_inner(root: Node) -> Node:
    """Each call that holds IR of its own (a `scan`'s step) with that IR lowered as the loss is."""

    def fix(n: Node) -> Node:
        if isinstance(n, Apply):
            inner = FUNCTIONS[n.fn].inner
            if inner is not None:
                return inner(n, _lower_held)
        return n

    return rewrite_bottom_up(root, fix)


def lower(
    checked: CheckedModule,
    *,
    kernels: dict[str, set[str]] | None = None,
    sharded: str | None = None,
    made_global: list | None = None,
) -> Node:
    """The IR a backend prints; `kernels` are the fused losses that backend has (see kernels.py);
    `sharded` names a dimension split across replicas (see sharding.py), and the reductions made
    global are appended to `made_global`."""
    root = lower_inner(checked.loss)
    for p in (lowering_rules, share_common, guard_wheres, fold_constants, insert_casts, share_common):
        root = p(root)
    if sharded:
        root, made = globalize(root, sharded, checked.source.name)
        if made_global is not None:
            made_global.extend(made)
    if kernels:
        root = select_kernels(root, kernels)
    return guard_wheres(root, domains=False, data=True)
