"""The standard library (lossdsl.std): each loss on every backend against the framework
function it says it matches (torch.nn.functional in float64, Keras where it has one), with
non-default params, ignored labels, zero targets and clamped variances among the inputs."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.std
from lossdsl.sampling import random_inputs

from conftest import available, needs
from harness import BACKENDS, assert_close, compile_for, compiled_value_and_grad, convert, value_and_grads

PARAMS = {"huber": {"delta": 0.7}, "smooth_l1": {"beta": 0.6}, "cross_entropy": {"label_smoothing": 0.1},
          "weighted_cross_entropy": {"label_smoothing": 0.2}, "binary_cross_entropy": {"pos_weight": 2.5},
          "focal": {"alpha": 0.3, "gamma": 1.5}, "margin_ranking": {"margin": 0.3}, "triplet": {"margin": 0.8},
          "gaussian_nll": {"eps": 1e-3}}


def prepare(name, args, ctx, rng):
    """Inputs that exercise each loss's special cases."""
    if name in ("cross_entropy", "weighted_cross_entropy"):
        y = args["y"].copy()
        y[rng.random(y.shape) < 0.3] = -100  # some labels ignored
        y[0] = 1
        args["y"] = y
        if "class_w" in ctx:
            ctx["class_w"] = rng.uniform(0.2, 2.0, ctx["class_w"].shape)
    if name == "kl_div":
        p = np.exp(args["p"]) / np.exp(args["p"]).sum(-1, keepdims=True)
        p[:, 0] = 0.0  # zero targets count 0
        args["p"] = p / p.sum(-1, keepdims=True)
        args["log_q"] = args["log_q"] - np.log(np.exp(args["log_q"]).sum(-1, keepdims=True))
    if name == "gaussian_nll":
        var = np.abs(args["var"]) + 0.1
        var.flat[0] = 1e-5  # below eps: clamped for the value, gradient passes through
        args["var"] = var
    if name in ("binary_cross_entropy", "focal"):
        args["y"] = (rng.random(args["y"].shape) < 0.5).astype(np.float64)
    if name in ("hinge", "margin_ranking"):
        args["y"] = np.where(rng.random(args["y"].shape) < 0.5, -1.0, 1.0)
    if name == "poisson_nll":
        args["y"] = rng.poisson(2.0, args["y"].shape).astype(np.float64)
    return args, ctx


def reference(name, a, ctx, prm):
    import torch
    import torch.nn.functional as F

    if name == "mse":
        return F.mse_loss(a["yhat"], a["y"])
    if name == "mae":
        return F.l1_loss(a["yhat"], a["y"])
    if name == "huber":
        return F.huber_loss(a["yhat"], a["y"], delta=prm["delta"])
    if name == "smooth_l1":
        return F.smooth_l1_loss(a["yhat"], a["y"], beta=prm["beta"])
    if name == "log_cosh":
        return torch.mean(torch.log(torch.cosh(a["yhat"] - a["y"])))
    if name == "cross_entropy":
        return F.cross_entropy(a["logits"], a["y"], label_smoothing=prm["label_smoothing"], ignore_index=-100)
    if name == "weighted_cross_entropy":
        return F.cross_entropy(a["logits"], a["y"], weight=ctx["class_w"], ignore_index=-100,
                               label_smoothing=prm["label_smoothing"])
    if name == "binary_cross_entropy":
        pw = torch.tensor(prm["pos_weight"], dtype=a["logits"].dtype)
        return F.binary_cross_entropy_with_logits(a["logits"], a["y"], pos_weight=pw)
    if name == "focal":  # torchvision.ops.sigmoid_focal_loss, written out
        x, y = a["logits"], a["y"]
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        loss = ce * (1 - p_t) ** prm["gamma"]
        loss = (prm["alpha"] * y + (1 - prm["alpha"]) * (1 - y)) * loss
        return loss.mean()
    if name == "kl_div":
        return F.kl_div(a["log_q"], a["p"], reduction="batchmean")
    if name == "poisson_nll":
        return F.poisson_nll_loss(a["log_rate"], a["y"], log_input=True, full=False)
    if name == "gaussian_nll":
        return F.gaussian_nll_loss(a["mu"], a["y"], a["var"], full=False, eps=prm["eps"])
    if name == "hinge":
        return torch.mean(torch.clamp(1 - a["y"] * a["yhat"], min=0))
    if name == "margin_ranking":
        return F.margin_ranking_loss(a["x1"], a["x2"], a["y"], margin=prm["margin"])
    if name == "triplet":
        return F.triplet_margin_loss(a["anchor"], a["positive"], a["negative"], margin=prm["margin"], eps=1e-6)
    if name == "cosine":
        return torch.mean(1 - F.cosine_similarity(a["yhat"], a["y"], dim=1, eps=1e-8))
    raise KeyError(name)


NAMES = lossdsl.std.names()


def test_std_names_and_paths():
    assert {"mse", "mae", "huber", "cross_entropy", "binary_cross_entropy", "kl_div", "focal"} <= set(NAMES)
    assert lossdsl.std.path("huber").read_text().startswith("# huber")
    with pytest.raises(lossdsl.LossError) as info:
        lossdsl.std.path("hubber")
    assert "did you mean 'huber'" in str(info.value)


def test_std_specs_check_without_warnings():
    for name in NAMES:
        assert lossdsl.check(lossdsl.std.path(name)).warnings == [], name


def _inputs(name, rng, params=None):
    checked = lossdsl.check(lossdsl.std.path(name))
    args, ctx, _ = random_inputs(checked, rng, {"B": 6, "D": 5, "C": 4})
    args, ctx = prepare(name, args, ctx, rng)
    given = PARAMS.get(name, {}) if params is None else params
    return checked, args, ctx, {**{d.name: d.default for d in checked.of_kind("param")}, **given}


def _reference_and_grads(name, args, ctx, prm, preds):
    import torch

    ta = {k: torch.as_tensor(v) for k, v in args.items()}
    for p in preds:
        ta[p].requires_grad_(True)
    ref = reference(name, ta, {k: torch.as_tensor(v) for k, v in ctx.items()}, prm)
    return ref.detach().numpy(), [g.numpy() for g in torch.autograd.grad(ref, [ta[p] for p in preds])]


# How the params reach the loss: a fused call takes a param as a Python number (lossdsl/kernels.py)
# and falls back to the decomposed form for a tensor, so each way is checked against the framework.
PARAM_WAYS = [(n, "defaults") for n in NAMES] + [
    (n, way) for n in NAMES if n in PARAMS for way in ("numbers at the call", "tensors at the call")
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "way"), PARAM_WAYS)
@needs("torch")
def test_std_loss_matches_the_framework_function_however_its_params_are_given(name, way, backend, rng):
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    checked, args, ctx, prm = _inputs(name, rng, params={} if way == "defaults" else None)
    preds = [d.name for d in checked.preds]
    ref, ref_grads = _reference_and_grads(name, args, ctx, prm, preds)
    f = compile_for(lossdsl.std.path(name), backend, ctx)
    call = {}
    if way == "numbers at the call":
        call = dict(PARAMS[name])
    elif way == "tensors at the call":
        call = {k: convert(backend, np.asarray(v), "float64") for k, v in PARAMS[name].items()}
    value, grads = value_and_grads(f, backend, args, preds, "float64", call)
    assert_close(value, ref, "float64", f"{name} on {backend}, {way}")
    for p, g in zip(preds, ref_grads) if backend != "numpy" else ():
        assert_close(grads[p], g, "float64", f"d {name}/d {p} on {backend}, {way}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
@needs("torch")
def test_std_loss_matches_the_framework_function(name, backend, dtype, rng):
    import torch

    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    checked, args, ctx, prm = _inputs(name, rng)
    if dtype == "float32":
        args = {k: (v.astype(np.float32).astype(np.float64) if v.dtype.kind == "f" else v) for k, v in args.items()}
    preds = [d.name for d in checked.preds]
    ta = {k: torch.as_tensor(v) for k, v in args.items()}
    for p in preds:
        ta[p].requires_grad_(True)
    ref = reference(name, ta, {k: torch.as_tensor(v) for k, v in ctx.items()}, prm)
    ref_grads = torch.autograd.grad(ref, [ta[p] for p in preds])
    f = compile_for(lossdsl.std.path(name), backend, ctx, PARAMS.get(name), dtype)
    value, grads = value_and_grads(f, backend, args, preds, dtype)
    assert_close(value, ref.detach().numpy(), dtype, f"{name} on {backend}/{dtype}")
    if backend == "numpy":
        return  # values only
    for p, g in zip(preds, ref_grads):
        assert_close(grads[p], g.numpy(), dtype, f"d {name}/d {p} on {backend}/{dtype}")


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
@pytest.mark.parametrize("name", NAMES)
@needs("torch")
def test_std_loss_matches_the_framework_function_compiled(name, backend, rng):
    """Under torch.compile, jax.jit and tf.function(jit_compile=True): the fused calls and their
    params as numbers are traced too."""
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    checked, args, ctx, prm = _inputs(name, rng)
    preds = [d.name for d in checked.preds]
    ref, ref_grads = _reference_and_grads(name, args, ctx, prm, preds)
    f = compile_for(lossdsl.std.path(name), backend, ctx, PARAMS.get(name))
    value, grad = compiled_value_and_grad(f, backend, args, preds[0])
    assert_close(value, ref, "float64", f"{name} compiled on {backend}")
    assert_close(grad, ref_grads[0], "float64", f"d {name}/d {preds[0]} compiled on {backend}")


KERAS = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "log_cosh": "log_cosh", "hinge": "hinge",
         "huber": "huber"}


@pytest.mark.parametrize("name", sorted(KERAS))
@needs("tensorflow")
def test_std_loss_matches_keras(name, rng):
    import keras

    _, args, _, prm = _inputs(name, rng)
    f = lossdsl.std.compile(name, backend="numpy", params=PARAMS.get(name))
    ours = f(*[args[k] for k in ("yhat", "y")])
    fn = getattr(keras.losses, KERAS[name])
    kwargs = {"delta": prm["delta"]} if name == "huber" else {}
    theirs = np.mean(np.asarray(fn(args["y"], args["yhat"], **kwargs)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
