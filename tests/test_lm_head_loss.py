"""A language-model head whose per-token loss is summed over the tokens (lossdsl/lm_head_loss.py):
the sum folds into the head, whose forward prepares dh, dW and db over chunks of tokens and whose
backward scales them by the upstream gradient. Pinned: which specs fold and which keep the
statistics; value and gradients of every variant (z-loss, class and token weights, an ignore
index, label smoothing, soft-capping, a bias) against a dense float64 reference, over several
chunks of tokens, with an upstream gradient of 1 and another, on torch, TensorFlow eager and
under tf.function, and JAX under jit (which keeps its rematerialised scan); second derivatives;
a second backward of a retained graph; the API's mean of a per-token loss."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs

import lossdsl
from lossdsl import lm_head
from lossdsl.ir import topological

N, D, V = 140, 6, 40  # several chunks of tokens on torch (4 x 32 + 12) and TensorFlow (128 + 12)
SIZES = {"chunk": 7, "min_logits": 0}
HEAD = "pred h: float[N, D]\npred W: float[V, D]\ntarget y: int[N]\n"
VARIANTS = {
    "z_loss": "let z = h @ transpose(W)\n"
    "loss = mean(-pick(log_softmax(z, axis=V), y) + 0.01 * square(logsumexp(z, axis=V)))",
    "ignore_index": "let logp = log_softmax(h @ transpose(W), axis=V)\nlet keep = y != -100\n"
    "loss = sum(where(keep, -pick(logp, y), 0.0)) / sum(float(keep))",
    "token_and_class_weights": "input tw: float[N]\ncontext cw: float[V]\n"
    "loss = sum(tw * cw[y] * -pick(log_softmax(h @ transpose(W), axis=V), y)) / sum(tw * cw[y])",
    "bias_smoothing": "pred b: float[V]\nlet logp = log_softmax(h @ transpose(W) + b, axis=V)\n"
    "loss = mean(0.9 * -pick(logp, y) - 0.1 * mean(logp, axis=V))",
    "softcap_smoothing_sum_zloss": "let z = 3.0 * tanh(h @ transpose(W) / 3.0)\nlet logp = log_softmax(z, axis=V)\n"
    "loss = mean(0.9 * -pick(logp, y) - 0.1 * sum(logp, axis=V) / V + 0.001 * square(logsumexp(z, axis=V)))",
}
NOT_FOLDED = {
    "two_sums": "let z = h @ transpose(W)\n"
    "loss = mean(-pick(log_softmax(z, axis=V), y)) + 0.01 * mean(square(logsumexp(z, axis=V)))",
    "per_token": "loss = -pick(log_softmax(h @ transpose(W), axis=V), y)",
    "weights_from_a_pred": "pred w: float[N]\nloss = sum(w * -pick(log_softmax(h @ transpose(W), axis=V), y))",
    "a_sum_over_classes_of_the_tokens": "let lse = logsumexp(h @ transpose(W), axis=V)\nloss = sum(lse - mean(lse))",
}


def _kernels(body: str, backend: str) -> list:
    from lossdsl.pipeline import lower
    from lossdsl.printing import printer_for

    be = type("B", (), {"printer": printer_for(backend)})
    root = lower(lossdsl.check(HEAD + body + "\n"), be).root
    return [n for n in topological(root) if getattr(n, "fn", None) == "kernel"]


@pytest.mark.parametrize("backend", ["torch", "tensorflow"])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_sum_of_a_per_token_loss_folds_into_the_head(name, backend):
    (k,) = _kernels(VARIANTS[name], backend)
    assert k.attr("kernel") == "lm_head" and k.attr("reduction") in ("sum", "mean") and k.type.rank == 0
    assert k.attr("token_loss") is not None


@pytest.mark.parametrize("name", sorted(NOT_FOLDED))
def test_a_loss_that_reads_the_statistics_otherwise_keeps_them(name):
    assert [k.attr("reduction") for k in _kernels(NOT_FOLDED[name], "torch")] == ["stats"]


def test_jax_and_numpy_keep_the_statistics():
    for backend in ("jax", "numpy"):
        assert [k.attr("reduction") for k in _kernels(VARIANTS["z_loss"], backend)] == ["stats"]


def _inputs(name: str, rng) -> tuple[dict, dict]:
    x = {"h": rng.normal(size=(N, D)), "W": rng.normal(size=(V, D)), "y": rng.integers(0, V, size=N)}
    x["y"][:3] = [0, V - 1, 35]
    context = {}
    if name == "ignore_index":
        x["y"][[4, 70, 139]] = -100  # in the first chunk of tokens, a middle one and the last
    if name == "token_and_class_weights":
        x["tw"] = rng.uniform(0.5, 2.0, size=N)
        context["cw"] = rng.uniform(0.5, 2.0, size=V)
    if name == "bias_smoothing":
        x["b"] = rng.normal(size=V)
    return x, context


def _preds(name: str) -> list[str]:
    return ["h", "W"] + (["b"] if name == "bias_smoothing" else [])


def _reference(name, x, context, upstream, second=None):
    """Value and gradients of upstream * loss in float64, written densely from the spec; with
    `second = r`, also d/dW of sum(r * d(loss)/dh)."""
    import torch

    t = {k: torch.tensor(v, requires_grad=k in _preds(name)) for k, v in x.items()}
    y = t["y"]
    z = t["h"] @ t["W"].T + (t["b"] if "b" in t else 0.0)
    if name.startswith("softcap"):
        z = 3.0 * torch.tanh(z / 3.0)
    logp = torch.log_softmax(z, 1)
    keep = y != -100
    nll = -logp.gather(1, torch.where(keep, y, 0)[:, None])[:, 0]
    lse = torch.logsumexp(z, 1)
    if name == "z_loss":
        out = (nll + 0.01 * lse**2).mean()
    elif name == "ignore_index":
        out = torch.where(keep, nll, 0.0).sum() / keep.double().sum()
    elif name == "token_and_class_weights":
        w = t["tw"] * torch.tensor(context["cw"])[y]
        out = (w * nll).sum() / w.sum()
    elif name == "bias_smoothing":
        out = (0.9 * nll - 0.1 * logp.mean(1)).mean()
    else:
        out = (0.9 * nll - 0.1 * logp.sum(1) / V + 0.001 * lse**2).mean()
    preds = _preds(name)
    grads = torch.autograd.grad(out * upstream, [t[p] for p in preds], create_graph=second is not None)
    result = {p: g.detach().numpy() for p, g in zip(preds, grads)}
    if second is None:
        return out.item(), result, None
    return out.item(), result, torch.autograd.grad((grads[0] * torch.tensor(second)).sum(), t["W"])[0].numpy()


def _compiled(name, backend, context, dtype="float64"):
    from lossdsl.runner import to_backend

    with lm_head.options(**SIZES):
        f = lossdsl.compile(HEAD + VARIANTS[name] + "\n", backend=backend, context=to_backend(backend, context, dtype))
    assert ("rt.lm_head_loss(" in f.source) == (backend != "jax")
    return f


def _run(backend, f, x, preds, upstream, dtype, traced):
    from lossdsl.runner import to_backend, to_numpy

    args = to_backend(backend, x, dtype)
    if backend == "torch":
        import torch

        for p in preds:
            args[p].requires_grad_(True)
        out = f(**args)
        grads = torch.autograd.grad(out * upstream, [args[p] for p in preds])
    elif backend == "jax":
        import jax

        def value_and_grads(pv):
            return jax.value_and_grad(lambda q: f(**{**args, **q}) * upstream)(pv)

        scaled, g = jax.jit(value_and_grads)({p: args[p] for p in preds})
        return to_numpy(scaled) / upstream, {p: to_numpy(g[p]) for p in preds}
    else:
        import tensorflow as tf

        def go(args):
            with tf.GradientTape() as tape:
                tape.watch([args[p] for p in preds])
                out = f(**args)
                scaled = out * upstream
            return out, tape.gradient(scaled, [args[p] for p in preds])

        out, grads = (tf.function(go) if traced else go)(args)
    return to_numpy(out), {p: to_numpy(g) for p, g in zip(preds, grads)}


RUNS = [
    pytest.param("torch", False, marks=needs("torch"), id="torch"),
    pytest.param("tensorflow", False, marks=needs("tensorflow"), id="tensorflow-eager"),
    pytest.param("tensorflow", True, marks=needs("tensorflow"), id="tensorflow-function"),
    pytest.param("jax", True, marks=needs("jax"), id="jax-jit"),
]


@pytest.mark.parametrize("upstream", [1.0, -1.7])
@pytest.mark.parametrize("backend, traced", RUNS)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_value_and_gradients_equal_the_dense_float64_reference(name, backend, traced, upstream, rng):
    pytest.importorskip("torch")
    x, context = _inputs(name, rng)
    value, grads, _ = _reference(name, x, context, upstream)
    for dtype, tol in (("float64", 1e-10), ("float32", 2e-5)):
        f = _compiled(name, backend, context, dtype)
        out, got = _run(backend, f, x, _preds(name), upstream, dtype, traced)
        np.testing.assert_allclose(out, value, rtol=tol, err_msg=f"{backend} {name} value")
        for p in got:
            scale = np.abs(grads[p]).max()
            np.testing.assert_allclose(got[p], grads[p], rtol=tol, atol=tol * scale, err_msg=f"{backend} {name} d/d{p}")


@pytest.mark.parametrize("backend", [pytest.param(b, marks=needs(b)) for b in ("torch", "tensorflow")])
@pytest.mark.parametrize("name", ["z_loss", "softcap_smoothing_sum_zloss"])
def test_second_derivatives_equal_the_reference(name, backend, rng):
    pytest.importorskip("torch")
    x, context = _inputs(name, rng)
    r = rng.normal(size=(N, D))
    _, _, expected = _reference(name, x, context, 1.0, second=r)
    f = _compiled(name, backend, context)
    from lossdsl.runner import to_backend, to_numpy

    a = to_backend(backend, x, "float64")
    if backend == "torch":
        import torch

        a["h"].requires_grad_(True)
        a["W"].requires_grad_(True)
        (gh,) = torch.autograd.grad(f(**a), [a["h"]], create_graph=True)
        got = torch.autograd.grad((gh * torch.tensor(r)).sum(), a["W"])[0]
    else:
        import tensorflow as tf

        with tf.GradientTape() as outer:
            outer.watch(a["W"])
            with tf.GradientTape() as inner:
                inner.watch(a["h"])
                out = f(**a)
            total = tf.reduce_sum(inner.gradient(out, a["h"]) * r)
        got = outer.gradient(total, a["W"])
    np.testing.assert_allclose(to_numpy(got), expected, rtol=1e-8, atol=1e-10)


@needs("torch")
def test_a_second_backward_of_a_retained_graph_gives_the_same_gradient(rng):
    import torch

    x, context = _inputs("z_loss", rng)
    f = _compiled("z_loss", "torch", context)
    h = torch.tensor(x["h"], requires_grad=True)
    W = torch.tensor(x["W"], requires_grad=True)
    out = f(h=h, W=W, y=torch.tensor(x["y"]))
    first = torch.autograd.grad(out, [h, W], retain_graph=True)  # prepared in the forward
    second = torch.autograd.grad(out, [h, W])  # the statistics differentiated again
    for a, b in zip(first, second):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


@needs("torch")
def test_the_apis_mean_of_a_per_token_loss_folds_into_the_head(rng):
    import torch

    src = (
        HEAD
        + "let z = h @ transpose(W)\nloss = -pick(log_softmax(z, axis=V), y) + 0.01 * square(logsumexp(z, axis=V))\n"
    )
    with lm_head.options(**SIZES):
        f = lossdsl.compile(src, backend="torch")
    assert "rt.lm_head_loss(" in f.source
    x, _ = _inputs("z_loss", rng)
    h = torch.tensor(x["h"], requires_grad=True)
    W = torch.tensor(x["W"], requires_grad=True)
    value, grads, _ = _reference("z_loss", x, {}, 1.0)
    out = f(h=h, W=W, y=torch.tensor(x["y"]))  # the API's default reduction: the mean
    np.testing.assert_allclose(out.item(), value, rtol=1e-10)
    for p, g in zip(("h", "W"), torch.autograd.grad(out, [h, W])):
        np.testing.assert_allclose(g.numpy(), grads[p], rtol=1e-9, atol=1e-12)
