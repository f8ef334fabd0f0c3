"""One value and one gradient on the paths users take that the parity suite does not draw:
NaN data under `where`, higher-order derivatives, every size threshold, the quick form and
declared size-1 axes that would broadcast into an outer product, empty batches."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.codegen
import lossdsl.std
from lossdsl import LossError
from lossdsl.sampling import random_inputs

from conftest import EXAMPLES, check_err, check_ok, codes, needs, spec
from harness import BACKENDS, GRAD_BACKENDS, assert_close, compile_for, compiled_value_and_grad, value_and_grads

MISSING_LABEL = spec("""
    pred   yhat: float[B]
    target y:    float[B]
    loss = sum(where(y == y, (yhat - y)^2, 0.0)) / maximum(sum(float(y == y)), 1.0)
""")


def _sizes_around_the_threshold() -> list[int]:
    """Just below and just above the size from which torch runs the derived backward."""
    return [THRESHOLD - 1, THRESHOLD + 1]


THRESHOLD = 64  # the tests move the derived backward's threshold here, to run both sides cheaply


@pytest.fixture
def threshold(monkeypatch):
    monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", THRESHOLD)


# ---- NaN and inf in the data under `where` ------------------------------------------------------

@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_missing_label_in_the_branch_not_taken_gives_a_finite_gradient(backend, bad, rng, threshold):
    for n in _sizes_around_the_threshold():
        yhat, y = rng.normal(size=n), rng.normal(size=n)
        y[[1, n - 2]] = bad
        keep = ~np.isnan(y)  # `y == y`: inf is kept and gives an infinite loss, NaN is a missing label
        f = compile_for(MISSING_LABEL, backend)
        value, grads = value_and_grads(f, backend, {"yhat": yhat, "y": y}, ["yhat"])
        if not np.isnan(bad):  # inf is not missing: the branch is taken and the loss is infinite
            assert np.isinf(value)
            continue
        r = np.where(keep, yhat - np.where(keep, y, 0.0), 0.0)
        assert_close(value, (r ** 2).sum() / keep.sum(), "float64", f"{backend} value, n={n}")
        assert_close(grads["yhat"], 2 * r / keep.sum(), "float64", f"{backend} gradient, n={n}")


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_inf_inputs_in_lanes_a_where_does_not_take_contribute_nothing(backend, rng, threshold):
    src = spec("""
        pred  yhat: float[B]
        input w:    float[B]
        input keep: bool[B]
        loss = sum(where(keep, w * exp(yhat) + log(w), 0.0))
    """)
    for n in _sizes_around_the_threshold():
        yhat = rng.normal(size=n)
        w = rng.uniform(0.5, 2.0, n)
        keep = rng.random(n) < 0.6
        w[~keep] = np.where(rng.random((~keep).sum()) < 0.5, np.inf, np.nan)
        f = compile_for(src, backend)
        value, grads = value_and_grads(f, backend, {"yhat": yhat, "w": w, "keep": keep}, ["yhat"])
        wk = np.where(keep, w, 1.0)
        assert_close(value, np.where(keep, wk * np.exp(yhat) + np.log(wk), 0).sum(), "float64", backend)
        assert_close(grads["yhat"], np.where(keep, wk * np.exp(yhat), 0.0), "float64", backend)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
@pytest.mark.parametrize("wrap", ["stop_gradient(w)", "float(w)", "stop_gradient(float(w))"])
def test_nan_data_under_a_conversion_or_stop_gradient_is_guarded_too(backend, wrap, rng, threshold):
    # The guard reaches data through functions that read only their own lanes, whatever they are.
    src = spec(f"""
        pred  yhat: float[B]
        input w:    float[B]
        loss = sum(where(w == w, yhat * {wrap}, 0.0))
    """)
    for n in _sizes_around_the_threshold():
        yhat, w = rng.normal(size=n), rng.normal(size=n)
        w[[0, n - 1]] = np.nan
        keep = ~np.isnan(w)
        value, grads = value_and_grads(compile_for(src, backend), backend, {"yhat": yhat, "w": w}, ["yhat"])
        assert_close(value, np.where(keep, yhat * np.where(keep, w, 0.0), 0.0).sum(), "float64", backend)
        assert_close(grads["yhat"], np.where(keep, w, 0.0), "float64", f"{backend} n={n}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_the_branch_taken_propagates(backend):
    f = compile_for(MISSING_LABEL.replace("where(y == y", "where(yhat > -1e30"), backend)
    value, _ = value_and_grads(f, backend, {"yhat": np.zeros(3), "y": np.array([0.0, np.nan, 1.0])}, ["yhat"])
    assert np.isnan(value)


# ---- higher-order derivatives ----------------------------------------------------------------------

def _losses_with_inputs(rng):
    """(name, spec, call arguments, context, preds) for every example and every std loss."""
    out = []
    for path in sorted(EXAMPLES.glob("*.loss")) + [lossdsl.std.path(n) for n in lossdsl.std.names()]:
        checked = lossdsl.check(path)
        args, ctx, params = random_inputs(checked, rng, {"B": 5})
        preds = [d.name for d in checked.of_kind("pred")]
        out.append((path.stem, path, args, ctx, params, preds))
    return out


def _hvp(backend, f, args, preds, v):
    """The Hessian-vector product of the summed loss with respect to the preds, direction v."""
    from harness import convert

    conv = {k: convert(backend, a, "float64") if not isinstance(a, dict) else
            {kk: convert(backend, aa, "float64") for kk, aa in a.items()} for k, a in args.items()}
    if backend == "torch":
        import torch

        xs = [conv[p].clone().requires_grad_(True) for p in preds]
        out = f(**{**conv, **dict(zip(preds, xs))})
        gs = torch.autograd.grad(out.sum(), xs, create_graph=True)
        dot = sum((g * torch.as_tensor(v[p])).sum() for g, p in zip(gs, preds))
        if not dot.requires_grad:  # a gradient that does not depend on the preds (piecewise linear)
            return {p: np.zeros(np.shape(v[p])) for p in preds}
        hs = torch.autograd.grad(dot, xs, allow_unused=True, materialize_grads=True)
        return {p: h.detach().numpy(force=True) for p, h in zip(preds, hs)}
    if backend == "jax":
        import jax

        def loss(pv):
            return f(**{**conv, **pv}).sum()

        primal = {p: conv[p] for p in preds}
        _, hv = jax.jvp(jax.grad(loss), (primal,), ({p: jax.numpy.asarray(v[p]) for p in preds},))
        return {p: np.asarray(hv[p]) for p in preds}
    import tensorflow as tf

    xs = [tf.Variable(conv[p]) for p in preds]
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            out = tf.reduce_sum(f(**{**conv, **dict(zip(preds, xs))}))
        gs = inner.gradient(out, xs)
        dot = tf.add_n([tf.reduce_sum(g * tf.constant(v[p])) for g, p in zip(gs, preds)])
    hs = outer.gradient(dot, xs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return {p: h.numpy() for p, h in zip(preds, hs)}


@needs("torch")
@needs("jax")
@needs("tensorflow")
@pytest.mark.slow
def test_hessian_vector_products_agree_on_every_backend_and_both_sides_of_the_threshold(rng, threshold):
    """Reference: PyTorch's own autograd in float64 (the plain compute, no derived backward)."""
    checked = 0
    for name, path, args, ctx, params, preds in _losses_with_inputs(rng):
        v = {p: rng.normal(size=np.shape(args[p])) for p in preds}
        plain = lossdsl.compile(path, backend="torch", context=_as(ctx, "torch"), params=params,
                                fused_backward=False)
        expected = _hvp("torch", plain, args, preds, v)
        for backend in GRAD_BACKENDS:
            f = compile_for(path, backend, ctx, params)
            got = _hvp(backend, f, args, preds, v)
            for p in preds:
                assert_close(got[p], expected[p], "float64", f"{name}: HVP w.r.t. {p} on {backend}")
        # torch through the derived backward (threshold 0): it steps aside for the graph of the gradient
        lossdsl.codegen.FUSED_MIN_ELEMENTS = 0
        got = _hvp("torch", compile_for(path, "torch", ctx, params), args, preds, v)
        lossdsl.codegen.FUSED_MIN_ELEMENTS = THRESHOLD
        for p in preds:
            assert_close(got[p], expected[p], "float64", f"{name}: HVP w.r.t. {p} on torch, derived path")
        checked += 1
    assert checked >= 20


@needs("torch")
@needs("jax")
@needs("tensorflow")
def test_logaddexp_with_a_minus_infinity_has_finite_second_derivatives(rng, threshold):
    """logaddexp(x, -inf) is x with every derivative x's (nt_xent's anchors whose labels all agree
    meet it); torch's own logaddexp gives NaN second derivatives there."""
    src = "pred a: float[N]\ninput b: float[N]\nloss = sum(logaddexp(a * a, b) * a)\n"
    a, v = rng.normal(size=4), rng.normal(size=4)
    b = np.array([-np.inf, 0.3, -np.inf, -1.0])
    expected = {"a": 6 * a * v}  # where b = -inf the loss is a^3
    for backend in GRAD_BACKENDS:
        f = lossdsl.compile(src, backend=backend)
        got = _hvp(backend, f, {"a": a, "b": b}, ["a"], {"a": v})["a"]
        assert np.all(np.isfinite(got)), (backend, got)
        np.testing.assert_allclose(got[[0, 2]], expected["a"][[0, 2]], rtol=1e-10, err_msg=backend)
        reference = _hvp("jax", lossdsl.compile(src, backend="jax"), {"a": a, "b": b}, ["a"], {"a": v})["a"]
        np.testing.assert_allclose(got, reference, rtol=1e-10, err_msg=backend)


def _as(ctx, backend):
    from harness import convert

    return {k: convert(backend, v, "float64") for k, v in ctx.items()}


MASKED_ROWS = spec("""
    pred   z:    float[B, D]
    target keep: bool[B, B]
    loss = softplus(logsumexp(where(keep, z @ transpose(z), -inf), axis=1) + sum(z, axis=1))
""")


@needs("torch")
@needs("jax")
@needs("tensorflow")
def test_a_row_masked_throughout_has_finite_second_derivatives_on_every_row(rng, threshold):
    """An anchor without a positive: its logsumexp is -inf and softplus of it 0, with derivatives
    of every order 0. The frameworks' own logsumexp gives NaN second derivatives there once
    the upstream gradient depends on the input (here through `sum(z)`), on every row of z. Reference: torch on the kept entries of each row
    alone, where no -inf appears."""
    import torch

    b = 5
    z = rng.normal(size=(b, 3))
    keep = rng.random((b, b)) < 0.6
    keep[1] = False
    keep[np.arange(b) != 1, 0] = True
    v = {"z": rng.normal(size=z.shape)}

    def reference(t):
        s = t @ t.T
        rows = [torch.nn.functional.softplus(torch.logsumexp(s[i][torch.as_tensor(keep[i])], 0) + t[i].sum())
                for i in range(b) if keep[i].any()]
        return torch.stack(rows).sum() / b

    t = torch.tensor(z, requires_grad=True)
    (g,) = torch.autograd.grad(reference(t), t, create_graph=True)
    (expected,) = torch.autograd.grad((g * torch.as_tensor(v["z"])).sum(), t)
    for backend in GRAD_BACKENDS:
        got = _hvp(backend, compile_for(MASKED_ROWS, backend), {"z": z, "keep": keep}, ["z"], v)["z"]
        assert_close(got, expected.numpy(), "float64", f"HVP of a masked logsumexp on {backend}")


@needs("torch")
def test_double_backward_works_at_every_size_on_torch(rng, threshold):
    f = lossdsl.compile(EXAMPLES / "weighted_mse.loss", backend="torch")
    import torch

    for n in _sizes_around_the_threshold():
        yhat = torch.tensor(rng.normal(size=n), requires_grad=True)
        y, x = torch.tensor(rng.normal(size=n)), torch.tensor(rng.normal(size=n))
        g, = torch.autograd.grad(f(yhat, y, x={"feature": x}), yhat, create_graph=True)
        v = torch.tensor(rng.normal(size=n))
        hv, = torch.autograd.grad((g * v).sum(), yhat)
        np.testing.assert_allclose(hv.numpy(), (2 * x.abs() * v / n).numpy(), rtol=1e-12, atol=1e-15)


@needs("torch")
def test_per_sample_gradients_with_torch_func_at_every_size(rng, threshold):
    import torch
    from torch.func import grad, vmap

    f = lossdsl.compile(lossdsl.std.path("mse"), backend="torch")
    for d in _sizes_around_the_threshold():
        yhat, y = torch.tensor(rng.normal(size=(3, d))), torch.tensor(rng.normal(size=(3, d)))
        per_sample = vmap(grad(lambda a, b: f(a[None], b[None])))(yhat, y)
        np.testing.assert_allclose(per_sample.numpy(), (2 * (yhat - y) / d).numpy(), rtol=1e-12)


@needs("jax")
def test_per_sample_gradients_with_jax_vmap():
    import jax
    import jax.numpy as jnp

    f = lossdsl.compile(lossdsl.std.path("huber"), backend="jax")
    yhat, y = jnp.linspace(-3, 3, 12).reshape(3, 4), jnp.zeros((3, 4))
    per_sample = jax.vmap(jax.grad(lambda a, b: f(a[None], b[None])))(yhat, y)
    np.testing.assert_allclose(np.asarray(per_sample), np.clip(np.asarray(yhat), -1, 1) / 4, rtol=1e-12)


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_a_power_of_zero_keeps_the_loss_on_the_tape_with_gradient_zero(backend, rng):
    f = compile_for("pred x: float[B]\nloss = sum(x^0)\n", backend)
    value, grads = value_and_grads(f, backend, {"x": np.array([0.0, -2.0, np.inf])}, ["x"])
    assert float(value) == 3.0
    np.testing.assert_array_equal(grads["x"], np.zeros(3))


@needs("torch")
@needs("tensorflow")
def test_a_power_of_zero_has_a_gradient_on_the_frameworks_with_a_tape():
    import tensorflow as tf
    import torch

    x = torch.ones(4, requires_grad=True)
    lossdsl.compile("pred x: float[B]\nloss = sum(x^0)\n", backend="torch")(x).backward()
    assert x.grad.tolist() == [0.0] * 4
    v = tf.Variable([1.0, 0.0, float("inf")])
    with tf.GradientTape() as tape:
        loss = lossdsl.compile("pred x: float[B]\nloss = sum(x^0)\n", backend="tf")(v)
    grad = tape.gradient(loss, v)
    assert grad is not None and grad.numpy().tolist() == [0.0] * 3


# ---- no behaviour depends on size ------------------------------------------------------------------

@needs("torch")
# binary_cross_entropy is fused per element on torch (lossdsl/kernels.py): no derived path to cross
@pytest.mark.parametrize("name", ["mse", "huber", "poisson_nll", "gaussian_nll", "margin_ranking"])
def test_std_losses_agree_below_and_above_the_derived_backward_threshold(name, rng, monkeypatch):
    """The real threshold, not a moved one: a batch just below and just above it."""
    monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 1 << 16)
    path = lossdsl.std.path(name)
    checked = lossdsl.check(path)
    preds = [d.name for d in checked.of_kind("pred")]
    results = []
    one, _, _ = random_inputs(checked, rng, {"B": 1, "C": 2, "D": 2})
    per_sample = sum(np.size(one[p]) for p in preds)  # pred elements per sample
    for batch in ((1 << 16) // per_sample - 1, (1 << 16) // per_sample + 1):
        args, ctx, params = random_inputs(checked, rng, {"B": batch, "C": 2, "D": 2})
        total = sum(np.size(args[p]) for p in preds)
        f = lossdsl.compile(path, backend="torch")
        ref = lossdsl.compile(path, backend="torch", fused_backward=False)
        value, grads = value_and_grads(f, "torch", args, preds)
        rvalue, rgrads = value_and_grads(ref, "torch", args, preds)
        assert_close(value, rvalue, "float64", f"{name} value at {total}")
        for p in preds:
            assert_close(grads[p], rgrads[p], "float64", f"{name} gradient at {total}")
        results.append(total >= 1 << 16)
        assert "_Loss" in f.source  # the derived path exists for this loss
    assert results == [False, True]


# ---- broadcasting that would pair a dimension with itself -----------------------------------------

def test_a_declared_size_one_axis_against_its_own_dimension_is_an_error():
    e = check_err("""
        pred   yhat: float[B, 1]
        target y:    float[B]
        loss = mean((y - yhat)^2)
    """)
    assert codes(e) == ["E403"]
    assert "`yhat[:, 0]`" in e.first.help and "[B, B]" in e.first.message


def test_a_kept_reduced_axis_against_its_own_dimension_is_an_error():
    e = check_err("""
        pred   z: float[B, C]
        target y: float[B]
        loss = mean(mean(z, axis=C, keepdims=true) - y)
    """)
    assert codes(e) == ["E403"]


def test_two_declared_size_one_axes_making_an_outer_product_is_an_error():
    e = check_err("""
        pred   a: float[B, 1]
        target b: float[1, B]
        loss = mean(a * b)
    """)
    assert codes(e) == ["E403"]


@pytest.mark.parametrize("body", ["mean(relu(x[:, None] - x[None, :]))", "mean(relu(x[:, None] - x))",
                                  "mean(adj * x[:, None])"])
def test_outer_products_written_with_none_are_allowed(body):
    check_ok(f"""
        pred    x:   float[N]
        context adj: float[N, N]
        loss = {body}
    """)


def test_a_size_one_axis_against_an_operand_that_has_both_axes_is_allowed():
    check_ok("""
        pred    x:   float[N, 1]
        context adj: float[N, N]
        loss = mean(adj * x)
    """)


def test_a_size_one_axis_against_other_dimensions_still_broadcasts():
    check_ok("""
        pred   z: float[B, C]
        target m: float[B, 1]
        loss = mean(z - m)
    """)


# ---- the quick form never broadcasts ---------------------------------------------------------------

@pytest.mark.parametrize("shapes", [((8, 1), (8,)), ((8,), (8, 1)), ((4, 4), (4,))])
def test_the_quick_form_refuses_to_broadcast_operands_of_different_shapes(shapes):
    f = lossdsl.compile("mean((y - yhat)^2)", backend="numpy")
    with pytest.raises(LossError) as info:
        f(np.zeros(shapes[0]), np.ones(shapes[1]))
    assert info.value.first.code == "E401"
    assert "declare" in info.value.first.help


def test_the_quick_form_refuses_a_weight_that_would_line_up_with_the_wrong_axis():
    f = lossdsl.compile("mean(w * (y - yhat)^2)", backend="numpy")
    with pytest.raises(LossError) as info:  # B == H: NumPy would weight the columns
        f(np.zeros((4, 4)), np.ones((4, 4)), w=np.arange(4.0))
    assert info.value.first.code == "E401"


def test_the_quick_form_accepts_scalars_equal_shapes_and_explicit_new_axes():
    f = lossdsl.compile("mean(0.5 * (y - yhat)^2)", backend="numpy")
    assert f(np.zeros((3, 2)), np.ones((3, 2))) == 0.5
    g = lossdsl.compile("mean(relu(yhat[:, None] - yhat[None, :]))", backend="numpy")
    x = np.array([0.0, 1.0, 3.0])
    assert g(x) == pytest.approx(np.maximum(x[:, None] - x[None, :], 0).mean())


# ---- empty batches ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_batch_rules(backend):
    empty = {"yhat": np.zeros(0), "y": np.zeros(0)}
    per_sample = compile_for("pred yhat: float[B]\ntarget y: float[B]\nloss = (yhat - y)^2\n", backend)
    for reduction in ("mean", "sum", "weighted_mean"):
        value, grads = value_and_grads(per_sample, backend, empty, ["yhat"], call_kwargs={"reduction": reduction})
        assert float(value) == 0.0, (backend, reduction)
        if backend != "numpy":
            assert grads["yhat"].shape == (0,)
    in_spec = compile_for("pred yhat: float[B]\nloss = sum(yhat) + 0 * mean(yhat)\n", backend)
    value, _ = value_and_grads(in_spec, backend, {"yhat": np.zeros(0)}, ["yhat"])
    assert np.isnan(value)  # `mean` over an empty axis is 0 / 0, as in NumPy
    for fn in ("max", "min", "logsumexp"):
        f = compile_for(f"pred yhat: float[B]\nloss = {fn}(yhat)\n", backend)
        with pytest.raises(LossError) as info:
            f(yhat=_convert(backend, np.zeros(0)))
        assert info.value.first.code == "E805" and f"`{fn}` over `B`" in info.value.first.message


def _convert(backend, value):
    from harness import convert

    return convert(backend, value, "float64")


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_with_every_label_ignored_is_zero(backend, smoothing):
    f = compile_for(lossdsl.std.path("cross_entropy"), backend, params={"label_smoothing": smoothing})
    x = {"logits": np.ones((3, 4)), "y": np.full(3, -100)}
    value, grads = value_and_grads(f, backend, x, ["logits"])
    assert float(value) == 0.0
    if backend != "numpy":
        np.testing.assert_array_equal(grads["logits"], np.zeros((3, 4)))
    if backend in GRAD_BACKENDS:  # the same under the framework's compiler
        value, grad = compiled_value_and_grad(f, backend, x, "logits")
        assert float(value) == 0.0
        np.testing.assert_array_equal(grad, np.zeros((3, 4)))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_weighted_cross_entropy_with_no_weight_seen_is_zero(backend, smoothing):
    # every label ignored, or a weight of 0 on every label seen: 0, not torch's NaN, fused or not
    f = compile_for(lossdsl.std.path("weighted_cross_entropy"), backend, {"class_w": np.array([0.0, 1.0, 2.0, 3.0])},
                    {"label_smoothing": smoothing})
    for y in (np.full(3, -100), np.array([0, -100, 0])):
        value, grads = value_and_grads(f, backend, {"logits": np.ones((3, 4)), "y": y}, ["logits"])
        assert float(value) == 0.0
        if backend != "numpy":
            np.testing.assert_array_equal(grads["logits"], np.zeros((3, 4)))


def test_a_one_unit_model_head_for_a_vector_pred_says_how_to_fix_it():
    f = lossdsl.compile(EXAMPLES / "weighted_mse.loss", backend="numpy")
    with pytest.raises(LossError) as info:
        f(np.zeros((4, 1)), np.zeros(4), x={"feature": np.zeros(4)})
    assert info.value.first.code == "E804"
    assert "yhat[..., 0]" in info.value.first.help and "float[B, 1]" in info.value.first.help


@needs("torch")
def test_the_derived_backward_compiles_to_one_graph():
    """Stepping aside under torch.func must not cost a graph break under torch.compile."""
    import torch

    f = lossdsl.compile(EXAMPLES / "weighted_mse.loss", backend="torch")
    assert "_Loss" in f.source
    torch._dynamo.reset()
    a, b, x = torch.randn(8, requires_grad=True), torch.randn(8), torch.randn(8)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explanation = torch._dynamo.explain(lambda a: f(a, b, x={"feature": x}))(a)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    untraced = [str(w.message) for w in caught if "Dynamo does not know how to trace" in str(w.message)]
    assert not untraced, untraced


@needs("torch")
def test_the_derived_backward_with_a_data_guard_compiles_with_fullgraph(rng):
    import torch

    src = "pred yhat: float[B, D]\ntarget y: float[B, D]\nloss = mean(where(y == y, (yhat - y)^2, 0.0), axis=D)\n"
    f = lossdsl.compile(src, backend="torch")
    assert "_Loss" in f.source and "_k(" in f.source  # the derived backward, reading a cached constant
    y = torch.tensor(rng.normal(size=(4, 3)))
    y[1, 2] = float("nan")
    a = torch.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    torch._dynamo.reset()
    torch.compile(lambda a: f(a, y), fullgraph=True)(a).backward()
    compiled, a.grad = a.grad.clone(), None
    f(a, y).backward()
    assert torch.isfinite(compiled).all()
    torch.testing.assert_close(compiled, a.grad)
