"""What one entry of the function table holds, and the table itself.

Every function and operator of the language is one `Function`, defined once (in the module
of its group) with every rule the passes need, in the style of JAX's autodidax: a pass looks
a rule up by the function's name (`FUNCTIONS[node.fn].vjp`) and never keeps a list of names
of its own. A rule a function does not have is an explicit, named opt-out (`NoRule(why)`);
tests/test_function_table.py fails for an entry that has neither.

The rules, by the pass that reads them:

    rule            checker: dtype and shape of a call, its attributes
    grad_args       analysis and autodiff: the operands the gradient flows through
    vjp             autodiff: the backward, built as IR (docs/language.md §4 conventions)
    value_range     analysis: an interval for the value from intervals for the operands
    domain          analysis: the warning when an operand may leave the domain
    safe            passes: the value an operand takes in the lanes a `where` does not take
    lanes           passes: which lanes of the operands an output lane reads
    sharding        sharding: how to compute over a dimension split across replicas
    fold            passes: the value on Python scalars, for constant folding
    lower           passes: a rewrite into other functions of the table (stable forms)
    cast            passes: how operands reach the compute dtype
    inner           passes: the IR a call holds (a `scan`'s step), lowered like the loss
    index_operands  runtime checks, sampling: the operands read as indices, and into what
    shape_only      codegen: operands read for their shape alone (the derived backward saves that)
    kernel_arith    kernels: may appear in the elementwise body of a fused loss
    known_as        checker: other libraries' names for it, for the hint on an unknown function

Spellings are the backends' part: each printer maps every name to its framework
(backends/*.py); the same test checks that no backend misses one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Union

from ..types import Dim, DType, Shape, TensorType

if TYPE_CHECKING:
    from ..ir import Apply, Node
    from ..source import Span

REQUIRED: Any = object()


@dataclass(frozen=True)
class NoRule:
    """A rule this function has not, and why: an opt-out the coverage test accepts."""

    reason: str


@dataclass(frozen=True)
class Param:
    """`kind` is "tensor" (any expression), "tensors" (a list of expressions, `[a, b]`: the call's
    operands from there on), or a static kind, given as a literal:
    "axis" (int, dimension symbol, or a tuple of them), "bool", "int", "number",
    "dim" (a dimension symbol or an integer), "dims" (a list of them, `[H, W]`), "def" (the
    name of a `def` of the spec, which the rule checks with `RuleContext.inline`),
    "choice" (one of the bare names in `choices`: `padding=same`)."""

    name: str
    kind: str = "tensor"
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    shown: str | None = None  # how the signature shows a default that depends on another argument

    @property
    def static(self) -> bool:
        return self.kind not in ("tensor", "tensors")


@dataclass
class StaticArg:
    value: Any
    span: Span | None


@dataclass
class CallSite:
    """One call being checked: typed tensor operands and static arguments, with spans."""

    fn: Function
    args: list[Node]
    arg_spans: list[Span]
    arg_texts: Sequence[str]  # the operands as written, for messages
    static: dict[str, StaticArg]
    span: Span

    def t(self, i: int) -> TensorType:
        return self.args[i].type


class RuleContext(Protocol):
    """What a shape rule may ask of the checker (lossdsl/checker/rule_context.py implements it)."""

    def fail(self, message: str, span: Span, code: str, help: str | None = None, notes: Sequence[str] = ()) -> Any: ...

    def need_dtype(self, site: CallSite, i: int, allowed: set[DType], what: str = "") -> DType: ...

    def broadcast(
        self, site: CallSite, indices: Sequence[int] | None = None, shapes: Sequence[Shape] | None = None
    ) -> Shape: ...

    def axes(
        self, site: CallSite, t: TensorType, *, single: bool = False, param: str = "axis"
    ) -> tuple[int, ...] | None: ...

    def same_shape(self, a: Shape, b: Shape, span: Span, what: str) -> None: ...

    def same_dim(self, a: Dim, b: Dim, span: Span, message: str, code: str, help: str | None = None) -> None: ...

    def const_value(self, node: Node) -> Any: ...

    def need_size(self, dim: Dim, minimum: int, span: Span, what: str) -> None: ...

    def inline(self, site: CallSite, param: str, args: Sequence[Node]) -> Node: ...


Rule = Callable[[RuleContext, CallSite], "tuple[TensorType, dict[str, Any]]"]
Interval = tuple[float, float]
# vjp(builder, node, g, give): call give(operand, its gradient) for each operand (lossdsl/autodiff.py).
VjpRule = Callable[[Any, "Apply", "Node", Callable[["Node", "Node"], None]], None]
# value_range(operand intervals, node) -> the interval of the value (lossdsl/analysis.py); a
# function with a `def` operand (`scan`) also takes the analysis's reading of that def's body,
# step_range(step, intervals of its parameters) -> its interval.
RangeRule = Callable[[list[Interval], "Apply"], Interval]
StepRangeRule = Callable[[list[Interval], "Apply", Callable[[Any, tuple[Interval, ...]], Interval]], Interval]
# sharding(globalizer, node) -> node computed over the global batch (lossdsl/sharding.py).
ShardRule = Callable[[Any, "Apply"], "Node"]

# lanes: which lanes of its operands one lane of the output reads.
ELEMENTWISE = "elementwise"  # the same lane of every operand (after broadcasting)
REDUCES = "reduces"  # the lanes along the reduced axes (`axis` attribute)
ROWS = "rows"  # a row of the first operand, chosen by the same lane of the index (`pick`)
MIXES = "mixes"  # other lanes: a lane's `where` guard says nothing about what it reads
# sharding: the rule for a function that needs none, computing each replica's part from its own.
LOCAL = "local"


@dataclass(frozen=True)
class DomainWarning:
    """`operand`'s interval outside the domain gives a warning (W701) with this message and note."""

    operand: int
    outside: Callable[[Interval], bool]
    message: str
    note: str | None
    help: str


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[Param, ...]
    group: str
    rule: Rule
    doc: str
    vjp: VjpRule | NoRule
    value_range: RangeRule | NoRule
    fold: Callable[..., Any] | NoRule
    lanes: Union[str, Callable[[Apply], str]]
    sharding: Union[str, ShardRule, NoRule]
    grad_args: tuple[int, ...] = (0,)  # operands (by position) the gradient flows through
    grad: str = "smooth"  # the convention where it is not plain calculus (docs/language.md §4)
    symbol: str | None = None  # operators: how they are written
    user: bool = True  # callable by name in the language
    # operand -> the value it takes in the lanes a `where` does not take, where the function's
    # derivative is infinite or undefined somewhere (a rule of the node for `pow`)
    safe: Union[Mapping[int, float], Callable[[Apply], Mapping[int, float]]] = field(default_factory=dict)
    domain: DomainWarning | None = None
    lower: Callable[[Apply], Node | None] | None = None
    # The derived backward applies only where this holds (`pow`: a literal exponent).
    vjp_needs: Callable[[Apply], bool] | None = None
    # "result": operands converted to the result's dtype; "compare": to their common dtype;
    # "exponent": the base to the result's dtype, a literal exponent kept; "convert": the call
    # itself becomes the conversion (`float`, `int`); "keep": every operand keeps its dtype
    cast: str = "result"
    keep_dtype: tuple[int, ...] = ()  # operands that keep their own dtype (conditions, indices)
    index_operands: Callable[[Apply], list[tuple[Node, Dim]]] | None = None
    shape_only: tuple[int, ...] = ()  # operands read for their shape alone (codegen saves only that)
    # operands the function is linear in, each alone (k * f(x, y) = f(k * x, y)): the derived
    # backward moves a literal factor into the cheapest of them (lossdsl/autodiff.py)
    linear_in: tuple[int, ...] = ()
    # A polynomial or piecewise-linear function of its operands: agreeing at enough points means
    # agreeing everywhere, so kernel selection may evaluate it (lossdsl/kernels.py).
    kernel_arith: bool = False
    # A reduction with no value over an empty axis (no identity element): each axis it reduces
    # must have at least one element, checked at each call like an index's minimum size.
    needs_elements: bool = False
    # comparisons with a literal: the comparison true exactly where this one is false, and the
    # interval of the first operand where `a <op> k` holds (what a `where` tells the domain analysis)
    negation: str | None = None
    refine: Callable[[float], Interval] | None = None
    # its names in NumPy, PyTorch, TensorFlow or JAX, for the hint on an unknown function
    known_as: tuple[str, ...] = ()
    # the call with the IR it holds (a `scan`'s step) lowered by the given function
    inner: Callable[[Apply, Callable[[Node], Node]], Apply] | None = None

    def __post_init__(self) -> None:
        if not self.grad_args and not isinstance(self.vjp, NoRule):
            raise ValueError(f"{self.name}: a function with no gradient has no vjp")

    @property
    def tensor_params(self) -> list[Param]:
        return [p for p in self.params if not p.static]

    @property
    def variadic(self) -> bool:
        """Takes a list of operands (`concat([a, b])`), each of which the gradient flows through."""
        return any(p.kind == "tensors" for p in self.params)

    def carried(self, node: Apply) -> Sequence[int]:
        """The operands of `node` the gradient flows through."""
        return range(len(node.args)) if self.variadic and self.grad_args else self.grad_args

    def lanes_of(self, node: Apply) -> str:
        return self.lanes(node) if callable(self.lanes) else self.lanes

    def safe_of(self, node: Apply) -> Mapping[int, float]:
        return self.safe(node) if callable(self.safe) else self.safe

    def signature(self) -> str:
        if self.symbol:
            return self.symbol
        parts = []
        for p in self.params:
            if p.default is REQUIRED:
                parts.append(p.name)
            else:
                d = p.default if p.shown is None else p.shown
                d = "true" if d is True else "false" if d is False else d
                parts.append(f"{p.name}={d}")
        return f"{self.name}({', '.join(parts)})"


# Rules every entry must have or opt out of by name (NoRule); the coverage test reads this.
RULE_KINDS = ("vjp", "value_range", "fold", "lanes", "sharding")
NO_GRADIENT = NoRule("stops the gradient: nothing flows back")

FUNCTIONS: dict[str, Function] = {}


def define(name: str, params: Sequence[Param], group: str, rule: Rule, doc: str, **kw: Any) -> Function:
    if name in FUNCTIONS:
        raise ValueError(f"`{name}` is defined twice")
    if not kw.get("grad_args", (0,)) and "vjp" not in kw:
        kw["vjp"] = NO_GRADIENT
    f = Function(name, tuple(params), group, rule, doc, **kw)
    FUNCTIONS[name] = f
    return f
