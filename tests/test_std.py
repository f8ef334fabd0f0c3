"""The standard library (lossdsl.std): each loss on every backend, value and gradient, against
the library function it says it matches: torch.nn.functional in float64 where it has the loss,
else the library's formula written out in PyTorch float64 (each cited where it is written), and
the Keras, optax or SciPy function itself per sample where one is installed; with non-default
params, ignored labels, zero targets, clamped variances and valid boxes among the inputs, under
jax.jit and tf.function, and at real sizes for the sort-based losses."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, available, needs
from harness import BACKENDS, assert_close, compile_for, compiled_value_and_grad, convert, value_and_grads

import lossdsl
import lossdsl.std
from lossdsl.sampling import random_inputs

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
    "nt_xent": {"temperature": 0.5},
    "supcon": {"temperature": 0.1},
    "batch_hard_triplet": {"margin": 0.5},
    "arcface": {"margin": 0.3, "scale": 16.0},
    "cosface": {"margin": 0.2, "scale": 16.0},
    "vae_elbo": {"beta": 0.5},
    "circle": {"gamma": 8.0, "margin": 0.3},
    "ssim": {"max_val": 2.0, "sigma": 1.2},
}

BINARY = (
    "binary_cross_entropy",
    "focal",
    "dice",
    "tversky",
    "jaccard",
    "multilabel_soft_margin",
    "lovasz_hinge",
)  # labels in {0, 1}
PAIRED = ("nt_xent", "supcon", "batch_hard_triplet", "circle")  # every label at least twice in the batch
BOXES = ("giou", "diou", "ciou")
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
    if name in PAIRED:
        args["labels"] = rng.permutation(np.arange(len(args["labels"])) // 2)
    if name == "circle":  # embeddings L2-normalised, as Keras expects
        args["z"] = args["z"] / np.linalg.norm(args["z"], axis=1, keepdims=True)
    if name in BOXES:  # (x1, y1, x2, y2) with x1 < x2, y1 < y2; the targets overlap them or not

        def boxes(n):
            lo = rng.uniform(0, 4, (n, 2))
            return np.concatenate([lo, lo + rng.uniform(0.5, 3, (n, 2))], axis=1)

        args["boxes"], args["gt"] = boxes(len(args["boxes"])), boxes(len(args["gt"]))
        args["gt"][0] = args["boxes"][0] + rng.uniform(-0.2, 0.2, 4) * [1, 1, 0, 0]  # a close pair
    if name == "listnet":
        args["y"] = rng.integers(0, 3, args["y"].shape).astype(np.float64)  # graded relevance
    if name == "wasserstein1":
        args["q"] = rng.dirichlet(np.ones(args["q"].shape[1]), args["q"].shape[0])
    if name == "vae_elbo":
        args["x"] = rng.uniform(0, 1, args["x"].shape)
    if name == "ssim":  # an image and a noisy copy, in [0, 1]
        args["x"] = rng.uniform(0, 1, args["x"].shape)
        args["y"] = np.clip(args["x"] + rng.normal(0, 0.1, args["x"].shape), 0, 1)
    if name == "sparsemax":
        args["z"] = 2 * args["z"]  # a support of a few classes
    if name == "poisson_nll":
        args["y"] = rng.poisson(2.0, args["y"].shape).astype(np.float64)
    if name == "ctc":  # 8 steps, labels (not the blank 0) padded to 3, lengths shorter than both, repeats
        b, c = args["log_probs"].shape[0], args["log_probs"].shape[2]
        args["log_probs"] = rng.normal(size=(b, 8, c))
        args["labels"] = rng.integers(1, c, (b, 3))
        args["labels"][0, :2] = args["labels"][0, 2]  # three repeated labels: 5 steps at least
        args["label_lengths"] = rng.integers(1, 4, b)
        args["label_lengths"][0] = 3
        args["input_lengths"] = rng.integers(7, 9, b)
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
    if name in BOXES:
        return torch.mean(box_loss(name, a["boxes"], a["gt"], prm["eps"]))
    if name == "nt_xent":  # optax.losses.ntxent, written out
        u = F.normalize(a["z"], dim=1, eps=prm["eps"])
        sim = u @ u.T / prm["temperature"]
        same = a["labels"][:, None] == a["labels"][None, :]
        pos = same & ~torch.eye(len(sim), dtype=torch.bool)
        neg_exp = torch.where(same, 0.0, torch.exp(sim)).sum(1, keepdim=True)
        log_share = sim - torch.log(torch.exp(sim) + neg_exp)
        return -torch.where(pos, log_share, 0.0).sum() / pos.sum()
    if name == "supcon":  # SupConLoss of the authors' reference implementation, one view
        f = F.normalize(a["z"], dim=1, eps=prm["eps"])
        logits = f @ f.T / prm["temperature"]
        logits = logits - logits.max(1, keepdim=True).values.detach()
        logits_mask = 1 - torch.eye(len(f), dtype=f.dtype)
        mask = (a["labels"][:, None] == a["labels"][None, :]).to(f.dtype) * logits_mask
        log_prob = logits - torch.log((torch.exp(logits) * logits_mask).sum(1, keepdim=True))
        pairs = mask.sum(1)
        pairs = torch.where(pairs < 1e-6, 1, pairs)
        return torch.mean(-(prm["temperature"] / prm["base_temperature"]) * (mask * log_prob).sum(1) / pairs)
    if name == "batch_hard_triplet":
        d = (a["z"][:, None, :] - a["z"][None, :, :]).norm(dim=2)
        same = a["labels"][:, None] == a["labels"][None, :]
        pos = same & ~torch.eye(len(d), dtype=torch.bool)
        hardest_pos = torch.where(pos, d, -torch.inf).max(1).values
        hardest_neg = torch.where(same, torch.inf, d).min(1).values
        return torch.mean(torch.clamp(hardest_pos - hardest_neg + prm["margin"], min=0))
    if name in ("arcface", "cosface"):  # pytorch_metric_learning's ArcFaceLoss and CosFaceLoss, written out
        c = F.normalize(a["emb"], dim=1, eps=prm["eps"]) @ F.normalize(a["weight"], dim=1, eps=prm["eps"]).T
        oh = F.one_hot(a["y"], c.shape[1]).bool()
        if name == "arcface":
            c = c.clamp(-1, 1)
            target = torch.cos(torch.acos(c.gather(1, a["y"][:, None])) + prm["margin"])
        else:
            target = c.gather(1, a["y"][:, None]) - prm["margin"]
        return F.cross_entropy(prm["scale"] * torch.where(oh, target, c), a["y"])
    if name == "listnet":  # optax.losses.ranking_softmax_loss
        return torch.mean(-(a["y"] * F.log_softmax(a["scores"], 1)).sum(1))
    if name == "wasserstein1":
        return torch.mean(torch.cumsum(F.softmax(a["logits"], 1) - a["q"], 1).abs().sum(1))
    if name == "ssim":
        return torch.mean(ssim_reference(a["x"], a["y"], prm["max_val"], prm["sigma"]))
    if name == "vae_elbo":  # PyTorch's examples/vae, on logits, per sample
        bce = F.binary_cross_entropy_with_logits(a["recon_logits"], a["x"], reduction="none").sum(1)
        kld = -0.5 * torch.sum(1 + a["logvar"] - a["mu"] ** 2 - a["logvar"].exp(), 1)
        return torch.mean(bce + prm["beta"] * kld)
    if name == "sparsemax":  # tfa.losses.sparsemax_loss, the threshold from the support
        z = a["z"]
        top = torch.sort(z, 1, descending=True).values
        k = torch.arange(1, z.shape[1] + 1, dtype=z.dtype)
        cs = torch.cumsum(top, 1)
        k_z = (1 + k * top > cs).sum(1, keepdim=True)
        tau = (cs.gather(1, k_z - 1) - 1) / k_z
        p = torch.clamp(z - tau, min=0)
        return torch.mean((p * (z - 0.5 * p)).sum(1) - z.gather(1, a["y"][:, None])[:, 0] + 0.5)
    if name == "lovasz_hinge":  # lovasz_losses.lovasz_hinge(per_image=True)
        return torch.stack([lovasz_hinge_flat(x, y) for x, y in zip(a["logits"], a["y"])]).mean()
    if name == "lovasz_softmax":  # lovasz_losses.lovasz_softmax(classes="present", per_image=True)
        return torch.stack([lovasz_softmax_flat(F.softmax(x, 1), y) for x, y in zip(a["logits"], a["y"])]).mean()
    if name == "ctc":
        lp = F.log_softmax(a["log_probs"], 2).transpose(0, 1)
        return F.ctc_loss(lp, a["labels"], a["input_lengths"], a["label_lengths"], reduction="mean")
    if name == "circle":  # keras.losses.circle, written out
        z, gamma, margin = a["z"], prm["gamma"], prm["margin"]
        d = torch.clamp(1 - z @ z.T, min=0)
        same = a["labels"][:, None] == a["labels"][None, :]
        pos, neg = same & ~torch.eye(len(z), dtype=torch.bool), ~same
        s_p = -gamma * torch.clamp((margin + d) * pos, min=0) * (margin - d)
        s_n = gamma * torch.clamp((1 + margin - d) * neg, min=0) * (1 - margin - d)
        p_loss = torch.logsumexp(torch.where(pos, s_p, -torch.inf), 1)
        n_loss = torch.logsumexp(torch.where(neg, s_n, -torch.inf), 1)
        return F.softplus(p_loss + n_loss).mean()
    raise KeyError(name)


def lovasz_grad(gt_sorted):
    """The steps of the Jaccard loss along the sorted pixels (the authors' lovasz_losses.py)."""
    import torch

    gts = gt_sorted.sum()
    jaccard = 1.0 - (gts - gt_sorted.cumsum(0)) / (gts + (1 - gt_sorted).cumsum(0))
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])


def lovasz_hinge_flat(logits, labels):
    import torch
    import torch.nn.functional as F

    errors = 1.0 - logits * (2.0 * labels - 1.0)
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    return torch.dot(F.relu(errors_sorted), lovasz_grad(labels[perm]))


def lovasz_softmax_flat(probas, labels):
    import torch

    losses = []
    for c in range(probas.shape[1]):
        fg = (labels == c).to(probas.dtype)
        if fg.sum() == 0:
            continue
        errors_sorted, perm = torch.sort((fg - probas[:, c]).abs(), 0, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    return torch.stack(losses).mean()


def ssim_reference(x, y, max_val, sigma):
    """1 - tf.image.ssim per image (its _ssim_helper, compensation 1, a VALID 11x11 Gaussian
    window), channels first, in PyTorch."""
    import torch
    import torch.nn.functional as F

    taps = torch.arange(11, dtype=x.dtype) - 5.0
    g = torch.exp(-(taps**2) / (2 * sigma**2))
    g = g / g.sum()
    channels = x.shape[1]
    window = (g[:, None] * g[None, :]).expand(channels, 1, 11, 11)

    def blur(v):
        return F.conv2d(v, window, groups=channels)

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    mu_x, mu_y = blur(x), blur(y)
    num0, den0 = 2 * mu_x * mu_y, mu_x**2 + mu_y**2
    luminance = (num0 + c1) / (den0 + c1)
    cs = (2 * blur(x * y) - num0 + c2) / (blur(x**2 + y**2) - den0 + c2)
    return 1 - (luminance * cs).mean(dim=(1, 2, 3))


def box_loss(name, b, g, eps):
    """torchvision.ops' generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss."""
    import torch

    x1, y1, x2, y2 = b.unbind(-1)
    x1g, y1g, x2g, y2g = g.unbind(-1)
    xk1, yk1, xk2, yk2 = torch.max(x1, x1g), torch.max(y1, y1g), torch.min(x2, x2g), torch.min(y2, y2g)
    inter = torch.where((yk2 > yk1) & (xk2 > xk1), (xk2 - xk1) * (yk2 - yk1), 0.0)
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / (union + eps)
    xc1, yc1, xc2, yc2 = torch.min(x1, x1g), torch.min(y1, y1g), torch.max(x2, x2g), torch.max(y2, y2g)
    if name == "giou":
        area_c = (xc2 - xc1) * (yc2 - yc1)
        return 1 - (iou - (area_c - union) / (area_c + eps))
    diag = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
    centres = ((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2 + ((y2 + y1) / 2 - (y1g + y2g) / 2) ** 2
    diou = 1 - iou + centres / diag
    if name == "diou":
        return diou
    v = (4 / torch.pi**2) * (torch.atan((x2g - x1g) / (y2g - y1g)) - torch.atan((x2 - x1) / (y2 - y1))) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou + alpha * v


NAMES = lossdsl.std.names()


def test_std_names_and_paths():
    assert {"mse", "mae", "huber", "cross_entropy", "binary_cross_entropy", "kl_div", "focal"} <= set(NAMES)
    assert lossdsl.std.path("huber").read_text().startswith("# huber")
    with pytest.raises(lossdsl.LossError) as info:
        lossdsl.std.path("hubber")
    assert "did you mean 'huber'" in str(info.value)


def test_std_reference_lists_every_loss():
    listed = (ROOT / "docs" / "std.md").read_text()
    assert [name for name in NAMES if f"`{name}`" not in listed] == []


def test_std_specs_check_without_warnings():
    for name in NAMES:
        assert lossdsl.check(lossdsl.std.path(name)).warnings == [], name


def _inputs(name, rng, params=None):
    checked = lossdsl.check(lossdsl.std.path(name))
    args, ctx, _ = random_inputs(checked, rng, {"B": 6, "D": 5, "C": 4, "H": 13, "W": 12})
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
    "circle": ("keras", lambda L, a, p: L.losses.circle(a["labels"], a["z"], gamma=p["gamma"], margin=p["margin"])),
    "nt_xent": ("optax", lambda L, a, p: L.losses.ntxent(a["z"], a["labels"], p["temperature"])),
    "listnet": ("optax", lambda L, a, p: L.losses.ranking_softmax_loss(a["scores"], a["y"], reduce_fn=None)),
    "ctc": (
        "optax",
        lambda L, a, p: L.ctc_loss(
            a["log_probs"],
            (np.arange(a["log_probs"].shape[1]) >= a["input_lengths"][:, None]).astype(np.float64),
            a["labels"],
            (np.arange(a["labels"].shape[1]) >= a["label_lengths"][:, None]).astype(np.float64),
        )
        / np.maximum(a["label_lengths"], 1),
    ),
    "wasserstein1": (
        "scipy.stats",
        lambda L, a, p: [
            L.wasserstein_distance(np.arange(len(q)), np.arange(len(q)), u, q)
            for u, q in zip(np.exp(a["logits"]) / np.exp(a["logits"]).sum(1, keepdims=True), a["q"])
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_std_loss_matches_the_library_function_per_sample(name, rng):
    """Keras', optax's and SciPy's own functions, per sample (Keras computes in float32)."""
    library, fn = LIBRARY[name]
    if library != "scipy.stats" and not available("tensorflow" if library == "keras" else "jax"):
        pytest.skip(f"MISSING FRAMEWORK: {library} is not installed")
    import importlib

    lib = importlib.import_module(library)
    _, args, _, prm = _inputs(name, rng)
    f = lossdsl.std.compile(name, backend="numpy", params=PARAMS.get(name))
    ours = f(**args, reduction="none")
    theirs = np.asarray(fn(lib, args, prm), dtype=np.float64)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 if library == "keras" else 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@needs("tensorflow")
def test_ssim_matches_tf_image_ssim_in_value_and_gradient(backend, rng):
    """tf.image.ssim itself (it computes in float32), channels last, per image, and its gradient."""
    import tensorflow as tf

    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    _, args, _, prm = _inputs("ssim", rng)
    x, y = (tf.constant(np.transpose(args[k], (0, 2, 3, 1)), tf.float32) for k in ("x", "y"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        theirs = 1 - tf.image.ssim(x, y, prm["max_val"], filter_size=11, filter_sigma=prm["sigma"], k1=0.01, k2=0.03)
        total = tf.reduce_sum(theirs)
    grad = np.transpose(tape.gradient(total, x).numpy(), (0, 3, 1, 2))
    f = lossdsl.std.compile("ssim", backend=backend, params=PARAMS["ssim"])
    per_image = f(**{k: convert(backend, v, "float64") for k, v in args.items()}, reduction="none")
    per_image = per_image.detach().numpy() if hasattr(per_image, "detach") else np.asarray(per_image)
    assert_close(per_image, theirs.numpy(), "float32", f"ssim per image on {backend}")
    if backend != "numpy":
        _, grads = value_and_grads(f, backend, args, ["x"], "float64", {"reduction": "sum"})
        assert_close(grads["x"], grad, "float32", f"d ssim/d x on {backend}")


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("name", NAMES)
def test_std_loss_under_jax_jit_and_tf_function_matches_eager(name, backend, rng):
    """Value and gradients traced by jax.jit / tf.function equal the eager ones (float64)."""
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    checked, args, ctx, _ = _inputs(name, rng)
    preds = [d.name for d in checked.preds]
    f = compile_for(lossdsl.std.path(name), backend, ctx, PARAMS.get(name))
    if backend == "jax":
        import jax

        xs = {k: jax.numpy.asarray(v) for k, v in args.items()}

        def value_and_grads(p):
            return jax.value_and_grad(lambda p: f(**{**xs, **p}))(p)

        pred_args = {p: xs[p] for p in preds}
        eager, traced = value_and_grads(pred_args), jax.jit(value_and_grads)(pred_args)
    else:
        import tensorflow as tf

        xs = {k: tf.constant(v) for k, v in args.items()}

        def value_and_grads():
            with tf.GradientTape() as tape:
                tape.watch([xs[p] for p in preds])
                v = f(**xs)
            return v, dict(zip(preds, tape.gradient(v, [xs[p] for p in preds])))

        eager, traced = value_and_grads(), tf.function(value_and_grads)()
    assert_close(np.asarray(traced[0]), np.asarray(eager[0]), "float64", f"{name} traced on {backend}")
    for p in preds:
        assert_close(np.asarray(traced[1][p]), np.asarray(eager[1][p]), "float64", f"d {name}/d {p} traced")


@needs("torch")
def test_sort_based_losses_run_at_real_sizes_with_the_reference_gradient():
    """Lovász at 256×256 pixels and sparsemax at 32k classes: nothing quadratic in the pixels or
    the classes is built (a 65536² intermediate would not fit), and value and gradient still
    match the reference there."""
    import torch

    g = torch.Generator().manual_seed(0)
    cases = {
        "lovasz_hinge": {
            "logits": torch.randn(2, 256 * 256, generator=g, dtype=torch.float64),
            "y": (torch.rand(2, 256 * 256, generator=g) < 0.3).double(),
        },
        "lovasz_softmax": {
            "logits": torch.randn(1, 256 * 256, 3, generator=g, dtype=torch.float64),
            "y": torch.randint(0, 3, (1, 256 * 256), generator=g),
        },
        "sparsemax": {
            "z": 3 * torch.randn(4, 32768, generator=g, dtype=torch.float64),
            "y": torch.randint(0, 32768, (4,), generator=g),
        },
    }
    for name, a in cases.items():
        pred = "z" if name == "sparsemax" else "logits"
        ours = {k: v.clone().requires_grad_(k == pred) for k, v in a.items()}
        theirs = {k: v.clone().requires_grad_(k == pred) for k, v in a.items()}
        value = lossdsl.std.compile(name, backend="torch")(**ours)
        ref = reference(name, theirs, {}, {})
        (grad,), (ref_grad,) = torch.autograd.grad(value, [ours[pred]]), torch.autograd.grad(ref, [theirs[pred]])
        assert_close(value.detach().numpy(), ref.detach().numpy(), "float64", name)
        assert_close(grad.numpy(), ref_grad.numpy(), "float64", f"d {name}/d {pred}")


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_metric_losses_of_batches_without_positives_or_negatives_are_finite(backend, rng):
    """All labels equal (no negatives) or all distinct (no positives): the documented values
    (0 for the anchors that have nothing to compare), and finite gradients, on every backend."""
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    z = rng.normal(size=(4, 3))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    for name in ("nt_xent", "supcon", "circle", "batch_hard_triplet"):
        f = compile_for(lossdsl.std.path(name), backend)
        for labels in ([0, 0, 0, 0], [0, 1, 2, 3]):
            value, grads = value_and_grads(f, backend, {"z": z, "labels": np.array(labels)}, ["z"])
            assert np.all(np.isfinite(grads["z"])), (name, labels, backend)
            if name != "supcon" or labels[1] == 1:  # supcon without negatives still pulls positives together
                assert value == 0, (name, labels, backend, value)
            else:
                assert value > 0
