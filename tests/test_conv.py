"""`conv1d`, `conv2d` and `avg_pool2d` (docs/language.md §3): value and gradient on every backend
against a float64 reference written here with explicit loops (and central differences of it),
under jit; their output sizes, the asymmetric zeros of `padding=same` with an even kernel, the
mistakes the checker refuses, and sharding."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import lossdsl
import lossdsl.codegen
from lossdsl.diagnostics import LossError

from conftest import available
from harness import value_and_grads
from runs import BACKEND_PARAMS, RUN_PARAMS, assert_matches_reference


def _same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def ref_conv(x, w, stride=1, same=False, groups=1):
    """Cross-correlation by loops over every output lane and tap."""
    n = x.ndim - 2
    k = w.shape[2:]
    if same:
        x = np.pad(x, [(0, 0), (0, 0)] + [_same_pads(x.shape[2 + i], k[i], stride) for i in range(n)])
    b, c = x.shape[:2]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    out_sizes = [(x.shape[2 + i] - k[i]) // stride + 1 for i in range(n)]
    out = np.zeros([b, o] + out_sizes)
    for bi, oi, *pos in itertools.product(range(b), range(o), *[range(s) for s in out_sizes]):
        g = oi // og
        total = 0.0
        for ci, *tap in itertools.product(range(cg), *[range(kk) for kk in k]):
            at = tuple(p * stride + t for p, t in zip(pos, tap))
            total += x[(bi, g * cg + ci) + at] * w[(oi, ci) + tuple(tap)]
        out[(bi, oi) + tuple(pos)] = total
    return out


def ref_pool(x, kernel, stride):
    h = (x.shape[-2] - kernel) // stride + 1
    w = (x.shape[-1] - kernel) // stride + 1
    out = np.zeros(x.shape[:-2] + (h, w))
    for i, j in itertools.product(range(h), range(w)):
        out[..., i, j] = x[..., i * stride : i * stride + kernel, j * stride : j * stride + kernel].mean(axis=(-2, -1))
    return out


def _n(r, *shape):
    return r.normal(size=shape)


# name -> (spec, draw(rng) -> args, reference(args) -> float64 value); sizes odd, kernels of both parities
CASES = {
    "conv2d valid": ("pred x: float[B, C, H, W]\npred w: float[O, C, 3, 2]\n"
                     "loss = sum(sin(conv2d(x, w)))\n",
                     lambda r: {"x": _n(r, 2, 3, 5, 4), "w": _n(r, 4, 3, 3, 2)},
                     lambda a: np.sum(np.sin(ref_conv(a["x"], a["w"])))),
    "conv2d stride": ("pred x: float[B, C, H, W]\npred w: float[O, C, 3, 3]\n"
                      "loss = sum(conv2d(x, w, stride=2) ^ 2)\n",
                      lambda r: {"x": _n(r, 2, 2, 7, 6), "w": _n(r, 3, 2, 3, 3)},
                      lambda a: np.sum(ref_conv(a["x"], a["w"], 2) ** 2)),
    "conv2d same even kernel": ("pred x: float[B, C, H, W]\npred w: float[O, C, 2, 4]\ninput t: float[B, O, H, W]\n"
                                "loss = sum(conv2d(x, w, padding=same) * t)\n",
                                lambda r: {"x": _n(r, 2, 2, 5, 6), "w": _n(r, 3, 2, 2, 4), "t": _n(r, 2, 3, 5, 6)},
                                lambda a: np.sum(ref_conv(a["x"], a["w"], 1, True) * a["t"])),
    "conv2d same stride": ("pred x: float[B, C, H, W]\npred w: float[O, C, 3, 2]\n"
                           "loss = sum(conv2d(x, w, stride=2, padding=same) ^ 2)\n",
                           lambda r: {"x": _n(r, 2, 2, 7, 5), "w": _n(r, 2, 2, 3, 2)},
                           lambda a: np.sum(ref_conv(a["x"], a["w"], 2, True) ** 2)),
    "conv2d groups": ("pred x: float[B, C, H, W]\npred w: float[6, 2, 3, 3]\n"
                      "loss = sum(tanh(conv2d(x, w, groups=2)))\n",
                      lambda r: {"x": _n(r, 2, 4, 5, 5), "w": _n(r, 6, 2, 3, 3)},
                      lambda a: np.sum(np.tanh(ref_conv(a["x"], a["w"], groups=2)))),
    "conv2d depthwise": ("pred x: float[B, C, H, W]\npred w: float[C, 1, 3, 3]\n"
                         "loss = sum(conv2d(x, w, padding=same, groups=C) ^ 2)\n",
                         lambda r: {"x": _n(r, 2, 3, 4, 5), "w": _n(r, 3, 1, 3, 3)},
                         lambda a: np.sum(ref_conv(a["x"], a["w"], 1, True, 3) ** 2)),
    "conv1d": ("pred x: float[B, C, L]\npred w: float[O, C, 4]\n"
               "loss = sum(conv1d(x, w, stride=2, padding=same) ^ 2) + sum(conv1d(x, w) ^ 2)\n",
               lambda r: {"x": _n(r, 2, 3, 9), "w": _n(r, 2, 3, 4)},
               lambda a: np.sum(ref_conv(a["x"], a["w"], 2, True) ** 2) + np.sum(ref_conv(a["x"], a["w"]) ** 2)),
    "avg_pool2d": ("pred x: float[B, C, H, W]\n"
                   "loss = sum(avg_pool2d(x, 2) ^ 2) + sum(avg_pool2d(x ^ 2, 3, stride=1) * 0.5)\n",
                   lambda r: {"x": _n(r, 2, 3, 7, 5)},
                   lambda a: np.sum(ref_pool(a["x"], 2, 2) ** 2) + np.sum(ref_pool(a["x"] ** 2, 3, 1) * 0.5)),
}




@pytest.mark.parametrize("backend,mode", RUN_PARAMS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_gradient_match_a_float64_reference(name, backend, mode, rng, monkeypatch):
    spec, draw, reference = CASES[name]
    assert_matches_reference(name, spec, draw(rng), reference, backend, mode, monkeypatch)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_same_padding_puts_the_odd_zero_after(backend):
    # A kernel of width 2 reading its second tap: lane i reads x[i + 1], and the last lane the
    # zero after the end (the frameworks' "SAME"; never a zero before, which would read x[i]).
    spec = "pred x: float[B, C, L]\ninput w: float[C, C, 2]\nloss = sum(conv1d(x, w, padding=same) * x)\n"
    x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    f = lossdsl.compile(spec, backend=backend)
    value, _ = value_and_grads(f, backend, {"x": x, "w": np.array([[[0.0, 1.0]]])}, [] if backend == "numpy" else ["x"])
    assert float(value) == pytest.approx(2 * 1 + 3 * 2 + 4 * 3 + 5 * 4 + 0 * 5)
    value, _ = value_and_grads(f, backend, {"x": x, "w": np.array([[[1.0, 0.0]]])}, [] if backend == "numpy" else ["x"])
    assert float(value) == pytest.approx(float(np.sum(x * x)))


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_a_kernel_as_context_or_param_gives_the_kernel_as_pred_value(backend, rng):
    x, w = rng.normal(size=(2, 2, 6, 5)), rng.normal(size=(3, 2, 3, 3))
    want = float(np.mean(ref_conv(x, w, 1, True) ** 2))
    body = "loss = mean(conv2d(x, w, padding=same) ^ 2)\n"
    as_context = lossdsl.compile(f"pred x: float[B, C, H, W]\ncontext w: float[O, C, 3, 3]\n{body}",
                                 backend="numpy", context={"w": w})
    assert float(as_context(x)) == pytest.approx(want, rel=1e-12)
    as_param = lossdsl.compile(f"pred x: float[B, C, H, W]\nparam w: float[O, C, 3, 3]\n{body}", backend=backend,
                               params={"w": w})
    value, _ = value_and_grads(as_param, backend, {"x": x}, ["x"])
    assert float(value) == pytest.approx(want, rel=1e-9)


@pytest.mark.skipif(not available("torch"), reason="MISSING FRAMEWORK: torch is not installed")
def test_under_torch_compile_value_and_gradient_equal_eager(rng):
    import torch

    spec = CASES["conv2d groups"][0].replace("tanh(conv2d(x, w, groups=2))", "tanh(avg_pool2d(conv2d(x, w, groups=2, padding=same, stride=2), 2, stride=1))")
    f = lossdsl.compile(spec, backend="torch")
    x, w = torch.tensor(rng.normal(size=(2, 4, 7, 6))), torch.tensor(rng.normal(size=(6, 2, 3, 3)))

    def step(x, w):
        x, w = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
        v = f(x, w)
        return (v, *torch.autograd.grad(v, [x, w]))

    eager = step(x, w)
    for a, b in zip(eager, torch.compile(step, backend="aot_eager")(x, w)):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not available("tensorflow"), reason="MISSING FRAMEWORK: tensorflow is not installed")
def test_under_xla_value_and_gradient_equal_eager(rng):
    import tensorflow as tf

    spec = "pred x: float[B, C, H, W]\npred w: float[4, 2, 2, 3]\n" \
           "loss = sum(avg_pool2d(conv2d(x, w, groups=2, padding=same, stride=2), 2, stride=1) ^ 2)\n"
    f = lossdsl.compile(spec, backend="tf")
    x, w = tf.constant(rng.normal(size=(2, 4, 7, 6))), tf.constant(rng.normal(size=(4, 2, 2, 3)))

    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            v = f(x, w)
        return (v, *tape.gradient(v, [x, w]))

    eager = step(x, w)
    for a, b in zip(eager, tf.function(step, jit_compile=True)(x, w)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-10, atol=1e-12)


# ---- sizes and mistakes ----------------------------------------------------------------------

def _type_of(expr: str, decls: str = "pred x: float[B, C, H, W]\ncontext w: float[O, C, 3, 2]\n") -> str:
    checked = lossdsl.check(f"{decls}loss = mean({expr})\n")
    return str(checked.loss.args[0].type)


@pytest.mark.parametrize("expr,shape", [
    ("conv2d(x, w)", "[B, O, H - 2, W - 1]"),
    ("conv2d(x, w, padding=same)", "[B, O, H, W]"),
    ("conv2d(x, w, stride=2)", "[B, O, ⌊(H - 3)/2⌋ + 1, ⌊(W - 2)/2⌋ + 1]"),
    ("conv2d(x, w, stride=2, padding=same)", "[B, O, ⌈(H)/2⌉, ⌈(W)/2⌉]"),
    ("avg_pool2d(x, 2)", "[B, C, ⌊(H - 2)/2⌋ + 1, ⌊(W - 2)/2⌋ + 1]"),
    ("avg_pool2d(x, 3, stride=1)", "[B, C, H - 2, W - 2]"),
])
def test_output_sizes_are_sizes_of_the_language(expr, shape):
    assert _type_of(expr) == f"float{shape}"


def test_a_symbolic_kernel_size_gives_the_difference():
    decls = "pred x: float[B, C, H, W]\ncontext w: float[O, C, KH, KW]\n"
    assert _type_of("conv2d(x, w)", decls) == "float[B, O, H - KH + 1, W - KW + 1]"


@pytest.mark.parametrize("body,code,text", [
    ("conv2d(x, v)", "E405", "x has C channels, the kernel reads D per group"),
    ("conv2d(x[:, :, 0], w)", "E404", "laid out [B, C, H, W]"),
    ("conv1d(x, w)", "E404", "laid out [B, C, L]"),
    ("conv2d(x, w, padding=full)", "E504", "must be one of valid, same"),
    ("conv2d(x, w, stride=0)", "E504", "`stride` of `conv2d` must be 1 or more"),
    ("conv2d(x, u, groups=2)", "E405", "do not split into 2 groups"),
    ("conv2d(s, w)", "E406", "smaller than the kernel's 3"),
    ("avg_pool2d(x, 0)", "E504", "`kernel` of `avg_pool2d` must be 1 or more"),
])
def test_mistakes_are_loss_errors(body, code, text):
    decls = ("pred x: float[B, C, H, W]\ncontext w: float[O, C, 3, 2]\ncontext v: float[O, D, 3, 3]\n"
             "context u: float[3, 2, 3, 3]\ninput s: float[B, C, 2, 5]\n")
    with pytest.raises(LossError) as info:
        lossdsl.check(f"{decls}loss = mean({body})\n")
    d = info.value.first
    assert d.code == code and text in d.message + (d.help or ""), (d.code, d.message, d.help)


def test_padding_names_are_words_inside_a_def():
    spec = "pred x: float[B, C, H, W]\ncontext w: float[O, C, 3, 3]\ndef smooth(a) = conv2d(a, w, padding=same)\n" \
           "loss = mean(smooth(x) ^ 2)\n"
    assert lossdsl.check(spec).loss.type.rank == 0


def test_a_valid_convolution_checks_the_size_at_the_call():
    f = lossdsl.compile("pred x: float[B, C, H, W]\ninput w: float[O, C, 3, 3]\nloss = mean(conv2d(x, w))\n",
                        backend="numpy")
    with pytest.raises(LossError) as info:
        f(np.ones((1, 1, 2, 4)), np.ones((1, 1, 3, 3)))
    assert "`H`" in str(info.value)


def test_sharding_along_the_batch_is_local_and_along_a_spatial_axis_refused():
    spec = "pred x: float[B, C, H, W]\ninput w: float[O, C, 3, 3]\nloss = mean(conv2d(x, w) ^ 2) + sum(avg_pool2d(x, 2))\n"
    lossdsl.compile(spec, backend="numpy", sharded="B")
    for dim, what in (("H", "`conv2d`"), ("C", "`conv2d`"), ("O", "`conv2d`")):
        with pytest.raises(LossError) as info:
            lossdsl.compile(spec, backend="numpy", sharded=dim)
        assert info.value.first.code == "E811" and info.value.first.message.startswith(what), dim
    with pytest.raises(LossError) as info:
        lossdsl.compile("pred x: float[B, C, H, W]\nloss = sum(avg_pool2d(x, 2))\n", backend="numpy", sharded="W")
    assert info.value.first.message.startswith("`avg_pool2d` along the sharded dimension `W`")
    lossdsl.compile("pred x: float[B, C, H, W]\nloss = sum(avg_pool2d(x, 2))\n", backend="numpy", sharded="C")
