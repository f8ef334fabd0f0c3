"""A tensor read column by column (`b[:, 0]`, `b[:, 1]`, ...; lossdsl/columns.py): on TensorFlow
the generated code splits it once (`tf.unstack`) and every read of a column is that split's
part, whose gradient is one stack where a slice per column was a pad each; the value and the
gradient are those of the slices, eager and under `jit_compile`. Other backends keep the slices."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from conftest import needs, spec
from harness import BACKENDS, assert_close, value_and_grads

import lossdsl
from lossdsl.api import generate_source
from lossdsl.columns import column_splits
from lossdsl.ir import topological
from lossdsl.pipeline import backend_class

# Every column of each box read by name, as the std box losses do.
BOXES = spec("""
    pred   boxes: float[B, 4]
    target gt:    float[B, 4]
    let x1 = boxes[:, 0]
    let y1 = boxes[:, 1]
    let x2 = boxes[:, 2]
    let y2 = boxes[:, 3]
    let w  = gt[:, 2] - gt[:, 0]
    loss = mean((x2 - x1) * (y2 - y1) - w * gt[:, 3] + x1 * gt[:, 1])
""")
# Columns read twice, unnamed, from the end, of a computed tensor; one column never read.
MIXED = spec("""
    pred   p: float[B, 3]
    let q = tanh(p) * 2.0
    loss = mean(q[:, 0] * q[:, -1] + exp(q[:, 0]) - p[:, 1] * p[:, 0])
""")
# Two columns of eight: splitting would make six columns (and gradients) nobody reads.
FEW_OF_MANY = spec("""
    pred   p: float[B, 8]
    loss = mean(p[:, 0] * p[:, 5])
""")


def _boxes_reference(boxes, gt):
    x1, y1, x2, y2 = boxes.T
    n = len(boxes)
    value = np.mean((x2 - x1) * (y2 - y1) - (gt[:, 2] - gt[:, 0]) * gt[:, 3] + x1 * gt[:, 1])
    grad = np.stack([-(y2 - y1) + gt[:, 1], -(x2 - x1), y2 - y1, x2 - x1], axis=1) / n
    return value, grad


def _mixed_reference(p):
    q = np.tanh(p) * 2.0
    n = len(p)
    value = np.mean(q[:, 0] * q[:, 2] + np.exp(q[:, 0]) - p[:, 1] * p[:, 0])
    dq = 2.0 * (1 - np.tanh(p) ** 2)
    grad = np.stack([
        (q[:, 2] + np.exp(q[:, 0])) * dq[:, 0] - p[:, 1],
        -p[:, 0],
        q[:, 0] * dq[:, 2],
    ], axis=1) / n
    return value, grad


def _compute(source: str) -> ast.FunctionDef:
    """The function computing the loss: `compute`, or `_plain` where torch's `compute` only
    chooses between it and the derived backward."""
    defined = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    return defined.get("_plain", defined["compute"])


def _calls(fn: ast.AST, dotted: str) -> list[ast.Call]:
    return [n for n in ast.walk(fn) if isinstance(n, ast.Call) and ast.unparse(n.func) == dotted]


def _column_subscripts(fn: ast.AST) -> list[str]:
    """`x[:, k]` reads left in the code."""
    return [ast.unparse(n) for n in ast.walk(fn)
            if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Tuple)
            and isinstance(n.slice.elts[-1], (ast.Constant, ast.UnaryOp))]


@needs("tensorflow")
def test_tensorflow_binds_one_unstack_per_tensor_read_as_its_columns_0_to_3():
    compute = _compute(generate_source(BOXES, "tensorflow"))
    unstacks = _calls(compute, "tf.unstack")
    assert sorted(ast.unparse(c.args[0]) for c in unstacks) == ["v_boxes", "v_gt"], ast.unparse(compute)
    assert all(ast.unparse(k.value) == "4" for c in unstacks for k in c.keywords if k.arg == "num")
    # the lets are the split's parts, and no column is sliced any more
    targets = [ast.unparse(n.targets[0]) for n in compute.body if isinstance(n, ast.Assign)]
    assert "(l_x1, l_y1, l_x2, l_y2)" in targets, targets
    assert _column_subscripts(compute) == [], ast.unparse(compute)


@needs("tensorflow")
def test_a_column_read_twice_or_from_the_end_comes_from_the_same_split_of_a_computed_tensor():
    compute = _compute(generate_source(MIXED, "tensorflow"))
    assert len(_calls(compute, "tf.unstack")) == 2, ast.unparse(compute)  # q's and p's
    assert _column_subscripts(compute) == [], ast.unparse(compute)


@needs("tensorflow")
def test_a_tensor_read_in_few_of_its_columns_keeps_its_slices():
    compute = _compute(generate_source(FEW_OF_MANY, "tensorflow"))
    assert _calls(compute, "tf.unstack") == [], ast.unparse(compute)
    assert len(_column_subscripts(compute)) == 2, ast.unparse(compute)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if not backend_class(b).printer.SPLITS_COLUMNS])
def test_backends_without_a_split_read_each_column_with_its_slice(backend):
    compute = _compute(generate_source(BOXES, backend))
    assert not any("unstack" in ast.unparse(c.func) for c in ast.walk(compute) if isinstance(c, ast.Call))
    assert len(_column_subscripts(compute)) >= 4, ast.unparse(compute)


def test_only_tensors_read_in_at_least_half_of_their_columns_and_two_of_them_are_split():
    def splits(text):
        m = lossdsl.check(text)
        root = m.loss
        return {id(s.base): sorted(s.reads) for s in column_splits(topological(root), root).values()}

    assert sorted(splits(BOXES).values()) == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert sorted(splits(MIXED).values()) == [[0, 1], [0, 2]]
    assert splits(FEW_OF_MANY) == {}
    single = spec("""
        pred p: float[B, 2]
        loss = mean(p[:, 1] * p[:, 1])
    """)
    assert splits(single) == {}


@needs("tensorflow")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_split_gives_the_value_and_gradient_of_the_slices(dtype, rng):
    boxes, gt = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    value, grads = value_and_grads(lossdsl.compile(BOXES, backend="tensorflow"), "tensorflow",
                                   {"boxes": boxes, "gt": gt}, ["boxes"], dtype)
    want, want_grad = _boxes_reference(boxes, gt)
    assert_close(value, want, dtype, "boxes value")
    assert_close(grads["boxes"], want_grad, dtype, "boxes gradient")
    p = rng.normal(size=(5, 3))
    value, grads = value_and_grads(lossdsl.compile(MIXED, backend="tensorflow"), "tensorflow", {"p": p}, ["p"],
                                   dtype)
    want, want_grad = _mixed_reference(p)
    assert_close(value, want, dtype, "mixed value")
    assert_close(grads["p"], want_grad, dtype, "mixed gradient")


@needs("tensorflow")
def test_the_split_gives_the_value_and_gradient_of_the_slices_under_jit_compile(rng):
    import tensorflow as tf

    boxes, gt = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    f = lossdsl.compile(BOXES, backend="tensorflow")
    b, g = tf.constant(boxes), tf.constant(gt)

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            v = f(x, g)
        return v, tape.gradient(v, x)

    value, grad = step(b)
    want, want_grad = _boxes_reference(boxes, gt)
    assert_close(value.numpy(), want, "float64", "value under jit_compile")
    assert_close(grad.numpy(), want_grad, "float64", "gradient under jit_compile")
