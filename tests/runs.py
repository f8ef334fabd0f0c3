"""The six runs a function is checked on against a float64 reference: NumPy, PyTorch's own
autograd and its derived backward (from every size, so that it runs or steps aside), JAX under
`jit`, TensorFlow eager and under `tf.function`; and finite differences for the gradient."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.codegen

from conftest import available
from harness import BACKENDS, assert_close, value_and_grads

RUNS = [
    ("numpy", "eager"),
    ("torch", "autograd"),
    ("torch", "derived-backward"),
    ("jax", "jit"),
    ("tensorflow", "eager"),
    ("tensorflow", "tf.function"),
]


def _missing(backend: str):
    return pytest.mark.skipif(not available(backend), reason=f"MISSING FRAMEWORK: {backend} is not installed")


RUN_PARAMS = [pytest.param(b, m, marks=_missing(b), id=f"{b}-{m}") for b, m in RUNS]
BACKEND_PARAMS = [pytest.param(b, marks=_missing(b)) for b in BACKENDS]


def spec_preds(spec: str) -> list[str]:
    return [line.split()[1].rstrip(":") for line in spec.splitlines() if line.startswith("pred ")]


def numeric_grad(reference, args: dict, pred: str, h: float = 1e-6) -> np.ndarray:
    """Central differences of `reference(args)` with respect to `args[pred]`."""
    x = args[pred]
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        g[i] = (reference({**args, pred: up}) - reference({**args, pred: down})) / (2 * h)
    return g


def compiled_for_run(spec: str, backend: str, mode: str, monkeypatch):
    if mode == "autograd":  # the framework's own autodiff: the derived backward only from a size up
        monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 1 << 30)
    elif mode == "derived-backward":  # from every size: it runs, or steps aside where it has no rule
        monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 0)
    f = lossdsl.compile(spec, backend=backend)
    if mode == "tf.function":
        import tensorflow as tf

        f = tf.function(f)
    return f


def assert_matches_reference(name: str, spec: str, args: dict, reference, backend: str, mode: str, monkeypatch):
    """Value against `reference(args)` in float64, each pred's gradient against its finite
    differences (good to about 1e-8, so at the float32 tolerance)."""
    f = compiled_for_run(spec, backend, mode, monkeypatch)
    preds = spec_preds(spec) if backend != "numpy" else []
    value, grads = value_and_grads(f, backend, args, preds)
    assert_close(value, reference(args), "float64", f"{name} value on {backend}/{mode}")
    for p in preds:
        assert_close(grads[p], numeric_grad(reference, args, p), "float32", f"{name} d/d{p} on {backend}/{mode}")
