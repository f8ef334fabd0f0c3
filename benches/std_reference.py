"""The std losses no TensorFlow or JAX function computes, written by hand once for both: each
formula is the one benches/std_losses.py writes in torch, over a NumPy-like namespace
(`jax.numpy`, `tensorflow.experimental.numpy`) and the few operations that differ (`Ops`),
with the framework's own fused call where one computes a term (sigmoid and softmax
cross-entropy: `tf.nn`, optax).

    reference_fns("jax") -> {key: (baseline name, fn of the framework's arrays)}
"""

from __future__ import annotations

import math


class Ops:
    """What the formulas need beyond the NumPy-like namespace `xp`, per framework."""

    def __init__(self, framework: str):
        self.framework = framework
        if framework == "jax":
            import jax
            import jax.numpy as jnp
            import optax

            self.xp, self.jax, self.optax = jnp, jax, optax
        else:
            import tensorflow as tf
            import tensorflow.experimental.numpy as tnp

            self.xp, self.tf = tnp, tf

    # elementwise
    def relu(self, x):
        return self.xp.maximum(x, 0.0)

    def softplus(self, x):
        return self.xp.logaddexp(x, 0.0)

    def log_sigmoid(self, x):
        return -self.softplus(-x)

    def sigmoid(self, x):
        return self.jax.nn.sigmoid(x) if self.framework == "jax" else self.tf.sigmoid(x)

    # along the last axis of a matrix
    def logsumexp(self, x, axis=1, keepdims=False):
        if self.framework == "jax":
            return self.jax.nn.logsumexp(x, axis=axis, keepdims=keepdims)
        return self.tf.reduce_logsumexp(x, axis=axis, keepdims=keepdims)

    def log_softmax(self, x, axis=1):
        return x - self.logsumexp(x, axis, keepdims=True)

    def softmax(self, x, axis=1):
        return self.xp.exp(self.log_softmax(x, axis))

    def pick(self, x, y):
        """x[i, y[i]] for a matrix x and int labels y."""
        return self.xp.take_along_axis(x, y[:, None], axis=1)[:, 0]

    def one_hot(self, y, c, like):
        return self.cast(self.xp.arange(c)[None, :] == y[:, None], like)

    def cast(self, x, like):
        return self.xp.asarray(x, dtype=like.dtype)

    def norm(self, x, axis=1, keepdims=False):
        return self.xp.sqrt(self.xp.sum(x * x, axis=axis, keepdims=keepdims))

    def sort_desc(self, x):
        """(values, order) sorted from the largest along axis 1."""
        order = self.xp.argsort(-x, axis=1)
        return self.xp.take_along_axis(x, order, axis=1), order

    def stop_gradient(self, x):
        return self.jax.lax.stop_gradient(x) if self.framework == "jax" else self.tf.stop_gradient(x)

    # the framework's fused cross-entropies, per sample or per element
    def bce(self, z, y):
        if self.framework == "jax":
            return self.optax.sigmoid_binary_cross_entropy(z, y)
        return self.tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z)

    def ce(self, z, y):
        if self.framework == "jax":
            return self.optax.softmax_cross_entropy_with_integer_labels(z, y)
        return self.tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z)

    def soft_ce(self, z, p):
        if self.framework == "jax":
            return self.optax.softmax_cross_entropy(z, p)
        return self.tf.nn.softmax_cross_entropy_with_logits(labels=p, logits=z)


def _box_parts(o, boxes, gt, eps):
    xp = o.xp
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    gx1, gy1, gx2, gy2 = (gt[:, i] for i in range(4))
    inter = o.relu(xp.minimum(x2, gx2) - xp.maximum(x1, gx1)) * o.relu(xp.minimum(y2, gy2) - xp.maximum(y1, gy1))
    union = xp.maximum((x2 - x1) * (y2 - y1) + (gx2 - gx1) * (gy2 - gy1) - inter, 0.0)
    cw = xp.maximum(x2, gx2) - xp.minimum(x1, gx1)
    ch = xp.maximum(y2, gy2) - xp.minimum(y1, gy1)
    dist2 = ((x1 + x2 - gx1 - gx2) / 2) ** 2 + ((y1 + y2 - gy1 - gy2) / 2) ** 2
    iou = inter / (union + eps)
    return x1, y1, x2, y2, gx1, gy1, gx2, gy2, inter, union, cw, ch, dist2, iou


def reference_fns(framework: str) -> dict:  # noqa: C901 - one formula per loss
    o = Ops(framework)
    xp = o.xp
    eps12 = 1e-12

    def mean(x):
        return xp.mean(x)

    def normalized(x):
        return x / xp.maximum(o.norm(x, keepdims=True), eps12)

    def smooth_l1(beta):
        def f(yhat, y):
            r = xp.abs(yhat - y)
            return mean(xp.where(r < beta, 0.5 * r * r / beta, r - 0.5 * beta))
        return f

    def focal(logits, y, alpha=0.25, gamma=2.0):
        p = o.sigmoid(logits)
        p_t = p * y + (1 - p) * (1 - y)
        return mean((alpha * y + (1 - alpha) * (1 - y)) * o.bce(logits, y) * (1 - p_t) ** gamma)

    def weighted_ce(logits, y, class_w):
        w = xp.take(class_w, y)
        return xp.sum(w * o.ce(logits, y)) / xp.sum(w)

    def bce_pw(logits, y, pw=2.0):
        return mean(-(pw * y * o.log_sigmoid(logits) + (1 - y) * o.log_sigmoid(-logits)))

    def kl_div(log_q, p):
        return xp.sum(xp.where(p > 0, p * (xp.log(xp.where(p > 0, p, 1.0)) - log_q), 0.0)) / log_q.shape[0]

    def gaussian_nll(mu, var, y, eps=1e-6):
        v = xp.maximum(var, eps)
        return mean(0.5 * (xp.log(v) + (y - mu) ** 2 / v))

    def triplet(anchor, positive, negative, margin=1.0, eps=1e-6):
        d_ap = o.norm(anchor - positive + eps)
        d_an = o.norm(anchor - negative + eps)
        return mean(o.relu(d_ap - d_an + margin))

    def cosine_sim(a, b, eps=1e-8):
        return xp.sum(a * b, axis=1) / xp.maximum(o.norm(a) * o.norm(b), eps)

    def arcface(emb, weight, y, margin=0.5, scale=64.0):
        c = xp.clip(xp.matmul(normalized(emb), xp.transpose(normalized(weight))), -1.0, 1.0)
        t = xp.cos(xp.arccos(o.pick(c, y)) + margin)
        logits = scale * xp.where(xp.arange(c.shape[1])[None, :] == y[:, None], t[:, None], c)
        return mean(o.ce(logits, y))

    def cosface(emb, weight, y, margin=0.35, scale=64.0):
        c = xp.matmul(normalized(emb), xp.transpose(normalized(weight)))
        return mean(o.ce(scale * (c - margin * o.one_hot(y, c.shape[1], c)), y))

    def batch_hard(z, labels, margin=1.0):
        b = z.shape[0]
        other = ~xp.eye(b, dtype=bool)
        d = o.norm(xp.where(other[:, :, None], z[:, None, :] - z[None, :, :], 1.0), axis=2)
        same = labels[:, None] == labels[None, :]
        hard_pos = xp.max(xp.where(same & other, d, -math.inf), axis=1)
        hard_neg = xp.min(xp.where(same, math.inf, d), axis=1)
        return mean(o.relu(hard_pos - hard_neg + margin))

    def circle(z, labels, gamma=80.0, margin=0.4):
        b = z.shape[0]
        d = o.relu(1 - xp.matmul(z, xp.transpose(z)))
        same = labels[:, None] == labels[None, :]
        pos = same & ~xp.eye(b, dtype=bool)
        s_p = -gamma * o.relu(margin + d) * (margin - d)
        s_n = gamma * o.relu(1 + margin - d) * (1 - margin - d)
        return mean(o.softplus(o.logsumexp(xp.where(pos, s_p, -math.inf)) + o.logsumexp(xp.where(same, -math.inf, s_n))))

    def similarities(z, labels, temperature):
        b = z.shape[0]
        u = normalized(z)
        other = ~xp.eye(b, dtype=bool)
        same = labels[:, None] == labels[None, :]
        return xp.matmul(u, xp.transpose(u)) / temperature, other, same

    def nt_xent(z, labels, temperature=0.07):
        sim, other, same = similarities(z, labels, temperature)
        pos = same & other
        neg_lse = o.logsumexp(xp.where(same, -math.inf, sim), keepdims=True)
        per = xp.where(pos, sim - xp.logaddexp(sim, neg_lse), 0.0)
        return -xp.sum(per) / xp.maximum(xp.sum(o.cast(pos, sim)), 1.0)

    def supcon(z, labels, temperature=0.07, base_temperature=0.07):
        sim, other, same = similarities(z, labels, temperature)
        pos = same & other
        logp = sim - o.logsumexp(xp.where(other, sim, -math.inf), keepdims=True)
        mean_logp = xp.sum(xp.where(pos, logp, 0.0), axis=1) / xp.maximum(xp.sum(o.cast(pos, sim), axis=1), 1.0)
        return mean(-temperature / base_temperature * mean_logp)

    def giou(boxes, gt, eps=1e-7):
        *_, union, cw, ch, _, iou = _box_parts(o, boxes, gt, eps)
        hull = xp.maximum(cw * ch, 0.0)
        return mean(1 - iou + (hull - union) / (hull + eps))

    def diou(boxes, gt, eps=1e-7):
        *_, cw, ch, dist2, iou = _box_parts(o, boxes, gt, eps)
        return mean(1 - iou + dist2 / (cw ** 2 + ch ** 2 + eps))

    def ciou(boxes, gt, eps=1e-7):
        x1, y1, x2, y2, gx1, gy1, gx2, gy2, _, _, cw, ch, dist2, iou = _box_parts(o, boxes, gt, eps)
        v = (4 / math.pi ** 2) * (xp.arctan2(gx2 - gx1, gy2 - gy1) - xp.arctan2(x2 - x1, y2 - y1)) ** 2
        alpha = o.stop_gradient(v / (xp.maximum(1 - iou, 0.0) + v + eps))
        return mean(1 - iou + dist2 / (cw ** 2 + ch ** 2 + eps) + alpha * v)

    def jaccard_steps(fg, fg_all):
        inter = fg_all - xp.cumsum(fg, axis=1)
        union = xp.maximum(fg_all + xp.cumsum(1 - fg, axis=1), 1.0)
        jac = 1 - inter / union
        return xp.concatenate([jac[:, :1], jac[:, 1:] - jac[:, :-1]], axis=1)

    def lovasz_hinge(logits, y):
        errors = 1 - logits * (2 * y - 1)
        errors_sorted, order = o.sort_desc(errors)
        fg = xp.take_along_axis(y, order, axis=1)
        steps = jaccard_steps(fg, xp.sum(y, axis=1, keepdims=True))
        return mean(xp.sum(o.relu(errors_sorted) * steps, axis=1))

    def lovasz_softmax(logits, y):
        b, n, c = logits.shape
        fg_mask = o.cast(y[:, :, None] == xp.arange(c)[None, None, :], logits)
        errors = xp.abs(fg_mask - o.softmax(logits, axis=2))
        # per image and class: sort the pixels (axis 1); as rows of (image, class)
        rows = xp.reshape(xp.transpose(errors, (0, 2, 1)), (b * c, n))
        fg_rows = xp.reshape(xp.transpose(fg_mask, (0, 2, 1)), (b * c, n))
        errors_sorted, order = o.sort_desc(rows)
        fg = xp.take_along_axis(fg_rows, order, axis=1)
        steps = jaccard_steps(fg, xp.sum(fg_rows, axis=1, keepdims=True))
        each = xp.reshape(xp.sum(errors_sorted * steps, axis=1), (b, c))
        present = xp.sum(fg_mask, axis=1) > 0
        return mean(xp.sum(xp.where(present, each, 0.0), axis=1) / xp.maximum(xp.sum(o.cast(present, each), axis=1), 1.0))

    def sparsemax(z, y):
        top = -xp.sort(-z, axis=1)
        k = o.cast(xp.arange(1, z.shape[1] + 1), z)
        tau = xp.max((xp.cumsum(top, axis=1) - 1) / k[None, :], axis=1)
        p = o.relu(z - tau[:, None])
        return mean(xp.sum(p * (z - 0.5 * p), axis=1) - o.pick(z, y) + 0.5)

    def overlap(logits, y):
        p = o.sigmoid(logits)
        return p, xp.sum(y * p, axis=1), xp.sum(y, axis=1), xp.sum(p, axis=1)

    def dice(logits, y, eps=1e-7):
        _, inter, sy, sp = overlap(logits, y)
        return mean(1 - 2 * inter / (xp.maximum(sy + sp, 0.0) + eps))

    def jaccard(logits, y, eps=1e-7):
        _, inter, sy, sp = overlap(logits, y)
        return mean(1 - inter / xp.maximum(sy + sp - inter, eps))

    def tversky(logits, y, alpha=0.5, beta=0.5, eps=1e-7):
        p, tp, _, _ = overlap(logits, y)
        fn = xp.sum(y * (1 - p), axis=1)
        fp = xp.sum((1 - y) * p, axis=1)
        return mean(1 - tp / (xp.maximum(tp + alpha * fn + beta * fp, 0.0) + eps))

    def vae(recon_logits, mu, logvar, x, beta=1.0):
        recon = xp.sum(o.bce(recon_logits, x), axis=1)
        kl = -0.5 * xp.sum(1 + logvar - mu ** 2 - xp.exp(logvar), axis=1)
        return mean(recon + beta * kl)

    def softmax_focal(logits, y, alpha=0.25, gamma=2.0):
        logp_t = o.pick(o.log_softmax(logits), y)
        return mean(-alpha * (1 - xp.exp(logp_t)) ** gamma * logp_t)

    def z_loss(logits, y, z_weight=1e-4):
        return mean(o.ce(logits, y)) + z_weight * mean(o.logsumexp(logits) ** 2)

    def multi_margin(x, y, margin=1.0):
        c = x.shape[1]
        hinge = o.relu(margin - o.pick(x, y)[:, None] + x)
        return mean(xp.sum(xp.where(xp.arange(c)[None, :] == y[:, None], 0.0, hinge), axis=1) / c)

    def cosine_embedding(x1, x2, y, margin=0.0):
        cos = cosine_sim(x1, x2, 1e-12)
        return mean(xp.where(y == 1, 1 - cos, o.relu(cos - margin)))

    return {
        "mae": ("by hand", lambda yhat, y: mean(xp.abs(yhat - y))),
        "smooth_l1": ("by hand", smooth_l1(1.0)),
        "smooth_l1_0.5": ("by hand", smooth_l1(0.5)),
        "weighted_cross_entropy": ("by hand, fused CE", weighted_ce),
        "binary_cross_entropy_pw": ("by hand", bce_pw),
        "focal": ("by hand, fused BCE", focal),
        "kl_div": ("by hand", kl_div),
        "poisson_nll": ("by hand", lambda log_rate, y: mean(xp.exp(log_rate) - y * log_rate)),
        "gaussian_nll": ("by hand", gaussian_nll),
        "margin_ranking": ("by hand", lambda x1, x2, y: mean(o.relu(-y * (x1 - x2)))),
        "triplet": ("by hand", triplet),
        "cosine": ("by hand", lambda yhat, y: mean(1 - cosine_sim(yhat, y))),
        "arcface": ("by hand, fused CE", arcface),
        "cosface": ("by hand, fused CE", cosface),
        "batch_hard_triplet": ("by hand", batch_hard),
        "circle": ("by hand", circle),
        "nt_xent": ("by hand", nt_xent),
        "supcon": ("by hand", supcon),
        "giou": ("by hand", giou),
        "diou": ("by hand", diou),
        "ciou": ("by hand", ciou),
        "categorical_hinge": ("by hand", lambda yhat, y: mean(o.relu(
            xp.max((1 - y) * yhat, axis=1) - xp.sum(y * yhat, axis=1) + 1))),
        "charbonnier": ("by hand", lambda yhat, y: mean(xp.sqrt((yhat - y) ** 2 + 1e-12))),
        "mape": ("by hand", lambda yhat, y: mean(100 * xp.abs(y - yhat) / xp.maximum(xp.abs(y), 1e-7))),
        "msle": ("by hand", lambda yhat, y: mean(
            (xp.log1p(xp.maximum(yhat, 1e-7)) - xp.log1p(xp.maximum(y, 1e-7))) ** 2)),
        "squared_hinge": ("by hand", lambda yhat, y: mean(o.relu(1 - y * yhat) ** 2)),
        "hinge_embedding": ("by hand", lambda x, y: mean(xp.where(y == 1, x, o.relu(1.0 - x)))),
        "cosine_embedding": ("by hand", cosine_embedding),
        "dice": ("by hand", dice),
        "jaccard": ("by hand", jaccard),
        "tversky": ("by hand", tversky),
        "listnet": ("by hand, fused soft CE", lambda scores, y: mean(o.soft_ce(scores, y))),
        "lovasz_hinge": ("by hand (the authors' formula)", lovasz_hinge),
        "lovasz_softmax": ("by hand (the authors' formula)", lovasz_softmax),
        "multi_margin": ("by hand", multi_margin),
        "multiclass_hinge": ("by hand", lambda x, y: mean(
            xp.max(x + 1 - o.one_hot(y, x.shape[1], x), axis=1) - o.pick(x, y))),
        "multiclass_perceptron": ("by hand", lambda x, y: mean(xp.max(x, axis=1) - o.pick(x, y))),
        "multilabel_soft_margin": ("by hand, fused BCE", lambda x, y: mean(xp.mean(o.bce(x, y), axis=1))),
        "poly1": ("by hand, fused soft CE", lambda logits, y: mean(
            o.soft_ce(logits, y) + 2.0 * xp.sum(y * (1 - o.softmax(logits)), axis=1))),
        "softmax_focal": ("by hand", softmax_focal),
        "sparsemax": ("by hand", sparsemax),
        "vae_elbo": ("by hand, fused BCE", vae),
        "wasserstein1": ("by hand", lambda logits, q: mean(
            xp.sum(xp.abs(xp.cumsum(o.softmax(logits) - q, axis=1)), axis=1))),
        "z_loss_cross_entropy": ("by hand, fused CE", z_loss),
    }
