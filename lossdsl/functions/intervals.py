"""Interval arithmetic for the value-range rules (`Function.value_range`), read by the domain
analysis: a rule gets an interval per operand and returns one for the value."""

from __future__ import annotations

import math
from typing import Any

Interval = tuple[float, float]
INF = math.inf
FULL: Interval = (-INF, INF)


def unbounded(args: list[Interval], node: Any) -> Interval:
    """The rule of a function whose value can be anything as far as the analysis can tell."""
    return FULL


def constant(lo: float, hi: float):
    def rule(args: list[Interval], node: Any) -> Interval:
        return (lo, hi)

    return rule


def same_as_operand(args: list[Interval], node: Any) -> Interval:
    return args[0]


def add(a: Interval, b: Interval) -> Interval:
    return (a[0] + b[0], a[1] + b[1])


def neg(a: Interval) -> Interval:
    return (-a[1], -a[0])


def mul(a: Interval, b: Interval) -> Interval:
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


def div(a: Interval, b: Interval) -> Interval:
    lo, hi = b
    if lo > 0 or hi < 0:
        inv = sorted([1 / lo if lo else INF, 1 / hi if hi else INF])
        return mul(a, (inv[0], inv[1]))
    return FULL


def hull(a: Interval, b: Interval) -> Interval:
    return (min(a[0], b[0]), max(a[1], b[1]))


def sum_of(a: Interval) -> Interval:
    """A sum of any number of values in `a`."""
    return (0.0 if a[0] >= 0 else -INF, INF if a[1] > 0 else 0.0)
