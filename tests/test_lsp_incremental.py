"""The language server re-parses only the statements an edit changed
(lossdsl/lsp/incremental.py); whatever the edit, the result is the one a parse of the whole
file gives, statement for statement and finding for finding."""

from __future__ import annotations

import pytest
from conftest import ROOT

import lossdsl.lsp.incremental as incremental
from lossdsl.lsp.incremental import IncrementalParser
from lossdsl.parser import parse_source
from lossdsl.source import Source

FILES = sorted((ROOT / "examples").glob("*.loss")) + sorted((ROOT / "lossdsl" / "std").glob("*.loss"))


def whole(text: str):
    return parse_source(Source(text, "spec.loss"), allow_quick=False)


def same_as_whole(parser: IncrementalParser, text: str) -> None:
    got = parser.parse(Source(text, "spec.loss"))
    want = whole(text)
    assert got.module.statements == want.module.statements
    assert [(d.code, d.message, d.span) for d in got.findings] == [(d.code, d.message, d.span) for d in want.findings]
    assert got.broken == want.broken
    assert all(d.span is None or None not in (d.span.end_line, d.span.end_col) for d in got.findings)


def edits(text: str):
    """The text with each line edited in turn: a comment added, a syntax error, a line inserted."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        yield "\n".join(lines[:i] + [line + "  # edited"] + lines[i + 1 :])
        yield "\n".join(lines[:i] + [line + " +"] + lines[i + 1 :])
        yield "\n".join(lines[:i] + ["", line] + lines[i + 1 :])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_edit_parses_as_the_whole_file_does(path):
    text = path.read_text()
    parser = IncrementalParser()
    same_as_whole(parser, text)
    for edited in edits(text):
        same_as_whole(parser, edited)  # the edit
        same_as_whole(parser, text)  # and back


def test_an_edit_inside_one_statement_parses_only_that_statement(monkeypatch):
    text = (ROOT / "examples" / "group_weighted_cce.loss").read_text()
    parser = IncrementalParser()
    parser.parse(Source(text, "spec.loss"))
    pieces = []
    real = incremental.parse_piece
    monkeypatch.setattr(incremental, "parse_piece", lambda *a: pieces.append(a[3]) or real(*a))
    monkeypatch.setattr(incremental, "parse_source", lambda *a, **k: pytest.fail("parsed the whole file"))
    last = text.rstrip("\n").split("\n")[-1]
    assert last.startswith("loss")
    edited = text.replace(last, last + " * 1.0")
    result = parser.parse(Source(edited, "spec.loss"))
    assert len(pieces) == 1 and pieces[0].startswith(last + " * 1.0")
    assert result.module.statements == whole(edited).module.statements


@pytest.mark.parametrize(
    "text",
    [
        "pred yhat: float[B]\nlet a = yhat \\\n  + 1\nloss = mean(a)\n",  # a line continued with a backslash
        "pred yhat: float[B]\nlet a = (yhat +\nlet b = yhat ** 2\nloss = mean(a + b)\n",  # two syntax errors
        "pred yhat: float[B]\nlet a = mean(\n  yhat,\n  axis=B)\n# a comment\n\nloss = a\n",
        "# only a comment\n",
        "",
    ],
)
def test_edits_of_awkward_texts_parse_as_the_whole_file_does(text):
    parser = IncrementalParser()
    same_as_whole(parser, text)
    for edited in edits(text):
        same_as_whole(parser, edited)
        same_as_whole(parser, text)
