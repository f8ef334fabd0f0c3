"""The language-model head whose gradient to each per-token statistic is the same for every token
(lossdsl/lm_head.py, `uniform`): on torch the forward runs over chunks of tokens and keeps what
the gradient is made of, and the backward does no matrix product. Pinned: which specs qualify,
value and gradients against a dense float64 reference over several chunks of tokens (with a bias,
label smoothing in its sum and mean forms), and the fallback when the upstream gradient is not
uniform after all. (On torch a loss that reads the statistics through one sum over the tokens
folds that sum into the head instead, tests/test_lm_head_loss.py; two such sums keep this path.)"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs

import lossdsl
from lossdsl import lm_head
from lossdsl.ir import topological

HEAD = "pred h: float[N, D]\npred W: float[V, D]\ntarget y: int[N]\n"
UNIFORM = {
    "plain": "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y))",
    "bias_smoothing_sum": "pred b: float[V]\nparam eps: float = 0.1\nlet z = b + h @ transpose(W)\n"
    "let logp = log_softmax(z, axis=V)\nloss = mean((1 - eps) * -pick(logp, y) + eps * -sum(logp, axis=V) / V)",
    "smoothing_mean_squared": "let logp = log_softmax(h @ transpose(W), axis=V)\n"
    "loss = square(sum(-pick(logp, y) - 0.1 * mean(logp, axis=V)) / N) + 1.0",
    "two_sums": "let logp = log_softmax(h @ transpose(W), axis=V)\n"
    "loss = mean(-pick(logp, y)) + 0.1 * sum(-mean(logp, axis=V)) / N",
}
NOT_UNIFORM = {
    "z_loss": "let z = h @ transpose(W)\nloss = mean(-pick(log_softmax(z, axis=V), y) + 0.001 * square(logsumexp(z, axis=V)))",
    "ignore_index": "let logp = log_softmax(h @ transpose(W), axis=V)\nloss = mean(where(y >= 0, -pick(logp, y), 0.0))",
    "per_token": "loss = -pick(log_softmax(h @ transpose(W), axis=V), y)",
    "token_weights": "input w: float[N]\nloss = mean(w * -pick(log_softmax(h @ transpose(W), axis=V), y))",
    "softcap": "loss = mean(-pick(log_softmax(3.0 * tanh(h @ transpose(W) / 3.0), axis=V), y))",
}
N, D, V = 70, 6, 40  # 32 tokens per chunk: 32 + 32 + 6


def _uniform_flags(body: str) -> list:
    from lossdsl.pipeline import lower
    from lossdsl.printing import printer_for

    backend = type("B", (), {"printer": printer_for("jax")})  # a backend that does not fold the sum into the head
    root = lower(lossdsl.check(HEAD + body + "\n"), backend).root
    return [n.attr("uniform") for n in topological(root) if getattr(n, "fn", None) == "kernel"]


@pytest.mark.parametrize("name", sorted(UNIFORM))
def test_a_loss_of_token_means_of_the_statistics_has_a_uniform_gradient(name):
    assert _uniform_flags(UNIFORM[name]) == [True]


@pytest.mark.parametrize("name", sorted(NOT_UNIFORM))
def test_a_loss_whose_gradient_differs_between_tokens_is_not_marked_uniform(name):
    assert _uniform_flags(NOT_UNIFORM[name]) == [None]


def _reference(name, x):
    import torch

    t = {k: torch.tensor(v, requires_grad=k in ("h", "W", "b")) for k, v in x.items()}
    z = t["h"] @ t["W"].T + (t["b"] if "b" in t else 0.0)
    logp = torch.log_softmax(z, 1)
    nll = -logp.gather(1, t["y"][:, None])[:, 0]
    if name == "plain":
        out = nll.mean()
    elif name == "bias_smoothing_sum":
        out = (0.9 * nll + 0.1 * -logp.sum(1) / V).mean()
    elif name == "two_sums":
        out = nll.mean() + 0.1 * (-logp.mean(1)).sum() / N
    else:
        out = torch.square((nll - 0.1 * logp.mean(1)).sum() / N) + 1.0
    preds = [k for k in ("h", "W", "b") if k in t]
    grads = torch.autograd.grad(out, [t[k] for k in preds])
    return out.item(), {k: g.numpy() for k, g in zip(preds, grads)}


@needs("torch")
@pytest.mark.parametrize("name", sorted(UNIFORM))
def test_the_gradient_prepared_in_the_forward_equals_the_dense_reference(name):
    import torch

    rng = np.random.default_rng(3)
    x = {"h": rng.normal(size=(N, D)), "W": rng.normal(size=(V, D)), "y": rng.integers(0, V, size=N)}
    x["y"][:2] = [0, V - 1]
    if "pred b" in UNIFORM[name]:
        x["b"] = rng.normal(size=V)
    with lm_head.options(chunk=7, min_logits=0):
        f = lossdsl.compile(HEAD + UNIFORM[name] + "\n", backend="torch")
    # one sum of the statistics folds into the head (lossdsl/lm_head_loss.py), two keep them prepared
    assert ("uniform=True" in f.source) == (name == "two_sums") != ("rt.lm_head_loss(" in f.source)
    args = {k: torch.tensor(v, requires_grad=k in ("h", "W", "b")) for k, v in x.items()}
    out = f(**args)
    preds = [k for k in ("h", "W", "b") if k in args]
    grads = torch.autograd.grad(out * 1.7, [args[k] for k in preds])  # a scalar upstream gradient other than 1
    value, want = _reference(name, x)
    np.testing.assert_allclose(out.item(), value, rtol=1e-12)
    for k, g in zip(preds, grads):
        np.testing.assert_allclose(g.numpy(), 1.7 * want[k], rtol=1e-10, atol=1e-12, err_msg=f"d{k}")


@needs("torch")
def test_a_gradient_that_is_not_uniform_takes_the_recomputing_backward():
    import torch

    from lossdsl.backends import get_backend

    rt = get_backend("torch").rt
    rng = np.random.default_rng(4)
    h = torch.tensor(rng.normal(size=(N, D)), requires_grad=True)
    W = torch.tensor(rng.normal(size=(V, D)), requires_grad=True)
    b = torch.tensor(rng.normal(size=V), requires_grad=True)
    y = torch.tensor(rng.integers(0, V, size=N))
    g = torch.tensor(rng.normal(size=(N, 3)))  # differs between tokens
    stats = ("lse", "logp", "mean_logp")
    results = []
    for uniform in (True, False):
        out = rt.lm_head(h, W, b, y, stats, None, chunk=7, min_logits=0, uniform=uniform)
        results.append((out, torch.autograd.grad(out, [h, W, b], g)))
    (out1, g1), (out2, g2) = results
    np.testing.assert_allclose(out1.detach().numpy(), out2.detach().numpy(), rtol=1e-12)
    for a, b_ in zip(g1, g2):
        np.testing.assert_allclose(a.numpy(), b_.numpy(), rtol=1e-10, atol=1e-12)


@needs("torch")
def test_a_second_backward_of_a_retained_graph_recomputes_the_same_gradient():
    import torch

    rng = np.random.default_rng(5)
    h = torch.tensor(rng.normal(size=(N, D)), requires_grad=True)
    W = torch.tensor(rng.normal(size=(V, D)), requires_grad=True)
    y = torch.tensor(rng.integers(0, V, size=N))
    with lm_head.options(chunk=7, min_logits=0):
        f = lossdsl.compile(HEAD + UNIFORM["plain"] + "\n", backend="torch")
    out = f(h=h, W=W, y=y)
    first = torch.autograd.grad(out, [h, W], retain_graph=True)  # the gradient prepared in the forward
    second = torch.autograd.grad(out, [h, W])  # recomputed from the chunks
    for a, b in zip(first, second):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
