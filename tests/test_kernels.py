"""Kernel selection (lossdsl/kernels.py): a subexpression that is exactly a loss a framework
ships fused is printed as that call, recognised by the IR's structure, and gives the value and
gradient of the decomposed form, on random inputs and at every kink (r == 0, |r| == delta,
logits == 0, ties)."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl.printing import printer_for

from conftest import available
from harness import assert_close, value_and_grads

SPECS = {
    "mse": ("pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean((a - b)^2)\n", "F.mse_loss"),
    # An elementwise kernel under a partial mean: torch prefers a backward derived for the whole
    # loss (lossdsl/autodiff.py) to F.mse_loss(reduction='none'); TensorFlow keeps the kernel.
    "mse_per_sample": ("pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean(square(a - b), axis=D)\n",
                       "class _Loss(torch.autograd.Function)"),
    "l1": ("pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean(abs(a - b))\n", "F.l1_loss"),
    "huber": ("pred a: float[B, D]\ntarget b: float[B, D]\nlet r = abs(a - b)\n"
              "loss = mean(where(r <= 0.5, 0.5 * r^2, 0.5 * (r - 0.5 * 0.5)))\n", "F.huber_loss"),
    "huber_written_otherwise": ("pred a: float[B, D]\ntarget b: float[B, D]\nlet r = abs(b - a)\n"
                                "loss = mean(where(r < 2.0, r * r / 2, 2.0 * r - 2.0))\n", "F.huber_loss"),
    "smooth_l1": ("pred a: float[B, D]\ntarget b: float[B, D]\nlet r = abs(a - b)\n"
                  "loss = mean(where(r < 0.5, 0.5 * r^2 / 0.5, r - 0.25))\n", "F.smooth_l1_loss"),
    "bce_logits": ("pred z: float[B, D]\ntarget y: float[B, D]\n"
                   "loss = -mean(y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z)))\n",
                   "F.binary_cross_entropy_with_logits"),
    "bce_pos_weight": ("pred z: float[B, D]\ntarget y: float[B, D]\nparam pw: float = 3.0\n"
                       "loss = -mean(pw * y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z), axis=D)\n",
                       "pos_weight=p_pw"),
    "soft_ce": ("pred z: float[B, C]\ntarget y: float[B, C]\nloss = -sum(y * log_softmax(z), axis=C)\n",
                "F.cross_entropy(v_z, v_y, reduction='none')"),
    "nll": ("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z), k))\n", "F.cross_entropy"),
    "nll_per_sample": ("pred z: float[B, C]\ntarget k: int[B]\nloss = -pick(log_softmax(z), k)\n",
                       "F.cross_entropy(v_z, v_k, reduction='none')"),
    "nll_weighted": ("pred z: float[B, C]\ntarget k: int[B]\ncontext w: float[C]\n"
                     "loss = sum(w[k] * -pick(log_softmax(z), k)) / sum(w[k])\n", "weight=c_w"),
    # A per-sample kernel inside a larger expression: its printed form must bind as one operand
    # (JAX's nll is `logsumexp(z) - z[k]`, once printed unparenthesised after `0.5 *`).
    "nll_scaled": ("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(0.5 * -pick(log_softmax(z), k))\n",
                   "def compute"),
    "mse_scaled": ("pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean(0.5 * (a - b)^2, axis=D)\n",
                   "def compute"),
    "bce_logits_scaled": ("pred z: float[B, D]\ntarget y: float[B, D]\n"
                          "loss = mean(0.5 * -(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)), axis=D)\n",
                          "def compute"),
}
NOT_KERNELS = {  # spec, the kernel it must not be taken for
    "not_huber": ("pred a: float[N]\ntarget b: float[N]\nlet r = abs(a - b)\n"
                  "loss = mean(where(r <= 1.0, 0.5 * r^2, r))\n", "huber"),  # not continuous at the knot
    "not_smooth_l1": ("pred a: float[N]\ntarget b: float[N]\nlet r = abs(a - b)\n"
                      "loss = mean(where(r < 2.0, r^2, r - 1.0))\n", "smooth_l1"),
    "broadcast_mse": ("pred a: float[B, D]\ntarget b: float[D]\nloss = mean((a - b)^2)\n", "mse"),  # F.mse_loss warns
}


def inputs(name, rng):
    b, d = 5, 4
    if name == "soft_ce":
        z = rng.normal(size=(b, d))
        z[0, :2] = 1.0
        y = rng.uniform(size=(b, d))
        return {"z": z, "y": y / y.sum(1, keepdims=True)}, {}
    if name.startswith("nll"):
        z = rng.normal(size=(b, d))
        z[0, :2] = 1.0  # a tie
        return {"z": z, "k": rng.integers(0, d, b)}, ({"w": rng.uniform(0.5, 2, d)} if "weighted" in name else {})
    if name.startswith("bce"):
        z = rng.normal(size=(b, d))
        z[0, 0] = 0.0  # the kink of the hand-written forms
        return {"z": z, "y": (rng.random((b, d)) < 0.5).astype(float)}, {}
    a = rng.normal(size=(b, d))
    bb = rng.normal(size=(b, d))
    bb[0, 0] = a[0, 0]  # r == 0
    knot = {"huber": 0.5, "huber_written_otherwise": 2.0, "smooth_l1": 0.5}.get(name)
    if knot is not None:
        bb[0, 1] = a[0, 1] - knot  # |r| == knot, both signs
        bb[0, 2] = a[0, 2] + knot
    return {"a": a, "b": bb}, {}


def decomposed(monkeypatch, backend):
    monkeypatch.setattr(printer_for(backend), "KERNELS", {})


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
@pytest.mark.parametrize("name", list(SPECS))
def test_fused_kernel_is_selected_and_matches_the_decomposed_form(name, backend, rng, monkeypatch):
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    src, marker = SPECS[name]
    args, ctx = inputs(name, rng)
    fused = lossdsl.compile(src, backend=backend, context=ctx)
    kernel = name.split("_scaled")[0].split("_per_sample")[0].split("_weighted")[0].split("_written")[0]
    if kernel in printer_for(backend).KERNELS:
        if backend == "torch":
            assert marker in fused.source, fused.source
        assert "def compute" in fused.source
    preds = [d.name for d in fused.spec.preds]
    value, grads = value_and_grads(fused, backend, args, preds, "float64")
    with monkeypatch.context() as m:
        decomposed(m, backend)
        plain = lossdsl.compile(src, backend=backend, context=ctx)
        assert "F.mse_loss" not in plain.source and "sparse_softmax" not in plain.source
        ref_value, ref_grads = value_and_grads(plain, backend, args, preds, "float64")
    assert_close(value, ref_value, "float64", f"{name} value")
    for p in preds:
        assert_close(grads[p], ref_grads[p], "float64", f"{name} d/d{p}")


@pytest.mark.parametrize("name", list(NOT_KERNELS))
def test_near_misses_are_not_fused(name):
    from lossdsl.passes import lower
    from lossdsl.ir import Apply, topological

    src, kernel = NOT_KERNELS[name]
    checked = lossdsl.check(src)
    kernels = printer_for("torch").KERNELS
    chosen = {n.attr("kernel") for n in topological(lower(checked, kernels=kernels))
              if isinstance(n, Apply) and n.fn == "kernel"}
    assert kernel not in chosen


def test_kernels_are_only_marked_for_backends_that_have_them():
    from lossdsl.api import generate_source

    src = SPECS["huber"][0]
    assert "F.huber_loss" in generate_source(src, "torch")
    assert "where" in generate_source(src, "jax")
