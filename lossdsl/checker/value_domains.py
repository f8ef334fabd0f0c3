"""Declared value domains that cannot hold (docs/language.md §2): a domain must fit the dtype
and shape it is declared on, name known dimension symbols, and not be empty; a param's default
must lie in its param's domain. All are E310."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable

from ..checked import Declaration, Leaf
from ..domains import INF, NAMED, Interval, Named
from ..types import BOOL, FLOAT
from .report import Reporter


def check_value_domains(decls: Iterable[Declaration], symbols: set[str], report: Reporter) -> None:
    for decl in decls:
        for leaf in decl.leaves:
            if leaf.domain is None:
                continue
            ok = _fits(leaf, symbols, report)
            if ok and decl.has_default and isinstance(leaf.domain, Interval):
                _default_fits(decl, leaf.domain, report)


def _fits(leaf: Leaf, symbols: set[str], report: Reporter) -> bool:
    domain, t = leaf.domain, leaf.type
    assert domain is not None
    if t.dtype is BOOL:
        report.error(
            f"`{leaf.label}: {t}` is a bool and has no value domain",
            domain.span,
            "E310",
            help="a domain belongs to a float or int value; a bool is already `true` or `false`",
        )
        return False
    if isinstance(domain, Named):
        if domain.name not in NAMED:
            close = difflib.get_close_matches(domain.name, NAMED, n=1)
            report.error(
                f"unknown value domain `{domain.name}`",
                domain.span,
                "E310",
                help=f"did you mean `{close[0]}`?"
                if close
                else "a domain is `simplex`, `onehot` or an interval such as `[0, 1]`, `(0, inf)` or `[0, C)`",
            )
            return False
        if domain.name == "simplex" and t.dtype is not FLOAT:
            report.error(f"`in simplex` needs a float tensor, found `{t}`", domain.span, "E310")
            return False
        if t.rank == 0:
            report.error(
                f"`in {domain.name}` is about the rows of a tensor (its last axis), but `{leaf.label}` is a scalar",
                domain.span,
                "E310",
                help=f"declare it with the axis the rows lie along, e.g. `float[B, C] in {domain.name}`",
            )
            return False
        return True
    return _interval_fits(leaf, domain, symbols, report)


def _interval_fits(leaf: Leaf, domain: Interval, symbols: set[str], report: Reporter) -> bool:
    for end in domain.symbols:
        if end not in symbols:
            report.error(
                f"`{end}` in the domain of `{leaf.label}` is not a dimension of any declaration",
                domain.span,
                "E310",
                help="an interval's ends are numbers, `inf`, or dimension symbols of the file's declarations",
            )
            return False
    if (domain.low == INF or (domain.low_closed and domain.low == -INF)) or (
        domain.high == -INF or (domain.high_closed and domain.high == INF)
    ):
        report.error(
            f"the interval {domain} includes an infinite end",
            domain.span,
            "E310",
            help="an interval is open at an infinite end: `[0, inf)`, `(-inf, 1]`",
        )
        return False
    if leaf.type.dtype is not FLOAT:
        frac = [v for v in (domain.low, domain.high) if isinstance(v, float) and math.isfinite(v) and v != int(v)]
        if frac:
            report.error(
                f"an int value's domain has the non-integer end {frac[0]:g}",
                domain.span,
                "E310",
                help="use integer ends, e.g. `int[B] in [0, C)`",
            )
            return False
    if not domain.symbols:
        lo, hi = float(domain.low), float(domain.high)
        if lo > hi or (lo == hi and not (domain.low_closed and domain.high_closed)):
            report.error(
                f"the interval {domain} holds no value",
                domain.span,
                "E310",
                help="write the smaller end first: `[low, high]`",
            )
            return False
    return True


def _default_fits(decl: Declaration, domain: Interval, report: Reporter) -> None:
    if domain.symbols:
        return  # its size is known only at compile time
    lo, hi = float(domain.low), float(domain.high)
    for v in _flat(decl.default):
        inside = (v >= lo if domain.low_closed else v > lo) and (v <= hi if domain.high_closed else v < hi)
        if not inside:
            report.error(
                f"the default {v!r} of `{decl.name}` lies outside its domain {domain}",
                domain.span,
                "E310",
                help="change the default or widen the domain",
            )
            return


def _flat(v) -> Iterable:
    if isinstance(v, list):
        for x in v:
            yield from _flat(x)
    else:
        yield v
