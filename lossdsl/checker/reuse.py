"""Checking a file again after an edit, replaying what the last check did for each `let` that
the edit cannot have changed (the language server checks on every keystroke).

A top-level `let` is checked in a state: what each name it reaches means (a declaration and its
type, a `let`, a `def`, a name that failed to parse, a dimension, nothing), the values of the
`let`s it reads, the `def`s it calls, and the sizes the spec has fixed so far (`Dims.bound`).
The check is a function of that state and of the statement itself (an error's message also
lists the names of the file), and its effects are few: the `let` values it sets (its own and
those of later `let`s it reads first), the findings it reports, the expressions it types (the
language server's observer), the sizes it fixes, the minimum sizes it asks for and the
declared tensors it reads first. `LetMemo` records those effects for each `let` checked at the
top, and the next check of the file replays them instead of checking the `let` again when

- the statement is the same object (the incremental parser keeps a statement whose text and
  line did not change), as is every `let` and `def` it reaches by name, through `def` bodies
  and the `let`s that had no value yet (a `let` with a value is read as that value);
- every name in it and in what it reaches means the same, a declaration with the same type
  written at the same place (a param's default may differ: no expression reads it); and when
  it reported a finding, the file defines the same names in the same order;
- each `let` it reaches has the very value it had then (replayed, so the same object), or had
  none yet, in both checks;
- the sizes fixed so far are the same.

Then a check of the `let` would do exactly what it did, so the result is that of a check of
the whole file: same values, same findings in the same order, same observed types. Any other
change checks the `let` again (and, through the values, whatever reads it). The declared
tensors' nodes (`Arg`) are carried over while their declarations stay alike, so that replayed
values and checked ones share them, as in one check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from .. import syntax as S
from ..diagnostics import Diagnostic

if TYPE_CHECKING:
    from ..checked import Declaration
    from .declarations import Names

# The expression checker (lossdsl/checker/expressions.py), which calls this module: typed
# loosely, so that neither module imports the other.
Expressions = Any

_NONE = object()  # a `let` without a value yet


@dataclass
class _Record:
    """What checking one top-level `let` read and did."""

    stmt: S.Let
    meanings: dict[str, Any]  # what each name it reaches meant
    names_key: Any  # the file's names, for a record with findings (their messages list them)
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

    def __init__(self) -> None:
        self.records: dict[str, _Record] = {}
        self.args: dict[Any, tuple[Any, Any]] = {}  # per declared tensor: (its declaration's key, Arg)
        self._old: dict[str, _Record] = {}
        self._old_args: dict[Any, tuple[Any, Any]] = {}
        self._names: Names | None = None
        self._quick = False
        self._names_key: Any = None
        self._meanings: dict[str, Any] = {}
        self._mentions: dict[int, tuple[Any, frozenset[str]]] = {}  # of the last check's statements
        self._mentions_now: dict[int, tuple[Any, frozenset[str]]] = {}
        # what the check being recorded did so far, cut into records (lossdsl/checker/expressions.py)
        self.observed: list[tuple[S.Expr, Any]] = []
        self.findings: list[Diagnostic] = []
        self.args_read: list[Any] = []
        self.sizes: list[tuple] = []

    # ---- one check ------------------------------------------------------------------------

    def begin(self, names: Names, quick: bool) -> None:
        """A check starts, its names declared."""
        self._names, self._quick, self._names_key, self._meanings = names, quick, None, {}
        self._old, self._old_args = self.records, self.args
        self.records = {}
        self.observed, self.findings, self.args_read, self.sizes = [], [], [], []

    def end(self, ex: Expressions) -> None:
        decls = ex.names.decls
        self.args = {key: (_decl_key(decls[key[0]]), node) for key, node in ex.args.items()}
        self._mentions, self._mentions_now = self._mentions_now, {}
        self._old, self._old_args, self._names, self._meanings = {}, {}, None, {}
        self.observed, self.findings, self.args_read, self.sizes = [], [], [], []

    def forget(self) -> None:
        """After a check that failed other than by reporting: nothing is replayed next time."""
        self.__init__()  # type: ignore[misc]

    def arg(self, key: Any, decl: Declaration) -> Any:
        """The last check's node for a declared tensor declared alike, to share it with
        replayed values; None if there is none."""
        old = self._old_args.get(key)
        return old[1] if old is not None and old[0] == _decl_key(decl) else None

    def _meaning(self, name: str) -> Any:
        m = self._meanings.get(name)
        if m is None:
            names = self._names
            assert names is not None
            decl = names.decls.get(name)
            m = self._meanings[name] = (
                _decl_key(decl) if decl is not None else None,
                name in names.lets,
                name in names.defs,
                name in names.broken,
                name in names.known_symbols,
                name in names.recursive_defs,
                self._quick,
            )
        return m

    def _names_key_now(self) -> Any:
        if self._names_key is None:
            assert self._names is not None
            self._names_key = _names_key(self._names)
        return self._names_key

    # ---- one `let` ------------------------------------------------------------------------

    def replay(self, name: str, ex: Expressions) -> bool:
        """Do what the last check did for `let name`, if a check now would do the same."""
        rec = self._old.get(name)
        names = ex.names
        if rec is None or names.lets.get(name) is not rec.stmt:
            return False
        if tuple(ex.rules.dims.bound.items()) != rec.dims_before:
            return False
        if any(self._meaning(n) != m for n, m in rec.meanings.items()):
            return False
        if rec.names_key is not None and rec.names_key != self._names_key_now():
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
        observe = ex.observe
        if observe is not None:
            for e, v in rec.observed:
                observe(e, v)
        for args in rec.sizes:
            ex.rules.need_size(*args)
        self.records[name] = rec
        return True

    def record(self, name: str, ex: Expressions, check: Callable[[], Any]) -> Any:
        """Check `let name` with `check`, recording what it read and did."""
        stmt = ex.names.lets[name]
        lets_read, defs_read, mentioned = self._reached(stmt, ex.names, ex.let_values)
        meanings = {n: self._meaning(n) for n in mentioned}
        before = {n: (s, ex.let_values.get(n, _NONE)) for n, s in lets_read.items()}
        bound = ex.rules.dims.bound
        dims_before = tuple(bound.items())
        marks = (len(ex.let_values), len(self.observed), len(self.findings), len(self.args_read), len(self.sizes))
        value = check()
        n_lets, n_observed, n_findings, n_args, n_sizes = marks
        first: dict[Any, Any] = {}
        for key in self.args_read[n_args:]:
            first.setdefault(key, ex.args[key])
        findings = self.findings[n_findings:]
        self.records[name] = _Record(
            stmt,
            meanings,
            self._names_key_now() if findings else None,
            before,
            defs_read,
            dims_before,
            value,
            _last(ex.let_values, len(ex.let_values) - n_lets),
            list(first.items()),
            _last(bound, len(bound) - len(dims_before)),
            findings,
            self.observed[n_observed:],
            self.sizes[n_sizes:],
        )
        return value

    def _reached(
        self, stmt: S.Let, names: Names, values: dict[str, Any]
    ) -> tuple[dict[str, S.Let], dict[str, S.Def], set[str]]:
        """The `let`s and `def`s the statement names, and every name in it; through each
        `def`, and through each `let` without a value yet (checked within this one), the
        same again. A `let` with a value is read as that value, its statement unread."""
        lets: dict[str, S.Let] = {}
        defs: dict[str, S.Def] = {}
        mentioned = set(self._names_in(stmt, (stmt.value,)))
        todo = list(mentioned)
        while todo:
            n = todo.pop()
            found: frozenset[str] = frozenset()
            if n in names.lets and n not in lets:
                s = names.lets[n]
                lets[n] = s
                if n not in values:
                    found = self._names_in(s, (s.value,))
            if n in names.defs and n not in defs:
                d = names.defs[n]
                defs[n] = d
                found = found | self._names_in(d, (d.body,) + tuple(e for _, e in d.defaults))
            new = found - mentioned
            mentioned |= new
            todo += new
        return lets, defs, mentioned

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


def _decl_key(d: Declaration) -> Any:
    """What of a declaration a `let`'s check may read: its kind, its type, and where and how
    its type is written (its nodes' spans)."""
    return (
        d.kind,
        d.type,
        d.type_span,
        d.type_span.text,
        d.name_span,
        tuple(sorted(d.leaf_spans.items())),
        tuple(leaf.domain for leaf in d.leaves),
    )


def _names_key(names: Names) -> Any:
    """Every name the file defines, by kind and in order: what an error's hint lists."""
    return (
        tuple(names.decls),
        tuple(names.lets),
        tuple(names.defs),
        frozenset(names.broken),
        frozenset(names.known_symbols),
    )
