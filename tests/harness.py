"""Running a compiled loss on any backend with NumPy inputs (lossdsl.runner does the
plumbing), the tolerances of the parity contract, and closeness checks."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import lossdsl
from lossdsl.runner import to_backend, to_numpy  # noqa: F401  (re-exported for the tests)
from lossdsl.runner import value_and_grads as _value_and_grads

BACKENDS = ("numpy", "torch", "jax", "tensorflow")
GRAD_BACKENDS = ("torch", "jax", "tensorflow")

# Tolerances of the cross-backend contract (issue 4): float64 rtol 1e-7, float32 rtol 2e-4.
RTOL = {"float64": 1e-7, "float32": 2e-4}
ATOL = {"float64": 1e-9, "float32": 1e-5}

_DEVICE = os.environ.get("LOSSDSL_TEST_DEVICE", "cpu")  # "cuda" runs the torch and jax suites on a GPU


def device() -> str:
    return _DEVICE


def convert(backend: str, value: Any, dtype: str) -> Any:
    return to_backend(backend, value, dtype, _DEVICE)


def value_and_grads(f, backend: str, args: dict[str, Any], preds: list[str], dtype: str = "float64",
                    call_kwargs: dict | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return _value_and_grads(f, backend, args, preds, dtype, _DEVICE, **(call_kwargs or {}))


def assert_close(actual, expected, dtype: str, what: str, *, scale: float | None = None) -> None:
    """Elementwise closeness; `scale` (the largest magnitude involved) sets the absolute floor."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    rtol = RTOL[dtype]
    if scale is None:
        finite = np.abs(expected[np.isfinite(expected)])
        scale = float(finite.max()) if finite.size else 1.0
    atol = ATOL[dtype] + rtol * max(scale, 1.0) * (10 if dtype == "float32" else 1)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def compile_for(spec, backend: str, context: dict | None = None, params: dict | None = None,
                dtype: str = "float64"):
    ctx = {k: convert(backend, v, dtype) for k, v in (context or {}).items()}
    return lossdsl.compile(spec, backend=backend, context=ctx, params=params)


def compiled_value_and_grad(f, backend: str, x: dict, pred: str, **call):
    """Value and gradient with respect to `pred` of the API's default call, under the backend's
    compiler: torch.compile, jax.jit(jax.value_and_grad), tf.function(jit_compile=True)."""
    args = {k: convert(backend, v, "float64") for k, v in x.items()}
    if backend == "torch":
        import torch

        def step(**a):
            a[pred] = a[pred].clone().requires_grad_(True)
            v = f(**a, **call)
            return v, torch.autograd.grad(v, [a[pred]])[0]

        torch._dynamo.reset()
        v, g = torch.compile(step, dynamic=False)(**args)
    elif backend == "jax":
        import jax

        rest = {k: v for k, v in args.items() if k != pred}
        v, g = jax.jit(jax.value_and_grad(lambda p: f(**{pred: p}, **rest, **call)))(args[pred])
    else:
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def step(a):
            with tf.GradientTape() as tape:
                tape.watch(a[pred])
                v = f(**a, **call)
            return v, tape.gradient(v, a[pred])

        v, g = step(args)
    return to_numpy(v), to_numpy(g)


def assert_eager_and_compiled(f, backend: str, x: dict, pred: str, want_value, want_grad) -> None:
    """The API's default call gives `want_value` and, with respect to `pred`, `want_grad` in
    float64, eager and under the backend's compiler (`compiled_value_and_grad`)."""
    value, grads = value_and_grads(f, backend, x, [pred])
    assert_close(value, want_value, "float64", "value")
    assert_close(grads[pred], want_grad, "float64", "gradient")
    value, grad = compiled_value_and_grad(f, backend, x, pred)
    assert_close(value, want_value, "float64", "compiled value")
    assert_close(grad, want_grad, "float64", "compiled gradient")
