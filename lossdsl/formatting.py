"""The one layout of a `.loss` file: `lossdsl fmt`.

    format_source(text, path="<string>") -> str      (raises LossError on a syntax error)

The formatter works on the grammar's own tokens, comments included, and changes only the
space between them, so what a file means cannot change. Line breaks stay the author's (a
statement continued inside brackets keeps its lines); the rest is fixed:

- one space around binary operators, comparisons, `and`/`or` and a statement's `=`; none around
  `^`, after a unary `-`, inside brackets, before `,` `:` `.`, around a keyword argument's `=`
  or a slice's `:`; one space after `,` and after a declaration's or a record field's `:`;
- consecutive declarations align their names and their types; consecutive `let`s (and `def`s)
  align their `=`; the trailing comments of a run of one-line statements line up two spaces
  after the longest of them. A blank line or a comment line ends a run;
- a continued line is indented to just after its open bracket, or four spaces past the line
  that opened it when the bracket ends that line; a closing bracket that starts a line goes back
  to the opening line's indent; a line continued with `\\` is indented four spaces;
- comments keep their text and their place (on the line of the code they follow, or on a line of
  their own); at most one blank line in a row; no trailing spaces; one newline at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnostics import LossError
from .parser import parse_source, tokens_if_valid, tokens_with_comments
from .source import Source

__all__ = ["format_source"]

INDENT = 4
_DECLARATIONS = frozenset({"PRED", "TARGET", "INPUT", "CONTEXT", "PARAM"})
_OPENERS = frozenset({"LPAR", "LSQB", "LBRACE"})
_CLOSERS = frozenset({"RPAR", "RSQB", "RBRACE"})
# After one of these a `-` subtracts; anywhere else it negates.
_VALUE_ENDS = frozenset({"NAME", "INTEGER", "DECIMAL", "RPAR", "RSQB", "TRUE", "FALSE", "NONE", "ELLIPSIS"})
# Callees and indexed values: a `(` or `[` right after one of these opens a call, an index or a shape.
_CALLABLE = frozenset({"NAME", "FLOAT", "INT"})
_INDEXABLE = frozenset({"NAME", "RPAR", "RSQB", "FLOAT", "INT", "BOOL"})


@dataclass(eq=False)
class _Tok:
    kind: str
    text: str
    line: int
    bracket: str | None = None  # the innermost bracket around the token: "LPAR", "LSQB", "LBRACE" or None
    unary: bool = False  # a `-` that negates
    hanging: bool = False  # an opening bracket that ends its line
    col: int = 0  # where it was written in the output, 0-based


@dataclass(eq=False)
class _Line:
    number: int
    code: list[_Tok]
    comment: str | None
    backslash: bool
    blank_before: bool


@dataclass(eq=False)
class _Statement:
    lines: list[_Line] = field(default_factory=list)

    @property
    def kind(self) -> str:
        first = self.lines[0].code[0].kind
        if first in _DECLARATIONS:
            return "decl"
        return first.lower()

    @property
    def one_line(self) -> bool:
        return len(self.lines) == 1 and not self.lines[0].backslash


def format_source(text: str, path: str = "<string>") -> str:
    """`text` in the canonical layout. A file that does not parse raises its syntax errors as a
    `LossError` (the checker's findings do not matter here: a spec with a type error is formatted)."""
    raw = tokens_if_valid(text)
    if raw is None:
        result = parse_source(Source(text, path))
        errors = [d for d in result.findings if d.severity == "error"]
        if errors:
            raise LossError(errors)
        raw = tokens_with_comments(text)
    items = _group(_lines(_tokens(raw)))
    out: list[str] = []
    for run in _runs(items):
        if isinstance(run, _Line):
            if run.blank_before and out:
                out.append("")
            out.append(run.comment or "")
        else:
            _render_run(run, out)
    return "\n".join(out) + "\n" if out else ""


# ---- tokens and lines ---------------------------------------------------------------------------


def _kind(tok) -> str:
    if tok.type == "COMMENT":
        return "COMMENT"
    if str(tok) == "...":
        return "ELLIPSIS"
    if str(tok).startswith("\\"):
        return "BACKSLASH"
    return tok.type


def _tokens(raw: list) -> list[_Tok]:
    """The parser's tokens, each marked with the bracket around it and, for `-`, whether it negates."""
    toks: list[_Tok] = []
    stack: list[str] = []
    prev_code: _Tok | None = None
    for tok in raw:
        if tok.type == "_NL":
            prev_code = None
            continue
        t = _Tok(_kind(tok), str(tok).rstrip(), int(tok.line or 1))
        if t.kind in ("COMMENT", "BACKSLASH"):
            toks.append(t)
            continue
        if t.kind in _CLOSERS and stack:
            stack.pop()
        t.bracket = stack[-1] if stack else None
        if t.kind == "MINUS":
            t.unary = prev_code is None or prev_code.kind not in _VALUE_ENDS
        if t.kind in _OPENERS:
            stack.append(t.kind)
        toks.append(t)
        prev_code = t
    return toks


def _lines(toks: list[_Tok]) -> list[_Line]:
    by_line: dict[int, list[_Tok]] = {}
    for t in toks:
        by_line.setdefault(t.line, []).append(t)
    lines: list[_Line] = []
    previous = None
    for number in sorted(by_line):
        row = by_line[number]
        code = [t for t in row if t.kind not in ("COMMENT", "BACKSLASH")]
        comment = next((t.text for t in row if t.kind == "COMMENT"), None)
        if code and code[-1].kind in _OPENERS:
            code[-1].hanging = True
        blank = previous is not None and number > previous + 1
        lines.append(_Line(number, code, comment, any(t.kind == "BACKSLASH" for t in row), blank))
        previous = number
    return lines


def _group(lines: list[_Line]) -> list[_Statement | _Line]:
    """Statements (with their continuation lines) and the comment lines between them."""
    items: list[_Statement | _Line] = []
    depth = 0
    continued = False
    for line in lines:
        if depth == 0 and not continued:
            if line.code:
                items.append(_Statement([line]))
            else:
                items.append(line)
        else:
            stmt = items[-1]
            assert isinstance(stmt, _Statement)
            stmt.lines.append(line)
        for t in line.code:
            depth += t.kind in _OPENERS
            depth -= t.kind in _CLOSERS
        continued = line.backslash
    return items


def _runs(items: list[_Statement | _Line]) -> list[list[_Statement] | _Line]:
    """Consecutive statements of one kind with nothing between them form a run that aligns."""
    runs: list[list[_Statement] | _Line] = []
    for item in items:
        if isinstance(item, _Line):
            runs.append(item)
            continue
        last = runs[-1] if runs else None
        if (
            isinstance(last, list)
            and last[-1].kind == item.kind
            and item.kind in ("decl", "let", "def")
            and not item.lines[0].blank_before
        ):
            last.append(item)
        else:
            runs.append([item])
    return runs


# ---- spacing ----------------------------------------------------------------------------------


def _gap(prev: _Tok, cur: _Tok) -> str:
    """The space between two tokens on one line."""
    p, c = prev.kind, cur.kind
    if c in _CLOSERS or c == "COMMA" or p in _OPENERS:
        return ""
    if p == "COMMA":
        return " "
    if p == "DOT" or c == "DOT":
        return ""
    if c == "LPAR" and p in _CALLABLE:
        return ""
    if c == "LSQB" and p in _INDEXABLE:
        return ""
    if c == "COLON":
        return ""
    if p == "COLON":
        return "" if prev.bracket == "LSQB" else " "
    if "EQUAL" in (p, c):
        equal = prev if p == "EQUAL" else cur
        return " " if equal.bracket is None else ""
    if "CIRCUMFLEX" in (p, c):
        return ""
    if p == "MINUS" and prev.unary:
        return ""
    return " "


def _join(toks: list[_Tok], col: int) -> str:
    """The tokens of one line written from column `col`; records where each one went."""
    parts: list[str] = []
    prev: _Tok | None = None
    for t in toks:
        if prev is not None:
            gap = _gap(prev, t)
            parts.append(gap)
            col += len(gap)
        t.col = col
        parts.append(t.text)
        col += len(t.text)
        prev = t
    return "".join(parts)


# ---- statements ------------------------------------------------------------------------------


def _split_at_equal(code: list[_Tok]) -> int | None:
    """The index of the statement's own `=` (not a keyword argument's) when it is on the first line."""
    return next((i for i, t in enumerate(code) if t.kind == "EQUAL" and t.bracket is None), None)


def _heads(stmt: _Statement) -> tuple[str, str] | None:
    """What a run aligns on: (keyword, `name:`) for a declaration, (`let x`/`def f(a)`, "") for a
    let or def; None for a statement whose head is not whole on its first line."""
    code = stmt.lines[0].code
    if stmt.kind == "decl":
        if len(code) >= 4 and code[1].kind == "NAME" and code[2].kind == "COLON":
            return code[0].text, code[1].text + ":"
        return None
    if stmt.kind in ("let", "def"):
        at = _split_at_equal(code)
        if at is not None and at + 1 < len(code):
            return _join(code[:at], 0), ""
    return None


def _render_run(run: list[_Statement], out: list[str]) -> None:
    heads = [_heads(s) for s in run]
    width0 = max((len(h[0]) for h in heads if h), default=0)
    width1 = max((len(h[1]) for h in heads if h), default=0)
    rendered: list[list[tuple[str, str | None, bool]]] = []
    for stmt, head in zip(run, heads):
        rendered.append(_render_statement(stmt, head, width0, width1))
    # Trailing comments of one-line statements line up; others sit two spaces after their code.
    aligned = [r[0][0] for s, r in zip(run, rendered) if s.one_line and r[0][1] is not None]
    comment_col = max((len(c) for c in aligned), default=0) + 2
    for stmt, lines in zip(run, rendered):
        for code, comment, blank in lines:
            if blank and out:
                out.append("")
            if comment is None:
                out.append(code)
            elif not code.strip():
                out.append(code + comment)
            elif stmt.one_line:
                out.append(code.ljust(comment_col) + comment)
            else:
                out.append(code + "  " + comment)


def _render_statement(
    stmt: _Statement, head: tuple[str, str] | None, width0: int, width1: int
) -> list[tuple[str, str | None, bool]]:
    """Each line as (code with its indent, comment, blank line before)."""
    lines: list[tuple[str, str | None, bool]] = []
    open_brackets: list[tuple[_Tok, int]] = []  # each open bracket with the indent of its line
    for k, line in enumerate(stmt.lines):
        indent = 0 if k == 0 else _indent(line, open_brackets)
        if k == 0 and head is not None:
            text = _aligned_first_line(stmt, head, width0, width1)
        else:
            text = " " * indent + _join(line.code, indent)
        if line.backslash:
            text += " \\"
        lines.append((text, line.comment, line.blank_before and k > 0))
        for t in line.code:
            if t.kind in _OPENERS:
                open_brackets.append((t, indent))
            elif t.kind in _CLOSERS and open_brackets:
                open_brackets.pop()
    if stmt.lines[0].blank_before:
        text, comment, _ = lines[0]
        lines[0] = (text, comment, True)
    return lines


def _indent(line: _Line, open_brackets: list[tuple[_Tok, int]]) -> int:
    if not open_brackets:
        return INDENT  # continued with a backslash
    bracket, line_indent = open_brackets[-1]
    if line.code and line.code[0].kind in _CLOSERS:
        return line_indent
    if bracket.hanging:
        return line_indent + INDENT
    return bracket.col + 1


def _aligned_first_line(stmt: _Statement, head: tuple[str, str], width0: int, width1: int) -> str:
    code = stmt.lines[0].code
    if stmt.kind == "decl":
        keyword, name = head
        code[0].col, code[1].col = 0, width0 + 1
        start = width0 + 1 + width1 + 1
        return keyword.ljust(width0) + " " + name.ljust(width1) + " " + _join(code[3:], start)
    at = _split_at_equal(code)
    assert at is not None
    left = _join(code[:at], 0).ljust(width0)
    code[at].col = width0 + 1
    return left + " = " + _join(code[at + 1 :], width0 + 3)
