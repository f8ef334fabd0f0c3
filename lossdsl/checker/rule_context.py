"""What a rule of the function table may ask of the checker (`functions.RuleContext`):
dtypes, broadcasting, axes, equal shapes and dims, and the minimum size an index needs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..checked import SizeConstraint
from ..functions import CallSite
from ..ir import Const, Node
from ..source import Span
from ..types import BOOL, INT, Dim, DType, Shape, TensorType
from .broadcasting import broadcast_shapes
from .dims import Dims
from .report import POISON, Reporter, RuleFailed


class CheckerRuleContext:
    """Implements `functions.RuleContext`. A check that fails reports its error and raises
    `RuleFailed`, so the call being checked becomes POISON."""

    def __init__(self, report: Reporter, dims: Dims, *, quick: bool):
        self.report = report
        self.dims = dims
        self.quick = quick
        # Minimum sizes of symbolic dims, checked at each call (one per dim, the largest).
        self.constraints: list[SizeConstraint] = []
        # checks a `def` with given argument values (set by the expression checker)
        self.inline_def: Callable[[Any, list[Node], Span], Any] | None = None
        self.sizes_log: list[tuple] | None = None  # the arguments of every need_size (checker/reuse.py)

    def fail(self, message: str, span: Span, code: str, help: str | None = None, notes: Sequence[str] = ()) -> NoReturn:
        self.report.fail(message, span, code, help, notes)

    def need_dtype(self, site: CallSite, i: int, allowed: set[DType], what: str = "") -> DType:
        dt = site.t(i).dtype
        if dt in allowed:
            return dt
        span = site.arg_spans[i]
        name = site.fn.symbol or site.fn.name
        text = site.arg_texts[i]
        if dt is BOOL and BOOL not in allowed:
            self.fail(
                what or f"`{name}` needs numbers, found `bool`",
                span,
                "E302",
                help=f"convert with `float({text})`, or select with `where({text}, a, b)`",
            )
        if allowed == {BOOL}:
            self.fail(
                what + f": expected `bool`, found `{dt}`" if what else f"expected `bool`, found `{dt}`",
                span,
                "E303",
                help=f"compare to get a bool, e.g. `{text} > 0`",
            )
        if allowed == {INT}:
            self.fail(
                (what + ": " if what else "") + f"expected `int`, found `{dt}`",
                span,
                "E304",
                help=f"class indices come from `argmax(...)` or an `int` declaration; `int({text})` truncates",
            )
        self.fail(f"expected {' or '.join(f'`{a}`' for a in sorted(map(str, allowed)))}, found `{dt}`", span, "E301")

    def broadcast(
        self, site: CallSite, indices: Sequence[int] | None = None, shapes: Sequence[Shape] | None = None
    ) -> Shape:
        types: list[TensorType | None]
        texts: Sequence[str]
        if shapes is None:
            idx = list(indices) if indices is not None else list(range(len(site.args)))
            shapes = [site.args[i].type.shape for i in idx]
            # the operands as written are read only by a message: kept lazy for the usual call
            texts = site.arg_texts if indices is None else [site.arg_texts[i] for i in idx]
            types = [site.args[i].type for i in idx]
        else:
            texts = ["a", "b"]
            types = [None, None]
        return broadcast_shapes(self.report, self.dims, site, shapes, types, texts, quick=self.quick)

    def axes(
        self, site: CallSite, t: TensorType, *, single: bool = False, param: str = "axis"
    ) -> tuple[int, ...] | None:
        spec = site.static[param].value
        if spec is None:
            return None
        items = spec if isinstance(spec, list) else [spec]
        out: list[int] = []
        for value, span in items:
            span = span or site.span
            if isinstance(value, int):
                if not -t.rank <= value < t.rank:
                    self.fail(f"axis {value} is out of range for `{t}` (rank {t.rank})", span, "E405")
                k = value % t.rank
            else:
                # The axis named `C` is also the one a slice left as `C - 1`, or a concatenation
                # made `C + D`.
                hits = [i for i, d in enumerate(t.shape) if value in d.terms()]
                if not hits:
                    axes_txt = ", ".join(f"`{d}`" for d in t.shape) or "none"
                    self.fail(f"`{value}` is not an axis of `{t}`", span, "E405", help=f"its axes are {axes_txt}")
                if len(hits) > 1:
                    self.fail(
                        f"`{value}` names {len(hits)} axes of `{t}`",
                        span,
                        "E405",
                        help="say which one with an integer axis, e.g. `axis=-1`",
                    )
                k = hits[0]
            if k in out:
                self.fail(f"axis {value} is given twice", span, "E405")
            out.append(k)
        if single and len(out) != 1:
            self.fail(f"`{site.fn.name}` takes a single axis", site.static[param].span or site.span, "E405")
        return tuple(sorted(out))

    def same_shape(self, a: Shape, b: Shape, span: Span, what: str) -> None:
        sa = "[" + ", ".join(map(str, a)) + "]"
        sb = "[" + ", ".join(map(str, b)) + "]"
        if len(a) != len(b):
            self.fail(f"{what} must have shape `{sa}`, found `{sb}`", span, "E404")
        for x, y in zip(a, b):
            if self.dims.unify(x, y, broadcast=False, span=span, where=what) is None:
                rx, ry = self.dims.resolve(x), self.dims.resolve(y)
                if rx.is_literal and ry.is_literal and (x.sym or y.sym):
                    sym = x if x.sym else y
                    value, bound_where = self.dims.bound[sym.sym]  # type: ignore[index]
                    other = y if x.sym else x
                    self.fail(
                        f"`{sym.sym}` is {value} {bound_where} but {self.dims.resolve(other)} in {what}", span, "E402"
                    )
                self.fail(
                    f"{what} must have shape `{sa}`, found `{sb}`",
                    span,
                    "E401",
                    notes=[f"`{x}` meets `{y}`; different dimensions never unify"],
                )

    def same_dim(self, a: Dim, b: Dim, span: Span, message: str, code: str, help: str | None = None) -> None:
        if self.dims.unify(a, b, broadcast=False, span=span) is None:
            self.fail(message.format(a=a, b=b), span, code, help=help)

    def const_value(self, node: Node) -> Any:
        return node.value if isinstance(node, Const) else None

    def inline(self, site: CallSite, param: str, args: Sequence[Node]) -> Node:
        """The `def` that `param` names, checked with its parameters bound to `args`; a failure
        inside it is reported there and fails the call."""
        assert self.inline_def is not None
        arg = site.static[param]
        body = self.inline_def(arg.value, list(args), arg.span or site.span)
        if body is POISON:
            raise RuleFailed()
        return body

    def need_size(self, dim: Dim, minimum: int, span: Span, what: str = "this index") -> None:
        """Record that `dim` must be at least `minimum` (checked at each call); one per dim, the largest."""
        if self.sizes_log is not None:
            self.sizes_log.append((dim, minimum, span, what))
        if minimum <= 0 or dim.is_literal:
            return
        for i, c in enumerate(self.constraints):
            if c.dim == dim:
                if minimum > c.minimum:
                    self.constraints[i] = SizeConstraint(dim, minimum, span, what)
                return
        self.constraints.append(SizeConstraint(dim, minimum, span, what))
