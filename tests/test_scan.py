"""`scan(step, init, [x, ...], axis=T)` (docs/language.md §3): recurrences on every backend, the
value against a loop written here in NumPy float64 and the gradient against central differences
of it; on PyTorch through autograd and with the derived backward asked for (which steps aside:
the framework differentiates the loop), on JAX under `jax.jit`, on TensorFlow eagerly and under
`tf.function`. Then the checks of a step (E411 with its caret, arity, lengths), and CTC written
with `scan` in docs/cookbook.md against the built-in `ctc_loss`, value and gradient."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lossdsl
import lossdsl.codegen
from lossdsl import LossError

from conftest import ROOT, available, refused_at
from harness import assert_close, value_and_grads
from runs import RUN_PARAMS, assert_matches_reference, compiled_for_run, numeric_grad

B, T, D = 3, 5, 2


def _ema(a):
    c = np.zeros(B)
    for t in range(T):
        c = c * a["r"] + a["x"][:, t] * a["w"]
    return c


def _rnn(a):
    h = np.zeros((B, D))
    for t in range(T):
        h = np.tanh(h @ a["W"] + a["x"][:, t, :] + a["y"][t][:, None] * 0.5)
    return h


def _all_carries(a):
    c, out = a["x"][:, 0] * 0.0, []
    for t in range(T):
        c = np.maximum(c, a["x"][:, t]) + a["x"][:, t] ** 2 * 0.1
        out.append(c)
    return np.stack(out)


# name -> (spec, draw(rng) -> args, reference(args) -> float64 value)
CASES = {
    # a carry [B], a sequence along its second axis, a value read from outside the step (`w`) and a param
    "moving-average": (
        "pred x: float[B, T]\ninput w: float[B]\nparam r: float = 0.7\n"
        "def step(c, xt) = c * r + xt * w\n"
        "loss = sum(scan(step, w * 0.0, [x], axis=T) ^ 2)\n",
        lambda g: {"x": g.normal(size=(B, T)), "w": g.normal(size=B)},
        lambda a: np.sum(_ema({**a, "r": 0.7}) ** 2),
    ),
    # a matrix carry, a pred read from outside (W), two sequences scanned along different positions
    "recurrent-net": (
        "pred x: float[B, T, D]\npred W: float[D, D]\ninput y: float[T, B]\n"
        "def step(h, xt, yt) = tanh(h @ W + xt + yt[:, None] * 0.5)\n"
        "loss = sum(scan(step, x[:, 0, :] * 0.0, [x, y], axis=T) * x[:, -1, :])\n",
        lambda g: {"x": g.normal(size=(B, T, D)), "W": g.normal(size=(D, D)) * 0.5, "y": g.normal(size=(T, B))},
        lambda a: np.sum(_rnn(a) * a["x"][:, -1, :]),
    ),
    # every carry, stacked along a new leading axis of the scanned size
    "all-carries": (
        "pred x: float[B, T]\ninput w: float[T, B]\n"
        "def step(c, xt) = maximum(c, xt) + xt ^ 2 * 0.1\n"
        "loss = sum(scan(step, x[:, 0] * 0.0, [x], axis=1, all=true) * w)\n",
        lambda g: {"x": g.normal(size=(B, T)), "w": g.normal(size=(T, B))},
        lambda a: np.sum(_all_carries(a) * a["w"]),
    ),
    # a `where` in the step is guarded as anywhere: the log's untaken lanes give no NaN gradient
    "guarded-where": (
        "pred x: float[B, T]\n"
        "def step(c, xt) = c * 0.9 + where(xt > 0.0, log(xt), 0.0)\n"
        "loss = sum(scan(step, x[:, 0] * 0.0, [x], axis=T))\n",
        lambda g: {"x": g.normal(size=(B, T))},
        lambda a: np.sum(sum(np.where(a["x"][:, t] > 0, np.log(np.where(a["x"][:, t] > 0, a["x"][:, t], 1.0)), 0.0)
                             * 0.9 ** (T - 1 - t) for t in range(T))),
    ),
}



@pytest.mark.parametrize("backend,mode", RUN_PARAMS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_scan_value_and_gradient_match_a_loop_in_float64(name, backend, mode, rng, monkeypatch):
    spec, draw, reference = CASES[name]
    assert_matches_reference(name, spec, draw(rng), reference, backend, mode, monkeypatch)


def test_the_derived_backward_steps_aside_for_scan():
    from lossdsl.autodiff import supported

    assert not supported(lossdsl.check(CASES["moving-average"][0]).loss)


def test_the_step_reads_outside_values_as_operands_of_the_call():
    # `w` and `r` are read inside the step: the checked call carries them as operands, so every
    # pass sees them (and the printers pass them in).
    checked = lossdsl.check(CASES["moving-average"][0])
    (scan,) = [n for n in lossdsl.ir.walk(checked.loss) if getattr(n, "fn", None) == "scan"]
    names = sorted(getattr(a, "name", "") for a in scan.args[2:])
    assert names == ["r", "w"] and scan.args[1].name == "x"


HEAD = "pred x: float[B, T]\ninput y: float[B, S]\n"


@pytest.mark.parametrize("body,call,code,caret", [
    ("def step(c, xt) = sum(c + xt)", "scan(step, x[:, 0], [x], axis=T)", "E411", "sum(c + xt)"),
    ("def step(c, xt) = c[:, None] + xt", "scan(step, x[:, 0], [x], axis=T)", "E411", "c[:, None] + xt"),
    ("def step(c, xt) = xt + 1.0", "scan(step, x[:, 0] > 0.0, [x], axis=T)", "E411", "xt + 1.0"),
    ("def step(c, xt) = c + xt", "scan(step, x[:, 0], [x, y], axis=1)", "E401", "y"),
    ("def step(c) = c", "scan(step, x[:, 0], [x], axis=T)", "E501", "step"),
    ("def step(c, xt) = c + xt", "scan(x, x[:, 0], [x], axis=T)", "E504", "x"),
    ("def step(c, xt) = c + xt", "scan(step, x[:, 0], [x], axis=S)", "E405", "S"),
])
def test_a_step_that_does_not_fit_is_a_loss_error_with_a_caret(body, call, code, caret):
    refused_at(HEAD + body + "\n" + f"loss = mean({call})\n", code, caret)


def test_a_scan_under_sharding_is_refused():
    with pytest.raises(LossError) as info:
        lossdsl.compile(CASES["moving-average"][0], backend="numpy", sharded="B")
    assert info.value.first.code == "E811" and "`scan`" in info.value.first.message


# ---- the domain analysis looks inside the step --------------------------------------------------

STEPS = "pred x: float[B, T]\ndef grow(a, v) = a + exp(v)\ndef halve(a, v) = a * 0.5 + v\n"


def _domain_lines(loss: str) -> list[int]:
    text = STEPS + loss
    return [w.span.line for w in lossdsl.check(text).warnings if w.code == "W701"]


def test_a_log_inside_a_step_is_warned_at_its_place():
    assert _domain_lines("def step(a, v) = a + log(v - 1.0)\nloss = mean(scan(step, x[:, 0] * 0.0, [x], axis=T))\n") == [4]


def test_the_carry_keeps_the_bound_every_step_keeps():
    # a running sum of exp from 1 stays at least 1: its log is safe, its start from -1 is not
    assert _domain_lines("loss = mean(log(scan(grow, x[:, 0] * 0.0 + 1.0, [x], axis=T)))\n") == []
    assert _domain_lines("loss = mean(log(scan(grow, x[:, 0] * 0.0 - 1.0, [x], axis=T)))\n") == [4]
    # a step into which the carry feeds its own sign has none to keep
    assert _domain_lines("loss = mean(sqrt(scan(halve, exp(x[:, 0]), [exp(x)], axis=T)))\n") == []
    assert _domain_lines("loss = mean(sqrt(scan(halve, exp(x[:, 0]), [x], axis=T)))\n") == [4]


def test_a_value_the_step_captures_keeps_its_range():
    spec = "let p = exp(x) + 1.0\ndef step(a, v) = a + log(p[:, 0] * v)\nloss = mean(scan(step, x[:, 0], [p], axis=T))\n"
    assert _domain_lines(spec) == []
    assert _domain_lines(spec.replace("log(p[:, 0]", "log(x[:, 0]")) == [5]


# ---- CTC with `scan` (docs/cookbook.md) against the built-in ctc_loss ------------------------------


def _cookbook_spec(title: str) -> str:
    text = (ROOT / "docs" / "cookbook.md").read_text()
    section = text[text.index(title) :]
    return re.search(r"```loss\n(.*?)```", section, re.S).group(1)


BUILTIN = (
    "pred z: float[B, T, C]\ntarget y: int[B, L]\ninput n: int[B]\ninput m: int[B]\n"
    "loss = ctc_loss(z, y, n, m)\n"
)


@pytest.mark.parametrize("backend,mode", RUN_PARAMS)
def test_ctc_written_with_scan_agrees_with_the_built_in(backend, mode, rng, monkeypatch):
    spec = _cookbook_spec("CTC, written with `scan`")
    args = {
        "z": rng.normal(size=(5, 6, 4)) * 1.5,
        # one label, repeats (a blank between), labels shorter than L, steps shorter than T
        "y": np.array([[1, 2, 1], [3, 3, 0], [2, 0, 0], [1, 2, 3], [2, 2, 2]]),
        "n": np.array([6, 4, 2, 3, 6]),
        "m": np.array([3, 2, 1, 3, 3]),
    }
    preds = ["z"] if backend != "numpy" else []
    theirs, their_grads = value_and_grads(lossdsl.compile(BUILTIN, backend=backend), backend, args, preds)
    ours, our_grads = value_and_grads(compiled_for_run(spec, backend, mode, monkeypatch), backend, args, preds)
    assert_close(ours, theirs, "float64", f"ctc with scan on {backend}/{mode}")
    for p in preds:
        assert_close(our_grads[p], their_grads[p], "float64", f"ctc with scan d/dz on {backend}/{mode}")


def soft_dtw(x, y, gamma=0.1):
    """The recursion of Cuturi and Blondel (2017), one sample at a time, with infinite borders."""
    out = []
    for xb, yb in zip(x, y):
        cost = ((xb[:, None, :] - yb[None, :, :]) ** 2).sum(-1)
        r = np.full((cost.shape[0] + 1, cost.shape[1] + 1), np.inf)
        r[0, 0] = 0.0
        for i in range(1, r.shape[0]):
            for j in range(1, r.shape[1]):
                z = -np.array([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]]) / gamma
                top = z.max()
                r[i, j] = cost[i - 1, j - 1] - gamma * (np.log(np.exp(z - top).sum()) + top)
        out.append(r[-1, -1])
    return np.array(out)


@pytest.mark.parametrize("backend,mode", RUN_PARAMS)
def test_soft_dtw_written_with_two_scans_matches_the_recursion(backend, mode, rng, monkeypatch):
    spec = _cookbook_spec("Soft-DTW, two `scan`s")
    args = {"x": rng.normal(size=(2, 4, 3)), "y": rng.normal(size=(2, 5, 3))}

    def reference(a):
        return float(np.sum(soft_dtw(a["x"], a["y"])))

    f = compiled_for_run(spec, backend, mode, monkeypatch)
    preds = ["x"] if backend != "numpy" else []
    value, grads = value_and_grads(f, backend, args, preds, call_kwargs={"reduction": "sum"})
    assert_close(value, reference(args), "float64", f"soft-DTW on {backend}/{mode}")
    for p in preds:
        assert_close(grads[p], numeric_grad(reference, args, p), "float32", f"soft-DTW d/dx on {backend}/{mode}")


@pytest.mark.parametrize("backend", [
    pytest.param(b, marks=pytest.mark.skipif(not available(b), reason=f"MISSING FRAMEWORK: {b} is not installed"))
    for b in ("torch", "jax", "tensorflow")])
def test_nested_scans_under_each_compiler_give_the_eager_value_and_gradient(backend, rng):
    """torch.compile, jax.jit(jax.value_and_grad) and tf.function(jit_compile=True) of soft-DTW."""
    from harness import compiled_value_and_grad

    f = lossdsl.compile(_cookbook_spec("Soft-DTW, two `scan`s"), backend=backend)
    args = {"x": rng.normal(size=(2, 4, 3)), "y": rng.normal(size=(2, 5, 3))}
    value, grad = compiled_value_and_grad(f, backend, args, "x")
    eager, grads = value_and_grads(f, backend, args, ["x"])
    assert_close(np.asarray(value), eager, "float64", f"compiled soft-DTW on {backend}")
    assert_close(np.asarray(grad), grads["x"], "float64", f"compiled soft-DTW d/dx on {backend}")
