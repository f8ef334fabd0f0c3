"""Declared value domains (docs/language.md §2): `float[B] in (0, 1]`, `int[B] in [0, C)`,
`float[B, C] in simplex`, `float[B, C] in onehot`.

A domain is a promise about the values a caller passes. Three places read it:
- the domain analysis (lossdsl/analysis.py) takes a declared interval as the range of the
  value, so `log(p)` with `p in (0, 1]` is not warned about;
- random inputs (lossdsl/sampling.py) are drawn from it;
- `lossdsl.compile(..., check_domains=True)` checks it at each eager call (`violation`).

NumPy is imported only where values are drawn or checked, so `lossdsl check` stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union

from . import syntax as S
from .source import Span

INF = math.inf


@dataclass(frozen=True)
class Interval:
    """An interval whose ends are numbers (±inf allowed) or dimension symbols."""

    low: float | int | str
    high: float | int | str
    low_closed: bool
    high_closed: bool
    span: Span

    def __str__(self) -> str:
        def end(v) -> str:
            return "inf" if v == INF else "-inf" if v == -INF else str(v)

        return f"{'[' if self.low_closed else '('}{end(self.low)}, {end(self.high)}{']' if self.high_closed else ')'}"

    def ends(self, sizes: dict[str, int]) -> tuple[float, float]:
        """The ends as numbers, dimension symbols read from `sizes`."""
        lo = sizes[self.low] if isinstance(self.low, str) else self.low
        hi = sizes[self.high] if isinstance(self.high, str) else self.high
        return float(lo), float(hi)

    @property
    def symbols(self) -> list[str]:
        return [v for v in (self.low, self.high) if isinstance(v, str)]


@dataclass(frozen=True)
class Named:
    """`simplex`: every entry > 0 and each row (the last axis) sums to 1, as a softmax gives.
    `onehot`: every row is 0 but for a single 1 (the simplex's corners)."""

    name: str
    span: Span

    def __str__(self) -> str:
        return self.name


Domain = Union[Interval, Named]
NAMED = ("simplex", "onehot")
# How far a row of a simplex may sum from 1 at the call-time check: float32 softmax rows of
# 32k classes are off by a few 1e-6.
SIMPLEX_TOLERANCE = 1e-4


def from_syntax(expr: S.DomainExpr) -> Domain:
    if isinstance(expr, S.NamedDomain):
        return Named(expr.name, expr.span)
    return Interval(expr.low.value, expr.high.value, expr.low_closed, expr.high_closed, expr.span)


def value_range(domain: Domain) -> tuple[float, float]:
    """The range the domain analysis takes for a value declared in `domain`. An open end is
    moved inward by the smallest step, so `(0, 1]` is positive; a dimension symbol is at least 1
    below and unknown above."""
    if isinstance(domain, Named):
        return (math.nextafter(0.0, 1.0), 1.0) if domain.name == "simplex" else (0.0, 1.0)
    lo = 1.0 if isinstance(domain.low, str) else float(domain.low)
    hi = INF if isinstance(domain.high, str) else float(domain.high)
    if not domain.low_closed and not isinstance(domain.low, str):
        lo = math.nextafter(lo, INF)
    if not domain.high_closed and not isinstance(domain.high, str):
        hi = math.nextafter(hi, -INF)
    return lo, hi


# ---- the call-time check -----------------------------------------------------------------------


def violation(domain: Domain, values: Any, sizes: dict[str, int]) -> str | None:
    """Where a NumPy array leaves `domain`, in words (`3.5 at (1,)`), or None when it fits.
    NaN lies in no domain."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None
    if isinstance(domain, Named):
        if domain.name == "simplex":
            bad = ~(x > 0)
            if bad.any():
                return _first(x, bad) + " (every entry of a simplex is above 0)"
            sums = x.sum(axis=-1)
            off = ~(np.abs(sums - 1) <= SIMPLEX_TOLERANCE)
            if off.any():
                at = tuple(int(i) for i in np.argwhere(off)[0])
                return f"a row summing to {sums[at]:.6g} at {at}"
            return None
        bad = ~((x == 0) | (x == 1))
        if bad.any():
            return _first(x, bad) + " (a one-hot entry is 0 or 1)"
        ones = (x == 1).sum(axis=-1)
        off = ones != 1
        if off.any():
            at = tuple(int(i) for i in np.argwhere(off)[0])
            return f"a row with {int(ones[at])} ones at {at}"
        return None
    lo, hi = domain.ends(sizes)
    above = x >= lo if domain.low_closed else x > lo
    below = x <= hi if domain.high_closed else x < hi
    bad = ~(above & below)
    if bad.any():
        return _first(x, bad)
    return None


def _first(x, bad) -> str:
    """The first value where `bad` holds, and where: `0 at (1, 2)`."""
    import numpy as np

    at = tuple(int(i) for i in np.argwhere(bad)[0])
    shown = f"{float(x[at] if at else x):.6g}"
    return f"{shown} at {at}" if at else shown


# ---- drawing values --------------------------------------------------------------------------


def draw(domain: Domain, shape: tuple[int, ...], sizes: dict[str, int], rng, *, integer: bool) -> Any:
    """Random values of `shape` inside `domain` (NumPy, float64 or int64), away from open ends."""
    import numpy as np

    if isinstance(domain, Named):
        if not shape:
            return np.asarray(1.0)
        if domain.name == "simplex":
            z = rng.standard_normal(shape)
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        return np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
    lo, hi = domain.ends(sizes)
    if integer:
        first = (math.ceil(lo) if domain.low_closed else math.floor(lo) + 1) if math.isfinite(lo) else None
        last = (math.floor(hi) if domain.high_closed else math.ceil(hi) - 1) if math.isfinite(hi) else None
        if first is None:
            first = 0 if last is None else last - 2
        if last is None:
            last = first + 2
        return rng.integers(first, max(last, first) + 1, size=shape).astype(np.int64)
    if math.isfinite(lo) and math.isfinite(hi):
        values = lo + (hi - lo) * rng.uniform(0.01, 0.99, shape)
    elif math.isfinite(lo):
        values = lo + 0.01 + rng.exponential(1.0, shape)
    elif math.isfinite(hi):
        values = hi - 0.01 - rng.exponential(1.0, shape)
    else:
        return rng.standard_normal(shape)
    # Rounding may land on an end of a very narrow interval: keep open ends out.
    inner_lo = lo if domain.low_closed else math.nextafter(lo, INF)
    inner_hi = hi if domain.high_closed else math.nextafter(hi, -INF)
    return np.clip(values, inner_lo, inner_hi)
