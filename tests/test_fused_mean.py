"""The API's default mean of a per-sample loss, computed by the generated `compute_mean` with a
fused call (lossdsl/pipeline.py, `_api_mean`), gives what the per-sample loss and the runtime's
mean give, wherever it is taken and wherever it is not: an empty batch (0, docs/language.md §6),
a batch size unknown until a TensorFlow graph runs, `sample_weight`, the other reductions, a
param changed with `set_params` or passed as a tensor. And the index check on a GPU is a
device-side assertion, with no read back to the host."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
import lossdsl.std

from conftest import available, needs
from harness import assert_close, convert, to_numpy


def _huber(x, delta=1.0):
    r = np.abs(x["yhat"] - x["y"])
    return np.mean(np.where(r <= delta, 0.5 * r * r, delta * (r - 0.5 * delta)), axis=1)


def _inputs(rng, b=5, d=3):
    return {"yhat": rng.normal(size=(b, d)) * 2, "y": rng.normal(size=(b, d))}


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_the_fused_mean_is_used_by_the_default_call_and_agrees_with_every_other_reduction(backend, rng):
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    f = lossdsl.std.compile("huber", backend=backend)
    x = _inputs(rng)
    args = {k: convert(backend, v, "float64") for k, v in x.items()}
    per = _huber(x)
    w = rng.uniform(size=per.shape)
    assert_close(to_numpy(f(**args)), per.mean(), "float64", "default mean")
    assert_close(to_numpy(f(**args, reduction="none")), per, "float64", "none")
    assert_close(to_numpy(f(**args, reduction="sum")), per.sum(), "float64", "sum")
    weighted = f(**args, sample_weight=convert(backend, w, "float64"))
    assert_close(to_numpy(weighted), np.mean(per * w), "float64", "sample_weight")
    assert_close(to_numpy(f(**args, delta=0.5)), _huber(x, 0.5).mean(), "float64", "delta at the call")
    f.set_params(delta=0.3)
    assert_close(to_numpy(f(**args)), _huber(x, 0.3).mean(), "float64", "delta set once")


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax", "numpy"])
def test_the_mean_of_an_empty_batch_is_zero_with_a_fused_mean_too(backend):
    if not available(backend):
        pytest.skip(f"MISSING FRAMEWORK: {backend} is not installed")
    f = lossdsl.std.compile("mse", backend=backend)
    empty = convert(backend, np.zeros((0, 3)), "float32")
    assert float(to_numpy(f(empty, empty))) == 0.0


@needs("torch")
def test_a_param_given_as_a_tensor_takes_the_decomposed_form_without_reading_it():
    import torch

    f = lossdsl.std.compile("huber", backend="torch")
    rng = np.random.default_rng(0)
    x = {k: torch.tensor(v) for k, v in _inputs(rng).items()}
    value = f(**x, delta=torch.tensor(0.5, dtype=torch.float64))
    assert_close(value.numpy(), _huber({k: v.numpy() for k, v in x.items()}, 0.5).mean(), "float64", "tensor delta")
    assert "if n_delta is not None and n_delta > 0 else" in f.source  # the fallback the tensor takes


@needs("tensorflow")
def test_a_batch_size_unknown_until_the_graph_runs_takes_the_runtime_mean(rng):
    import tensorflow as tf

    f = lossdsl.std.compile("huber", backend="tensorflow")
    x = _inputs(rng)
    spec = tf.TensorSpec([None, 3], tf.float64)
    step = tf.function(lambda yhat, y: f(yhat, y), input_signature=[spec, spec])
    assert_close(step(tf.constant(x["yhat"]), tf.constant(x["y"])).numpy(), _huber(x).mean(), "float64", "graph")


@needs("torch")
def test_on_a_gpu_the_index_check_is_a_device_side_assertion_not_a_read(monkeypatch):
    """The GPU branch, taken on the CPU by saying the backend handled it: the range is then never
    read back (value_range would sync the host with the device at every call)."""
    import torch

    f = lossdsl.compile("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z, axis=C), k))\n",
                        backend="torch")
    be = f._backend
    asked = []

    def device_side(x, size, message):
        asked.append((size, message))
        return True

    monkeypatch.setattr(be, "assert_indices_async", device_side)
    monkeypatch.setattr(be, "value_range", lambda x: pytest.fail("the range was read back to the host"))
    f(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]))
    assert asked and asked[0][0] == 3 and "E812" in asked[0][1]


@needs("torch")
def test_on_the_cpu_the_index_check_reads_the_range_and_raises_e812():
    import torch

    f = lossdsl.compile("pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z, axis=C), k))\n",
                        backend="torch")
    assert f._backend.assert_indices_async(torch.tensor([0, 5]), 3, "") is False
    with pytest.raises(lossdsl.LossError) as info:
        f(torch.zeros(2, 3), torch.tensor([0, 5]))
    assert "E812" in str(info.value)
