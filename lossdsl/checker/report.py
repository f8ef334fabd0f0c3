"""How the checker reports: every error with the chain of `def` calls that led to it, and
the poison value that keeps one mistake from being reported twice."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import NoReturn, overload

from ..diagnostics import Collector, Diagnostic
from ..functions import USER_FUNCTIONS
from ..ir import Node
from ..source import Span


class _Poison(Node):
    """The value of an expression that already produced an error; silences what uses it."""


POISON = _Poison(type=None, span=None)  # type: ignore[arg-type]


class RuleFailed(Exception):
    """Raised by `Reporter.fail` once the error is recorded: the rule gives up, and its call is POISON."""


class Reporter:
    """The findings of one check. `calls` is the chain of inlined `def` calls being checked:
    an error inside a `def` body names the call that led there."""

    def __init__(self) -> None:
        self.diags = Collector()
        self.calls: tuple[tuple[str, Span], ...] = ()
        self.log: list[Diagnostic] | None = None  # every finding reported, kept or not (checker/reuse.py)

    def error(
        self, message: str, span: Span | None, code: str, help: str | None = None, notes: Sequence[str] = ()
    ) -> None:
        notes = list(notes) + [
            f"in `{name}`, called at line {sp.line}, column {sp.col}" for name, sp in reversed(self.calls)
        ]
        d = Diagnostic(message, span, code=code, help=help, notes=tuple(notes))
        self.diags.add(d)
        if self.log is not None:
            self.log.append(d)

    def fail(self, message: str, span: Span, code: str, help: str | None = None, notes: Sequence[str] = ()) -> NoReturn:
        self.error(message, span, code, help, notes)
        raise RuleFailed()


def span_text(span: Span) -> str:
    text = span.text
    return "x" if text is None else text


class SpanTexts(Sequence[str]):
    """The operands of a call as written (`span_text` of each span), read only by error
    messages: each is cut out of the source when a message asks for it, not for every call."""

    def __init__(self, spans: Sequence[Span]) -> None:
        self.spans = spans

    def __len__(self) -> int:
        return len(self.spans)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [span_text(s) for s in self.spans[i]]
        return span_text(self.spans[i])


def where(span: Span) -> str:
    """The expression at `span`, quoted, to say where a dimension got its size."""
    text = span_text(span)
    return f"`{text}`" if len(text) <= 40 else "the expression"


def did_you_mean(name: str, candidates: Sequence[str], otherwise: str | None = None) -> str | None:
    match = difflib.get_close_matches(name, list(dict.fromkeys(candidates)), n=1, cutoff=0.6)
    if match:
        return f"did you mean `{match[0]}`?"
    if otherwise == "declare it":
        return f"declare it, e.g. `input {name}: float[B]`, or define it with `let {name} = ...`"
    return otherwise


# Functions of other libraries that the language writes another way (they are not in the table,
# so the closest spelling would point at an unrelated function: `squeeze` is not `square`).
IDIOMS = {
    "squeeze": "drop an axis of size 1 by indexing it with 0, e.g. `x[:, 0]`",
    "unsqueeze": "insert an axis of size 1 with `None`, e.g. `x[:, None]`",
    "expand_dims": "insert an axis of size 1 with `None`, e.g. `x[:, None]`",
    "isinf": "test with `not isfinite(x) and not isnan(x)`",
    "reshape": "reshape by axis names: `flatten(x, [H, W])` merges axes, `unflatten(x, [H, W], axis=-1)` splits one",
    "view": "reshape by axis names: `flatten(x, [H, W])` merges axes, `unflatten(x, [H, W], axis=-1)` splits one",
    "isneginf": "compare: `x == -inf`",
    "isposinf": "compare: `x == inf`",
}


def function_hint(name: str, defs: Sequence[str]) -> str | None:
    """The hint for a call of an unknown function: the table's name for another library's
    spelling (`arccos` is `acos`), the idiom for a function the language writes otherwise, else
    the closest spelling among the functions and `def`s."""
    for f in USER_FUNCTIONS.values():
        if name in f.known_as:
            return f"`{name}` is spelled `{f.name}` here"
    if name in IDIOMS:
        return IDIOMS[name]
    return did_you_mean(name, list(USER_FUNCTIONS) + list(defs), "see the function list in docs/language.md")
