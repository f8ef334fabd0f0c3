"""A float param as an exponent on TensorFlow: printed as its Python number where the caller gave
one (`x ** 2.0` is a product under XLA, `x ** tensor` a general power with the exponent's
gradient), with the value and gradient of the tensor form, eager and under jit_compile."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl

from conftest import needs
from test_torch_params_compiled import FOCAL_LIKE, _reference


@needs("tensorflow")
def test_a_float_param_exponent_is_printed_as_its_python_number_on_tensorflow():
    f = lossdsl.compile(FOCAL_LIKE, backend="tensorflow")
    assert "** (n_gamma if n_gamma is not None else p_gamma)" in f.source
    assert "n_gamma = _number(" in f.source


@needs("tensorflow")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit_compile"])
@pytest.mark.parametrize("how", ["default", "bound", "number at the call", "tensor at the call"])
def test_a_param_exponent_gives_the_same_value_and_gradient_as_a_number_or_a_tensor_on_tensorflow(
    rng, how, compiled
):
    import tensorflow as tf

    z = rng.normal(size=(6, 5))
    y = (rng.random((6, 5)) < 0.5).astype(float)
    gamma = 2.0 if how == "default" else 1.5
    f = lossdsl.compile(FOCAL_LIKE, backend="tensorflow", params={"gamma": 1.5} if how == "bound" else None)
    at_call = {"number at the call": {"gamma": 1.5}, "tensor at the call": {"gamma": tf.constant(1.5, tf.float64)}}
    x, t = tf.constant(z), tf.constant(y)

    def value_and_grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = f(x, t, **at_call.get(how, {}))
        return value, tape.gradient(value, x)

    run = tf.function(value_and_grad, jit_compile=True) if compiled else value_and_grad
    value, grad = run(x)
    want_value, want_grad = _reference(z, y, gamma)
    np.testing.assert_allclose(float(value), want_value, rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-10, atol=1e-15)
