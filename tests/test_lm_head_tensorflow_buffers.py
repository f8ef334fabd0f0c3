"""TensorFlow's folded language-model head adds each chunk's dh and dW into one buffer each, in
place (backends/tensorflow_backend.py, `add_rows`): dW in slabs of classes, viewed as rows of
`gcd(V, slab)` classes. Pinned: value and gradients equal a float64 reference where V has no
power-of-two factor (one class a row) and where it has some (several), with a last chunk of
tokens shorter than the others, eager and under tf.function; the picked logit's term (an ignore
index, a bias, soft-capping) added per token; repeated calls give the same gradients (each call
starts from new zero buffers); second derivatives through the buffers."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl import lm_head

tf = pytest.importorskip("tensorflow")

N, D = 150, 48  # chunks of 128 and 22 tokens; dW in slabs of 512 classes
CHUNKED = {"chunk": 16, "min_logits": 0}
DENSE = {"min_logits": 1 << 62}
PLAIN = (
    "pred h: float[N, D]\npred W: float[V, D]\npred b: float[V]\ntarget y: int[N]\n"
    "let keep = y != -100\n"
    "loss = sum(where(keep, -pick(log_softmax(h @ transpose(W) + b, axis=V), y), 0.0)) / sum(float(keep))\n"
)
SOFTCAP = (
    "pred h: float[N, D]\npred W: float[V, D]\ntarget y: int[N]\n"
    "let z = 3.0 * tanh(h @ transpose(W) / 3.0)\n"
    "loss = mean(-pick(log_softmax(z, axis=V), y) + 0.01 * square(logsumexp(z, axis=V)))\n"
)


def _inputs(v: int, rng):
    y = rng.integers(0, v, size=N)
    y[[0, 70, 149]] = -100  # ignored in the first chunk (twice) and in the last
    y[[1, 2]] = [0, v - 1]
    return {"h": rng.normal(size=(N, D)), "W": rng.normal(size=(v, D)), "b": rng.normal(size=v)}, y


def _reference(x, y):
    """The plain loss's value and gradients in float64, from its closed form."""
    z = x["h"] @ x["W"].T + x["b"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    keep = y != -100
    rows = np.flatnonzero(keep)
    value = -np.log(p[rows, y[rows]]).sum() / keep.sum()
    dz = p * keep[:, None]
    dz[rows, y[rows]] -= 1.0
    dz /= keep.sum()
    return value, {"h": dz @ x["W"], "W": dz.T @ x["h"], "b": dz.sum(0)}


def _grads(f, x, y, preds, traced):
    def go(args):
        with tf.GradientTape() as tape:
            tape.watch([args[p] for p in preds])
            out = f(**args, y=tf.constant(y))
        return out, tape.gradient(out, [args[p] for p in preds])

    run = tf.function(go) if traced else go
    out, grads = run({p: tf.constant(x[p]) for p in preds})
    return float(out), {p: g.numpy() for p, g in zip(preds, grads)}


def _compiled(src, sizes):
    with lm_head.options(**sizes):
        f = lossdsl.compile(src, backend="tensorflow")
    assert "rt.lm_head_loss(" in f.source
    return f


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("v", [997, 1000], ids=["V-prime", "V-with-factor-8"])
def test_the_in_place_gradients_equal_the_float64_reference(v, traced, rng):
    x, y = _inputs(v, rng)
    value, expected = _reference(x, y)
    out, got = _grads(_compiled(PLAIN, CHUNKED), x, y, ["h", "W", "b"], traced)
    np.testing.assert_allclose(out, value, rtol=1e-12)
    for p, g in got.items():
        np.testing.assert_allclose(g, expected[p], rtol=1e-10, atol=1e-13, err_msg=f"d/d{p}")


@pytest.mark.parametrize("v", [997, 1000], ids=["V-prime", "V-with-factor-8"])
def test_soft_capping_with_a_z_loss_equals_the_dense_gradients(v, rng):
    x, y = _inputs(v, rng)
    y = np.where(y < 0, 5, y)
    dense = _grads(_compiled_dense(SOFTCAP), x, y, ["h", "W"], True)
    chunked = _grads(_compiled(SOFTCAP, CHUNKED), x, y, ["h", "W"], True)
    np.testing.assert_allclose(chunked[0], dense[0], rtol=1e-12)
    for p in ("h", "W"):
        np.testing.assert_allclose(chunked[1][p], dense[1][p], rtol=1e-10, atol=1e-13, err_msg=f"d/d{p}")


def _compiled_dense(src):
    with lm_head.options(**DENSE):
        return lossdsl.compile(src, backend="tensorflow")


def test_repeated_calls_start_from_new_zero_buffers(rng):
    x, y = _inputs(1000, rng)
    f = _compiled(PLAIN, CHUNKED)
    _, expected = _reference(x, y)

    @tf.function
    def go(h, W, b):
        with tf.GradientTape() as tape:
            tape.watch([h, W, b])
            out = f(h=h, W=W, b=b, y=tf.constant(y))
        return tape.gradient(out, [h, W, b])

    args = [tf.constant(x[p]) for p in ("h", "W", "b")]
    for _ in range(3):
        for p, g in zip(("h", "W", "b"), go(*args)):
            np.testing.assert_allclose(g.numpy(), expected[p], rtol=1e-10, atol=1e-13, err_msg=f"d/d{p}")


def test_second_derivatives_through_the_buffers_equal_the_dense_ones(rng):
    x, y = _inputs(1000, rng)
    y = np.where(y < 0, 5, y)
    r = tf.constant(rng.normal(size=(N, D)))

    def second(f):
        h, W = tf.constant(x["h"]), tf.constant(x["W"])
        with tf.GradientTape() as outer:
            outer.watch(W)
            with tf.GradientTape() as inner:
                inner.watch(h)
                out = f(h=h, W=W, y=tf.constant(y))
            total = tf.reduce_sum(inner.gradient(out, h) * r)
        return outer.gradient(total, W).numpy()

    expected = second(_compiled_dense(SOFTCAP))
    np.testing.assert_allclose(second(_compiled(SOFTCAP, CHUNKED)), expected, rtol=1e-9, atol=1e-12)


SMOOTHED = (
    "pred h: float[N, D]\npred W: float[V, D]\npred b: float[V]\ntarget y: int[N]\n"
    "let logp = log_softmax(h @ transpose(W) + b, axis=V)\n"
    "let keep = y != -100\n"
    "loss = sum(where(keep, 0.9 * -pick(logp, y) - 0.1 * mean(logp, axis=V), 0.0)) / sum(float(keep))\n"
)


def test_a_smoothed_and_guarded_loss_in_float64_runs_traced_with_the_dense_gradients(rng):
    # the per-token derivative holds a literal branch (`where(keep, 0.9, 0.0)`): in float64 it must
    # be a float64 tensor, not TensorFlow's default float32 for a Python number
    x, y = _inputs(997, rng)
    dense = _grads(_compiled_dense(SMOOTHED), x, y, ["h", "W", "b"], True)
    chunked = _grads(_compiled(SMOOTHED, CHUNKED), x, y, ["h", "W", "b"], True)
    np.testing.assert_allclose(chunked[0], dense[0], rtol=1e-12)
    for p in ("h", "W", "b"):
        np.testing.assert_allclose(chunked[1][p], dense[1][p], rtol=1e-10, atol=1e-13, err_msg=f"d/d{p}")
