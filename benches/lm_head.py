"""The language-model head, value + gradient to h and W: peak memory and time of lossdsl's
chunked path against the dense logits, each in a fresh process.

    python benches/lm_head.py                 # prints the markdown table (docs/benchmarks.md)
    python benches/lm_head.py --quick         # one small size, fewer repeats
    python benches/lm_head.py --only torch    # one framework
    python benches/lm_head.py --variant zloss # the z-loss variant (per-token gradient coefficients)

The spec is the plain one, `mean(-pick(log_softmax(h @ transpose(W), axis=V), y))`, or with
`--variant zloss` that plus a z-loss `1e-4 * square(logsumexp(z, axis=V))` per token (whose
gradient coefficient differs between tokens), float32 on the CPU. Per framework: lossdsl as shipped (chunked from 2^20 logits), lossdsl with the chunked
path switched off (`lm_head.options(min_logits=...)`: the dense statistics), the framework's own
dense cross-entropy written by hand, and on PyTorch its own chunked `F.linear_cross_entropy`.
JAX runs under `jax.jit`, TensorFlow under `tf.function`. Memory is the growth of the peak
resident set during one call after a warm-up call (Linux: /proc/self/clear_refs resets the peak;
a fixed glibc mmap threshold makes freed tensors leave the resident set), which counts every
allocator, PyTorch's CPU tensors included; on TensorFlow, which keeps freed blocks in its own
allocator, that allocator's peak above what it held before the call. Time is the CPU time per
call with one intra-op thread (so what else the machine runs does not count), the median of
repeated calls in the same process. "above dh, dW" is the peak less the gradients' own size
(4 (N + V) D bytes), which every implementation returns: what the computation adds to its outputs. Values and gradients of each implementation are checked against float64 NumPy first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEAD = "pred   h: float[N, D]\npred   W: float[V, D]\ntarget y: int[N]\nlet z = h @ transpose(W)\n"
SPECS = {
    "plain": HEAD + "loss = mean(-pick(log_softmax(z, axis=V), y))\n",
    "zloss": HEAD + "loss = mean(-pick(log_softmax(z, axis=V), y) + 1e-4 * square(logsumexp(z, axis=V)))\n",
}
Z = {"plain": 0.0, "zloss": 1e-4}  # the z-loss coefficient

IMPLS = {
    "torch": ("lossdsl", "lossdsl dense", "F.cross_entropy", "F.linear_cross_entropy"),
    "jax": ("lossdsl", "lossdsl dense", "by hand"),
    "tensorflow": ("lossdsl", "lossdsl dense", "tf.nn"),
}


def _rss(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])  # KiB
    raise RuntimeError(field)


def _inputs(n: int, d: int, v: int):
    rng = np.random.default_rng(0)
    return (
        (rng.normal(size=(n, d)) / np.sqrt(d)).astype(np.float32),
        rng.normal(size=(v, d)).astype(np.float32),
        rng.integers(0, v, size=n),
    )


def _reference(h, W, y, c=0.0):
    """Float64 value and gradients (with a z-loss of coefficient c), a chunk of rows at a time
    (the reference must fit too)."""
    h, W = h.astype(np.float64), W.astype(np.float64)
    n = h.shape[0]
    total, gh, gW = 0.0, np.zeros_like(h), np.zeros_like(W)
    for s in range(0, n, 256):
        z = h[s : s + 256] @ W.T
        m = z.max(1, keepdims=True)
        p = np.exp(z - m)
        lse = np.log(p.sum(1)) + m[:, 0]
        rows = np.arange(z.shape[0])
        total += float(np.sum(lse - z[rows, y[s : s + 256]] + c * lse**2))
        dz = p / p.sum(1, keepdims=True) * (1.0 + 2.0 * c * lse)[:, None]
        dz[rows, y[s : s + 256]] -= 1.0
        gh[s : s + 256] = dz @ W / n
        gW += dz.T @ h[s : s + 256] / n
    return total / n, gh, gW


def _step(framework: str, impl: str, h, W, y, variant: str = "plain"):
    """A function of no arguments: value and gradients to h and W, as NumPy-convertible."""
    c = Z[variant]
    import lossdsl
    from lossdsl import lm_head

    dense = lm_head.options(min_logits=1 << 62) if impl == "lossdsl dense" else contextlib.nullcontext()
    with dense:
        f = lossdsl.compile(SPECS[variant], backend=framework) if impl.startswith("lossdsl") else None
    if framework == "torch":
        import torch
        import torch.nn.functional as F

        th, tW, ty = torch.tensor(h, requires_grad=True), torch.tensor(W, requires_grad=True), torch.tensor(y)
        if f is not None:
            loss = lambda: f(h=th, W=tW, y=ty)  # noqa: E731
        elif impl == "F.cross_entropy" and c:

            def loss():
                z = th @ tW.T
                return (F.cross_entropy(z, ty, reduction="none") + c * torch.logsumexp(z, 1) ** 2).mean()

        elif impl == "F.cross_entropy":
            loss = lambda: F.cross_entropy(th @ tW.T, ty)  # noqa: E731
        else:
            opts = torch.nn.LinearCrossEntropyOptions()
            loss = lambda: F.linear_cross_entropy(th, tW, ty, options=opts)  # noqa: E731

        def step():
            out = loss()
            gh, gW = torch.autograd.grad(out, [th, tW])
            return float(out.detach()), gh.numpy(), gW.numpy()

        return step
    if framework == "jax":
        import jax
        import jax.numpy as jnp

        jh, jW, jy = jnp.asarray(h), jnp.asarray(W), jnp.asarray(y)
        if f is not None:
            fn = lambda a, b: f(h=a, W=b, y=jy)  # noqa: E731
        else:

            def fn(a, b):
                z = a @ b.T
                lse = jax.nn.logsumexp(z, axis=1)
                return jnp.mean(lse - jnp.take_along_axis(z, jy[:, None], axis=1)[:, 0] + c * lse**2)

        g = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))

        def step():
            out, (gh, gW) = g(jh, jW)
            out.block_until_ready()
            return float(out), np.asarray(gh), np.asarray(gW)

        return step
    import tensorflow as tf

    th, tW, ty = tf.constant(h), tf.constant(W), tf.constant(y)

    @tf.function
    def go(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            if f is not None:
                out = f(h=a, W=b, y=ty)
            else:
                z = tf.linalg.matmul(a, b, transpose_b=True)
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ty, logits=z)
                out = tf.reduce_mean(ce + c * tf.square(tf.reduce_logsumexp(z, axis=1)) if c else ce)
        return out, tape.gradient(out, [a, b])

    def step_tf():
        out, (gh, gW) = go(th, tW)
        return float(out), gh.numpy(), gW.numpy()

    return step_tf


def _one_thread(framework: str) -> None:
    """One intra-op thread: CPU time per call then measures work, whatever else the machine runs."""
    if framework == "torch":
        import torch

        torch.set_num_threads(1)
    elif framework == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def worker(framework: str, impl: str, n: int, d: int, v: int, repeats: int, variant: str = "plain") -> dict:
    _one_thread(framework)
    h, W, y = _inputs(n, d, v)
    step = _step(framework, impl, h, W, y, variant)
    value, gh, gW = step()  # warm-up: compilation, first allocations
    ref = _reference(h, W, y, Z[variant])
    err = max(
        abs(value - ref[0]) / abs(ref[0]),
        *(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip((gh, gW), ref[1:])),
    )
    if err > 1e-4:  # float32 against float64: a wrong value or gradient is not timed
        raise AssertionError(f"{framework} {impl}: relative error {err:.2e} against the float64 reference")
    del gh, gW
    import gc

    gc.collect()
    if framework == "tensorflow":
        # TensorFlow keeps freed blocks in its own allocator, out of sight of the resident set:
        # its allocator's peak is the measure there.
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("CPU:0")
        before = tf.config.experimental.get_memory_info("CPU:0")["current"]
        step()
        peak = (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / 2**20
    else:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # the peak resident set restarts from the current one
        before = _rss("VmRSS:")
        step()
        peak = (_rss("VmHWM:") - before) / 1024
    times = []
    for _ in range(repeats):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return {"peak_mib": peak, "ms": 1000 * statistics.median(times), "rel_err": err}


def measure(framework: str, impl: str, n: int, d: int, v: int, repeats: int, variant: str = "plain") -> dict:
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "OMP_NUM_THREADS": "1",
        "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    }
    args = [sys.executable, __file__, "--worker", framework, impl, str(n), str(d), str(v), str(repeats), variant]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(frameworks, sizes, repeats: int, variant: str = "plain") -> list[str]:
    rows = [
        "| framework | N×D×V | implementation | peak memory | vs dense | above dh, dW | vs dense | time | vs dense "
        "| max rel. error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fw in frameworks:
        for n, d, v in sizes:
            impls = [i for i in IMPLS[fw] if variant == "plain" or i != "F.linear_cross_entropy"]  # (no z-loss there)
            results = {impl: measure(fw, impl, n, d, v, repeats, variant) for impl in impls}
            dense = results[IMPLS[fw][2]]
            grads = 4 * (n * d + v * d) / 2**20  # dh and dW in float32: every implementation returns them
            for impl, r in results.items():
                rows.append(
                    f"| {fw} | {n}×{d}×{v} | {impl} | {r['peak_mib']:.1f} MiB | "
                    f"{100 * r['peak_mib'] / dense['peak_mib']:.0f}% | {r['peak_mib'] - grads:.1f} MiB | "
                    f"{100 * (r['peak_mib'] - grads) / (dense['peak_mib'] - grads):.0f}% | {r['ms']:.1f} ms | "
                    f"{r['ms'] / dense['ms']:.2f}× | {r['rel_err']:.1e} |"
                )
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=sorted(IMPLS))
    ap.add_argument("--variant", choices=sorted(SPECS), default="plain")
    ap.add_argument("--worker", nargs=7)
    a = ap.parse_args()
    if a.worker:
        fw, impl, n, d, v, repeats, variant = a.worker
        print(json.dumps(worker(fw, impl, int(n), int(d), int(v), int(repeats), variant)))
        return
    frameworks = [a.only] if a.only else list(IMPLS)
    sizes = [(256, 64, 4096)] if a.quick else [(2048, 256, 8192), (2048, 256, 32768), (8192, 256, 32768)]
    print("\n".join(table(frameworks, sizes, 2 if a.quick else 7, a.variant)))


if __name__ == "__main__":
    main()
