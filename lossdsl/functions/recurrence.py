"""A recurrence along an axis: `scan(step, init, [x, ...], axis=T)`.

`step` names a `def` of the spec taking the carry and one slice of each sequence (`def
step(a, x) = ...`); `scan` starts the carry at `init` and applies `step` to it and slice t of
every `x` along `axis`, for t = 0, 1, ... (docs/language.md §3). It gives the last carry, or
with `all=true` every carry, stacked along a new leading axis of the scanned size. The step is
checked once, with the carry's type and the slices' types, and must give a value of the
carry's dtype and shape (E411). Its IR (`Step`) is closed: every value it reads from outside
is an operand of the call, so the passes rewrite it with the rest and the printers pass it in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..ir import Apply, Arg, Const, DimSize, Node, rebuild, topological
from ..types import TensorType
from . import intervals as iv
from .table import MIXES, CallSite, NoRule, Param, RuleContext, define

PARAMS = (
    Param("step", "def"),
    Param("init"),
    Param("xs", "tensors"),
    Param("axis", "axis", 0),
    Param("all", "bool", False),
)


@dataclass(frozen=True, eq=False)
class Step:
    """The step's IR over its parameters: the carry, one slice per sequence, and one value per
    operand captured from outside (the call's operands after the sequences)."""

    body: Node
    carry: Arg
    slices: tuple[Arg, ...]
    captured: tuple[Arg, ...]

    def __repr__(self) -> str:  # `lossdsl ir` prints attributes
        return "step"

    @property
    def params(self) -> tuple[Arg, ...]:
        return (self.carry,) + self.slices + self.captured


def _placeholder(t: TensorType, span, name: str) -> Arg:
    return Arg(t, span, "step", name)


def close_over(body: Node, params: set[int]) -> tuple[Node, list[Node], list[Arg]]:
    """`body` with each largest subexpression that reads none of `params` (a declared value, a
    `let` computed outside) replaced by a new parameter: (the new body, those subexpressions,
    their parameters). Literals and sizes stay inside."""
    depends: set[int] = set(params)
    for n in topological(body):
        if any(id(a) in depends for a in n.inputs):
            depends.add(id(n))
    outside: dict[int, Arg] = {}
    captured: list[Node] = []
    done: dict[int, Node] = {}
    for n in topological(body):
        if id(n) in depends and id(n) not in params:
            done[id(n)] = rebuild(n, tuple(_outer(a, depends, done, outside, captured) for a in n.inputs))
        else:
            done[id(n)] = n
    root = done[id(body)] if id(body) in depends else _outer(body, depends, done, outside, captured)
    return root, captured, [outside[id(c)] for c in captured]


def _outer(n: Node, depends: set[int], done: dict, outside: dict, captured: list) -> Node:
    if id(n) in depends:
        return done[id(n)]
    if isinstance(n, (Const, DimSize)):
        return n
    if id(n) not in outside:
        outside[id(n)] = _placeholder(n.type, n.span, f"k{len(captured)}")
        captured.append(n)
    return outside[id(n)]


def scan(ck: RuleContext, site: CallSite):
    init, xs = site.t(0), [site.t(i) for i in range(1, len(site.args))]
    if not xs:
        ck.fail(
            "`scan` needs at least one sequence to step through",
            site.span,
            "E501",
            help="for example `scan(step, init, [x], axis=T)`",
        )
    slices: list[TensorType] = []
    axes: list[int] = []
    size = None
    for i, x in enumerate(xs, start=1):
        sub = CallSite(site.fn, site.args, site.arg_spans, site.arg_texts, site.static, site.arg_spans[i])
        (k,) = ck.axes(sub, x, single=True) or (0,)
        if x.rank == 0:
            ck.fail(f"`scan` steps along an axis, and `{site.arg_texts[i]}` has none", site.arg_spans[i], "E404")
        if size is None:
            size = x.shape[k]
        else:
            ck.same_dim(
                size,
                x.shape[k],
                site.arg_spans[i],
                "the sequences of `scan` have different lengths along the scanned axis: `{a}` and `{b}`",
                "E401",
            )
        slices.append(TensorType(x.dtype, x.shape[:k] + x.shape[k + 1 :]))
        axes.append(k)
    assert size is not None
    span = site.static["step"].span or site.span
    carry = _placeholder(init, span, "carry")
    params = [_placeholder(t, site.arg_spans[i + 1], f"x{i}") for i, t in enumerate(slices)]
    body = ck.inline(site, "step", [carry, *params])
    if body.type.dtype is not init.dtype or body.type.rank != init.rank:
        ck.fail(
            f"the step of `scan` must keep the carry's type `{init}`, and gives `{body.type}`",
            body.span,
            "E411",
            help=f"the carry starts as `{site.arg_texts[0]}`; the step's result becomes the next carry",
        )
    for a, b in zip(init.shape, body.type.shape):
        ck.same_dim(
            a,
            b,
            body.span,
            f"the step of `scan` must keep the carry's shape `{init}`, and gives `{body.type}`",
            "E411",
            help=f"the carry starts as `{site.arg_texts[0]}`; the step's result becomes the next carry",
        )
    root, captured, outside = close_over(body, {id(carry), *map(id, params)})
    step = Step(root, carry, tuple(params), tuple(outside))
    out = TensorType(init.dtype, (size,) + init.shape) if site.static["all"].value else init
    attrs = {"step": step, "captured": tuple(captured), "axes": tuple(axes), "all": bool(site.static["all"].value)}
    return out, attrs


def lower_step(n: Apply, lower: Callable[[Node], Node]) -> Apply:
    """The step lowered by the passes that lower the loss (`lower`), its parameters kept."""
    step: Step = n.attr("step")
    lowered = Step(lower(step.body), step.carry, step.slices, step.captured)
    return Apply(n.type, n.span, n.fn, n.args, tuple((k, lowered if k == "step" else v) for k, v in n.attrs))


def carry_range(args: list[iv.Interval], node: Apply, step_range: StepRange | None = None) -> iv.Interval:
    """The carry's interval (every carry's, with `all=true`): `init`'s, joined with what the step
    makes of the carry so far, until it settles; a side still moving after a few rounds is
    unbounded. `step_range` gives the step's interval from intervals for its parameters, in the
    order of the call's operands (the analysis supplies it; without it nothing is known)."""
    if step_range is None:
        return iv.FULL
    step: Step = node.attr("step")
    carry, rest = args[0], tuple(args[1:])  # the sequences', then the captured values'
    for _ in range(_ROUNDS):
        out = step_range(step, (carry, *rest))
        joined = (min(carry[0], out[0]), max(carry[1], out[1]))
        if joined == carry:
            return carry
        carry = joined
    out = step_range(step, (carry, *rest))
    return (carry[0] if out[0] >= carry[0] else -iv.INF, carry[1] if out[1] <= carry[1] else iv.INF)


_ROUNDS = 3  # a carry that grows each step (a running sum) is unbounded after this many
StepRange = Callable[[Step, tuple[iv.Interval, ...]], iv.Interval]


def _sharding(g, n: Apply) -> Node:
    """A step may read across the whole of any operand: a sharded dimension anywhere is refused."""
    if any(g.dim in a.type.shape for a in n.args):
        g.fail(n, "a `scan`")
    return n


define(
    "scan",
    PARAMS,
    "recurrence",
    scan,
    "the last carry of `step(carry, x[t], ...)` from `init` along `axis` (every carry, stacked first, with `all=true`)",
    known_as=("foldl", "fori_loop", "while_loop"),
    grad="the framework's: through the unrolled loop (torch, NumPy), `tf.foldl`/`tf.scan`, `jax.lax.scan`",
    vjp=NoRule("the framework differentiates the loop"),
    value_range=carry_range,
    fold=NoRule("its operands are tensors"),
    lanes=MIXES,
    sharding=_sharding,
    cast="keep",
    inner=lower_step,
)
