"""docs/language.md §4, row by row, on every backend: the value and the gradient at the points
where the frameworks disagree among themselves, and the stable forms of §4's last
paragraph for |z| up to 1e4 in float32."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.codegen

from conftest import available
from harness import BACKENDS, GRAD_BACKENDS, value_and_grads

ALL = [pytest.param(b, marks=pytest.mark.skipif(not available(b), reason=f"MISSING FRAMEWORK: {b} is not installed"))
       for b in BACKENDS]
GRAD = [pytest.param(b, marks=pytest.mark.skipif(not available(b), reason=f"MISSING FRAMEWORK: {b} is not installed"))
        for b in GRAD_BACKENDS]


def run(src: str, backend: str, dtype: str = "float64", **args):
    f = lossdsl.compile(src, backend=backend)
    preds = [d.name for d in f.spec.preds]
    return value_and_grads(f, backend, args, preds, dtype)


def vec(*xs):
    return np.array(xs, dtype=np.float64)


@pytest.mark.parametrize("backend", GRAD)
def test_abs_at_zero_has_gradient_zero(backend):
    v, g = run("pred x: float[N]\nloss = sum(abs(x))\n", backend, x=vec(0.0, -2.0, 3.0))
    assert v == 5.0
    np.testing.assert_array_equal(g["x"], [0.0, -1.0, 1.0])


@pytest.mark.parametrize("backend", GRAD)
def test_clip_at_its_bounds_passes_gradient_one(backend):
    v, g = run("pred x: float[N]\nloss = sum(clip(x, -1.0, 2.0) * vec)\ninput vec: float[N]\n", backend,
               x=vec(-1.0, 2.0, 0.5, -3.0, 5.0), vec=vec(1, 2, 3, 4, 5))
    assert v == -1.0 + 4.0 + 1.5 - 4.0 + 10.0
    np.testing.assert_array_equal(g["x"], [1.0, 2.0, 3.0, 0.0, 0.0])


@pytest.mark.parametrize("backend", GRAD)
def test_clip_with_tensor_bounds_gives_them_the_gradient_outside(backend):
    src = "pred x: float[N]\npred lo: float[N]\nloss = sum(clip(x, lo, 1.0))\n"
    v, g = run(src, backend, x=vec(-2.0, 0.0, 0.5), lo=vec(-1.0, 0.0, 0.0))
    assert v == -1.0 + 0.0 + 0.5
    np.testing.assert_array_equal(g["x"], [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(g["lo"], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("backend", ALL)
def test_clip_with_lo_above_hi_gives_hi(backend):
    v, _ = run("pred x: float[N]\nloss = sum(clip(x, 2.0, 1.0))\n", backend, x=vec(0.0, 1.5, 3.0))
    assert v == 3.0


@pytest.mark.parametrize("fn", ["maximum", "minimum"])
@pytest.mark.parametrize("backend", GRAD)
def test_maximum_and_minimum_split_ties_evenly(backend, fn):
    src = f"pred a: float[N]\npred b: float[N]\nloss = sum({fn}(a, b))\n"
    v, g = run(src, backend, a=vec(1.0, 2.0, 3.0), b=vec(1.0, 1.0, 4.0))
    assert v == (1.0 + 2.0 + 4.0 if fn == "maximum" else 1.0 + 1.0 + 3.0)
    big = [0.5, 1.0, 0.0] if fn == "maximum" else [0.5, 0.0, 1.0]
    np.testing.assert_array_equal(g["a"], big)
    np.testing.assert_array_equal(g["b"], [0.5, 1.0 - big[1], 1.0 - big[2]])


@pytest.mark.parametrize("backend", GRAD)
def test_maximum_with_a_literal_splits_the_tie_too(backend):
    v, g = run("pred a: float[N]\nloss = sum(maximum(a, 0.0))\n", backend, a=vec(0.0, 1.0, -1.0))
    assert v == 1.0
    np.testing.assert_array_equal(g["a"], [0.5, 1.0, 0.0])


@pytest.mark.parametrize("fn", ["maximum", "minimum"])
@pytest.mark.parametrize("backend", GRAD)
def test_a_scalar_broadcast_against_a_vector_gets_the_sum_of_its_shares(backend, fn):
    src = f"pred a: float[N]\npred c: float\nloss = sum({fn}(a, c))\n"
    v, g = run(src, backend, a=vec(1.0, 2.0, 3.0), c=np.array(2.0))
    assert v == (2.0 + 2.0 + 3.0 if fn == "maximum" else 1.0 + 2.0 + 2.0)
    np.testing.assert_array_equal(g["a"], [0.0, 0.5, 1.0] if fn == "maximum" else [1.0, 0.5, 0.0])
    assert float(g["c"]) == 1.5


@pytest.mark.parametrize("backend", GRAD)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("derived", [False, True], ids=["framework-grad", "derived-backward"])
def test_logaddexp_is_stable_far_out_and_splits_ties_evenly(backend, dtype, derived, monkeypatch):
    if derived:  # torch's backward derived from the table's rule, from the first element on
        monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 1)
    a, b = vec(0.0, 1e4, -1e4, 3.0, -np.inf), vec(0.0, 1e4 - 2.0, -1e4, 1.0, 2.0)
    v, g = run("pred a: float[N]\npred b: float[N]\nloss = sum(logaddexp(a, b) * w)\ninput w: float[N]\n",
               backend, dtype, a=a, b=b, w=vec(1, 2, 3, 4, 5))
    share = 1.0 / (1.0 + np.exp(-2.0))  # e^a / (e^a + e^b) at a - b = 2
    want = np.logaddexp(a, b)
    np.testing.assert_allclose(v, (want * vec(1, 2, 3, 4, 5)).sum(), rtol=1e-6)
    # at |a| = 1e4 a float32 ulp is 1e-3: a share computed as e^(a - result) is good to about 4e-4
    rtol = 1e-3 if dtype == "float32" else 1e-9
    np.testing.assert_allclose(g["a"], [0.5, 2 * share, 1.5, 4 * share, 0.0], rtol=rtol)
    np.testing.assert_allclose(g["b"], [0.5, 2 * (1 - share), 1.5, 4 * (1 - share), 5.0], rtol=rtol)


@pytest.mark.parametrize("backend", GRAD)
@pytest.mark.parametrize("derived", [False, True], ids=["framework-grad", "derived-backward"])
def test_logaddexp_of_two_minus_infinities_is_minus_infinity_with_gradient_0(backend, derived, monkeypatch):
    if derived:
        monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 1)
    c = vec(-np.inf, 0.5, -np.inf)
    v, g = run("pred a: float[N]\ninput c: float[N]\nloss = sum(exp(logaddexp(a + c, c)))\n", backend,
               a=vec(0.3, -1.0, 2.0), c=c)
    np.testing.assert_allclose(v, np.exp(np.logaddexp(-1.0 + 0.5, 0.5)), rtol=1e-12)
    np.testing.assert_allclose(g["a"], [0.0, np.exp(-0.5), 0.0], rtol=1e-12)


@pytest.mark.parametrize("fn", ["max", "min"])
@pytest.mark.parametrize("backend", GRAD)
def test_max_and_min_reductions_split_ties_evenly(backend, fn):
    x = vec(3.0, 1.0, 3.0, 3.0) if fn == "max" else vec(1.0, 3.0, 1.0, 2.0)
    v, g = run(f"pred x: float[N]\nloss = {fn}(x)\n", backend, x=x)
    assert v == (3.0 if fn == "max" else 1.0)
    expected = [1 / 3, 0, 1 / 3, 1 / 3] if fn == "max" else [0.5, 0, 0.5, 0]
    np.testing.assert_allclose(g["x"], expected, rtol=1e-12)


@pytest.mark.parametrize("backend", GRAD)
def test_max_reduction_along_an_axis_splits_ties_per_row(backend):
    v, g = run("pred x: float[B, N]\nloss = sum(max(x, axis=N))\n", backend,
               x=np.array([[1.0, 1.0], [0.0, 2.0]]))
    assert v == 3.0
    np.testing.assert_allclose(g["x"], [[0.5, 0.5], [0.0, 1.0]])


@pytest.mark.parametrize("p", [2, 1, 3])
@pytest.mark.parametrize("backend", GRAD)
def test_norm_at_zero_has_gradient_zero(backend, p):
    v, g = run(f"pred x: float[B, N]\nloss = sum(norm(x, p={p}, axis=N))\n", backend,
               x=np.array([[0.0, 0.0], [3.0, 4.0]]))
    expected_norm = {2: 5.0, 1: 7.0, 3: (27 + 64) ** (1 / 3)}[p]
    np.testing.assert_allclose(v, expected_norm, rtol=1e-12)
    np.testing.assert_array_equal(g["x"][0], [0.0, 0.0])
    assert np.all(np.isfinite(g["x"]))


@pytest.mark.parametrize("backend", GRAD)
def test_std_of_equal_values_has_gradient_zero(backend):
    v, g = run("pred x: float[B, N]\nloss = sum(std(x, axis=N)) + sum(std(x, axis=N, ddof=1))\n", backend,
               x=np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(v, np.std([1, 2, 3]) + np.std([1, 2, 3], ddof=1), rtol=1e-12)
    np.testing.assert_array_equal(g["x"][0], [0.0, 0.0, 0.0])
    assert np.all(np.isfinite(g["x"]))


@pytest.mark.parametrize("backend", GRAD)
def test_relu_at_zero_has_gradient_zero(backend):
    v, g = run("pred x: float[N]\nloss = sum(relu(x))\n", backend, x=vec(0.0, 1.0, -1.0))
    assert v == 1.0
    np.testing.assert_array_equal(g["x"], [0.0, 1.0, 0.0])


@pytest.mark.parametrize("backend", GRAD)
def test_sqrt_at_zero_has_infinite_gradient(backend):
    v, g = run("pred x: float[N]\nloss = sum(sqrt(x))\n", backend, x=vec(0.0, 4.0))
    assert v == 2.0
    assert g["x"][0] == np.inf and g["x"][1] == 0.25


@pytest.mark.parametrize("backend", GRAD)
def test_power_zero_is_one_with_gradient_zero_also_at_zero(backend):
    v, g = run("pred x: float[N]\nloss = sum(x ^ 0) + sum(x)\n", backend, x=vec(0.0, -2.0, 5.0))
    assert v == 3.0 + 3.0
    np.testing.assert_array_equal(g["x"], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("backend", ALL)
def test_power_zero_value_at_zero_is_one(backend):
    v, _ = run("pred x: float[N]\nloss = sum(x ^ 0 * x) + sum(x ^ 0)\n", backend, x=vec(0.0, 2.0))
    assert v == 2.0 + 2.0


@pytest.mark.parametrize("backend", GRAD)
def test_where_untaken_branch_contributes_exactly_zero(backend):
    src = "pred x: float[N]\nloss = sum(where(x > 0, x * log(x), 0.0))\n"
    v, g = run(src, backend, x=vec(0.0, -2.0, 1.0, np.e))
    np.testing.assert_allclose(v, np.e, rtol=1e-12)
    np.testing.assert_allclose(g["x"], [0.0, 0.0, 1.0, 2.0], rtol=1e-12)


@pytest.mark.parametrize("backend", GRAD)
def test_where_guard_reaches_into_a_let_used_only_by_the_branch(backend):
    src = ("pred x: float[N]\nlet xlogx = x * log(x)\nlet inv = 1 / x\n"
           "loss = sum(where(x > 0, xlogx + sqrt(x) + inv, 0.0))\n")
    v, g = run(src, backend, x=vec(0.0, -2.0, 1.0))
    assert v == 0.0 + 1.0 + 1.0
    assert g["x"][0] == 0.0 and g["x"][1] == 0.0 and np.isfinite(g["x"][2])


@pytest.mark.parametrize("backend", GRAD)
def test_where_guard_through_a_reduction(backend):
    src = "pred x: float[B, N]\nloss = sum(where(sum(x, axis=N) > 0, sum(log(x), axis=N), 0.0))\n"
    v, g = run(src, backend, x=np.array([[1.0, 2.0], [0.0, -1.0]]))
    np.testing.assert_allclose(v, np.log(2.0))
    np.testing.assert_allclose(g["x"], [[1.0, 0.5], [0.0, 0.0]])


@pytest.mark.parametrize("backend", GRAD)
def test_where_guards_a_picked_index_out_of_range(backend):
    # The ignore-index pattern: -100 is never read, and its lane's gradient is 0.
    src = ("pred logits: float[B, C]\ntarget y: int[B]\n"
           "loss = sum(where(y != -100, -pick(log_softmax(logits), y), 0.0))\n")
    logits = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    v, g = run(src, backend, logits=logits, y=np.array([2, -100]))
    expected = -(3.0 - np.log(np.exp(logits[0]).sum()))
    np.testing.assert_allclose(v, expected, rtol=1e-12)
    np.testing.assert_array_equal(g["logits"][1], [0.0, 0.0, 0.0])


@pytest.mark.parametrize("backend", ALL)
def test_argmax_and_argmin_take_the_first_index_on_ties(backend):
    src = ("pred x: float[C]\ninput w: float[C]\n"
           "loss = sum(one_hot(argmax(x), C) * w) + 10 * sum(one_hot(argmin(x), C) * w) + 0 * sum(x)\n")
    v, _ = run(src, backend, x=vec(1.0, 3.0, 3.0, 1.0), w=vec(1.0, 2.0, 4.0, 8.0))
    assert v == 2.0 + 10 * 1.0


@pytest.mark.parametrize("backend", ALL)
def test_argmax_along_an_axis_takes_the_first_index(backend):
    src = ("pred x: float[B, C]\ninput w: float[C]\n"
           "loss = sum(one_hot(argmax(x, axis=C), C) * w) + 0 * sum(x)\n")
    v, _ = run(src, backend, x=np.array([[0.0, 5.0, 5.0], [7.0, 7.0, 7.0]]), w=vec(1.0, 10.0, 100.0))
    assert v == 10.0 + 1.0


@pytest.mark.parametrize("backend", GRAD)
def test_non_differentiable_ops_stop_the_gradient(backend):
    src = ("pred x: float[N]\ninput y: float[N]\n"
           "loss = sum(x + floor(x) + ceil(x) + round(x) + sign(x) + float(int(x)) + float(x > y) "
           "+ stop_gradient(x) * 3)\n")
    _, g = run(src, backend, x=vec(0.4, -1.6, 2.5), y=vec(0.0, 0.0, 0.0))
    np.testing.assert_array_equal(g["x"], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("backend", ALL)
def test_round_is_half_to_even_and_int_truncates(backend):
    src = ("pred x: float[N]\nloss = sum(round(x) * 1000) + sum(float(int(x))) + 0 * sum(x)\n")
    v, _ = run(src, backend, x=vec(0.5, 1.5, 2.5, -0.5, -1.7))
    assert v == (0 + 2 + 2 - 0 - 2) * 1000 + (0 + 1 + 2 + 0 - 1)


# ---- stable forms ---------------------------------------------------------------------------

STABLE = {
    "log(softmax(z))": "loss = -sum(log(softmax(z)) * w)",
    "log(sigmoid(z))": "loss = -sum(log(sigmoid(z)) * w)",
    "log(1 - sigmoid(z))": "loss = -sum(log(1 - sigmoid(z)) * w)",
    "log(sum(exp(z)))": "loss = log(sum(exp(z * w)))",
    "log(1 + exp(z))": "loss = sum(log(1 + exp(z)))",
}


@pytest.mark.parametrize("form", list(STABLE))
@pytest.mark.parametrize("backend", GRAD)
def test_stable_forms_are_finite_at_extreme_logits_in_float32(backend, form):
    src = f"pred z: float[N]\ninput w: float[N]\n{STABLE[form]}\n"
    z = vec(1e4, -1e4, 0.0, 30.0, -30.0)
    v, g = run(src, backend, "float32", z=z, w=vec(1.0, 1.0, 1.0, 1.0, 1.0))
    assert np.isfinite(v), (form, v)
    assert np.all(np.isfinite(g["z"])), (form, g["z"])


def test_stable_forms_are_rewritten_in_the_ir():
    from lossdsl.passes import lower
    from lossdsl.ir import Apply, topological

    for form, body in STABLE.items():
        checked = lossdsl.check(f"pred z: float[N]\ninput w: float[N]\n{body}\n")
        fns = {n.fn for n in topological(lower(checked)) if isinstance(n, Apply)}
        assert "log" not in fns, form


@pytest.mark.parametrize("backend", ALL)
def test_log1p_form_is_accurate_near_zero(backend):
    v, _ = run("pred x: float[N]\nloss = sum(log(1 + x))\n", backend, x=vec(1e-12, 1e-15))
    np.testing.assert_allclose(v, np.log1p(1e-12) + np.log1p(1e-15), rtol=1e-12)


# ---- the functions of docs/language.md §3 marked Added, at the points where frameworks disagree ----

def _both_backwards(derived, monkeypatch):
    # torch's backward derived from the table's rule from the first element on, or its own autograd
    monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 0 if derived else 1 << 30)


@pytest.mark.parametrize("backend", GRAD)
@pytest.mark.parametrize("derived", [False, True], ids=["framework-grad", "derived-backward"])
def test_atan2_at_the_origin_has_value_zero_and_gradient_zero(backend, derived, monkeypatch):
    _both_backwards(derived, monkeypatch)
    y, x = vec(0.0, 0.0, 1.0, -2.0), vec(0.0, 0.0, 0.0, 1.0)
    v, g = run("pred y: float[N]\npred x: float[N]\ninput w: float[N]\nloss = sum(atan2(y, x) * w)\n",
               backend, y=y, x=x, w=vec(1, 2, 3, 4))
    np.testing.assert_allclose(v, 3 * np.pi / 2 + 4 * np.arctan2(-2.0, 1.0), rtol=1e-12)
    r2 = x**2 + y**2
    with np.errstate(invalid="ignore", divide="ignore"):
        want_y = np.where(r2 > 0, x / r2, 0.0) * vec(1, 2, 3, 4)
        want_x = np.where(r2 > 0, -y / r2, 0.0) * vec(1, 2, 3, 4)
    np.testing.assert_allclose(g["y"], want_y, rtol=1e-12)
    np.testing.assert_allclose(g["x"], want_x, rtol=1e-12)


@pytest.mark.parametrize("backend", GRAD)
def test_acos_and_asin_at_the_ends_of_their_domain_have_infinite_gradients(backend):
    x = vec(1.0, -1.0, 0.5)
    v, g = run("pred x: float[N]\npred z: float[N]\nloss = sum(acos(x)) + sum(asin(z))\n", backend, x=x, z=x)
    np.testing.assert_allclose(v, np.sum(np.arccos(x)) + np.sum(np.arcsin(x)), rtol=1e-12)
    np.testing.assert_array_equal(g["x"][:2], [-np.inf, -np.inf])  # -1 / sqrt(1 - x^2) at both ends
    np.testing.assert_array_equal(g["z"][:2], [np.inf, np.inf])
    np.testing.assert_allclose([g["x"][2], g["z"][2]], [-1 / np.sqrt(0.75), 1 / np.sqrt(0.75)], rtol=1e-12)


@pytest.mark.parametrize("backend", GRAD)
def test_acos_under_a_where_guard_has_gradient_zero_outside_its_domain(backend):
    x = vec(1.5, 0.5, -3.0)
    v, g = run("pred x: float[N]\nloss = sum(where(abs(x) < 1.0, acos(x), 0.0))\n", backend, x=x)
    np.testing.assert_allclose(v, np.arccos(0.5), rtol=1e-12)
    np.testing.assert_allclose(g["x"], [0.0, -1 / np.sqrt(0.75), 0.0], rtol=1e-12)


@pytest.mark.parametrize("backend", GRAD)
@pytest.mark.parametrize("derived", [False, True], ids=["framework-grad", "derived-backward"])
def test_cumprod_differentiates_exactly_through_zeros(backend, derived, monkeypatch):
    _both_backwards(derived, monkeypatch)
    x = vec(2.0, 0.0, 3.0, 0.5)
    v, g = run("pred x: float[N]\ninput w: float[N]\nloss = sum(cumprod(x) * w)\n", backend, x=x, w=vec(1, 2, 3, 4))
    assert v == 2.0
    # d/dx1 = w1 x0 + w2 x0 x2 + w3 x0 x2 x3: TensorFlow's own cumprod gives 0 there
    np.testing.assert_allclose(g["x"], [1.0, 2 * 2 + 3 * 2 * 3 + 4 * 2 * 3 * 0.5, 0.0, 0.0], rtol=1e-12)


@pytest.mark.parametrize("backend", GRAD)
def test_sort_and_topk_keep_tied_elements_in_their_order(backend):
    # Ties at positions 1 and 3 (value 2): the first of them takes the first tied position.
    x = vec(5.0, 2.0, 7.0, 2.0, 1.0)
    v, g = run("pred x: float[N]\ninput w: float[N]\ninput w3: float[3]\n"
               "loss = sum(sort(x) * w) + 100.0 * sum(topk(-x, 3) * w3)\n",
               backend, x=x, w=vec(1, 2, 3, 4, 5), w3=vec(1, 2, 3))
    # sort: [1, 2 (x1), 2 (x3), 5, 7]; topk(-x, 3): [-1, -2 (x1), -2 (x3)]
    np.testing.assert_allclose(v, 1 + 4 + 6 + 20 + 35 - 100 * (1 + 4 + 6), rtol=1e-12)
    np.testing.assert_allclose(g["x"], [4.0, 2.0 - 200.0, 5.0, 3.0 - 300.0, 1.0 - 100.0], rtol=1e-12)


@pytest.mark.parametrize("backend", ALL)
def test_argsort_and_argtopk_give_the_first_of_tied_positions_first(backend):
    src = ("pred x: float[N]\ninput w: float[N]\ninput w2: float[2]\n"
           "loss = sum(float(argsort(x)) * w) + 100.0 * sum(float(argtopk(x, 2)) * w2) + sum(x) * 0.0\n")
    f = lossdsl.compile(src, backend=backend)
    v, _ = value_and_grads(f, backend, {"x": vec(3.0, 1.0, 3.0, 1.0), "w": vec(1, 10, 100, 1000),
                                        "w2": vec(1, 10)}, ["x"] if backend != "numpy" else [])
    # argsort: [1, 3, 0, 2]; argtopk(x, 2): [0, 2]
    assert v == 1 * 1 + 3 * 10 + 0 * 100 + 2 * 1000 + 100 * (0 + 2 * 10)


@pytest.mark.parametrize("backend", GRAD)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logcumsumexp_is_stable_far_out(backend, dtype):
    x = vec(1e4, 1e4 - 2.0, -1e4, 1e4)
    v, g = run("pred x: float[N]\ninput w: float[N]\nloss = sum(logcumsumexp(x) * w)\n", backend, dtype,
               x=x, w=vec(0.0, 0.0, 0.0, 1.0))
    want = 1e4 + np.log(2 + np.exp(-2.0))
    np.testing.assert_allclose(v, want, rtol=1e-6)
    share = np.exp(x - want)
    np.testing.assert_allclose(g["x"], share, rtol=1e-3 if dtype == "float32" else 1e-9, atol=1e-6)


@pytest.mark.parametrize("backend", GRAD)
def test_minus_inf_in_a_where_drops_lanes_from_a_logsumexp_with_gradient_zero(backend):
    x = vec(0.5, 3.0, -1.0)
    v, g = run("pred x: float[N]\ninput m: bool[N]\nloss = logsumexp(where(m, x, -inf)) + max(where(m, -inf, x))\n",
               backend, x=x, m=np.array([True, False, True]))
    lse = np.log(np.exp(0.5) + np.exp(-1.0))
    np.testing.assert_allclose(v, lse + 3.0, rtol=1e-12)
    np.testing.assert_allclose(g["x"], [np.exp(0.5 - lse), 1.0, np.exp(-1.0 - lse)], rtol=1e-12)


@pytest.mark.parametrize("backend", GRAD)
def test_isfinite_selects_the_labels_there_are_with_a_finite_gradient(backend):
    y = vec(1.0, np.nan, np.inf, -2.0)
    yhat = vec(0.0, 5.0, 5.0, 0.0)
    v, g = run("pred yhat: float[N]\ntarget y: float[N]\nloss = sum(where(isfinite(y), (yhat - y)^2, 0.0))\n",
               backend, yhat=yhat, y=y)
    assert v == 1.0 + 4.0
    np.testing.assert_array_equal(g["yhat"], [-2.0, 0.0, 0.0, 4.0])
