"""A gather whose every index but one is `arange` of its own axis (numpy's take_along_axis, as in
the Lovász losses' `x[rows, order, classes]`) is printed on torch as one `torch.gather`; any
other gather stays advanced indexing. Value and gradient against a float64 reference, eager and
under torch.compile."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl

from conftest import needs

# name -> (spec, axis of the gather, shape of x)
ALONG = {
    "rows_of_a_matrix": (
        "pred x: float[B, N]\ntarget w: float[B, N]\nlet order = argsort(-(x * w), axis=N)\n"
        "loss = sum(x[arange(B)[:, None], order] * cumsum(w[arange(B)[:, None], order], axis=N))\n",
        1,
        (4, 6),
    ),
    "middle_axis_of_three": (
        "pred x: float[B, N, C]\ntarget w: float[B, N, C]\nlet order = argsort(-(x * w), axis=N)\n"
        "let rows = arange(B)[:, None, None]\nlet classes = arange(C)\n"
        "loss = sum(x[rows, order, classes] * cumsum(w[rows, order, classes], axis=N))\n",
        1,
        (3, 5, 4),
    ),
    "first_axis": (
        "pred x: float[N, C]\ntarget w: float[N, C]\nlet order = argsort(x * w, axis=N)\n"
        "loss = sum(x[order, arange(C)] * cumsum(w[order, arange(C)], axis=N))\n",
        0,
        (6, 3),
    ),
}


def _reference(x, w, axis, descending):
    key = -(x * w) if descending else x * w
    order = np.argsort(key, axis=axis, kind="stable")
    weights = np.cumsum(np.take_along_axis(w, order, axis=axis), axis=axis)
    grad = np.zeros_like(x)
    np.put_along_axis(grad, order, weights, axis=axis)  # `order` is a permutation along the axis
    return np.sum(np.take_along_axis(x, order, axis=axis) * weights), grad


@needs("torch")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "torch.compile"])
@pytest.mark.parametrize("name", sorted(ALONG))
def test_a_take_along_axis_gather_is_one_torch_gather_with_the_reference_value_and_gradient(name, compiled, rng):
    import torch

    spec, axis, shape = ALONG[name]
    f = lossdsl.compile(spec, backend="torch")
    assert f.source.count(f"torch.gather(v_x, {axis}, ") == 1 and f.source.count(f"torch.gather(v_w, {axis}, ") == 1
    x, w = rng.normal(size=shape), rng.normal(size=shape)
    xt = torch.tensor(x, requires_grad=True)

    def step(xt, wt):
        return f(xt, wt)

    if compiled:
        torch._dynamo.reset()
        step = torch.compile(step, dynamic=False)
    value = step(xt, torch.tensor(w))
    (grad,) = torch.autograd.grad(value, [xt])
    want_value, want_grad = _reference(x, w, axis, descending=axis == 1)
    np.testing.assert_allclose(value.item(), want_value, rtol=1e-12)
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=1e-12, atol=1e-14)


@needs("torch")
@pytest.mark.parametrize(
    "spec",
    [
        # whole rows: fewer indices than axes
        "pred x: float[C, D]\ntarget y: int[B]\nloss = sum(x[y])\n",
        # the index not of the output's shape (one row of positions for every sample)
        "pred x: float[B, N]\ntarget k: int[N]\nloss = sum(x[arange(B)[:, None], k[None, :]])\n",
        # an arange laid along another axis than its own
        "pred x: float[N, N]\ntarget k: int[N, N]\nloss = sum(x[k, arange(N)[:, None]])\n",
    ],
    ids=["whole_rows", "broadcast_index", "arange_on_another_axis"],
)
def test_any_other_gather_stays_advanced_indexing(spec):
    f = lossdsl.compile(spec, backend="torch")
    assert "torch.gather(v_x" not in f.source
