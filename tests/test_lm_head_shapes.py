"""The language-model head in the other shapes people write it (lossdsl/lm_head.py): W given as
[D, V] (`h @ W`, the kernel reads its transpose) and hidden states of rank 3 (`h: float[B, T, D]`
with labels `y: int[B, T]`, the tokens along the leading axes, flattened by the backends). Each
takes the chunked head (the generated code calls it, and nothing N x V is left in the lowered IR)
and agrees with a dense float64 reference in value and gradients to h and W on every backend,
under jax.jit and tf.function too, a per-sample loss with a random upstream gradient included."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import needs

import lossdsl
from lossdsl import lm_head
from lossdsl.ir import topological

B, T, D, V = 3, 9, 5, 40
SIZES = {"chunk": 7, "min_logits": 0}
SPECS = {
    # W: [D, V], the plain mean: the head folds its mean (torch, TensorFlow)
    "w_by_classes": "pred h: float[N, D]\npred W: float[D, V]\ntarget y: int[N]\n"
    "loss = mean(-pick(log_softmax(h @ W, axis=V), y))\n",
    # rank-3 h with a z-loss and an ignore index
    "rank3_zloss_ignore": "pred h: float[B, T, D]\npred W: float[V, D]\ntarget y: int[B, T]\n"
    "let z = h @ transpose(W)\nlet keep = y >= 0\n"
    "loss = mean(where(keep, -pick(log_softmax(z, axis=V), y), 0.0) + 0.01 * square(logsumexp(z, axis=V)))\n",
    # both, per sample: the statistics with the recomputing backward
    "rank3_w_by_classes_per_sample": "pred h: float[B, T, D]\npred W: float[D, V]\ntarget y: int[B, T]\n"
    "loss = mean(-pick(log_softmax(h @ W, axis=V), y), axis=T)\n",
}


def _inputs(name, rng):
    rank3 = name.startswith("rank3")
    lead = (B, T) if rank3 else (B * T,)
    x = {
        "h": rng.normal(size=(*lead, D)),
        "W": rng.normal(size=(D, V) if "w_by_classes" in name else (V, D)),
        "y": rng.integers(0, V, size=lead),
    }
    if name == "rank3_zloss_ignore":
        x["y"][0, 2] = x["y"][2, 8] = -1
    return x


def _reference(name, x, upstream):
    import torch

    h = torch.tensor(x["h"], requires_grad=True)
    W = torch.tensor(x["W"], requires_grad=True)
    y = torch.tensor(x["y"])
    z = h @ (W if "w_by_classes" in name else W.T)
    logp = torch.log_softmax(z, -1)
    keep = y >= 0
    nll = -logp.gather(-1, torch.where(keep, y, 0)[..., None])[..., 0]
    if name == "w_by_classes":
        out = nll.mean()
    elif name == "rank3_zloss_ignore":
        out = (torch.where(keep, nll, 0.0) + 0.01 * torch.logsumexp(z, -1) ** 2).mean()
    else:
        out = nll.mean(-1)
    gh, gW = torch.autograd.grad(out, [h, W], torch.tensor(upstream))
    return out.detach().numpy(), gh.numpy(), gW.numpy()


def _compiled(name, backend, dtype):
    with lm_head.options(**SIZES):
        return lossdsl.compile(SPECS[name], backend=backend)


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax", "numpy"])  # printers only
@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_head_is_recognised_with_w_by_classes_and_hidden_states_of_rank_3(name, backend):
    from lossdsl.pipeline import lower
    from lossdsl.printing import printer_for

    be = type("B", (), {"printer": printer_for(backend)})
    root = lower(lossdsl.check(SPECS[name]), be).root
    kernels = [n for n in topological(root) if getattr(n, "fn", None) == "kernel"]
    assert [k.attr("kernel") for k in kernels] == ["lm_head"]
    assert not {getattr(n, "fn", None) for n in topological(root)} & {"log_softmax", "logsumexp", "matmul", "pick"}


RUNS = [
    pytest.param("torch", False, marks=needs("torch"), id="torch"),
    pytest.param("tensorflow", False, marks=needs("tensorflow"), id="tensorflow-eager"),
    pytest.param("tensorflow", True, marks=needs("tensorflow"), id="tensorflow-function"),
    pytest.param("jax", True, marks=needs("jax"), id="jax-jit"),
    pytest.param("numpy", False, marks=needs("numpy"), id="numpy"),
]


@pytest.mark.parametrize("backend, traced", RUNS)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_value_and_gradients_equal_the_dense_float64_reference(name, backend, traced, rng):
    pytest.importorskip("torch")
    from lossdsl.runner import to_backend, to_numpy

    x = _inputs(name, rng)
    per_sample = name.endswith("per_sample")
    upstream = rng.uniform(-2.0, 3.0, size=B) if per_sample else np.asarray(1.3)
    value, gh, gW = _reference(name, x, upstream)
    f = _compiled(name, backend, "float64")
    assert "rt.lm_head" in f.source
    a = to_backend(backend, x, "float64")
    u = to_backend(backend, upstream, "float64")
    kw = {"reduction": "none"} if per_sample else {}
    if backend == "numpy":
        out, grads = f(**a, **kw), None
    elif backend == "torch":
        import torch

        a["h"].requires_grad_(True)
        a["W"].requires_grad_(True)
        out = f(**a, **kw)
        grads = torch.autograd.grad(out, [a["h"], a["W"]], u)
    elif backend == "jax":
        import jax

        def go(h, W):
            out, pull = jax.vjp(lambda h, W: f(**{**a, "h": h, "W": W}, **kw), h, W)
            return out, pull(u)

        out, grads = jax.jit(go)(a["h"], a["W"])
    else:
        import tensorflow as tf

        def go_tf(a):
            with tf.GradientTape() as tape:
                tape.watch([a["h"], a["W"]])
                out = f(**a, **kw)
            return out, tape.gradient(out, [a["h"], a["W"]], output_gradients=u)

        out, grads = (tf.function(go_tf) if traced else go_tf)(a)
    np.testing.assert_allclose(to_numpy(out), value, rtol=1e-10, err_msg=f"{backend} {name} value")
    if grads is not None:
        np.testing.assert_allclose(to_numpy(grads[0]), gh, rtol=1e-9, atol=1e-12, err_msg=f"{backend} {name} d/dh")
        np.testing.assert_allclose(to_numpy(grads[1]), gW, rtol=1e-9, atol=1e-12, err_msg=f"{backend} {name} d/dW")
