"""TensorFlow's soft-label cross-entropy, `-sum(y * log_softmax(z), axis=C)` (the `soft_ce` kernel,
`rt.soft_ce`): its custom gradient, softmax(z) * sum(y) - y, is the decomposed form's for labels of
any sum (rows summing to 1, to more, to 0 with labels of both signs, all zero), to the labels too,
eager and under `jit_compile`, and differentiates again as the decomposed form does."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl.printing import printer_for

from conftest import needs, spec

SOFT_CE = spec("""
    pred z: float[B, C]
    pred y: float[B, C]
    loss = -sum(y * log_softmax(z), axis=C)
""")


def _labels(rng, b, c):
    y = rng.uniform(size=(b, c))
    y[0] /= y[0].sum()  # a distribution
    y[1] *= 3.0  # summing to more than 1
    y[2] = 0.0  # none
    y[3, :2] = (1.0, -1.0)  # summing to 0, not all zero
    y[3, 2:] = 0.0
    return y


def _compiled(fused: bool, monkeypatch):
    with monkeypatch.context() as m:
        if not fused:
            m.setattr(printer_for("tensorflow"), "KERNELS", {})
        f = lossdsl.compile(SOFT_CE, backend="tensorflow")
    assert ("rt.soft_ce(" in f.source) == fused, f.source
    return f


@needs("tensorflow")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit_compile"])
def test_the_soft_label_cross_entropy_has_the_decomposed_value_gradients_and_second_derivative(
    compiled, rng, monkeypatch
):
    import tensorflow as tf

    z, y = rng.normal(size=(5, 6)), _labels(rng, 5, 6)
    z[4, :2] = 2.0  # a tie

    def derivatives(f):
        def run(z, y):
            with tf.GradientTape() as outer:
                outer.watch(z)
                with tf.GradientTape() as inner:
                    inner.watch([z, y])
                    v = tf.reduce_sum(f(z, y, reduction="none") * tf.range(1.0, 6.0, dtype=tf.float64))
                gz, gy = inner.gradient(v, [z, y])
                probe = tf.reduce_sum(gz * tf.sin(z))
            return v, gz, gy, outer.gradient(probe, z)

        return (tf.function(run, jit_compile=True) if compiled else run)(tf.constant(z), tf.constant(y))

    fused = derivatives(_compiled(True, monkeypatch))
    plain = derivatives(_compiled(False, monkeypatch))
    for what, a, b in zip(("value", "d/dz", "d/dy", "second derivative"), fused, plain):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=what)
    p = np.exp(z - np.logaddexp.reduce(z, axis=1, keepdims=True))
    weights = np.arange(1.0, 6.0)[:, None]
    np.testing.assert_allclose(fused[1].numpy(), weights * (p * y.sum(1, keepdims=True) - y), rtol=1e-10, atol=1e-12)
