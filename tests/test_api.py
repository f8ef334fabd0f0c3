"""The Python API (docs/language.md §6): compiling, calling, call-time checks, reductions, params,
context, the quick form, the dtype policy and names that collide with Python's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError

from conftest import EXAMPLES, available, modules_imported_by, needs, spec

CE = spec("""
    pred yhat: float[B, C]
    target y: int[B]
    context class_w: float[C]
    param smoothing: float = 0.0
    let logp = log_softmax(yhat)
    loss = -(1 - smoothing) * pick(logp, y) * class_w[y] - smoothing * mean(logp, axis=C)
""")

ALL = [pytest.param(b, marks=pytest.mark.skipif(not available(b), reason=f"MISSING FRAMEWORK: {b} is not installed"))
       for b in ("numpy", "torch", "jax", "tensorflow")]


def np_ce(yhat, y, w, smoothing=0.0):
    logp = yhat - np.log(np.exp(yhat).sum(-1, keepdims=True))
    return -(1 - smoothing) * logp[np.arange(len(y)), y] * w[y] - smoothing * logp.mean(-1)


def data(rng, b=4, c=5):
    return rng.normal(size=(b, c)), rng.integers(0, c, b), rng.uniform(0.5, 2, c)


def err_of(fn, *args, **kwargs) -> LossError:
    with pytest.raises(LossError) as info:
        fn(*args, **kwargs)
    return info.value


# ---- compiling ----------------------------------------------------------------------------

def test_compile_takes_a_path_a_string_path_or_source(tmp_path):
    p = tmp_path / "m.loss"
    p.write_text("pred yhat: float[B]\ntarget y: float[B]\nloss = mean((yhat - y)^2)\n")
    for s in (p, str(p), p.read_text()):
        f = lossdsl.compile(s, backend="numpy")
        assert f(np.array([1.0, 2.0]), np.array([0.0, 0.0])) == 2.5


def test_missing_file_names_it():
    e = err_of(lossdsl.compile, "nowhere/missing.loss", backend="numpy")
    assert "nowhere/missing.loss" in str(e)


def test_unknown_backend_is_a_loss_error_with_a_suggestion():
    e = err_of(lossdsl.compile, EXAMPLES / "weighted_mse.loss", backend="pytorhc")
    assert e.first.code == "E810" and "torch" in e.first.help


def test_backend_aliases():
    if available("tensorflow"):
        assert lossdsl.compile(EXAMPLES / "weighted_mse.loss", backend="tf").backend == "tensorflow"
    assert lossdsl.compile(EXAMPLES / "weighted_mse.loss", backend="np").backend == "numpy"


def test_spec_errors_surface_at_compile():
    e = err_of(lossdsl.compile, "pred yhat: float[B]\nloss = mean(yhta)\n", backend="numpy")
    assert e.first.code == "E201"


def test_signature_source_and_arguments_are_exposed():
    f = lossdsl.compile(CE, backend="numpy", context={"class_w": np.ones(5)})
    assert f.signature == "(yhat: float[B, C], y: int[B], *, smoothing: float = 0.0) -> float[B]   " \
                          "[context: class_w: float[C]]"
    assert "def compute(" in f.source and "def entry(" in f.source
    assert [a["name"] for a in f.arguments] == ["yhat", "y", "class_w", "smoothing"]


# ---- calling --------------------------------------------------------------------------------

def test_call_positionally_by_name_and_params_by_keyword(rng):
    yhat, y, w = data(rng)
    f = lossdsl.compile(CE, backend="numpy", context={"class_w": w})
    expected = np_ce(yhat, y, w).mean()
    np.testing.assert_allclose(f(yhat, y), expected)
    np.testing.assert_allclose(f(y=y, yhat=yhat), expected)
    np.testing.assert_allclose(f(yhat, y, smoothing=0.1), np_ce(yhat, y, w, 0.1).mean())


@needs("torch")
def test_the_direct_call_to_a_fused_mean_binds_and_checks_as_the_general_one(rng):
    """The common call (every argument, the API's mean) goes straight to the generated entry:
    by position or by name, params at their current values, the same errors."""
    import torch

    import lossdsl.std

    f = lossdsl.compile(lossdsl.std.path("huber"), backend="torch")
    yhat, y = torch.tensor(rng.normal(size=(6, 3)) * 2), torch.tensor(rng.normal(size=(6, 3)))
    for delta in (1.0, 0.5):
        want = torch.nn.functional.huber_loss(yhat, y, delta=delta)
        torch.testing.assert_close(f(yhat, y), want)
        torch.testing.assert_close(f(y=y, yhat=yhat), want)
        torch.testing.assert_close(f(yhat, y, reduction="none").mean(), want)
        f.set_params(delta=0.5)
    misnamed = err_of(f, yhat=yhat, yy=y).first
    assert misnamed.code == "E802" and "`y`" in misnamed.help
    assert err_of(f, yhat.long(), y).first.code == err_of(f, yhat=yhat.long(), y=y).first.code == "E803"
    assert err_of(f, yhat, y[:, :2]).first.code == "E805"
    # no samples: the entry leaves the mean to the general call, by position and by name alike
    empty = torch.zeros(0, 3, dtype=torch.float64)
    torch.testing.assert_close(f(yhat=empty, y=empty), f(empty, empty))
    # a scalar loss: its value, whichever way it is called
    g = lossdsl.compile("pred a: float[N]\ntarget b: float[N]\nloss = mean((a - b)^2)\n", backend="torch")
    a, b = yhat[:, 0], y[:, 0]
    torch.testing.assert_close(g(a, b), g(b=b, a=a))
    torch.testing.assert_close(g(a, b), torch.mean((a - b) ** 2))
    assert err_of(g, a=a, c=b).first.code == "E802"


def test_params_bound_at_compile_and_changed_without_recompiling(rng):
    yhat, y, w = data(rng)
    f = lossdsl.compile(CE, backend="numpy", context={"class_w": w}, params={"smoothing": 0.2})
    np.testing.assert_allclose(f(yhat, y), np_ce(yhat, y, w, 0.2).mean())
    f.set_params(smoothing=0.3)
    np.testing.assert_allclose(f(yhat, y), np_ce(yhat, y, w, 0.3).mean())
    assert f.params == {"smoothing": 0.3}


SIZED_PARAMS = spec("""
    pred  yhat:    float[B]
    input group:   int[B]
    param alpha:   float = 0.1
    param group_w: float[G]
    loss = mean((1.0 + alpha) * yhat * group_w[group])
""")


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "tensorflow"])
@pytest.mark.parametrize(
    ("values", "code", "words"),
    [
        ({"group_w": "abc"}, "E803", ["group_w", "float"]),
        ({"alpha": [1.0, 2.0, 3.0]}, "E804", ["alpha", "rank 0"]),
        ({"group_w": [1.0, 2.0]}, "E805", ["G", "3"]),
        ({"group_w": [[1.0, 2.0, 3.0]]}, "E804", ["group_w", "rank 1"]),
        ({"gruop_w": [1.0, 2.0, 3.0]}, "E806", ["did you mean `group_w`"]),
    ],
)
def test_set_params_checks_each_value_as_compile_does_and_changes_nothing_on_error(backend, values, code, words):
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend}")
    f = lossdsl.compile(SIZED_PARAMS, backend=backend, params={"group_w": [1.0, 1.0, 1.0]})
    before = dict(f.params)
    valid = {"alpha": 0.5} if "alpha" not in values else {"group_w": [2.0, 2.0, 2.0]}
    with pytest.raises(LossError) as e:
        f.set_params(**valid, **values)
    assert e.value.first.code == code, str(e.value)
    text = str(e.value)
    assert all(w in text for w in words), text
    assert f.params == before  # the valid value given with it was not applied either


def test_a_param_without_default_must_be_bound():
    src = "pred yhat: float[B]\nparam alpha: float\nloss = alpha * mean(yhat)\n"
    f = lossdsl.compile(src, backend="numpy")
    e = err_of(f, np.ones(3))
    assert e.first.code == "E801" and "alpha" in e.first.message
    assert f(np.ones(3), alpha=2.0) == 2.0
    assert lossdsl.compile(src, backend="numpy", params={"alpha": 3.0})(np.ones(3)) == 3.0


def test_unknown_param_at_compile():
    e = err_of(lossdsl.compile, CE, backend="numpy", context={"class_w": np.ones(5)}, params={"smoothin": 1})
    assert e.first.code == "E806" and "smoothing" in e.first.help


def test_missing_and_extra_arguments(rng):
    yhat, y, w = data(rng)
    f = lossdsl.compile(CE, backend="numpy", context={"class_w": w})
    assert err_of(f, yhat).first.code == "E801"
    assert "y: int[B]" in err_of(f, yhat).first.message
    assert err_of(f, yhat, y, y).first.code == "E802"
    e = err_of(f, yhat, y, smoothng=0.1)
    assert e.first.code == "E802" and "smoothing" in e.first.help
    assert err_of(f, yhat, y, class_w=w).first.code == "E806"
    assert err_of(f, yhat, y, yhat=yhat).first.code == "E802"


def test_context_must_be_bound_and_fit(rng):
    yhat, y, w = data(rng)
    assert err_of(lossdsl.compile, CE, backend="numpy").first.code == "E806"
    assert err_of(lossdsl.compile, CE, backend="numpy", context={"class_w": w, "x": w}).first.code == "E806"
    assert err_of(lossdsl.compile, CE, backend="numpy", context={"class_w": np.ones((5, 1))}).first.code == "E804"


def test_a_size_mismatch_names_the_argument_the_dimension_and_both_sources(rng):
    yhat, y, w = data(rng)
    f = lossdsl.compile(CE, backend="numpy", context={"class_w": w})
    e = err_of(f, rng.normal(size=(4, 7)), y)
    assert e.first.code == "E805"
    assert e.first.message == "`C` is 5 from context `class_w` but 7 from `yhat` (axis 1)"
    text = str(e)
    assert "pred yhat: float[B, C]" in text and "^" in text
    e = err_of(f, yhat, y[:3])
    assert e.first.message == "`B` is 4 from `yhat` (axis 0) but 3 from `y` (axis 0)"


def test_rank_and_dtype_mistakes_are_loss_errors(rng):
    yhat, y, w = data(rng)
    f = lossdsl.compile(CE, backend="numpy", context={"class_w": w})
    assert err_of(f, yhat[0], y).first.code == "E804"
    e = err_of(f, yhat, y.astype(np.float64))
    assert e.first.code == "E803" and "int" in e.first.message
    assert err_of(f, yhat.astype(np.int64), y).first.code == "E803"
    assert err_of(f, "not a tensor", y).first.code == "E803"


def test_record_arguments(rng):
    f = lossdsl.compile(EXAMPLES / "weighted_mse.loss", backend="numpy")
    a, b, c = rng.normal(size=(3, 6))
    np.testing.assert_allclose(f(a, b, x={"feature": c}), np.mean(np.abs(c) * (b - a) ** 2))
    assert err_of(f, a, b, x={}).first.code == "E807"
    e = err_of(f, a, b, x={"feature": c, "featur": c})
    assert e.first.code == "E807"
    assert err_of(f, a, b, x=c).first.code == "E807"


def test_literal_sizes_and_index_bounds_are_checked_at_the_call():
    f = lossdsl.compile("pred p: float[B, 3]\nloss = mean(p)\n", backend="numpy")
    assert err_of(f, np.ones((2, 4))).first.code == "E805"
    g = lossdsl.compile("pred p: float[B, H]\nloss = mean(p[:, 2:])\n", backend="numpy")
    assert err_of(g, np.ones((2, 1))).first.code == "E805"
    assert g(np.ones((2, 3))) == 1.0


# ---- reductions -------------------------------------------------------------------------------

def test_reductions_of_a_per_sample_loss(rng):
    yhat, y, w = data(rng)
    sw = rng.uniform(0, 2, 4)
    f = lossdsl.compile(CE, backend="numpy", context={"class_w": w})
    per = np_ce(yhat, y, w)
    np.testing.assert_allclose(f(yhat, y), per.mean())
    np.testing.assert_allclose(f(yhat, y, reduction="sum"), per.sum())
    np.testing.assert_allclose(f(yhat, y, reduction="none"), per)
    np.testing.assert_allclose(f(yhat, y, sample_weight=sw), (sw * per).sum() / 4)  # divides by B
    np.testing.assert_allclose(f(yhat, y, sample_weight=sw, reduction="weighted_mean"), (sw * per).sum() / sw.sum())
    np.testing.assert_allclose(f(yhat, y, sample_weight=sw, reduction="none"), sw * per)
    np.testing.assert_allclose(f(yhat, y, sample_weight=np.zeros(4), reduction="weighted_mean"), 0.0)


def test_bad_reduction_and_sample_weight(rng):
    yhat, y, w = data(rng)
    f = lossdsl.compile(CE, backend="numpy", context={"class_w": w})
    assert err_of(f, yhat, y, reduction="avg").first.code == "E808"
    assert err_of(f, yhat, y, sample_weight=np.ones(3)).first.code == "E808"
    g = lossdsl.compile("pred yhat: float[B]\nloss = mean(yhat)\n", backend="numpy")
    assert err_of(g, np.ones(3), sample_weight=np.ones(3)).first.code == "E808"


# ---- the quick form -----------------------------------------------------------------------------

def test_quick_form_types_itself_from_the_first_call(rng):
    f = lossdsl.compile("mean(abs(x.feature) * (y - yhat)^2)", backend="numpy")
    a, b, c = rng.normal(size=(3, 5))
    np.testing.assert_allclose(f(a, b, x={"feature": c}), np.mean(np.abs(c) * (b - a) ** 2))
    np.testing.assert_allclose(f(yhat=a[:3], y=b[:3], x={"feature": c[:3]}),
                               np.mean(np.abs(c[:3]) * (b[:3] - a[:3]) ** 2))


def test_quick_form_checks_each_call(rng):
    f = lossdsl.compile("mean(w * (y_true - y_pred)^2)", backend="numpy")
    e = err_of(f, rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), w=rng.normal(size=4))
    assert e.first.code == "E401"
    assert f(np.ones((4, 3)), np.zeros((4, 3)), w=np.ones((4, 3))) == 1.0


def test_quick_form_needs_a_pred():
    assert err_of(lossdsl.compile, "mean(a - b)", backend="numpy").first.code == "E209"


# ---- dtype policy -----------------------------------------------------------------------------------

@needs("torch")
def test_torch_dtype_policy():
    import torch

    f = lossdsl.compile("pred yhat: float[B]\ntarget y: int[B]\nloss = mean(yhat * y / 2)\n", backend="torch")
    assert f(torch.ones(3, dtype=torch.float64), torch.ones(3, dtype=torch.int64)).dtype == torch.float64
    assert f(torch.ones(3, dtype=torch.float16), torch.ones(3, dtype=torch.int32)).dtype == torch.float32
    assert f(torch.ones(3, dtype=torch.bfloat16), torch.ones(3, dtype=torch.int64)).dtype == torch.float32
    h = torch.ones(3, dtype=torch.float16, requires_grad=True)
    f(h, torch.ones(3, dtype=torch.int64)).backward()
    assert h.grad.dtype == torch.float16


@needs("tensorflow")
def test_tensorflow_int_division_is_not_float64():
    import tensorflow as tf

    f = lossdsl.compile("pred yhat: float[B]\ninput k: int[B]\nloss = mean(yhat * (k / 2))\n", backend="tf")
    out = f(tf.ones(3), tf.constant([1, 2, 3]))
    assert out.dtype == tf.float32 and abs(float(out) - 1.0) < 1e-6


@pytest.mark.parametrize("backend", ALL)
def test_int_targets_widen_to_the_compute_dtype(backend):
    from harness import convert, to_numpy

    f = lossdsl.compile("pred yhat: float[B]\ntarget y: float[B]\nloss = mean((yhat - y)^2)\n", backend=backend)
    out = f(convert(backend, np.array([1.0, 2.0]), "float32"), convert(backend, np.array([1, 1]), "float32"))
    assert to_numpy(out) == 0.5


# ---- names that collide with Python or the frameworks ------------------------------------------

COLLIDING = spec("""
    pred lambda: float[B]
    target torch: float[B]
    input np: float[B]
    input tf: {jnp: float[B]}
    param rt: float = 1.0
    let out = (lambda - torch)^2 * np + tf.jnp * 0
    let compute = out * rt
    def entry(x) = x
    loss = mean(entry(compute))
""")


@pytest.mark.parametrize("backend", ALL)
def test_any_user_name_works_in_generated_code(backend):
    from harness import convert, to_numpy

    f = lossdsl.compile(COLLIDING, backend=backend)
    args = {"lambda": np.array([1.0, 3.0]), "torch": np.array([0.0, 1.0]), "np": np.array([2.0, 1.0]),
            "tf": {"jnp": np.array([5.0, 5.0])}}
    out = f(**{k: convert(backend, v, "float64") for k, v in args.items()})
    assert to_numpy(out) == (2.0 + 4.0) / 2


# ---- imports ----------------------------------------------------------------------------------

def test_numpy_backend_imports_no_framework():
    code = ("import numpy as np, lossdsl; f = lossdsl.compile('examples/weighted_mse.loss', backend='numpy');"
            "f(np.ones(2), np.ones(2), x={'feature': np.ones(2)})")
    assert modules_imported_by(code, ("torch", "tensorflow", "jax")) == []


@needs("torch")
def test_torch_backend_imports_only_torch():
    code = ("import torch, lossdsl; f = lossdsl.compile('examples/weighted_mse.loss', backend='torch');"
            "f(torch.ones(2), torch.ones(2), x={'feature': torch.ones(2)})")
    assert modules_imported_by(code, ("tensorflow", "jax")) == []


def test_loss_error_is_a_value_error():
    assert issubclass(LossError, ValueError)


def test_generated_source_is_valid_python_for_every_backend():
    import ast

    from lossdsl.api import generate_source

    for path in sorted(Path(EXAMPLES).glob("*.loss")):
        for backend in ("numpy", "torch", "jax", "tensorflow"):
            ast.parse(generate_source(path, backend))


@pytest.mark.parametrize("backend", ALL)
def test_python_number_params_keep_float64_precision(backend):
    """0.001 given as a Python float must not pass through float32 on its way to a float64 loss."""
    from harness import convert, to_numpy

    f = lossdsl.compile("pred x: float[N]\nparam eps: float = 0.001\nloss = mean(x) + eps\n", backend=backend)
    x = convert(backend, np.zeros(3), "float64")
    assert to_numpy(f(x)) == 0.001
    assert to_numpy(f(x, eps=0.003)) == 0.003
