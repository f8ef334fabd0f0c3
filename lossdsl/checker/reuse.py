"""Checking a file again after an edit, replaying what the last check did for each `let` that
the edit cannot have changed (the language server checks on every keystroke).

A top-level `let` is checked in a state: the names the file defines, the sizes the spec has
fixed so far (`Dims.bound`), the values of the `let`s it reads and the `def`s it calls. The
check is a function of that state and of the statement itself, and its effects are few: the
`let` values it sets (its own and those of later `let`s it reads first), the findings it
reports, the expressions it types (the language server's observer), the sizes it fixes, the
minimum sizes it asks for and the declared tensors it reads first. `LetMemo` records those
effects for each `let` checked at the top, and a later check of the file replays them instead
of checking the `let` again when

- the file defines the same names, in the same order, each declaration with the same type
  written at the same place (a param's default may differ: no expression reads it), as when
  the record was made (the records of the last few ways of declaring the names are kept, so
  that a syntax error typed and mended finds those of before);
- the statement is the same object (the incremental parser keeps a statement whose text and
  line did not change), as is every `let` and `def` it reaches by name, through `def` bodies
  and other `let`s;
- each `let` it reaches has the very value it had then (replayed, so the same object), or had
  none yet, in both checks;
- the sizes fixed so far are the same.

Then a check of the `let` would do exactly what it did, so the result is that of a check of
the whole file: same values, same findings in the same order, same observed types. Any other
change checks the `let` again (and, through the values, whatever reads it). The declared
tensors' nodes (`Arg`) are carried over too, so that replayed values and checked ones share
them, as in one check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from .. import syntax as S
from ..diagnostics import Diagnostic

if TYPE_CHECKING:
    from .declarations import Names
    from .expressions import Expressions

_NONE = object()  # a `let` without a value yet


@dataclass
class _Record:
    """What checking one top-level `let` read and did."""

    stmt: S.Let
    lets_read: dict[str, tuple[S.Let, Any]]  # each `let` reached: its statement, its value then
    defs_read: dict[str, S.Def]
    dims_before: tuple
    value: Any
    lets_set: list[tuple[str, Any]]
    args_read: list[tuple[Any, Any]]  # (key, Arg) of each declared tensor read, first read first
    dims_set: list[tuple[str, Any]]
    findings: list[Diagnostic]
    observed: list[tuple[S.Expr, Any]]
    sizes: list[tuple]  # the arguments of each `need_size`


class LetMemo:
    """What the last check of one file did per top-level `let`, for the next check of it."""

    KEPT = 4  # checks remembered, each with other names: typing makes and mends a syntax error

    def __init__(self) -> None:
        # per way of declaring the names (`_names_key`), the records and Args of the last
        # check that declared them so, latest last
        self.checks: dict[Any, tuple[dict[str, _Record], dict[Any, Any]]] = {}
        self.names_key: Any = None
        self.records: dict[str, _Record] = {}
        self._old: dict[str, _Record] = {}
        self._old_args: dict[Any, Any] = {}
        self._mentions: dict[int, tuple[Any, frozenset[str]]] = {}  # of the last check's statements
        self._mentions_now: dict[int, tuple[Any, frozenset[str]]] = {}
        # what the check being recorded did so far, cut into records (lossdsl/checker/expressions.py)
        self.observed: list[tuple[S.Expr, Any]] = []
        self.findings: list[Diagnostic] = []
        self.args_read: list[Any] = []
        self.sizes: list[tuple] = []

    # ---- one check ------------------------------------------------------------------------

    def begin(self, names: Names, quick: bool) -> None:
        """A check starts, its names declared: the last check's records apply if it declared
        the same names the same way."""
        self.names_key = _names_key(names, quick)
        self._old, self._old_args = self.checks.pop(self.names_key, ({}, {}))
        self.records = {}
        self.observed, self.findings, self.args_read, self.sizes = [], [], [], []

    def end(self, ex: Expressions) -> None:
        self.checks[self.names_key] = (self.records, dict(ex.args))
        while len(self.checks) > self.KEPT:
            del self.checks[next(iter(self.checks))]
        self._mentions, self._mentions_now = self._mentions_now, {}
        self._old, self._old_args = {}, {}
        self.observed, self.findings, self.args_read, self.sizes = [], [], [], []

    def forget(self) -> None:
        """After a check that failed other than by reporting: nothing is replayed next time."""
        self.__init__()  # type: ignore[misc]

    def arg(self, key: Any) -> Any:
        """The last check's node for a declared tensor, to share it with replayed values."""
        return self._old_args.get(key)

    # ---- one `let` ------------------------------------------------------------------------

    def replay(self, name: str, ex: Expressions) -> bool:
        """Do what the last check did for `let name`, if a check now would do the same."""
        rec = self._old.get(name)
        names = ex.names
        if rec is None or names.lets.get(name) is not rec.stmt:
            return False
        if tuple(ex.rules.dims.bound.items()) != rec.dims_before:
            return False
        for n, (stmt, value) in rec.lets_read.items():
            if names.lets.get(n) is not stmt or ex.let_values.get(n, _NONE) is not value:
                return False
        if any(names.defs.get(n) is not d for n, d in rec.defs_read.items()):
            return False
        for k, v in rec.lets_set:
            ex.let_values.setdefault(k, v)
        for key, node in rec.args_read:
            ex.args.setdefault(key, node)
        for sym, bound in rec.dims_set:
            ex.rules.dims.bound.setdefault(sym, bound)
        for d in rec.findings:
            ex.report.diags.add(d)
        if ex.observe is not None:
            for e, v in rec.observed:
                ex.observe(e, v)
        for args in rec.sizes:
            ex.rules.need_size(*args)
        self.records[name] = rec
        return True

    def record(self, name: str, ex: Expressions, check: Callable[[], Any]) -> Any:
        """Check `let name` with `check`, recording what it read and did."""
        stmt = ex.names.lets[name]
        lets_read, defs_read = self._reached(stmt, ex.names)
        before = {n: (s, ex.let_values.get(n, _NONE)) for n, s in lets_read.items()}
        bound = ex.rules.dims.bound
        dims_before = tuple(bound.items())
        marks = (len(ex.let_values), len(self.observed), len(self.findings), len(self.args_read), len(self.sizes))
        value = check()
        n_lets, n_observed, n_findings, n_args, n_sizes = marks
        first: dict[Any, Any] = {}
        for key in self.args_read[n_args:]:
            first.setdefault(key, ex.args[key])
        self.records[name] = _Record(
            stmt,
            before,
            defs_read,
            dims_before,
            value,
            _last(ex.let_values, len(ex.let_values) - n_lets),
            list(first.items()),
            _last(bound, len(bound) - len(dims_before)),
            self.findings[n_findings:],
            self.observed[n_observed:],
            self.sizes[n_sizes:],
        )
        return value

    def _reached(self, stmt: S.Let, names: Names) -> tuple[dict[str, S.Let], dict[str, S.Def]]:
        """Every `let` and `def` the statement names, and those they name, and so on."""
        lets: dict[str, S.Let] = {}
        defs: dict[str, S.Def] = {}
        todo = list(self._names_in(stmt, (stmt.value,)))
        while todo:
            n = todo.pop()
            if n in names.lets and n not in lets:
                s = names.lets[n]
                lets[n] = s
                todo += self._names_in(s, (s.value,))
            if n in names.defs and n not in defs:
                d = names.defs[n]
                defs[n] = d
                todo += self._names_in(d, (d.body,) + tuple(e for _, e in d.defaults))
        return lets, defs

    def _names_in(self, owner: Any, exprs: tuple[S.Expr, ...]) -> frozenset[str]:
        """The names and called functions in `exprs`, kept per statement while it lives."""
        hit = self._mentions_now.get(id(owner)) or self._mentions.get(id(owner))
        if hit is not None and hit[0] is owner:
            self._mentions_now[id(owner)] = hit
            return hit[1]
        found: set[str] = set()
        for e in exprs:
            for node in S.walk(e):
                if isinstance(node, S.Name):
                    found.add(node.id)
                elif isinstance(node, S.Call):
                    found.add(node.func)
        names = frozenset(found)
        self._mentions_now[id(owner)] = (owner, names)
        return names


def _last(d: dict, n: int) -> list[tuple[Any, Any]]:
    """The last `n` items added to `d`, in the order they were added."""
    return list(islice(reversed(d.items()), n))[::-1]


def _names_key(names: Names, quick: bool) -> Any:
    """What of the declared names a `let`'s check may read: every name by kind and in order,
    and each declaration's kind, type and where its type is written (its nodes' spans)."""
    decls = tuple(
        (
            n,
            d.kind,
            d.type,
            d.type_span,
            d.name_span,
            tuple(sorted(d.leaf_spans.items())),
            tuple(leaf.domain for leaf in d.leaves),
        )
        for n, d in names.decls.items()
    )
    return (
        quick,
        decls,
        tuple(names.lets),
        tuple(names.defs),
        frozenset(names.broken),
        frozenset(names.known_symbols),
        frozenset(names.recursive_defs),
    )
