"""The grammar: statements, types, precedence, line continuation, and syntax errors."""

from __future__ import annotations

import pytest

import lossdsl
from lossdsl import LossError, syntax as S
from lossdsl.parser import parse_expression

from conftest import spec


def expr(text: str) -> S.Expr:
    return parse_expression(text)


def shape(e) -> str:
    """A compact parenthesised form of an expression, to pin precedence."""
    if isinstance(e, S.BinOp):
        return f"({shape(e.left)} {e.op} {shape(e.right)})"
    if isinstance(e, S.UnaryOp):
        return f"({e.op} {shape(e.operand)})" if e.op == "not" else f"(-{shape(e.operand)})"
    if isinstance(e, S.Name):
        return e.id
    if isinstance(e, S.Number):
        return repr(e.value)
    if isinstance(e, S.Bool):
        return "true" if e.value else "false"
    if isinstance(e, S.Call):
        return f"{e.func}(" + ", ".join([shape(a) for a in e.args] + [f"{k.name}={shape(k.value)}"
                                                                       for k in e.kwargs]) + ")"
    if isinstance(e, S.FieldAccess):
        return f"{shape(e.value)}.{e.field}"
    if isinstance(e, S.Index):
        return f"{shape(e.value)}[...]"
    return type(e).__name__


@pytest.mark.parametrize("text, expected", [
    ("-x^2", "(-(x ^ 2))"),
    ("2^-1", "(2 ^ (-1))"),
    ("a^b^c", "(a ^ (b ^ c))"),
    ("a - b - c", "((a - b) - c)"),
    ("a + b * c", "(a + (b * c))"),
    ("a * b @ c", "((a * b) @ c)"),
    ("a / b * c", "((a / b) * c)"),
    ("-a * b", "((-a) * b)"),
    ("a < b and c or d", "(((a < b) and c) or d)"),
    ("not a and b", "((not a) and b)"),
    ("not a < b", "(not (a < b))"),
    ("a or b and c", "(a or (b and c))"),
    ("a + b == c * d", "((a + b) == (c * d))"),
    ("x.f^2", "(x.f ^ 2)"),
    ("f(x)^2", "(f(x) ^ 2)"),
    ("-f(x)", "(-f(x))"),
    ("2 * -x", "(2 * (-x))"),
])
def test_precedence(text, expected):
    assert shape(expr(text)) == expected


def test_comparisons_do_not_chain():
    with pytest.raises(LossError) as info:
        parse_expression("a < b < c")
    assert info.value.first.code == "E105"


def test_every_statement_kind():
    m = lossdsl.parse(spec("""
        pred yhat: float[B, C]
        target y: int[B]
        input meta: {w: float[B], g: int[B]}
        context cw: float[C]
        param alpha: float = 0.5
        param flags: bool[2] = [true, false]
        let z = yhat * 2
        def f(a, b) = a + b
        loss = mean(f(z, 1.0))
    """))
    kinds = [type(s).__name__ if not isinstance(s, S.Decl) else s.kind for s in m.statements]
    assert kinds == ["pred", "target", "input", "context", "param", "param", "Let", "Def", "LossStmt"]
    meta = m.statements[2]
    assert isinstance(meta.type, S.RecordTypeExpr) and [f.name for f in meta.type.fields] == ["w", "g"]
    assert m.statements[4].default.value == 0.5
    assert m.statements[5].default.value == [True, False]


def test_expression_continues_inside_brackets():
    m = lossdsl.parse(spec("""
        pred yhat: float[B]
        target y: float[B]
        loss = mean(
            (yhat - y)^2   # a comment inside
            * 2
        )
    """))
    assert isinstance(m.statements[-1], S.LossStmt)


def test_newline_outside_brackets_ends_a_statement():
    with pytest.raises(LossError) as info:
        lossdsl.parse(spec("""
            pred yhat: float[B]
            loss = mean(yhat)
                + 1
        """))
    assert info.value.first.span.line == 3


def test_comments_and_blank_lines():
    m = lossdsl.parse("# header\n\n\npred yhat: float[B]   # trailing\n\n# between\nloss = mean(yhat)")
    assert len(m.statements) == 2


def test_spans_are_one_based_with_end():
    m = lossdsl.parse("pred yhat: float[B]\nloss = mean(yhat)\n")
    loss = m.statements[1]
    call = loss.value
    assert (call.span.line, call.span.col, call.span.end_line, call.span.end_col) == (2, 8, 2, 18)


def test_indexing_forms():
    e = expr("x[1:, :-1, ::2, ..., None, 3]")
    assert isinstance(e, S.Index)
    kinds = [type(i).__name__ for i in e.items]
    assert kinds == ["Slice", "Slice", "Slice", "EllipsisIndex", "NewAxis", "Number"]


def test_keyword_arguments_and_tuples():
    e = expr("sum(x, axis=(B, C), keepdims=true)")
    assert [k.name for k in e.kwargs] == ["axis", "keepdims"]
    assert isinstance(e.kwargs[0].value, S.Tuple)


def test_quick_form_is_a_single_expression():
    m = lossdsl.parse("mean(abs(x.feature) * (y - yhat)^2)")
    assert m.quick


def test_numbers():
    assert expr("1e-7").value == 1e-7
    assert expr("3").value == 3 and expr("3").is_int
    assert expr("2.").value == 2.0 and not expr("2.").is_int
    assert expr(".5").value == 0.5


@pytest.mark.parametrize("text, code, line, col", [
    ("pred yhat: float[B]\nloss = mean(yhat ** 2)\n", "E104", 2, 18),
    ("pred yhat: float[B]\nloss = mean(yhat\n", "E102", 2, 12),
    ("pred yhat: float[B]\nloss = mean(yhat))\n", "E103", 2, 18),
    ("pred yhat: float[B]\nloss = mean((yhat])\n", "E103", 2, 18),
    ("pred yhat: float[B]\nloss = mean(yhat) $ 1\n", "E106", 2, 19),
    ("pred yhat: float[B]\nloss = where(yhat = 1, 0, 1)\n", "E502", 2, 14),
    ("pred yhat: float[B]\nlet a = (yhat = 1)\nloss = mean(yhat)\n", "E109", 2, 15),
    ("pred yhat: float[B]\nloss = sum(yhat, axis=0, 1)\n", "E108", 2, 26),
    ("pred yhat float[B]\nloss = mean(yhat)\n", "E101", 1, 11),
    ("pred let: float[B]\nloss = mean(yhat)\n", "E101", 1, 6),
])
def test_syntax_errors_point_at_the_mistake(text, code, line, col):
    with pytest.raises(LossError) as info:
        lossdsl.check(text)
    d = info.value.first
    assert (d.code, d.span.line, d.span.col) == (code, line, col)


def test_each_broken_statement_is_reported():
    with pytest.raises(LossError) as info:
        lossdsl.check(spec("""
            pred yhat: float[B]
            let a = (yhat +
            let b = yhat ** 2
            loss = mean(yhat)
        """))
    assert [d.code for d in info.value.errors] == ["E102", "E104"]


def test_missing_file_is_a_loss_error_naming_it(tmp_path):
    missing = tmp_path / "nope.loss"
    with pytest.raises(LossError) as info:
        lossdsl.check(missing)
    assert "nope.loss" in str(info.value)
    with pytest.raises(LossError):
        lossdsl.check(str(missing))


def test_a_path_is_read_and_named_in_errors(tmp_path):
    f = tmp_path / "bad.loss"
    f.write_text("pred yhat: float[B]\nloss = mean(yhta)\n")
    with pytest.raises(LossError) as info:
        lossdsl.check(f)
    assert str(info.value).startswith(f"{f}:2:13: error: unknown name `yhta`")


def test_source_text_is_not_a_path():
    # A string that does not end in .loss is source text, even if it looks like a name.
    with pytest.raises(LossError) as info:
        lossdsl.check("weights")
    assert "weights" not in {d.path for d in info.value.findings}


def test_inf_is_a_float_literal_in_expressions_and_param_defaults():
    e = expr("where(m, x, -inf)")
    neg = e.args[2]
    assert isinstance(neg, S.UnaryOp) and isinstance(neg.operand, S.Number) and neg.operand.value == float("inf")
    module = lossdsl.parse("param lo: float = -inf\nparam hi: float = inf\npred x: float[B]\nloss = sum(x)\n")
    defaults = [st.default.value for st in module.statements if isinstance(st, S.Decl) and st.default is not None]
    assert defaults == [float("-inf"), float("inf")]
    checked = lossdsl.check("pred x: float[B]\nloss = max(maximum(x, -inf)) + min(minimum(x, inf))\n")
    assert checked.loss.type.rank == 0


def test_inf_is_a_keyword_and_cannot_be_declared():
    with pytest.raises(LossError) as info:
        lossdsl.check("input inf: float[B]\npred x: float[B]\nloss = sum(x)\n")
    assert "inf" in str(info.value)
    assert "information" in {n.id for n in S.walk(expr("information + 1")) if isinstance(n, S.Name)}
