"""Every example on every backend, float64 and float32: value and gradient with respect to
every pred against an independent float64 reference written by hand (tests/references.py),
on inputs drawn afresh each run (the seed is in the report header)."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl.sampling import random_inputs

from conftest import EXAMPLES, needs
from harness import BACKENDS, assert_close, compile_for, value_and_grads
from references import REFERENCES

NAMES = sorted(p.stem for p in EXAMPLES.glob("*.loss"))


def test_every_example_has_a_reference():
    assert set(NAMES) == set(REFERENCES)


def _round(value, dtype):
    if isinstance(value, dict):
        return {k: _round(v, dtype) for k, v in value.items()}
    v = np.asarray(value)
    return v.astype(np.float32).astype(np.float64) if dtype == "float32" and v.dtype.kind == "f" else v


def reference(name, args, ctx, prm, preds):
    import torch

    def t(v):
        if isinstance(v, dict):
            return {k: t(x) for k, x in v.items()}
        return torch.as_tensor(np.asarray(v))

    a = {k: t(v) for k, v in args.items()}
    for p in preds:
        a[p] = a[p].clone().requires_grad_(True)
    value = REFERENCES[name](a, {k: t(v) for k, v in ctx.items()}, prm)
    grads = torch.autograd.grad(value, [a[p] for p in preds], allow_unused=True)
    return value.detach().numpy(), {p: (g.numpy() if g is not None else np.zeros(np.shape(args[p])))
                                     for p, g in zip(preds, grads)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
@needs("torch")
def test_example_matches_its_reference(name, backend, dtype, rng):
    if backend != "numpy":
        pytest.importorskip({"tensorflow": "tensorflow"}.get(backend, backend),
                            reason=f"MISSING FRAMEWORK: {backend} is not installed")
    path = EXAMPLES / f"{name}.loss"
    checked = lossdsl.check(path)
    args, ctx, prm = random_inputs(checked, rng)
    args, ctx = _round(args, dtype), _round(ctx, dtype)
    preds = [d.name for d in checked.preds]
    ref_value, ref_grads = reference(name, args, ctx, prm, preds)
    f = compile_for(path, backend, ctx, prm, dtype)
    value, grads = value_and_grads(f, backend, args, preds, dtype)
    assert_close(value, ref_value, dtype, f"{name} value on {backend}/{dtype}")
    for p in grads:
        assert_close(grads[p], ref_grads[p], dtype, f"{name} d/d{p} on {backend}/{dtype}")
