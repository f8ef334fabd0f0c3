"""After an edit the language server replays what the last check did for each `let` the edit
cannot have changed (lossdsl/checker/reuse.py); whatever the edit, the result is the one a
fresh check of the whole file gives: the type of every expression, every finding (those of
the analyses after type checking included) and the checked IR."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from lossdsl import syntax as S
from lossdsl.checker.reuse import LetMemo
from lossdsl.ir import Arg, topological
from lossdsl.lsp.document import Document, finish, type_check
from lossdsl.lsp.incremental import IncrementalParser
from lossdsl.printing import format_ir

FILES = (
    sorted((ROOT / "examples").glob("*.loss"))
    + sorted((ROOT / "lossdsl" / "std").glob("*.loss"))
    + sorted((ROOT / "tests" / "diagnostics").glob("*.loss"))
)


def expressions(module: S.Module):
    for stmt in module.statements:
        roots = [getattr(stmt, "value", None), getattr(stmt, "body", None), getattr(stmt, "default", None)]
        for root in roots:
            if isinstance(root, S.Expr):
                yield from S.walk(root)


def outcome(text: str, parser=None, memo=None):
    """What the editor features and the published findings read off one check of `text`."""
    doc, checked = type_check(text, "spec.loss", parser, memo)
    ir = None
    if checked is not None:
        ir = (format_ir(checked), structure(checked))
        doc = finish(doc, checked)
    return {
        "types": types(doc),
        "findings": [
            (d.code, d.severity, d.message, d.span, d.notes, d.help, d.span and d.span.text) for d in doc.findings
        ],
        "ir": ir,
    }


def structure(checked):
    """The checked module but its nodes: its lets, each declared tensor's node (one per tensor,
    the one the IR reads), the sizes fixed and the sizes needed."""
    nodes = {id(n): i for i, n in enumerate(topological(checked.loss))}
    for v in checked.lets.values():
        for n in topological(v):
            nodes.setdefault(id(n), len(nodes))
    return (
        [(name, nodes[id(v)], str(v.type)) for name, v in checked.lets.items()],
        [(key, nodes.get(id(a)), str(a.type), a.span) for key, a in checked.args.items()],
        sorted((n.name, n.path, nodes[id(n)]) for n in map(_by_id(checked), nodes) if isinstance(n, Arg)),
        list(checked.bindings.items()),
        [(c.dim, c.minimum, c.span, c.what) for c in checked.constraints],
    )


def _by_id(checked):
    everything = {id(n): n for v in [checked.loss, *checked.lets.values()] for n in topological(v)}
    return everything.__getitem__


def types(doc: Document):
    if doc.module is None:
        return None
    return {
        (e.span.line, e.span.col, e.span.end_line, e.span.end_col, type(e).__name__): tuple(doc.types_of(e))
        for e in expressions(doc.module)
    }


def edits(text: str):
    """The text with a few statements edited (the first, the last, some between): a number
    changed, spaces added, a syntax error, a name misspelt; each followed by the text again."""
    lines = text.split("\n")
    code = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
    picked = sorted({code[0], code[-1], *code[1 : -1 : max(1, len(code) // 4)]}) if code else []
    for i in picked:
        line = lines[i]
        variants = [
            re.sub(r"\d", lambda m: str((int(m[0]) + 1) % 10), line, count=1),
            line.replace("(", "( ", 1).replace("=", " = ", 1),
            line + " +",
            re.sub(r"\b([a-z_]\w*)\b", r"\1q", line.split("=", 1)[-1], count=1) if "=" in line else line + "q",
        ]
        for v in variants:
            if v != line:
                yield "\n".join(lines[:i] + [v] + lines[i + 1 :])
                yield text


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_check_after_any_edit_is_the_check_of_the_whole_file(path):
    text = path.read_text()
    parser, memo = IncrementalParser(), LetMemo()
    assert outcome(text, parser, memo) == outcome(text)
    for edited in edits(text):
        assert outcome(edited, parser, memo) == outcome(edited), edited


def generated(blocks: int) -> str:
    head = [
        "pred   yhat:   float[B]",
        "pred   logits: float[B, C]",
        "target y:      float[B]",
        "target labels: int[B]",
        "input  x:      {feature: float[B], meta: {w: float[B]}}",
        "param  alpha:  float = 0.5",
        "def sq(a) = a ^ 2",
        "def huber(r, d) = where(abs(r) < d, 0.5 * r ^ 2, d * (abs(r) - 0.5 * d))",
    ]
    body = []
    for k in range(blocks):
        body += [
            f"let r{k} = (yhat - y) * x.feature",
            f"let h{k} = huber(r{k}, {1 + k % 3}.0)",
            f"let ce{k} = -pick(log_softmax(logits, axis=C), labels)",
            f"let t{k} = mean(clip(x.meta.w, 0.0, 1.0) * h{k} + alpha * ce{k} + sq(r{k}))",
        ]
    return "\n".join(head + body + ["loss = " + " + ".join(f"t{k}" for k in range(blocks))]) + "\n"


def each_edit_and_back_checks_as_a_whole(text: str, *edits: str) -> None:
    """After a first check of `text`, each edit and then `text` again give, replayed, what a
    fresh check of the whole file gives."""
    parser, memo = IncrementalParser(), LetMemo()
    outcome(text, parser, memo)
    for edited in edits:
        assert outcome(edited, parser, memo) == outcome(edited)
        assert outcome(text, parser, memo) == outcome(text)


@pytest.fixture
def rechecked(monkeypatch):
    """Called once a first check is done: the names of the `let`s checked again from then on
    (the ones not replayed), in order."""

    def start() -> list[str]:
        checked: list[str] = []
        real = LetMemo.record
        monkeypatch.setattr(
            LetMemo, "record", lambda self, name, ex, check: checked.append(name) or real(self, name, ex, check)
        )
        return checked

    return start


def test_a_param_default_edited_replays_every_let_and_checks_the_same(rechecked):
    text = generated(6)
    parser, memo = IncrementalParser(), LetMemo()
    outcome(text, parser, memo)
    checked = rechecked()
    edited = text.replace("alpha:  float = 0.5", "alpha:  float = 0.75")
    assert outcome(edited, parser, memo) == outcome(edited)
    assert checked == []
    # a `let` edited: it and what reads it are checked again, the rest replayed
    edited2 = edited.replace("let h3 = huber(r3, 1.0)", "let h3 = huber(r3, 2.0)")
    assert outcome(edited2, parser, memo) == outcome(edited2)
    assert checked == ["h3", "t3"]


def test_a_syntax_error_typed_and_mended_checks_again_only_what_reads_the_statement(rechecked):
    text = generated(6)
    parser, memo = IncrementalParser(), LetMemo()
    outcome(text, parser, memo)
    checked = rechecked()
    broken = text.replace("let ce2 = -pick(", "let ce2 = -pick(+")
    assert outcome(broken, parser, memo) == outcome(broken)
    assert checked == ["t2"]  # `ce2` failed to parse: what reads it is checked again
    checked.clear()
    assert outcome(text, parser, memo) == outcome(text)
    assert checked == ["ce2", "t2"]  # parsed again, so checked again; the rest replayed


def test_a_def_edited_checks_again_the_lets_that_call_it(rechecked):
    text = generated(4)
    parser, memo = IncrementalParser(), LetMemo()
    outcome(text, parser, memo)
    checked = rechecked()
    for body in ("a > 2", "a ^ 2 + undefined", "a ^ 2"):
        edited = text.replace("def sq(a) = a ^ 2", f"def sq(a) = {body}")
        assert outcome(edited, parser, memo) == outcome(edited)
        assert checked == [f"t{k}" for k in range(4)]
        checked.clear()


def test_a_changed_declared_type_checks_everything_again():
    text = generated(3)
    each_edit_and_back_checks_as_a_whole(
        text,
        text.replace("target y:      float[B]", "target y:      float[C]"),
        text.replace("pred   yhat:   float[B]", "pred   yhat:   int[B]  "),
        text.replace("let r1 =", "let s1 ="),
    )


def test_a_size_fixed_otherwise_checks_again_the_lets_after_it(rechecked):
    text = "\n".join(
        [
            "pred  yhat: float[B]",
            "input w: float[N]",
            "input z: float[3]",
            "input u: float[4]",
            "let a = w + z",
            "let b = w + u",
            "loss = mean(yhat) + sum(a) + sum(b)",
        ]
    )
    parser, memo = IncrementalParser(), LetMemo()
    first = outcome(text, parser, memo)
    assert [f[0] for f in first["findings"]] == ["E402"]  # N is 3 from `w + z`, and 4 here
    checked = rechecked()
    edited = text.replace("let a = w + z", "let a = w + w")
    assert outcome(edited, parser, memo) == outcome(edited)
    assert outcome(edited, parser, memo)["findings"] == []
    assert checked == ["a", "b"]


def test_a_name_defined_elsewhere_changes_the_hint_of_an_error_it_does_not_reach():
    text = "\n".join(["pred yhat: float[B]", "let a = yhatt + 1", "let zz = yhat", "loss = mean(yhat) + mean(zz)"])
    parser, memo = IncrementalParser(), LetMemo()
    assert "did you mean `yhat`?" in outcome(text, parser, memo)["findings"][0]
    edited = text.replace("zz", "yhattt")
    got = outcome(edited, parser, memo)
    assert got == outcome(edited)
    assert "did you mean `yhattt`?" in got["findings"][0]


def test_a_let_read_before_its_line_is_checked_again_with_the_let_that_reads_it():
    text = "\n".join(
        [
            "pred yhat: float[B]",
            "target y: float[B]",
            "let a = b * 2.0",
            "let b = yhat - y",
            "let c = a + b",
            "loss = mean(c)",
        ]
    )
    each_edit_and_back_checks_as_a_whole(
        text,
        text.replace("target y: float[B]", "target y: float[C]"),
        text.replace("let b = yhat - y", "let b = yhat > y"),
        text.replace("let a = b * 2.0", "let a = b * 3.0"),
    )
