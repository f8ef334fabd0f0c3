"""Data parallelism on real engines, on the CPU: the loss of the global batch and its gradient.

- torch: two processes (gloo), each with its part of the batch and DDP around the model: after
  one step the parameters equal one step on the whole batch in one process;
- JAX: shard_map over four host devices, and jax.jit over sharded global arrays;
- TensorFlow: MirroredStrategy over two logical CPU devices with a custom step.

The scenarios (tests/workers/dist_workers.py) include a masked cross-entropy, a weighted_mean, the
group-weighted seed loss, unequal shards, a replica with no valid label, and an empty group."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError

from conftest import EXAMPLES, ROOT, available, needs
from harness import to_backend, to_numpy

TESTS = ROOT / "tests"
WORKERS = TESTS / "workers"  # the scripts the multi-process tests run


@pytest.mark.slow
@needs("torch")
def test_torch_ddp_step_equals_the_single_process_step(tmp_path):
    import torch.multiprocessing as mp

    sys.path.insert(0, str(WORKERS))  # also for the spawned processes, which unpickle the worker by module
    try:
        import dist_workers

        mp.spawn(dist_workers.ddp_worker, args=(2, f"file://{tmp_path}/rendezvous", str(tmp_path)), nprocs=2,
                 join=True)
    finally:
        sys.path.remove(str(WORKERS))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for name in dist_workers.scenarios():
        ref_loss, ref_params = dist_workers.single_process_step(name)
        for r in ranks:
            np.testing.assert_allclose(r[name]["loss"], ref_loss, rtol=1e-5, err_msg=f"{name}: value")
            for got, want in zip(r[name]["params"], ref_params):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{name}: params after a step")


def _run(script: str, env_extra=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKERS), str(TESTS)]), **(env_extra or {})}
    env.pop("JAX_PLATFORMS", None)
    return subprocess.run([sys.executable, str(WORKERS / script)], cwd=TESTS, env=env, capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)


@pytest.mark.slow
@needs("jax")
def test_jax_shard_map_and_sharded_jit_give_the_global_value_and_gradient():
    """...and an id outside its axis on one replica makes every replica's loss NaN."""
    r = _run("dist_jax_worker.py")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "jax: 28 scenarios OK" in r.stdout


@pytest.mark.slow
@needs("jax")
def test_random_expressions_sharded_under_shard_map_give_the_unsharded_value_and_gradient():
    r = _run("dist_jax_random_worker.py")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    line = next(l for l in r.stdout.splitlines() if l.startswith("jax random sharded:"))
    agree = int(line.split(":")[1].split()[0])
    assert agree >= 4, line  # most random expressions shard (about 7 in 8); the others were E811


@pytest.mark.slow
@needs("tensorflow")
def test_tensorflow_mirrored_strategy_step_equals_the_single_device_step():
    r = _run("dist_tf_worker.py")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "tensorflow: 12 scenarios OK" in r.stdout


# ---- wrong configurations --------------------------------------------------------------------

def test_sharding_a_dimension_the_spec_does_not_declare():
    with pytest.raises(LossError) as info:
        lossdsl.compile(EXAMPLES / "weighted_mse.loss", backend="numpy", sharded="N")
    assert info.value.first.code == "E811" and "`B`" in info.value.first.help


def test_operations_that_need_the_whole_batch_are_rejected():
    for body in ("loss = mean(cumsum(yhat, axis=0))", "loss = mean(softmax(yhat, axis=0))",
                 "loss = prod(yhat)", "loss = mean(yhat[1:] - yhat[:-1])"):
        with pytest.raises(LossError) as info:
            lossdsl.compile(f"pred yhat: float[B]\n{body}\n", backend="numpy", sharded="B")
        assert info.value.first.code == "E811", body
        assert "sharded dimension `B`" in info.value.first.message


def test_order_accumulation_and_construction_along_the_sharded_dimension_are_rejected():
    for body, what in [("mean(sort(yhat, axis=0))", "a sort"),
                       ("mean(float(argsort(yhat, axis=B)) * yhat)", "an argsort"),
                       ("mean(topk(yhat, 2, axis=B))", "a top-k"),
                       ("sum(float(argtopk(yhat, 2, axis=0))) * mean(yhat)", "an argtopk"),
                       ("mean(cumprod(yhat, axis=B))", "a running product"),
                       ("mean(logcumsumexp(yhat, axis=B))", "a running log-sum-exp"),
                       ("mean(float(arange(B)) * yhat[:, 0])", "`arange`"),
                       ("mean(eye(B) @ yhat)", "`eye`"),
                       ("mean(diag(yhat[:, 0]))", "`diag`"),
                       ("mean(pad(yhat, 1, 0, axis=B))", "`pad`"),
                       ("mean(concat([yhat, yhat], axis=B))", "`concat`"),
                       ("mean(flatten(yhat, [B, C]))", "`flatten`")]:
        with pytest.raises(LossError) as info:
            lossdsl.compile(f"pred yhat: float[B, C]\nloss = {body}\n", backend="numpy", sharded="B")
        assert info.value.first.code == "E811", body
        assert info.value.first.message.startswith(f"{what} along the sharded dimension `B`"), body


def test_order_accumulation_and_construction_along_other_axes_stay_local(rng):
    # One replica (NumPy): the sharded compile gives the plain loss; the engines' tests run it on several.
    body = ("mean(sum(topk(yhat, 2, axis=C), axis=-1) + sum(sort(yhat, axis=C) * float(argsort(yhat, axis=C)), axis=C)"
            " + sum(cumprod(yhat, axis=C) + logcumsumexp(yhat, axis=C), axis=C) + float(argtopk(yhat, 1)[:, 0])"
            " + sum(diag(yhat) * eye(C), axis=(1, 2)) + yhat @ float(arange(C)) + atan2(yhat[:, 0], yhat[:, 1])"
            " + sum(pad(yhat, 1, 2, axis=C), axis=C) + sum(permute(yhat, [C, B]), axis=0)"
            " + mean(concat([yhat, yhat ^ 2], axis=C), axis=-1) + sum(stack([yhat, yhat], axis=0), axis=(0, 2))"
            " + sum(unflatten(flatten(stack([yhat, yhat], axis=-1), [C, 2]), [C, 2]), axis=(1, 2)))")
    spec = f"pred yhat: float[B, C]\nloss = {body}\n"
    yhat = rng.normal(size=(6, 3))
    plain = lossdsl.compile(spec, backend="numpy")(yhat)
    sharded = lossdsl.compile(spec, backend="numpy", sharded="B")
    np.testing.assert_allclose(sharded(yhat), plain)
    assert sharded.global_reductions == ["mean(axis=(0,), keepdims=False) at line 2, column 8"]


def test_a_context_with_the_sharded_dimension_is_rejected():
    with pytest.raises(LossError) as info:
        lossdsl.compile(EXAMPLES / "graph_distance.loss", backend="numpy", sharded="N",
                        context={"adj": np.ones((3, 3))})
    assert info.value.first.code == "E811" and "input" in info.value.first.help


@needs("torch")
def test_torch_collectives_outside_a_process_group_say_what_to_do():
    sys.path.insert(0, str(WORKERS))
    try:
        import dist_workers
    finally:
        sys.path.remove(str(WORKERS))
    message = dist_workers.uninitialised_error()
    assert "torch.distributed is not initialised" in message and "init_process_group" in message


def test_the_compiled_loss_says_which_reductions_are_global():
    f = lossdsl.compile(EXAMPLES / "group_weighted_cce.loss", backend="numpy", sharded="B")
    assert f.global_reductions == ["segment_mean(groups=G) at line 11, column 22"]
    g = lossdsl.compile(ROOT / "lossdsl" / "std" / "mse.loss", backend="numpy", sharded="B")
    assert any("reduction" in r for r in g.global_reductions)
    with pytest.raises(LossError) as info:  # neighbours along H would live on two replicas
        lossdsl.compile(EXAMPLES / "smoothness.loss", backend="numpy", sharded="H")
    assert "indexing along the sharded dimension `H`" in info.value.first.message


def test_one_replica_without_a_distribution_gives_the_plain_loss(rng):
    """The NumPy backend (and TensorFlow or JAX outside a strategy / shard_map) is one replica."""
    spec = EXAMPLES / "group_weighted_cce.loss"
    logits, y, g = rng.normal(size=(6, 3)), np.eye(3)[rng.integers(0, 3, 6)], rng.integers(0, 2, 6)
    plain = lossdsl.compile(spec, backend="numpy")(logits, y, g)
    np.testing.assert_allclose(lossdsl.compile(spec, backend="numpy", sharded="B")(logits, y, g), plain)
    if available("jax"):
        import jax.numpy as jnp

        got = lossdsl.compile(spec, backend="jax", sharded="B")(jnp.asarray(logits), jnp.asarray(y), jnp.asarray(g))
        np.testing.assert_allclose(np.asarray(got), plain, rtol=1e-5)


# Sizes the global mean divides by that are derived from the declared ones, written in the
# generated code as integer arithmetic of the dimension variables: (spec, the arrays' shapes).
DERIVED_SIZES = {
    # `⌈H/2⌉` of a stepped slice, `⌊(H - 3)/2⌋ + 1` of a strided window
    "stepped_or_strided": ("pred x: float[B, H]\ntarget y: float[B, H]\n"
                           "loss = mean((x[:, ::2] - y[:, ::2])^2)"
                           " + mean(avg_pool2d(x[:, None, :, None] * x[:, None, None, :], 3, stride=2))\n",
                           [(4, 7), (4, 7)]),
    # `len(range(H)[-3:5])`: 2 elements on H = 7, 3 on H = 6, stepped or not
    "slice_from_the_end_to_an_index_h7": ("pred x: float[B, H]\ntarget y: float[B, H]\n"
                                          "loss = mean((x[:, -3:5] - y[:, -3:5])^2) + mean(x[:, -6:5:2])\n",
                                          [(4, 7), (4, 7)]),
    "slice_from_the_end_to_an_index_h6": ("pred x: float[B, H]\ntarget y: float[B, H]\n"
                                          "loss = mean((x[:, -3:5] - y[:, -3:5])^2) + mean(x[:, -6:5:2])\n",
                                          [(4, 6), (4, 6)]),
    # `H - KH + 1` windows of a declared kernel size (`⌊(H - KH)/2⌋ + 1` strided), and `8 - KW + 1`
    "windows_of_a_declared_kernel_size": ("pred x: float[B, 1, H, 8]\ntarget k: float[1, 1, KH, KW]\n"
                                          "loss = mean(conv2d(x, k)) + mean(conv2d(x, k, stride=2))"
                                          " + mean(conv2d(x, k, stride=3))\n",
                                          [(4, 1, 9, 8), (1, 1, 3, 2)]),
}


@pytest.mark.parametrize("case", sorted(DERIVED_SIZES))
@pytest.mark.parametrize("backend", ["numpy", "jax", "tensorflow"])  # one replica outside a distribution
def test_a_global_mean_over_a_derived_size_counts_its_elements(backend, case, rng):
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    spec, shapes = DERIVED_SIZES[case]
    arrays = [rng.normal(size=s) for s in shapes]
    plain = lossdsl.compile(spec, backend="numpy")(*arrays)
    got = lossdsl.compile(spec, backend=backend, sharded="B")(*(to_backend(backend, a, "float64", "cpu") for a in arrays))
    np.testing.assert_allclose(float(to_numpy(got)), float(plain), rtol=1e-12)
