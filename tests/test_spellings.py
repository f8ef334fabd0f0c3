"""Equivalent spellings of a loss reach the same fused call (lossdsl/canonical.py puts the IR in a
normal form before kernel selection): three spellings each of Huber, MSE and cross-entropy,
the std one among them, call `F.huber_loss`, `F.mse_loss` and `F.cross_entropy` on torch (the
framework function is spied on at the call the API makes by default), TensorFlow's and JAX's
fused cross-entropy and TensorFlow's squared difference; every spelling gives the float64
reference's value and gradient on every backend, eagerly and under each framework's compiler."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.std

from conftest import available
from harness import BACKENDS, assert_close, compiled_value_and_grad, convert, to_numpy, value_and_grads

HEAD = {
    "huber": "pred yhat: float[B, D]\ntarget y: float[B, D]\n",
    "mse": "pred yhat: float[B, D]\ntarget y: float[B, D]\n",
    "ce": "pred logits: float[B, C]\ntarget y: int[B]\n",
}
SPELLINGS = {
    "huber": {
        "std": lossdsl.std.path("huber"),
        "residual_times_itself": HEAD["huber"] + "let r = yhat - y\n"
        "loss = mean(where(abs(r) <= 1.0, 0.5 * r * r, abs(r) - 0.5))\n",
        "per_sample_reversed": HEAD["huber"] + "let d = abs(y - yhat)\n"
        "loss = mean(where(1.0 > d, square(d) / 2, 1.0 * (d - 0.5)), axis=D)\n",
    },
    "mse": {
        "std": lossdsl.std.path("mse"),
        "product": HEAD["mse"] + "loss = mean((y - yhat) * (y - yhat))\n",
        "abs_squared_per_sample": HEAD["mse"] + "loss = mean(abs(yhat - y)^2, axis=D)\n",
    },
    "ce": {
        "std": lossdsl.std.path("cross_entropy"),
        "pick_of_log_softmax": HEAD["ce"] + "loss = mean(-pick(log_softmax(logits, axis=C), y))\n",
        "logsumexp_minus_logit": HEAD["ce"] + "loss = logsumexp(logits, axis=C) - pick(logits, y)\n",
    },
}
CASES = [(family, spelling) for family, spellings in SPELLINGS.items() for spelling in spellings]
# The framework function each family reaches, by backend (a module attribute, spied on at the call).
CALLS = {
    "torch": {
        "huber": ("torch.nn.functional", "huber_loss"),
        "mse": ("torch.nn.functional", "mse_loss"),
        "ce": ("torch.nn.functional", "cross_entropy"),
    },
    "tensorflow": {
        "mse": ("tensorflow.math", "squared_difference"),
        "ce": ("tensorflow.nn", "sparse_softmax_cross_entropy_with_logits"),
    },
    "jax": {"ce": ("jax.nn", "logsumexp")},
}


def _inputs(family, rng, b=6, d=5):
    if family == "ce":
        return {"logits": rng.normal(size=(b, d)), "y": rng.integers(0, d, b)}
    yhat = rng.normal(size=(b, d)) * 2
    y = rng.normal(size=(b, d)) * 2
    y[0, 0] = yhat[0, 0]  # r == 0
    y[0, 1] = yhat[0, 1] - 1.0  # |r| == the knot, both signs
    y[0, 2] = yhat[0, 2] + 1.0
    return {"yhat": yhat, "y": y}


def _reference(family, x):
    """The mean loss and its gradient with respect to the pred, in float64 NumPy."""
    if family == "ce":
        z = x["logits"]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        onehot = np.eye(z.shape[1])[x["y"]]
        return -np.mean(np.log(np.sum(p * onehot, 1))), (p - onehot) / z.shape[0]
    r = x["yhat"] - x["y"]
    if family == "mse":
        return np.mean(r * r), 2 * r / r.size
    quad = np.abs(r) <= 1.0
    return np.mean(np.where(quad, 0.5 * r * r, np.abs(r) - 0.5)), np.where(quad, r, np.sign(r)) / r.size


def _require(backend):
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")


# TensorFlow's and JAX's op-by-op Huber, and JAX's MSE, are as fast as their framework's (docs/benchmarks.md).
FUSED = [(f, s, b) for f, s in CASES for b in sorted(CALLS) if f in CALLS[b]]


@pytest.mark.parametrize(("family", "spelling", "backend"), FUSED)
def test_each_spelling_reaches_the_framework_function_at_the_default_call(family, spelling, backend, rng, monkeypatch):
    import importlib

    _require(backend)
    target = CALLS[backend][family]
    module = importlib.import_module(target[0])
    real = getattr(module, target[1])
    calls = []

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(module, target[1], spy)
    f = lossdsl.compile(SPELLINGS[family][spelling], backend=backend)
    x = _inputs(family, rng)
    value = f(**{k: convert(backend, v, "float32") for k, v in x.items()})
    assert calls, f"{family} spelled {spelling!r} does not call {target[0]}.{target[1]} on {backend}:\n{f.source}"
    assert_close(to_numpy(value), _reference(family, x)[0], "float32", f"{family} {spelling} on {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("family", "spelling"), CASES)
def test_each_spelling_gives_the_reference_value_and_gradient(family, spelling, backend, rng):
    _require(backend)
    x = _inputs(family, rng)
    f = lossdsl.compile(SPELLINGS[family][spelling], backend=backend)
    pred = "logits" if family == "ce" else "yhat"
    value, grads = value_and_grads(f, backend, x, [pred], "float64")
    ref, ref_grad = _reference(family, x)
    assert_close(value, ref, "float64", f"{family} {spelling} on {backend}")
    if backend != "numpy":
        assert_close(grads[pred], ref_grad, "float64", f"d {family} {spelling} on {backend}")


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
@pytest.mark.parametrize(("family", "spelling"), CASES)
def test_each_spelling_gives_the_reference_value_and_gradient_compiled(family, spelling, backend, rng):
    _require(backend)
    x = _inputs(family, rng)
    f = lossdsl.compile(SPELLINGS[family][spelling], backend=backend)
    value, grad = compiled_value_and_grad(f, backend, x, "logits" if family == "ce" else "yhat")
    ref, ref_grad = _reference(family, x)
    assert_close(value, ref, "float64", f"{family} {spelling} compiled on {backend}")
    assert_close(grad, ref_grad, "float64", f"d {family} {spelling} compiled on {backend}")
