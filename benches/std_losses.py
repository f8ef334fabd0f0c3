"""What users run: every `lossdsl.std` loss as shipped (the API's default mean), with default and
non-default params, and equivalent spellings of Huber, MSE and cross-entropy, against the
framework's own function, value and gradient with respect to the first pred, eager and compiled.

    python benches/std_losses.py --quick        # a smoke run, small sizes (seconds)
    python benches/std_losses.py --framework torch --eager --row focal   # some rows, eager only
    python benches/std_losses.py --framework torch --rest  # the losses past the first table's
    python benches/std_losses.py --size small --framework jax   # one framework at the "small" sizes
    python benches/run.py --only users          # the section of docs/benchmarks.md
    python benches/run.py --only std            # every row, every framework, eager and compiled, small

Sizes as a classifier or regressor sees them: B=4096 samples, D=256 features, C=1000 classes.
Baselines are torch.nn.functional, TensorFlow's tf.nn / tf.keras.losses and optax; where a
framework ships no such function the row says "by hand": the formula written in the framework
(for TensorFlow and JAX once for both, benches/std_reference.py). Values and gradients are compared before anything is timed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benches"))

import lossdsl  # noqa: E402
import lossdsl.std  # noqa: E402


@dataclass
class Row:
    """One loss as users call it: a spec (a std name or source text), its params, its inputs'
    kinds, and the framework function per framework (a callable of the framework's arrays)."""

    label: str
    spec: object
    kind: str  # which inputs: regression, classes, ignored, binary, pairs, triplet, gaussian, probs, signs
    params: dict = field(default_factory=dict)
    baselines: dict[str, tuple[str, Callable]] = field(default_factory=dict)  # framework -> (name, fn)


# The input sizes: "full" as a classifier or regressor sees them, "small" for a table measured in
# minutes on a small shared machine, "quick" for a smoke run.
SIZE = "full"
SIZES = {"quick": (256, 32, 50), "small": (1024, 64, 250), "full": (4096, 256, 1000)}


def _size(quick: bool) -> str:
    return "quick" if quick else SIZE


def inputs(kind: str, rng, quick: bool) -> dict:
    b, d, c = SIZES[_size(quick)]
    f32 = np.float32
    if kind in ("classes", "ignored", "weighted"):
        y = rng.integers(0, c, b)
        if kind == "ignored":
            y[rng.random(b) < 0.1] = -100  # some samples carry the ignored label
        out = {"logits": rng.normal(size=(b, c)).astype(f32), "y": y}
        if kind == "weighted":
            out["class_w"] = rng.uniform(0.5, 2.0, c).astype(f32)
        return out
    if kind == "binary":
        return {"logits": rng.normal(size=(b, d)).astype(f32), "y": (rng.random((b, d)) < 0.5).astype(f32)}
    if kind == "signs":
        return {"yhat": rng.normal(size=(b, d)).astype(f32), "y": np.where(rng.random((b, d)) < 0.5, -1, 1).astype(f32)}
    if kind == "probs":
        p = rng.uniform(0.01, 1, (b, d))
        q = rng.uniform(0.01, 1, (b, d))
        return {"log_q": np.log(q / q.sum(1, keepdims=True)).astype(f32), "p": (p / p.sum(1, keepdims=True)).astype(f32)}
    if kind == "pairs":
        return {"x1": rng.normal(size=b).astype(f32), "x2": rng.normal(size=b).astype(f32),
                "y": np.where(rng.random(b) < 0.5, -1, 1).astype(f32)}
    if kind == "triplet":
        return {k: rng.normal(size=(b, d)).astype(f32) for k in ("anchor", "positive", "negative")}
    if kind == "gaussian":
        return {"mu": rng.normal(size=(b, d)).astype(f32), "var": rng.uniform(0.1, 2, (b, d)).astype(f32),
                "y": rng.normal(size=(b, d)).astype(f32)}
    if kind == "counts":
        return {"log_rate": rng.normal(size=(b, d)).astype(f32), "y": rng.poisson(2.0, (b, d)).astype(f32)}
    if kind in MORE_KINDS:
        return MORE_KINDS[kind](rng, _size(quick))
    return {"yhat": rng.normal(size=(b, d)).astype(f32), "y": rng.normal(size=(b, d)).astype(f32)}


def _embed_classes(rng, size):
    b, d, c = {"quick": (128, 32, 50), "small": (256, 64, 250), "full": (1024, 128, 1000)}[size]
    return {"emb": rng.normal(size=(b, d)).astype(np.float32), "weight": rng.normal(size=(c, d)).astype(np.float32),
            "y": rng.integers(0, c, b)}


def _metric(rng, size):
    # pairwise losses build B x B (x D) tensors: a batch as metric learning sees it
    b, d = {"quick": (32, 16), "small": (64, 32), "full": (256, 64)}[size]
    z = rng.normal(size=(b, d))
    return {"z": (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32), "labels": rng.integers(0, 8, b)}


def _boxes(rng, size):
    b = {"quick": 1024, "small": 8192, "full": 65536}[size]

    def boxes():
        xy = rng.uniform(0, 10, (b, 2))
        wh = rng.uniform(0.5, 5, (b, 2))
        return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)

    return {"boxes": boxes(), "gt": boxes()}


def _more(shape_b_d, make):
    """A kind made by `make(rng, b, d)` at (quick, full) sizes; "small" is a quarter of full's
    first size and of its second (at least quick's)."""
    def kind(rng, size):
        (qb, qd), (fb, fd) = shape_b_d
        b, d = {"quick": (qb, qd), "small": (max(qb, fb // 4), max(qd, fd // 4)), "full": (fb, fd)}[size]
        return make(rng, b, d)
    return kind


_f32 = np.float32
MORE_KINDS = {
    "embed_classes": _embed_classes,
    "metric": _metric,
    "boxes": _boxes,
    "residuals": _more(((256, 32), (4096, 256)), lambda rng, b, d: {
        "yhat": rng.normal(size=(b, d)).astype(_f32), "y": rng.normal(size=(b, d)).astype(_f32)}),
    "positive": _more(((256, 32), (4096, 256)), lambda rng, b, d: {
        "yhat": rng.uniform(0.1, 3, (b, d)).astype(_f32), "y": rng.uniform(0.1, 3, (b, d)).astype(_f32)}),
    "sign_targets": _more(((256, 32), (4096, 256)), lambda rng, b, d: {
        "x": rng.normal(size=(b, d)).astype(_f32), "y": np.where(rng.random((b, d)) < 0.5, -1, 1).astype(_f32)}),
    "embed_pairs": _more(((256, 32), (4096, 256)), lambda rng, b, d: {
        "x1": rng.normal(size=(b, d)).astype(_f32), "x2": rng.normal(size=(b, d)).astype(_f32),
        "y": np.where(rng.random(b) < 0.5, -1, 1).astype(_f32)}),
    "binary_more": _more(((256, 32), (4096, 256)), lambda rng, b, d: {
        "logits": rng.normal(size=(b, d)).astype(_f32), "y": (rng.random((b, d)) < 0.5).astype(_f32)}),
    "onehot": _more(((256, 50), (4096, 1000)), lambda rng, b, c: {
        "yhat": rng.normal(size=(b, c)).astype(_f32), "y": np.eye(c, dtype=_f32)[rng.integers(0, c, b)]}),
    "int_classes": _more(((256, 50), (4096, 1000)), lambda rng, b, c: {
        "x": rng.normal(size=(b, c)).astype(_f32), "y": rng.integers(0, c, b)}),
    "soft_labels": _more(((256, 50), (4096, 1000)), lambda rng, b, c: {
        "logits": rng.normal(size=(b, c)).astype(_f32),
        "y": (lambda q: (q / q.sum(1, keepdims=True)).astype(_f32))(rng.uniform(0.01, 1, (b, c)))}),
    "segments": _more(((4, 64), (16, 1024)), lambda rng, b, n: {
        "logits": rng.normal(size=(b, n, 10)).astype(_f32), "y": rng.integers(0, 10, (b, n))}),
    "vae": _more(((256, 64), (4096, 784)), lambda rng, b, d: {
        "recon_logits": rng.normal(size=(b, d)).astype(_f32), "mu": rng.normal(size=(b, 32)).astype(_f32),
        "logvar": rng.normal(0, 0.5, (b, 32)).astype(_f32), "x": (rng.random((b, d)) < 0.5).astype(_f32)}),
}


CONTEXT = {"class_w"}
# An `abs` of a cumulative sum that ends at about 0: float32 rounding puts a few elements on
# either side of the kink, differently per framework (run.agree's `kinked`).
KINKED = {"wasserstein1"}


# ---- the framework functions ----------------------------------------------------------------------

def torch_fns() -> dict:
    import torch
    import torch.nn.functional as F

    def focal(logits, y, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        return torch.mean((alpha * y + (1 - alpha) * (1 - y)) * ce * (1 - p_t) ** gamma)

    return {
        "mse": ("F.mse_loss", lambda yhat, y: F.mse_loss(yhat, y)),
        "mae": ("F.l1_loss", lambda yhat, y: F.l1_loss(yhat, y)),
        "huber": ("F.huber_loss", lambda yhat, y: F.huber_loss(yhat, y)),
        "huber_0.5": ("F.huber_loss", lambda yhat, y: F.huber_loss(yhat, y, delta=0.5)),
        "smooth_l1": ("F.smooth_l1_loss", lambda yhat, y: F.smooth_l1_loss(yhat, y)),
        "smooth_l1_0.5": ("F.smooth_l1_loss", lambda yhat, y: F.smooth_l1_loss(yhat, y, beta=0.5)),
        "log_cosh": ("by hand", lambda yhat, y: torch.mean(
            torch.abs(yhat - y) + F.softplus(-2 * torch.abs(yhat - y)) - float(np.log(2.0)))),
        "cross_entropy": ("F.cross_entropy", lambda logits, y: F.cross_entropy(logits, y)),
        "cross_entropy_smooth": ("F.cross_entropy",
                                 lambda logits, y: F.cross_entropy(logits, y, label_smoothing=0.1)),
        "cross_entropy_ignored": ("F.cross_entropy", lambda logits, y: F.cross_entropy(logits, y)),
        "weighted_cross_entropy": ("F.cross_entropy",
                                   lambda logits, y, class_w: F.cross_entropy(logits, y, weight=class_w)),
        "binary_cross_entropy": ("F.binary_cross_entropy_with_logits",
                                 lambda logits, y: F.binary_cross_entropy_with_logits(logits, y)),
        "binary_cross_entropy_pw": ("F.binary_cross_entropy_with_logits",
                                    lambda logits, y: F.binary_cross_entropy_with_logits(
                                        logits, y, pos_weight=torch.tensor(2.0))),
        "focal": ("by hand (torchvision's formula)", focal),
        "kl_div": ("F.kl_div", lambda log_q, p: F.kl_div(log_q, p, reduction="batchmean")),
        "poisson_nll": ("F.poisson_nll_loss", lambda log_rate, y: F.poisson_nll_loss(log_rate, y)),
        "gaussian_nll": ("F.gaussian_nll_loss", lambda mu, var, y: F.gaussian_nll_loss(mu, y, var)),
        "hinge": ("by hand", lambda yhat, y: torch.mean(torch.clamp(1 - y * yhat, min=0))),
        "margin_ranking": ("F.margin_ranking_loss", lambda x1, x2, y: F.margin_ranking_loss(x1, x2, y)),
        "triplet": ("F.triplet_margin_loss", lambda anchor, positive, negative: F.triplet_margin_loss(
            anchor, positive, negative, eps=1e-6)),
        "cosine": ("F.cosine_similarity", lambda yhat, y: torch.mean(1 - F.cosine_similarity(yhat, y, dim=1))),
        **torch_more(torch, F),
    }


def _box_parts(torch, boxes, gt, eps):
    x1, y1, x2, y2 = boxes.unbind(1)
    gx1, gy1, gx2, gy2 = gt.unbind(1)
    inter = torch.relu(torch.minimum(x2, gx2) - torch.maximum(x1, gx1)) * torch.relu(
        torch.minimum(y2, gy2) - torch.maximum(y1, gy1))
    union = torch.clamp((x2 - x1) * (y2 - y1) + (gx2 - gx1) * (gy2 - gy1) - inter, min=0.0)
    cw = torch.maximum(x2, gx2) - torch.minimum(x1, gx1)
    ch = torch.maximum(y2, gy2) - torch.minimum(y1, gy1)
    dist2 = ((x1 + x2 - gx1 - gx2) / 2) ** 2 + ((y1 + y2 - gy1 - gy2) / 2) ** 2
    iou = inter / (union + eps)
    return x1, y1, x2, y2, gx1, gy1, gx2, gy2, inter, union, cw, ch, dist2, iou


def torch_more(torch, F) -> dict:
    """The rest of lossdsl.std: torch.nn.functional where it ships the loss, else the formula by hand
    (torchvision's box losses by hand: it is not a dependency here)."""
    eps12 = 1e-12

    def normalized(x):
        return x / torch.clamp(torch.linalg.vector_norm(x, dim=1, keepdim=True), min=eps12)

    def arcface(emb, weight, y, margin=0.5, scale=64.0):
        c = torch.clamp(normalized(emb) @ normalized(weight).T, -1.0, 1.0)
        t = torch.cos(torch.acos(c.gather(1, y[:, None])) + margin)
        logits = scale * torch.where(torch.arange(c.shape[1]) == y[:, None], t, c)
        return F.cross_entropy(logits, y)

    def cosface(emb, weight, y, margin=0.35, scale=64.0):
        c = normalized(emb) @ normalized(weight).T
        return F.cross_entropy(scale * (c - margin * F.one_hot(y, c.shape[1])), y)

    def batch_hard(z, labels, margin=1.0):
        b = z.shape[0]
        other = ~torch.eye(b, dtype=torch.bool)
        d = torch.linalg.vector_norm(torch.where(other[:, :, None], z[:, None, :] - z[None, :, :], 1.0), dim=2)
        same = labels[:, None] == labels[None, :]
        hard_pos = torch.where(same & other, d, -torch.inf).amax(1)
        hard_neg = torch.where(same, torch.inf, d).amin(1)
        return torch.mean(torch.relu(hard_pos - hard_neg + margin))

    def circle(z, labels, gamma=80.0, margin=0.4):
        b = z.shape[0]
        d = torch.relu(1 - z @ z.T)
        same = labels[:, None] == labels[None, :]
        pos = same & ~torch.eye(b, dtype=torch.bool)
        s_p = -gamma * torch.relu(margin + d) * (margin - d)
        s_n = gamma * torch.relu(1 + margin - d) * (1 - margin - d)
        return torch.mean(F.softplus(torch.logsumexp(torch.where(pos, s_p, -torch.inf), 1)
                                     + torch.logsumexp(torch.where(same, -torch.inf, s_n), 1)))

    def nt_xent(z, labels, temperature=0.07):
        b = z.shape[0]
        u = normalized(z)
        sim = u @ u.T / temperature
        same = labels[:, None] == labels[None, :]
        pos = same & ~torch.eye(b, dtype=torch.bool)
        neg_lse = torch.logsumexp(torch.where(same, -torch.inf, sim), 1, keepdim=True)
        per = torch.where(pos, sim - torch.logaddexp(sim, neg_lse), 0.0)
        return -per.sum() / torch.clamp(pos.sum(), min=1)

    def supcon(z, labels, temperature=0.07, base_temperature=0.07):
        b = z.shape[0]
        u = normalized(z)
        sim = u @ u.T / temperature
        other = ~torch.eye(b, dtype=torch.bool)
        pos = (labels[:, None] == labels[None, :]) & other
        logp = sim - torch.logsumexp(torch.where(other, sim, -torch.inf), 1, keepdim=True)
        mean_logp = torch.where(pos, logp, 0.0).sum(1) / torch.clamp(pos.sum(1), min=1)
        return torch.mean(-temperature / base_temperature * mean_logp)

    def giou(boxes, gt, eps=1e-7):
        *_, inter, union, cw, ch, _, iou = _box_parts(torch, boxes, gt, eps)
        hull = torch.clamp(cw * ch, min=0.0)
        return torch.mean(1 - iou + (hull - union) / (hull + eps))

    def diou(boxes, gt, eps=1e-7):
        *_, cw, ch, dist2, iou = _box_parts(torch, boxes, gt, eps)
        return torch.mean(1 - iou + dist2 / (cw ** 2 + ch ** 2 + eps))

    def ciou(boxes, gt, eps=1e-7):
        x1, y1, x2, y2, gx1, gy1, gx2, gy2, _, _, cw, ch, dist2, iou = _box_parts(torch, boxes, gt, eps)
        v = (4 / torch.pi ** 2) * (torch.atan2(gx2 - gx1, gy2 - gy1) - torch.atan2(x2 - x1, y2 - y1)) ** 2
        with torch.no_grad():
            alpha = v / (torch.clamp(1 - iou, min=0.0) + v + eps)
        return torch.mean(1 - iou + dist2 / (cw ** 2 + ch ** 2 + eps) + alpha * v)

    def lovasz_hinge(logits, y):
        errors = 1 - logits * (2 * y - 1)
        errors_sorted, order = torch.sort(errors, dim=1, descending=True)
        fg = y.gather(1, order)
        fg_all = fg.sum(1, keepdim=True)
        inter = fg_all - fg.cumsum(1)
        union = torch.clamp(fg_all + (1 - fg).cumsum(1), min=1.0)
        jaccard = 1 - inter / union
        steps = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
        return torch.mean((torch.relu(errors_sorted) * steps).sum(1))

    def lovasz_softmax(logits, y):
        c = logits.shape[2]
        fg_mask = (y[:, :, None] == torch.arange(c)).to(logits.dtype)
        errors = (fg_mask - torch.softmax(logits, 2)).abs()
        errors_sorted, order = torch.sort(errors, dim=1, descending=True)
        fg = fg_mask.gather(1, order)
        fg_all = fg_mask.sum(1, keepdim=True)
        inter = fg_all - fg.cumsum(1)
        union = torch.clamp(fg_all + (1 - fg).cumsum(1), min=1.0)
        jaccard = 1 - inter / union
        steps = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], 1)
        present = fg_mask.sum(1) > 0
        each = (errors_sorted * steps).sum(1)
        return torch.mean(torch.where(present, each, 0.0).sum(1) / torch.clamp(present.sum(1), min=1))

    def sparsemax(z, y):
        top = torch.sort(z, dim=1, descending=True).values
        k = torch.arange(1, z.shape[1] + 1, dtype=z.dtype)
        tau = ((top.cumsum(1) - 1) / k).amax(1)
        p = torch.relu(z - tau[:, None])
        return torch.mean((p * (z - 0.5 * p)).sum(1) - z.gather(1, y[:, None])[:, 0] + 0.5)

    def sigmoid_overlap(logits, y):
        p = torch.sigmoid(logits)
        return p, (y * p).sum(1), y.sum(1), p.sum(1)

    def dice(logits, y, eps=1e-7):
        _, inter, sy, sp = sigmoid_overlap(logits, y)
        return torch.mean(1 - 2 * inter / (torch.clamp(sy + sp, min=0.0) + eps))

    def jaccard(logits, y, eps=1e-7):
        _, inter, sy, sp = sigmoid_overlap(logits, y)
        return torch.mean(1 - inter / torch.clamp(sy + sp - inter, min=eps))

    def tversky(logits, y, alpha=0.5, beta=0.5, eps=1e-7):
        p, tp, _, _ = sigmoid_overlap(logits, y)
        fn = (y * (1 - p)).sum(1)
        fp = ((1 - y) * p).sum(1)
        return torch.mean(1 - tp / (torch.clamp(tp + alpha * fn + beta * fp, min=0.0) + eps))

    def vae(recon_logits, mu, logvar, x, beta=1.0):
        recon = F.binary_cross_entropy_with_logits(recon_logits, x, reduction="none").sum(1)
        kl = -0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), 1)
        return torch.mean(recon + beta * kl)

    def softmax_focal(logits, y, alpha=0.25, gamma=2.0):
        logp_t = F.log_softmax(logits, 1).gather(1, y[:, None])[:, 0]
        return torch.mean(-alpha * (1 - logp_t.exp()) ** gamma * logp_t)

    def z_loss(logits, y, z_weight=1e-4):
        log_z = torch.logsumexp(logits, 1)
        return F.cross_entropy(logits, y) + z_weight * torch.mean(log_z ** 2)

    return {
        "arcface": ("by hand, F.cross_entropy", arcface),
        "cosface": ("by hand, F.cross_entropy", cosface),
        "batch_hard_triplet": ("by hand", batch_hard),
        "circle": ("by hand", circle),
        "nt_xent": ("by hand", nt_xent),
        "supcon": ("by hand", supcon),
        "giou": ("by hand (torchvision's formula)", giou),
        "diou": ("by hand (torchvision's formula)", diou),
        "ciou": ("by hand (torchvision's formula)", ciou),
        "categorical_hinge": ("by hand", lambda yhat, y: torch.mean(torch.relu(
            ((1 - y) * yhat).amax(1) - (y * yhat).sum(1) + 1))),
        "charbonnier": ("by hand", lambda yhat, y: torch.mean(torch.sqrt((yhat - y) ** 2 + 1e-12))),
        "mape": ("by hand", lambda yhat, y: torch.mean(100 * (y - yhat).abs() / torch.clamp(y.abs(), min=1e-7))),
        "msle": ("by hand", lambda yhat, y: torch.mean(
            (torch.log1p(torch.clamp(yhat, min=1e-7)) - torch.log1p(torch.clamp(y, min=1e-7))) ** 2)),
        "squared_hinge": ("by hand", lambda yhat, y: torch.mean(torch.relu(1 - y * yhat) ** 2)),
        "hinge_embedding": ("F.hinge_embedding_loss", lambda x, y: F.hinge_embedding_loss(x, y)),
        "cosine_embedding": ("F.cosine_embedding_loss", lambda x1, x2, y: F.cosine_embedding_loss(x1, x2, y)),
        "dice": ("by hand", dice),
        "jaccard": ("by hand", jaccard),
        "tversky": ("by hand", tversky),
        "listnet": ("F.cross_entropy (soft labels)", lambda scores, y: F.cross_entropy(scores, y)),
        "lovasz_hinge": ("by hand (the authors' formula)", lovasz_hinge),
        "lovasz_softmax": ("by hand (the authors' formula)", lovasz_softmax),
        "multi_margin": ("F.multi_margin_loss", lambda x, y: F.multi_margin_loss(x, y)),
        "multiclass_hinge": ("by hand", lambda x, y: torch.mean(
            (x + 1 - F.one_hot(y, x.shape[1])).amax(1) - x.gather(1, y[:, None])[:, 0])),
        "multiclass_perceptron": ("by hand", lambda x, y: torch.mean(x.amax(1) - x.gather(1, y[:, None])[:, 0])),
        "multilabel_soft_margin": ("F.multilabel_soft_margin_loss",
                                   lambda x, y: F.multilabel_soft_margin_loss(x, y)),
        "poly1": ("by hand, F.cross_entropy", lambda logits, y: torch.mean(
            F.cross_entropy(logits, y, reduction="none") + 2.0 * (y * (1 - torch.softmax(logits, 1))).sum(1))),
        "softmax_focal": ("by hand", softmax_focal),
        "sparsemax": ("by hand", sparsemax),
        "vae_elbo": ("by hand, F.binary_cross_entropy_with_logits", vae),
        "wasserstein1": ("by hand", lambda logits, q: torch.mean(
            (torch.softmax(logits, 1) - q).cumsum(1).abs().sum(1))),
        "z_loss_cross_entropy": ("by hand, F.cross_entropy", z_loss),
    }


def tf_fns() -> dict:
    import keras
    import tensorflow as tf

    def ignored(logits, y):
        valid = tf.not_equal(y, -100)
        per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.where(valid, y, tf.zeros_like(y)), logits=logits)
        return tf.reduce_sum(tf.where(valid, per, 0.0)) / tf.maximum(tf.reduce_sum(tf.cast(valid, per.dtype)), 1.0)

    def smoothed(logits, y):
        onehot = tf.one_hot(y, tf.shape(logits)[-1], dtype=logits.dtype)
        return tf.reduce_mean(keras.losses.categorical_crossentropy(onehot, logits, from_logits=True,
                                                                    label_smoothing=0.1))

    return {
        "mse": ("keras mean_squared_error", lambda yhat, y: tf.reduce_mean(keras.losses.mean_squared_error(y, yhat))),
        "mae": ("keras mean_absolute_error", lambda yhat, y: tf.reduce_mean(keras.losses.mean_absolute_error(y, yhat))),
        "huber": ("keras huber", lambda yhat, y: tf.reduce_mean(keras.losses.huber(y, yhat))),
        "huber_0.5": ("keras huber", lambda yhat, y: tf.reduce_mean(keras.losses.huber(y, yhat, delta=0.5))),
        "log_cosh": ("keras log_cosh", lambda yhat, y: tf.reduce_mean(keras.losses.log_cosh(y, yhat))),
        "hinge": ("keras hinge", lambda yhat, y: tf.reduce_mean(keras.losses.hinge(y, yhat))),
        "cross_entropy": ("tf.nn.sparse_softmax_cross_entropy_with_logits", lambda logits, y: tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))),
        "cross_entropy_smooth": ("keras categorical_crossentropy", smoothed),
        "cross_entropy_ignored": ("tf.nn.sparse_softmax_cross_entropy_with_logits, masked", ignored),
        "binary_cross_entropy": ("tf.nn.sigmoid_cross_entropy_with_logits", lambda logits, y: tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits))),
        "binary_cross_entropy_pw": ("tf.nn.weighted_cross_entropy_with_logits", lambda logits, y: tf.reduce_mean(
            tf.nn.weighted_cross_entropy_with_logits(labels=y, logits=logits, pos_weight=2.0))),
    }


def jax_fns() -> dict:
    import jax.numpy as jnp
    import optax

    def ignored(logits, y):
        valid = y != -100
        per = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, y, 0))
        return jnp.sum(jnp.where(valid, per, 0.0)) / jnp.maximum(jnp.sum(valid), 1)

    def smoothed(logits, y):
        labels = optax.smooth_labels(jax_one_hot(y, logits.shape[-1]), 0.1)
        return jnp.mean(optax.softmax_cross_entropy(logits, labels))

    def jax_one_hot(y, c):
        import jax

        return jax.nn.one_hot(y, c)

    return {
        "mse": ("optax.squared_error", lambda yhat, y: jnp.mean(optax.squared_error(yhat, y))),
        "huber": ("optax.huber_loss", lambda yhat, y: jnp.mean(optax.huber_loss(yhat, y))),
        "huber_0.5": ("optax.huber_loss", lambda yhat, y: jnp.mean(optax.huber_loss(yhat, y, delta=0.5))),
        "log_cosh": ("optax.log_cosh", lambda yhat, y: jnp.mean(optax.log_cosh(yhat, y))),
        "hinge": ("optax.hinge_loss", lambda yhat, y: jnp.mean(optax.hinge_loss(yhat, y))),
        "cross_entropy": ("optax.softmax_cross_entropy_with_integer_labels", lambda logits, y: jnp.mean(
            optax.softmax_cross_entropy_with_integer_labels(logits, y))),
        "cross_entropy_smooth": ("optax.smooth_labels + softmax_cross_entropy", smoothed),
        "cross_entropy_ignored": ("optax, masked", ignored),
        "binary_cross_entropy": ("optax.sigmoid_binary_cross_entropy", lambda logits, y: jnp.mean(
            optax.sigmoid_binary_cross_entropy(logits, y))),
        "kl_div": ("optax.kl_divergence", lambda log_q, p: jnp.mean(optax.kl_divergence(log_q, p))),
        "cosine": ("optax.cosine_distance", lambda yhat, y: jnp.mean(optax.cosine_distance(yhat, y, epsilon=1e-8))),
    }


FNS = {"torch": torch_fns, "tensorflow": tf_fns, "jax": jax_fns}

HEAD_R = "pred yhat: float[B, D]\ntarget y: float[B, D]\n"
HEAD_C = "pred logits: float[B, C]\ntarget y: int[B]\n"
# (row label, spec, input kind, params, the key of the framework function it is timed against)
ROWS = [
    ("mse", "mse", "regression", {}, "mse"),
    ("mae", "mae", "regression", {}, "mae"),
    ("huber", "huber", "regression", {}, "huber"),
    ("huber (delta 0.5)", "huber", "regression", {"delta": 0.5}, "huber_0.5"),
    ("smooth_l1", "smooth_l1", "regression", {}, "smooth_l1"),
    ("smooth_l1 (beta 0.5)", "smooth_l1", "regression", {"beta": 0.5}, "smooth_l1_0.5"),
    ("log_cosh", "log_cosh", "regression", {}, "log_cosh"),
    ("cross_entropy", "cross_entropy", "classes", {}, "cross_entropy"),
    ("cross_entropy (smoothing 0.1)", "cross_entropy", "classes", {"label_smoothing": 0.1}, "cross_entropy_smooth"),
    ("cross_entropy (10% ignored)", "cross_entropy", "ignored", {}, "cross_entropy_ignored"),
    ("weighted_cross_entropy", "weighted_cross_entropy", "weighted", {}, "weighted_cross_entropy"),
    ("binary_cross_entropy", "binary_cross_entropy", "binary", {}, "binary_cross_entropy"),
    ("binary_cross_entropy (pos_weight 2)", "binary_cross_entropy", "binary", {"pos_weight": 2.0},
     "binary_cross_entropy_pw"),
    ("focal", "focal", "binary", {}, "focal"),
    ("kl_div", "kl_div", "probs", {}, "kl_div"),
    ("poisson_nll", "poisson_nll", "counts", {}, "poisson_nll"),
    ("gaussian_nll", "gaussian_nll", "gaussian", {}, "gaussian_nll"),
    ("hinge", "hinge", "signs", {}, "hinge"),
    ("margin_ranking", "margin_ranking", "pairs", {}, "margin_ranking"),
    ("triplet", "triplet", "triplet", {}, "triplet"),
    ("cosine", "cosine", "regression", {}, "cosine"),
    # The rest of the library, at the sizes of their kinds (MORE_KINDS).
    ("arcface", "arcface", "embed_classes", {}, "arcface"),
    ("cosface", "cosface", "embed_classes", {}, "cosface"),
    ("batch_hard_triplet", "batch_hard_triplet", "metric", {}, "batch_hard_triplet"),
    ("circle", "circle", "metric", {}, "circle"),
    ("nt_xent", "nt_xent", "metric", {}, "nt_xent"),
    ("supcon", "supcon", "metric", {}, "supcon"),
    ("giou", "giou", "boxes", {}, "giou"),
    ("diou", "diou", "boxes", {}, "diou"),
    ("ciou", "ciou", "boxes", {}, "ciou"),
    ("categorical_hinge", "categorical_hinge", "onehot", {}, "categorical_hinge"),
    ("charbonnier", "charbonnier", "residuals", {}, "charbonnier"),
    ("mape", "mape", "positive", {}, "mape"),
    ("msle", "msle", "positive", {}, "msle"),
    ("squared_hinge", "squared_hinge", "sign_targets", {}, "squared_hinge"),
    ("hinge_embedding", "hinge_embedding", "sign_targets", {}, "hinge_embedding"),
    ("cosine_embedding", "cosine_embedding", "embed_pairs", {}, "cosine_embedding"),
    ("dice", "dice", "binary_more", {}, "dice"),
    ("jaccard", "jaccard", "binary_more", {}, "jaccard"),
    ("tversky", "tversky", "binary_more", {}, "tversky"),
    ("listnet", "listnet", "soft_labels", {}, "listnet"),
    ("lovasz_hinge", "lovasz_hinge", "binary_more", {}, "lovasz_hinge"),
    ("lovasz_softmax", "lovasz_softmax", "segments", {}, "lovasz_softmax"),
    ("multi_margin", "multi_margin", "int_classes", {}, "multi_margin"),
    ("multiclass_hinge", "multiclass_hinge", "int_classes", {}, "multiclass_hinge"),
    ("multiclass_perceptron", "multiclass_perceptron", "int_classes", {}, "multiclass_perceptron"),
    ("multilabel_soft_margin", "multilabel_soft_margin", "binary_more", {}, "multilabel_soft_margin"),
    ("poly1", "poly1", "soft_labels", {}, "poly1"),
    ("softmax_focal", "softmax_focal", "int_classes", {}, "softmax_focal"),
    ("sparsemax", "sparsemax", "int_classes", {}, "sparsemax"),
    ("vae_elbo", "vae_elbo", "vae", {}, "vae_elbo"),
    ("wasserstein1", "wasserstein1", "soft_labels", {}, "wasserstein1"),
    ("z_loss_cross_entropy", "z_loss_cross_entropy", "int_classes", {}, "z_loss_cross_entropy"),
    # Equivalent spellings a user might write instead of the std file.
    ("huber spelled `r * r`, `abs(r) - 0.5`", HEAD_R + "let r = yhat - y\n"
     "loss = mean(where(abs(r) <= 1.0, 0.5 * r * r, abs(r) - 0.5))\n", "regression", {}, "huber"),
    ("huber spelled `1.0 > d`, per sample", HEAD_R + "let d = abs(y - yhat)\n"
     "loss = mean(where(1.0 > d, square(d) / 2, 1.0 * (d - 0.5)), axis=D)\n", "regression", {}, "huber"),
    ("mse spelled `(y - yhat) * (y - yhat)`", HEAD_R + "loss = mean((y - yhat) * (y - yhat))\n", "regression", {},
     "mse"),
    ("mse spelled `abs(yhat - y)^2`, per sample", HEAD_R + "loss = mean(abs(yhat - y)^2, axis=D)\n", "regression", {},
     "mse"),
    ("ce spelled `mean(-pick(log_softmax(z), y))`", HEAD_C + "loss = mean(-pick(log_softmax(logits, axis=C), y))\n",
     "classes", {}, "cross_entropy"),
    ("ce spelled `logsumexp(z) - pick(z, y)`, per sample", HEAD_C + "loss = logsumexp(logits, axis=C) - pick(logits, y)\n",
     "classes", {}, "cross_entropy"),
]


def _spec(spec: str):
    return lossdsl.std.path(spec) if "\n" not in spec else spec


def pairs(framework: str, quick: bool, compiled: bool):
    """(label, baseline name, baseline closure, lossdsl closure) per row the framework has a function for."""
    from run import agree, convert, one_thread, value_grad_closures

    one_thread(framework)  # before the framework's first op
    fns = FNS[framework]()
    if framework != "torch":  # the losses the framework does not ship, by hand (benches/std_reference.py)
        from std_reference import reference_fns

        fns = {**reference_fns(framework), **fns}
    rng = np.random.default_rng(0)
    for label, spec, kind, params, key in ROWS:
        if key not in fns:
            continue
        name, base_fn = fns[key]
        arrays = convert(framework, inputs(kind, rng, quick))
        ctx = {k: v for k, v in arrays.items() if k in CONTEXT}
        call = {k: v for k, v in arrays.items() if k not in CONTEXT}
        f = lossdsl.compile(_spec(spec), backend=framework, context=ctx, params=params)
        if kind in MORE_KINDS:  # those kinds give the arrays in the order of the spec's arguments
            call = dict(zip([d.name for d in f.spec.call_args], call.values()))
        pred = f.spec.preds[0].name
        base, dsl = value_grad_closures(framework, call, pred, lambda **a: base_fn(**a, **ctx), f, compiled=compiled)
        try:
            agree(base, dsl, f"{label} on {framework}", kinked=key in KINKED)
        except AssertionError as e:  # in the table, not a run lost: no time is taken for it
            yield label, name, None, str(e).strip().splitlines()[0]
            continue
        yield label, name, base, dsl


def table(quick: bool, frameworks=("torch", "tensorflow", "jax"), *, compiled: bool = True,
          rows: list[str] | None = None, target_s: float = 0.03, repeats: int = 7) -> list[str]:
    """The table; `compiled=False` leaves the compiled columns out (a compile per row is most of
    the run's time), `rows` keeps only the rows whose label is listed; each ratio is the median of
    `repeats` interleaved rounds of about `target_s` seconds each."""
    from run import compare, fmt_ratio, fmt_time

    if rows:
        ROWS[:] = [r for r in ROWS if r[0] in rows]
    out = ["| loss as users call it | framework | against | eager: baseline | lossdsl | ratio | "
           "compiled: baseline | lossdsl | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for fw in frameworks:
        def timed(b, d) -> str:
            if b is None:  # d: why the values or gradients disagree
                return f"**disagrees**: {d} | | |"
            r = compare(b, d, target_s=target_s, repeats=repeats)
            return f"{fmt_time(r['base'])} | {fmt_time(r['dsl'])} | {fmt_ratio(r)} |"

        eager = {label: (name, timed(b, d)) for label, name, b, d in pairs(fw, quick, False)}
        done = pairs(fw, quick, True) if compiled else ((label, name, None, None) for label, (name, _) in eager.items())
        for label, name, b, d in done:
            tail = timed(b, d) if compiled else "not run | | |"
            out.append(f"| {label} | {fw} | {name} | {eager[label][1]} " + tail)
            print(out[-1], flush=True)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", choices=sorted(SIZES), default="full", help="the inputs' sizes (SIZES)")
    ap.add_argument("--framework", action="append", choices=sorted(FNS))
    ap.add_argument("--eager", action="store_true", help="eager only: no compile per row")
    ap.add_argument("--row", action="append", help="only the rows with this label")
    ap.add_argument("--rest", action="store_true", help="only the rows of the rest of the library (MORE_KINDS)")
    a = ap.parse_args()
    import run

    run.keep_freed_memory()

    run.QUICK = a.quick
    SIZE = a.size
    rows = (a.row or []) + ([r[0] for r in ROWS if r[2] in MORE_KINDS] if a.rest else [])
    print("\n".join(table(a.quick, tuple(a.framework or FNS), compiled=not a.eager, rows=rows or None)))
