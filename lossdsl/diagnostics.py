"""Findings, the one error class, and how findings are printed.

Every mistake in a spec, or in the shapes of the arguments a compiled loss is
called with, becomes a `Diagnostic`; a `LossError` carries one or more of them.
Three renderings: the full one (rustc/mypy style: `path:line:col: error: msg`,
the source line, a caret under the whole span, a `help:` line), JSON, and
GitHub Actions annotations.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .source import Span

# Stable codes, one per kind of finding; docs/errors.md explains each at length.
CODES: dict[str, str] = {
    "E001": "cannot read the spec",
    "E101": "syntax error",
    "E102": "bracket never closed",
    "E103": "closing bracket without an opening one",
    "E104": "`**` is not an operator",
    "E105": "comparisons do not chain",
    "E106": "unexpected character",
    "E108": "positional argument after a keyword argument",
    "E109": "`=` where `==` was meant",
    "E201": "unknown name",
    "E202": "unknown function",
    "E203": "name defined twice",
    "E204": "no `loss` statement",
    "E205": "more than one `loss` statement",
    "E206": "recursive definition",
    "E207": "reserved name",
    "E208": "a value called, or a function used as a value",
    "E209": "no `pred` declared",
    "E210": "no such field",
    "E211": "a built-in function redefined",
    "E212": "a `use` that cannot be read",
    "E213": "a cycle of `use`s",
    "E214": "a name defined both here and in a used file",
    "E301": "wrong dtype",
    "E302": "arithmetic on `bool`",
    "E303": "a `bool` was needed",
    "E304": "an `int` was needed",
    "E305": "a param default that does not fit its type",
    "E306": "a pred that is not a float tensor",
    "E307": "a record used as a value",
    "E308": "a tuple outside `axis=`",
    "E309": "a param that is not a tensor",
    "E310": "a value domain that does not fit its declaration",
    "E401": "shapes that do not broadcast",
    "E402": "one dimension bound to two sizes",
    "E403": "a size-1 axis broadcast into an outer product of a dimension with itself",
    "E404": "wrong rank",
    "E405": "bad axis",
    "E406": "bad index",
    "E407": "slice bounds that are not integer literals",
    "E408": "boolean mask used as an index",
    "E409": "int-tensor index mixed with slices",
    "E410": "inner dimensions of `@` differ",
    "E411": "a `scan` step that does not keep the carry's type",
    "E501": "wrong number of arguments",
    "E502": "unknown keyword argument",
    "E503": "argument given twice",
    "E504": "a static argument that is not a literal",
    "E601": "a `loss` that is not float",
    "E602": "a `loss` that is neither a scalar nor per-sample `[B]`",
    "E603": "a pred whose gradient would be zero everywhere",
    "E604": "a pred that `loss` does not use",
    "W701": "a value that may leave the domain of `log`, `sqrt` or `/`",
    "E801": "missing argument",
    "E802": "unexpected argument",
    "E803": "argument of the wrong dtype",
    "E804": "argument of the wrong rank",
    "E805": "argument of the wrong size",
    "E806": "context or param misuse",
    "E807": "record argument with a missing or extra field",
    "E808": "bad `reduction` or `sample_weight`",
    "E809": "a dimension never bound",
    "E810": "unknown backend",
    "E811": "a sharding that cannot be honoured",
    "E812": "an index argument holding a value outside the axis it indexes",
    "E813": "a Keras metric or class_weight that would read a packed y_true",
    "E814": "an argument outside its declared value domain (`compile(..., check_domains=True)`)",
}


@dataclass(frozen=True)
class Diagnostic:
    """One finding: where, what, and what to do about it."""

    message: str
    span: Span | None = None
    code: str = "E101"
    severity: str = "error"  # "error" or "warning"
    help: str | None = None
    notes: tuple[str, ...] = ()
    path: str | None = None  # for findings with no span (an unreadable file)

    @property
    def where(self) -> str:
        if self.span is not None:
            return f"{self.span.path}:{self.span.line}:{self.span.col}"
        return self.path or "<unknown>"

    def sort_key(self) -> tuple:
        if self.span is None:
            return (self.path or "", 0, 0)
        return (self.span.path, self.span.line, self.span.col)

    def render(self, *, color: bool = False) -> str:
        """The full form: header, source line with a gutter, carets, notes and help."""
        sev = self.severity
        if color:
            sev = ("\x1b[1;31m" if sev == "error" else "\x1b[1;33m") + sev + "\x1b[0m"
        out = [f"{self.where}: {sev}: {self.message}  [{self.code}]"]
        if self.span is not None:
            out.extend(_excerpt(self.span))
        for note in self.notes:
            out.append(f"  note: {note}")
        if self.help:
            out.append(f"  help: {self.help}")
        return "\n".join(out)

    def as_json(self) -> dict:
        d: dict = {
            "path": self.span.path if self.span else self.path,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }
        if self.span is not None:
            d.update(
                line=self.span.line,
                column=self.span.col,
                end_line=self.span.end_line,
                end_column=self.span.end_col,
                source_line=self.span.source.line(self.span.line),
            )
        d["help"] = self.help
        d["notes"] = list(self.notes)
        return d

    def as_github(self) -> str:
        """One GitHub Actions workflow command (`::error file=...::message`)."""
        props = [f"file={_gh_prop(self.span.path if self.span else (self.path or ''))}"]
        if self.span is not None:
            props += [f"line={self.span.line}", f"col={self.span.col}"]
            if self.span.end_line == self.span.line:
                props += [f"endLine={self.span.end_line}", f"endColumn={self.span.end_col}"]
        props.append(f"title={_gh_prop(self.code + ' ' + CODES.get(self.code, ''))}")
        text = self.message + (f"\nhelp: {self.help}" if self.help else "")
        for note in self.notes:
            text += f"\nnote: {note}"
        kind = "error" if self.severity == "error" else "warning"
        return f"::{kind} {','.join(props)}::{_gh_data(text)}"


def _gh_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(s: str) -> str:
    return _gh_data(s).replace(":", "%3A").replace(",", "%2C")


def _excerpt(span: Span) -> list[str]:
    """The source line under a gutter and `^~~~` under the span (tabs expanded first)."""
    raw = span.source.line(span.line)
    if not raw and span.line > 1 and span.col == 1:
        # A span at the very end of the text points past the last line.
        return []
    # Column positions are in characters of the raw line; expand tabs consistently.
    prefix = raw[: span.col - 1].expandtabs(4)
    end_col = span.end_col if span.end_line == span.line else len(raw) + 1
    end_col = max(end_col, span.col + 1)
    body = raw[span.col - 1 : end_col - 1].expandtabs(4)
    width = max(1, len(body))
    line = raw.expandtabs(4)
    gutter = str(span.line)
    pad = " " * len(gutter)
    return [
        f"  {gutter} | {line}",
        f"  {pad} | {' ' * len(prefix)}^{'~' * (width - 1)}",
    ]


class LossError(ValueError):
    """A mistake in a spec or in the arguments of a compiled loss.

    `findings` holds every independent error found (and any warnings found on the
    way); `str(err)` shows them all in the full form.
    """

    # TensorFlow's autograph re-raises exceptions from traced code as its own StagingError
    # unless they carry this mark; a LossError must reach the user as itself.
    ag_pass_through = True

    def __init__(self, findings: Sequence[Diagnostic]):
        findings = sorted(findings, key=Diagnostic.sort_key)
        self.findings: list[Diagnostic] = list(findings)
        super().__init__(self._text())

    @classmethod
    def plain(
        cls,
        message: str,
        *,
        path: str | None = None,
        code: str = "E101",
        help: str | None = None,
        span: Span | None = None,
        notes: Iterable[str] = (),
    ) -> LossError:
        return cls([Diagnostic(message, span, code=code, help=help, path=path, notes=tuple(notes))])

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.findings if d.severity == "error"]

    @property
    def first(self) -> Diagnostic:
        errs = self.errors
        return errs[0] if errs else self.findings[0]

    def _text(self) -> str:
        errs = self.errors
        body = "\n\n".join(d.render() for d in errs)
        if len(errs) > 1:
            body += f"\n\nfound {len(errs)} errors"
        return body

    def __reduce__(self):  # picklable across processes (torch spawn, multiprocessing)
        return (type(self), (self.findings,))


def summary_line(n_errors: int, n_warnings: int, n_files: int) -> str:
    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    if n_errors == 0 and n_warnings == 0:
        return f"all good: {plural(n_files, 'file')} checked"
    parts = []
    if n_errors:
        parts.append(plural(n_errors, "error"))
    if n_warnings:
        parts.append(plural(n_warnings, "warning"))
    return f"found {' and '.join(parts)} in {plural(n_files, 'file')} checked"


@dataclass
class Collector:
    """Gathers findings during one stage; `raise_if_errors` ends the stage."""

    findings: list[Diagnostic] = field(default_factory=list)
    _seen: set = field(default_factory=set)

    def error(
        self, message: str, span: Span | None, code: str, help: str | None = None, notes: Iterable[str] = ()
    ) -> None:
        self.add(Diagnostic(message, span, code=code, help=help, notes=tuple(notes)))

    def warning(
        self, message: str, span: Span | None, code: str, help: str | None = None, notes: Iterable[str] = ()
    ) -> None:
        self.add(Diagnostic(message, span, code=code, severity="warning", help=help, notes=tuple(notes)))

    def add(self, d: Diagnostic) -> None:
        # The same mistake inside a `def` is met once per call site; report it once.
        key = (d.code, d.message, d.sort_key())
        if key not in self._seen:
            self._seen.add(key)
            self.findings.append(d)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.findings)

    def raise_if_errors(self) -> None:
        if self.has_errors:
            raise LossError(self.findings)


def name_hint(name: str, known: Sequence[str], otherwise: str | None = None) -> str | None:
    """`did you mean `B`?` for a name given where one of `known` was meant (the same name in
    another case first, then the closest spelling), else `otherwise`."""
    same_but_case = [k for k in known if k.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean `{close[0]}`?" if close else otherwise
