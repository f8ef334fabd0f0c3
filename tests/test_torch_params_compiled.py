"""Params on torch as torch.compile and the eager fast paths see them: a param given as a Python
number (its default, bound, or at the call) is converted without NumPy, so the compiled call is
one graph; a float param as an exponent is printed as the Python number where there is one."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.std

from conftest import needs

FOCAL_LIKE = (
    "pred z: float[B, D]\ntarget y: float[B, D]\nparam gamma: float = 2.0\n"
    "let p = sigmoid(z)\nloss = mean(y * (1 - p)^gamma + (1 - y) * p^gamma)\n"
)


def _reference(z, y, gamma):
    p = 1 / (1 + np.exp(-z))
    value = np.mean(y * (1 - p) ** gamma + (1 - y) * p**gamma)
    dp = (-y * gamma * (1 - p) ** (gamma - 1) + (1 - y) * gamma * p ** (gamma - 1)) / z.size
    return value, dp * p * (1 - p)


@needs("torch")
def test_a_float_param_exponent_is_printed_as_its_python_number_on_torch():
    f = lossdsl.compile(FOCAL_LIKE, backend="torch")
    assert "** (n_gamma if n_gamma is not None else p_gamma)" in f.source
    assert "n_gamma = _number(" in f.source


@needs("torch")
@pytest.mark.parametrize("how", ["default", "bound", "number at the call", "tensor at the call"])
def test_a_param_exponent_gives_the_same_value_and_gradient_as_a_number_or_a_tensor(rng, how):
    import torch

    z = rng.normal(size=(6, 5))
    y = (rng.random((6, 5)) < 0.5).astype(float)
    gamma = 2.0 if how == "default" else 1.5
    f = lossdsl.compile(FOCAL_LIKE, backend="torch", params={"gamma": 1.5} if how == "bound" else None)
    at_call = {"number at the call": {"gamma": 1.5}, "tensor at the call": {"gamma": torch.tensor(1.5)}}.get(how, {})
    x = torch.tensor(z, requires_grad=True)
    value = f(x, torch.tensor(y), **at_call)
    value.backward()
    want_value, want_grad = _reference(z, y, gamma)
    np.testing.assert_allclose(value.item(), want_value, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), want_grad, rtol=1e-10, atol=1e-15)


@needs("torch")
@pytest.mark.parametrize(
    "name, params, at_call",
    [
        ("focal", {}, {}),
        ("focal", {"alpha": 0.5}, {"gamma": 1.5}),
        ("triplet", {}, {"margin": 0.5}),
        ("cross_entropy", {"label_smoothing": 0.1}, {}),
    ],
)
def test_a_loss_with_params_given_as_numbers_compiles_to_one_graph_and_leaves_no_traced_value(
    rng, name, params, at_call
):
    import torch

    f = lossdsl.compile(lossdsl.std.path(name), backend="torch", params=params)
    names = [d.name for d in f.spec.call_args]
    args = []
    for d in f.spec.call_args:
        if d.type.dtype.value == "int":
            args.append(torch.tensor(rng.integers(0, 5, 8)))
        elif name == "focal" and d.kind == "target":
            args.append(torch.tensor((rng.random((8, 5)) < 0.5).astype(np.float32)))
        else:
            args.append(torch.tensor(rng.normal(size=(8, 5)).astype(np.float32)))

    def call(first):
        return f(**dict(zip(names, [first, *args[1:]])), **at_call)

    torch._dynamo.reset()
    explained = torch._dynamo.explain(call)(args[0])
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(call, fullgraph=True, backend="aot_eager")
    x = args[0].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(compiled(x), [x])
    # Afterwards the eager call computes with real tensors (nothing made while tracing was kept).
    x2 = args[0].clone().requires_grad_(True)
    eager = call(x2)
    (eager_grad,) = torch.autograd.grad(eager, [x2])
    torch.testing.assert_close(compiled(args[0]), eager)
    torch.testing.assert_close(grad, eager_grad)


@needs("torch")
def test_default_params_under_torch_compile_are_guarded_without_reading_the_specs_leaves():
    """Each guard is checked at every call of the compiled loss: a param's conversion reads its
    label and dtype as plain strings, not through the spec's leaves (a property and an enum)."""
    import torch

    f = lossdsl.compile(lossdsl.std.path("tversky"), backend="torch")  # three params, all default
    y = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    torch._dynamo.reset()
    explained = torch._dynamo.explain(lambda z: f(z, y))(torch.zeros(2, 3))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert not [g.name for g in explained.out_guards if ".leaves" in g.name]
