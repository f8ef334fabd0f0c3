"""Code generation (lossdsl/codegen.py), through `lossdsl.compile` and
`lossdsl.api.generate_source` and the Python they produce: what `emit` prints is what
`compile` runs, shared subexpressions are computed once, sizes known at compile time are
bound before any argument is read, every argument is checked (rank, size, dtype, index
values) before `compute` runs, and torch's derived backward is there when asked for.

Structure is read by parsing the generated source with `ast`, not by matching its text, so
layout and naming changes do not break these tests; behaviour is checked by calling."""

from __future__ import annotations

import ast

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError
from lossdsl.api import generate_source

from conftest import EXAMPLES, available, needs, spec
from harness import BACKENDS, assert_close, compile_for, convert, value_and_grads

SHARED = spec("""
    pred   yhat: float[B, 3]
    target y:    float[B, 3]
    def sq(a, b) = tanh(a - b)^2
    let r = abs(yhat - 1.0)
    loss = mean(sq(yhat, y)) + 0.5 * sum(sq(yhat, y)) + mean(r)
""")
# The same sharing where the shared value is a loss a framework ships fused (mse).
SHARED_KERNEL = spec("""
    pred   yhat: float[B, 3]
    target y:    float[B, 3]
    def sq(a, b) = (a - b)^2
    loss = mean(sq(yhat, y)) + 0.5 * sum(sq(yhat, y))
""")

INDEXED = spec("""
    pred   p: float[B, C]
    target k: int[B]
    context w: float[C]
    input  v: float[C]
    param  s: float = 0.5
    loss = mean(-pick(p, k) * w[k]) * s + mean(v) * 0.0 + mean(p)
""")


def _require(backend: str) -> None:
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")


def function(source: str, name: str) -> ast.FunctionDef:
    tree = ast.parse(source)
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    return fn


def forward(source: str) -> ast.FunctionDef:
    """The function computing the loss: `compute`, or `_plain` where torch's `compute` only
    chooses between it and the derived backward."""
    tree = ast.parse(source)
    defined = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    return defined.get("_plain", defined["compute"])


def calls_named(tree: ast.AST, suffix: str) -> list[ast.Call]:
    """Calls of a function whose (dotted) name ends with `suffix` (np.square, tf.math.square...)."""
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name == suffix:
                out.append(n)
    return out


def assigned(fn: ast.FunctionDef) -> list[tuple[str, ast.expr]]:
    return [(t.id, n.value) for n in ast.walk(fn) if isinstance(n, ast.Assign)
            for t in n.targets if isinstance(t, ast.Name)]


def raised_code(f, *args, **kwargs) -> str:
    with pytest.raises(LossError) as info:
        f(*args, **kwargs)
    return info.value.first.code


# ---- what emit prints is what compile runs --------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_generate_source_is_the_code_compile_runs(backend):
    _require(backend)
    w = np.ones(4)
    assert generate_source(INDEXED, backend, context={"w": w}) == \
        compile_for(INDEXED, backend, context={"w": w}).source
    assert generate_source(SHARED, backend) == lossdsl.compile(SHARED, backend=backend).source


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_example_generates_python_with_compute_and_entry(backend):
    for path in sorted(EXAMPLES.glob("*.loss")):
        source = generate_source(path, backend)
        assert path.name in source.splitlines()[0] and backend in source.splitlines()[0], path
        function(source, "compute")
        entry = function(source, "entry")
        ret = entry.body[-1]
        assert isinstance(ret, ast.Return), path
        for other in (n for n in ast.walk(entry) if isinstance(n, ast.Return) and n is not ret):
            # the API's default mean of a per-sample loss (`entry(..., _mean=True)`), or None
            assert other.value is None or "compute_mean(" in ast.unparse(other.value) or \
                ast.unparse(other.value) == "None", (path, ast.unparse(other))
        call = ret.value
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "_guard_indices":
            # an index read: the loss is NaN where a check that could not raise found a bad id
            assert ast.unparse(call.args[1]) == "_unchecked", path
            call = call.args[0]
        assert isinstance(call, ast.Call) and getattr(call.func, "id", "") == "compute", path


# ---- common subexpressions ------------------------------------------------------------------

def operations_on_both(compute: ast.FunctionDef, a: str, b: str) -> list[str]:
    """The operations in `compute` that take the leaves named `a` and `b` directly (`yhat - y`,
    `F.mse_loss(yhat, y)`...): each computes something new from both."""
    (va,) = [x.arg for x in compute.args.args if x.arg.endswith("_" + a)]
    (vb,) = [x.arg for x in compute.args.args if x.arg.endswith("_" + b)]
    out = []
    for n in ast.walk(compute):
        operands = [n.left, n.right] if isinstance(n, ast.BinOp) else \
            list(n.args) + [k.value for k in n.keywords] if isinstance(n, ast.Call) else []
        names = {o.id for o in operands if isinstance(o, ast.Name)}
        if {va, vb} <= names:
            out.append(ast.unparse(n))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_subexpression_used_twice_is_computed_once(backend):
    compute = forward(generate_source(SHARED, backend))
    assert len(operations_on_both(compute, "yhat", "y")) == 1, ast.unparse(compute)
    assert len(calls_named(compute, "tanh")) == 1, ast.unparse(compute)
    assert len(calls_named(compute, "square")) == 1, ast.unparse(compute)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_shared_subexpression_is_computed_once_also_where_a_kernel_fuses_it(backend):
    compute = forward(generate_source(SHARED_KERNEL, backend))
    assert len(operations_on_both(compute, "yhat", "y")) == 1, ast.unparse(compute)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_shared_value_is_the_value_of_the_spec(backend, rng):
    _require(backend)
    yhat, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    t = np.tanh(yhat - y)
    want = np.mean(t ** 2) + 0.5 * np.sum(t ** 2) + np.mean(np.abs(yhat - 1.0))
    value, grads = value_and_grads(lossdsl.compile(SHARED, backend=backend), backend, {"yhat": yhat, "y": y},
                                   ["yhat"])
    assert_close(value, want, "float64", f"{backend} value")
    if backend != "numpy":
        n = yhat.size
        dt = 2 * t * (1 - t ** 2)
        assert_close(grads["yhat"], dt / n + 0.5 * dt + np.sign(yhat - 1.0) / n, "float64", f"{backend} gradient")


def test_a_let_is_named_after_itself_in_the_generated_code():
    compute = forward(generate_source(SHARED, "numpy"))
    names = [name for name, _ in assigned(compute)]
    assert any(name == "r" or name.endswith("_r") for name in names), names


# ---- the entry: sizes known at compile time, argument checks ------------------------------------

def test_the_entry_takes_the_call_arguments_in_declaration_order_then_the_params():
    entry = function(generate_source(INDEXED, "numpy", context={"w": np.ones(4)}), "entry")
    names = [a.arg for a in entry.args.args]
    # The context is bound at compile time; `_given` lets a module hand its buffers per call.
    assert [n.split("_", 1)[1] for n in names] == ["p", "k", "v", "s", "given"]
    assert [ast.unparse(d) for d in entry.args.defaults] == ["None"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_size_fixed_by_a_context_is_bound_before_any_argument_is_read(backend):
    entry = function(generate_source(INDEXED, backend, context={"w": np.ones(4)}), "entry")
    body = [ast.unparse(s) for s in entry.body]
    (bound,) = [i for i, s in enumerate(entry.body) if isinstance(s, ast.Assign)
                and isinstance(s.value, ast.Constant) and s.value.value == 4]
    first_read = min(i for i, s in enumerate(body) if "a_" in s)
    assert bound < first_read, body


@pytest.mark.parametrize("backend", BACKENDS)
def test_sizes_known_at_compile_time_are_checked_at_the_call(backend, rng):
    _require(backend)
    f = compile_for(INDEXED, backend, context={"w": np.ones(4)})
    p, k, v = rng.normal(size=(5, 4)), rng.integers(0, 4, 5), rng.normal(size=4)
    args = {"p": convert(backend, p, "float64"), "k": convert(backend, k, "float64"),
            "v": convert(backend, v, "float64")}
    assert np.isfinite(float(np.asarray(f(**args))))
    bad = dict(args, v=convert(backend, rng.normal(size=5), "float64"))
    assert raised_code(f, **bad) == "E805"  # v: [C] with C = 4 from the context
    bad = dict(args, p=convert(backend, rng.normal(size=(5, 3)), "float64"))
    assert raised_code(f, **bad) == "E805"


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_argument_is_checked_before_compute_runs(backend, rng):
    _require(backend)
    f = lossdsl.compile(SHARED, backend=backend)
    yhat, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))

    def c(x, dtype="float64"):
        return convert(backend, x, dtype)

    assert raised_code(f, yhat=c(yhat)) == "E801"  # y missing
    assert raised_code(f, yhat=c(yhat), y=c(y), z=c(y)) == "E802"
    assert raised_code(f, yhat=c(yhat[0]), y=c(y)) == "E804"  # rank 1 where 2 is declared
    assert raised_code(f, yhat=c(yhat), y=c(y[:, :2])) == "E805"  # the declared 3
    assert raised_code(f, yhat=c(yhat), y=c(y[:3])) == "E805"  # B bound by yhat
    assert raised_code(f, yhat=c(np.ones((4, 3), dtype=np.int64)), y=c(y)) == "E803"  # a pred is float


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_entry_checks_the_rank_of_each_argument_it_reads(backend):
    entry = function(generate_source(SHARED, backend), "entry")
    rank_checks = [c for c in calls_named(entry, "_fail_rank")]
    assert sorted(ast.literal_eval(c.args[0]) for c in rank_checks) == [0, 1]  # yhat and y, by position


# ---- index values -----------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_index_values_are_checked_unless_switched_off(backend, rng):
    _require(backend)
    ctx = {"w": np.ones(4)}
    checked = compile_for(INDEXED, backend, context=ctx)
    unchecked = lossdsl.compile(INDEXED, backend=backend, context={"w": convert(backend, ctx["w"], "float64")},
                                check_indices=False)
    assert calls_named(function(checked.source, "entry"), "_check_index")
    assert not calls_named(function(unchecked.source, "entry"), "_check_index")
    p, v = convert(backend, rng.normal(size=(3, 4)), "float64"), convert(backend, rng.normal(size=4), "float64")
    k = convert(backend, np.array([0, 4, 1]), "float64")  # 4 is outside C = 4
    assert raised_code(checked, p=p, k=k, v=v) == "E812"


# ---- torch's derived backward -----------------------------------------------------------------------

@needs("torch")
def test_torch_prints_a_derived_backward_only_when_asked_and_both_give_the_same_gradient(rng):
    src = spec("""
        pred   a: float[B]
        target b: float[B]
        loss = mean(0.5 * square(a - b) + abs(a))
    """)
    derived = lossdsl.compile(src, backend="torch")
    plain = lossdsl.compile(src, backend="torch", fused_backward=False)
    classes = [n for n in ast.walk(ast.parse(derived.source)) if isinstance(n, ast.ClassDef)]
    assert any(any(ast.unparse(b).endswith("autograd.Function") for b in c.bases) for c in classes)
    assert not [n for n in ast.walk(ast.parse(plain.source)) if isinstance(n, ast.ClassDef)]
    args = {"a": rng.normal(size=7), "b": rng.normal(size=7)}
    args["a"][0] = 0.0  # abs at 0: gradient 0 (docs/language.md §4)
    value, grads = value_and_grads(derived, "torch", args, ["a"])
    ref_value, ref_grads = value_and_grads(plain, "torch", args, ["a"])
    want = (args["a"] - args["b"]) / 7 + np.sign(args["a"]) / 7
    assert_close(value, ref_value, "float64", "value")
    assert_close(grads["a"], want, "float64", "derived gradient")
    assert_close(ref_grads["a"], want, "float64", "autograd gradient")
