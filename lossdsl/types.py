"""Types of values: a dtype and a shape of symbolic dimensions.

A `Dim` is an integer literal (`5`), a symbol (`B`), or a symbol with an offset
(`H - 1`, what `x[1:]` leaves of an axis `H`). Symbols are nominal: `B` and `C`
never unify or broadcast against each other, whatever their sizes at run time.
Types print the way they are written: `float[B, C]`, `int`, `{w: float[B]}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Union


class DType(Enum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"

    def __str__(self) -> str:
        return self.value


FLOAT, INT, BOOL = DType.FLOAT, DType.INT, DType.BOOL


def promote(a: DType, b: DType) -> DType:
    """The dtype of arithmetic on a and b: float wins over int (docs/language.md §2)."""
    if DType.FLOAT in (a, b):
        return DType.FLOAT
    return DType.INT


_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_DIVIDED = re.compile(r"(?P<open>[⌈⌊])\((?P<inner>.*)\)/(?P<k>\d+)[⌉⌋]")
_SLICED = re.compile(r"len\((?P<inner>.*)\[(?P<start>-?\d+):(?P<stop>-?\d+)\]\)")
_OFFSET = re.compile(r"(?P<sym>.*?)(?: (?P<sign>[+-]) (?P<n>\d+))?")


@dataclass(frozen=True)
class Dim:
    """`sym + offset` when `sym` is set, else the literal `offset`.

    `sym` may also be a derived size (`⌈(H - 1)/2⌉` from a stepped slice): any string
    that is not an identifier, equal only to itself."""

    sym: str | None
    offset: int = 0
    # A size-1 axis inserted by an explicit `None` index: the user's own statement of how
    # axes line up, so it may make an outer product of a dimension with itself (docs/language.md
    # §2). Not part of the dim's identity: `x[:, None]` and a declared `[B, 1]` have equal types.
    inserted: bool = field(default=False, compare=False)

    @staticmethod
    def lit(n: int) -> Dim:
        return Dim(None, n)

    @property
    def is_literal(self) -> bool:
        return self.sym is None

    @property
    def is_symbol(self) -> bool:
        """A plain symbol, `B` (not `B - 1`, not derived)."""
        return self.sym is not None and self.offset == 0 and self.sym.isidentifier()

    @property
    def value(self) -> int:
        assert self.sym is None
        return self.offset

    def plus(self, k: int) -> Dim:
        return Dim(self.sym, self.offset + k)

    @staticmethod
    def divided(inner: Dim, k: int, *, ceil: bool) -> Dim:
        """`⌈inner/k⌉` (a stepped slice, a strided `same` window) or `⌊inner/k⌋` (a strided
        `valid` window, before its `+ 1`): a derived size."""
        return Dim(f"⌈({inner})/{k}⌉" if ceil else f"⌊({inner})/{k}⌋")

    def division(self) -> tuple[Dim, int, bool] | None:
        """(inner, k, ceil) of a size `divided` made, else None."""
        m = _DIVIDED.fullmatch(self.sym or "")
        if m is None:
            return None
        inner = _OFFSET.fullmatch(m["inner"])
        assert inner is not None
        n = int(inner["n"] or 0)
        sym = inner["sym"]
        base = Dim.lit(int(sym)) if sym.isdigit() else Dim(sym)
        return base.plus(-n if inner["sign"] == "-" else n), int(m["k"]), m["open"] == "⌈"

    @staticmethod
    def sliced(inner: Dim, start: int, stop: int) -> Dim:
        """`len(inner[start:stop])` with `start < 0 <= stop`: a slice from the end to a fixed
        index, whose length depends on the axis length (a derived size)."""
        return Dim(f"len({inner}[{start}:{stop}])")

    def slicing(self) -> tuple[Dim, int, int] | None:
        """(inner, start, stop) of a size `sliced` made, else None."""
        m = _SLICED.fullmatch(self.sym or "")
        if m is None:
            return None
        inner = m["inner"]
        return (Dim.lit(int(inner)) if inner.isdigit() else Dim(inner)), int(m["start"]), int(m["stop"])

    def terms(self) -> list[str]:
        """The symbols this size adds up: `[B]` for `B - 1`, `[A, C]` for the `A + C` of a
        concatenation, none for a literal."""
        return [] if self.sym is None else self.sym.split(" + ")

    @staticmethod
    def total(dims: list[Dim]) -> Dim:
        """The size of axes laid end to end (`concat`): a literal, an affine `A + 2`, or a sum of
        symbols `A + C` (its terms sorted, so that the sum of the same sizes is the same size)."""
        terms = sorted(t for d in dims for t in d.terms())
        offset = sum(d.offset for d in dims)
        return Dim(" + ".join(terms), offset) if terms else Dim.lit(offset)

    @staticmethod
    def product(dims: list[Dim]) -> Dim | None:
        """The size of axes flattened into one: a literal, a symbol times a literal or a product of
        symbols `H*W` (factors sorted); None where a factor is a sum or has an offset (`H - 1`)."""
        k, factors = 1, []
        for d in dims:
            if d.sym is None:
                k *= d.offset
            elif d.offset or " + " in d.sym:
                return None
            else:
                for f in d.sym.split("*"):
                    if f.isdigit():
                        k *= int(f)
                    else:
                        factors.append(f)
        if not factors:
            return Dim.lit(k)
        return Dim("*".join(([str(k)] if k != 1 else []) + sorted(factors)))

    def symbols(self) -> list[str]:
        """The dimension symbols this size is made of (`H` and `W` of `H*W + C`, `H` of the
        derived `⌈(H - 1)/2⌉` and `len(H[-3:5])`)."""
        derived = self.division() or self.slicing()
        if derived is not None:
            return derived[0].symbols()
        out: list[str] = []
        for t in self.terms():
            for f in t.split("*"):
                factor = Dim(f)
                inner = factor.division() or factor.slicing()
                out.extend([f] if f.isidentifier() else inner[0].symbols() if inner else _SYMBOL.findall(f))
        return out

    def __str__(self) -> str:
        if self.sym is None:
            return str(self.offset)
        if self.offset == 0:
            return self.sym
        return f"{self.sym} {'+' if self.offset > 0 else '-'} {abs(self.offset)}"


ONE = Dim.lit(1)
NEW_AXIS = Dim(None, 1, inserted=True)
Shape = tuple[Dim, ...]


def shape_str(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@dataclass(frozen=True)
class TensorType:
    dtype: DType
    shape: Shape = ()

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        if not self.shape:
            return str(self.dtype)
        return f"{self.dtype}{shape_str(self.shape)}"


@dataclass(frozen=True)
class RecordType:
    fields: tuple[tuple[str, ValueType], ...]

    def field(self, name: str) -> ValueType | None:
        for n, t in self.fields:
            if n == name:
                return t
        return None

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.fields]

    def __str__(self) -> str:
        return "{" + ", ".join(f"{n}: {t}" for n, t in self.fields) + "}"


ValueType = Union[TensorType, RecordType]


def leaves(t: ValueType, path: tuple[str, ...] = ()):
    """(path, TensorType) for every tensor inside a (possibly nested) record type."""
    if isinstance(t, TensorType):
        yield path, t
    else:
        for name, sub in t.fields:
            yield from leaves(sub, path + (name,))


# ---- broadcasting --------------------------------------------------------------------


def broadcast_suggestion(small: Shape, big: Shape, expr_text: str) -> str | None:
    """`x[:, None]` when the lower-rank shape lines up with the leading axes of the other.

    Matches the dims of `small` in order against `big` and inserts `None` for the axes of
    `big` it lacks; returns None when no such alignment exists."""
    if len(small) >= len(big) or not small:
        return None
    items: list[str] = []
    j = 0
    for d in big:
        if j < len(small) and (small[j] == d or small[j] == ONE):
            items.append(":")
            j += 1
        else:
            items.append("None")
    if j != len(small):
        return None
    # Trailing `:` are implied; keep the index as short as NumPy allows.
    while items and items[-1] == ":":
        items.pop()
    if not items or "None" not in items:
        return None
    return f"{expr_text}[{', '.join(items)}]"
