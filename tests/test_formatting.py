"""`lossdsl fmt`: one layout, the same meaning, every comment kept.

The properties (black's "stable" and "equivalent") are checked on every `.loss` file in the
repository and on specs hypothesis writes with random spacing, line breaks and comments."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lossdsl import LossError
from lossdsl.formatting import format_source
from lossdsl.parser import parse_source, tokens_with_comments
from lossdsl.source import Source, Span

from conftest import ROOT, modules_imported_by

REPO_SPECS = sorted(
    p for folder in ("examples", "lossdsl/std", "benches/specs", "tests") for p in (ROOT / folder).rglob("*.loss")
)
# The UI cases whose text is the mistake they show: the syntax errors, and a shape note written
# after an expression with spaces (formatting would close the gap the message points at).
NOT_FORMATTED = {p for p in REPO_SPECS if p.name.startswith("syntax_")} | {
    ROOT / "tests/diagnostics/shape_note_read_as_index.loss"
}
FORMATTABLE = [p for p in REPO_SPECS if not p.name.startswith("syntax_")]  # every spec that parses


def tree(text: str):
    """The syntax tree with every position left out: what the text means."""
    result = parse_source(Source(text, "spec.loss"))
    assert not [d for d in result.findings if d.severity == "error"]
    return _strip(result.module.statements)


def _strip(x):
    if isinstance(x, (Span, Source)):
        return None
    if dataclasses.is_dataclass(x):
        return (type(x).__name__,) + tuple(_strip(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, (list, tuple)):
        return tuple(_strip(i) for i in x)
    return x


def comments(text: str) -> list[tuple[str, str | None]]:
    """Each comment with the token it follows on its line (None for a comment on a line of its
    own): a comment kept where it was keeps both."""
    out: list[tuple[str, str | None]] = []
    before = None
    for t in tokens_with_comments(text):
        if t.type == "COMMENT":
            out.append((str(t).rstrip(), str(before) if before is not None and before.line == t.line else None))
        elif t.type != "_NL":
            before = t
    return out


def ir_text(text: str) -> str | None:
    """`lossdsl ir`'s text, checked and lowered, without source positions; None for a spec that
    does not check."""
    from lossdsl.pipeline import check, parse
    from lossdsl.printing import format_ir

    try:
        checked = check(parse(Source(text, "spec.loss"), allow_quick=False))
    except LossError:
        return None
    return re.sub(r"#\s*\d+:\d+", "#", format_ir(checked) + "\n" + format_ir(checked, lowered=True))


def assert_formatted_well(text: str) -> str:
    out = format_source(text)
    assert format_source(out) == out, "formatting twice changes the text"
    assert tree(out) == tree(text), "formatting changed the syntax tree"
    assert comments(out) == comments(text), "a comment was lost or moved out of order"
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n"))
    assert not any(line != line.rstrip() for line in out.split("\n")), "trailing spaces"
    assert "\n\n\n" not in out
    return out


# ---- the layout ----------------------------------------------------------------------------------


def test_declarations_align_names_and_types():
    src = "pred yhat:float[B,C]\ntarget   y : float[ B , C ]\nparam alpha:float=-0.5\nloss = mean(yhat)\n"
    assert format_source(src) == (
        "pred   yhat:  float[B, C]\n"
        "target y:     float[B, C]\n"
        "param  alpha: float = -0.5\n"
        "loss = mean(yhat)\n"
    )


def test_lets_align_their_equals_and_comments_line_up():
    src = "let a=sum( yhat , axis = C )# [B]\nlet long_name = a*2   # twice\nloss=a\n"
    assert format_source(src) == (
        "let a         = sum(yhat, axis=C)  # [B]\n"
        "let long_name = a * 2              # twice\n"
        "loss = a\n"
    )


def test_a_blank_line_or_a_comment_line_ends_an_aligned_run():
    src = "let a = 1\n# why\nlet bbb = 2\n\nlet cc = 3\nloss = a\n"
    assert format_source(src) == "let a = 1\n# why\nlet bbb = 2\n\nlet cc = 3\nloss = a\n"


@pytest.mark.parametrize(
    ("written", "formatted"),
    [
        ("x*-y^-2", "x * -y^-2"),
        ("-x[:,1:]-x[...,:-1]", "-x[:, 1:] - x[..., :-1]"),
        ("x[None,:]@t.field", "x[None, :] @ t.field"),
        ("not a>b and(c or  d)", "not a > b and (c or d)"),
        ("f( x ,axis = (B,C) , keepdims=true )", "f(x, axis=(B, C), keepdims=true)"),
        ("(yhat-y)^2", "(yhat - y)^2"),
        ("float(a<=b)/ int(c)", "float(a <= b) / int(c)"),
        ("-(a) - -b", "-(a) - -b"),
    ],
)
def test_spacing_around_operators(written, formatted):
    assert format_source(f"loss = {written}\n") == f"loss = {formatted}\n"


def test_records_and_list_defaults_are_spaced_like_declarations():
    src = "input x:{feature:float[B],w : float[B]}\nparam w: float[G]=[1.0,-0.5]\nloss = 0\n"
    assert format_source(src) == (
        "input x: {feature: float[B], w: float[B]}\nparam w: float[G] = [1.0, -0.5]\nloss = 0\n"
    )


def test_continued_lines_indent_under_their_bracket():
    src = "let e = f(a,\n  b)   # c1\nlet g = where(\n a,\n      b,\n)\nloss = a + \\\n 1\n"
    assert format_source(src) == (
        "let e = f(a,\n          b)  # c1\nlet g = where(\n    a,\n    b,\n)\nloss = a + \\\n    1\n"
    )


def test_comments_inside_a_statement_stay_on_their_lines():
    src = "loss = mean(a  # first\n   # alone\n  + b)\n"
    assert format_source(src) == "loss = mean(a  # first\n            # alone\n            + b)\n"


def test_blank_lines_collapse_and_the_file_ends_with_one_newline():
    src = "\n\n# head   \n\n\n\npred p: float[B]\n\n\nloss = mean(p)\n\n\n"
    assert format_source(src) == "# head\n\npred p: float[B]\n\nloss = mean(p)\n"


def test_shape_notes_in_comments_are_kept_verbatim():
    src = "let d = p[:, 1:] - p[:, :-1]   #   [B, H - 1]\nloss = mean(d)\n"
    assert format_source(src) == "let d = p[:, 1:] - p[:, :-1]  #   [B, H - 1]\nloss = mean(d)\n"


def test_a_spec_with_a_type_error_is_still_formatted():
    assert format_source("pred p: float[B]\nloss = p+unknown\n") == "pred p: float[B]\nloss = p + unknown\n"


def test_the_quick_form_and_an_empty_file():
    assert format_source("mean( (yhat-y)^2 )") == "mean((yhat - y)^2)\n"
    assert format_source("") == ""
    assert format_source("# only\n") == "# only\n"


def test_a_syntax_error_raises_the_parsers_finding():
    with pytest.raises(LossError) as info:
        format_source("pred p: float[B]\nloss = mean((p) ** 2)\n", "bad.loss")
    assert info.value.first.code == "E104"
    assert info.value.first.span.path == "bad.loss"


# ---- every .loss file of the repository --------------------------------------------------------


@pytest.mark.parametrize("path", FORMATTABLE, ids=[p.relative_to(ROOT).as_posix() for p in FORMATTABLE])
def test_repository_spec_formats_stably_with_the_same_meaning(path):
    text = path.read_text()
    out = assert_formatted_well(text)
    assert ir_text(out) == ir_text(text)


def test_repository_specs_are_in_the_canonical_layout():
    """What `make lint` runs as `lossdsl fmt --check`: the repository's own specs are formatted."""
    unformatted = [
        p.relative_to(ROOT).as_posix()
        for p in REPO_SPECS
        if p not in NOT_FORMATTED and format_source(p.read_text()) != p.read_text()
    ]
    assert not unformatted, f"run `lossdsl fmt` on {unformatted}"


def test_the_makefile_checks_the_layout():
    makefile = (ROOT / "Makefile").read_text()
    assert "fmt --check" in makefile


# ---- generated specs ------------------------------------------------------------------------------

NAMES = st.sampled_from(["a", "b", "yhat", "y", "w_1", "logits", "B", "C"])
NUMBERS = st.sampled_from(["0", "1", "2", "0.5", "1e-3", ".25", "3.", "100"])
FUNCS = st.sampled_from(["mean", "sum", "log", "where", "clip", "float", "int", "f"])
COMMENT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=12).map(lambda s: "#" + s)


def _expr(depth: int):
    """An expression as a list of tokens; compound operands are parenthesised."""
    atom = st.one_of(NAMES.map(lambda n: [n]), NUMBERS.map(lambda n: [n]), st.sampled_from([["true"], ["false"]]))
    if depth == 0:
        return atom
    sub = _expr(depth - 1)

    def paren(toks):
        return toks if len(toks) == 1 else ["(", *toks, ")"]

    binop = st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "@", "^", "<", "<=", "==", "!=", "and", "or"]), sub).map(
        lambda t: [*paren(t[0]), t[1], *paren(t[2])]
    )
    unary = st.tuples(st.sampled_from(["-", "not"]), sub).map(lambda t: [t[0], *paren(t[1])])
    call = st.tuples(FUNCS, st.lists(sub, min_size=0, max_size=3), st.booleans()).map(
        lambda t: [t[0], "(", *_commas(t[1] + ([["axis", "=", "C"]] if t[2] else [])), ")"]
    )
    index = st.tuples(NAMES, st.lists(st.sampled_from([[":"], ["1", ":"], [":", "-", "1"], ["None"], ["0"], ["..."], ["::", "2"]]), min_size=1, max_size=3)).map(
        lambda t: [t[0], "[", *_commas(t[1]), "]"]
    )
    field = NAMES.map(lambda n: [n, ".", "feature"])
    return st.one_of(atom, binop, unary, call, index, field)


def _commas(parts: list[list[str]]) -> list[str]:
    out: list[str] = []
    for i, p in enumerate(parts):
        if i:
            out.append(",")
        out += p
    return out


TYPES = st.one_of(
    st.tuples(st.sampled_from(["float", "int", "bool"]), st.lists(st.sampled_from(["B", "C", "2"]), max_size=3)).map(
        lambda t: [t[0]] + (["[", *_commas([[d] for d in t[1]]), "]"] if t[1] else [])
    ),
    st.just(["{", "f", ":", "float", "[", "B", "]", ",", "g", ":", "int", "}"]),
)
DEFAULTS = st.one_of(st.just([]), NUMBERS.map(lambda n: ["=", n]), NUMBERS.map(lambda n: ["=", "-", n]),
                     st.just(["=", "[", "1.0", ",", "-", "2", "]"]))

STATEMENTS = st.one_of(
    st.tuples(st.sampled_from(["pred", "target", "input", "context"]), NAMES, TYPES).map(lambda t: [t[0], t[1], ":", *t[2]]),
    st.tuples(NAMES, TYPES, DEFAULTS).map(lambda t: ["param", t[0], ":", *t[1], *t[2]]),
    st.tuples(NAMES, _expr(2)).map(lambda t: ["let", t[0], "=", *t[1]]),
    st.tuples(st.lists(NAMES, min_size=1, max_size=3), _expr(2)).map(lambda t: ["def", "f", "(", *_commas([[n] for n in t[0]]), ")", "=", *t[1]]),
    _expr(3).map(lambda e: ["loss", "=", *e]),
)

_WORD = re.compile(r"[A-Za-z0-9_.]")


@st.composite
def written_specs(draw) -> str:
    """A spec as someone might type it: random spaces, blank lines, comments, line breaks inside
    brackets and backslash continuations (never splitting a token or joining two words)."""
    lines: list[str] = []
    for stmt in draw(st.lists(STATEMENTS, min_size=1, max_size=6)):
        if draw(st.booleans()):
            lines.append(draw(COMMENT))
        if draw(st.integers(0, 3)) == 0:
            lines.append("")
        text = draw(st.sampled_from(["", " ", "\t"]))
        depth = 0
        for i, tok in enumerate(stmt):
            if i:
                prev = stmt[i - 1]
                joined_words = _WORD.search(prev[-1]) and _WORD.match(tok[0])
                seps = [" ", "  "] if joined_words else ["", " ", "   "]
                if depth > 0:
                    seps += ["\n", "\n   ", f" {draw(COMMENT)}\n  "]
                elif prev not in ("pred", "target", "input", "context", "param", "let", "def", "loss"):
                    seps += [" \\\n  "]
                text += draw(st.sampled_from(seps))
            text += tok
            depth += tok in ("(", "[", "{")
            depth -= tok in (")", "]", "}")
        if draw(st.booleans()):
            text += draw(st.sampled_from(["", "  "])) + draw(COMMENT)
        lines.append(text)
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written_specs())
def test_generated_specs_format_stably_with_the_same_meaning_and_comments(text):
    assert_formatted_well(text)


def _respaced(text: str, draw) -> str:
    """`text` with every run of spaces between two tokens of a line changed at random, and more
    blank lines where there is one (a blank line ends an aligned run, so none is added elsewhere):
    what the formatter must undo exactly."""
    out: list[str] = []
    prev_line, prev_tok = 1, None
    for tok in tokens_with_comments(text):
        if tok.type == "_NL":
            blank = out[-1:] == ["\n"]
            out.append("\n" + ("\n" * draw(st.integers(0, 2)) if blank else ""))
            prev_tok = None
            continue
        line = int(tok.line or 1)
        if line != prev_line and prev_tok is not None:
            out.append("\n")  # a line break inside brackets
            prev_tok = None
        prev_line = line
        if prev_tok is not None:
            joined_words = _WORD.search(str(prev_tok)[-1]) and _WORD.match(str(tok)[0])
            out.append(draw(st.sampled_from([" ", "  "] if joined_words or tok.type == "COMMENT" else ["", " ", "  "])))
        else:
            out.append(draw(st.sampled_from(["", " ", "\t"])))
        out.append(str(tok))
        prev_tok = tok
        if str(tok).startswith("\\"):
            prev_tok, prev_line = None, line + 1
    return "".join(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FORMATTABLE), st.data())
def test_respacing_a_repository_spec_formats_back_to_the_same_text(path, data):
    text = path.read_text()
    respaced = _respaced(text, data.draw)
    assert tree(respaced) == tree(text)
    assert format_source(respaced) == format_source(text)


# ---- the command ---------------------------------------------------------------------------------


def cli(*args: str, cwd=ROOT, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lossdsl", *args], cwd=cwd, capture_output=True, text=True,
                          input=stdin if stdin is not None else "", timeout=120)


UGLY = "pred yhat:float[B]\ntarget y:float[B]\nloss=mean((yhat-y)^2)\n"
PRETTY = "pred   yhat: float[B]\ntarget y:    float[B]\nloss = mean((yhat - y)^2)\n"


def test_fmt_rewrites_files_in_place(tmp_path):
    ugly, pretty = tmp_path / "u.loss", tmp_path / "p.loss"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    r = cli("fmt", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert ugly.read_text() == PRETTY and pretty.read_text() == PRETTY
    assert r.stdout == f"reformatted {ugly}\n"


def test_fmt_check_lists_what_would_change_and_changes_nothing(tmp_path):
    ugly, pretty = tmp_path / "u.loss", tmp_path / "p.loss"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    r = cli("fmt", "--check", str(ugly), str(pretty))
    assert r.returncode == 1
    assert r.stdout == f"would reformat {ugly}\n"
    assert ugly.read_text() == UGLY
    assert cli("fmt", "--check", str(pretty)).returncode == 0


def test_fmt_dash_reads_stdin_and_writes_stdout():
    r = cli("fmt", "-", stdin=UGLY)
    assert r.returncode == 0 and r.stdout == PRETTY


def test_fmt_reports_a_syntax_error_and_leaves_the_file_unchanged(tmp_path):
    bad, ugly = tmp_path / "bad.loss", tmp_path / "u.loss"
    bad.write_text("pred p : float[B]\nloss = mean((p) ** 2)\n")
    ugly.write_text(UGLY)
    r = cli("fmt", str(bad), str(ugly))
    assert r.returncode == 1
    assert f"{bad}:2:17: error: `**` is not an operator  [E104]" in r.stderr
    assert bad.read_text() == "pred p : float[B]\nloss = mean((p) ** 2)\n"
    assert ugly.read_text() == PRETTY  # the other files are still formatted
    r = cli("fmt", "-", stdin="loss = (\n")
    assert r.returncode == 1 and r.stdout == "" and "[E102]" in r.stderr


def test_fmt_usage_errors_exit_2(tmp_path):
    assert cli("fmt", str(tmp_path / "missing.loss")).returncode == 2
    assert cli("fmt", "-", str(tmp_path)).returncode == 2


def test_fmt_imports_no_framework_and_no_numpy():
    code = "from lossdsl.cli import main; assert main(['fmt', '--check', 'examples']) == 0"
    assert modules_imported_by(code) == []


def test_the_before_and_after_of_docs_tooling_agree_with_the_formatter():
    page = (ROOT / "docs" / "tooling.md").read_text()
    blocks = re.findall(r"```loss\n(.*?)```", page, re.S)
    before, after = (b for b in blocks if b.startswith(("# before", "# after")))
    assert format_source(before).replace("# before", "# after") == after


@st.composite
def damaged_specs(draw) -> str:
    """A written spec with a few characters deleted, inserted or swapped: most no longer parse."""
    text = draw(written_specs())
    for _ in range(draw(st.integers(1, 3))):
        if not text:
            break
        at = draw(st.integers(0, len(text) - 1))
        how = draw(st.sampled_from(["delete", "insert", "swap"]))
        if how == "delete":
            text = text[:at] + text[at + 1 :]
        elif how == "insert":
            text = text[:at] + draw(st.sampled_from(list("()[]{},:=+-*^.#\\\n $&x1"))) + text[at:]
        elif at + 1 < len(text):
            text = text[:at] + text[at + 1] + text[at] + text[at + 2 :]
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_specs())
def test_the_formatters_fast_syntax_check_agrees_with_the_parser(text):
    from lossdsl.parser import tokens_if_valid

    try:
        findings = parse_source(Source(text)).findings
    except LossError as err:  # the quick form raises at once
        findings = err.findings
    # E108 and E203 are found while building the tree; the formatter need not refuse them.
    grammar_errors = [d for d in findings if d.severity == "error" and d.code not in ("E108", "E203")]
    assert (tokens_if_valid(text) is None) == bool(grammar_errors), [d.render() for d in grammar_errors]


def test_fmt_diff_prints_the_change_and_changes_nothing(tmp_path):
    ugly = tmp_path / "u.loss"
    ugly.write_text(UGLY)
    r = cli("fmt", "--diff", str(ugly))
    assert r.returncode == 1 and ugly.read_text() == UGLY
    assert f"--- {ugly}\n+++ {ugly} (formatted)\n" in r.stdout
    assert "\n-loss=mean((yhat-y)^2)\n" in r.stdout and "\n+loss = mean((yhat - y)^2)\n" in r.stdout
    assert cli("fmt", "--diff", "-", stdin=PRETTY).returncode == 0
    r = cli("fmt", "--check", "-", stdin=UGLY)
    assert r.returncode == 1 and r.stdout == "would reformat <stdin>\n"
