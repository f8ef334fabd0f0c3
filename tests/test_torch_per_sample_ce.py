"""A per-sample cross-entropy on torch (`pick(log_softmax(z), y)`, the `nll` kernel without a
reduction): `F.cross_entropy(..., reduction='none')` eager, a gather of `log_softmax` under
torch.compile, whose gradient inductor computes as one scatter; value and gradient are the
spec's either way."""

from __future__ import annotations

import ast

import numpy as np
from conftest import needs, spec
from harness import assert_eager_and_compiled

import lossdsl

FOCAL_LIKE = spec("""
    pred   z: float[B, C]
    target y: int[B]
    let logp_t = pick(log_softmax(z, axis=C), y)
    loss = -(1 - exp(logp_t))^2 * logp_t
""")


def _reference(z, y):
    logp = z - z.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    lp = logp[np.arange(len(y)), y]
    p = np.exp(lp)
    per = -((1 - p) ** 2) * lp
    d_lp = (2 * (1 - p) * p * lp - (1 - p) ** 2) / len(y)  # d mean / d logp_t
    onehot = np.eye(z.shape[1])[y]
    grad = d_lp[:, None] * (onehot - np.exp(logp))
    return per.mean(), grad


@needs("torch")
def test_a_per_sample_cross_entropy_is_a_gather_under_torch_compile_and_fused_eager():
    source = lossdsl.compile(FOCAL_LIKE, backend="torch").source
    (choice,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.IfExp)]
    assert ast.unparse(choice.test) == "torch.compiler.is_compiling()"
    compiled, eager = ast.unparse(choice.body), ast.unparse(choice.orelse)
    assert "torch.gather(torch.log_softmax(" in compiled and "cross_entropy" not in compiled
    assert eager.startswith("F.cross_entropy(") and "reduction='none'" in eager


@needs("torch")
def test_a_per_sample_cross_entropy_gives_the_specs_value_and_gradient_eager_and_compiled(rng):
    z, y = rng.normal(size=(7, 5)) * 3, rng.integers(0, 5, 7)
    f = lossdsl.compile(FOCAL_LIKE, backend="torch")
    want_value, want_grad = _reference(z, y)
    assert_eager_and_compiled(f, "torch", {"z": z, "y": y}, "z", want_value, want_grad)
