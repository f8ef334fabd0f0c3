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


# ---- check_values: the index check kept under tracing ---------------------------------------------

_PICK = "pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z), k))\n"


def _tensor(backend, a):
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(a)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.constant(a)
    import torch

    return torch.tensor(a)


def _traced(backend, f):
    if backend == "jax":
        import jax

        return lambda z, k: jax.jit(f)(z, k).block_until_ready()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(f)
    import torch

    return torch.compile(f, fullgraph=True, backend="aot_eager")


@pytest.mark.parametrize("backend", ["jax", "tensorflow", "torch"])
def test_check_values_keeps_the_index_check_under_tracing_with_the_e812_text(backend, rng):
    pytest.importorskip({"tensorflow": "tensorflow"}.get(backend, backend))
    z = rng.normal(size=(3, 4)).astype(np.float32)
    good, bad = np.array([0, 1, 3]), np.array([0, 5, 1])
    checked = lossdsl.compile(_PICK, backend=backend, check_values=True)
    run = _traced(backend, checked)
    eager = float(to_numpy(checked(_tensor(backend, z), _tensor(backend, good))))
    np.testing.assert_allclose(float(to_numpy(run(_tensor(backend, z), _tensor(backend, good)))), eager, rtol=1e-6)
    with pytest.raises(Exception) as err:
        run(_tensor(backend, z), _tensor(backend, bad))
    text = str(err.value)
    assert "E812" in text and "target `k` holds" in text and "outside [0, 4)" in text, text
    if backend == "jax":  # the host callback runs the eager check itself: the same words
        assert "holds 5 at [1]" in text


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_without_check_values_a_traced_call_does_not_check_index_values(backend, rng):
    """The default: no check under tracing (JAX clamps; torch's own gather error on CPU)."""
    pytest.importorskip(backend)
    z = rng.normal(size=(3, 4)).astype(np.float32)
    source = lossdsl.compile(_PICK, backend=backend).source
    assert "_check_index(" in source
    if backend == "jax":
        run = _traced(backend, lossdsl.compile(_PICK, backend=backend))
        run(_tensor(backend, z), _tensor(backend, np.array([0, 5, 1])))  # no error: XLA clamps


@needs("torch")
def test_check_values_under_inductor_fails_with_the_e812_text_not_inductors_bounds_error(rng):
    """torch.compile's default backend fuses the gather into a kernel with its own bounds check;
    the read waits for the E812 assertion, so that is the error a bad index gives."""
    import torch

    z = torch.tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
    checked = lossdsl.compile(_PICK, backend="torch", check_values=True)
    run = torch.compile(checked, fullgraph=True)  # Inductor
    good = torch.tensor([0, 1, 2, 2])
    torch.testing.assert_close(run(z, good), checked(z, good))
    with pytest.raises(RuntimeError, match="E812: target `k` holds a value, outside \\[0, 3\\)"):
        run(z, torch.tensor([0, 1, 3, 2]))


@needs("tensorflow")
def test_check_values_under_xla_is_refused_rather_than_silently_dropped(rng):
    """XLA drops graph assertions: with jit_compile=True the index check could not run, and a bad
    id would give a wrong number without a word, so the trace is refused."""
    import tensorflow as tf

    z = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
    good = tf.constant([0, 1, 2, 2])
    checked = lossdsl.compile(_PICK, backend="tensorflow", check_values=True)
    with pytest.raises(LossError) as err:
        tf.function(checked, jit_compile=True)(z, good)
    assert err.value.first.code == "E812" and "jit_compile=False" in str(err.value), str(err.value)
    np.testing.assert_allclose(float(tf.function(checked)(z, good)), float(checked(z, good)), rtol=1e-6)
    # Without check_values XLA compiles the loss as before (the check is off under tracing).
    plain = lossdsl.compile(_PICK, backend="tensorflow")
    np.testing.assert_allclose(float(tf.function(plain, jit_compile=True)(z, good)), float(plain(z, good)), rtol=1e-5)


# ---- without check_values: an id outside its axis under tracing is E812 or NaN, never a number ------

def _traced_paths():
    """(name, framework, run(f, z, k) -> loss as a float) for every way a loss is traced."""
    def jax_jit(f, z, k):
        import jax

        return float(jax.jit(f)(_tensor("jax", z), _tensor("jax", k)))

    def tf_function(f, z, k, xla=False):
        import tensorflow as tf

        return float(tf.function(f, jit_compile=xla)(_tensor("tensorflow", z), _tensor("tensorflow", k)))

    def torch_compile(f, z, k, backend="aot_eager"):
        import torch

        return float(torch.compile(f, fullgraph=True, backend=backend)(_tensor("torch", z), _tensor("torch", k)))

    def torch_func_vmap(f, z, k):
        import torch

        per_row = torch.func.vmap(lambda zz, kk: f(zz[None], kk[None]))(_tensor("torch", z), _tensor("torch", k))
        return float(per_row.mean())

    return [
        ("jax.jit", "jax", jax_jit),
        ("tf.function", "tensorflow", tf_function),
        ("tf.function(jit_compile=True)", "tensorflow", lambda f, z, k: tf_function(f, z, k, xla=True)),
        ("torch.compile(aot_eager)", "torch", torch_compile),
        ("torch.compile(inductor)", "torch", lambda f, z, k: torch_compile(f, z, k, backend="inductor")),
        ("torch.func.vmap", "torch", torch_func_vmap),
    ]


@pytest.mark.parametrize("name, framework, run", _traced_paths(), ids=[p[0] for p in _traced_paths()])
def test_an_id_outside_its_axis_under_tracing_gives_e812_or_nan_never_a_number(name, framework, run, rng):
    """The index check cannot raise while a compiler traces; there the framework's own gather
    would clamp (XLA), read garbage (GPUs) or fail with its own error. An in-graph assertion
    says E812 where the framework keeps one, and the loss is NaN where it does not."""
    pytest.importorskip(framework)
    z = rng.normal(size=(3, 4)).astype(np.float32)
    f = lossdsl.compile(_PICK, backend=framework)
    good = np.array([0, 1, 3])
    np.testing.assert_allclose(run(f, z, good), float(to_numpy(f(_tensor(framework, z), _tensor(framework, good)))),
                               rtol=1e-6)
    for bad in (np.array([0, 7, 1]), np.array([0, -1, 1])):
        try:
            value = run(f, z, bad)
        except LossError as e:  # the values were there to read after all
            assert e.first.code == "E812", str(e)
            continue
        except Exception as e:  # the framework's runtime error carrying the check's text
            text = str(e)
            assert "E812: target `k` holds a value, outside [0, 4)" in text, text[-2000:]
            continue
        assert np.isnan(value), f"{name} gave {value} for ids {bad.tolist()}"


@needs("jax")
def test_a_nan_loss_from_a_bad_id_under_jit_has_a_zero_gradient(rng):
    """No step is taken on a batch whose ids are wrong: the gradient is 0, not NaN or a clamped read's."""
    import jax
    import jax.numpy as jnp

    z = jnp.asarray(rng.normal(size=(3, 4)).astype(np.float32))
    f = lossdsl.compile(_PICK, backend="jax")
    value, grad = jax.jit(jax.value_and_grad(f))(z, jnp.asarray([0, 7, 1]))
    assert np.isnan(float(value)) and np.all(np.asarray(grad) == 0)
    value, grad = jax.jit(jax.value_and_grad(f))(z, jnp.asarray([0, 3, 1]))
    want_value, want_grad = jax.value_and_grad(f)(z, jnp.asarray([0, 3, 1]))
    np.testing.assert_allclose(float(value), float(want_value), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(want_grad), rtol=1e-5, atol=1e-7)


@needs("jax")
def test_a_segment_id_outside_its_groups_under_jit_gives_nan(rng):
    """A group id read by a segment reduction (group_weighted_cce) as well as by a gather."""
    import jax
    import jax.numpy as jnp

    f = lossdsl.compile(GROUP, backend="jax")
    logits, y, g = group_data(rng)
    args = (jnp.asarray(logits), jnp.asarray(y))
    np.testing.assert_allclose(float(jax.jit(f)(*args, jnp.asarray(g))), float(f(*args, jnp.asarray(g))), rtol=1e-6)
    assert np.isnan(float(jax.jit(f)(*args, jnp.asarray(np.where(g == 1, 7, 0)))))
