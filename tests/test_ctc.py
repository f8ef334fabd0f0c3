"""`ctc_loss` (docs/language.md §3) on every backend: the value against a float64 reference that
sums the probability of every path through the steps (no recursion to share a mistake with the
backends'), the gradient against central differences of it; on PyTorch through autograd and
with the derived backward asked for (which steps aside: the framework differentiates
`ctc_loss`), on JAX under `jax.jit`, on TensorFlow eagerly and under `tf.function`. The cases
hold a one-label sample, repeated labels (a blank between them), lengths shorter than the
padded sizes, no labels at all, and samples no alignment fits."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
from conftest import refused_at
from harness import assert_close, to_backend, to_numpy, value_and_grads
from runs import BACKEND_PARAMS, RUN_PARAMS, compiled_for_run

import lossdsl
import lossdsl.codegen
from lossdsl import LossError

SPEC = """pred z: float[B, T, C]
input y: int[B, L]
input n: int[B]
input m: int[B]
input w: float[B]
let l = ctc_loss(z, y, n, m{blank})
loss = sum(where(isfinite(l), l, 0.0) * w)
"""
B, T, C, L = 6, 5, 4, 3
LABELS = np.array([[1, 2, 1], [3, 3, 0], [2, 0, 0], [1, 2, 3], [2, 2, 2], [0, 0, 0]])
# [1, 2, 1] needs 3 steps, [3, 3] 3 (a blank between), [2, 2, 2] 5; [1, 2, 3] in 2 steps fits no alignment
STEPS = np.array([5, 4, 2, 2, 5, 3])
LENGTHS = np.array([3, 2, 1, 3, 3, 0])


def _paths(steps: int):
    return np.array(list(itertools.product(range(C), repeat=steps)), dtype=int).reshape(-1, steps)


@functools.cache
def _collapsed(steps: int, blank: int) -> tuple[tuple[int, ...], ...]:
    out = []
    for path in _paths(steps):
        merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
        out.append(tuple(int(k) for k in merged if k != blank))
    return tuple(out)


def brute_force_ctc(z, labels, steps, lengths, blank=0):
    """-log of the summed probability of every path of `steps[b]` classes that collapses (repeats
    merged, blanks dropped) to the sample's labels; inf where none does."""
    out = []
    for b in range(z.shape[0]):
        lp = z[b] - np.log(np.sum(np.exp(z[b]), axis=-1, keepdims=True))
        n, want = int(steps[b]), tuple(int(k) for k in labels[b, : lengths[b]])
        paths = _paths(n)
        hits = np.array([c == want for c in _collapsed(n, blank)])
        if not hits.any():
            out.append(np.inf)
            continue
        scores = lp[np.arange(n)[None, :], paths[hits]].sum(axis=1)
        out.append(-np.log(np.sum(np.exp(scores))))
    return np.array(out)


def _args(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"z": rng.normal(size=(B, T, C)) * 1.5, "y": LABELS, "n": STEPS, "m": LENGTHS, "w": rng.normal(size=B)}


def _per_sample(a: dict, blank: int) -> np.ndarray:
    return brute_force_ctc(a["z"], a["y"], a["n"], a["m"], blank)


def _reference(a: dict, blank: int) -> float:
    """The spec's loss: a sample no alignment fits counts 0 (and so gets gradient 0)."""
    per = _per_sample(a, blank)
    return float(np.sum(np.where(np.isfinite(per), per, 0.0) * a["w"]))


def _case(blank: int) -> dict:
    a = _args()
    if blank:  # the same label sequences with class 3 as the blank: 3 becomes 0
        a["y"] = np.where(LABELS == 3, 0, LABELS)
    return a


@functools.cache
def _want(blank: int) -> tuple[float, np.ndarray]:
    a, h = _case(blank), 1e-6
    grad = np.zeros_like(a["z"])
    for i in np.ndindex(grad.shape):
        up, down = a["z"].copy(), a["z"].copy()
        up[i] += h
        down[i] -= h
        grad[i] = (_reference({**a, "z": up}, blank) - _reference({**a, "z": down}, blank)) / (2 * h)
    return _reference(a, blank), grad




def _spec(blank: int) -> str:
    return SPEC.format(blank=f", blank={blank}" if blank else "")


def test_the_reference_counts_the_paths_of_a_known_case():
    # One step, one label: the only path is the label itself.
    z = np.log(np.array([[[0.2, 0.5, 0.3, 0.0001]]]))
    assert np.allclose(brute_force_ctc(z, np.array([[1]]), np.array([1]), np.array([1])), [-np.log(0.5 / 1.0001)])
    # Two steps, label [1] (blank 0): the paths 1-1, 0-1 and 1-0.
    p = np.array([[[0.2, 0.5, 0.3, 0.0], [0.6, 0.1, 0.3, 0.0]]]) + 1e-300
    want = 0.5 * 0.1 + 0.2 * 0.1 + 0.5 * 0.6
    assert np.allclose(brute_force_ctc(np.log(p), np.array([[1]]), np.array([2]), np.array([1])), [-np.log(want)])


@pytest.mark.parametrize("backend,mode", RUN_PARAMS)
@pytest.mark.parametrize("blank", [0, 3])
def test_ctc_loss_value_and_gradient_match_the_sum_over_paths(backend, mode, blank, monkeypatch):
    args = _case(blank)
    want_value, want_grad = _want(blank)
    f = compiled_for_run(_spec(blank), backend, mode, monkeypatch)
    preds = ["z"] if backend != "numpy" else []
    value, grads = value_and_grads(f, backend, args, preds)
    assert_close(value, want_value, "float64", f"ctc value on {backend}/{mode}")
    if preds:
        assert_close(grads["z"], want_grad, "float32", f"ctc d/dz on {backend}/{mode}")  # finite differences


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_a_sample_no_alignment_fits_gives_inf_and_the_others_their_loss(backend):
    a = _args()
    f = lossdsl.compile("pred z: float[B, T, C]\ninput y: int[B, L]\ninput n: int[B]\ninput m: int[B]\n"
                        "loss = ctc_loss(z, y, n, m)\n", backend=backend)
    per = to_numpy(f(**{k: to_backend(backend, a[k], "float64") for k in "zynm"}, reduction="none"))
    want = _per_sample(a, 0)
    assert np.isinf(want[3]) and np.isinf(per[3]) and per[3] > 0
    assert_close(per, want, "float64", f"per-sample ctc on {backend}")


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_logits_and_log_probabilities_give_the_same_loss(backend):
    a = _args()
    shifted = {**a, "z": a["z"] * 0.5 + 3.0}
    text = ("pred z: float[B, T, C]\ninput y: int[B, L]\ninput n: int[B]\ninput m: int[B]\ninput w: float[B]\n"
            "let l = ctc_loss(log_softmax(z, axis=C), y, n, m) - ctc_loss(z, y, n, m)\n"
            "loss = sum(where(isfinite(l), l, 0.0) * w)\n")
    f = lossdsl.compile(text, backend=backend)
    value = to_numpy(f(**{k: to_backend(backend, v, "float64") for k, v in shifted.items()}))
    assert abs(float(value)) < 1e-9


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_ctc_loss_in_float32_matches_the_float64_reference(backend):
    a = _args()
    f = lossdsl.compile(_spec(0), backend=backend)
    preds = ["z"] if backend != "numpy" else []
    value, grads = value_and_grads(f, backend, a, preds, dtype="float32")
    want_value, want_grad = _want(0)
    assert_close(value, want_value, "float32", f"float32 ctc value on {backend}")
    if preds:
        assert_close(grads["z"], want_grad, "float32", f"float32 ctc d/dz on {backend}")


def test_the_derived_backward_steps_aside_for_ctc_loss():
    from lossdsl.autodiff import supported

    checked = lossdsl.check(_spec(0))
    assert not supported(checked.loss)
    assert supported(lossdsl.check("pred z: float[B, C]\nloss = sum(z ^ 2)\n").loss)


HEAD = "pred z: float[B, T, C]\ninput y: int[B, L]\ninput n: int[B]\ninput m: int[B]\ninput f: float[B]\ninput k: int[N]\n"


@pytest.mark.parametrize("call,code,caret,words", [
    ("ctc_loss(z, y, f, m)", "E304", "f", "input lengths must be int"),
    ("ctc_loss(z, y, n, f)", "E304", "f", "label lengths must be int"),
    ("ctc_loss(z, float(y), n, m)", "E304", "float(y)", "labels must be int"),
    ("ctc_loss(z[:, 0], y, n, m)", "E404", "z[:, 0]", "rank 3"),
    ("ctc_loss(z, y[:, 0], n, m)", "E404", "y[:, 0]", "rank 2"),
    ("ctc_loss(z, y, y, m)", "E404", "y", "rank 1"),
    ("ctc_loss(z, y, n, k)", "E401", "k", "batch axis"),
    ("ctc_loss(z, y, n, m, blank=-1)", "E405", "-1", "`blank` must be a class"),
])
def test_misuse_of_ctc_loss_is_a_loss_error_at_the_operand(call, code, caret, words):
    err = refused_at(HEAD + f"loss = {call}\n", code, caret)
    assert words in str(err), str(err)


def test_a_blank_past_a_literal_class_count_is_a_loss_error():
    with pytest.raises(LossError) as info:
        lossdsl.check("pred z: float[B, T, 4]\ninput y: int[B, L]\ninput n: int[B]\ninput m: int[B]\n"
                      "loss = ctc_loss(z, y, n, m, blank=4)\n")
    assert info.value.first.code == "E405" and "4 classes" in str(info.value)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("name,value,bound", [("y", 4, "`C`"), ("n", 6, "`T + 1`"), ("m", 4, "`L + 1`"), ("n", -1, "`T + 1`")])
def test_labels_and_lengths_outside_their_axes_are_a_loss_error_at_the_call(backend, name, value, bound):
    a = {k: v.copy() for k, v in _args().items()}
    a[name][0] = value
    f = lossdsl.compile(_spec(0), backend=backend)
    with pytest.raises(LossError) as info:
        f(**{k: to_backend(backend, v, "float64") for k, v in a.items()})
    assert info.value.first.code == "E812" and bound in str(info.value), str(info.value)


def test_a_batch_sharded_ctc_loss_stays_local_and_a_sharded_sequence_is_rejected():
    a = _args()
    plain = lossdsl.compile(_spec(0), backend="numpy")(**a)
    np.testing.assert_allclose(lossdsl.compile(_spec(0), backend="numpy", sharded="B")(**a), plain)
    for dim in ("T", "C", "L"):
        with pytest.raises(LossError) as info:
            lossdsl.compile(_spec(0), backend="numpy", sharded=dim)
        assert info.value.first.code == "E811"
        assert info.value.first.message.startswith(f"`ctc_loss` along the sharded dimension `{dim}`"), dim
