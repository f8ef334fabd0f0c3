"""Columns of one tensor read one by one on torch (a box's x1, y1, x2, y2): the plain compute
binds them from one `unbind`, whose gradient is one `stack`, and value and gradient are the
spec's, eager and under torch.compile, with the same column read twice or counted from the end."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from conftest import needs, spec
from harness import assert_eager_and_compiled

import lossdsl
import lossdsl.std

COLUMNS = spec("""
    pred   b: float[B, 4]
    target g: float[B, 4]
    let w = b[:, 2] - b[:, 0]
    loss = mean(w * b[:, -1] + square(b[:, 1] - g[:, 1]) + b[:, 2] * g[:, 1])
""")


def _reference(b, g):
    n = b.shape[0]
    value = np.mean((b[:, 2] - b[:, 0]) * b[:, 3] + (b[:, 1] - g[:, 1]) ** 2 + b[:, 2] * g[:, 1])
    grad = np.stack([-b[:, 3], 2 * (b[:, 1] - g[:, 1]), b[:, 3] + g[:, 1], b[:, 2] - b[:, 0]], axis=1) / n
    return value, grad


def _plain(source: str) -> ast.FunctionDef:
    defined = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    return defined.get("_plain", defined["compute"])


def _unbound(fn: ast.FunctionDef) -> list[str]:
    """The variables an `unbind` is called on."""
    return [ast.unparse(n.func.value) for n in ast.walk(fn)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "unbind"]


def _subscripted(fn: ast.FunctionDef) -> list[str]:
    return [ast.unparse(n.value) for n in ast.walk(fn) if isinstance(n, ast.Subscript)]


@needs("torch")
@pytest.mark.parametrize("name", ["giou", "diou", "ciou"])
def test_a_box_loss_reads_each_box_tensor_through_one_unbind_on_torch(name):
    fn = _plain(lossdsl.compile(lossdsl.std.path(name), backend="torch").source)
    assert sorted(_unbound(fn)) == ["v_boxes", "v_gt"]
    assert "v_boxes" not in _subscripted(fn) and "v_gt" not in _subscripted(fn)


@needs("torch")
def test_columns_read_from_an_unbind_give_the_specs_value_and_gradient_eager_and_compiled(rng):
    b, g = rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    f = lossdsl.compile(COLUMNS, backend="torch")
    assert _unbound(_plain(f.source)) == ["v_b"]  # g: one column, read twice: kept as reads
    want_value, want_grad = _reference(b, g)
    assert_eager_and_compiled(f, "torch", {"b": b, "g": g}, "b", want_value, want_grad)


@needs("torch")
def test_one_column_or_a_few_of_many_are_read_without_an_unbind():
    one = spec("pred b: float[B, 4]\nloss = mean(b[:, 1])\n")
    few = spec("pred b: float[B, 16]\nloss = mean(b[:, 0] * b[:, 1])\n")
    sized = spec("pred b: float[B, D]\nloss = mean(b[:, 0] * b[:, 1])\n")
    same = spec("pred b: float[B, 4]\nloss = mean(b[:, 1] * b[:, -3])\n")  # one column, twice
    for src in (one, few, sized, same):
        assert _unbound(_plain(lossdsl.compile(src, backend="torch").source)) == []
