"""Text -> syntax tree: the Lark grammar, a bracket-aware post-lexer, a transformer
to `lossdsl.syntax` nodes, and syntax errors a person can act on.

    parse(source_or_path) -> syntax.Module      (raises LossError)

Syntax errors are reported per statement: when the file does not parse as a
whole, each statement is parsed on its own, so one missing `)` does not hide a
second mistake ten lines below.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lark import PostLex

try:  # Lark 1.2+: parse a slice of a text with the positions it has in the whole text
    from lark.utils import TextSlice
except ImportError:  # pragma: no cover
    TextSlice = None  # type: ignore[assignment,misc]

from . import syntax as S
from .diagnostics import Collector, Diagnostic, LossError
from .loading import load_source
from .source import Source, Span

STATEMENT_KEYWORDS = ("pred", "target", "input", "context", "param", "let", "def", "loss", "use")
KEYWORDS = frozenset(
    STATEMENT_KEYWORDS + ("float", "int", "bool", "true", "false", "inf", "and", "or", "not", "None", "in")
)
_OPEN = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
_CLOSE = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}
_CLOSING_CHAR = {"LPAR": ")", "LSQB": "]", "LBRACE": "}"}


class _BracketError(Exception):
    def __init__(self, token: Token, message: str, code: str, help: str):
        self.token, self.message, self.code, self.help = token, message, code, help


class BracketNewlines(PostLex):
    """Drops newlines inside ( ) [ ] { } so an expression may continue on the next line,
    reports a closing bracket with no opening one, and ends the text with a newline."""

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.open_brackets: list[Token] = []

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        opened: list[Token] = []
        self.open_brackets = opened
        # Brackets that open an interval (`in [0, C)`): either kind of bracket closes them.
        intervals: set[int] = set()
        last = None
        after_in = False  # the last token other than spaces and comments (the formatter lexes those) is `in`
        for tok in stream:
            kind = tok.type
            if kind in _OPEN:
                opened.append(tok)
                if after_in:
                    intervals.add(id(tok))
            elif kind in _CLOSE:
                if opened and id(opened[-1]) in intervals and kind in ("RPAR", "RSQB"):
                    intervals.discard(id(opened.pop()))
                elif not opened or opened[-1].type != _CLOSE[kind]:
                    if opened:
                        want = _CLOSING_CHAR[opened[-1].type]
                        raise _BracketError(
                            tok,
                            f"`{tok}` does not match `{_OPEN[opened[-1].type]}`",
                            "E103",
                            f"the `{_OPEN[opened[-1].type]}` at line {opened[-1].line}, column "
                            f"{opened[-1].column} is closed by `{want}`",
                        )
                    raise _BracketError(tok, f"`{tok}` has no opening bracket", "E103", "remove it")
                else:
                    opened.pop()
            elif kind == "_NL" and opened:
                continue
            if kind != "COMMENT" and tok.strip(" \t\f"):
                after_in = kind == "IN"
            last = tok
            yield tok
        if opened:
            tok = opened[-1]
            raise _BracketError(
                tok, f"`{tok}` is never closed", "E102", f"add `{_CLOSING_CHAR[tok.type]}` where the expression ends"
            )
        if last is None or last.type != "_NL":
            # the newline the text does not end with: one column wide, after the last token
            line, column = getattr(last, "end_line", 1), getattr(last, "end_column", 1)
            yield Token("_NL", "\n", line=line, column=column, end_line=line, end_column=column + 1)


def _make_lark(**extra) -> Lark:
    import pkgutil  # package data without importlib.resources, which `lossdsl check` need not import

    grammar = cast(bytes, pkgutil.get_data("lossdsl.grammars", "loss.lark")).decode("utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        start=["start", "quick"],
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=BracketNewlines(),
        cache=_cache_path(grammar),
        **extra,
    )


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return _make_lark()


class _Nothing:
    """What the validating parser builds for every rule: nothing but the list Lark expects."""

    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: list = []


class _BuildNothing:
    def __getattr__(self, rule: str):
        return lambda children: _Nothing()


@lru_cache(maxsize=1)
def _validator() -> Lark:
    """The same parser building no tree: whether tokens parse, at a third of the cost. Its options
    are `_lark()`'s (a transformer does not count), so both share one cache file."""
    return _make_lark(transformer=_BuildNothing())


def tokens_if_valid(text: str) -> list[Token] | None:
    """`tokens_with_comments(text)` when the text parses (as a file, or as the quick form),
    else None; decided without building a tree, at a fraction of `parse_source`'s cost (the
    formatter's syntax check: `parse_source` then says what is wrong)."""
    try:
        tokens = tokens_with_comments(text)
    except (UnexpectedInput, _BracketError):
        return None
    code = [t for t in tokens if t.type != "COMMENT" and not str(t).startswith("\\")]
    has_statement = any(t.type.lower() in STATEMENT_KEYWORDS for t in code)
    for start in ("start",) if has_statement else ("start", "quick"):
        interactive = _validator().parse_interactive(start=start)
        try:
            for tok in code:
                interactive.feed_token(tok)
            interactive.feed_eof()
        except UnexpectedInput:
            continue
        return tokens
    return None


def _cache_path(grammar: str) -> str | bool:
    """Lark can cache the built LALR tables; keyed by the grammar so an edit invalidates it."""
    import hashlib
    import os
    import tempfile

    import lark

    key = hashlib.sha256((grammar + lark.__version__).encode()).hexdigest()[:16]
    base = os.environ.get("LOSSDSL_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "lossdsl-cache")
    try:
        os.makedirs(base, exist_ok=True)
        return os.path.join(base, f"grammar-{key}.lark.cache")
    except OSError:
        return False


def tokens_with_comments(text: str) -> list[Token]:
    """Every token of `text` in order, comments and line-continuing backslashes included and
    runs of spaces left out: the formatter's and the highlighter's view of a file. Newlines
    inside brackets are dropped as the parser drops them; every token keeps its line.
    The text must lex (a file that parses always does)."""
    return [tok for tok in _lark().lex(text, dont_ignore=True) if tok.strip(" \t\f")]


def grammar_keywords() -> frozenset[str]:
    """The words the grammar reserves (its literal terminals that are words), read from
    grammars/loss.lark itself, so a tool listing them cannot drift from the syntax."""
    return frozenset(
        str(t.pattern.value)
        for t in _lark().terminals
        if t.pattern.type == "str" and re.fullmatch(r"[A-Za-z_]\w*", str(t.pattern.value))
    )


# ---- tree -> syntax nodes ---------------------------------------------------------


def _tok_span(src: Source, tok: Token) -> Span:
    # Lark's stubs allow None positions; the tokens of our lexer always carry them.
    return Span(src, cast(int, tok.line), cast(int, tok.column), cast(int, tok.end_line), cast(int, tok.end_column))


def _positional_after_keyword(args: list) -> S.Keyword | None:
    seen_kw = None
    for a in args:
        if isinstance(a, S.Keyword):
            seen_kw = a
        elif seen_kw is not None:
            return a
    return None


class _ToSyntax:
    """Each method is named after a grammar alias and builds the node of the same name from
    the tree's meta (its positions) and its children, already built."""

    def __init__(self, source: Source, diags: Collector):
        self.src = source
        self.diags = diags

    def transform(self, tree: Tree):
        """The tree, bottom up, as syntax nodes. Written out rather than Lark's `Transformer`,
        which makes a wrapper object for every node it visits (`lossdsl check` spends its time
        in the parser; see docs/benchmarks.md)."""
        builders = _builders()

        def build(node: Tree):
            children = [build(c) if isinstance(c, Tree) else c for c in node.children]
            builder = builders.get(node.data)
            return Tree(node.data, children, node.meta) if builder is None else builder(self, node.meta, children)

        return build(tree)

    def _span(self, meta) -> Span:
        return Span(self.src, meta.line, meta.column, meta.end_line, meta.end_column)

    # statements
    def start(self, meta, children):
        return [c for c in children if c is not None]

    def quick(self, meta, children):
        (expr,) = children
        return expr

    def _decl(self, kind, meta, children):
        name, type_ = children[0], children[1]
        default = children[2] if len(children) > 2 else None
        return S.Decl(kind, str(name), type_, default, self._span(meta), _tok_span(self.src, name))

    def pred_decl(self, meta, c):
        return self._decl("pred", meta, c)

    def target_decl(self, meta, c):
        return self._decl("target", meta, c)

    def input_decl(self, meta, c):
        return self._decl("input", meta, c)

    def context_decl(self, meta, c):
        return self._decl("context", meta, c)

    def param_decl(self, meta, c):
        return self._decl("param", meta, c)

    def let_stmt(self, meta, c):
        name, value = c
        return S.Let(str(name), value, self._span(meta), _tok_span(self.src, name))

    def def_stmt(self, meta, c):
        name, params, body = c
        params = params or []
        return S.Def(
            str(name),
            tuple(str(p) for p in params),
            tuple(_tok_span(self.src, p) for p in params),
            body,
            self._span(meta),
            _tok_span(self.src, name),
        )

    def names(self, meta, c):
        return [t for t in c if t is not None]

    def use_file(self, meta, c):
        (tok,) = c
        return S.Use(str(tok)[1:-1], None, self._span(meta), _tok_span(self.src, tok))

    def use_library(self, meta, c):
        library, name = c
        return S.Use(str(name), str(library), self._span(meta), _tok_span(self.src, name))

    def loss_stmt(self, meta, c):
        (value,) = c
        return S.LossStmt(value, self._span(meta))

    # types
    def tensor_type(self, meta, c):
        dtype, dims, domain = c
        return S.TensorTypeExpr(str(dtype), tuple(dims or ()), self._span(meta), domain)

    # value domains
    def named_domain(self, meta, c):
        return S.NamedDomain(str(c[0]), self._span(meta))

    def interval_domain(self, meta, c):
        opening, low, high, closing = c
        return S.IntervalDomain(low, high, str(opening) == "[", str(closing) == "]", self._span(meta))

    def interval_open(self, meta, c):
        return c[0]

    def interval_close(self, meta, c):
        return c[0]

    def bound_symbol(self, meta, c):
        return S.DomainBound(str(c[0]), self._span(meta))

    def bound_number(self, meta, c):
        text = str(c[0])
        return S.DomainBound(int(text) if text.isdigit() else float(text), self._span(meta))

    def bound_negative(self, meta, c):
        text = str(c[1])
        return S.DomainBound(-int(text) if text.isdigit() else -float(text), self._span(meta))

    def bound_inf(self, meta, c):
        return S.DomainBound(float("inf"), self._span(meta))

    def bound_negative_inf(self, meta, c):
        return S.DomainBound(float("-inf"), self._span(meta))

    def dtype(self, meta, c):
        return c[0]

    def shape(self, meta, c):
        return [d for d in c if d is not None]

    def dim_symbol(self, meta, c):
        return S.DimSymbol(str(c[0]), self._span(meta))

    def dim_literal(self, meta, c):
        return S.DimLiteral(int(c[0]), self._span(meta))

    def record_type(self, meta, c):
        fields = [f for f in c if f is not None]
        seen: dict[str, S.FieldExpr] = {}
        for f in fields:
            if f.name in seen:
                self.diags.error(f"field `{f.name}` is declared twice in this record", f.span, "E203")
            seen[f.name] = f
        return S.RecordTypeExpr(tuple(fields), self._span(meta))

    def field(self, meta, c):
        name, type_ = c
        return S.FieldExpr(str(name), type_, self._span(meta))

    # param defaults
    def lit_int(self, meta, c):
        return S.Literal(int(c[0]), self._span(meta))

    def lit_float(self, meta, c):
        return S.Literal(float(c[0]), self._span(meta))

    def lit_neg_int(self, meta, c):
        return S.Literal(-int(c[1]), self._span(meta))

    def lit_neg_float(self, meta, c):
        return S.Literal(-float(c[1]), self._span(meta))

    def lit_inf(self, meta, c):
        return S.Literal(float("inf"), self._span(meta))

    def lit_neg_inf(self, meta, c):
        return S.Literal(float("-inf"), self._span(meta))

    def lit_true(self, meta, c):
        return S.Literal(True, self._span(meta))

    def lit_false(self, meta, c):
        return S.Literal(False, self._span(meta))

    def lit_list(self, meta, c):
        return S.Literal([x.value for x in c if x is not None], self._span(meta))

    # expressions
    def or_op(self, meta, c):
        left, right = c
        sp = self._span(meta)
        return S.BinOp("or", left, right, sp, sp)

    def and_op(self, meta, c):
        left, right = c
        sp = self._span(meta)
        return S.BinOp("and", left, right, sp, sp)

    def not_op(self, meta, c):
        return S.UnaryOp("not", c[0], self._span(meta))

    def compare(self, meta, c):
        left, op, right = c
        return S.BinOp(str(op), left, right, self._span(meta), _tok_span(self.src, op))

    def binop(self, meta, c):
        left, op, right = c
        return S.BinOp(str(op), left, right, self._span(meta), _tok_span(self.src, op))

    def neg(self, meta, c):
        return S.UnaryOp("-", c[1], self._span(meta))

    def pow(self, meta, c):
        base, exp = c
        sp = self._span(meta)
        return S.BinOp("^", base, exp, sp, sp)

    def field_access(self, meta, c):
        value, name = c
        return S.FieldAccess(value, str(name), self._span(meta), _tok_span(self.src, name))

    def index(self, meta, c):
        value, items = c
        return S.Index(value, tuple(items), self._span(meta))

    def subscripts(self, meta, c):
        return [x for x in c if x is not None]

    def slice(self, meta, c):
        start, stop, step = (list(c) + [None, None, None])[:3]
        return S.Slice(start, stop, step, self._span(meta))

    def ellipsis(self, meta, c):
        return S.EllipsisIndex(self._span(meta))

    def newaxis(self, meta, c):
        return S.NewAxis(self._span(meta))

    def callee(self, meta, c):
        return c[0]

    def call(self, meta, c):
        func, args = c
        args = args or []
        bad = _positional_after_keyword(args)
        if bad is not None:
            self.diags.error(
                "positional argument after a keyword argument",
                bad.span,
                "E108",
                help="put positional arguments first, then `name=value` ones",
            )
            # Keep what came before the mistake, so the checker does not report it again.
            first_kw = next(i for i, a in enumerate(args) if isinstance(a, S.Keyword))
            args = args[:first_kw] + [a for a in args[first_kw:] if isinstance(a, S.Keyword)]
        pos = tuple(a for a in args if not isinstance(a, S.Keyword))
        kws = tuple(a for a in args if isinstance(a, S.Keyword))
        return S.Call(str(func), pos, kws, self._span(meta), _tok_span(self.src, func))

    def arguments(self, meta, c):
        return [a for a in c if a is not None]

    def kwarg(self, meta, c):
        name, value = c
        return S.Keyword(str(name), value, self._span(meta))

    def name(self, meta, c):
        return S.Name(str(c[0]), self._span(meta))

    def int_lit(self, meta, c):
        return S.Number(int(c[0]), self._span(meta))

    def float_lit(self, meta, c):
        return S.Number(float(c[0]), self._span(meta))

    def inf_lit(self, meta, c):
        return S.Number(float("inf"), self._span(meta))

    def true_lit(self, meta, c):
        return S.Bool(True, self._span(meta))

    def false_lit(self, meta, c):
        return S.Bool(False, self._span(meta))

    def tuple(self, meta, c):
        return S.Tuple(tuple(x for x in c if x is not None), self._span(meta))


@lru_cache(maxsize=1)
def _builders() -> dict:
    """Grammar alias -> the `_ToSyntax` method building its node (rule names are lower case and
    never start with `_`, which Lark inlines)."""
    return {
        name: f
        for name, f in vars(_ToSyntax).items()
        if callable(f) and not name.startswith("_") and name != "transform"
    }


# ---- syntax errors ------------------------------------------------------------------

_EXPR_STARTS = {"NAME", "INTEGER", "DECIMAL", "LPAR", "MINUS", "TRUE", "FALSE", "INF", "NOT", "FLOAT", "INT"}


def _describe_terminals(names: set[str]) -> str:
    lark = _lark()
    pretty: list[str] = []
    # Summarise the many ways an expression can start.
    if "_NL" not in names and {"INTEGER", "DECIMAL"} <= names and "NAME" in names:
        pretty.append("an expression")
        names = names - _EXPR_STARTS - {"MINUS"}
    for n in sorted(names):
        if n == "NAME":
            pretty.append("a name")
        elif n == "INTEGER":
            pretty.append("an integer")
        elif n == "DECIMAL":
            pretty.append("a number")
        elif n == "_NL":
            pretty.append("end of line")
        elif n == "$END":
            pretty.append("end of file")
        elif n == "COMP_OP":
            pretty.append("a comparison")
        else:
            term = next((t for t in lark.terminals if t.name == n), None)
            if term is not None and term.pattern.type == "str":
                pretty.append(f"`{term.pattern.value}`")
            else:
                pretty.append(n.lower())
    pretty = sorted(set(pretty), key=lambda p: (not p.startswith(("an ", "a ")), p))
    if len(pretty) > 6:
        pretty = pretty[:6] + ["..."]
    if not pretty:
        return "something else"
    if len(pretty) == 1:
        return pretty[0]
    return ", ".join(pretty[:-1]) + " or " + pretty[-1]


def _token_text(tok: Token) -> str:
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "$END":
        return "end of file"
    return f"`{tok}`"


def _syntax_diagnostic(err: Exception, src: Source, chunk_open: list[Token]) -> Diagnostic:
    """One friendly finding for a Lark error (or a bracket error from the post-lexer)."""
    if isinstance(err, _BracketError):
        return Diagnostic(err.message, _tok_span(src, err.token), err.code, help=err.help)

    if isinstance(err, UnexpectedCharacters):
        line, col = err.line, err.column
        ch = src.line(line)[col - 1 : col] or "?"
        sp = Span(src, line, col, line, col + 1)
        help = None
        if ch in "'\"":
            help = "the language has no strings"
        elif ch in "&|":
            help = "use `and` / `or`"
        elif ch == "!":
            help = "use `not`"
        elif ch == "%":
            help = "there is no `%` operator"
        return Diagnostic(f"unexpected character `{ch}`", sp, "E106", help=help)

    if isinstance(err, UnexpectedEOF):
        if chunk_open:
            tok = chunk_open[-1]
            return Diagnostic(
                f"`{tok}` is never closed",
                _tok_span(src, tok),
                "E102",
                help=f"add `{_CLOSING_CHAR[tok.type]}` where the expression ends",
            )
        last_line = max(1, len(src.text.split("\n")))
        return Diagnostic("unexpected end of file", Span(src, last_line, 1, last_line, 1), "E101")

    assert isinstance(err, UnexpectedToken)
    tok = err.token
    expected = set(err.expected)
    if tok.type == "$END" or tok.line is None:
        line = max(1, len(src.text.rstrip("\n").split("\n")))
        col = len(src.line(line)) + 1
        sp = Span(src, line, col, line, col + 1)
    else:
        sp = _tok_span(src, tok)
    prev_char = src.line(sp.line)[sp.col - 2 : sp.col - 1] if sp.col > 1 else ""

    if tok.type == "STAR" and prev_char == "*":
        return Diagnostic(
            "`**` is not an operator",
            Span(src, sp.line, sp.col - 1, sp.line, sp.col + 1),
            "E104",
            help="use `^` for powers: `x ^ 2`",
        )
    if tok.type == "COMP_OP" and "COMP_OP" not in expected and "NAME" not in expected:
        return Diagnostic(
            "comparisons do not chain", sp, "E105", help="join two comparisons with `and`: `a < b and b < c`"
        )
    if tok.type == "EQUAL" and "EQUAL" not in expected:
        return Diagnostic("unexpected `=`", sp, "E109", help="to compare, use `==`")
    if tok.type == "NAME" and expected & {"PRED", "LET", "LOSS"}:
        line_rest = src.line(sp.line)[sp.col - 1 :]
        help = "a statement starts with `pred`, `target`, `input`, `context`, `param`, `let`, `def`, `loss` or `use`"
        if re.match(r"[A-Za-z_]\w*\s*=[^=]", line_rest):
            help = f"to name a value, write `let {tok} = ...`"
        return Diagnostic(f"expected a statement, found `{tok}`", sp, "E101", help=help)
    if expected & {"FLOAT", "INT", "BOOL"} and tok.type == "NAME" and "NAME" not in expected:
        return Diagnostic(
            f"unknown type `{tok}`",
            sp,
            "E101",
            help="the types are `float`, `int` and `bool`, "
            "with a shape such as `float[B, C]`, or a record `{field: float[B]}`",
        )
    if str(tok) in KEYWORDS and tok.type != "NAME" and "NAME" in expected:
        return Diagnostic(f"`{tok}` is a keyword and cannot be used as a name", sp, "E101", help="choose another name")
    help = None
    if chunk_open and tok.type in ("_NL", "$END"):
        o = chunk_open[-1]
        help = f"the `{o}` at line {o.line}, column {o.column} is never closed"
    what = _describe_terminals(expected)
    return Diagnostic(f"unexpected {_token_text(tok)}, expected {what}", sp, "E101", help=help)


# ---- parsing -----------------------------------------------------------------------------


def _parse_text(text: str, start: str):
    lark = _lark()
    return lark.parse(text, start=start)


def _parse_piece(text: str, offset: int, first_line: int, chunk: str):
    """Parse the statement `chunk`, which starts at `offset` (line `first_line`) of `text`, with
    the positions it has in the whole text. Lark's TextSlice counts the lines before it at C
    speed; without it (an older Lark) the piece is preceded by as many empty lines, which the
    parser reads one by one: parsing every piece of a long file that way takes quadratic time."""
    if TextSlice is not None:
        return _lark().parse(TextSlice(text, offset, offset + len(chunk)), start="start")
    return _parse_text("\n" * (first_line - 1) + chunk, "start")


def _line_offsets(text: str) -> list[int]:
    """Where each line of `text` starts."""
    offsets = [0]
    for line in text.split("\n"):
        offsets.append(offsets[-1] + len(line) + 1)
    return offsets


def _statement_chunks(text: str) -> list[tuple[int, str]]:
    """Split the text into (first line, text) pieces, one statement each. A line that starts
    with a statement keyword always starts a piece, so an unclosed bracket stays local."""
    lines = text.split("\n")
    chunks: list[tuple[int, list[str]]] = []
    depth = 0
    kw = re.compile(r"\s*(%s)\b" % "|".join(STATEMENT_KEYWORDS))
    for i, line in enumerate(lines, start=1):
        code = line.split("#", 1)[0]
        starts_statement = bool(kw.match(code))
        opens = starts_statement or (depth <= 0 and code.strip()) or not chunks
        if opens and (starts_statement or depth <= 0):
            chunks.append((i, []))
            depth = 0
        chunks[-1][1].append(line)
        for ch in code:
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
    return [(first, "\n".join(body)) for first, body in chunks]


def _defined_name(chunk: str) -> tuple[str, str] | None:
    m = re.match(r"\s*(pred|target|input|context|param|let|def)\s+([A-Za-z_]\w*)", chunk)
    if m:
        return m.group(1), m.group(2)
    if re.match(r"\s*loss\b", chunk):
        return "loss", "loss"
    m = re.match(r"\s*([A-Za-z_]\w*)\s*=[^=]", chunk)  # a `let` without its keyword
    if m:
        return "let", m.group(1)
    return None


class ParseResult:
    """A module and the statements that failed to parse (their names, to stay quiet about)."""

    def __init__(self, module: S.Module, findings: list[Diagnostic], broken: dict[str, str]):
        self.module, self.findings, self.broken = module, findings, broken


def parse_source(source: Source, *, allow_quick: bool = True) -> ParseResult:
    """Parse a whole file, recovering per statement when it does not parse as a whole."""
    diags = Collector()
    text = source.text
    try:
        tree = _parse_text(text, "start")
    except (UnexpectedInput, _BracketError) as first_err:
        has_statement = any(re.match(r"\s*(%s)\b" % "|".join(STATEMENT_KEYWORDS), ln) for ln in text.split("\n"))
        if allow_quick and not has_statement and text.strip():
            return _parse_quick(source, diags)
        return _parse_per_statement(source, diags, first_err)
    statements = _ToSyntax(source, diags).transform(tree)
    return ParseResult(S.Module(source, tuple(statements)), diags.findings, {})


def _parse_quick(source: Source, diags: Collector) -> ParseResult:
    lark = _lark()
    try:
        tree = _parse_text(source.text, "quick")
    except (UnexpectedInput, _BracketError) as err:
        diags.add(_syntax_diagnostic(err, source, list(cast(BracketNewlines, lark.options.postlex).open_brackets)))
        raise LossError(diags.findings) from None
    expr = _ToSyntax(source, diags).transform(tree)
    stmt = S.LossStmt(expr, expr.span)
    return ParseResult(S.Module(source, (stmt,), quick=True), diags.findings, {})


def _parse_per_statement(source: Source, diags: Collector, first_err: Exception) -> ParseResult:
    statements: list = []
    broken: dict[str, str] = {}
    offsets = _line_offsets(source.text)
    for first_line, chunk in _statement_chunks(source.text):
        if not chunk.strip():
            continue
        piece = parse_piece(source, offsets[first_line - 1], first_line, chunk)
        statements.extend(piece.statements)
        broken.update(piece.broken)
        for d in piece.findings:
            diags.add(d)
    if not diags.has_errors:  # the chunking found nothing: report the whole-file error as it is
        lark = _lark()
        diags.add(
            _syntax_diagnostic(first_err, source, list(cast(BracketNewlines, lark.options.postlex).open_brackets))
        )
    return ParseResult(S.Module(source, tuple(statements)), diags.findings, broken)


def parse(spec, *, allow_quick: bool = True) -> S.Module:
    """Parse a spec (a path, or source text) into a `syntax.Module`. Raises `LossError`."""
    source = load_source(spec)
    result = parse_source(source, allow_quick=allow_quick)
    if any(d.severity == "error" for d in result.findings):
        raise LossError(result.findings)
    return result.module


def parse_expression(text: str, source: Source | None = None) -> S.Expr:
    """Parse a single expression (used by tests and by the quick form)."""
    src = source or Source(text)
    result = _parse_quick(src, Collector())
    return result.module.quick_expr


# ---- parsing a piece at a time (the language server re-parses only what changed) ----------------


def statement_chunks(text: str) -> list[tuple[int, str]]:
    """The text in pieces of one statement each (with the comments and blank lines after it),
    as (first line, text): what syntax errors are reported per."""
    return _statement_chunks(text)


def line_offsets(text: str) -> list[int]:
    """Where each line of `text` starts (index 0 is line 1)."""
    return _line_offsets(text)


@dataclass
class Piece:
    """What one piece of a file parses to: its statements, or the syntax error it has (and the
    name it would have defined, whose uses then stay quiet)."""

    statements: list[S.Statement]
    findings: list[Diagnostic]
    broken: dict[str, str]


def parse_piece(source: Source, offset: int, first_line: int, chunk: str) -> Piece:
    """One piece from `statement_chunks`, starting at character `offset`, with the positions it
    has in the whole file."""
    diags = Collector()
    try:
        tree = _parse_piece(source.text, offset, first_line, chunk)
    except (UnexpectedInput, _BracketError) as err:
        diags.add(_syntax_diagnostic(err, source, list(cast(BracketNewlines, _lark().options.postlex).open_brackets)))
        named = _defined_name(chunk)
        return Piece([], diags.findings, {named[1]: named[0]} if named else {})
    return Piece(_ToSyntax(source, diags).transform(tree), diags.findings, {})
