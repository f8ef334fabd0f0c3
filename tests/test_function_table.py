"""The function table is the one place functions are defined: every entry has a rule and
documentation, and every backend can print every entry the lowering can leave for it."""

from __future__ import annotations

import pytest

from lossdsl.functions import FUNCTIONS, USER_FUNCTIONS
from lossdsl.printing import printer_for

# Replaced by the lowering passes before any printer sees them.
LOWERED_AWAY = {"float", "int"}
# Only in a backward derived from the IR, which only backends with FUSED_BACKWARD print.
BACKWARD_ONLY = {"sum_to", "unreduce", "index_grad"}


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "tensorflow"])
def test_every_function_has_a_spelling_on_every_backend(backend):
    printer = printer_for(backend)
    missing = []
    for name in FUNCTIONS:
        if name in LOWERED_AWAY or (name in BACKWARD_ONLY and not printer.FUSED_BACKWARD):
            continue
        if name in printer.FUNCTIONS or hasattr(printer, f"_fn_{name}") or hasattr(printer, f"_op_{name}") \
                or name in printer.OPERATORS or name in ("neg",):
            continue
        missing.append(name)
    assert not missing, f"{backend} cannot print {missing}"


def test_every_entry_is_documented_with_a_gradient_convention():
    for f in FUNCTIONS.values():
        assert f.doc and f.grad, f.name
        assert all(0 <= i < max(1, len(f.tensor_params)) for i in f.grad_args) or f.name == "kernel", f.name


def test_user_functions_are_those_of_the_contract():
    contract = {"abs", "sign", "exp", "expm1", "log", "log1p", "sqrt", "square", "sin", "cos", "tanh", "sigmoid",
                "log_sigmoid", "softplus", "relu", "floor", "ceil", "round", "minimum", "maximum", "clip", "where",
                "sum", "mean", "prod", "max", "min", "logsumexp", "var", "std", "norm", "argmax", "argmin",
                "softmax", "log_softmax", "cumsum", "pick", "one_hot", "dot", "transpose", "segment_sum",
                "segment_mean", "float", "int", "stop_gradient"}
    assert set(USER_FUNCTIONS) == contract


def _unary_float_functions():
    return sorted(name for name, f in USER_FUNCTIONS.items()
                  if len(f.tensor_params) == 1 and f.group in ("elementwise", "gradient") and name not in LOWERED_AWAY)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "tensorflow"])
def test_a_printed_function_binds_as_tightly_as_a_call(backend):
    # `f(a + b) * 2.0` must still multiply the whole of f(a + b) when f prints as something
    # other than a call (numpy's stop_gradient is the identity: once printed `a + b * 2.0`).
    import ast

    import lossdsl
    from lossdsl.ir import Apply, Arg, topological

    printer_cls = printer_for(backend)
    for name in _unary_float_functions():
        checked = lossdsl.check(f"pred a: float[B]\npred b: float[B]\nloss = mean({name}(a + b) * 2.0) + mean(a + b)\n")
        product = next(n for n in topological(checked.loss) if isinstance(n, Apply) and n.fn == "mul")
        names = {id(n): n.name for n in (product.args[0].args[0].args) if isinstance(n, Arg)}
        text = printer_cls(names).expr(product)
        tree = ast.parse(text, mode="eval").body
        assert isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Mult), f"{backend} {name}: {text}"
        assert isinstance(tree.right, ast.Constant) and tree.right.value == 2.0, f"{backend} {name}: {text}"
