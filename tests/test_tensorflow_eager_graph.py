"""An eager TensorFlow call runs the loss's compute as one graph (backends/tensorflow_backend.py,
`TensorflowBackend.wrap_compute`): traced once per shape, dtype and static argument (a param given as a Python
number), then called; a param given as a variable takes a `tf.function`; inside a caller's
`tf.function` the compute is traced into the caller's graph. Values, gradients and second
derivatives are those of the loss wherever it runs."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.std

from conftest import needs


def _cosine(yhat, y, eps=1e-8):
    n = np.maximum(np.linalg.norm(yhat, axis=1), eps) * np.maximum(np.linalg.norm(y, axis=1), eps)
    return np.mean(1 - np.sum(yhat * y, axis=1) / n)


def _huber(yhat, y, delta=1.0):
    r = np.abs(yhat - y)
    return np.mean(np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)))


def _value_and_grad(tf, f, x, *rest, **params):
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = f(x, *rest, **params)
    return float(value), tape.gradient(value, x).numpy()


def _numeric_grad(fn, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (fn(x + e) - fn(x - e)) / (2 * h)
    return g


def _counting_norm(monkeypatch, f) -> list:
    """Each call of the runtime's `norm` (the Python that builds the loss's ops) recorded."""
    rt = f._backend.rt
    norm, calls = rt.norm, []

    def counted(*args):
        calls.append(args)
        return norm(*args)

    monkeypatch.setattr(rt, "norm", counted)
    return calls


@needs("tensorflow")
def test_an_eager_call_traces_the_compute_once_per_shape_and_dtype_and_then_runs_the_graph(rng, monkeypatch):
    import tensorflow as tf

    f = lossdsl.std.compile("cosine", backend="tensorflow")
    calls = _counting_norm(monkeypatch, f)
    for shape, dtype, traces in [((4, 3), "float64", 1), ((4, 3), "float64", 1), ((5, 3), "float64", 2),
                                 ((5, 3), "float32", 3), ((4, 3), "float64", 3)]:
        a, b = rng.normal(size=shape), rng.normal(size=shape)
        value, grad = _value_and_grad(tf, f, tf.constant(a.astype(dtype)), tf.constant(b.astype(dtype)))
        assert len(calls) == 2 * traces, f"{len(calls) // 2} traces after a call of shape {shape}, {dtype}"
        tol = 1e-12 if dtype == "float64" else 1e-5
        np.testing.assert_allclose(value, _cosine(a, b), rtol=tol)
        np.testing.assert_allclose(grad, _numeric_grad(lambda x: _cosine(x, b), a), rtol=1e-5 if tol < 1e-6 else 1e-2,
                                   atol=1e-7 if tol < 1e-6 else 1e-4)


@needs("tensorflow")
def test_an_eager_loss_keeps_a_bounded_number_of_graphs_and_traces_a_dropped_one_again(rng, monkeypatch):
    import tensorflow as tf

    from lossdsl.backends import tensorflow_backend

    monkeypatch.setattr(tensorflow_backend, "EAGER_GRAPHS_KEPT", 2)
    f = lossdsl.std.compile("cosine", backend="tensorflow")
    calls = _counting_norm(monkeypatch, f)
    for rows, traces in [(2, 1), (3, 2), (4, 3), (4, 3), (2, 4)]:  # 2 was dropped when 4 came
        a, b = rng.normal(size=(rows, 3)), rng.normal(size=(rows, 3))
        value, _ = _value_and_grad(tf, f, tf.constant(a), tf.constant(b))
        assert len(calls) == 2 * traces, f"{len(calls) // 2} traces after {rows} rows"
        np.testing.assert_allclose(value, _cosine(a, b), rtol=1e-12)


@needs("tensorflow")
def test_a_param_as_a_python_number_a_tensor_or_a_variable_gives_its_own_value_and_gradient_eagerly(rng):
    import tensorflow as tf

    f = lossdsl.std.compile("huber", backend="tensorflow")
    a, b = rng.normal(size=(6, 4)) * 2, rng.normal(size=(6, 4))
    x, y = tf.constant(a), tf.constant(b)
    for delta in (1.0, 0.5, 0.7, 0.5):  # numbers: a graph each, kept
        value, grad = _value_and_grad(tf, f, x, y, delta=delta)
        np.testing.assert_allclose(value, _huber(a, b, delta), rtol=1e-12)
        np.testing.assert_allclose(grad, _numeric_grad(lambda v, d=delta: _huber(v, b, d), a), rtol=1e-5, atol=1e-9)
    for delta in (tf.constant(0.3, tf.float64), tf.Variable(0.3, dtype=tf.float64)):
        value, grad = _value_and_grad(tf, f, x, y, delta=delta)
        np.testing.assert_allclose(value, _huber(a, b, 0.3), rtol=1e-12)
        np.testing.assert_allclose(grad, _numeric_grad(lambda v: _huber(v, b, 0.3), a), rtol=1e-5, atol=1e-9)
    delta = tf.Variable(0.3, dtype=tf.float64)  # a variable's own gradient reaches it through the graph
    with tf.GradientTape() as tape:
        value = f(x, y, delta=delta)
    want = (_huber(a, b, 0.3 + 1e-6) - _huber(a, b, 0.3 - 1e-6)) / 2e-6
    np.testing.assert_allclose(float(tape.gradient(value, delta)), want, rtol=1e-5)


@needs("tensorflow")
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "jit_compile"])
def test_inside_a_callers_tf_function_the_compute_is_traced_into_the_callers_graph(rng, monkeypatch, jit_compile):
    import tensorflow as tf

    f = lossdsl.std.compile("cosine", backend="tensorflow")
    calls = _counting_norm(monkeypatch, f)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    step = tf.function(lambda x, y: _value_and_grad_graph(tf, f, x, y), jit_compile=jit_compile)
    for _ in range(3):
        value, grad = step(tf.constant(a), tf.constant(b))
        np.testing.assert_allclose(float(value), _cosine(a, b), rtol=1e-12)
        np.testing.assert_allclose(grad.numpy(), _numeric_grad(lambda x: _cosine(x, b), a), rtol=1e-5, atol=1e-9)
    assert len(calls) == 2  # the caller's one trace; no graph of the loss's own


def _value_and_grad_graph(tf, f, x, y):
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = f(x, y)
    return value, tape.gradient(value, x)


@needs("tensorflow")
def test_nested_tapes_differentiate_the_graph_again(rng):
    import tensorflow as tf

    f = lossdsl.compile("pred x: float[N]\ntarget y: float[N]\nloss = x * x * x * y\n",
                        backend="tensorflow")
    a, b, v = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5)
    x, y = tf.constant(a), tf.constant(b)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            value = f(x, y, reduction="sum")
        g = inner.gradient(value, x)
        gv = tf.reduce_sum(g * tf.constant(v))
    hv = outer.gradient(gv, x)
    np.testing.assert_allclose(g.numpy(), 3 * a * a * b, rtol=1e-12)
    np.testing.assert_allclose(hv.numpy(), 6 * a * b * v, rtol=1e-12)
