"""Where people train: Keras 3 on its three backends, a torch nn.Module, JAX with optax, and
the command line's emit / ir / run. Each trains a few steps and checks that the loss falls and
equals the plain compiled function."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest

import lossdsl
from lossdsl.cli import main as cli_main

from conftest import EXAMPLES, ROOT, available, needs

GROUP = EXAMPLES / "group_weighted_cce.loss"
GRAPH = EXAMPLES / "graph_distance.loss"


# ---- Keras 3 -------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("keras_backend", ["tensorflow", "jax", "torch"])
def test_keras_loss_trains_reads_metadata_updates_params_and_reloads(keras_backend):
    if not available("tensorflow") or not available(keras_backend):
        pytest.skip(f"MISSING FRAMEWORK: keras on {keras_backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": keras_backend}
    worker = ROOT / "tests" / "workers" / "keras_worker.py"
    r = subprocess.run([sys.executable, str(worker)], env=env, capture_output=True,
                       text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    assert f"keras on {keras_backend}: OK" in r.stdout


@pytest.mark.slow
@pytest.mark.parametrize("keras_backend", ["tensorflow", "jax", "torch"])
def test_keras_metrics_class_weight_checkpoints_and_callbacks_are_right_or_refused(keras_backend):
    """Packed y_true: plain metrics and class_weight refused (E813), wrapped metrics right.
    Metadata through the model's inputs: accuracy, class_weight, validation and per-group
    metrics right. set_params from a user's callback reaches fit; checkpoints written mid-fit
    load; a refusal inside fit leaves the model's weights in place."""
    if not available("tensorflow") or not available(keras_backend):
        pytest.skip(f"MISSING FRAMEWORK: keras on {keras_backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": keras_backend}
    worker = ROOT / "tests" / "workers" / "keras_metadata_worker.py"
    r = subprocess.run([sys.executable, str(worker)], env=env, capture_output=True,
                       text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    assert f"keras metadata on {keras_backend}: OK" in r.stdout


# ---- PyTorch ----------------------------------------------------------------------------------------

def _graph(rng, n=12, d=4):
    adj = (rng.random((n, n)) < 0.3).astype(np.float32)
    return adj, rng.normal(size=(n, d)).astype(np.float32)


@needs("torch")
def test_torch_module_keeps_context_as_buffers(rng):
    import torch

    import lossdsl.torch

    adj, emb = _graph(rng)
    m = lossdsl.torch.LossModule(GRAPH, context={"adj": adj})
    assert "ctx_adj" in m.state_dict()
    e = torch.tensor(emb)
    plain = lossdsl.compile(GRAPH, backend="torch", context={"adj": adj})
    torch.testing.assert_close(m(e), plain(e))
    # .double() converts the buffer; a float64 pred computes in float64.
    m.double()
    assert m.ctx_adj.dtype == torch.float64
    torch.testing.assert_close(m(e.double()), plain(e.double()))
    # load_state_dict replaces the adjacency in place; the loss sees the new one.
    new_adj = np.ones_like(adj)
    m.load_state_dict({"ctx_adj": torch.tensor(new_adj, dtype=torch.float64)})
    expected = lossdsl.compile(GRAPH, backend="torch", context={"adj": new_adj})(e.double())
    torch.testing.assert_close(m(e.double()), expected)


@needs("torch")
def test_torch_module_keeps_params_in_its_state_dict_and_restores_them(rng):
    import torch

    import lossdsl.torch

    x, y = torch.randn(8, 3), torch.nn.functional.one_hot(torch.tensor(rng.integers(0, 3, 8)), 3).float()
    group = torch.tensor(rng.integers(0, 2, 8))
    m = lossdsl.torch.LossModule(GROUP)
    m.set_params(group_w=[1.0, 0.25])
    state = m.state_dict()
    assert state["param_group_w"].tolist() == [1.0, 0.25]
    resumed = lossdsl.torch.LossModule(GROUP)  # starts from the default [1.0, 0.5]
    resumed.load_state_dict(state)
    assert resumed.params == {"group_w": [1.0, 0.25]}
    expected = lossdsl.compile(GROUP, backend="torch")(x, y, group, group_w=torch.tensor([1.0, 0.25]))
    torch.testing.assert_close(resumed(x, y, group), expected)
    torch.testing.assert_close(m(x, y, group), expected)
    # a value that does not fit is refused and changes nothing
    with pytest.raises(lossdsl.LossError, match="E805"):
        m.set_params(group_w=[1.0, 2.0, 3.0])
    assert m.params == {"group_w": [1.0, 0.25]}


@needs("torch")
@pytest.mark.parametrize(
    ("values", "code", "words"),
    [
        ({"group_w": "abc"}, "E803", ["`group_w`", "float[G]"]),
        ({"group_w": [[1.0, 0.5]]}, "E804", ["`group_w`", "rank 1"]),
        ({"group_w": [1.0, 0.5, 2.0]}, "E805", ["`G`", "3"]),
        ({"group_wt": [1.0, 0.5]}, "E806", ["`group_wt`"]),
    ],
)
def test_torch_module_set_params_refuses_what_a_call_would_and_keeps_its_buffers(rng, values, code, words):
    import torch

    import lossdsl.std
    import lossdsl.torch

    m = lossdsl.torch.LossModule(GROUP)
    with pytest.raises(lossdsl.LossError) as e:
        m.set_params(**values)
    assert e.value.first.code == code and all(w in str(e.value) for w in words), str(e.value)
    assert m.params == {"group_w": [1.0, 0.5]} and m.state_dict()["param_group_w"].tolist() == [1.0, 0.5]
    # a [3] tensor for a scalar param: refused, not a loss that comes back as a 3-vector
    huber = lossdsl.torch.LossModule(lossdsl.std.path("huber"))
    yhat, y = torch.randn(4, 2), torch.randn(4, 2)
    for call in (lambda: huber.set_params(delta=torch.tensor([1.0, 2.0, 3.0])),
                 lambda: huber(yhat, y, delta=torch.tensor([1.0, 2.0, 3.0]))):
        with pytest.raises(lossdsl.LossError, match="param `delta` must have rank 0"):
            call()
    assert huber(yhat, y).shape == ()


@needs("torch")
def test_torch_module_trains_and_matches_the_compiled_function(rng):
    import torch

    import lossdsl.torch

    torch.manual_seed(0)
    x = torch.tensor(rng.normal(size=(64, 6)), dtype=torch.float32)
    labels = torch.tensor((rng.normal(size=64) > 0).astype(int) + (rng.normal(size=64) > 1).astype(int))
    y = torch.nn.functional.one_hot(labels, 3).float()
    group = torch.tensor(rng.integers(0, 2, 64))
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    criterion = lossdsl.torch.LossModule(GROUP)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)

    @torch.compile(backend="aot_eager")
    def step(x, y, g, w):
        opt.zero_grad()
        loss = criterion(net(x), y, g, group_w=w)
        loss.backward()
        return loss

    fixed = torch.tensor([1.0, 1.0])
    before = float(criterion(net(x), y, group, group_w=fixed))
    for epoch in range(15):
        w = torch.tensor([1.0, 0.5 + 0.1 * epoch])  # a new value each step: no recompilation
        step(x, y, group, w)
        opt.step()
    assert float(criterion(net(x), y, group, group_w=fixed)) < before
    final = criterion(net(x), y, group, group_w=w)
    plain = lossdsl.compile(GROUP, backend="torch")(net(x), y, group, group_w=w)
    torch.testing.assert_close(final, plain)


def _model_with_loss(torch, criterion, *targets):
    class WithLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 4)
            self.criterion = criterion

        def forward(self, x, *t):
            return self.criterion(self.net(x), *t)

    return WithLoss()


@needs("torch")
@pytest.mark.parametrize("case", ["context", "param"])
def test_torch_module_compiles_to_one_graph_and_exports_leaving_nothing_traced_behind(rng, case):
    """fullgraph=True with no graph break, torch.export strict and non-strict, and afterwards the
    module's own eager call still returns a real tensor with the current state's value."""
    import torch
    import torch._subclasses.fake_tensor as fake

    import lossdsl.std
    import lossdsl.torch

    torch.manual_seed(0)
    x = torch.tensor(rng.normal(size=(6, 4)), dtype=torch.float32)
    y = torch.tensor(rng.normal(size=(6, 4)), dtype=torch.float32)
    if case == "context":
        adj = (rng.random((6, 6)) < 0.4).astype(np.float32)
        criterion = lossdsl.torch.LossModule(GRAPH, context={"adj": adj})
        targets: tuple = ()
    else:
        criterion = lossdsl.torch.LossModule(lossdsl.std.path("huber"))
        criterion.set_params(delta=0.3)
        targets = (y,)
    model = _model_with_loss(torch, criterion, *targets)
    eager = model(x, *targets)

    explained = torch._dynamo.explain(model)(x, *targets)
    assert explained.graph_break_count == 0, explained.break_reasons
    whole = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(whole(x, *targets), eager)
    whole(x, *targets).backward()
    assert model.net.weight.grad is not None

    for strict in (False, True):
        exported = torch.export.export(model, (x, *targets), strict=strict)
        torch.testing.assert_close(exported.module()(x, *targets), eager)
        again = model(x, *targets)
        assert not isinstance(again, fake.FakeTensor), type(again)
        torch.testing.assert_close(again, eager)

    # The state changed after compiling reaches the compiled module (buffers are its inputs).
    if case == "param":
        criterion.set_params(delta=2.0)
        expected = lossdsl.std.compile("huber", backend="torch", params={"delta": 2.0})(model.net(x), y)
    else:
        criterion.ctx_adj.zero_()
        expected = torch.tensor(0.0)
    torch.testing.assert_close(whole(x, *targets), expected)
    torch.testing.assert_close(model(x, *targets), expected)


@needs("torch")
def test_torch_module_forwards_the_compile_options():
    import torch

    src = "pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z), k))\n"
    z, bad = torch.randn(4, 3), torch.tensor([0, 1, 3, 2])
    with pytest.raises(lossdsl.LossError, match="E812"):
        lossdsl.torch.LossModule(src)(z, bad)
    unchecked = lossdsl.torch.LossModule(src, check_indices=False, fused_backward=False)
    assert "_check_index(" not in unchecked.loss_fn.source and "autograd.Function" not in unchecked.loss_fn.source


# ---- JAX + optax --------------------------------------------------------------------------------------

@needs("jax")
def test_jax_with_optax_trains(rng):
    import jax
    import jax.numpy as jnp
    optax = pytest.importorskip("optax", reason="MISSING FRAMEWORK: optax is not installed")

    adj, emb = _graph(rng)
    f = lossdsl.compile(GRAPH, backend="jax", context={"adj": jnp.asarray(adj)})
    params = jnp.asarray(emb)
    opt = optax.adam(0.05)
    state = opt.init(params)

    @jax.jit
    def step(p, s):
        value, grad = jax.value_and_grad(f)(p)
        updates, s = opt.update(grad, s)
        return optax.apply_updates(p, updates), s, value

    values = []
    for _ in range(20):
        params, state, v = step(params, state)
        values.append(float(v))
    assert values[-1] < values[0]
    np.testing.assert_allclose(float(f(params)),
                               float(lossdsl.compile(GRAPH, backend="numpy", context={"adj": adj})(np.asarray(params))),
                               rtol=1e-5)


# ---- the command line ------------------------------------------------------------------------------------

def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with redirect_stdout(out):
            code = cli_main(list(args))
    finally:
        os.chdir(cwd)
    return code, out.getvalue()


def test_cli_emit_prints_the_generated_code():
    code, out = run_cli("emit", "examples/smoothness.loss", "--backend", "jax")
    assert code == 0
    assert "def compute(v_p, _cdt, _dev):" in out and "jnp.mean(rt.abs(l_dx))" in out
    compile(out, "<emit>", "exec")


def test_cli_ir_prints_types_and_shapes():
    code, out = run_cli("ir", "examples/smoothness.loss")
    assert code == 0
    assert "float[B, H - 1, W]" in out and "let dx" in out


def test_cli_run_random_and_npz(tmp_path):
    code, out = run_cli("run", "examples/smoothness.loss", "-b", "numpy", "--random", "--dim", "B=2", "--dim", "H=5",
                        "--dim", "W=5")
    assert code == 0 and "loss" in out and "(2, 5, 5)" in out
    data = tmp_path / "batch.npz"
    rng = np.random.default_rng(0)
    np.savez(data, yhat=rng.normal(size=4), y=rng.normal(size=4), **{"x.feature": rng.normal(size=4)})
    code, out = run_cli("run", "examples/weighted_mse.loss", "-b", "torch" if available("torch") else "numpy",
                        "--data", str(data))
    assert code == 0 and "|d/dyhat|" in out or "numpy" in out


def test_cli_run_reports_missing_arrays(tmp_path, capsys):
    data = tmp_path / "partial.npz"
    np.savez(data, yhat=np.ones(4))
    code = cli_main(["run", str(EXAMPLES / "weighted_mse.loss"), "--data", str(data)])
    err = capsys.readouterr().err
    assert code == 1
    assert "lacks 2 arrays: y (target, float[B]), x.feature (input, float[B])" in err
    assert "Traceback" not in err


def test_pre_commit_hook_definition():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "id: lossdsl-check" in text and "entry: lossdsl check" in text
