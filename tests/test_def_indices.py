"""A `def` argument used as an index (docs/language.md §3): `def at(t) = x[:, t]`. An int scalar
among slices drops its axis as an integer literal does: a literal passed to the `def` (or
arithmetic on literals) is that literal, counted from the end when negative; an int scalar
known only at a call (`argmax` of a vector, an `int` input) is read at run time, checked at the
call (E812) and not counted from the end. An int tensor of rank 1 or more among slices is still
E409 (the shape it would give is NumPy's outer product, rarely what is meant)."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError

from conftest import available
from harness import assert_close, convert, value_and_grads

BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(not available(b), reason=f"MISSING FRAMEWORK: {b} is not installed"))
            for b in ("numpy", "torch", "jax", "tensorflow")]

SPEC = """\
pred  x: float[B, T, D]
input k: int

def at(t) = x[:, t, ...]
def from_end(t) = x[:, -t, :]
def after(t) = x[:, t + 1]

let hot = argmax(sum(x, axis=(B, D)), axis=T)
loss = mean(at(0) + 2 * at(-1) + from_end(2) + after(1) + 3 * at(k) + at(hot) ^ 2)
"""


def reference(X, k):
    hot = int(np.argmax(X.sum(axis=(0, 2))))
    return np.mean(X[:, 0] + 2 * X[:, -1] + X[:, -2] + X[:, 2] + 3 * X[:, k] + X[:, hot] ** 2), hot


def reference_grad(X, k):
    _, hot = reference(X, k)
    g = np.zeros_like(X)
    n = X.shape[0] * X.shape[2]
    for t, w in ((0, 1), (-1, 2), (-2, 1), (2, 1), (k, 3)):
        g[:, t] += w / n
    g[:, hot] += 2 * X[:, hot] / n
    return g


def test_a_def_argument_indexes_among_slices_with_the_axis_dropped():
    checked = lossdsl.check(SPEC)
    assert str(checked.loss.type) == "float"
    one = lossdsl.check("pred x: float[B, T, D]\ndef at(t) = x[:, t]\nloss = mean(at(1))\n")
    assert str(one.loss.args[0].type) == "float[B, D]"


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_and_gradients_match_numpy_indexing(backend):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 5, 3))
    k = 3
    f = lossdsl.compile(SPEC, backend=backend)
    args = {"x": X, "k": np.array(k)}
    preds = ["x"] if backend != "numpy" else []
    value, grads = value_and_grads(f, backend, args, preds)
    expected, _ = reference(X, k)
    assert_close(value, expected, "float64", "value")
    if preds:
        assert_close(grads["x"], reference_grad(X, k), "float64", "gradient of x")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_time_scalar_index_outside_its_axis_is_E812(backend):
    f = lossdsl.compile("pred x: float[B, T]\ninput k: int\ndef at(t) = x[:, t]\nloss = mean(at(k))\n",
                        backend=backend)
    X = convert(backend, np.ones((2, 4)), "float64")
    assert float(np.asarray(f(X, convert(backend, np.array(3), "int64")))) == 1.0
    with pytest.raises(LossError) as e:
        f(X, convert(backend, np.array(4), "int64"))
    assert e.value.findings[0].code == "E812"


def test_a_literal_argument_outside_a_known_axis_is_E406_at_the_call():
    with pytest.raises(LossError) as e:
        lossdsl.check("pred x: float[B, 4]\ndef at(t) = x[:, t]\nloss = mean(at(4))\n")
    d = e.value.findings[0]
    assert d.code == "E406" and "out of range" in d.message
    assert any("called at line 3" in n for n in d.notes)


def test_a_literal_argument_sets_the_minimum_size_of_a_symbolic_axis():
    f = lossdsl.compile("pred x: float[B, T]\ndef at(t) = x[:, t]\nloss = mean(at(2))\n", backend="numpy")
    with pytest.raises(LossError) as e:
        f(np.ones((2, 2)))
    assert e.value.findings[0].code == "E805" and "at least 3" in e.value.findings[0].message


def test_an_int_vector_among_slices_is_still_E409():
    with pytest.raises(LossError) as e:
        lossdsl.check("pred x: float[B, T]\ntarget y: int[B]\ndef at(t) = x[:, t]\nloss = mean(at(y))\n")
    assert [d.code for d in e.value.findings] == ["E409"]


def test_a_float_argument_is_not_an_index():
    with pytest.raises(LossError) as e:
        lossdsl.check("pred x: float[B, T]\ndef at(t) = x[:, t]\nloss = mean(at(0.5))\n")
    assert e.value.findings[0].code in ("E304", "E409")


def test_a_def_argument_may_index_without_slices_too():
    f = lossdsl.compile("pred x: float[T]\ndef at(t) = x[t]\nloss = at(0) + at(-1)\n", backend="numpy")
    assert float(f(np.array([1.0, 2.0, 5.0]))) == 6.0
