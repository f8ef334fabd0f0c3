"""`lossdsl emit --standalone`: a module that needs only its framework. Every example and every
lossdsl.std loss is emitted for every installed backend, imported in a fresh interpreter where
lossdsl cannot be imported, and its value and gradients compared with `lossdsl.compile` on the
same inputs; its argument checks raise what the compiled loss raises."""

from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lossdsl
import lossdsl.std
from lossdsl import LossError
from lossdsl.api import generate_source
from lossdsl.cli import main
from lossdsl.sampling import random_inputs

from conftest import EXAMPLES, available, needs, spec
from harness import BACKENDS, GRAD_BACKENDS, assert_close, compile_for, to_numpy, value_and_grads

SPECS = {p.stem: p for p in sorted(EXAMPLES.glob("*.loss"))} | {
    f"std_{name}": lossdsl.std.path(name) for name in lossdsl.std.names()
}
SIZES = {"B": 5, "C": 3, "D": 4, "N": 4, "T": 6, "K": 3, "G": 3, "H": 3, "W": 4}

# Runs in a fresh interpreter (`python -I`), where importing lossdsl fails: it imports every
# module of one backend, calls each on its inputs, and writes values and gradients back.
WORKER = r'''
import importlib, importlib.abc, pickle, sys

class _NoLossdsl(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "lossdsl" or name.startswith("lossdsl."):
            raise ImportError("a standalone module imported " + name)
        return None

sys.meta_path.insert(0, _NoLossdsl())
backend, folder = sys.argv[1], sys.argv[2]
sys.path.insert(0, folder)
if backend == "jax":
    import jax
    jax.config.update("jax_enable_x64", True)
import numpy as np

def tensor(x):
    if isinstance(x, dict):
        return {k: tensor(v) for k, v in x.items()}
    if backend == "torch":
        import torch
        return torch.as_tensor(x)
    if backend == "tensorflow":
        import tensorflow as tf
        return tf.convert_to_tensor(x)
    if backend == "jax":
        import jax.numpy as jnp
        return jnp.asarray(x)
    return x

def host(x):
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach()
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float64)

def value_and_grads(f, args, preds, params):
    if backend == "torch":
        import torch
        args = {**args, **{p: args[p].clone().requires_grad_(True) for p in preds}}
        out = f(**args, **params)
        grads = torch.autograd.grad(out.sum(), [args[p] for p in preds], allow_unused=True)
        return host(out), {p: host(g) for p, g in zip(preds, grads)}
    if backend == "tensorflow":
        import tensorflow as tf
        with tf.GradientTape() as tape:
            for p in preds:
                tape.watch(args[p])
            out = f(**args, **params)
            total = tf.reduce_sum(out)
        grads = tape.gradient(total, [args[p] for p in preds])
        return host(out), {p: host(g) for p, g in zip(preds, grads)}
    if backend == "jax":
        def total(pv):
            out = f(**{**args, **pv}, **params)
            return out.sum(), out
        (_, out), grads = jax.value_and_grad(total, has_aux=True)({p: args[p] for p in preds})
        return host(out), {p: host(g) for p, g in grads.items()}
    return host(f(**args, **params)), {}

with open(f"{folder}/cases.pkl", "rb") as fh:
    cases = pickle.load(fh)
results = {}
for name, case in cases.items():
    module = importlib.import_module(case["module"])
    f = module.bind(**tensor(case["context"])) if case["context"] else module.loss
    args = tensor(case["args"])
    results[name] = value_and_grads(f, args, case["preds"], tensor(case["params"]))
    if case["per_sample"]:
        w = tensor(case["weights"])
        results[name + ":none"] = host(f(**args, **tensor(case["params"]), reduction="none"))
        results[name + ":weighted"] = host(
            f(**args, **tensor(case["params"]), reduction="weighted_mean", sample_weight=w)
        )
imported = sorted(m for m in sys.modules if m == "lossdsl" or m.startswith("lossdsl."))
assert not imported, imported
with open(f"{folder}/results.pkl", "wb") as fh:
    pickle.dump(results, fh)
'''


def _inputs(path: Path, rng) -> dict:
    checked = lossdsl.check(path)
    least = {c.dim.sym: c.minimum - c.dim.offset for c in checked.constraints}  # `ssim`'s 11×11 window
    sizes = {k: max(v, least.get(k, 0)) for k, v in SIZES.items() if k not in checked.bindings}  # the spec's own win
    args, context, params = random_inputs(checked, rng, sizes)
    preds = [d.name for d in checked.of_kind("pred")]
    per_sample = checked.loss.type.rank == 1
    weights = rng.uniform(0.1, 2.0, to_numpy(args[preds[0]]).shape[0]) if per_sample else None
    return {"args": args, "context": context, "params": params, "preds": preds, "per_sample": per_sample,
            "weights": weights}


def _run_worker(backend: str, folder: Path) -> dict:
    r = subprocess.run([sys.executable, "-I", "-c", WORKER, backend, str(folder)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    with open(folder / "results.pkl", "rb") as fh:
        return pickle.load(fh)


@pytest.mark.parametrize("backend", BACKENDS)
def test_standalone_modules_match_compile_without_importing_lossdsl(backend, tmp_path, rng):
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    cases = {}
    derived = 0
    for name, path in SPECS.items():
        module = f"sa_{name}"
        text = generate_source(path, backend, standalone=True)
        derived += "torch.autograd.Function" in text
        (tmp_path / f"{module}.py").write_text(text)
        cases[name] = {"module": module, **_inputs(path, rng)}
    if backend == "torch":  # the backward derived from the spec (conftest lowers its size threshold to 0)
        assert derived >= 10, derived
    with open(tmp_path / "cases.pkl", "wb") as fh:
        pickle.dump(cases, fh)
    results = _run_worker(backend, tmp_path)
    for name, case in cases.items():
        f = compile_for(SPECS[name], backend, context=case["context"])
        value, grads = value_and_grads(f, backend, case["args"], case["preds"] if backend in GRAD_BACKENDS else [],
                                       call_kwargs=case["params"])
        got_value, got_grads = results[name]
        assert_close(got_value, value, "float64", f"{name} on {backend}: value")
        assert set(got_grads) == set(grads)
        for p, g in grads.items():
            assert_close(got_grads[p], g, "float64", f"{name} on {backend}: gradient of {p}")
        if case["per_sample"]:
            from harness import convert

            args = {k: convert(backend, v, "float64") for k, v in case["args"].items()}
            w = convert(backend, case["weights"], "float64")
            expected = to_numpy(f(**args, **case["params"], reduction="none"))
            assert_close(results[name + ":none"], expected, "float64", f"{name}: reduction='none'")
            expected = to_numpy(f(**args, **case["params"], reduction="weighted_mean", sample_weight=w))
            assert_close(results[name + ":weighted"], expected, "float64", f"{name}: weighted_mean")


# ---- the argument checks, in this interpreter (what they raise, not what they import) ----------

INDEXED = spec(
    """
    pred   z: float[B, C]
    target y: int[B]
    input  x: {w: float[B], m: {k: float[B]}}
    param  t: float = 2.0
    loss = mean((logsumexp(z, axis=C) - pick(z, y)) * x.w * x.m.k) * t
    """
)


def _load(tmp_path: Path, text, backend: str, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(generate_source(text, backend, standalone=True))
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _same_error(standalone_call, compiled_call):
    with pytest.raises(LossError) as expected:
        compiled_call()
    with pytest.raises(ValueError) as got:
        standalone_call()
    assert type(got.value).__name__ in ("LossArgumentError", "LossArgumentTypeError")
    assert str(got.value) == str(expected.value)
    return got.value


def _good(rng):
    return (rng.standard_normal((4, 3)), np.array([0, 2, 1, 1]), {"w": rng.random(4), "m": {"k": rng.random(4)}})


@pytest.mark.parametrize("backend", ["numpy", pytest.param("torch", marks=needs("torch"))])
def test_standalone_checks_raise_what_the_compiled_loss_raises(backend, tmp_path, rng):
    m = _load(tmp_path, INDEXED, backend, f"checks_{backend}")
    f = lossdsl.compile(INDEXED, backend=backend)

    def both(*args, **kwargs):
        conv = [to(backend, a) for a in args]
        kw = {k: to(backend, v) for k, v in kwargs.items()}
        return _same_error(lambda: m.loss(*conv, **kw), lambda: f(*conv, **kw))

    z, y, x = _good(rng)
    assert np.isclose(to_numpy(m.loss(*[to(backend, a) for a in (z, y, x)])), to_numpy(f(
        *[to(backend, a) for a in (z, y, x)])))
    assert both(z[0], y, x).code == "E804"  # wrong rank
    assert both(z[:3], y, x).code == "E805"  # wrong size of B
    err = both(z, np.array([0, 3, 1, 1]), x)  # an index outside [0, C)
    assert err.code == "E812" and str(err).startswith("<string>:2:11: error: target `y` holds 3 at [1]")
    assert both(z, np.array([0, -1, 1, 1]), x).help.startswith("indices are not counted")
    assert both(z, y).code == "E801"  # a missing argument
    assert both(z, y, x, q=1.0).code == "E802"  # an unknown one
    assert both(z, y, x, tt=1.0).help == "did you mean `t`?"
    assert both(z, y.astype(np.float64), x).code == "E803"  # a float where an int is declared
    assert isinstance(both(z, y.astype(np.float64), x), TypeError)
    assert both(z, y, {"w": x["w"]}).code == "E807"  # a record without a field
    assert both(z, y, {**x, "v": x["w"]}).code == "E807"  # a record with one too many
    assert both(z, y, x, reduction="max").code == "E808"


def to(backend, value):
    from harness import convert

    return convert(backend, value, "float64") if isinstance(value, (np.ndarray, dict)) else value


def test_standalone_context_is_bound_once_and_checked_at_each_call(tmp_path, rng):
    path = EXAMPLES / "graph_distance.loss"
    m = _load(tmp_path, path, "numpy", "graph")
    emb, adj = rng.standard_normal((4, 3)), rng.random((4, 4))
    f = lossdsl.compile(path, backend="numpy", context={"adj": adj})
    assert np.isclose(m.bind(adj=adj)(emb), f(emb))
    with pytest.raises(ValueError, match=r"context `adj: float\[N, N\]` is not bound.*\[E806\]"):
        m.loss(emb)
    with pytest.raises(ValueError, match=r"\[E806\]"):
        m.bind(adj=adj)(emb, adj=adj)  # context is not an argument of the call
    with pytest.raises(ValueError, match=r"`ajd` is not a context of this spec  \[E806\]"):
        m.bind(ajd=adj)
    with pytest.raises(ValueError, match=r"`N` is 4 from `emb` \(axis 0\) but 5 from `adj` \(axis 0\)  \[E805\]"):
        m.bind(adj=rng.random((5, 5)))(emb)


def test_standalone_bakes_params_given_at_emit(tmp_path, rng):
    text = lossdsl.std.path("huber")
    path = tmp_path / "huber_07.py"
    path.write_text(generate_source(text, "numpy", params={"delta": 0.7}, standalone=True))
    m = _load(tmp_path, text, "numpy", "huber_default")
    module_spec = importlib.util.spec_from_file_location("huber_07", path)
    baked = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(baked)
    a, b = rng.standard_normal((5, 4)) * 2, rng.standard_normal((5, 4))
    assert np.isclose(baked.loss(a, b), lossdsl.std.compile("huber", backend="numpy", params={"delta": 0.7})(a, b))
    assert np.isclose(baked.loss(a, b, delta=1.0), m.loss(a, b))
    assert not np.isclose(baked.loss(a, b), m.loss(a, b))


def test_standalone_refuses_a_sharded_loss_and_context_at_emit():
    with pytest.raises(LossError, match=r"sharded loss cannot be emitted standalone") as info:
        generate_source(lossdsl.std.path("mse"), "torch", sharded="B", standalone=True)
    assert info.value.first.code == "E811"
    with pytest.raises(LossError) as info:
        generate_source(EXAMPLES / "graph_distance.loss", "numpy", context={"adj": np.eye(3)}, standalone=True)
    assert info.value.first.code == "E806"


def test_emit_standalone_on_the_command_line(tmp_path, capsys):
    assert main(["emit", str(EXAMPLES / "weighted_mse.loss"), "-b", "numpy", "--standalone"]) == 0
    out = capsys.readouterr().out
    assert "lossdsl" not in "".join(line for line in out.splitlines() if line.startswith(("import", "from")))
    namespace: dict = {}
    exec(compile(out, "standalone", "exec"), namespace)
    assert callable(namespace["loss"]) and callable(namespace["bind"])
    assert "def compute(" in out and "_fail_rank" in out


def test_standalone_module_copies_only_the_helpers_it_calls():
    text = textwrap.dedent(
        """
        pred z: float[B, C]
        target y: int[B]
        loss = mean(-pick(log_softmax(z, axis=C), y))
        """
    )
    out = generate_source(text, "numpy", standalone=True)
    assert "log_softmax=log_softmax" in out and "def logsumexp" in out  # and what it calls
    assert "def segment_sum" not in out and "def one_hot" not in out


def test_standalone_checks_a_size_the_spec_needs(tmp_path, rng):
    text = spec(
        """
        pred x: float[T]
        loss = x[1] - x[0]
        """
    )
    m = _load(tmp_path, text, "numpy", "diffs")
    f = lossdsl.compile(text, backend="numpy")
    x = rng.standard_normal(5)
    assert np.isclose(m.loss(x), f(x))
    err = _same_error(lambda: m.loss(x[:1]), lambda: f(x[:1]))
    assert err.code == "E805" and "at least 2" in str(err)


@needs("tensorflow")
def test_standalone_under_tf_function_with_an_unknown_batch_size(tmp_path, rng):
    import tensorflow as tf

    path = EXAMPLES / "contextual_ce.loss"  # logits: float[B, 2], y: float[B, 2], c: float[B]
    m = _load(tmp_path, path, "tensorflow", "contextual_tf")
    f = lossdsl.compile(path, backend="tensorflow")
    args = [tf.constant(rng.standard_normal((6, 2))), tf.constant(np.eye(2)[[0, 1, 1, 0, 1, 0]]),
            tf.constant(rng.random(6))]

    def traced(width):
        signature = [tf.TensorSpec([None, width], tf.float64), tf.TensorSpec([None, 2], tf.float64),
                     tf.TensorSpec([None], tf.float64)]
        return tf.function(lambda *a: m.loss(*a), input_signature=signature)

    assert np.isclose(traced(2)(*args).numpy(), f(*args).numpy())
    with pytest.raises(ValueError, match=r"axis 1 of pred `logits` must have size 2 .*found 3  \[E805\]"):
        traced(3)(tf.zeros((6, 3), tf.float64), *args[1:])  # a size known while tracing is checked there


def _undefined_globals(text: str) -> set[str]:
    """Names a module's functions read as globals that the module never defines."""
    import builtins
    import symtable

    top = symtable.symtable(text, "standalone", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    missing: set[str] = set()

    def visit(table) -> None:
        for sym in table.get_symbols():
            if sym.is_global() and sym.is_referenced() and sym.get_name() not in defined:
                missing.add(sym.get_name())
        for child in table.get_children():
            visit(child)

    visit(top)
    return missing - set(dir(builtins))


@pytest.mark.parametrize("backend", BACKENDS)
def test_standalone_modules_define_every_name_their_code_reads(backend):
    # Emitting imports no framework, so this covers every backend, error paths included.
    for name, path in SPECS.items():
        text = generate_source(path, backend, standalone=True)
        assert not _undefined_globals(text), (name, _undefined_globals(text))


@needs("jax")
def test_standalone_under_jit_gives_nan_for_an_id_outside_its_axis(tmp_path, rng):
    """As the compiled loss: where the index check cannot raise, the loss is NaN, never a
    number read through a clamped id (docs/language.md §3)."""
    import jax
    import jax.numpy as jnp

    m = _load(tmp_path, INDEXED, "jax", "indexed_jax")
    f = lossdsl.compile(INDEXED, backend="jax")
    z, y, x = _good(rng)
    x = jax.tree_util.tree_map(jnp.asarray, x)
    run = jax.jit(lambda z, y, x: m.loss(z, y, x))
    np.testing.assert_allclose(float(run(jnp.asarray(z), jnp.asarray(y), x)),
                               float(f(jnp.asarray(z), jnp.asarray(y), x)), rtol=1e-6)
    assert np.isnan(float(run(jnp.asarray(z), jnp.asarray([0, 3, 1, 1]), x)))


@needs("tensorflow")
def test_standalone_under_tf_function_asserts_e812_for_an_id_outside_its_axis(tmp_path, rng):
    import tensorflow as tf

    m = _load(tmp_path, INDEXED, "tensorflow", "indexed_tf")
    z, y, x = _good(rng)
    x = tf.nest.map_structure(tf.constant, x)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"E812: target `y` holds a value, outside \[0, 3\)"):
        tf.function(lambda z, y, x: m.loss(z, y, x))(tf.constant(z), tf.constant([0, 3, 1, 1]), x)
