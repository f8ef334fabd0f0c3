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
from harness import BACKENDS, assert_close, compile_for, value_and_grads

PARAMS = {
    "huber": {"delta": 0.7},
    "smooth_l1": {"beta": 0.6},
    "cross_entropy": {"label_smoothing": 0.1},
    "weighted_cross_entropy": {"label_smoothing": 0.2},
    "binary_cross_entropy": {"pos_weight": 2.5},
    "focal": {"alpha": 0.3, "gamma": 1.5},
    "margin_ranking": {"margin": 0.3},
    "triplet": {"margin": 0.8},
    "gaussian_nll": {"eps": 1e-3},
    "tversky": {"alpha": 0.7, "beta": 0.3},
    "softmax_focal": {"alpha": 0.4, "gamma": 1.5},
    "cosine_embedding": {"margin": 0.2},
    "hinge_embedding": {"margin": 0.8},
    "multi_margin": {"margin": 0.7, "p": 2},
    "poly1": {"epsilon": -1.0},
    "z_loss_cross_entropy": {"z_weight": 1e-2},
}

BINARY = ("binary_cross_entropy", "focal", "dice", "tversky", "jaccard", "multilabel_soft_margin")  # labels in {0, 1}
SIGNED = ("hinge", "margin_ranking", "squared_hinge", "hinge_embedding", "cosine_embedding")  # labels in {-1, 1}


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
    if name in BINARY:
        args["y"] = (rng.random(args["y"].shape) < 0.5).astype(np.float64)
    if name in SIGNED:
        args["y"] = np.where(rng.random(args["y"].shape) < 0.5, -1.0, 1.0)
    if name == "categorical_hinge":
        args["y"] = np.eye(args["y"].shape[1])[rng.integers(0, args["y"].shape[1], args["y"].shape[0])]
    if name == "msle":
        args["y"] = np.abs(args["y"])  # yhat keeps its negative values: clamped at eps
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
        return F.cross_entropy(
            a["logits"], a["y"], weight=ctx["class_w"], ignore_index=-100, label_smoothing=prm["label_smoothing"]
        )
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
    if name == "dice":  # keras.losses.dice(y, p, axis=1)
        p = torch.sigmoid(a["logits"])
        return torch.mean(1 - 2 * (a["y"] * p).sum(1) / (a["y"].sum(1) + p.sum(1) + prm["eps"]))
    if name == "tversky":  # keras.losses.tversky(y, p, alpha, beta, axis=1)
        p, y = torch.sigmoid(a["logits"]), a["y"]
        tp = (y * p).sum(1)
        return torch.mean(
            1 - tp / (tp + prm["alpha"] * ((1 - p) * y).sum(1) + prm["beta"] * (p * (1 - y)).sum(1) + prm["eps"])
        )
    if name == "jaccard":  # segmentation_models_pytorch.losses.soft_jaccard_score, smooth=0, per sample
        p, y = torch.sigmoid(a["logits"]), a["y"]
        inter = (y * p).sum(1)
        return torch.mean(1 - inter / ((y + p).sum(1) - inter).clamp_min(prm["eps"]))
    if name == "softmax_focal":  # kornia.losses.focal_loss
        logp = F.log_softmax(a["logits"], 1)
        oh = F.one_hot(a["y"], logp.shape[1])
        return torch.mean((-prm["alpha"] * (1 - logp.exp()) ** prm["gamma"] * logp * oh).sum(1))
    if name == "categorical_hinge":  # keras.losses.categorical_hinge
        pos = (a["y"] * a["yhat"]).sum(1)
        neg = ((1 - a["y"]) * a["yhat"]).max(1).values
        return torch.mean(torch.clamp(neg - pos + 1, min=0))
    if name == "squared_hinge":  # keras.losses.squared_hinge
        return torch.mean(torch.clamp(1 - a["y"] * a["yhat"], min=0) ** 2)
    if name == "mape":  # keras.losses.mean_absolute_percentage_error
        return 100 * torch.mean(torch.abs((a["y"] - a["yhat"]) / torch.clamp(torch.abs(a["y"]), min=prm["eps"])))
    if name == "msle":  # keras.losses.mean_squared_logarithmic_error
        lp = torch.log(torch.clamp(a["yhat"], min=prm["eps"]) + 1)
        return torch.mean((lp - torch.log(torch.clamp(a["y"], min=prm["eps"]) + 1)) ** 2)
    if name == "charbonnier":  # mmagic's charbonnier_loss
        return torch.mean(torch.sqrt((a["yhat"] - a["y"]) ** 2 + prm["eps"]))
    if name == "cosine_embedding":
        return F.cosine_embedding_loss(a["x1"], a["x2"], a["y"], margin=prm["margin"])
    if name == "hinge_embedding":
        return F.hinge_embedding_loss(a["x"], a["y"], margin=prm["margin"])
    if name == "multilabel_soft_margin":
        return F.multilabel_soft_margin_loss(a["x"], a["y"])
    if name == "multi_margin":
        return F.multi_margin_loss(a["x"], a["y"], p=prm["p"], margin=prm["margin"])
    if name == "multiclass_hinge":  # optax.losses.multiclass_hinge_loss
        oh = F.one_hot(a["y"], a["x"].shape[1])
        return torch.mean((a["x"] + 1 - oh).max(1).values - (a["x"] * oh).sum(1))
    if name == "multiclass_perceptron":  # optax.losses.multiclass_perceptron_loss
        return torch.mean(a["x"].max(1).values - a["x"].gather(1, a["y"][:, None])[:, 0])
    if name == "poly1":  # optax.losses.poly_loss_cross_entropy
        p = F.softmax(a["logits"], 1)
        return torch.mean(
            F.cross_entropy(a["logits"], a["y"], reduction="none") + prm["epsilon"] * (a["y"] * (1 - p)).sum(1)
        )
    if name == "z_loss_cross_entropy":  # t5x.losses.cross_entropy_with_logits
        log_z = torch.logsumexp(a["logits"], 1)
        return torch.mean(F.cross_entropy(a["logits"], a["y"], reduction="none") + prm["z_weight"] * log_z**2)
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


def _inputs(name, rng):
    checked = lossdsl.check(lossdsl.std.path(name))
    args, ctx, _ = random_inputs(checked, rng, {"B": 6, "D": 5, "C": 4})
    args, ctx = prepare(name, args, ctx, rng)
    return checked, args, ctx, {**{d.name: d.default for d in checked.of_kind("param")}, **PARAMS.get(name, {})}


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


KERAS = {
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "log_cosh": "log_cosh",
    "hinge": "hinge",
    "huber": "huber",
}


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


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# per-sample values of the library function itself, on the arguments of the spec (NumPy in)
LIBRARY = {
    "dice": ("keras", lambda L, a, p: L.losses.dice(a["y"], _sigmoid(a["logits"]), axis=1)),
    "tversky": (
        "keras",
        lambda L, a, p: L.losses.tversky(a["y"], _sigmoid(a["logits"]), p["alpha"], p["beta"], axis=1),
    ),
    "categorical_hinge": ("keras", lambda L, a, p: L.losses.categorical_hinge(a["y"], a["yhat"])),
    "squared_hinge": ("keras", lambda L, a, p: L.losses.squared_hinge(a["y"], a["yhat"])),
    "mape": ("keras", lambda L, a, p: L.losses.mean_absolute_percentage_error(a["y"], a["yhat"])),
    "msle": ("keras", lambda L, a, p: L.losses.mean_squared_logarithmic_error(a["y"], a["yhat"])),
    "multilabel_soft_margin": ("keras", lambda L, a, p: L.losses.binary_crossentropy(a["y"], a["x"], from_logits=True)),
    "multiclass_hinge": ("optax", lambda L, a, p: L.losses.multiclass_hinge_loss(a["x"], a["y"])),
    "multiclass_perceptron": ("optax", lambda L, a, p: L.losses.multiclass_perceptron_loss(a["x"], a["y"])),
    "poly1": ("optax", lambda L, a, p: L.losses.poly_loss_cross_entropy(a["logits"], a["y"], epsilon=p["epsilon"])),
    "focal": (
        "optax",
        lambda L, a, p: L.losses.sigmoid_focal_loss(a["logits"], a["y"], alpha=p["alpha"], gamma=p["gamma"]).mean(-1),
    ),
}


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_std_loss_matches_the_library_function_per_sample(name, rng):
    """Keras' and optax's own functions, per sample, in float64 where the library allows it (Keras computes in float32)."""
    library, fn = LIBRARY[name]
    if not available("tensorflow" if library == "keras" else "jax"):
        pytest.skip(f"MISSING FRAMEWORK: {library} is not installed")
    import importlib

    lib = importlib.import_module(library)
    _, args, _, prm = _inputs(name, rng)
    f = lossdsl.std.compile(name, backend="numpy", params=PARAMS.get(name))
    ours = f(**args, reduction="none")
    theirs = np.asarray(fn(lib, args, prm), dtype=np.float64)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 if library == "keras" else 1e-12)
