"""The function table is the one place functions are defined: every entry has every rule the
passes read (or a named opt-out), documentation, and a spelling on every backend that can
meet it."""

from __future__ import annotations

import pytest

from lossdsl.functions import ELEMENTWISE, FUNCTIONS, LOCAL, MIXES, REDUCES, ROWS, RULE_KINDS, USER_FUNCTIONS, NoRule
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


@pytest.mark.parametrize("kind", RULE_KINDS)
def test_every_function_has_every_rule_or_a_named_opt_out(kind):
    # A rule left out by mistake is a silent bug (a new function reducing along an axis that the
    # sharding pass treated as elementwise would compute per replica): each entry must give the
    # rule, or say with NoRule why it has none.
    for f in FUNCTIONS.values():
        rule = getattr(f, kind)
        if isinstance(rule, NoRule):
            assert rule.reason.strip(), f"{f.name}: an opt-out from `{kind}` says why"
        elif kind == "lanes":
            assert callable(rule) or rule in (ELEMENTWISE, REDUCES, ROWS, MIXES), (f.name, rule)
        elif kind == "sharding":
            assert callable(rule) or rule == LOCAL, (f.name, rule)
        else:
            assert callable(rule), (f.name, kind, rule)


def test_a_function_with_a_gradient_says_how_it_flows_or_who_differentiates_it():
    for f in FUNCTIONS.values():
        if f.grad_args:
            assert callable(f.vjp) or (isinstance(f.vjp, NoRule) and f.vjp.reason), f.name
        else:
            assert isinstance(f.vjp, NoRule), f"{f.name} stops the gradient but has a backward rule"


def test_only_lane_wise_functions_need_no_sharding_rule():
    # A function whose output lanes read other lanes must say what happens when they are on
    # other replicas; `LOCAL` is for functions that read only their own lanes (or reorder axes).
    for f in FUNCTIONS.values():
        if f.sharding == LOCAL and f.lanes != ELEMENTWISE:
            assert f.name == "transpose", f"{f.name}: lanes {f.lanes!r} with no sharding rule"


def test_reductions_and_index_readers_carry_the_facts_the_passes_need():
    for f in FUNCTIONS.values():
        if f.lanes == REDUCES:
            assert f.params[0].name == "x" and any(p.name == "axis" for p in f.params), f.name
        if f.keep_dtype:
            assert all(i < len(f.tensor_params) for i in f.keep_dtype), f.name
    # every operand read as an index keeps its dtype, and guarded lanes give it a safe value
    for f in FUNCTIONS.values():
        if f.index_operands is not None:
            assert f.keep_dtype, f.name


def test_a_missing_rule_is_refused_when_the_entry_is_made():
    from lossdsl.functions.shapes import same_type
    from lossdsl.functions.table import Function, Param

    with pytest.raises(TypeError):
        Function("cosh2", (Param("x"),), "elementwise", same_type, "hyperbolic cosine")  # type: ignore[call-arg]


def test_user_functions_are_those_of_the_contract():
    contract = {"abs", "sign", "exp", "expm1", "log", "log1p", "sqrt", "square", "sin", "cos", "tanh", "sigmoid",
                "log_sigmoid", "softplus", "relu", "floor", "ceil", "round", "minimum", "maximum", "clip", "where",
                "sum", "mean", "prod", "max", "min", "logsumexp", "var", "std", "norm", "argmax", "argmin",
                "softmax", "log_softmax", "cumsum", "pick", "one_hot", "dot", "transpose", "segment_sum",
                "segment_mean", "float", "int", "stop_gradient"}
    assert contract <= set(USER_FUNCTIONS)


def _unary_float_functions():
    from lossdsl.functions.shapes import predicate  # bool results (`isnan`): not multiplied by a float

    return sorted(name for name, f in USER_FUNCTIONS.items()
                  if len(f.tensor_params) == 1 and f.group in ("elementwise", "gradient") and name not in LOWERED_AWAY
                  and f.rule is not predicate)


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


def test_sqrt_of_a_positive_operand_is_positive_in_the_domain_analysis():
    """sqrt is increasing: `x / sqrt(s + eps)` divides by something positive (no W701), while
    `x / sqrt(s)` may still divide by 0."""
    import lossdsl

    head = "pred x: float[B, D]\nparam eps: float = 1e-12\n"
    safe = lossdsl.check(head + "loss = sum(x, axis=D) / sqrt(sum(x^2, axis=D) + eps)\n")
    unsafe = lossdsl.check(head + "loss = sum(x, axis=D) / sqrt(sum(x^2, axis=D)) + eps\n")
    assert [w.code for w in safe.warnings] == []
    assert [w.code for w in unsafe.warnings] == ["W701"]
