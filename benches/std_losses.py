"""What users run: every `lossdsl.std` loss as shipped (the API's default mean), with default and
non-default params, and equivalent spellings of Huber, MSE and cross-entropy, against the
framework's own function, value and gradient with respect to the first pred, eager and compiled.

    python benches/std_losses.py --quick        # a smoke run, small sizes (seconds)
    python benches/run.py --only users          # the section of docs/benchmarks.md

Sizes as a classifier or regressor sees them: B=4096 samples, D=256 features, C=1000 classes.
Baselines are torch.nn.functional, TensorFlow's tf.nn / tf.keras.losses and optax; where a
framework ships no such function the row says "by hand" (the formula written in the framework)
or is left out. Values and gradients are compared before anything is timed.
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


def inputs(kind: str, rng, quick: bool) -> dict:
    b, d, c = (256, 32, 50) if quick else (4096, 256, 1000)
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
    return {"yhat": rng.normal(size=(b, d)).astype(f32), "y": rng.normal(size=(b, d)).astype(f32)}


CONTEXT = {"class_w"}


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
    from run import agree, convert, value_grad_closures

    fns = FNS[framework]()
    rng = np.random.default_rng(0)
    for label, spec, kind, params, key in ROWS:
        if key not in fns:
            continue
        name, base_fn = fns[key]
        arrays = convert(framework, inputs(kind, rng, quick))
        ctx = {k: v for k, v in arrays.items() if k in CONTEXT}
        call = {k: v for k, v in arrays.items() if k not in CONTEXT}
        f = lossdsl.compile(_spec(spec), backend=framework, context=ctx, params=params)
        pred = f.spec.preds[0].name
        base, dsl = value_grad_closures(framework, call, pred, lambda **a: base_fn(**a, **ctx), f, compiled=compiled)
        agree(base, dsl, f"{label} on {framework}")
        yield label, name, base, dsl


def table(quick: bool, frameworks=("torch", "tensorflow", "jax")) -> list[str]:
    from run import compare, fmt_ratio, fmt_time

    rows = ["| loss as users call it | framework | against | eager: baseline | lossdsl | ratio | "
            "compiled: baseline | lossdsl | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for fw in frameworks:
        eager = {label: (name, compare(b, d, target_s=0.03, repeats=7)) for label, name, b, d in pairs(fw, quick, False)}
        for label, name, b, d in pairs(fw, quick, True):
            r = compare(b, d, target_s=0.03, repeats=7)
            _, e = eager[label]
            rows.append(f"| {label} | {fw} | {name} | {fmt_time(e['base'])} | {fmt_time(e['dsl'])} | {fmt_ratio(e)} | "
                        f"{fmt_time(r['base'])} | {fmt_time(r['dsl'])} | {fmt_ratio(r)} |")
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--framework", action="append", choices=sorted(FNS))
    a = ap.parse_args()
    import run

    run.QUICK = a.quick
    print("\n".join(table(a.quick, tuple(a.framework or FNS))))
