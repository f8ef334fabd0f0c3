"""TensorFlow's fused mean squared error over a whole tensor is the mean of its rows' means
(XLA on CPU reduces a matrix row by row faster than through the square tiles of a reduction to
one number): the same value and gradient as the mean of every element, eager and under
`jit_compile`, for matrices and higher ranks, and the mean of one vector is still one mean."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl.api import generate_source

from conftest import needs, spec

RANK_2 = spec("""
    pred   yhat: float[B, D]
    target y:    float[B, D]
    loss = mean((yhat - y)^2)
""")
RANK_3 = spec("""
    pred   yhat: float[B, T, D]
    target y:    float[B, T, D]
    loss = mean((y - yhat) * (y - yhat))
""")
RANK_1 = spec("""
    pred   yhat: float[B]
    target y:    float[B]
    loss = mean(square(yhat - y))
""")


@needs("tensorflow")
def test_the_mean_of_a_matrix_or_more_is_the_mean_of_its_rows_means_and_of_a_vector_one_mean():
    for text in (RANK_2, RANK_3):
        source = generate_source(text, "tensorflow")
        assert "tf.reduce_mean(tf.reduce_mean(tf.math.squared_difference(" in source, source
        assert ", axis=-1))" in source, source
    source = generate_source(RANK_1, "tensorflow")
    assert "tf.reduce_mean(tf.math.squared_difference(v_yhat, v_y))" in source, source


@needs("tensorflow")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit_compile"])
@pytest.mark.parametrize("text", [RANK_2, RANK_3, RANK_1], ids=["rank 2", "rank 3", "rank 1"])
def test_the_mean_of_rows_means_gives_the_mean_squared_error_and_its_gradient(text, compiled, rng):
    import tensorflow as tf

    shape = {RANK_2: (6, 5), RANK_3: (4, 3, 5), RANK_1: (7,)}[text]
    yhat, y = rng.normal(size=shape), rng.normal(size=shape)
    f = lossdsl.compile(text, backend="tensorflow")
    target = tf.constant(y)

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            v = f(x, target)
        return v, tape.gradient(v, x)

    value, grad = (tf.function(step, jit_compile=True) if compiled else step)(tf.constant(yhat))
    np.testing.assert_allclose(value.numpy(), np.mean((yhat - y) ** 2), rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), 2 * (yhat - y) / yhat.size, rtol=1e-12)
