"""Under each framework's compiler: torch.compile, jax.jit / jax.grad / jax.vmap, and
tf.function (also with jit_compile and unknown batch sizes) give the eager results, and
the call-time checks still run (at trace time)."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError

from conftest import EXAMPLES, needs
from harness import convert, to_numpy

GROUP = EXAMPLES / "group_weighted_cce.loss"


def group_data(rng, b=8):
    logits = rng.normal(size=(b, 3))
    y = np.eye(3)[rng.integers(0, 3, b)]
    g = rng.integers(0, 2, b)
    return logits, y, g


@needs("torch")
def test_torch_compile_matches_eager(rng):
    import torch

    f = lossdsl.compile(GROUP, backend="torch")
    logits, y, g = group_data(rng)
    args = [torch.tensor(logits, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), torch.tensor(g)]

    def step(l, y, g, w):
        l = l.clone().requires_grad_(True)
        v = f(l, y, g, group_w=w)
        (gr,) = torch.autograd.grad(v, [l])
        return v, gr

    w = torch.tensor([1.0, 0.5])
    eager = step(*args, w)
    compiled = torch.compile(step, backend="eager" if not hasattr(torch, "_inductor") else "inductor")(*args, w)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


@needs("jax")
def test_jax_jit_grad_and_vmap(rng):
    import jax
    import jax.numpy as jnp

    f = lossdsl.compile(GROUP, backend="jax")
    logits, y, g = group_data(rng)
    l, yy, gg = jnp.asarray(logits, jnp.float32), jnp.asarray(y, jnp.float32), jnp.asarray(g)
    loss = lambda l, w: f(l, yy, gg, group_w=w)
    w = jnp.asarray([1.0, 0.5], jnp.float32)
    eager_v, eager_g = loss(l, w), jax.grad(loss)(l, w)
    jv, jg = jax.jit(jax.value_and_grad(loss))(l, w)
    np.testing.assert_allclose(jv, eager_v, rtol=1e-6)
    np.testing.assert_allclose(jg, eager_g, rtol=1e-5, atol=1e-7)
    # A param changes value without retracing.
    traced = []

    @jax.jit
    def counted(l, w):
        traced.append(1)
        return loss(l, w)

    counted(l, w)
    counted(l, w * 2)
    assert len(traced) == 1
    # vmap over an ensemble axis: each member sees the declared shapes.
    stacked = jnp.stack([l, l * 2])
    per_member = jax.vmap(lambda m: loss(m, w))(stacked)
    np.testing.assert_allclose(per_member[0], eager_v, rtol=1e-6)


@needs("jax")
def test_jax_checks_run_at_trace_time(rng):
    import jax
    import jax.numpy as jnp

    f = lossdsl.compile(GROUP, backend="jax")
    with pytest.raises(LossError) as info:
        jax.jit(lambda l: f(l, jnp.zeros((8, 4)), jnp.zeros(8, jnp.int32)))(jnp.zeros((8, 3)))
    assert info.value.first.code == "E805"


@needs("tensorflow")
@pytest.mark.parametrize("jit_compile", [False, True])
def test_tf_function_matches_eager(rng, jit_compile):
    import tensorflow as tf

    f = lossdsl.compile(GROUP, backend="tf")
    logits, y, g = group_data(rng)
    args = (tf.constant(logits, tf.float32), tf.constant(y, tf.float32), tf.constant(g))

    def step(l, y, g):
        with tf.GradientTape() as tape:
            tape.watch(l)
            v = f(l, y, g)
        return v, tape.gradient(v, l)

    eager = step(*args)
    graph = tf.function(step, jit_compile=jit_compile)(*args)
    for a, b in zip(eager, graph):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@needs("tensorflow")
def test_tf_function_with_unknown_batch_size(rng):
    import tensorflow as tf

    f = lossdsl.compile(EXAMPLES / "confusion_weighted_ce.loss", backend="tf",
                        context={"W": tf.constant(rng.uniform(size=(3, 3)), tf.float32)})
    spec = [tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None, 3], tf.float32)]
    graph = tf.function(lambda l, y: f(l, y), input_signature=spec)
    for b in (4, 7):
        logits, y, _ = group_data(rng, b)
        l, yy = tf.constant(logits, tf.float32), tf.constant(y, tf.float32)
        np.testing.assert_allclose(graph(l, yy).numpy(), f(l, yy).numpy(), rtol=1e-6)
    with pytest.raises(LossError):
        graph2 = tf.function(lambda l, y: f(l, y), input_signature=[tf.TensorSpec([None, 4], tf.float32)] * 2)
        graph2.get_concrete_function()


@needs("tensorflow")
def test_tf_function_with_unknown_sizes_used_by_the_loss(rng):
    import tensorflow as tf

    src = "pred v: float[N]\ninput k: int[N]\nloss = sum(v) / N + sum(one_hot(k, N) * v[None, :])\n"
    f = lossdsl.compile(src, backend="tf")
    graph = tf.function(lambda v, k: f(v, k), input_signature=[tf.TensorSpec([None], tf.float32),
                                                               tf.TensorSpec([None], tf.int64)])
    v = tf.constant([1.0, 2.0, 3.0])
    k = tf.constant([0, 2, 2], tf.int64)
    np.testing.assert_allclose(graph(v, k).numpy(), f(v, k).numpy(), rtol=1e-6)
