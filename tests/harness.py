"""Running a compiled loss on any backend with NumPy inputs, and reading back its value
and its gradient with respect to every pred, as float64 NumPy arrays."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

import lossdsl

BACKENDS = ("numpy", "torch", "jax", "tensorflow")
GRAD_BACKENDS = ("torch", "jax", "tensorflow")

# Tolerances of the cross-backend contract (issue 4): float64 rtol 1e-7, float32 rtol 2e-4.
RTOL = {"float64": 1e-7, "float32": 2e-4}
ATOL = {"float64": 1e-9, "float32": 1e-5}

_DEVICE = os.environ.get("LOSSDSL_TEST_DEVICE", "cpu")  # "cuda" runs the torch and jax suites on a GPU


def device() -> str:
    return _DEVICE


def _np_dtype(name: str):
    return {"float64": np.float64, "float32": np.float32, "float16": np.float16}[name]


def convert(backend: str, value: Any, dtype: str) -> Any:
    """A NumPy value (or a dict of them) as the backend's tensor; floats in `dtype`."""
    if isinstance(value, dict):
        return {k: convert(backend, v, dtype) for k, v in value.items()}
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        arr = arr.astype(_np_dtype(dtype))
    if backend == "numpy":
        return arr
    if backend == "torch":
        import torch

        t = torch.as_tensor(arr)
        return t.to(_DEVICE) if _DEVICE != "cpu" else t
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(arr)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.convert_to_tensor(arr)
    raise ValueError(backend)


def to_numpy(x: Any) -> np.ndarray:
    if x is None:
        return None
    if hasattr(x, "detach"):
        return x.detach().cpu().double().numpy() if x.dtype.is_floating_point else x.detach().cpu().numpy()
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    arr = np.asarray(x)
    return arr.astype(np.float64) if arr.dtype.kind == "f" else arr


def value_and_grads(f, backend: str, args: dict[str, Any], preds: list[str], dtype: str = "float64",
                    call_kwargs: dict | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Call `f` (compiled for `backend`) on NumPy `args`; return the value and d value / d pred."""
    call_kwargs = dict(call_kwargs or {})
    conv = {k: convert(backend, v, dtype) for k, v in args.items()}
    if backend == "numpy":
        return to_numpy(f(**conv, **call_kwargs)), {}
    if backend == "torch":
        import torch

        for p in preds:
            conv[p] = conv[p].clone().requires_grad_(True)
        out = f(**conv, **call_kwargs)
        total = out.sum() if out.dim() else out
        grads = torch.autograd.grad(total, [conv[p] for p in preds], allow_unused=True)
        return to_numpy(out), {p: _zeros_if_none(to_numpy(g), args[p]) for p, g in zip(preds, grads)}
    if backend == "jax":
        import jax

        def fn(pvals):
            out = f(**{**conv, **pvals}, **call_kwargs)
            return out.sum(), out

        (_, out), grads = jax.value_and_grad(fn, has_aux=True)({p: conv[p] for p in preds})
        return to_numpy(out), {p: to_numpy(grads[p]) for p in preds}
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            for p in preds:
                tape.watch(conv[p])
            out = f(**conv, **call_kwargs)
            total = tf.reduce_sum(out)
        grads = tape.gradient(total, [conv[p] for p in preds])
        return to_numpy(out), {p: _zeros_if_none(to_numpy(g), args[p]) for p, g in zip(preds, grads)}
    raise ValueError(backend)


def _zeros_if_none(g, like):
    return np.zeros(np.shape(like)) if g is None else g


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
