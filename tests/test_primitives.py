"""The elementwise, order, accumulation and construction functions and the `inf` literal
(docs/language.md §3), on every backend: the value against a float64 reference written here in
NumPy, and the gradient against central differences of that reference; on PyTorch both through
its autograd and through the backward derived from the function table, on JAX under `jax.jit`
(its compute always is), on TensorFlow eagerly and under `tf.function`. Inputs are drawn
afresh each run, without ties or points where a function has a kink (§4 has those)."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.codegen

from conftest import available
from harness import value_and_grads
from runs import BACKEND_PARAMS, RUN_PARAMS, assert_matches_reference

B, C = 4, 5


def _logcumsumexp(x, axis):
    return np.logaddexp.accumulate(x, axis=axis)


def _argtopk(x, k, axis):
    return np.take(np.argsort(-x, axis=axis, kind="stable"), np.arange(k), axis=axis)


def _rows(rng):
    return rng.normal(size=(B, C))


def _unit(rng):
    return rng.uniform(-0.9, 0.9, size=(B, C))


# name -> (spec, draw(rng) -> args, reference(args) -> float64 value)
CASES = {
    "cosh": ("pred a: float[B, C]\ninput w: float[B, C]\nloss = sum(cosh(a) * w)\n",
             lambda r: {"a": _rows(r), "w": _rows(r)}, lambda a: np.sum(np.cosh(a["a"]) * a["w"])),
    "sinh": ("pred a: float[B, C]\ninput w: float[B, C]\nloss = sum(sinh(a) * w)\n",
             lambda r: {"a": _rows(r), "w": _rows(r)}, lambda a: np.sum(np.sinh(a["a"]) * a["w"])),
    "atan": ("pred a: float[B, C]\ninput w: float[B, C]\nloss = sum(atan(a * 3.0) * w)\n",
             lambda r: {"a": _rows(r), "w": _rows(r)}, lambda a: np.sum(np.arctan(a["a"] * 3.0) * a["w"])),
    "acos": ("pred a: float[B, C]\ninput w: float[B, C]\nloss = sum(acos(a) * w)\n",
             lambda r: {"a": _unit(r), "w": _rows(r)}, lambda a: np.sum(np.arccos(a["a"]) * a["w"])),
    "asin": ("pred a: float[B, C]\ninput w: float[B, C]\nloss = sum(asin(a) * w)\n",
             lambda r: {"a": _unit(r), "w": _rows(r)}, lambda a: np.sum(np.arcsin(a["a"]) * a["w"])),
    "atan2": ("pred y: float[B, C]\npred x: float[B, C]\ninput w: float[B, C]\nloss = sum(atan2(y, x) * w)\n",
              lambda r: {"y": _rows(r), "x": _rows(r), "w": _rows(r)},
              lambda a: np.sum(np.arctan2(a["y"], a["x"]) * a["w"])),
    "isfinite": ("pred a: float[B, C]\ntarget t: float[B, C]\n"
                 "loss = sum(where(isfinite(t) and not isnan(t), (a - t)^2, 0.0))\n",
                 lambda r: {"a": _rows(r), "t": np.where(r.uniform(size=(B, C)) < 0.3,
                                                         r.choice([np.nan, np.inf, -np.inf], size=(B, C)),
                                                         _rows(r))},
                 lambda a: np.sum(np.where(np.isfinite(a["t"]), (a["a"] - np.where(np.isfinite(a["t"]), a["t"], 0.0)) ** 2, 0.0))),
    "inf": ("pred a: float[B, C]\ninput m: bool[B, C]\nloss = sum(logsumexp(where(m, a, -inf), axis=C))\n",
            lambda r: {"a": _rows(r), "m": np.arange(B * C).reshape(B, C) % 3 != 1},
            lambda a: np.sum(np.log(np.sum(np.where(a["m"], np.exp(a["a"]), 0.0), axis=1)))),
    "sort": ("pred a: float[B, C]\ninput w: float[B, C]\nloss = sum(sort(a, axis=C) * w) + sum(sort(a, axis=0) * w)\n",
             lambda r: {"a": _rows(r), "w": _rows(r)},
             lambda a: np.sum(np.sort(a["a"], axis=1) * a["w"]) + np.sum(np.sort(a["a"], axis=0) * a["w"])),
    "argsort": ("pred a: float[B, C]\ninput u: float[B]\n"
                "loss = sum(pick(a, argsort(a, axis=C)[:, 1]) * u) + sum(float(argsort(a)) * a)\n",
                lambda r: {"a": _rows(r), "u": r.normal(size=B)},
                lambda a: np.sum(np.sort(a["a"], axis=1)[:, 1] * a["u"])
                + np.sum(np.argsort(a["a"], axis=1) * a["a"])),
    "topk": ("pred a: float[B, C]\ninput w: float[3, C]\nloss = sum(topk(a, 3, axis=0) * w)\n",
             lambda r: {"a": _rows(r), "w": r.normal(size=(3, C))},
             lambda a: np.sum(-np.sort(-a["a"], axis=0)[:3] * a["w"])),
    "argtopk": ("pred a: float[B, C]\ninput w: float[B, 2]\n"
                "loss = sum(float(argtopk(a, 2)) * w * a[:, :2]) + sum(pick(a, argtopk(a, 1)[:, 0]))\n",
                lambda r: {"a": _rows(r), "w": r.normal(size=(B, 2))},
                lambda a: np.sum(_argtopk(a["a"], 2, 1) * a["w"] * a["a"][:, :2]) + np.sum(np.max(a["a"], axis=1))),
    "cumprod": ("pred a: float[B, C]\ninput w: float[B, C]\nloss = sum(cumprod(a, axis=C) * w)\n",
                lambda r: {"a": _rows(r), "w": _rows(r)}, lambda a: np.sum(np.cumprod(a["a"], axis=1) * a["w"])),
    "logcumsumexp": ("pred a: float[B, C]\ninput w: float[B, C]\nloss = sum(logcumsumexp(a * 3.0, axis=B) * w)\n",
                     lambda r: {"a": _rows(r), "w": _rows(r)},
                     lambda a: np.sum(_logcumsumexp(a["a"] * 3.0, 0) * a["w"])),
    "diag": ("pred a: float[B, C]\ninput w: float[B, C, C]\nloss = sum(diag(a) * w)\n",
             lambda r: {"a": _rows(r), "w": r.normal(size=(B, C, C))},
             lambda a: np.sum(a["a"][:, :, None] * np.eye(C) * a["w"])),
    "eye": ("pred a: float[B, C]\nloss = sum(eye(C) * (transpose(a) @ a)) + sum(eye(3) * (a[:3, :3] ^ 3))\n",
            lambda r: {"a": _rows(r)},
            lambda a: np.trace(a["a"].T @ a["a"]) + np.trace(a["a"][:3, :3] ** 3)),
    "permute": ("pred a: float[B, C, D]\ninput w: float[D, B, C]\nloss = sum(permute(a, [D, B, C]) * w)"
                " + sum(permute(a ^ 2, [2, 1, 0]) * permute(w, [D, C, B]))\n",
                lambda r: {"a": r.normal(size=(B, C, 2)), "w": r.normal(size=(2, B, C))},
                lambda a: np.sum(np.transpose(a["a"], (2, 0, 1)) * a["w"])
                + np.sum(np.transpose(a["a"] ** 2, (2, 1, 0)) * np.transpose(a["w"], (0, 2, 1)))),
    "pad": ("pred a: float[B, C]\ninput v: float[B, C]\n"
            "loss = sum(pad(a, 1, 2, axis=C) * pad(v, 2, 1, axis=C)) + sum(pad(a ^ 2, 0, 1, axis=B)[1:, :] * v)\n",
            lambda r: {"a": _rows(r), "v": _rows(r)},
            lambda a: np.sum(np.pad(a["a"], ((0, 0), (1, 2))) * np.pad(a["v"], ((0, 0), (2, 1))))
            + np.sum(np.pad(a["a"] ** 2, ((0, 1), (0, 0)))[1:] * a["v"])),
    "concat": ("pred a: float[B, C]\npred b: float[B, 2]\ninput w: float[B, C]\n"
               "loss = mean(concat([a, b], axis=C) ^ 2) + sum(concat([a * w, b, a], axis=-1)[:, 1:] * 0.5)"
               " + sum(concat([a, w], axis=0) * concat([w, a], axis=B))\n",
               lambda r: {"a": _rows(r), "b": r.normal(size=(B, 2)), "w": _rows(r)},
               lambda a: np.mean(np.concatenate([a["a"], a["b"]], 1) ** 2)
               + np.sum(np.concatenate([a["a"] * a["w"], a["b"], a["a"]], 1)[:, 1:] * 0.5)
               + np.sum(np.concatenate([a["a"], a["w"]], 0) * np.concatenate([a["w"], a["a"]], 0))),
    "stack": ("pred a: float[B, C]\ninput w: float[B, C]\ninput v: float[3, B, C]\ninput u: float[B, C, 2]\n"
              "loss = sum(stack([a, a ^ 2, w * a]) * v) + sum(stack([a, w], axis=-1) * u)\n",
              lambda r: {"a": _rows(r), "w": _rows(r), "v": r.normal(size=(3, B, C)), "u": r.normal(size=(B, C, 2))},
              lambda a: np.sum(np.stack([a["a"], a["a"] ** 2, a["w"] * a["a"]]) * a["v"])
              + np.sum(np.stack([a["a"], a["w"]], -1) * a["u"])),
    "flatten": ("pred a: float[B, C, D]\ninput w: float[B, C, D]\n"
                "loss = sum(flatten(a, [C, D]) * flatten(w, [C, D])) + mean(flatten(a ^ 2, [B, C])[1:])\n",
                lambda r: {"a": r.normal(size=(B, C, 3)), "w": r.normal(size=(B, C, 3))},
                lambda a: np.sum(a["a"] * a["w"]) + np.mean((a["a"] ** 2).reshape(B * C, 3)[1:])),
    "unflatten": ("pred a: float[B, C, D]\ninput w: float[B, C, D]\n"
                  "loss = sum(unflatten(flatten(a, [C, D]) ^ 2, [C, D]) * w)"
                  " + sum(unflatten(flatten(a, [B, C]), [B, C], axis=0)[:, 1:] * w[:, 1:])\n",
                  lambda r: {"a": r.normal(size=(B, C, 3)), "w": r.normal(size=(B, C, 3))},
                  lambda a: np.sum(a["a"] ** 2 * a["w"]) + np.sum(a["a"][:, 1:] * a["w"][:, 1:])),
    "arange": ("pred a: float[B, C]\ninput k: int[B]\nloss = sum(where(arange(C)[None, :] == k[:, None], a, 0.0) ^ 2)\n",
               lambda r: {"a": _rows(r), "k": r.integers(0, C, size=B)},
               lambda a: np.sum(np.where(np.arange(C)[None, :] == a["k"][:, None], a["a"], 0.0) ** 2)),
}




@pytest.mark.parametrize("backend,mode", RUN_PARAMS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_gradient_match_a_float64_reference(name, backend, mode, rng, monkeypatch):
    spec, draw, reference = CASES[name]
    assert_matches_reference(name, spec, draw(rng), reference, backend, mode, monkeypatch)


def test_every_new_function_is_in_the_cases():
    from lossdsl.functions import USER_FUNCTIONS

    named = {fn for fn in USER_FUNCTIONS if any(f"{fn}(" in spec for spec, _, _ in CASES.values())}
    new = {"cosh", "sinh", "acos", "asin", "atan", "atan2", "isnan", "isfinite", "sort", "argsort", "topk", "argtopk",
           "cumprod", "logcumsumexp", "arange", "eye", "diag", "permute", "pad", "concat", "stack", "flatten", "unflatten"}
    assert new <= named, new - named


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_topk_of_more_elements_than_the_axis_has_is_a_loss_error_at_the_call(backend):
    f = lossdsl.compile("pred a: float[B, C]\nloss = sum(topk(a, 3, axis=C))\n", backend=backend)
    with pytest.raises(lossdsl.LossError) as info:
        value_and_grads(f, backend, {"a": np.ones((4, 2))}, [])
    assert info.value.first.code == "E805" and "`C`" in str(info.value)


COMBINED = ("pred a: float[B, C]\npred b: float[B, D]\ninput w: float[B, C]\n"
            "loss = sum(sort(a, axis=C) * w) + sum(topk(a, 2, axis=C)) + sum(cumprod(tanh(a), axis=C) * w)"
            " + sum(logcumsumexp(a, axis=B)) + sum(atan2(a, w)) + sum(cosh(tanh(a)) + sinh(a) + atan(a))"
            " + sum(acos(tanh(a) * 0.5) + asin(tanh(a) * 0.5)) + sum(where(isfinite(w), a, -inf)[:, 0])"
            " + mean(concat([a, b], axis=C) ^ 2) + sum(stack([a, w], axis=0)[0] * float(argsort(a, axis=C)))"
            " + sum(pad(a, 1, 1, axis=C)[:, 1:-1] * w) + sum(permute(a, [C, B]) * transpose(w))"
            " + sum(unflatten(flatten(a, [B, C]), [B, C], axis=0) * w) + sum(diag(b) * eye(D))"
            " + sum(float(arange(C)) * a) + sum(float(argtopk(a, 1, axis=C)) * b[:, :1])\n")


def _combined_args(rng):
    return {"a": rng.normal(size=(B, C)), "b": rng.normal(size=(B, 3)), "w": rng.normal(size=(B, C))}


@pytest.mark.skipif(not available("torch"), reason="MISSING FRAMEWORK: torch is not installed")
def test_every_new_function_under_torch_compile_gives_the_eager_value_and_gradient(rng):
    import torch

    f = lossdsl.compile(COMBINED, backend="torch")
    args = {k: torch.tensor(v) for k, v in _combined_args(rng).items()}

    def step(a, b, w):
        a, b = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
        v = f(a, b, w)
        return (v, *torch.autograd.grad(v, [a, b]))

    eager = step(**args)
    compiled = torch.compile(step, backend="aot_eager")(**args)
    for x, y in zip(eager, compiled):
        np.testing.assert_allclose(y.detach().numpy(), x.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not available("tensorflow"), reason="MISSING FRAMEWORK: tensorflow is not installed")
def test_every_new_function_under_xla_gives_the_eager_value_and_gradient(rng):
    import tensorflow as tf

    f = lossdsl.compile(COMBINED, backend="tf")
    host = _combined_args(rng)
    args = {k: tf.constant(v) for k, v in host.items()}

    def step(a, b, w):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            v = f(a, b, w)
        return (v, *tape.gradient(v, [a, b]))

    eager = step(**args)
    compiled = tf.function(step, jit_compile=True)(**args)
    for x, y in zip(eager, compiled):
        np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lossdsl.compile(COMBINED, backend="numpy")(**host), eager[0].numpy(), rtol=1e-12)
