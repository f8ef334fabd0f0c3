"""The lowering passes (lossdsl/passes.py), through their public entry points: `lower(checked)`
gives the IR every backend prints, `guard_wheres` guards the lanes a `where` does not take,
`select_kernels` marks fused losses. Each test builds a small spec, lowers it, and asserts on
the IR: which functions appear, what was folded, where guards were put; where a rewrite is
there for a value (overflow, a gradient at 0), the value is checked too, against NumPy."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import lossdsl
from lossdsl.ir import Apply, Arg, Const, Gather, Node, topological
from lossdsl.kernels import select_kernels
from lossdsl.passes import guard_wheres, lower

from conftest import needs, spec


def lowered(text: str, **kwargs) -> Node:
    return lower(lossdsl.check(spec(text)), **kwargs)


def fns(root: Node) -> Counter:
    """How many distinct nodes apply each function (a shared node counts once)."""
    return Counter(n.fn for n in topological(root) if isinstance(n, Apply))


def applies(root: Node, fn: str) -> list[Apply]:
    return [n for n in topological(root) if isinstance(n, Apply) and n.fn == fn]


def consts(root: Node) -> list:
    return [n.value for n in topological(root) if isinstance(n, Const)]


def numpy_value(text: str, **args):
    return lossdsl.compile(spec(text), backend="numpy")(**args)


def is_arg(node: Node, name: str) -> bool:
    return isinstance(node, Arg) and node.name == name


# ---- stable forms (docs/language.md §4) -------------------------------------------------------

Z = "pred z: float[B, C]\n"


@pytest.mark.parametrize("body, stable, gone", [
    ("log(softmax(z, axis=C))", "log_softmax", {"log", "softmax"}),
    ("log(sigmoid(z))", "log_sigmoid", {"log", "sigmoid"}),
    ("log(1 - sigmoid(z))", "log_sigmoid", {"log", "sigmoid"}),
    ("log(sum(exp(z), axis=C))", "logsumexp", {"log", "exp", "sum"}),
    ("log(1 + abs(z))", "log1p", {"log"}),
    ("log(abs(z) + 1)", "log1p", {"log"}),
    ("log(1 + exp(z))", "softplus", {"log", "exp"}),
])
def test_log_of_a_known_form_is_lowered_to_its_stable_function(body, stable, gone):
    root = lowered(Z + f"loss = mean({body})")
    found = fns(root)
    assert found[stable] == 1, found
    assert not gone & set(found), found


def test_log_of_one_minus_sigmoid_is_log_sigmoid_of_minus_z():
    (ls,) = applies(lowered(Z + "loss = mean(log(1 - sigmoid(z)))"), "log_sigmoid")
    (operand,) = ls.args
    assert isinstance(operand, Apply) and operand.fn == "neg" and is_arg(operand.args[0], "z")


def test_log_softmax_keeps_the_axis_of_the_softmax():
    (ls,) = applies(lowered(Z + "loss = mean(log(softmax(z, axis=B)))"), "log_softmax")
    assert ls.attr("axis") == 0


@pytest.mark.parametrize("body", [
    "log(softmax(z, axis=C) + 0.5)",  # not a log of a softmax
    "log(2 - sigmoid(z))",  # not 1 - sigmoid
    "log(sum(square(z), axis=C))",  # not a sum of exp
])
def test_a_log_that_is_not_one_of_the_forms_stays_a_log(body):
    found = fns(lowered(Z + f"loss = mean({body})"))
    assert found["log"] == 1
    assert not {"log_softmax", "log_sigmoid", "logsumexp", "log1p", "softplus"} & set(found), found


def test_the_stable_forms_stay_finite_where_the_written_form_overflows():
    z = np.array([[1000.0, -1000.0, 0.0]])
    cases = {  # spec body -> its value, from the formula in exact arithmetic
        "log(1 + exp(z))": np.logaddexp(0, z),
        "log(sigmoid(z))": -np.logaddexp(0, -z),
        "log(1 - sigmoid(z))": -np.logaddexp(0, z),
        "log(softmax(z, axis=C))": z - np.logaddexp.reduce(z, axis=1, keepdims=True),
        "log(sum(exp(z), axis=C))": np.logaddexp.reduce(z, axis=1),
    }
    for body, want in cases.items():
        value = numpy_value(Z + f"loss = mean({body})", z=z)
        assert np.isfinite(value), body
        np.testing.assert_allclose(value, np.mean(want), rtol=1e-12, err_msg=body)


# ---- small powers and std ------------------------------------------------------------------------

X = "pred x: float[N]\n"


def test_x_to_the_zero_is_ones_without_a_power():
    root = lowered(X + "loss = mean(x ^ 0 + x)")
    assert fns(root)["ones_like"] == 1 and "pow" not in fns(root)


def test_x_to_the_one_is_x_itself():
    root = lowered(X + "loss = mean(x ^ 1)")
    assert "pow" not in fns(root)
    (m,) = applies(root, "mean")
    assert is_arg(m.args[0], "x")


def test_x_squared_is_square():
    root = lowered(X + "loss = mean(x ^ 2)")
    assert fns(root)["square"] == 1 and "pow" not in fns(root)


@pytest.mark.parametrize("exponent", ["3", "0.5", "-1", "2.5"])
def test_other_powers_stay_powers(exponent):
    assert fns(lowered(X + f"loss = mean(abs(x) ^ {exponent})"))["pow"] == 1


def test_std_is_the_guarded_root_of_var():
    root = lowered(X + "loss = std(x)")
    found = fns(root)
    assert "std" not in found and found["var"] == 1 and found["sqrt"] == 1
    (sqrt,) = applies(root, "sqrt")
    guard = sqrt.args[0]  # sqrt(where(var > 0, ..., 1)): the root never sees 0
    assert isinstance(guard, Apply) and guard.fn == "where"
    assert isinstance(guard.args[2], Const) and guard.args[2].value == 1.0
    (var,) = applies(root, "var")
    spread = guard.args[0]
    assert isinstance(spread, Apply) and spread.fn == "gt" and spread.args[0] is var


@needs("torch")
def test_the_gradient_of_std_is_zero_where_the_spread_is_zero():
    import torch

    f = lossdsl.compile(spec(X + "loss = std(x)"), backend="torch")
    x = torch.full((4,), 2.5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(x=x), [x])
    assert torch.equal(g, torch.zeros_like(g))
    y = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(x=y), [y])
    ref = y.detach().clone().requires_grad_(True)
    (want,) = torch.autograd.grad(torch.std(ref, unbiased=False), [ref])
    torch.testing.assert_close(g, want)


# ---- where guards ----------------------------------------------------------------------------------

def _where_and(root: Node, fn: str) -> tuple[Apply, Apply]:
    """The user's `where` (the last one, at the top) and the single `fn` below it."""
    (op,) = applies(root, fn)
    return applies(root, "where")[-1], op


def test_log_inside_a_branch_sees_one_in_the_lanes_the_branch_does_not_take():
    root = lowered(X + "loss = mean(where(x > 0, log(x), 0.0))")
    user_where, log = _where_and(root, "log")
    guard = log.args[0]
    assert isinstance(guard, Apply) and guard.fn == "where", guard
    assert guard.args[0] is user_where.args[0]  # the branch's own condition
    assert is_arg(guard.args[1], "x") and guard.args[2].value == 1.0


def test_the_divisor_in_the_other_branch_is_guarded_by_the_negated_condition():
    root = lowered(X + "input d: float[N]\nloss = mean(where(d == 0, x, x / d))")
    user_where, div = _where_and(root, "div")
    assert is_arg(div.args[0], "x")  # only the divisor has a restricted domain
    guard = div.args[1]
    assert isinstance(guard, Apply) and guard.fn == "where" and guard.args[2].value == 1.0
    negated = guard.args[0]  # not(d == 0), its `d` read in the branch, so itself guarded
    assert isinstance(negated, Apply) and negated.fn == "not"
    assert isinstance(negated.args[0], Apply) and negated.args[0].fn == user_where.args[0].fn == "eq"


def test_ops_outside_a_where_are_not_guarded():
    root = lowered(X + "loss = mean(log(abs(x) + 0.5) + sqrt(abs(x)))")
    assert "where" not in fns(root)


def test_a_pick_index_in_a_branch_is_guarded_with_zero():
    root = lowered("pred p: float[B, C]\ninput k: int[B]\ninput ok: bool[B]\n"
                   "loss = mean(where(ok, pick(p, k), 0.0))")
    (pick,) = applies(root, "pick")
    guard = pick.args[1]
    assert isinstance(guard, Apply) and guard.fn == "where" and is_arg(guard.args[1], "k")
    assert guard.args[2].value == 0 and is_arg(guard.args[0], "ok")


def test_a_gather_index_in_a_branch_is_guarded_with_zero():
    root = lowered("pred x: float[B]\ninput w: float[C]\ninput k: int[B]\n"
                   "loss = mean(where(k >= 0, w[k] * x, x))")
    (gather,) = [n for n in topological(root) if isinstance(n, Gather)]
    guard = gather.indices[0]
    assert isinstance(guard, Apply) and guard.fn == "where" and is_arg(guard.args[1], "k")


def test_data_read_in_a_branch_is_guarded_but_the_pred_is_not():
    # a missing label (NaN) in the lanes not taken must not reach the gradient as 0 * NaN
    root = lowered("pred yhat: float[B]\ntarget y: float[B]\nloss = mean(where(y == y, (yhat - y)^2, 0.0))")
    (sub,) = applies(root, "sub")
    assert is_arg(sub.args[0], "yhat")
    guard = sub.args[1]
    assert isinstance(guard, Apply) and guard.fn == "where" and is_arg(guard.args[1], "y")
    assert guard.args[2].value == 0.0


def test_guard_wheres_guards_domains_or_data_as_asked():
    checked = lossdsl.check(spec("pred x: float[N]\ntarget t: float[N]\nloss = mean(where(t > 0, log(x) * t, 0.0))"))

    def guarded_operands(root):
        return {("log" if a is log.args[0] else "t") for log in applies(root, "log")
                for m in applies(root, "mul") for a in (log.args[0], m.args[1])
                if isinstance(a, Apply) and a.fn == "where"}

    assert guarded_operands(guard_wheres(checked.loss)) == {"log"}
    assert guarded_operands(guard_wheres(checked.loss, domains=False, data=True)) == {"t"}
    assert guarded_operands(guard_wheres(checked.loss, domains=False)) == set()


def test_a_guarded_where_gives_the_values_of_the_taken_branch():
    x = np.array([-1.0, 0.0, 2.0, np.e])
    value = numpy_value(X + "loss = mean(where(x > 0, log(x), 0.0))", x=x)
    np.testing.assert_allclose(value, np.mean([0.0, 0.0, np.log(2.0), 1.0]), rtol=1e-12)


@needs("torch")
def test_the_gradient_through_a_guarded_log_is_zero_not_nan_in_the_lanes_not_taken():
    import torch

    f = lossdsl.compile(spec(X + "loss = sum(where(x > 0, log(x), 0.0))"), backend="torch")
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(f(x=x), [x])
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64))


# ---- constant folding --------------------------------------------------------------------------------

def test_a_scalar_expression_of_literals_is_folded_to_one_literal():
    root = lowered(X + "loss = mean(x) * (2.0 * 3.0 + log(1.0) - sqrt(4.0))")
    assert 4.0 in consts(root)
    assert not {"log", "sqrt"} & set(fns(root)) and fns(root)["mul"] == 1


def test_a_literal_condition_picks_its_branch():
    root = lowered(X + "loss = mean(where(1.0 < 2.0, x, -x))")
    assert "where" not in fns(root) and "neg" not in fns(root)


def test_literals_outside_the_domain_are_not_folded():
    root = lowered(X + "loss = mean(x) + sqrt(-1.0) + 1.0 / 0.0")
    found = fns(root)
    assert found["sqrt"] == 1 and found["div"] == 1


def test_folding_keeps_integer_arithmetic_integer():
    root = lowered("pred x: float[B]\ninput k: int[B]\nloss = mean(where(k > 7 - 2 * 3, x, 0.0))")
    assert "sub" not in fns(root)
    (gt,) = applies(root, "gt")
    folded = gt.args[1]
    assert isinstance(folded, Const) and folded.value == 1 and type(folded.value) is int


# ---- casts -----------------------------------------------------------------------------------------

def test_int_and_bool_operands_of_float_arithmetic_are_cast_explicitly():
    root = lowered("pred x: float[B]\ninput k: int[B]\ninput m: bool[B]\n"
                   "loss = mean(x * k + x * float(m))")
    found = fns(root)
    assert found["cast_float"] == 2 and "float" not in found
    casts = {a.name for c in applies(root, "cast_float") for a in c.args if isinstance(a, Arg)}
    assert casts == {"k", "m"}


def test_an_index_keeps_its_integer_dtype():
    root = lowered("pred p: float[B, C]\ninput k: int[B]\nloss = mean(pick(p, k))")
    assert "cast_float" not in fns(root)


# ---- common subexpressions ----------------------------------------------------------------------

def test_a_def_used_twice_on_the_same_operands_is_computed_once():
    root = lowered("pred yhat: float[B]\ntarget y: float[B]\ndef sq(a, b) = (a - b)^2\n"
                   "loss = mean(sq(yhat, y)) + sum(sq(yhat, y))")
    found = fns(root)
    assert found["sub"] == 1 and found["square"] == 1


def test_different_operands_are_not_shared():
    root = lowered("pred yhat: float[B]\ntarget y: float[B]\ndef sq(a, b) = (a - b)^2\n"
                   "loss = mean(sq(yhat, y)) + mean(sq(y, yhat))")
    assert fns(root)["sub"] == 2


# ---- kernels --------------------------------------------------------------------------------------

MSE = "pred a: float[B, D]\ntarget b: float[B, D]\nloss = mean((a - b)^2)"


def test_lower_marks_a_kernel_only_when_the_backend_has_it():
    assert "kernel" not in fns(lowered(MSE))
    assert "kernel" not in fns(lowered(MSE, kernels={"l1": {"mean"}}))
    (k,) = applies(lowered(MSE, kernels={"mse": {"mean"}}), "kernel")
    assert k.attr("kernel") == "mse" and k.attr("reduction") == "mean"
    assert [a.name for a in k.args] == ["a", "b"]


def test_without_the_mean_reduction_the_per_element_kernel_is_marked_under_the_mean():
    root = lowered(MSE, kernels={"mse": {"none"}})
    (k,) = applies(root, "kernel")
    assert k.attr("reduction") == "none"
    assert isinstance(root, Apply) and root.fn == "mean" and root.args[0] is k


def test_a_kernel_is_not_marked_for_a_reduction_the_backend_lacks():
    assert "kernel" not in fns(lowered(MSE, kernels={"mse": {"weighted_mean"}}))


def test_select_kernels_without_kernels_changes_nothing():
    root = lowered(MSE)
    assert select_kernels(root, {}) is root


def test_a_kernel_keeps_the_decomposed_form_it_replaces():
    (k,) = applies(lowered(MSE, kernels={"mse": {"mean"}}), "kernel")
    decomposed = k.attr("decomposed")
    assert fns(decomposed)["square"] == 1 and fns(decomposed)["mean"] == 1


def test_the_largest_match_wins():
    # a per-element mse inside a full mean: one kernel with the mean, not a mean of a kernel
    (k,) = applies(lowered(MSE, kernels={"mse": {"mean", "none"}}), "kernel")
    assert k.attr("reduction") == "mean"
