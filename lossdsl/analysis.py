"""Analyses of a checked module that go beyond types.

- Gradient paths (errors): every `pred` must reach `loss` through a differentiable
  path. A pred that is unused, or used only through `argmax`, comparisons,
  rounding, `int()` or `stop_gradient`, would get a gradient of zero everywhere.
- Domains (warnings): a `log`, `log1p`, `sqrt` or `/` whose operand may leave its
  domain, as far as a simple interval analysis can tell. `clip(p, 1e-7, 1)`,
  `p + 1e-7` on a non-negative `p`, `exp`, `softplus`, `abs`, squares and the
  guard of an enclosing `where(x > 0, ..., ...)` all count as evidence. The
  patterns that lossdsl rewrites to stable forms (`log(softmax(z))`...) are not
  warned about. Warnings never stop a spec from compiling; `lossdsl check
  --strict` makes them fail the check.
"""

from __future__ import annotations

import math

from .checked import CheckedModule
from .diagnostics import Diagnostic
from .functions import FUNCTIONS
from .ir import Apply, Arg, Const, DimSize, Gather, Index, Node, topological
from .passes import stable_log
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
            carried = FUNCTIONS[node.fn].grad_args
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
            findings.append(Diagnostic(
                f"pred `{decl.name}` is not used by `loss`, so its gradient would be zero everywhere",
                decl.name_span, "E604", help="every pred must reach `loss`; use it, or remove the declaration"))
            continue
        where = blockers.get(decl.name, [])
        names = []
        for b in where:
            label = _op_label(b)
            if label not in names:
                names.append(label)
        notes = [f"`{_op_label(b)}` at line {b.span.line}, column {b.span.col} stops the gradient" for b in where[:3]]
        via = " or ".join(f"`{n}`" for n in names) or "non-differentiable operations"
        findings.append(Diagnostic(
            f"the gradient of pred `{decl.name}` would be zero everywhere: it reaches `loss` only through {via}",
            decl.name_span, "E603", notes=tuple(notes), help=_gradient_help(names, decl.name)))
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
        return f"`argmax` picks an index and has no gradient; use the scores themselves in a differentiable " \
               f"term, e.g. `-pick(log_softmax({pred}), y)`"
    if "stop_gradient" in names:
        return "remove `stop_gradient`, or add a term through which the pred is trained"
    if any(n in names for n in ("<", "<=", ">", ">=", "==", "!=")):
        return "a comparison gives a bool with no gradient; compare with a smooth function, e.g. `sigmoid(k * x)`"
    return "add a differentiable term that uses the pred"


# ---- domains ---------------------------------------------------------------------------------

INF = math.inf


def _add(a, b):
    return (a[0] + b[0], a[1] + b[1])


def _mul(a, b):
    if (a[0] > 0 and b[0] > 0) or (a[1] < 0 and b[1] < 0):
        # Two positive (or two negative) factors: positive, even where the bound underflows.
        lo = max(min(abs(a[0] * b[0]), abs(a[1] * b[1])), 5e-324)
        return (lo, INF)
    vals = []
    for x in a:
        for y in b:
            if (x == 0 and math.isinf(y)) or (y == 0 and math.isinf(x)):
                vals.append(0.0)
            else:
                vals.append(x * y)
    return (min(vals), max(vals))


def _ranges_of(fn: str, args: list[tuple[float, float]], node: Apply) -> tuple[float, float]:
    full = (-INF, INF)
    if fn in ("exp", "softplus"):
        return (0.0, INF)
    if fn in ("abs", "square", "relu", "sqrt", "norm"):
        return (max(0.0, args[0][0]) if fn == "relu" else 0.0, INF)
    if fn in ("sigmoid", "softmax", "one_hot"):
        return (0.0, 1.0)
    if fn in ("tanh", "sin", "cos"):
        return (-1.0, 1.0)
    if fn == "add":
        return _add(args[0], args[1])
    if fn == "sub":
        return _add(args[0], (-args[1][1], -args[1][0]))
    if fn == "neg":
        return (-args[0][1], -args[0][0])
    if fn == "mul":
        return _mul(args[0], args[1])
    if fn == "div":
        lo, hi = args[1]
        if lo > 0 or hi < 0:
            inv = sorted([1 / lo if lo else INF, 1 / hi if hi else INF])
            return _mul(args[0], (inv[0], inv[1]))
        return full
    if fn == "pow":
        exp = node.args[1]
        if isinstance(exp, Const) and isinstance(exp.value, int) and not isinstance(exp.value, bool):
            if exp.value % 2 == 0:
                return (0.0, INF)
            if args[0][0] >= 0:
                return (0.0 if args[0][0] == 0 else args[0][0] ** exp.value, INF)
        if args[0][0] > 0:
            return (0.0, INF)
        return full
    if fn == "clip":
        return (max(args[0][0], args[1][0]), min(max(args[0][1], args[1][1]), args[2][1]))
    if fn == "maximum":
        return (max(args[0][0], args[1][0]), max(args[0][1], args[1][1]))
    if fn == "minimum":
        return (min(args[0][0], args[1][0]), min(args[0][1], args[1][1]))
    if fn == "where":
        return (min(args[1][0], args[2][0]), max(args[1][1], args[2][1]))
    if fn in ("mean", "max", "min", "float", "cast_float", "stop_gradient", "pick", "transpose", "cumsum"
              ) and args:
        if fn == "cumsum" and args[0][0] < 0:
            return full
        return args[0]
    if fn in ("sum", "segment_sum"):
        lo = args[0][0]
        return (0.0 if lo >= 0 else -INF, INF if args[0][1] > 0 else 0.0)
    if fn in ("var", "std"):
        return (0.0, INF)
    return full


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
    """What `where(cond, ...)` tells about a value in its taken (or other) branch."""
    if not isinstance(cond, Apply) or cond.fn not in ("gt", "ge", "lt", "le"):
        return {}
    a, b = cond.args
    if not isinstance(b, Const):
        return {}
    k = float(b.value)
    fn = cond.fn if taken else {"gt": "le", "ge": "lt", "lt": "ge", "le": "gt"}[cond.fn]
    tiny = 1e-300
    if fn == "gt":
        return {id(a): (k + tiny if k >= 0 else k, INF)}
    if fn == "ge":
        return {id(a): (k, INF)}
    if fn == "lt":
        return {id(a): (-INF, k - tiny if k <= 0 else k)}
    return {id(a): (-INF, k)}


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


class _Domains:
    def __init__(self, checked: CheckedModule) -> None:
        self.params = {d.name: _param_range(d.default) for d in checked.of_kind("param") if d.has_default}
        self.findings: list[Diagnostic] = []
        self.memo: dict = {}
        self.seen: set = set()

    def rng(self, node: Node, env: dict) -> tuple[float, float]:
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
        return _ranges_of(node.fn, args, node)

    def _check(self, node: Apply, args) -> None:
        if node.fn == "log" and stable_log(node) is not None:
            return
        problem: tuple[str, str | None] | None = None
        if node.fn == "log" and not args[0][0] > 0:
            problem = ("`log` may see 0 or a negative value here", "0 gives -inf and a negative value NaN")
        elif node.fn == "log1p" and not args[0][0] > -1:
            problem = ("`log1p` may see a value at or below -1 here", None)
        elif node.fn == "sqrt" and args[0][0] < 0:
            problem = ("`sqrt` may see a negative value here", "a negative value gives NaN")
        elif node.fn == "div" and args[1][0] <= 0 <= args[1][1]:
            problem = ("the divisor may be 0 here", "x / 0 is inf or NaN, and so is its gradient")
        if problem is None:
            return
        span = node.span
        key = (span.line, span.col, node.fn)
        if key in self.seen:
            return
        self.seen.add(key)
        if node.fn == "div":
            help = "add a small constant (`x / (s + 1e-7)`) or select with `where(s != 0, x / s, 0.0)`"
        else:
            help = (f"bound it away from 0: `{node.fn}(clip(p, 1e-7, 1.0))` or `{node.fn}(p + 1e-7)`; "
                    "on logits, use `log_softmax` or `log_sigmoid`")
        self.findings.append(Diagnostic(problem[0], span, "W701", severity="warning", help=help,
                                        notes=(problem[1],) if problem[1] else ()))


def domain_findings(checked: CheckedModule) -> list[Diagnostic]:
    d = _Domains(checked)
    d.rng(checked.loss, {})
    return d.findings
