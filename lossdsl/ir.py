"""The typed IR: what the checker produces and every later stage consumes.

A loss is a DAG of immutable nodes. Every node knows its type (dtype and
symbolic shape) and the span of source it came from. Names are gone: `let`s are
shared nodes, `def`s are inlined, record fields are leaves of their own. Nodes
compare by identity, so a node used twice is one node (and is computed once).

    Arg      a declared value (or one field of a record): pred, target, input, context, param
    Const    a scalar literal
    DimSize  the size of a dimension, as an int scalar (`sum(x) / N`)
    Apply    a function of the table in lossdsl/functions/, operators included
    Index    basic indexing: integers, slices, None (ellipsis already expanded)
    Gather   indexing by int tensors, which broadcast together
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field
from typing import Any, Union

from .source import Span
from .types import Dim, TensorType


@dataclass(frozen=True, eq=False)
class Node:
    type: TensorType
    span: Span = field(repr=False)

    @property
    def inputs(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, eq=False)
class Arg(Node):
    kind: str = "input"  # pred | target | input | context | param
    name: str = ""
    path: tuple[str, ...] = ()  # record fields below `name`

    @property
    def label(self) -> str:
        """How the user writes it: `x.feature`."""
        return ".".join((self.name,) + self.path)


@dataclass(frozen=True, eq=False)
class Const(Node):
    value: bool | int | float = 0


@dataclass(frozen=True, eq=False)
class DimSize(Node):
    dim: Dim = field(default_factory=lambda: Dim(None, 0))


@dataclass(frozen=True, eq=False)
class Apply(Node):
    fn: str = ""
    args: tuple[Node, ...] = ()
    attrs: tuple[tuple[str, Any], ...] = ()  # static arguments, normalised (axes as ints)

    @property
    def inputs(self) -> tuple[Node, ...]:
        return self.args

    def attr(self, name: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == name:
                return v
        return default


@dataclass(frozen=True)
class SliceItem:
    start: int | None
    stop: int | None
    step: int | None

    def __str__(self) -> str:
        s = f"{'' if self.start is None else self.start}:{'' if self.stop is None else self.stop}"
        if self.step is not None:
            s += f":{self.step}"
        return s


IndexItem = Union[int, SliceItem, None]  # None inserts an axis


@dataclass(frozen=True, eq=False)
class Index(Node):
    x: Node = None  # type: ignore[assignment]
    items: tuple[IndexItem, ...] = ()

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.x,)


@dataclass(frozen=True, eq=False)
class Gather(Node):
    x: Node = None  # type: ignore[assignment]
    indices: tuple[Node, ...] = ()

    @property
    def inputs(self) -> tuple[Node, ...]:
        return (self.x,) + self.indices


def topological(root: Node, *, stop: Set[int] = frozenset(), seen: set[int] | None = None) -> list[Node]:
    """Every node reachable from root, each once, operands before their users. Nodes in `stop`
    are listed but not entered; `seen` carries visited nodes across calls (to walk several roots)."""
    order: list[Node] = []
    seen = set() if seen is None else seen
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if id(node) in stop:
            continue
        for child in reversed(node.inputs):
            if id(child) not in seen:
                stack.append((child, False))
    return order


def use_counts(root: Node) -> dict[int, int]:
    counts: dict[int, int] = {}
    for node in topological(root):
        for child in node.inputs:
            counts[id(child)] = counts.get(id(child), 0) + 1
    return counts


def describe(node: Node) -> str:
    """A short text for a node, for `lossdsl ir` and messages."""
    if isinstance(node, Arg):
        return f"{node.kind} {node.label}"
    if isinstance(node, Const):
        return repr(node.value).lower() if isinstance(node.value, bool) else repr(node.value)
    if isinstance(node, DimSize):
        return f"size {node.dim}"
    if isinstance(node, Apply):
        extra = ", ".join(
            f"{k}={v}" for k, v in node.attrs if not isinstance(v, Node)
        )  # (a fused call's decomposed IR: its own lines)
        return f"{node.fn}({extra})" if extra else node.fn
    if isinstance(node, Index):
        return "index[" + ", ".join("None" if i is None else str(i) for i in node.items) + "]"
    if isinstance(node, Gather):
        return "gather"
    return type(node).__name__


def walk(root: Node) -> Iterator[Node]:
    yield from topological(root)


def rebuild(node: Node, args: tuple[Node, ...]) -> Node:
    """The same node over new operands (the node itself if nothing changed)."""
    if all(a is b for a, b in zip(args, node.inputs)):
        return node
    if isinstance(node, Apply):
        return Apply(node.type, node.span, node.fn, args, node.attrs)
    if isinstance(node, Index):
        return Index(node.type, node.span, args[0], node.items)
    if isinstance(node, Gather):
        return Gather(node.type, node.span, args[0], args[1:])
    raise AssertionError(type(node))


def rewrite_bottom_up(root: Node, fn: Callable[[Node], Node]) -> Node:
    """Rebuild the DAG bottom-up, applying `fn` to each rebuilt node; sharing is kept."""
    done: dict[int, Node] = {}
    for node in topological(root):
        new = rebuild(node, tuple(done[id(a)] for a in node.inputs)) if node.inputs else node
        done[id(node)] = fn(new)
    return done[id(root)]


def depends_on_preds(root: Node) -> set[int]:
    """The ids of the nodes below `root` whose value depends on a pred (the ones a gradient
    flows through)."""
    out: set[int] = set()
    for n in topological(root):
        if (isinstance(n, Arg) and n.kind == "pred") or any(id(a) in out for a in n.inputs):
            out.add(id(n))
    return out


def apply(fn: str, args, type_: TensorType, span: Span, attrs=()) -> Apply:
    """A new `Apply` node: how the passes and the table's rules build IR."""
    return Apply(type_, span, fn, tuple(args), tuple(attrs))


def is_literal(node: Node, value) -> bool:
    """`node` is the number literal `value` (a bool literal never is)."""
    return isinstance(node, Const) and not isinstance(node.value, bool) and node.value == value
