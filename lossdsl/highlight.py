"""A Pygments lexer for `.loss` files, registered under the `pygments.lexers` entry point so that
`pygments.lexers.get_lexer_by_name("lossdsl")`, `pygmentize -l lossdsl` and Markdown and Sphinx
code blocks marked `loss` find it once lossdsl is installed.

Nothing here lists a name by hand: the keywords are the grammar's own (grammars/loss.lark) and
the built-ins are the function table's (`lossdsl.functions`), so the highlighting follows both.

    declaration keywords   Keyword.Declaration   pred target input context param let def loss
    dtypes                 Keyword.Type          float int bool (in a type)
    true false None        Keyword.Constant
    and or not             Operator.Word
    built-in calls         Name.Builtin          log_softmax(...), float(...)
    declared names         Name.Variable         the name after pred/target/.../let
    def names              Name.Function
    dimensions in shapes   Name.Constant         B and C in float[B, C]
    record fields, keyword arguments   Name.Attribute
    in, and a named value domain       Keyword, Name.Builtin.Pseudo   in simplex
    use, and what it names   Keyword.Declaration, String / Name.Namespace   use "helpers.loss", use std.huber
"""

from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Error,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

from .domains import NAMED
from .functions import USER_FUNCTIONS
from .parser import STATEMENT_KEYWORDS, grammar_keywords

__all__ = ["LossLexer"]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DTYPES = ("float", "int", "bool")
_CONSTANTS = ("true", "false", "None")
_WORD_OPERATORS = ("and", "or", "not")
_DECLARATIONS = tuple(k for k in STATEMENT_KEYWORDS if k not in ("let", "def", "loss"))
_DECIMAL = r"(\d+\.\d*|\.\d+)([eE][+-]?\d+)?|\d+[eE][+-]?\d+"


def _other_keywords() -> tuple[str, ...]:
    """Keywords of the grammar that no rule below gives a class of its own: plain Keyword."""
    placed = set(STATEMENT_KEYWORDS) | set(_DTYPES) | set(_CONSTANTS) | set(_WORD_OPERATORS)
    return tuple(sorted(grammar_keywords() - placed))


def _tokens() -> dict:
    builtins = tuple(sorted(USER_FUNCTIONS, key=len, reverse=True))
    common = [
        (r"#.*?$", Comment.Single),
        (r"[ \t\f]+", Whitespace),
        (r"\\[ \t\f]*\r?\n", Whitespace),  # a backslash continues the line
        (words(builtins, prefix=r"\b", suffix=r"(?=\s*\()"), Name.Builtin),
        (r"(" + "|".join(_DTYPES) + r")(\s*)(\[)", bygroups(Keyword.Type, Whitespace, Punctuation), "shape"),
        (words(_DTYPES, prefix=r"\b", suffix=r"\b"), Keyword.Type),
        (words(_CONSTANTS, prefix=r"\b", suffix=r"\b"), Keyword.Constant),
        (words(_WORD_OPERATORS, prefix=r"\b", suffix=r"\b"), Operator.Word),
        # a named value domain after a type (docs/language.md §2): `in simplex`
        (rf"\b(in)(\s+)({'|'.join(NAMED)})\b", bygroups(Keyword, Whitespace, Name.Builtin.Pseudo)),
    ]
    others = _other_keywords()
    if others:
        common.append((words(others, prefix=r"\b", suffix=r"\b"), Keyword))
    common += [
        (rf"({_IDENT})(\s*)(:)(?!\s*[\]\d,-])", bygroups(Name.Attribute, Whitespace, Punctuation)),  # a record field
        (rf"({_IDENT})(\s*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),  # a keyword argument
        (_IDENT, Name),
        (_DECIMAL, Number.Float),
        (r"\d+", Number.Integer),
        (r"\.\.\.", Punctuation),
        (r"<=|>=|==|!=|[-+*/@^<>=]", Operator),
        (r"[()\[\]{},:.]", Punctuation),
    ]
    return {
        "root": [
            (r"\r?\n", Whitespace),
            (r'^(\s*)(use)(\s+)("[^"\n]*")', bygroups(Whitespace, Keyword.Declaration, Whitespace, String)),
            (
                rf"^(\s*)(use)(\s+)({_IDENT})(\.)({_IDENT})",
                bygroups(Whitespace, Keyword.Declaration, Whitespace, Name.Namespace, Punctuation, Name.Namespace),
            ),
            (
                rf"^(\s*)({'|'.join(_DECLARATIONS)}|let)(\s+)({_IDENT})",
                bygroups(Whitespace, Keyword.Declaration, Whitespace, Name.Variable),
            ),
            (rf"^(\s*)(def)(\s+)({_IDENT})", bygroups(Whitespace, Keyword.Declaration, Whitespace, Name.Function)),
            (r"^(\s*)(loss)\b", bygroups(Whitespace, Keyword.Declaration)),
            *common,
            (r".", Error),
        ],
        # Inside the brackets of a type: dimension symbols and literal sizes.
        "shape": [
            (r"\s+", Whitespace),
            (_IDENT, Name.Constant),
            (r"\d+", Number.Integer),
            (r",", Punctuation),
            (r"\]", Punctuation, "#pop"),
            (r".", Error, "#pop"),
        ],
    }


class LossLexer(RegexLexer):
    """Highlights lossdsl's `.loss` specs."""

    name = "lossdsl"
    aliases = ["lossdsl", "loss"]
    filenames = ["*.loss"]
    mimetypes = ["text/x-lossdsl"]
    flags = re.MULTILINE
    tokens = _tokens()
