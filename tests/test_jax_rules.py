"""The JAX backend's own rules for `softplus`, `log_sigmoid`, `logaddexp`, `atan2`, `norm` and
`relu` (backends/jax_backend.py): under `jax.jit` the value and gradient compute the
transcendental function once (JAX's own rules compute it two or three times), and the
derivatives, to the second, are the functions' own, at the points docs/language.md §4 names too."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lossdsl

from conftest import needs

pytestmark = needs("jax")


def _optimized_ops(body: str) -> list[str]:
    """The operations of the optimized program of `jax.jit(jax.value_and_grad)` of `loss = body`."""
    import jax
    import jax.numpy as jnp

    f = lossdsl.compile(f"pred x: float[B, D]\nloss = {body}\n", backend="jax")
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32))
    text = jax.jit(jax.value_and_grad(lambda p: f(p))).lower(x).compile().as_text()
    return re.findall(r"= \S+ ([a-z0-9\-]+)\(", text)


@pytest.mark.parametrize(
    ("body", "op", "count"),
    [
        ("sum(softplus(x))", "exponential", 1),
        ("sum(log_sigmoid(x))", "exponential", 1),
        ("sum(logaddexp(x, 2.0 * x))", "exponential", 1),
        ("sum(atan2(x, x + 1.0))", "atan2", 1),
        ("sum(norm(x, axis=D))", "power", 0),
    ],
)
def test_the_compiled_value_and_gradient_compute_the_transcendental_once(body, op, count):
    assert _optimized_ops(body).count(op) == count


def _first_and_second(src: str, at: np.ndarray, **inputs):
    """d loss / d pred and the diagonal of the Hessian of an elementwise loss, in float64."""
    import jax
    import jax.numpy as jnp

    f = lossdsl.compile(src, backend="jax")
    given = {k: jnp.asarray(v) for k, v in inputs.items()}
    grad = jax.grad(lambda p: f(p, **given))
    at = jnp.asarray(at)
    _, second = jax.jvp(grad, (at,), (jnp.ones_like(at),))  # elementwise: the Hessian's diagonal
    return np.asarray(grad(at)), np.asarray(second)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _sigmoid_slope(z):
    """sigmoid(z) * (1 - sigmoid(z)), without 1 - sigmoid's rounding far out."""
    e = np.exp(-np.abs(z))
    return e / (1.0 + e) ** 2


def test_softplus_and_log_sigmoid_have_the_sigmoid_and_its_derivative_as_derivatives():
    x = np.array([-30.0, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0])
    s = _sigmoid(x)
    g, h = _first_and_second("pred x: float[N]\nloss = sum(softplus(x))\n", x)
    np.testing.assert_allclose(g, s, rtol=1e-12)
    np.testing.assert_allclose(h, _sigmoid_slope(x), rtol=1e-9)
    g, h = _first_and_second("pred x: float[N]\nloss = sum(log_sigmoid(x))\n", x)
    np.testing.assert_allclose(g, _sigmoid(-x), rtol=1e-12)
    np.testing.assert_allclose(h, -_sigmoid_slope(x), rtol=1e-9)


def test_logaddexp_shares_and_their_derivatives_at_ties_and_far_out():
    a = np.array([0.0, 1.0, -1.0, 3.0, 1e4])
    b = np.array([0.0, 0.5, 2.0, -np.inf, 1e4 - 2.0])
    share = _sigmoid(a - b)
    g, h = _first_and_second("pred a: float[N]\ninput b: float[N]\nloss = sum(logaddexp(a, b))\n", a, b=b)
    np.testing.assert_allclose(g, share, rtol=1e-12)  # 0.5 at the tie, 1 beside a -inf
    np.testing.assert_allclose(h, _sigmoid_slope(a - b), rtol=1e-9)


def test_logaddexp_of_two_infinities_of_one_sign_is_that_infinity():
    import jax.numpy as jnp

    f = lossdsl.compile("pred a: float[N]\ninput b: float[N]\nloss = logaddexp(a, b)\n", backend="jax")
    inf = np.inf
    out = np.asarray(f(jnp.asarray([inf, -inf, np.nan]), b=jnp.asarray([inf, -inf, 0.0]), reduction="none"))
    np.testing.assert_array_equal(out[:2], [inf, -inf])
    assert np.isnan(out[2])


def test_atan2_derivatives_are_finite_at_the_origin_and_arctan2s_elsewhere():
    import jax
    import jax.numpy as jnp

    src = "pred y: float[N]\ninput x: float[N]\nloss = sum(atan2(y, x) ^ 2)\n"
    f = lossdsl.compile(src, backend="jax")
    y, x = jnp.asarray([0.0, 1.0, -1.0, 2.0]), jnp.asarray([0.0, 1.0, 0.5, -3.0])
    g, h = _first_and_second(src, y, x=x)
    ref = jax.grad(lambda p: jnp.sum(jnp.arctan2(p, x[1:]) ** 2))(y[1:])
    _, ref_h = jax.jvp(jax.grad(lambda p: jnp.sum(jnp.arctan2(p, x[1:]) ** 2)), (y[1:],), (jnp.ones(3),))
    assert g[0] == 0.0 and h[0] == 0.0  # the origin: gradient 0 (docs/language.md §4)
    np.testing.assert_allclose(g[1:], ref, rtol=1e-12)
    np.testing.assert_allclose(h[1:], ref_h, rtol=1e-12)
    assert float(f(y, x=x)) == pytest.approx(float(np.sum(np.arctan2(np.asarray(y), np.asarray(x)) ** 2)))


def test_relu_of_an_int_is_an_int_index_and_of_a_float_has_gradient_0_at_0():
    import jax
    import jax.numpy as jnp

    src = "pred x: float[B, C]\ninput k: int[B]\nloss = pick(x, relu(k - 1)) + relu(sum(x, axis=C) - 3.0)\n"
    f = lossdsl.compile(src, backend="jax")
    x = jnp.asarray([[1.0, 2.0, 0.0], [1.0, 1.0, 1.0], [4.0, 5.0, 6.0]])
    k = jnp.asarray([0, 2, 3])
    np.testing.assert_array_equal(np.asarray(f(x, k, reduction="none")), [1.0, 1.0, 6.0 + 12.0])
    grad = np.asarray(jax.grad(lambda p: f(p, k, reduction="sum"))(x))
    # the first two rows sum to exactly 3: relu's gradient is 0 there (docs/language.md §4)
    np.testing.assert_array_equal(grad, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 2.0]])
