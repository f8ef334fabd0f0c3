"""The language-model head (lossdsl/lm_head.py): cross-entropy over `h @ transpose(W)` computed
over chunks of the vocabulary, with its own gradient on every backend.

Each variant (bias, label smoothing in its mean and sum forms, z-loss, soft-capping, class and
token weights, an ignore index, per-token output) is compared, value and gradients to h, W and
b, against a dense float64 reference written by hand in PyTorch, on both sides of the size
threshold (the chunked path with a chunk that does not divide V, and the dense statistics), under
`jax.jit` and `tf.function` too. Per-token losses are differentiated with a random, non-uniform
upstream gradient. Higher derivatives agree with the reference's. The chunked path is pinned not
to make any N x V tensor, in the forward or the backward."""

from __future__ import annotations

import textwrap
import warnings

import numpy as np
import pytest
from conftest import needs, spec
from harness import assert_close

import lossdsl
from lossdsl import lm_head

N, D, V = 12, 6, 40
CHUNKED = {"chunk": 7, "min_logits": 0}  # 40 = 5 * 7 + 5: a short last chunk
DENSE = {"chunk": 0, "min_logits": 1 << 40}

HEAD = "pred h: float[N, D]\npred W: float[V, D]\ntarget y: int[N]\n"
SPECS = {
    "plain": HEAD + "loss = mean(-pick(log_softmax(h @ transpose(W), axis=V), y))\n",
    "per_token_ignore_index": HEAD + """
        let logp = log_softmax(h @ transpose(W), axis=V)
        loss = where(y >= 0, -pick(logp, y), 0.0)
    """,
    "bias_smoothing_sum_zloss": HEAD + """
        pred b: float[V]
        param eps: float = 0.1
        let z = b + h @ transpose(W)
        let logp = log_softmax(z, axis=V)
        let smooth = -sum(logp, axis=V) / V
        loss = mean((1 - eps) * -pick(logp, y) + eps * smooth + 0.001 * square(logsumexp(z, axis=V)))
    """,
    "softcap_weights_smoothing_mean": HEAD + """
        pred b: float[V]
        input tw: float[N]
        context cw: float[V]
        let z = 2.0 * tanh((h @ transpose(W) + b) / 2.0)
        let logp = log_softmax(z, axis=V)
        let keep = y != -100
        let ce = 0.9 * where(keep, -pick(logp, y), 0.0) - 0.1 * mean(logp, axis=V) + 1e-4 * square(logsumexp(z, axis=V))
        let w = where(keep, tw * cw[y], 0.0)
        loss = sum(w * ce) / sum(w)
    """,
}
PREDS = {name: ["h", "W"] + (["b"] if "b:" in src else []) for name, src in SPECS.items()}


def _source(name: str) -> str:
    return spec(HEAD + textwrap.dedent(SPECS[name][len(HEAD) :]))


def inputs(name: str, rng) -> tuple[dict, dict]:
    x = {
        "h": rng.normal(size=(N, D)),
        "W": rng.normal(size=(V, D)),
        "y": rng.integers(0, V, size=N),
    }
    x["y"][:3] = [0, V - 1, 35]  # the first class, the last, one in the short last chunk
    context = {}
    if "b" in PREDS[name]:
        x["b"] = rng.normal(size=V)
    if name == "per_token_ignore_index":
        x["y"][4] = -1
    if name == "softcap_weights_smoothing_mean":
        x["y"][4] = -100
        x["tw"] = rng.uniform(0.5, 2.0, size=N)
        context["cw"] = rng.uniform(0.5, 2.0, size=V)
    return x, context


def reference(name: str, x: dict, context: dict):
    """The loss written densely in float64 PyTorch, from the spec's formula."""
    import torch

    h, W, y = x["h"], x["W"], x["y"]
    z = h @ W.T
    if name == "plain":
        return -torch.log_softmax(z, 1).gather(1, y[:, None])[:, 0].mean()
    if name == "per_token_ignore_index":
        logp = torch.log_softmax(z, 1)
        keep = y >= 0
        return torch.where(keep, -logp.gather(1, torch.where(keep, y, 0)[:, None])[:, 0], 0.0)
    z = z + x["b"]
    if name == "bias_smoothing_sum_zloss":
        logp = torch.log_softmax(z, 1)
        ce = 0.9 * -logp.gather(1, y[:, None])[:, 0] + 0.1 * -logp.sum(1) / V
        return (ce + 0.001 * torch.logsumexp(z, 1) ** 2).mean()
    z = 2.0 * torch.tanh(z / 2.0)
    logp = torch.log_softmax(z, 1)
    keep = y != -100
    ys = torch.where(keep, y, 0)
    nll = torch.where(keep, -logp.gather(1, ys[:, None])[:, 0], 0.0)
    ce = 0.9 * nll - 0.1 * logp.mean(1) + 1e-4 * torch.logsumexp(z, 1) ** 2
    w = torch.where(keep, x["tw"] * context["cw"][ys], 0.0)
    return (w * ce).sum() / w.sum()


def reference_vjp(name, x, context, upstream, order2=None):
    """(value, gradients of sum(upstream * loss) to the preds) in float64; with `order2 = (p, q,
    r)` also the gradient to q of sum(r * d(sum(upstream * loss))/dp)."""
    import torch

    t = {k: torch.tensor(v, requires_grad=k in PREDS[name]) for k, v in x.items()}
    ctx = {k: torch.tensor(v) for k, v in context.items()}
    out = reference(name, t, ctx)
    total = (torch.tensor(upstream) * out).sum()
    grads = torch.autograd.grad(total, [t[p] for p in PREDS[name]], create_graph=order2 is not None)
    result = {p: g.detach().numpy() for p, g in zip(PREDS[name], grads)}
    if order2 is None:
        return out.detach().numpy(), result, None
    p, q, r = order2
    second = torch.autograd.grad((grads[PREDS[name].index(p)] * torch.tensor(r)).sum(), t[q])[0]
    return out.detach().numpy(), result, second.numpy()


def compiled(name: str, backend: str, context: dict, sizes: dict, dtype: str = "float32"):
    from lossdsl.runner import to_backend

    with lm_head.options(**sizes):
        return lossdsl.compile(_source(name), backend=backend, context=to_backend(backend, context, dtype))


def run_vjp(backend, f, x, preds, upstream, dtype="float32", traced=False):
    """(value, gradients of sum(upstream * loss)) of a compiled loss on one backend."""
    from lossdsl.runner import to_backend, to_numpy

    args = to_backend(backend, x, dtype)
    u = to_backend(backend, upstream, dtype)
    if np.ndim(upstream):  # a per-token loss, unreduced
        loss = f

        def f(**kw):
            return loss(**kw, reduction="none")

    if backend == "numpy":
        return to_numpy(f(**args)), {}
    if backend == "torch":
        import torch

        args = {k: (v.requires_grad_(True) if k in preds else v) for k, v in args.items()}
        out = f(**args)
        grads = torch.autograd.grad(out, [args[p] for p in preds], u)
        return to_numpy(out), {p: to_numpy(g) for p, g in zip(preds, grads)}
    if backend == "jax":
        import jax

        def go(pv, rest):
            out, pull = jax.vjp(lambda q: f(**q, **rest), pv)
            return out, pull(u.astype(out.dtype))[0]

        if traced:
            go = jax.jit(go)
        out, grads = go({p: args[p] for p in preds}, {k: v for k, v in args.items() if k not in preds})
        return to_numpy(out), {p: to_numpy(grads[p]) for p in preds}
    import tensorflow as tf

    def go_tf(args):
        with tf.GradientTape() as tape:
            tape.watch([args[p] for p in preds])
            out = f(**args)
        return out, tape.gradient(out, [args[p] for p in preds], output_gradients=tf.cast(u, out.dtype))

    if traced:
        go_tf = tf.function(go_tf)
    out, grads = go_tf(args)
    return to_numpy(out), {p: to_numpy(g) for p, g in zip(preds, grads)}


def _upstream(name, rng):
    per_token = name == "per_token_ignore_index"
    return rng.uniform(-2.0, 3.0, size=N) if per_token else np.asarray(rng.uniform(0.5, 2.0))


# ---- recognition ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "tensorflow"])  # printers only: no framework
def test_each_variant_is_one_lm_head_call_with_no_log_softmax_left(name, backend):
    from lossdsl.pipeline import lower
    from lossdsl.printing import printer_for

    checked = lossdsl.check(_source(name))
    be = type("B", (), {"printer": printer_for(backend)})
    root = lower(checked, be).root
    kernels = [n for n in lossdsl.ir.topological(root) if getattr(n, "fn", None) == "kernel"]
    assert [k.attr("kernel") for k in kernels] == ["lm_head"]
    fns = {getattr(n, "fn", None) for n in lossdsl.ir.topological(root)}
    assert not fns & {"log_softmax", "logsumexp", "matmul", "pick"}


def test_the_statistics_are_the_ones_the_loss_reads():
    from lossdsl.pipeline import lower
    from lossdsl.printing import printer_for

    be = type("B", (), {"printer": printer_for("jax")})
    expected = {
        "plain": ("logp",),
        "per_token_ignore_index": ("logp",),
        "bias_smoothing_sum_zloss": ("lse", "logp", "sum_logp"),
        "softcap_weights_smoothing_mean": ("lse", "logp", "mean_logp"),
    }
    for name, stats in expected.items():
        root = lower(lossdsl.check(_source(name)), be).root
        (k,) = [n for n in lossdsl.ir.topological(root) if getattr(n, "fn", None) == "kernel"]
        assert k.attr("stats") == stats, name
        assert k.attr("bias") == ("b" in PREDS[name])
        assert k.attr("softcap") == (2.0 if "softcap" in name else None)


NOT_HEADS = {
    "logits_read_elsewhere": HEAD + "let z = h @ transpose(W)\n"
    "loss = mean(-pick(log_softmax(z, axis=V), y)) + 0.01 * mean(square(z))\n",
    "probabilities_read": HEAD + "let z = h @ transpose(W)\n"
    "loss = mean(-pick(log_softmax(z, axis=V), y)) + mean(pick(softmax(z, axis=V), y))\n",
    "log_probabilities_read_whole": HEAD + "let logp = log_softmax(h @ transpose(W), axis=V)\n"
    "loss = mean(-pick(logp, y)) + 0.01 * mean(square(logp))\n",
    "softcap_with_two_scales": HEAD + "let z = 2.0 * tanh(h @ transpose(W) / 3.0)\n"
    "loss = mean(-pick(log_softmax(z, axis=V), y))\n",
}


@pytest.mark.parametrize("name", sorted(NOT_HEADS))
def test_a_loss_that_reads_the_logits_otherwise_keeps_them_and_its_value(name, rng):
    src = spec(NOT_HEADS[name])
    x, _ = inputs("plain", rng)
    with lm_head.options(min_logits=0):
        f = lossdsl.compile(src, backend="numpy")
    assert "rt.lm_head(" not in f.source
    z = x["h"] @ x["W"].T
    if name == "softcap_with_two_scales":
        z = 2.0 * np.tanh(z / 3.0)
    logp = z - np.logaddexp.reduce(z, axis=1, keepdims=True)
    nll = -np.take_along_axis(logp, x["y"][:, None], 1)[:, 0].mean()
    extra = {
        "logits_read_elsewhere": 0.01 * np.mean(z**2),
        "probabilities_read": np.mean(np.exp(np.take_along_axis(logp, x["y"][:, None], 1))),
        "log_probabilities_read_whole": 0.01 * np.mean(logp**2),
        "softcap_with_two_scales": 0.0,
    }[name]
    assert_close(f(**x), nll + extra, "float64", name)


def test_the_chunking_in_force_at_compile_time_is_in_the_generated_code():
    with lm_head.options(chunk=64, min_logits=0):
        f = lossdsl.compile(_source("plain"), backend="numpy")
    assert "chunk=64, min_logits=0" in f.source
    g = lossdsl.compile(_source("plain"), backend="numpy")
    assert f"chunk=None, min_logits={lm_head.DEFAULT_MIN_LOGITS}" in g.source


def test_the_default_chunk_grows_with_the_hidden_size_and_stays_within_the_vocabulary():
    assert lm_head.chunk_size(2048, 256, 32768) == 256
    assert lm_head.chunk_size(2048, 1000, 32768) == 1024
    assert lm_head.chunk_size(8, 64, 32768) == 32768  # a small batch: big products
    assert lm_head.chunk_size(2048, 256, 100) == 100
    assert lm_head.chunk_size(2048, 256, 32768, fixed=300) == 300
    assert lm_head.plan(10, 4, 10, None, 101) is None
    assert lm_head.plan(10, 4, 11, None, 101) == 11


# ---- parity against the float64 reference --------------------------------------------------


@pytest.mark.parametrize("sizes", [CHUNKED, DENSE], ids=["chunked", "dense"])
@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", [pytest.param(b, marks=needs(b)) for b in ("numpy", "torch", "jax", "tensorflow")])
def test_value_and_gradients_equal_the_dense_float64_reference(backend, name, sizes, rng):
    pytest.importorskip("torch")
    x, context = inputs(name, rng)
    upstream = _upstream(name, rng)
    value, grads, _ = reference_vjp(name, x, context, upstream)
    for dtype in ("float64", "float32"):
        f = compiled(name, backend, context, sizes, dtype)
        out, got = run_vjp(backend, f, x, PREDS[name], upstream, dtype)
        assert_close(out, value, dtype, f"{backend} {name} value")
        for p in got:
            assert_close(got[p], grads[p], dtype, f"{backend} {name} d/d{p}")


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", [pytest.param(b, marks=needs(b)) for b in ("jax", "tensorflow")])
def test_the_chunked_path_agrees_under_jit_and_tf_function(backend, name, rng):
    pytest.importorskip("torch")
    x, context = inputs(name, rng)
    upstream = _upstream(name, rng)
    value, grads, _ = reference_vjp(name, x, context, upstream)
    f = compiled(name, backend, context, CHUNKED)
    out, got = run_vjp(backend, f, x, PREDS[name], upstream, traced=True)
    assert_close(out, value, "float32", f"{backend} {name} value")
    for p in got:
        assert_close(got[p], grads[p], "float32", f"{backend} {name} d/d{p}")


@needs("torch")
def test_per_token_losses_take_each_tokens_upstream_gradient_alone(rng):
    """With a per-token loss, each token's upstream gradient reaches that token alone: the
    gradients of two upstream gradients add up, and one token's reaches only its own row of h."""
    x, _ = inputs("per_token_ignore_index", rng)
    f = compiled("per_token_ignore_index", "torch", {}, CHUNKED, "float64")
    u = rng.uniform(-2.0, 3.0, size=N)
    _, full = run_vjp("torch", f, x, ["h", "W"], u, "float64")
    for i in (0, 5):
        only = np.zeros(N)
        only[i] = u[i]
        _, one = run_vjp("torch", f, x, ["h", "W"], only, "float64")
        _, rest = run_vjp("torch", f, x, ["h", "W"], u - only, "float64")
        assert_close(one["W"] + rest["W"], full["W"], "float64", "dW splits by token")
        assert np.all(one["h"][np.arange(N) != i] == 0.0)
        assert np.any(one["h"][i] != 0.0)


# ---- higher derivatives ---------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [CHUNKED, DENSE], ids=["chunked", "dense"])
@pytest.mark.parametrize("backend", [pytest.param(b, marks=needs(b)) for b in ("torch", "jax", "tensorflow")])
def test_second_derivatives_equal_the_references(backend, sizes, rng):
    pytest.importorskip("torch")
    name = "softcap_weights_smoothing_mean"
    x, context = inputs(name, rng)
    r = rng.normal(size=(N, D))
    _, _, expected = reference_vjp(name, x, context, np.asarray(1.0), order2=("h", "W", r))
    f = compiled(name, backend, context, sizes, "float64")
    from lossdsl.runner import to_backend, to_numpy

    a = to_backend(backend, x, "float64")
    rr = to_backend(backend, r, "float64")
    if backend == "torch":
        import torch

        a["h"].requires_grad_(True)
        a["W"].requires_grad_(True)
        (gh,) = torch.autograd.grad(f(**a), [a["h"]], create_graph=True)
        got = torch.autograd.grad((gh * rr).sum(), a["W"])[0]
    elif backend == "jax":
        import jax

        def grad_h_dot_r(W):
            return (jax.grad(lambda h: f(**{**a, "h": h, "W": W}))(a["h"]) * rr).sum()

        got = jax.grad(grad_h_dot_r)(a["W"])
        # forward over reverse (as jax.hessian does) too
        _, tangent = jax.jvp(grad_h_dot_r, (a["W"],), (jax.numpy.ones_like(a["W"]),))
        assert_close(tangent, np.sum(expected), "float64", "jvp of the gradient")
    else:
        import tensorflow as tf

        with tf.GradientTape() as outer:
            outer.watch(a["W"])
            with tf.GradientTape() as inner:
                inner.watch(a["h"])
                out = f(**a)
            gh = inner.gradient(out, a["h"])
            total = tf.reduce_sum(gh * rr)
        got = outer.gradient(total, a["W"])
    assert_close(to_numpy(got), expected, "float64", f"{backend} second derivative")


# ---- memory: no N x V tensor on the chunked path --------------------------------------------------


@needs("torch")
def test_torch_chunked_path_makes_no_tensor_as_large_as_the_logits(rng):
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Sizes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.largest = max(self.largest, t.numel())
            return out

    name = "softcap_weights_smoothing_mean"
    x, context = inputs(name, rng)
    for sizes, small in ((CHUNKED, True), (DENSE, False)):
        f = compiled(name, "torch", context, sizes)
        from lossdsl.runner import to_backend

        a = to_backend("torch", x, "float32")
        for p in PREDS[name]:
            a[p].requires_grad_(True)
        with Sizes() as seen:
            torch.autograd.grad(f(**a), [a[p] for p in PREDS[name]])
        assert (seen.largest < N * V) == small, (sizes, seen.largest)


@needs("jax")
def test_jax_chunked_gradient_program_holds_no_array_as_large_as_the_logits(rng):
    import jax

    name = "softcap_weights_smoothing_mean"
    x, context = inputs(name, rng)
    from lossdsl.runner import to_backend

    def largest(jaxpr) -> int:
        big = 0
        for eqn in jaxpr.eqns:
            for v in eqn.outvars:
                big = max(big, int(np.prod(getattr(v.aval, "shape", ()))))
            for p in eqn.params.values():
                for sub in p if isinstance(p, (tuple, list)) else (p,):
                    inner = getattr(sub, "jaxpr", None)
                    if inner is not None:
                        big = max(big, largest(getattr(inner, "jaxpr", inner)))
        return big

    for sizes, small in ((CHUNKED, True), (DENSE, False)):
        f = compiled(name, "jax", context, sizes)
        a = to_backend("jax", x, "float32")

        def loss(h, W, b, f=f, a=a):
            return f(**{**a, "h": h, "W": W, "b": b})

        program = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1, 2)))(a["h"], a["W"], a["b"])
        assert (largest(program.jaxpr) < N * V) == small, sizes


@needs("torch")
def test_bfloat16_inputs_accumulate_in_float32(rng):
    import torch

    x, context = inputs("plain", rng)
    upstream = np.asarray(1.0)
    _, grads, _ = reference_vjp("plain", x, context, upstream)
    f = compiled("plain", "torch", context, CHUNKED)
    h = torch.tensor(x["h"], dtype=torch.bfloat16, requires_grad=True)
    W = torch.tensor(x["W"], dtype=torch.bfloat16, requires_grad=True)
    out = f(h=h, W=W, y=torch.tensor(x["y"]))
    _, gW = torch.autograd.grad(out, [h, W])
    assert out.dtype == torch.float32 and gW.dtype == torch.bfloat16
    # the error of bfloat16 inputs alone: the reference on the rounded inputs, in float64
    rounded = {**x, "h": h.detach().double().numpy(), "W": W.detach().double().numpy()}
    value_rounded, _, _ = reference_vjp("plain", rounded, context, upstream)
    assert abs(float(out.detach()) - float(value_rounded)) < 1e-5 * max(1.0, abs(float(value_rounded)))
    assert np.abs(gW.double().numpy() - grads["W"]).max() < 0.02 * np.abs(grads["W"]).max()


# ---- tracing ----------------------------------------------------------------------------------------


@needs("torch")
def test_torch_compile_traces_the_chunked_head_in_one_graph_and_agrees(rng):
    import torch

    x, _ = inputs("plain", rng)
    upstream = np.asarray(1.0)
    value, grads, _ = reference_vjp("plain", x, {}, upstream)
    f = compiled("plain", "torch", {}, CHUNKED)
    from lossdsl.runner import to_backend

    a = to_backend("torch", x, "float32")
    h, W = a["h"].requires_grad_(True), a["W"].requires_grad_(True)

    def loss(h, W):
        return f(h=h, W=W, y=a["y"])

    torch._dynamo.reset()
    assert torch._dynamo.explain(loss)(h, W).graph_break_count == 0
    out = torch.compile(loss, dynamic=False)(h, W)
    got = torch.autograd.grad(out, [h, W])
    assert_close(out.detach().numpy(), value, "float32", "value")
    for p, g in zip(["h", "W"], got):
        assert_close(g.numpy(), grads[p], "float32", f"d/d{p}")


@needs("torch")
def test_per_sample_gradients_under_torch_func_use_the_dense_statistics(rng):
    """torch.func does not enter an autograd.Function with a Python backward: the head steps aside."""
    import torch

    x, _ = inputs("per_token_ignore_index", rng)
    f = compiled("per_token_ignore_index", "torch", {}, CHUNKED, "float64")
    from lossdsl.runner import to_backend

    a = to_backend("torch", x, "float64")

    def one(h_row, y_row):
        return f(h=h_row[None], W=a["W"], y=y_row[None], reduction="none")[0]

    per_sample = torch.func.vmap(torch.func.grad(one))(a["h"], a["y"])
    _, expected, _ = reference_vjp("per_token_ignore_index", x, {}, np.ones(N))
    assert_close(per_sample.numpy(), expected["h"], "float64", "per-sample d/dh")


@needs("torch")
def test_the_chunked_head_agrees_with_torchs_own_linear_cross_entropy(rng):
    """PyTorch's chunked F.linear_cross_entropy covers the plain head with an ignore index (with
    label smoothing it falls back to the dense logits); lossdsl does not call it (its gradient
    cannot be differentiated again), and gives the same value and gradients."""
    import torch
    import torch.nn.functional as F

    src = spec(HEAD + """
        let logp = log_softmax(h @ transpose(W), axis=V)
        let keep = y != -100
        let ce = where(keep, -pick(logp, y), 0.0)
        loss = sum(ce) / sum(float(keep))
    """.replace("\n        ", "\n"))
    x, _ = inputs("plain", rng)
    x["y"][4] = -100
    with lm_head.options(chunk=7, min_logits=0):
        f = lossdsl.compile(src, backend="torch")
    h = torch.tensor(x["h"], requires_grad=True)
    W = torch.tensor(x["W"], requires_grad=True)
    y = torch.tensor(x["y"])
    ours = f(h=h, W=W, y=y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its chunked path, not a fallback to the dense logits
        theirs = F.linear_cross_entropy(h, W, y, ignore_index=-100, options=torch.nn.LinearCrossEntropyOptions())
    assert "rt.lm_head_loss(" in f.source and "linear_cross_entropy" not in f.source
    assert_close(ours.detach().numpy(), theirs.detach().numpy(), "float64", "value")
    for a, b in zip(torch.autograd.grad(ours, [h, W]), torch.autograd.grad(theirs, [h, W])):
        assert_close(a.numpy(), b.numpy(), "float64", "gradient")
