"""The Pygments lexer: found by name and file name through its entry point, no Error token on
any spec of the repository, and its word lists the grammar's and the function table's."""

from __future__ import annotations

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Operator, Token

from lossdsl.functions import USER_FUNCTIONS
from lossdsl.parser import STATEMENT_KEYWORDS, grammar_keywords, parse_source, tokens_with_comments
from lossdsl.source import Source

from conftest import ROOT

SPECS = sorted(p for folder in ("examples", "lossdsl/std", "benches/specs", "tests") for p in (ROOT / folder).rglob("*.loss"))


def lexer():
    return get_lexer_by_name("lossdsl")


def tokens(text: str) -> list[tuple]:
    return [(kind, value) for kind, value in lexer().get_tokens(text) if value.strip()]


def kind_of(text: str, word: str):
    return next(kind for kind, value in tokens(text) if value == word)


def test_the_entry_point_finds_the_lexer_by_name_and_by_file_name():
    from lossdsl.highlight import LossLexer

    assert isinstance(get_lexer_by_name("lossdsl"), LossLexer)
    assert isinstance(get_lexer_by_name("loss"), LossLexer)
    assert isinstance(get_lexer_for_filename("weighted_mse.loss"), LossLexer)


@pytest.mark.parametrize("path", SPECS, ids=[p.relative_to(ROOT).as_posix() for p in SPECS])
def test_no_spec_of_the_repository_has_an_error_token(path):
    errors = [value for kind, value in tokens(path.read_text()) if kind in Error]
    assert errors == []


@pytest.mark.parametrize(
    "path", [p for p in SPECS if not p.name.startswith("syntax_")], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_the_lexer_splits_a_spec_where_the_parser_does(path):
    text = path.read_text()
    assert not [d for d in parse_source(Source(text)).findings if d.severity == "error"]
    ours = [value.strip() for _, value in tokens(text)]
    parsers = [str(t).strip() for t in tokens_with_comments(text) if t.type != "_NL" and not str(t).startswith("\\")]
    assert ours == parsers


def test_something_outside_the_language_is_an_error_token():
    assert kind_of("loss = a $ b\n", "$") in Error


@pytest.mark.parametrize("name", sorted(USER_FUNCTIONS))
def test_every_function_of_the_table_is_a_builtin_when_called(name):
    assert kind_of(f"loss = {name}(x)\n", name) in Name.Builtin


def test_a_name_that_is_not_a_function_is_not_a_builtin():
    assert kind_of("loss = mean(means)\n", "means") is Name
    assert kind_of("let sum_sq = 1\n", "sum_sq") is Name.Variable


def test_every_grammar_keyword_is_highlighted_as_a_keyword():
    for word in sorted(grammar_keywords()):
        text = f"{word} x: float\n" if word in STATEMENT_KEYWORDS else f"loss = {word}\n"
        kind = kind_of(text, word)
        assert kind in Keyword or kind in Operator.Word, (word, kind)
    for word in STATEMENT_KEYWORDS:
        assert kind_of(f"{word} x: float\n" if word != "loss" else "loss = 1\n", word) is Keyword.Declaration


def test_shapes_dimensions_declared_names_and_comments():
    text = "pred yhat: float[B, 3]  # [B, 3]\ninput x: {feature: int[N]}\ndef f(a) = a\nloss = sum(f(yhat), axis=B)\n"
    got = tokens(text)
    assert (Keyword.Type, "float") in got and (Keyword.Type, "int") in got
    assert (Name.Constant, "B") in got and (Name.Constant, "N") in got
    assert (Name.Variable, "yhat") in got and (Name.Variable, "x") in got
    assert (Name.Function, "f") in got
    assert (Name.Attribute, "feature") in got and (Name.Attribute, "axis") in got
    assert (Comment.Single, "# [B, 3]") in got
    assert kind_of("loss = float(x > 0)\n", "float") in Name.Builtin


def test_the_lexer_keeps_every_character():
    text = (ROOT / "examples" / "proximity_penalty.loss").read_text()
    assert "".join(value for _, value in lexer().get_tokens(text)) == text
    assert all(kind in Token for kind, _ in lexer().get_tokens(text))
