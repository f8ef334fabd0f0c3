"""Analyses of a checked module that go beyond types.

- Gradient paths (errors): every `pred` must reach `loss` through a differentiable
  path. A pred that is unused, or used only through `argmax`, comparisons,
  rounding, `int()` or `stop_gradient`, would get a gradient of zero everywhere.
- Domains (warnings): a `log`, `log1p`, `sqrt` or `/` whose operand may leave its
  domain, as far as a simple interval analysis can tell. `clip(p, 1e-7, 1)`,
  `p + 1e-7` on a non-negative `p`, `exp`, `softplus`, `abs`, squares and the
  guard of an enclosing `where(x > 0, ..., ...)` all count as evidence. The
  patterns that lossdsl rewrites to stable forms (`log(softmax(z))`...) are not
  warned about. A declared value domain (`p: float[B] in (0, 1]`, `in simplex`) is the
  range of the value it is declared on. Warnings never stop a spec from compiling; `lossdsl check
  --strict` makes them fail the check.
"""

from __future__ import annotations

import math
from typing import cast

from .checked import CheckedModule
from .diagnostics import Diagnostic
from .domains import value_range
from .functions import FUNCTIONS, NoRule
from .functions.recurrence import Step
from .functions.table import StepRangeRule
from .ir import Apply, Arg, Const, DimSize, Gather, Index, Node, topological
from .types import FLOAT

# ---- gradient paths ----------------------------------------------------------------------


def gradient_findings(checked: CheckedModule) -> list[Diagnostic]:
    loss = checked.loss
    reach: dict[int, frozenset[str]] = {}
    grad: dict[int, frozenset[str]] = {}
    blockers: dict[str, list[Node]] = {}
    empty: frozenset[str] = frozenset()
    for node in topological(loss):
        if isinstance(node, Arg):
            s = frozenset([node.name]) if node.kind == "pred" else empty
            reach[id(node)] = grad[id(node)] = s
            continue
        ins = node.inputs
        reach[id(node)] = frozenset().union(*(reach[id(a)] for a in ins)) if ins else empty
        if isinstance(node, Apply):
            carried = FUNCTIONS[node.fn].carried(node)
        elif isinstance(node, (Index, Gather)):
            carried = (0,)
        else:
            carried = ()
        g = frozenset().union(*(grad[id(ins[i])] for i in carried)) if carried else empty
        if node.type.dtype is not FLOAT:
            g = empty
        grad[id(node)] = g
        for a in ins:
            for p in grad[id(a)] - g:
                blockers.setdefault(p, []).append(node)
    findings = []
    for decl in checked.preds:
        if decl.name in grad[id(loss)]:
            continue
        if decl.name not in reach[id(loss)]:
            findings.append(
                Diagnostic(
                    f"pred `{decl.name}` is not used by `loss`, so its gradient would be zero everywhere",
                    decl.name_span,
                    "E604",
                    help="every pred must reach `loss`; use it, or remove the declaration",
                )
            )
            continue
        where = blockers.get(decl.name, [])
        names = []
        for b in where:
            label = _op_label(b)
            if label not in names:
                names.append(label)
        notes = [f"`{_op_label(b)}` at line {b.span.line}, column {b.span.col} stops the gradient" for b in where[:3]]
        via = " or ".join(f"`{n}`" for n in names) or "non-differentiable operations"
        findings.append(
            Diagnostic(
                f"the gradient of pred `{decl.name}` would be zero everywhere: it reaches `loss` only through {via}",
                decl.name_span,
                "E603",
                notes=tuple(notes),
                help=_gradient_help(names, decl.name),
            )
        )
    return findings


def _op_label(node: Node) -> str:
    if isinstance(node, Apply):
        f = FUNCTIONS[node.fn]
        return f.symbol or f.name
    if isinstance(node, Gather):
        return "indexing"
    return type(node).__name__.lower()


def _gradient_help(names: list[str], pred: str) -> str:
    if "argmax" in names or "argmin" in names:
        return (
            f"`argmax` picks an index and has no gradient; use the scores themselves in a differentiable "
            f"term, e.g. `-pick(log_softmax({pred}), y)`"
        )
    if "stop_gradient" in names:
        return "remove `stop_gradient`, or add a term through which the pred is trained"
    if any(n in names for n in ("<", "<=", ">", ">=", "==", "!=")):
        return "a comparison gives a bool with no gradient; compare with a smooth function, e.g. `sigmoid(k * x)`"
    return "add a differentiable term that uses the pred"


# ---- domains ---------------------------------------------------------------------------------

INF = math.inf


def _range_of(node: Apply, args: list[tuple[float, float]]) -> tuple[float, float]:
    rule = FUNCTIONS[node.fn].value_range
    if isinstance(rule, NoRule):  # not in a checked loss (a node the lowering inserts)
        return (-INF, INF)
    return rule(args, node)


def _straight_through(node: Apply) -> Node | None:
    if node.fn != "add":
        return None
    for x, other in (node.args, node.args[::-1]):
        if isinstance(other, Apply) and other.fn == "stop_gradient":
            inner = other.args[0]
            if isinstance(inner, Apply) and inner.fn == "sub" and inner.args[1] is x:
                return inner.args[0]
    return None


def _refine(cond: Node, taken: bool) -> dict[int, tuple[float, float]]:
    """What `where(cond, ...)` tells about a value in its taken (or other) branch: a comparison
    with a literal, `not` of one, and both sides of an `and` that holds (or an `or` that does not),
    as in `where((c > -1.0) and (c < 1.0), acos(c), 0.0)`."""
    if isinstance(cond, Apply) and cond.fn == "not":
        return _refine(cond.args[0], not taken)
    if isinstance(cond, Apply) and cond.fn in ("and", "or") and (cond.fn == "and") == taken:
        out = _refine(cond.args[0], taken)
        for k, (lo, hi) in _refine(cond.args[1], taken).items():
            lo0, hi0 = out.get(k, (-math.inf, math.inf))
            out[k] = (max(lo, lo0), min(hi, hi0))
        return out
    if not isinstance(cond, Apply) or FUNCTIONS[cond.fn].refine is None:
        return {}
    a, b = cond.args
    if not isinstance(b, Const):
        return {}
    f = FUNCTIONS[cond.fn]
    if not taken:
        assert f.negation is not None
        f = FUNCTIONS[f.negation]
    assert f.refine is not None
    return {id(a): f.refine(float(b.value))}


def _param_range(default) -> tuple[float, float]:
    """A param is assumed to keep the sign of its default (its value may change per call)."""

    def flat(v):
        if isinstance(v, list):
            for x in v:
                yield from flat(x)
        else:
            yield float(v)

    values = list(flat(default))
    if not values:
        return (-INF, INF)
    lo, hi = min(values), max(values)
    return (1e-300 if lo > 0 else lo if lo == 0 else -INF, -1e-300 if hi < 0 else hi if hi == 0 else INF)


_NONE: frozenset[int] = frozenset()


class _Domains:
    def __init__(
        self, checked: CheckedModule, root: Node, outer: _Domains | None = None, bound: dict | None = None
    ) -> None:
        """Ranges below `root`: the loss, or the body of a recurrence's step (`outer` the analysis
        it is called from, `bound` the ranges of the step's parameters by id)."""
        self.checked = checked
        if outer is None:
            self.params = {d.name: _param_range(d.default) for d in checked.of_kind("param") if d.has_default}
            # A declared domain (`in (0, 1]`) is the caller's promise, and wins over a param's default.
            self.declared = {
                (d.name, leaf.path): value_range(leaf.domain)
                for d in checked.declarations
                for leaf in d.leaves
                if leaf.domain is not None
            }
            self.findings: list[Diagnostic] = []
            self.seen: set = set()
        else:  # one list of findings, deduplicated across the loss and every step
            self.params, self.declared, self.findings, self.seen = (
                outer.params,
                outer.declared,
                outer.findings,
                outer.seen,
            )
        self.bound = bound or {}
        self.memo: dict = {}
        self.order = topological(root)
        # For each node, the values a `where` condition tells about that its range can depend on
        # (itself or an operand, at any depth). A refinement matters only there: the memo ignores
        # the others, so a chain of `where`s costs linear time, not one walk per combination of
        # refinements. Built operands first, sharing an operand's set where nothing is added, so
        # a spec with many guarded terms costs the sum of these sets, not nodes times values.
        refined: set[int] = set()
        for node in self.order:
            if isinstance(node, Apply) and node.fn == "where":
                refined.update(_refine(node.args[0], True), _refine(node.args[0], False))
        self.refinable: dict[int, frozenset[int]] = {}
        for node in self.order:
            below = [self.refinable.get(id(i), _NONE) for i in node.inputs]
            keys = below[0] if len(below) == 1 else _NONE.union(*below)
            self.refinable[id(node)] = keys | {id(node)} if id(node) in refined else keys

    def run(self, root: Node) -> None:
        """Ranges for every node, operands first (so no walk recurses down a long chain of lets),
        then the root. Nodes inside a `where` branch that its condition refines are reached from
        the `where`, with the refinement, never without it."""
        plain = self._visited_unrefined(root)
        for node in self.order:
            if id(node) in plain:
                self.rng(node, {})
        self.rng(root, {})

    def _visited_unrefined(self, root: Node) -> set[int]:
        out: set[int] = set()
        stack = [root]
        while stack:
            node = stack.pop()
            if id(node) in out:
                continue
            out.add(id(node))
            if isinstance(node, Apply) and node.fn == "where":
                c, a, b = node.args
                stack.append(c)
                for branch, taken in ((a, True), (b, False)):
                    if not self._relevant(branch, _refine(c, taken)):
                        stack.append(branch)
            else:
                stack.extend(node.inputs)
        return out

    def _relevant(self, node: Node, env: dict) -> dict:
        keys = self.refinable.get(id(node), _NONE)
        return {k: v for k, v in env.items() if k in keys}

    def rng(self, node: Node, env: dict) -> tuple[float, float]:
        env = self._relevant(node, env)
        key = (id(node), tuple(sorted(env.items())))
        if key in self.memo:
            return self.memo[key]
        r = self._rng(node, env)
        if id(node) in env:
            lo, hi = env[id(node)]
            r = (max(r[0], lo), min(r[1], hi))
        self.memo[key] = r
        return r

    def _rng(self, node: Node, env: dict) -> tuple[float, float]:
        if isinstance(node, Const):
            v = float(node.value)
            return (v, v)
        if isinstance(node, DimSize):
            return (1.0, INF)
        if isinstance(node, Arg):
            if id(node) in self.bound:  # a parameter of the step analysed
                return self.bound[id(node)]
            declared = self.declared.get((node.name, node.path))
            if declared is not None:
                return declared
            return self.params.get(node.name, (-INF, INF)) if node.kind == "param" else (-INF, INF)
        if isinstance(node, (Index, Gather)):
            return self.rng(node.inputs[0], env)
        assert isinstance(node, Apply)
        if node.fn == "where":
            c, a, b = node.args
            self.rng(c, env)
            ra = self.rng(a, {**env, **_refine(c, True)})
            rb = self.rng(b, {**env, **_refine(c, False)})
            return (min(ra[0], rb[0]), max(ra[1], rb[1]))
        args = [self.rng(a, env) for a in node.args]
        self._check(node, args)
        passthrough = _straight_through(node)
        if passthrough is not None:  # x + stop_gradient(f - x) has the value of f
            return self.rng(passthrough, env)
        if isinstance(node.attr("step"), Step):  # a recurrence: its rule asks for the step's range
            rule = cast(StepRangeRule, FUNCTIONS[node.fn].value_range)
            return rule(args, node, self._step_range)
        return _range_of(node, args)

    def _step_range(self, step: Step, params: tuple) -> tuple[float, float]:
        """The range of `step`'s body from ranges for its parameters (carry, slices, captured
        values), its findings added to the loss's."""
        inner = _Domains(self.checked, step.body, self, dict(zip(map(id, step.params), params, strict=True)))
        inner.run(step.body)
        return inner.rng(step.body, {})

    def _check(self, node: Apply, args) -> None:
        f = FUNCTIONS[node.fn]
        warning = f.domain
        if warning is None or not warning.outside(args[warning.operand]):
            return
        if f.lower is not None and f.lower(node) is not None:
            return  # rewritten to a stable form before it runs (`log(softmax(z))`...)
        span = node.span
        key = (span.line, span.col, node.fn)
        if key in self.seen:
            return
        self.seen.add(key)
        self.findings.append(
            Diagnostic(
                warning.message,
                span,
                "W701",
                severity="warning",
                help=warning.help,
                notes=(warning.note,) if warning.note else (),
            )
        )


def domain_findings(checked: CheckedModule) -> list[Diagnostic]:
    d = _Domains(checked, checked.loss)
    d.run(checked.loss)
    return d.findings
