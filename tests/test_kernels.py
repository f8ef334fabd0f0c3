"""Kernel selection (lossdsl/kernels.py): a subexpression that is exactly a loss a framework
ships fused is printed as that framework's call, recognised by the IR's structure, and gives
the value and gradient of the decomposed form, on random inputs and at every kink (r == 0,
|r| == delta, logits == 0, ties).

Selection is pinned on every backend by what the generated code calls: for each case the
table below says on which backends the fused call must appear; everywhere else it must not,
and with the backend's kernels switched off it never does."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lossdsl
from lossdsl.kernels import GRAPH_KERNELS
from lossdsl.printing import printer_for

from conftest import available
from harness import BACKENDS, assert_close, value_and_grads

# How each backend spells the fused call of each kernel (backends/*_backend.py, `_kernel_<name>`).
# NumPy ships no fused losses.
CALLS: dict[str, dict[str, str]] = {
    "numpy": {},
    "torch": {"mse": "F.mse_loss(", "l1": "F.l1_loss(", "huber": "F.huber_loss(", "smooth_l1": "F.smooth_l1_loss(",
              "bce_logits": "F.binary_cross_entropy_with_logits(", "soft_ce": "F.cross_entropy(",
              "nll": "F.cross_entropy(", "ce": "F.cross_entropy(", "weighted_ce": "F.cross_entropy("},
    "tensorflow": {"mse": "tf.math.squared_difference(", "bce_logits": "tf.nn.sigmoid_cross_entropy_with_logits(",
                   "nll": "tf.nn.sparse_softmax_cross_entropy_with_logits(", "ce": "rt.smoothed_ce(",
                   "soft_ce": "rt.soft_ce(",
                   "weighted_ce": "rt.weighted_ce("},
    # -pick(log_softmax(z), k) as logsumexp(z) - z[k]
    "jax": {"nll": "jax.nn.logsumexp(", "ce": "rt.smoothed_ce(", "weighted_ce": "rt.weighted_ce("},
}
ALL_CALLS = sorted({call for calls in CALLS.values() for call in calls.values()})
# torch's derived backward for the whole loss (lossdsl/autodiff.py)
DERIVED_BACKWARD = "class _Loss(torch.autograd.Function)"


def _log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def _log_softmax(z):
    return z - np.logaddexp.reduce(z, axis=1, keepdims=True)


def _nll(x):
    return -np.take_along_axis(_log_softmax(x["z"]), x["k"][:, None], axis=1)[:, 0]


def _bce(x, pw=1.0):
    z, y = x["z"], x["y"]
    return -(pw * y * _log_sigmoid(z) + (1 - y) * _log_sigmoid(-z))


def _p_t(x):
    p = 1 / (1 + np.exp(-x["z"]))
    return p * x["y"] + (1 - p) * (1 - x["y"])


def _piecewise(x, knot, quad, lin):
    r = np.abs(x["a"] - x["b"])
    return np.where(r <= knot, quad(r), lin(r))


class Case:
    def __init__(self, src: str, kernel: str, fused_on: set[str], reference, torch_call: str | None = None,
                 mean_fused_on: set[str] = frozenset()):
        self.src = src
        self.kernel = kernel
        self.fused_on = fused_on  # the backends whose generated code calls the fused kernel
        self.reference = reference  # NumPy float64, written from the spec's formula
        self.torch_call = torch_call  # a regex the torch call must match (reduction, weights)
        # a per-sample loss: the backends whose `compute_mean` (the API's default mean) calls it
        self.mean_fused_on = mean_fused_on


def _ce(x, ls=0.0, ignore=None):
    """Softmax cross-entropy with label smoothing: the mean over the labels not ignored, 0 for none."""
    logp = _log_softmax(x["z"])
    k = x["k"]
    valid = np.ones(k.shape, bool) if ignore is None else k != ignore
    safe = np.where(valid, k, 0)
    per = -(1 - ls) * np.take_along_axis(logp, safe[:, None], axis=1)[:, 0] - ls * logp.mean(1)
    return np.sum(np.where(valid, per, 0.0)) / max(valid.sum(), 1)


def _weighted_ce(x, ls, ignore):
    """Class-weighted smoothed cross-entropy over the weights of the labels seen (0 for none)."""
    logp, k, w = _log_softmax(x["z"]), x["k"], x["w"]
    valid = k != ignore
    safe = np.where(valid, k, 0)
    wk = np.where(valid, w[safe], 0.0)
    nll = -np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    smooth = np.where(valid, -(w * logp).sum(1), 0.0)
    total = wk.sum()
    return ((1 - ls) * np.sum(wk * nll) + ls / logp.shape[1] * smooth.sum()) / total if total > 0 else 0.0


def _split(source: str) -> tuple[str, str]:
    """The generated module without its `compute_mean`, and `compute_mean` (or "")."""
    if "\ndef compute_mean(" not in source:
        return source, ""
    head, rest = source.split("\ndef compute_mean(", 1)
    body, tail = rest.split("\ndef entry(", 1)
    return head + "\ndef entry(" + tail, "def compute_mean(" + body


ALL_THREE = {"torch", "jax", "tensorflow"}
CASES = {
    "mse": Case("pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean((a - b)^2)\n", "mse",
                {"torch", "tensorflow"}, lambda x: np.mean((x["a"] - x["b"]) ** 2),
                r"F\.mse_loss\([^()]*\)"),  # the default reduction: the mean
    # An elementwise kernel under a partial mean: torch prefers a backward derived for the whole
    # loss (lossdsl/autodiff.py) to F.mse_loss(reduction='none'); TensorFlow keeps the kernel.
    "mse_per_sample": Case("pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean(square(a - b), axis=D)\n", "mse",
                           {"tensorflow"}, lambda x: np.mean((x["a"] - x["b"]) ** 2, axis=1),
                           mean_fused_on={"torch", "tensorflow"}),
    # The knot a param: the fused call takes it as a Python number (`n_delta`), tested > 0 at the call.
    "huber_param_per_sample": Case(
        "pred a: float[B, D]\ntarget b: float[B, D]\nparam delta: float = 0.5\nlet r = abs(a - b)\n"
        "loss = mean(where(r <= delta, 0.5 * r^2, delta * (r - 0.5 * delta)), axis=D)\n", "huber", set(),
        lambda x: np.mean(_piecewise(x, 0.5, lambda r: 0.5 * r ** 2, lambda r: 0.5 * (r - 0.25)), axis=1),
        mean_fused_on={"torch"}),
    "l1": Case("pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean(abs(a - b))\n", "l1",
               {"torch"}, lambda x: np.mean(np.abs(x["a"] - x["b"]))),
    "huber": Case("pred a: float[B, D]\ntarget b: float[B, D]\nlet r = abs(a - b)\n"
                  "loss = mean(where(r <= 0.5, 0.5 * r^2, 0.5 * (r - 0.5 * 0.5)))\n", "huber", {"torch"},
                  lambda x: np.mean(_piecewise(x, 0.5, lambda r: 0.5 * r ** 2, lambda r: 0.5 * (r - 0.25))),
                  r"F\.huber_loss\([^()]*delta=0\.5\)"),
    "huber_written_otherwise": Case(
        "pred a: float[B, D]\ntarget b: float[B, D]\nlet r = abs(b - a)\n"
        "loss = mean(where(r < 2.0, r * r / 2, 2.0 * r - 2.0))\n", "huber", {"torch"},
        lambda x: np.mean(_piecewise(x, 2.0, lambda r: r * r / 2, lambda r: 2.0 * r - 2.0)),
        r"F\.huber_loss\([^()]*delta=2\.0\)"),
    "smooth_l1": Case("pred a: float[B, D]\ntarget b: float[B, D]\nlet r = abs(a - b)\n"
                      "loss = mean(where(r < 0.5, 0.5 * r^2 / 0.5, r - 0.25))\n", "smooth_l1", {"torch"},
                      lambda x: np.mean(_piecewise(x, 0.5, lambda r: r ** 2, lambda r: r - 0.25)),
                      r"F\.smooth_l1_loss\([^()]*beta=0\.5\)"),
    "bce_logits": Case("pred z: float[B, D]\ntarget y: float[B, D]\n"
                       "loss = -mean(y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z)))\n", "bce_logits",
                       {"torch", "tensorflow"}, lambda x: np.mean(_bce(x))),
    "bce_pos_weight_mean": Case("pred z: float[B, D]\ntarget y: float[B, D]\nparam pw: float = 3.0\n"
                                "loss = -mean(pw * y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z))\n", "bce_logits",
                                # TensorFlow's weighted_cross_entropy_with_logits weighs differently at 0:
                                # its fused call only where the param is the number 1 (no weight)
                                {"torch", "tensorflow"}, lambda x: np.mean(_bce(x, 3.0)),
                                r"F\.binary_cross_entropy_with_logits\([^()]*pos_weight="),
    "bce_pos_weight": Case("pred z: float[B, D]\ntarget y: float[B, D]\nparam pw: float = 3.0\n"
                           "loss = -mean(pw * y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z), axis=D)\n",
                           # BCE per element is worth more fused than a derived backward on torch
                           "bce_logits", {"torch", "tensorflow"}, lambda x: np.mean(_bce(x, 3.0), axis=1),
                           # TensorFlow: only where the weight is the number 1 (no weight)
                           mean_fused_on={"torch", "tensorflow"}),
    # A per-sample BCE summed over the features, its minus folded by the normal form into the
    # expression around it (`a + -sum(...)` is `a - sum(...)`): the kernel per element under the
    # framework's sum, the minus put back.
    "bce_summed_minus_folded": Case(
        "pred z: float[B, D]\ntarget y: float[B, D]\npred u: float[B]\n"
        "let recon = -sum(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z), axis=D)\nloss = recon + 0.5 * u^2\n",
        "bce_logits", {"torch", "tensorflow"}, lambda x: np.sum(_bce(x), axis=1) + 0.5 * x["u"] ** 2,
        r"torch\.sum\(F\.binary_cross_entropy_with_logits\(v_z, v_y, reduction='none'\), dim=1"),
    "ce_smoothed_ignored": Case(
        "pred z: float[B, C]\ntarget k: int[B]\nparam ls: float = 0.2\nparam ignore: int = -1\n"
        "let logp = log_softmax(z, axis=C)\nlet valid = k != ignore\n"
        "loss = sum((1 - ls) * where(valid, -pick(logp, k), 0.0) + ls * where(valid, -mean(logp, axis=C), 0.0))"
        " / maximum(sum(float(valid)), 1.0)\n", "ce", ALL_THREE, lambda x: _ce(x, 0.2, -1),
        # torch's own mean, 0 where every label is ignored
        r"torch\.where\(torch\.sum\(v_k != n_ignore\) > 0,"
        r" F\.cross_entropy\(v_z, v_k, ignore_index=n_ignore, label_smoothing=n_ls\), 0\.0\)"),
    "ce_smoothed_literal": Case(
        "pred z: float[B, C]\ntarget k: int[B]\nlet logp = log_softmax(z, axis=C)\n"
        "loss = mean(0.9 * -pick(logp, k) + 0.1 * -mean(logp, axis=C))\n", "ce", ALL_THREE, lambda x: _ce(x, 0.1),
        r"F\.cross_entropy\(v_z, v_k, label_smoothing=0\.1\)"),
    # The class-weighted form of std's weighted_cross_entropy: over the weights of the labels seen,
    # 0 where none is; the guards lowering puts on its division do not keep the fused call out.
    "ce_weighted_smoothed_ignored": Case(
        "pred z: float[B, C]\ntarget k: int[B]\ncontext w: float[C]\nparam ls: float = 0.2\n"
        "param ignore: int = -1\nlet logp = log_softmax(z, axis=C)\nlet valid = k != ignore\n"
        "let wk = where(valid, w[k], 0.0)\nlet nll = where(valid, -pick(logp, k), 0.0)\n"
        "let smooth = where(valid, -sum(w * logp, axis=C), 0.0)\nlet total = sum(wk)\n"
        "loss = where(total > 0, ((1 - ls) * sum(wk * nll) + ls / C * sum(smooth)) / total, 0.0)\n",
        "weighted_ce", ALL_THREE, lambda x: _weighted_ce(x, 0.2, -1),
        r"F\.cross_entropy\(v_z, v_k, weight=c_w, ignore_index=n_ignore, label_smoothing=n_ls, reduction='sum'\)"),
    # The same as shipped (smoothing 0 by default): TensorFlow and JAX then skip the smoothing term
    # (a Python test on the number; tests/test_kernels.py's parity cases run that path).
    "ce_weighted_ignored": Case(
        "pred z: float[B, C]\ntarget k: int[B]\ncontext w: float[C]\nparam ls: float = 0.0\n"
        "param ignore: int = -1\nlet logp = log_softmax(z, axis=C)\nlet valid = k != ignore\n"
        "let wk = where(valid, w[k], 0.0)\nlet nll = where(valid, -pick(logp, k), 0.0)\n"
        "let smooth = where(valid, -sum(w * logp, axis=C), 0.0)\nlet total = sum(wk)\n"
        "loss = where(total > 0, ((1 - ls) * sum(wk * nll) + ls / C * sum(smooth)) / total, 0.0)\n",
        "weighted_ce", ALL_THREE, lambda x: _weighted_ce(x, 0.0, -1),
        r"F\.cross_entropy\(v_z, v_k, weight=c_w, ignore_index=n_ignore, label_smoothing=n_ls, reduction='sum'\)"),
    "soft_ce": Case("pred z: float[B, C]\ntarget y: float[B, C]\nloss = -sum(y * log_softmax(z), axis=C)\n",
                    "soft_ce", {"torch", "tensorflow"}, lambda x: -np.sum(x["y"] * _log_softmax(x["z"]), axis=1),
                    r"F\.cross_entropy\([^()]*reduction='none'\)"),
    # Soft-label cross-entropy whose minus the normal form folded into a sum (poly-1's form).
    "soft_ce_minus_folded": Case(
        "pred z: float[B, C]\ntarget y: float[B, C]\n"
        "loss = 2.0 * sum(y * (1 - softmax(z, axis=C)), axis=C) - sum(y * log_softmax(z, axis=C), axis=C)\n",
        "soft_ce", {"torch", "tensorflow"}, lambda x: 2.0 * np.sum(x["y"] * (1 - np.exp(_log_softmax(x["z"]))), axis=1)
        - np.sum(x["y"] * _log_softmax(x["z"]), axis=1),
        r"\+ F\.cross_entropy\(v_z, v_y, reduction='none'\)"),
    "nll": Case("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z), k))\n", "nll",
                ALL_THREE, lambda x: np.mean(_nll(x)), r"F\.cross_entropy\([^()=]*\)"),
    "nll_per_sample": Case("pred z: float[B, C]\ntarget k: int[B]\nloss = -pick(log_softmax(z), k)\n", "nll",
                           ALL_THREE, _nll, r"F\.cross_entropy\([^()]*reduction='none'\)", mean_fused_on=ALL_THREE),
    "nll_weighted": Case("pred z: float[B, C]\ntarget k: int[B]\ncontext w: float[C]\n"
                         "loss = sum(w[k] * -pick(log_softmax(z), k)) / sum(w[k])\n", "nll", ALL_THREE,
                         lambda x: np.sum(x["w"][x["k"]] * _nll(x)) / np.sum(x["w"][x["k"]]),
                         r"F\.cross_entropy\([^()]*weight="),
    # A per-sample kernel inside a larger expression: its printed form must bind as one operand
    # (JAX's nll is `logsumexp(z) - z[k]`, once printed unparenthesised after `0.5 *`).
    "nll_scaled": Case("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(0.5 * -pick(log_softmax(z), k))\n",
                       "nll", ALL_THREE, lambda x: np.mean(0.5 * _nll(x))),
    "mse_scaled": Case("pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean(0.5 * (a - b)^2, axis=D)\n", "mse",
                       {"tensorflow"}, lambda x: np.mean(0.5 * (x["a"] - x["b"]) ** 2, axis=1)),
    "bce_logits_scaled": Case("pred z: float[B, D]\ntarget y: float[B, D]\n"
                              "loss = mean(0.5 * -(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)), axis=D)\n",
                              "bce_logits", {"torch", "tensorflow"}, lambda x: np.mean(0.5 * _bce(x), axis=1)),
    # Focal's cross-entropy: `1 - y` is shared with p_t, but a node of the targets alone does not
    # keep the fused call out (it costs the fused call nothing; lossdsl/kernels.py). The power's
    # param exponent leaves no derived backward, so torch keeps its elementwise kernel.
    "bce_in_focal_sharing_one_minus_y": Case(
        "pred z: float[B, D]\ntarget y: float[B, D]\nparam gamma: float = 2.0\nlet p = sigmoid(z)\n"
        "let ce = -(y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z))\nlet p_t = p * y + (1 - p) * (1 - y)\n"
        "loss = mean(ce * (1 - p_t)^gamma, axis=D)\n", "bce_logits", {"torch", "tensorflow"},
        lambda x: np.mean(_bce(x) * (1 - _p_t(x)) ** 2, axis=1),
        r"F\.binary_cross_entropy_with_logits\(v_z, v_y, reduction='none'\)"),
}
NOT_KERNELS = {  # spec, the kernel it must not be taken for
    "not_huber": ("pred a: float[N]\ntarget b: float[N]\nlet r = abs(a - b)\n"
                  "loss = mean(where(r <= 1.0, 0.5 * r^2, r))\n", "huber"),  # not continuous at the knot
    "not_smooth_l1": ("pred a: float[N]\ntarget b: float[N]\nlet r = abs(a - b)\n"
                      "loss = mean(where(r < 2.0, r^2, r - 1.0))\n", "smooth_l1"),
    "broadcast_mse": ("pred a: float[B, D]\ntarget b: float[D]\nloss = mean((a - b)^2)\n", "mse"),  # F.mse_loss warns
    "nll_of_softmax_without_log": ("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(softmax(z), k))\n",
                                   "nll"),
    # `d` depends on the pred and is used outside: fusing would compute it and its gradient twice
    "mse_of_a_shared_residual": ("pred a: float[B, D]\ntarget b: float[B, D]\nlet d = a - b\n"
                                 "loss = mean(square(d)) + mean(d)\n", "mse"),
}


def inputs(name, rng):
    b, d = 5, 4
    if name.startswith("soft_ce"):
        z = rng.normal(size=(b, d))
        z[0, :2] = 1.0
        y = rng.uniform(size=(b, d))
        return {"z": z, "y": y / y.sum(1, keepdims=True)}, {}
    if name.startswith(("nll", "ce")):
        z = rng.normal(size=(b, d))
        z[0, :2] = 1.0  # a tie
        k = rng.integers(0, d, b)
        if "ignored" in name:
            k[1:3] = -1  # the ignored label, which is out of range as an index
        return {"z": z, "k": k}, ({"w": rng.uniform(0.5, 2, d)} if "weighted" in name else {})
    if name.startswith("bce"):
        z = rng.normal(size=(b, d))
        z[0, 0] = 0.0  # the kink of the hand-written forms
        out = {"z": z, "y": (rng.random((b, d)) < 0.5).astype(float)}
        return ({**out, "u": rng.normal(size=b)} if "summed" in name else out), {}
    a = rng.normal(size=(b, d))
    bb = rng.normal(size=(b, d))
    bb[0, 0] = a[0, 0]  # r == 0
    knot = {"huber": 0.5, "huber_written_otherwise": 2.0, "smooth_l1": 0.5, "huber_param_per_sample": 0.5}.get(name)
    if knot is not None:
        bb[0, 1] = a[0, 1] - knot  # |r| == knot, both signs
        bb[0, 2] = a[0, 2] + knot
    return {"a": a, "b": bb}, {}


def compile_unfused(src: str, backend: str, monkeypatch, **kwargs):
    """The same spec compiled with the backend's kernels switched off: the decomposed form."""
    with monkeypatch.context() as m:
        m.setattr(printer_for(backend), "KERNELS", {})
        return lossdsl.compile(src, backend=backend, **kwargs)


def _require(backend: str) -> None:
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_the_generated_code_calls_the_fused_kernel_exactly_where_the_backend_ships_it(name, backend, rng,
                                                                                      monkeypatch):
    _require(backend)
    case = CASES[name]
    _, ctx = inputs(name, rng)
    fused, mean = _split(lossdsl.compile(case.src, backend=backend, context=ctx).source)
    plain = compile_unfused(case.src, backend, monkeypatch, context=ctx).source
    call = CALLS[backend].get(case.kernel)
    if backend in case.mean_fused_on:
        assert call is not None and call in mean, f"{backend}'s mean over the samples does not call {call}:\n{mean}"
    elif printer_for(backend).API_MEAN_IN_COMPUTE:  # every per-sample loss's mean, the same calls as its loss
        assert not mean or call is None or (call in mean) == (call in fused), f"{backend}'s mean for {name}:\n{mean}"
    elif mean and printer_for(backend).API_MEAN_WHEN_MERGED:  # a per-sample mean and the API's, as one mean
        last = mean.strip().splitlines()[-1]
        assert ", axis=D)" in case.src and "dim=" not in last, f"not one mean on {backend} for {name}:\n{mean}"
    else:
        assert not mean, f"a compute_mean on {backend} with no fused call for {name}:\n{mean}"
    if backend in case.fused_on:
        assert call is not None, f"{backend} has no spelling for {case.kernel} in this table"
        assert call in fused, f"{backend} does not call {call} for {name}:\n{fused}"
        assert call not in plain, f"{call} with {backend}'s kernels switched off:\n{plain}"
        if backend == "torch" and case.torch_call:
            assert re.search(case.torch_call, fused), f"torch's call for {name} is not {case.torch_call}:\n{fused}"
    else:
        assert not any(c in fused for c in ALL_CALLS), f"{name} fused on {backend}:\n{fused}"
    if backend == "numpy":  # no kernels: selection leaves the code as it is
        assert fused == plain
    if backend == "torch" and backend not in case.fused_on and case.kernel in CALLS["torch"]:
        # torch has the kernel but declines it for the backward derived for the whole loss
        assert DERIVED_BACKWARD in fused, fused


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_fused_kernel_gives_the_value_and_gradient_of_the_decomposed_form(name, backend, rng, monkeypatch):
    _require(backend)
    case = CASES[name]
    args, ctx = inputs(name, rng)
    fused = lossdsl.compile(case.src, backend=backend, context=ctx)
    preds = [d.name for d in fused.spec.preds]
    per_sample = {"reduction": "none"} if fused.spec.loss.type.rank else {}  # compare each sample's loss
    value, grads = value_and_grads(fused, backend, args, preds, "float64", per_sample)
    assert_close(value, case.reference({**args, **ctx}), "float64", f"{name} value against NumPy's formula")
    plain = compile_unfused(case.src, backend, monkeypatch, context=ctx)
    ref_value, ref_grads = value_and_grads(plain, backend, args, preds, "float64", per_sample)
    assert_close(value, ref_value, "float64", f"{name} value")
    if backend != "numpy":
        assert set(grads) == set(preds)
    for p in grads:
        assert_close(grads[p], ref_grads[p], "float64", f"{name} d/d{p}")


@pytest.mark.parametrize("name", ["bce_pos_weight_mean", "bce_pos_weight"])
def test_a_positive_class_weight_is_one_softplus_on_tensorflow(name, rng, monkeypatch):
    """tf.nn.weighted_cross_entropy_with_logits's formula with one exp (backends/tensorflow_backend.py,
    `weighted_bce`; tf.nn's own gradient at 0 misses half of its softplus), not the decomposed
    form's two log-sigmoids, with the decomposed form's value, gradients (to the weight too) and
    second derivatives; the weight as a number of 1 is the plain fused call."""
    _require("tensorflow")
    import tensorflow as tf

    f = lossdsl.compile(CASES[name].src, backend="tensorflow")
    assert "rt.weighted_bce(" in f.source and "log_sigmoid" not in f.source, f.source
    assert "tf.nn.sigmoid_cross_entropy_with_logits(" in f.source, f.source
    plain = compile_unfused(CASES[name].src, "tensorflow", monkeypatch)
    args, _ = inputs(name, rng)  # z = 0 at one element: the kink of tf.nn's form
    z, y, v = tf.constant(args["z"]), tf.constant(args["y"]), tf.constant(rng.normal(size=args["z"].shape))
    pw = tf.Variable(3.0, dtype=tf.float64)

    def derivatives(loss):
        with tf.GradientTape(persistent=True) as outer:
            outer.watch(z)
            with tf.GradientTape(persistent=True) as inner:
                inner.watch(z)
                value = tf.reduce_sum(loss(z, y, pw=pw))
            gz, gw = inner.gradient(value, [z, pw])
            along = tf.reduce_sum(gz * v)
        return [t.numpy() for t in (value, gz, gw, outer.gradient(along, z))]

    for got, want, what in zip(derivatives(f), derivatives(plain), ["value", "d/dz", "d/dpw", "Hessian-vector"]):
        assert_close(got, want, "float64", f"{name}: {what}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.mean_fused_on])
def test_the_fused_mean_over_the_samples_gives_the_value_and_gradient_of_the_decomposed_mean(
    name, backend, rng, monkeypatch
):
    _require(backend)
    case = CASES[name]
    args, ctx = inputs(name, rng)
    fused = lossdsl.compile(case.src, backend=backend, context=ctx)
    preds = [d.name for d in fused.spec.preds]
    value, grads = value_and_grads(fused, backend, args, preds, "float64")
    assert_close(value, np.mean(case.reference({**args, **ctx})), "float64", f"{name} mean against NumPy")
    plain = compile_unfused(case.src, backend, monkeypatch, context=ctx)
    _, ref_grads = value_and_grads(plain, backend, args, preds, "float64")
    for p in preds if backend != "numpy" else ():  # NumPy: values only
        assert_close(grads[p], ref_grads[p], "float64", f"{name} mean d/d{p}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(NOT_KERNELS))
def test_near_misses_are_not_fused(name, backend, monkeypatch):
    from lossdsl.ir import Apply, topological
    from lossdsl.passes import lower

    _require(backend)
    src, kernel = NOT_KERNELS[name]
    everything = {k: {"none", "mean", "weighted_mean"} for k in CALLS["torch"]}
    chosen = {n.attr("kernel") for n in topological(lower(lossdsl.check(src), kernels=everything))
              if isinstance(n, Apply) and n.fn == "kernel"}
    assert kernel not in chosen
    call = CALLS[backend].get(kernel)
    if call is not None:
        assert call not in lossdsl.compile(src, backend=backend).source


def test_every_kernel_a_backend_declares_is_spelled_in_this_table_and_covered_by_a_fused_case():
    for backend in BACKENDS:
        # kernels recognised on the whole graph have tests of their own (tests/test_lm_head.py)
        declared = set(printer_for(backend).KERNELS) - set(GRAPH_KERNELS)
        assert declared == set(CALLS[backend]), f"{backend} declares {declared}; the table has {set(CALLS[backend])}"
        fused_here = {c.kernel for c in CASES.values() if backend in c.fused_on}
        assert declared <= fused_here, f"{backend}: no case shows {declared - fused_here} fused"
