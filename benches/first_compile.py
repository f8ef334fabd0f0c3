"""First-compile time: how long the first call of a compiled training step takes with a lossdsl
loss against the same step with the framework's own loss, each in a fresh process (nothing
cached in memory; torch's inductor cache on disk is turned off).

    python benches/first_compile.py              # every framework installed
    python benches/first_compile.py --only torch

The step is a small MLP (16 -> 64 -> C=10) on a batch of 256 with the group-weighted
cross-entropy of examples/group_weighted_cce.loss (torch: `LossModule` inside
`torch.compile(fullgraph=True)` of model + loss, then its compiled backward, default
inductor; JAX: `jax.jit` of value_and_grad; TensorFlow: `tf.function` with a GradientTape),
and, as the baseline, the framework's own cross-entropy written by hand around the same
segment mean. Both steps compute the same value (checked).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "group_weighted_cce.loss"


def _data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 16)).astype("float32")
    labels = rng.integers(0, 10, 256)
    y = np.eye(10, dtype="float32")[labels]
    g = rng.integers(0, 2, 256)
    w = np.array([1.0, 0.5], "float32")
    return x, y, labels, g, w


def torch_case(which: str) -> tuple[float, float]:
    import torch

    import lossdsl.torch

    os.environ["TORCHINDUCTOR_FX_GRAPH_CACHE"] = "0"
    torch.manual_seed(0)
    x, y, labels, g, w = (torch.as_tensor(a) for a in _data())
    net = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    if which == "lossdsl":
        criterion = lossdsl.torch.LossModule(SPEC, params={"group_w": w})

        def loss_fn(z):
            return criterion(z, y, g)
    else:

        def loss_fn(z):
            ce = torch.nn.functional.cross_entropy(z, labels, reduction="none")
            sums = torch.zeros(2).index_add(0, g, ce)
            counts = torch.zeros(2).index_add(0, g, torch.ones_like(ce))
            return torch.sum(w * torch.where(counts > 0, sums / counts.clamp(min=1), 0.0))

    forward = torch.compile(lambda: loss_fn(net(x)), fullgraph=True)

    t0 = time.perf_counter()
    loss = forward()
    loss.backward()  # the compiled backward graph is made here
    return time.perf_counter() - t0, float(loss)


def jax_case(which: str) -> tuple[float, float]:
    import jax
    import jax.numpy as jnp
    import optax

    import lossdsl

    x, y, labels, g, w = (jnp.asarray(a) for a in _data())
    key = jax.random.PRNGKey(0)
    params = {
        "w1": jax.random.normal(key, (16, 64)) * 0.1,
        "w2": jax.random.normal(key, (64, 10)) * 0.1,
    }
    if which == "lossdsl":
        f = lossdsl.compile(SPEC, backend="jax")

        def loss_fn(z):
            return f(z, y, g, group_w=w)
    else:

        def loss_fn(z):
            ce = optax.softmax_cross_entropy(z, y)
            sums = jax.ops.segment_sum(ce, g, 2)
            counts = jax.ops.segment_sum(jnp.ones_like(ce), g, 2)
            return jnp.sum(w * jnp.where(counts > 0, sums / jnp.maximum(counts, 1), 0.0))

    @jax.jit
    def step(p):
        return jax.value_and_grad(lambda p: loss_fn(jax.nn.relu(x @ p["w1"]) @ p["w2"]))(p)

    t0 = time.perf_counter()
    value, grads = step(params)
    jax.block_until_ready(grads)
    return time.perf_counter() - t0, float(value)


def tensorflow_case(which: str) -> tuple[float, float]:
    import tensorflow as tf

    import lossdsl

    tf.random.set_seed(0)
    x, y, labels, g, w = (tf.constant(a) for a in _data())
    w1 = tf.Variable(tf.random.normal((16, 64), seed=0) * 0.1)
    w2 = tf.Variable(tf.random.normal((64, 10), seed=1) * 0.1)
    if which == "lossdsl":
        f = lossdsl.compile(SPEC, backend="tensorflow")

        def loss_fn(z):
            return f(z, y, g, group_w=w)
    else:

        def loss_fn(z):
            ce = tf.nn.softmax_cross_entropy_with_logits(y, z)
            sums = tf.math.unsorted_segment_sum(ce, g, 2)
            counts = tf.math.unsorted_segment_sum(tf.ones_like(ce), g, 2)
            return tf.reduce_sum(w * tf.where(counts > 0, sums / tf.maximum(counts, 1.0), 0.0))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(tf.nn.relu(x @ w1) @ w2)
        return loss, tape.gradient(loss, [w1, w2])

    t0 = time.perf_counter()
    value, _ = step()
    return time.perf_counter() - t0, float(value)


CASES = {"torch": torch_case, "jax": jax_case, "tensorflow": tensorflow_case}


def measure(framework: str, which: str) -> dict:
    """One fresh process per measurement."""
    code = (
        f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); from benches.first_compile import CASES; "
        f"t, v = CASES[{framework!r}]({which!r}); print(json.dumps({{'seconds': t, 'value': v}}))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TORCHINDUCTOR_FX_GRAPH_CACHE": "0"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900)
    if r.returncode:
        raise SystemExit(f"{framework}/{which} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(CASES))
    args = ap.parse_args()
    print("| framework | first step, framework loss | first step, lossdsl | ratio |")
    print("|---|---|---|---|")
    for framework in [args.only] if args.only else list(CASES):
        try:
            __import__(framework)
        except ImportError:
            print(f"| {framework} | not installed | | |")
            continue
        base = measure(framework, "framework")
        ours = measure(framework, "lossdsl")
        assert abs(base["value"] - ours["value"]) <= 1e-4 * max(1.0, abs(base["value"])), (base, ours)
        ratio = ours["seconds"] / base["seconds"]
        print(f"| {framework} | {base['seconds']:.2f} s | {ours['seconds']:.2f} s | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
