"""Index values at a call (E812): an int argument read as an index must lie in [0, size) of the
axis it indexes. The frameworks disagree there on their own (NumPy, torch and TensorFlow on CPU
raise their own errors, torch's fused cross-entropy silently skips -100, JAX clamps or gives
NaN), so the entry checks the values once and every backend gives the same LossError; an index
read under a `where` guard is not checked, since the guard keeps the lanes it reads in range."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError

from conftest import available
from harness import convert

BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(not available(b), reason=f"MISSING FRAMEWORK: {b} is not installed"))
            for b in ("numpy", "torch", "jax", "tensorflow")]

NLL = "pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z), k))\n"
READS = {  # a spec, the int argument it reads as an index, and the size of the axis it indexes
    "pick": (NLL, "k", 3),
    "gather": ("pred z: float[B, C]\ninput i: int[B]\ncontext W: float[C, 3]\nloss = mean(W[i, 1] * z[:, 0])\n", "i", 3),
    "one_hot": ("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(one_hot(k, C) * z)\n", "k", 3),
    "segment": ("pred z: float[B, C]\ninput g: int[B]\ncontext gw: float[G]\n"
                "loss = sum(gw * segment_mean(sum(z, axis=C), g, G))\n", "g", 2),
}


def call(src, backend, name, values, *, check_indices=True):
    rng = np.random.default_rng(0)
    ctx = {"W": rng.normal(size=(3, 3)), "gw": np.ones(2)}
    checked = lossdsl.check(src)
    ctx = {c.name: convert(backend, ctx[c.name], "float64") for c in checked.of_kind("context")}
    f = lossdsl.compile(src, backend=backend, context=ctx, check_indices=check_indices)
    args = {"z": convert(backend, rng.normal(size=(4, 3)), "float64"),
            name: convert(backend, np.asarray(values, dtype=np.int64), "int64")}
    return f, f(**args)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("read", list(READS))
def test_an_index_past_its_axis_is_one_loss_error_on_every_backend(read, backend):
    src, name, size = READS[read]
    values = [0, 1, size, 0]
    with pytest.raises(LossError) as info:
        call(src, backend, name, values)
    text = str(info.value)
    assert "[E812]" in text and f"`{name}` holds {size} at [2], outside [0, {size})" in text, text


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_negative_label_is_rejected_with_a_hint_about_ignore_labels(backend):
    with pytest.raises(LossError) as info:
        call(NLL, backend, "k", [0, -100, 1, 2])
    text = str(info.value)
    assert "`k` holds -100 at [1]" in text and "`C`, which is 3 from `z` (axis 1)" in text
    assert "ignore_index" in text and "where(k >= 0" in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_indices_in_range_pass_and_the_check_can_be_turned_off(backend):
    f, value = call(NLL, backend, "k", [0, 2, 1, 2])
    assert "_check_index(" in f.source and np.isfinite(float(np.asarray(value)))
    f, _ = call(NLL, "numpy", "k", [0, 2, 1, 2], check_indices=False)
    assert "_check_index(" not in f.source


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_context_column_read_as_an_index_is_checked_and_pointed_at(backend):
    src = ("pred emb: float[N, D]\ncontext pairs: int[P, 2]\n"
           "loss = mean(sum(square(emb[pairs[:, 0]] - emb[pairs[:, 1]]), axis=D))\n")
    emb = convert(backend, np.random.default_rng(0).normal(size=(5, 3)), "float64")
    good = lossdsl.compile(src, backend=backend, context={"pairs": convert(backend, np.array([[0, 1], [2, 4]]), "")})
    assert np.isfinite(float(np.asarray(good(emb=emb))))
    bad = lossdsl.compile(src, backend=backend, context={"pairs": convert(backend, np.array([[0, 1], [4, 5]]), "")})
    for _ in range(2):  # the context's range is read once and kept; the check still runs
        with pytest.raises(LossError) as info:
            bad(emb=emb)
        text = str(info.value)
        assert ":3:47: error: `pairs[:, 1]` holds 5 at [1], outside [0, 5): it indexes `N`, which is 5 from " \
               "`emb` (axis 0)  [E812]" in text, text


def test_a_guarded_read_is_not_checked():
    # std's cross_entropy reads y only where y != ignore_index; -100 there is by design.
    src = ("pred z: float[B, C]\ntarget k: int[B]\n"
           "loss = mean(where(k >= 0, -pick(log_softmax(z), k), 0.0))\n")
    f, value = call(src, "numpy", "k", [0, -100, 1, 2])
    assert "_check_index(" not in f.source and np.isfinite(value)


@pytest.mark.skipif(not available("jax"), reason="MISSING FRAMEWORK: jax is not installed")
def test_under_jax_jit_and_vmap_the_check_steps_aside():
    import jax
    import jax.numpy as jnp

    f = lossdsl.compile(NLL, backend="jax")
    z = jnp.asarray(np.random.default_rng(1).normal(size=(5, 4, 3)))
    k = jnp.asarray(np.random.default_rng(2).integers(0, 3, (5, 4)))
    eager = [float(f(z=z[i], k=k[i])) for i in range(5)]
    np.testing.assert_allclose(jax.vmap(lambda a, b: f(z=a, k=b))(z, k), eager, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda a: f(z=a, k=k[0]))(z[0]), eager[0], rtol=1e-6)


@pytest.mark.skipif(not available("torch"), reason="MISSING FRAMEWORK: torch is not installed")
def test_under_torch_func_the_check_steps_aside():
    import torch

    f = lossdsl.compile(NLL, backend="torch")
    z = torch.randn(5, 4, 3, dtype=torch.float64)
    k = torch.randint(0, 3, (5, 4))
    eager = torch.stack([f(z=z[i], k=k[i]) for i in range(5)])
    torch.testing.assert_close(torch.func.vmap(lambda a, b: f(z=a, k=b))(z, k), eager)
    assert torch.func.grad(lambda a: f(z=a, k=k[0]))(z[0]).shape == (4, 3)


@pytest.mark.skipif(not available("tensorflow"), reason="MISSING FRAMEWORK: tensorflow is not installed")
def test_inside_tf_function_the_check_steps_aside():
    import tensorflow as tf

    f = lossdsl.compile(NLL, backend="tensorflow")
    z = tf.constant(np.random.default_rng(1).normal(size=(4, 3)))
    k = tf.constant([0, 2, 1, 2], dtype=tf.int64)
    np.testing.assert_allclose(tf.function(lambda a, b: f(z=a, k=b))(z, k), f(z=z, k=k), rtol=1e-12)
