"""PyTorch's derived backward (lossdsl/autodiff.py): where no fused kernel matches and every
operation has a rule, the loss is one autograd.Function whose backward was derived from the
IR at compile time. Its values and gradients are the parity suite's business (it runs through
this path); here: when it is used, what it saves, and its limits."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl

from conftest import needs

ROBUST = ("pred yhat: float[B, D]\ntarget y: float[B, D]\nlet r = abs(yhat - y)\n"
          "loss = mean(log(1 + r^2) + 0.1 * relu(r - 2.0) + where(r > 1.0, sqrt(r), r))\n")


@needs("torch")
def test_a_loss_without_a_fused_kernel_gets_a_derived_backward():
    f = lossdsl.compile(ROBUST, backend="torch")
    assert "class _Loss(torch.autograd.Function)" in f.source
    assert "rt.plain_backward" in f.source  # the graph of the gradient, when asked for, is autograd's
    assert "class _Loss" not in lossdsl.compile(ROBUST, backend="torch", fused_backward=False).source
    # A fused kernel, or an operation with no rule (a segment sum), keeps PyTorch's autograd.
    assert "class _Loss" not in lossdsl.compile("pred a: float[N]\ntarget b: float[N]\nloss = mean((a - b)^2)\n",
                                                backend="torch").source
    from conftest import EXAMPLES

    assert "class _Loss" not in lossdsl.compile(EXAMPLES / "group_weighted_cce.loss", backend="torch").source


@needs("torch")
def test_derived_and_autograd_gradients_agree_including_kinks(monkeypatch, rng):
    import torch

    import lossdsl.codegen

    monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 1)  # the derived backward at this size too
    yhat = rng.normal(size=(6, 4)) * 3
    y = yhat.copy()
    y[0, :] = yhat[0, :] - np.array([0.0, 1.0, 2.0, -1.0])  # r at 0, and at the knots of where and relu
    grads = []
    for fused in (True, False):
        f = lossdsl.compile(ROBUST, backend="torch", fused_backward=fused)
        a = torch.tensor(yhat, requires_grad=True)
        v = f(a, torch.tensor(y))
        assert (type(v.grad_fn).__name__ == "_LossBackward") == fused
        v.backward()
        grads.append((float(v), a.grad.numpy().copy()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-12)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12, atol=1e-15)


@needs("torch")
def test_the_forward_saves_only_what_the_backward_reads():
    f = lossdsl.compile("pred x: float[N]\nloss = sum(exp(x) * 2 + x)\n", backend="torch")
    saved = [line.strip() for line in f.source.splitlines() if "rt.save(" in line]
    assert saved == ["rt.save(ctx, (t1,), (v_x,))"]  # exp(x), its own derivative; and the argument


@needs("torch")
def test_a_second_derivative_through_the_derived_backward_is_autograds():
    import torch

    x = torch.randn(5, requires_grad=True)
    for fused in (True, False):
        f = lossdsl.compile("pred x: float[N]\nloss = sum(x^3)\n", backend="torch", fused_backward=fused)
        assert ("class _Loss" in f.source) == fused
        (g,) = torch.autograd.grad(f(x), [x], create_graph=True)
        (gg,) = torch.autograd.grad(g.sum(), [x])
        torch.testing.assert_close(gg, 6 * x.detach())


@needs("torch")
def test_the_derived_backward_runs_under_torch_compile():
    import torch

    f = lossdsl.compile(ROBUST, backend="torch")
    a, b = torch.randn(8, 3, requires_grad=True), torch.randn(8, 3)

    def step(a):
        v = f(a, b)
        (g,) = torch.autograd.grad(v, [a])
        return v, g

    eager = step(a)
    compiled = torch.compile(step, backend="aot_eager")(a)
    for x, y in zip(eager, compiled):
        torch.testing.assert_close(x, y)


@needs("torch")
def test_small_inputs_take_the_plain_path_and_large_ones_the_derived_one(monkeypatch, rng):
    import torch

    import lossdsl.codegen

    monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 100)
    f = lossdsl.compile(ROBUST, backend="torch")
    assert "numel() < 100" in f.source
    for rows in (3, 40):  # 12 elements: plain; 160: derived
        a = torch.tensor(rng.normal(size=(rows, 4)), requires_grad=True)
        b = torch.tensor(rng.normal(size=(rows, 4)))
        v = f(a, b)
        assert (type(v.grad_fn).__name__ == "_LossBackward") == (rows == 40)
        (g,) = torch.autograd.grad(v, [a])
        ref = lossdsl.compile(ROBUST, backend="torch", fused_backward=False)
        (g2,) = torch.autograd.grad(ref(a, b), [a])
        torch.testing.assert_close(g, g2)


@needs("torch")
@pytest.mark.parametrize("width", [5, 4001])
def test_a_backward_that_needs_a_size_only_torch_knows_falls_back_to_torch_autograd(width):
    """A stepped slice's size (⌈H/2⌉) cannot be printed in a derived backward: the loss still
    compiles, and torch's autograd gives the gradient, at any size."""
    import torch

    f = lossdsl.compile("pred x: float[B, H]\nloss = mean(x[:, ::2] ^ 2)\n", backend="torch")
    x = torch.randn(3, width, dtype=torch.float64, requires_grad=True)
    f(x).backward()
    kept = x.detach()[:, ::2]
    expected = torch.zeros_like(x)
    expected[:, ::2] = 2 * kept / kept.numel()
    torch.testing.assert_close(x.grad, expected)


@needs("torch")
def test_kl_div_guards_its_target_once_and_its_backward_is_one_masked_product(rng):
    """A comparison's operands get no data guard (no gradient flows through a bool), and the
    derived backward reads `where(c, where(c, x, _), y)` as `where(c, x, y)`: the values and
    gradients stay those of the spec, 0 in the lanes where the target is 0, even at log_q = -inf."""
    import torch

    import lossdsl.std

    f = lossdsl.compile(lossdsl.std.path("kl_div"), backend="torch")
    assert "0.0 < torch.where(" not in f.source, f.source
    backward = f.source.split("def backward(", 1)[1].split("\ndef ", 1)[0]
    assert "torch.where(t1, torch.where(t1" not in backward, backward
    p = rng.uniform(0.1, 1.0, (300, 300))
    p[:, :5] = 0.0
    log_q = np.log(rng.uniform(0.1, 1.0, (300, 300)))
    log_q[0, 0] = -np.inf  # a target of 0 where the model gives 0: the term is 0, its gradient too
    x = torch.tensor(log_q, requires_grad=True)
    value = f(x, torch.tensor(p), reduction="none")
    value.sum().backward()
    safe = np.where(p > 0, p, 1.0)
    want = np.sum(np.where(p > 0, p * (np.log(safe) - np.where(p > 0, log_q, 0.0)), 0.0), axis=1)
    np.testing.assert_allclose(value.detach().numpy(), want, rtol=1e-12)
    np.testing.assert_array_equal(x.grad.numpy(), -p)


SMOOTH_UNITS = ("pred x: float[B, D]\ntarget y: float[B, D]\n"
                "loss = mean(relu(1 - y * x)^2 + sigmoid(x) * y + tanh(x - y), axis=D)\n")


@needs("torch")
def test_relu_sigmoid_and_tanh_gradients_are_torchs_own_backward_kernels(monkeypatch, rng):
    """Each is one pass over the data in the derived backward (a mask made, cast and multiplied
    was three, and torch.where is many times slower than either on the CPU), with the gradients
    of torch's autograd, relu's kink included."""
    import torch

    import lossdsl.codegen

    monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", 1)
    f = lossdsl.compile(SMOOTH_UNITS, backend="torch")
    backward = f.source.split("def backward(", 1)[1].split("\ndef ", 1)[0]
    for kernel in ("threshold_backward", "sigmoid_backward", "tanh_backward"):
        assert f"torch.ops.aten.{kernel}(" in backward, backward
    assert "> 0.0).to(" not in backward and "1.0 - t" not in backward, backward
    x = rng.normal(size=(7, 5))
    y = np.sign(rng.normal(size=(7, 5)))
    x[0, :] = y[0, :]  # 1 - y * x exactly 0: relu's kink
    grads = []
    for fused in (True, False):
        g = lossdsl.compile(SMOOTH_UNITS, backend="torch", fused_backward=fused)
        a = torch.tensor(x, requires_grad=True)
        per_sample = g(a, torch.tensor(y), reduction="none")
        assert (type(per_sample.grad_fn).__name__ == "_LossBackward") == fused
        v = per_sample.sum()
        (d,) = torch.autograd.grad(v, [a])
        grads.append((float(v), d.numpy()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-12)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12, atol=1e-15)


@needs("torch")
def test_a_literal_factor_scales_the_reduced_gradient_before_it_is_spread_out():
    """d/dx mean(relu(1 - y * x)^2) is -2 * relu(1 - y * x) * y / D: the -2 / D multiplies the
    incoming per-sample gradient (B values), not a tensor of B * D, and the sign is no pass of
    its own."""
    import lossdsl.std

    f = lossdsl.compile(lossdsl.std.path("squared_hinge"), backend="torch")
    backward = f.source.split("def backward(", 1)[1].split("\ndef ", 1)[0]
    assert "rt.unreduce(-2.0 * (_g / " in backward, backward
    assert "return -" not in backward and "-(" not in backward and "2.0 * (rt.unreduce" not in backward, backward


def test_a_term_two_gradient_rules_build_alike_is_built_once():
    """x * x gives x the gradient g * x from each operand: one node, added to itself."""
    from lossdsl import pipeline
    from lossdsl.autodiff import derive
    from lossdsl.ir import Apply, Arg, topological

    root = pipeline.lower(lossdsl.check("pred x: float[N]\nloss = sum(x * x * 3.0)\n")).root
    x = next(n for n in topological(root) if isinstance(n, Arg) and n.name == "x")
    derivative = derive(root, [x])
    assert derivative is not None
    grad = derivative.grads[("x", ())]
    assert isinstance(grad, Apply) and grad.fn == "add" and grad.args[0] is grad.args[1]
