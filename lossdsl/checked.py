"""A checked module: the interface between the front end and everything after it.

`lossdsl.check(spec)` returns a `CheckedModule`: its declarations (names, kinds,
types, defaults), the typed IR of `loss` and of every `let`, the dimension sizes
known before any call, and the size constraints a call must meet. Backends and
the Python API read only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Diagnostic
from .domains import Domain
from .ir import Arg, Node
from .source import Source, Span
from .types import Dim, RecordType, TensorType, ValueType, leaves

# Kinds passed at each call, in declaration order (docs/language.md §6); context is
# bound at compile time and params by keyword.
CALL_KINDS = ("pred", "target", "input")


@dataclass(frozen=True)
class Leaf:
    """One tensor the caller passes: a declared tensor, or one field of a declared record."""

    decl: Declaration
    path: tuple[str, ...]
    type: TensorType
    span: Span  # of the type that declared it
    dim_spans: tuple[Span, ...] = ()  # of each dimension in that type
    domain: Domain | None = None  # its declared value domain (`in [0, 1]`), lossdsl/domains.py

    @property
    def label(self) -> str:
        return ".".join((self.decl.name,) + self.path)

    @property
    def kind(self) -> str:
        return self.decl.kind


@dataclass
class Declaration:
    kind: str  # pred | target | input | context | param
    name: str
    type: ValueType
    span: Span
    type_span: Span
    name_span: Span
    default: Any = None  # a param's default: a number, bool, or nested list
    has_default: bool = False
    leaves: list[Leaf] = field(default_factory=list)
    leaf_spans: dict[tuple[str, ...], Span] = field(default_factory=dict)

    @property
    def is_record(self) -> bool:
        return isinstance(self.type, RecordType)

    def describe(self) -> str:
        return f"{self.kind} {self.name}: {self.type}"


@dataclass(frozen=True)
class SizeConstraint:
    """`dim` must be at least `minimum` (for `what` at `span`: an index, a slice, a reduction
    that has no value over an empty axis)."""

    dim: Dim
    minimum: int
    span: Span
    what: str = "this index"


@dataclass
class CheckedModule:
    source: Source
    declarations: list[Declaration]
    loss: Node
    lets: dict[str, Node]
    args: dict[tuple[str, tuple[str, ...]], Arg]  # the IR leaf of each (name, path) used
    bindings: dict[str, tuple[int, str]]  # dimension sizes fixed by the spec itself, with where
    constraints: list[SizeConstraint]
    warnings: list[Diagnostic]
    quick: bool = False

    # ---- what a caller may ask of a spec ----
    def declaration(self, name: str) -> Declaration | None:
        for d in self.declarations:
            if d.name == name:
                return d
        return None

    def of_kind(self, *kinds: str) -> list[Declaration]:
        return [d for d in self.declarations if d.kind in kinds]

    @property
    def preds(self) -> list[Declaration]:
        return self.of_kind("pred")

    @property
    def call_args(self) -> list[Declaration]:
        """What a call passes positionally, in declaration order."""
        return self.of_kind(*CALL_KINDS)

    @property
    def per_sample(self) -> bool:
        return self.loss.type.rank == 1

    @property
    def symbols(self) -> list[str]:
        """Every dimension symbol of the declarations, in order of first appearance."""
        seen: list[str] = []
        for d in self.declarations:
            for _, t in leaves(d.type):
                for dim in t.shape:
                    if dim.is_symbol and dim.sym not in seen:
                        seen.append(dim.sym)
        return seen

    def signature(self) -> str:
        """A readable summary: `(yhat: float[B, C], y: int[B], *, alpha: float = 0.5) -> float[B]`."""
        pos = [f"{d.name}: {d.type}" for d in self.call_args]
        kw = []
        for d in self.of_kind("param"):
            kw.append(f"{d.name}: {d.type}" + (f" = {_lit(d.default)}" if d.has_default else ""))
        ctx = [f"{d.name}: {d.type}" for d in self.of_kind("context")]
        s = "(" + ", ".join(pos + (["*"] + kw if kw else [])) + f") -> {self.loss.type}"
        if ctx:
            s += "   [context: " + ", ".join(ctx) + "]"
        return s


def _lit(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_lit(x) for x in v) + "]"
    return repr(v)
