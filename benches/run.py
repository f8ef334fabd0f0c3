"""lossdsl against what a user would otherwise write, in the same process.

    python benches/run.py                 # everything; writes docs/benchmarks.md
    python benches/run.py --quick         # fewer repeats (a smoke run; tests use it)
    python benches/run.py --only users    # one section: std, users, overhead, eager, compiled, compile, check,
                                          # seeds, memory, where

The first section, `users`, is what users run: every `lossdsl.std` loss as shipped and
equivalent spellings of Huber, MSE and cross-entropy against the framework's function
(benches/std_losses.py). The `eager` and `compiled` sections time specs written to match a
fused kernel (benches/specs/), a labelled extra.

Each timing alternates the baseline and lossdsl, repeats, and reports the median ratio
lossdsl / baseline with its spread (min-max over repeats). Values (and gradients) are
compared before anything is timed. Baselines are the framework's own loss where one
exists (F.cross_entropy, F.huber_loss, F.mse_loss, optax, tf.nn) and the formula written by
hand in the framework otherwise.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One thread per framework, and the process's CPU time as the clock: a ratio then measures the
# work each side does, not how the scheduler shared a busy machine with other jobs that round.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "benches" / "specs"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benches"))

import lossdsl  # noqa: E402

QUICK = False


# ---- timing -----------------------------------------------------------------------------------

def _time_block(fn: Callable, number: int) -> float:
    """Seconds of the process's CPU time (every thread of it) per call."""
    start = time.process_time()
    for _ in range(number):
        fn()
    return (time.process_time() - start) / number


def keep_freed_memory() -> None:
    """glibc gives a freed block of 128 KiB or more back to the system, and the next call's
    tensor of that size faults its pages in again: which side of a comparison pays that depends
    on the order of its allocations, not on its work (a cross-entropy measured 1.59× with it,
    1.10× without, same code). Freed tensors up to 32 MiB stay in the heap for both sides."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to set
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest
    libc.mallopt(m_trim_threshold, 1 << 30)



def one_thread(framework: str) -> None:
    """The framework's compute on one thread (JAX's is set by XLA_FLAGS above, before its import)."""
    if framework == "torch":
        import torch

        torch.set_num_threads(1)
    elif framework == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process: set before its first op
            pass


def compare(base: Callable, dsl: Callable, *, target_s: float = 0.1, repeats: int = 11) -> dict:
    """Per-call times of both, interleaved; the ratio dsl/base per repeat, its median and range."""
    if QUICK:
        target_s, repeats = 0.005, 3
    for fn in (base, dsl, base, dsl):  # warm-up (and first-call compilation)
        fn()
    one = max(_time_block(base, 1), 1e-7)
    number = max(1, int(target_s / one))
    base_t, dsl_t, ratios = [], [], []
    for _ in range(repeats):
        b = _time_block(base, number)
        d = _time_block(dsl, number)
        base_t.append(b)
        dsl_t.append(d)
        ratios.append(d / b)
    return {"base": statistics.median(base_t), "dsl": statistics.median(dsl_t), "ratio": statistics.median(ratios),
            "lo": min(ratios), "hi": max(ratios)}


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(r: dict) -> str:
    return f"{r['ratio']:.2f}× ({r['lo']:.2f}–{r['hi']:.2f})"


# ---- the cases ----------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    spec: Path
    sizes: str


def make_inputs(rng, quick: bool):
    s = 0.25 if quick else 1.0
    b, c = int(4096 * s), int(1000 * s)
    n_h = int(1_000_000 * s)
    tv = (16, int(256 * s), int(256 * s))
    n_g = int(2000 * s)
    return {
        "weighted_ce": dict(logits=rng.normal(size=(b, c)).astype(np.float32),
                            y=rng.integers(0, c, b), class_w=rng.uniform(0.5, 2, c).astype(np.float32)),
        "huber": dict(yhat=rng.normal(size=n_h).astype(np.float32), y=rng.normal(size=n_h).astype(np.float32)),
        "total_variation": dict(p=rng.normal(size=tv).astype(np.float32)),
        "graph_distance": dict(emb=rng.normal(size=(n_g, 32)).astype(np.float32),
                               adj=(rng.random((n_g, n_g)) < 0.01).astype(np.float32)),
        "mse_tiny": dict(yhat=rng.normal(size=(8, 4)).astype(np.float32), y=rng.normal(size=(8, 4)).astype(np.float32)),
        "robust": dict(yhat=(3 * rng.normal(size=n_h)).astype(np.float32), y=rng.normal(size=n_h).astype(np.float32)),
    }


CASES = [
    Case("weighted_ce", SPECS / "weighted_ce.loss", "4096×1000"),
    Case("huber", SPECS / "huber.loss", "1M"),
    Case("total_variation", SPECS / "total_variation.loss", "16×256×256"),
    Case("graph_distance", ROOT / "examples" / "graph_distance.loss", "2000×2000 adjacency"),
    Case("mse_tiny", SPECS / "mse.loss", "8×4"),
    Case("robust", SPECS / "robust.loss", "1M, no fused kernel"),
]
PRED = {"weighted_ce": "logits", "huber": "yhat", "total_variation": "p", "graph_distance": "emb", "mse_tiny": "yhat",
        "robust": "yhat"}
CONTEXT = {"weighted_ce": ["class_w"], "graph_distance": ["adj"]}


# Hand-written baselines, per framework. Each takes the arrays of its framework.
def torch_baselines():
    import torch
    import torch.nn.functional as F

    def graph(emb, adj):
        unit = emb / torch.clamp_min(torch.linalg.vector_norm(emb, dim=1, keepdim=True), 1e-8)
        return -torch.sum(torch.where(adj > 0, unit @ unit.T, torch.zeros((), dtype=emb.dtype)))

    return {
        "weighted_ce": lambda logits, y, class_w: F.cross_entropy(logits, y, weight=class_w),
        "huber": lambda yhat, y: F.huber_loss(yhat, y),
        "total_variation": lambda p: torch.mean(torch.abs(p[:, 1:] - p[:, :-1])) + torch.mean(
            torch.abs(p[:, :, 1:] - p[:, :, :-1])),
        "graph_distance": graph,
        "mse_tiny": lambda yhat, y: F.mse_loss(yhat, y),
        "robust": _robust(torch),
    }


def _robust(xp, relu=None, where=None):
    """The robust loss written by hand, as a user would in the framework."""
    def f(yhat, y):
        r = xp.abs(yhat - y)
        rel = relu or (lambda v: xp.clamp(v, min=0))
        wh = where or xp.where
        return xp.mean(xp.log1p(r ** 2) + 0.1 * rel(r - 2.0) + wh(r > 1.0, xp.sqrt(r), r))
    return f


def jax_baselines():
    import jax.numpy as jnp
    import optax

    def ce(logits, y, class_w):
        w = class_w[y]
        return jnp.sum(w * optax.softmax_cross_entropy_with_integer_labels(logits, y)) / jnp.sum(w)

    def graph(emb, adj):
        unit = emb / jnp.maximum(jnp.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
        return -jnp.sum(jnp.where(adj > 0, unit @ unit.T, 0.0))

    return {
        "weighted_ce": ce,
        "huber": lambda yhat, y: jnp.mean(optax.huber_loss(yhat, y)),
        "total_variation": lambda p: jnp.mean(jnp.abs(p[:, 1:] - p[:, :-1])) + jnp.mean(
            jnp.abs(p[:, :, 1:] - p[:, :, :-1])),
        "graph_distance": graph,
        "mse_tiny": lambda yhat, y: jnp.mean((yhat - y) ** 2),
        "robust": _robust(jnp, relu=lambda v: jnp.maximum(v, 0.0)),
    }


def tf_baselines():
    import tensorflow as tf

    def ce(logits, y, class_w):
        w = tf.gather(class_w, y)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        return tf.reduce_sum(w * nll) / tf.reduce_sum(w)

    def huber(yhat, y):
        r = tf.abs(yhat - y)
        return tf.reduce_mean(tf.where(r <= 1.0, 0.5 * tf.square(r), r - 0.5))

    def graph(emb, adj):
        unit = emb / tf.maximum(tf.norm(emb, axis=1, keepdims=True), 1e-8)
        return -tf.reduce_sum(tf.where(adj > 0, tf.matmul(unit, unit, transpose_b=True), 0.0))

    return {
        "weighted_ce": ce,
        "huber": huber,
        "total_variation": lambda p: tf.reduce_mean(tf.abs(p[:, 1:] - p[:, :-1])) + tf.reduce_mean(
            tf.abs(p[:, :, 1:] - p[:, :, :-1])),
        "graph_distance": graph,
        "mse_tiny": lambda yhat, y: tf.reduce_mean(tf.square(yhat - y)),
        "robust": lambda yhat, y: tf.reduce_mean(tf.math.log1p(tf.square(tf.abs(yhat - y))) + 0.1 * tf.nn.relu(
            tf.abs(yhat - y) - 2.0) + tf.where(tf.abs(yhat - y) > 1.0, tf.sqrt(tf.abs(yhat - y)), tf.abs(yhat - y))),
    }


def convert(framework: str, arrays: dict) -> dict:
    from lossdsl.runner import to_backend

    one_thread(framework)

    return {k: to_backend(framework, v, "float32") for k, v in arrays.items()}


def split(case: Case, arrays: dict) -> tuple[dict, dict]:
    ctx_names = CONTEXT.get(case.name, [])
    return ({k: v for k, v in arrays.items() if k not in ctx_names}, {k: v for k, v in arrays.items() if k in ctx_names})


def value_grad_fns(framework: str, case: Case, arrays: dict, baseline: Callable, *, compiled: bool):
    """Two closures computing (value, d value / d pred): the baseline's and lossdsl's."""
    call_args, ctx = split(case, arrays)
    f = lossdsl.compile(case.spec, backend=framework, context=ctx)
    return value_grad_closures(framework, call_args, PRED[case.name], lambda **a: baseline(**a, **ctx), f,
                               compiled=compiled)


def value_grad_closures(framework: str, call_args: dict, pred: str, baseline: Callable, f: Callable, *,
                        compiled: bool):
    """Two closures computing (value, d value / d pred) of `baseline(**call_args)` and `f(**call_args)`,
    eager or under the framework's compiler."""
    rest = {k: v for k, v in call_args.items() if k != pred}
    if framework == "torch":
        import torch

        x = call_args[pred].clone().requires_grad_(True)
        base_fn = (lambda p: baseline(**{pred: p}, **rest))
        dsl_fn = (lambda p: f(**{pred: p}, **rest))
        if compiled:
            # The closures of every case share one code object; without a reset, dynamo would see
            # a new shape for "the same" function and recompile it with dynamic shapes (slower).
            torch._dynamo.reset()
            base_fn, dsl_fn = torch.compile(base_fn, dynamic=False), torch.compile(dsl_fn, dynamic=False)

        def run(fn):
            def go():
                v = fn(x)
                (g,) = torch.autograd.grad(v, [x])
                return v, g
            return go
        return run(base_fn), run(dsl_fn)
    if framework == "jax":
        import jax

        x = call_args[pred]
        base_vg = jax.value_and_grad(lambda p: baseline(**{pred: p}, **rest))
        dsl_vg = jax.value_and_grad(lambda p: f(**{pred: p}, **rest))
        if compiled:
            base_vg, dsl_vg = jax.jit(base_vg), jax.jit(dsl_vg)

        def run(vg):
            def go():
                v, g = vg(x)
                g.block_until_ready()
                return v, g
            return go
        return run(base_vg), run(dsl_vg)
    if framework == "tensorflow":
        import tensorflow as tf

        x = call_args[pred]

        def vg(fn):
            def step(p):
                with tf.GradientTape() as tape:
                    tape.watch(p)
                    v = fn(p)
                return v, tape.gradient(v, p)
            return tf.function(step, jit_compile=True) if compiled else step

        base_vg = vg(lambda p: baseline(**{pred: p}, **rest))
        dsl_vg = vg(lambda p: f(**{pred: p}, **rest))

        def run(fn):
            def go():
                v, g = fn(x)
                _ = g.numpy()  # wait for the result
                return v, g
            return go
        return run(base_vg), run(dsl_vg)
    raise ValueError(framework)


def agree(base: Callable, dsl: Callable, what: str, *, kinked: bool = False) -> None:
    """Values and gradients agree. `kinked`: the loss has a kink (an `abs`) at values that float32
    rounding may put on either side of it (a cumulative sum that returns to about 0); there, one
    gradient element in 10,000 may differ, the others must agree."""
    from lossdsl.runner import to_numpy

    bv, bg = base()
    dv, dg = dsl()
    np.testing.assert_allclose(to_numpy(dv), to_numpy(bv), rtol=2e-4, atol=1e-5, err_msg=f"value of {what}")
    bg, dg = to_numpy(bg), to_numpy(dg)
    tol = dict(rtol=2e-3, atol=1e-5 * max(1.0, float(np.abs(bg).max())))
    if kinked:
        off = ~np.isclose(dg, bg, **tol)
        assert off.mean() <= 1e-4, f"gradient of {what}: {off.sum()} of {off.size} elements differ"
        return
    np.testing.assert_allclose(dg, bg, **tol, err_msg=f"gradient of {what}")


FRAMEWORKS = {"torch": torch_baselines, "jax": jax_baselines, "tensorflow": tf_baselines}


def section_value_grad(compiled: bool) -> list[str]:
    rng = np.random.default_rng(0)
    inputs = make_inputs(rng, QUICK)
    label = "compiled" if compiled else "eager"
    rows = [f"| case | size | framework | baseline | lossdsl | lossdsl / baseline |", "|---|---|---|---|---|---|"]
    for fw, make in FRAMEWORKS.items():
        baselines = make()
        for case in CASES:
            arrays = convert(fw, inputs[case.name])
            base, dsl = value_grad_fns(fw, case, arrays, baselines[case.name], compiled=compiled)
            agree(base, dsl, f"{case.name} on {fw} ({label})")
            r = compare(base, dsl)
            rows.append(f"| {case.name} | {case.sizes} | {fw} | {fmt_time(r['base'])} | {fmt_time(r['dsl'])} | "
                        f"{fmt_ratio(r)} |")
            print(rows[-1], flush=True)
    return rows


def section_kernels_off() -> list[str]:
    """The torch eager cases again with kernel selection switched off: what it buys."""
    from lossdsl.pipeline import printer_for

    rng = np.random.default_rng(0)
    inputs = make_inputs(rng, QUICK)
    baselines = torch_baselines()
    printer = printer_for("torch")
    saved = printer.KERNELS
    rows = ["| case | size | baseline | lossdsl without kernels | ratio |", "|---|---|---|---|---|"]
    try:
        printer.KERNELS = {}
        for case in CASES:
            if case.name == "graph_distance":
                continue
            arrays = convert("torch", inputs[case.name])
            base, dsl = value_grad_fns("torch", case, arrays, baselines[case.name], compiled=False)
            agree(base, dsl, f"{case.name} without kernels")
            r = compare(base, dsl)
            rows.append(f"| {case.name} | {case.sizes} | {fmt_time(r['base'])} | {fmt_time(r['dsl'])} | "
                        f"{fmt_ratio(r)} |")
    finally:
        printer.KERNELS = saved
    return rows


def jaxpr_counts() -> list[str]:
    """Primitive counts of value_and_grad, lossdsl vs hand-written, after inlining nested jits."""
    import jax

    def count(jaxpr) -> int:
        n = 0
        for eqn in jaxpr.eqns:
            inner = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr")
            if inner is not None:
                n += count(getattr(inner, "jaxpr", inner))
            else:
                n += 1
        return n

    rng = np.random.default_rng(0)
    inputs = make_inputs(rng, True)
    baselines = jax_baselines()
    rows = ["| case | hand-written | lossdsl |", "|---|---|---|"]
    for case in CASES:
        call_args, ctx = split(case, convert("jax", inputs[case.name]))
        pred = PRED[case.name]
        rest = {k: v for k, v in call_args.items() if k != pred}
        f = lossdsl.compile(case.spec, backend="jax", context=ctx)
        hand = count(jax.make_jaxpr(jax.value_and_grad(lambda p: baselines[case.name](p, **rest, **ctx)))(
            call_args[pred]).jaxpr)
        ours = count(jax.make_jaxpr(jax.value_and_grad(lambda p: f(**{pred: p}, **rest)))(call_args[pred]).jaxpr)
        rows.append(f"| {case.name} | {hand} | {ours} |")
    return rows


def section_compile_time() -> list[str]:
    from lossdsl import pipeline
    from lossdsl.source import Source

    specs = sorted((ROOT / "examples").glob("*.loss")) + sorted((ROOT / "lossdsl" / "std").glob("*.loss"))
    torch_backend = pipeline.backend_class("torch")
    per_spec = []
    for path in specs:
        text = path.read_text()
        times = []
        for _ in range(5 if QUICK else 30):
            start = time.perf_counter()
            checked = pipeline.check(pipeline.parse(Source(text, str(path)), allow_quick=False))
            pipeline.emit(checked, torch_backend, static_dims=checked.bindings)
            times.append(time.perf_counter() - start)
        per_spec.append((path.name, statistics.median(times)))
    full = []
    for path in specs[:13]:
        ctx = {}
        checked = lossdsl.check(path)
        from lossdsl.sampling import random_inputs

        _, ctx, _ = random_inputs(checked, np.random.default_rng(0))
        times = []
        for _ in range(5 if QUICK else 20):
            start = time.perf_counter()
            lossdsl.compile(path, backend="torch", context=ctx)
            times.append(time.perf_counter() - start)
        full.append(statistics.median(times))
    ms = [t * 1e3 for _, t in per_spec]
    rows = [f"- parse + check + lowering + code generation, per spec ({len(specs)} specs: examples and std): "
            f"median {statistics.median(ms):.2f} ms, max {max(ms):.2f} ms ({max(per_spec, key=lambda x: x[1])[0]})",
            f"- `lossdsl.compile(..., backend=\"torch\")` including `exec` of the generated module, per example: "
            f"median {statistics.median(full) * 1e3:.2f} ms, max {max(full) * 1e3:.2f} ms"]
    return rows


def section_check_process() -> list[str]:
    from check_speed import rows

    return rows(QUICK)


def section_seeds() -> list[str]:
    import torch

    rows = []
    # Seed 002, example 2: GraphDistanceLoss with its double Python loop.
    rng = np.random.default_rng(1)
    n = 60 if QUICK else 150
    emb = torch.tensor(rng.normal(size=(n, 16)), dtype=torch.float32)
    adj = torch.tensor((rng.random((n, n)) < 0.3).astype(np.float32))

    def seed_graph(embeddings):
        loss = torch.tensor(0.0, requires_grad=True)
        for i in range(embeddings.shape[0]):
            for j in range(embeddings.shape[0]):
                if adj[i, j] > 0:
                    similarity = torch.dot(embeddings[i], embeddings[j]) / (
                        torch.norm(embeddings[i]) * torch.norm(embeddings[j]))
                    loss = loss - similarity
        return loss

    f = lossdsl.compile(ROOT / "examples" / "graph_distance.loss", backend="torch", context={"adj": adj})
    e1 = emb.clone().requires_grad_(True)
    e2 = emb.clone().requires_grad_(True)
    v1, v2 = seed_graph(e1), f(e2)
    v1.backward()
    v2.backward()
    np.testing.assert_allclose(float(v2), float(v1), rtol=1e-4)
    np.testing.assert_allclose(e2.grad.numpy(), e1.grad.numpy(), rtol=1e-3, atol=1e-5)
    t_seed = _time_block(lambda: seed_graph(e1).backward(), 1 if not QUICK else 1)
    t_dsl = _time_block(lambda: f(e2).backward(), 20)
    rows.append(f"| graph distance, seed 002 loop vs spec (torch, {n} nodes, value + gradient) | {fmt_time(t_seed)} | "
                f"{fmt_time(t_dsl)} | {t_seed / t_dsl:,.0f}× faster |")

    # Seed 003, scenario 1: confusion-weight look-up. The article's gather_nd reads transposed
    # indices (wrong for B != 2); the baseline is its intent, written correctly.
    import tensorflow as tf

    b, c = (256, 10) if QUICK else (4096, 10)
    W = rng.uniform(0.1, 5.0, (c, c)).astype(np.float32)
    y = np.eye(c, dtype=np.float32)[rng.integers(0, c, b)]
    logits = rng.normal(size=(b, c)).astype(np.float32)
    tW, ty, tl = tf.constant(W), tf.constant(y), tf.constant(logits)

    def seed_confusion(y_true, y_pred):
        idx = tf.stack([tf.argmax(y_true, axis=-1), tf.argmax(y_pred, axis=-1)], axis=-1)
        w = tf.gather_nd(tW, idx)
        return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_true, logits=y_pred) * w)

    g = lossdsl.compile(ROOT / "examples" / "confusion_weighted_ce.loss", backend="tensorflow", context={"W": tW})
    np.testing.assert_allclose(float(g(tl, ty)), float(seed_confusion(ty, tl)), rtol=1e-5)

    def tape(fn):
        def go():
            with tf.GradientTape() as t:
                t.watch(tl)
                v = fn()
            return t.gradient(v, tl).numpy()
        return go

    r = compare(tape(lambda: seed_confusion(ty, tl)), tape(lambda: g(tl, ty)))
    rows.append(f"| confusion-weight look-up, seed 003 (corrected) vs spec (tensorflow eager, {b}×{c}) | "
                f"{fmt_time(r['base'])} | {fmt_time(r['dsl'])} | {fmt_ratio(r)} |")

    # Seed 002, example 3: per-sample weighted loss (DynamicWeightedLoss).
    bb, d = (512, 16)
    pred = torch.tensor(rng.normal(size=(bb, d)), dtype=torch.float32, requires_grad=True)
    lab = torch.tensor(rng.normal(size=(bb, d)), dtype=torch.float32)
    wts = torch.tensor(rng.uniform(size=bb), dtype=torch.float32)

    def seed_dynamic():
        error = (pred - lab) ** 2
        return torch.mean(error * wts.view(-1, 1))

    h = lossdsl.compile(ROOT / "examples" / "dynamic_weights.loss", backend="torch")
    np.testing.assert_allclose(float(h(pred, lab, wts)), float(seed_dynamic()), rtol=1e-6)
    r = compare(lambda: torch.autograd.grad(seed_dynamic(), [pred]), lambda: torch.autograd.grad(h(pred, lab, wts), [pred]))
    rows.append(f"| per-sample weights, seed 002 vs spec (torch eager, {bb}×{d}) | {fmt_time(r['base'])} | "
                f"{fmt_time(r['dsl'])} | {fmt_ratio(r)} |")
    return ["| scenario | seed's code | lossdsl | ratio |", "|---|---|---|---|"] + rows


MEMORY_WORKER = r'''
import sys, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
sys.path.insert(0, sys.argv[1])
import numpy as np, torch
import benches.run as B

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])  # KiB

case = next(c for c in B.CASES if c.name == sys.argv[2])
arrays = B.convert("torch", B.make_inputs(np.random.default_rng(0), sys.argv[4] == "quick")[case.name])
base, dsl = B.value_grad_fns("torch", case, arrays, B.torch_baselines()[case.name], compiled=False)
fn = base if sys.argv[3] == "base" else dsl
fn()
import gc; gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident set size (VmHWM) to the current one
before = rss("VmRSS:")
for _ in range(3):
    fn()
print(rss("VmHWM:") - before)
'''


def section_memory() -> list[str]:
    """Peak growth of the resident set during three value + gradient calls, after one warm-up
    call, in a fresh process per measurement (Linux: /proc/self/clear_refs resets the peak).
    PyTorch has no peak-memory counter on the CPU; on a GPU, torch.cuda.max_memory_allocated is
    the measure to use."""
    rows = ["| case | baseline peak growth | lossdsl peak growth |", "|---|---|---|"]
    for case in CASES[:4]:
        peaks = {}
        for impl in ("base", "dsl"):
            # A fixed mmap threshold makes glibc return each large block as it is freed, so the
            # peak resident set follows the live tensors (the dynamic threshold makes it noisy).
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
            out = subprocess.run([sys.executable, "-c", MEMORY_WORKER, str(ROOT), case.name, impl,
                                  "quick" if QUICK else "full"], capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise RuntimeError(out.stderr[-2000:])
            peaks[impl] = int(out.stdout.split()[-1]) / 1024  # KiB -> MiB
        rows.append(f"| {case.name} ({case.sizes}) | {peaks['base']:.1f} MiB | {peaks['dsl']:.1f} MiB |")
    return rows


USERS_NOTE = [
    "Each `lossdsl.std` loss as shipped, called as users call it (`f(pred, target)`, the API's default mean), "
    "with default and non-default params, and equivalent spellings a user might write, against the framework's "
    "own function: value and gradient with respect to the first pred, B=4096 samples, D=256 features, C=1000 "
    "classes, float32, median of 7 interleaved rounds (`python benches/std_losses.py` runs this section alone). "
    "Eager is torch eager, TensorFlow eager and JAX's jitted compute called eagerly; compiled is `torch.compile`, "
    "`tf.function(jit_compile=True)` and `jax.jit(jax.value_and_grad)`. TensorFlow and JAX rows exist where "
    "the framework ships the loss. The rest of the library (arcface to z_loss_cross_entropy) runs at its inputs' "
    "own sizes (`MORE_KINDS` in benches/std_losses.py: pairwise losses B=256, boxes 65536, segmentation 16×1024×10, "
    "classes 4096×1000) against torch.nn.functional where it ships the loss, else the formula by hand in torch.",
]

STD_TITLE = "Every std loss on every framework, eager and compiled (small inputs)"


STD_REPEATS = 9  # rounds per row: a median of 5 moved by 10% between runs on a shared 2-core machine


def std_section() -> list[str]:
    """Every row of benches/std_losses.py on torch, TensorFlow and JAX, eager and compiled, at the
    "small" sizes: a compile per row and framework is most of the run's time, so this table is
    measured at sizes where it fits in minutes on a small machine."""
    import std_losses

    std_losses.SIZE = "small"
    b, d, c = std_losses.SIZES["small"]
    cmd = "OMP_NUM_THREADS=1 python benches/run.py --only std"
    note = [
        f"Measured {datetime.date.today().isoformat()} with `{cmd}` (this table alone). Every row of "
        "benches/std_losses.py (each `lossdsl.std` loss as shipped, default and non-default params, and "
        "equivalent spellings) against the framework's function, or the same formula by hand in the framework "
        "where it ships none (benches/std_reference.py for TensorFlow and JAX): value and gradient with respect "
        f"to the first pred, float32, at the \"small\" sizes: B={b}, D={d}, C={c} (pairwise losses B=64, boxes "
        "8192, segmentation 4×256×10, the rest a quarter of the users' table's sizes). The process's CPU time, "
        f"one thread per framework, median of {STD_REPEATS} interleaved rounds of about 20 ms each, min–max in "
        "brackets. "
        "Eager is torch eager, TensorFlow eager and `jax.value_and_grad` called op by op (lossdsl's compute is "
        "jitted inside on JAX and one traced graph on TensorFlow, the baseline is not); compiled is "
        "`torch.compile`, `tf.function(jit_compile=True)` and `jax.jit`. At these sizes a call takes "
        "microseconds to a few milliseconds, so the per-call cost of the argument checks (the overhead table) "
        "weighs more than in the users' table.",
        "",
    ]
    return note + std_losses.table(QUICK, target_s=0.02, repeats=STD_REPEATS) + [""] + STD_NOTES


STD_NOTES = """How to read this table, and the rows above 1.05×:

- **The clock.** Each ratio is of the process's CPU time (`time.process_time`, all its threads),
  one thread per framework (`torch.set_num_threads(1)`, TensorFlow's intra- and inter-op pools
  of one thread, `XLA_FLAGS` with one Eigen thread), baseline and lossdsl interleaved. CPU time
  leaves out the time the scheduler gave other jobs, so a ratio holds on a loaded machine
  (checked: the same ratios with two busy loops running alongside); caches and memory bandwidth
  are still shared, so read each median with its range, and a row above 1.05× in one run and
  not in the next as noise. Freed tensors up to 32 MiB stay in the process's heap
  (`mallopt`): otherwise glibc gives each back to the system and the next call faults its
  pages in again, and which side pays for that depends on the order of its allocations (torch
  eager cross-entropy measured 1.59× with it and 1.10× without, the same code).
- **This run's noise.** The machine was noisier for this table than for the one before it
  (same command, same clock): rows whose generated code did not change moved by up to 0.3×,
  and some ranges span 2× and more. TensorFlow eager `margin_ranking`, `poisson_nll` and
  cross-entropy, for example, read 1.1–1.2× here against 0.8–1.0× before; the code before this
  table's changes, run alternately with the current code by
  `python benches/std_losses.py --size small --framework tensorflow --eager --row ...`,
  measured 1.23–1.34×, 1.12–1.15× and 1.16× against the current code's 1.32–1.61×, 1.07–1.17×
  and 1.08–1.20×. Read a row above 1.05× whose range reaches below 1.0 as not told apart.
- **Per-call cost.** At these sizes a call takes 50 µs to 3 ms, and what a call costs beyond
  the compute counts: the argument checks (about 1 µs for two arguments, the overhead table),
  an int label's range check (about 3 µs on the CPU) and, under `torch.compile`, the guards on
  the loss's argument checks (about 5 µs a call against 2 µs for `F.smooth_l1_loss`: the
  `TorchDynamo Cache Lookup` event of torch.profiler, the only event that differed). On a
  50 µs loss (torch eager `mse`, `huber`, `smooth_l1` and their spellings, 1.06–1.10×) that
  is what is left: the same fused call (`F.mse_loss`, `F.huber_loss(..., delta=...)`) with
  the same operations in torch.profiler, and 3–4 µs of Python around it. The cross-entropies
  (1.09–1.18×) are `F.cross_entropy` plus the label range check and, for an ignored label or
  class weights, the count or the weights seen (a few small operations over B).
- **`torch.where` on the CPU.** PyTorch's CPU `where` and comparisons cost several times a
  multiplication (one thread, float32: 1M elements with a random mask, `where` 3.8–4.1 ms
  against 0.09–0.12 ms for `x * y`; 256K elements with a mask 98% true, `where` 116 µs, `x > 0`
  94 µs, `x * y` 33 µs). The language's `where` guarantee (docs/language.md §4) is a `where`
  per guarded operand, and the torch eager rows that stay above 1.05× are the guarded ones
  (torch.profiler, per call): `kl_div` (8 `where`s against `F.kl_div`'s one `xlogy`; the
  spec's term is exactly 0 where `p` is 0, even where `log_q` is `-inf`, which `F.kl_div` makes
  NaN), `cosine_embedding` (26 against 7 in one value and gradient: the cosine is computed once,
  guarded under the `or` of its two branches' conditions, and each branch reads it through a
  select on its own; before, it was computed once per branch: 1.45× eager, 1.19× compiled),
  `nt_xent` and `supcon` (21 and 15 against 9). The derived backward's gradient of `relu` is torch's own
  `threshold_backward` for this reason (one pass), and `sigmoid`'s and `tanh`'s are
  `sigmoid_backward` and `tanh_backward`.
- **The derived backward** (torch eager, 65536 pred elements and more) now puts a literal factor
  on the reduced gradient before it is spread back (`-2 / D` on B values, not on B × D), builds a
  term two rules make alike once, and uses the fused gradients above; against torch's autograd
  on the same compute (`squared_hinge`, `hinge`: 1.22× and 1.36× at 65536 elements before, 0.80×
  and 0.93× after; at 1M elements 1.12× and 1.32× before, 0.44–0.68× and 0.65–0.78× after).
  Where it saves no pass over the data it costs its Python backward: `jaccard` (1.08× plain,
  1.18× derived, same run); `dice` and `tversky` declare their labels in [0, 1] so that their
  denominators need no `maximum` to be known positive (the `maximum` and its gradient were
  most of their 1.2×).
- **TensorFlow eager** calls the compute as one traced graph (one dispatch forward, one
  backward, where op by op each operation and each of its gradient's was one: 41 ops a call
  for cross-entropy against the baseline's 8), traced once per shape, dtype and static
  argument (docs/backends.md). Every eager TensorFlow row is now at or under the baseline,
  most well under it (the baselines dispatch op by op).
- **Box losses: one split per box tensor.** The gradient of each of a box's four column
  slices `b[:, k]` is a zero tensor of the box's size with its column set. Under TensorFlow's
  `jit_compile`, XLA made their sum a pad-and-add fusion that recomputed every per-box gradient
  expression for each of the four columns (diou, 8192 boxes: 435 µs against 232 µs); under
  `torch.compile`, inductor made it a loop over the columns holding every column's expression
  (giou's backward graph twice the hand-written form's). A tensor read column by column is now
  split once (lossdsl/columns.py: `tf.unstack`, torch's `unbind(-1)`), whose gradient is one
  stack. Same-process before/after: TensorFlow `jit_compile` diou 1.66–1.87× → 0.81–0.86×, giou
  1.21× → 0.56–0.60×, ciou 1.31–1.38× → 0.92–0.96×; `torch.compile` giou 1.41× → 1.04×, diou
  1.39× → 1.04×, ciou 1.15× → 1.01× (25 interleaved rounds). What is left under
  `torch.compile` is the language's tie-splitting `maximum`/`minimum` gradients for the union
  and the hull, against the baseline's `clamp`.
- **JAX under `jax.jit`**: `logaddexp`, `softplus`, `log_sigmoid` and `atan2` have rules that
  compute one transcendental for value and gradient (`nt_xent` 1.9× → 0.95×, `log_cosh` 1.13×
  → 0.77×, `ciou` 1.27× → 0.97×); `relu` is a select (XLA fused `jax.nn.relu` into the
  following reduction after writing an array of zeros: `hinge` 1.27× → 1.01×) and `norm`'s
  p = 2 a product and a root (`triplet`). `hinge_embedding` (about 1.2×) is the spec's own
  form, two selects and an add to match torch where a label is neither 1 nor -1: the
  hand-written form spelled with the same selects measures 1.40× against optax's.
- **The other rows above 1.05×, profiled** (torch.profiler, per call, lossdsl against the
  baseline): torch eager `circle` (1.27×: 20 `where`s against 8, the guards above),
  `lovasz_hinge` and `sparsemax` (1.11–1.13×: most of it the stable sort the language
  requires for ties, 2.02 ms against 1.80 ms and 9.3 ms against 8.6 ms), `multiclass_hinge`
  (1.21×: two comparisons for the true class's mask where the baseline makes one, 320 µs
  against 194 µs), `msle` (1.14×: `torch.maximum`'s tie-splitting gradient, a comparison, a
  `where` and a `masked_fill`, against `torch.clamp`'s one `where`), `jaccard` (1.19×: the
  derived backward's Python function, for no pass saved; 1.08× on the plain path).
- **Profiled and fixed.** `torch.compile` `softmax_focal` (1.17–1.24× → 1.05×): inductor
  computed the gradient of `F.cross_entropy(..., reduction='none')` as a sum over a one-hot
  with the row's whole gradient recomputed for each class; under `torch.compile` a per-sample
  cross-entropy is now a gather of `log_softmax`, whose gradient is one scatter, as the
  baseline's (eager keeps `F.cross_entropy`). What is left is dynamo's guards: 144 leaf guards
  against 17, `TorchDynamo Cache Lookup` 17 µs against 8 µs a call. TensorFlow `jit_compile`
  `mse` and its spellings (1.13–1.17× → 0.94–1.01×): lossdsl's HLO reduced the whole matrix in
  one `reduce-window` of 32×32 tiles across rows, where keras's reduces each row and then the
  rows; the mean of a tensor of two or more axes is now printed as the mean of its row means
  (245–250 µs → 217–218 µs, keras 214–218 µs). TensorFlow `listnet` (1.35× → 0.96–1.10×): 11
  fusions and two `exp`s against 8 and one, because autodiff wrote `-g * y` out and summed it
  again; the soft-label cross-entropy is now a custom gradient `softmax(z) * sum(y) - y`, right
  for labels of any sum (which `tf.nn.softmax_cross_entropy_with_logits`'s `softmax - labels`
  is not), 9 fusions and one `exp`, the extra fusion the labels' row sum.
- **The rows at 1.06–1.16× compiled.** `torch.compile` (torch.profiler, per call): for
  `charbonnier` and `tversky` the compiled graphs take what the baseline's take, and the
  difference is `TorchDynamo Cache Lookup` (70 µs and 23 µs a call: the guards above); the
  same holds for the other small rows (`huber`, `poisson_nll`, `margin_ranking`, `dice`,
  `z_loss_cross_entropy`, the spellings). A graph is slower for `ciou` (869 µs against 695 µs:
  its tie-splitting `maximum`s and `minimum`s and `atan2`'s gradient at the origin), `log_cosh`
  (124 µs against 95 µs), cross-entropy with smoothing (261 + 179 µs against 203 + 174 µs, plus
  44 µs of guards) and `nt_xent` (one graph of 505 µs; not broken down). TensorFlow
  `jit_compile` `huber`/`smooth_l1` (1.04–1.07×): the optimized HLO is the baseline's plus four
  selects and an `abs` per element, the target's guard in each branch (docs/language.md §4).
  `jax.jit` `mse`, `mae`, `arcface`, `dice`, `margin_ranking`, `circle` (1.06–1.09×, most ranges
  reaching 1.0 or below): at or under 1.05× in the runs made for the JAX changes (the same
  command), not told apart from noise here.
- **JAX `smooth_l1`** (1.09–1.17×): the bench captures the target as a constant of the jitted
  step, and XLA folds the target guarded per branch (docs/language.md §4) into a second
  constant array; with the target passed as an argument of the jitted step it measured 1.03×
  against 1.01× for the hand-written form with the same guards.
- **torch.compile**: cross-entropy with an ignored label is `F.cross_entropy`'s own mean under a
  `where` on the count (0 when every label is ignored); inductor compiled the sum-over-count form's
  backward with smoothing into a column-wise kernel (519 µs against 348 µs); a gather along an
  axis with `arange`s on the others (`lovasz_softmax`) is one `torch.gather`. `lovasz_softmax`
  (1.2×) sorts stably, as docs/language.md requires for ties (384 µs against 308 µs unstable).
  `hinge_embedding` (1.2× → 1.0×) was the per-sample mean then the API's mean, and inductor
  stored two bool masks between the two reductions (one mean by hand: 2.41 ms, two: 3.01 ms):
  where the normal form makes the two one mean, torch now computes that one mean, under
  `torch.compile` and eager below 65536 pred elements; eager above it, the API's mean of the
  per-sample compute with its derived backward stays faster (`squared_hinge` at 1M elements:
  0.74× against 0.99× with one mean).
""".splitlines()


WHERE_GUARD_NOTE = [
    "A float target, input, context or param that a branch of `where` reads is guarded, so that NaN or inf "
    "data in the lanes the branch does not take (a missing label) gives gradient 0 instead of NaN "
    "(docs/language.md §4). Compared: lossdsl as shipped, lossdsl with the guard turned off, and the formula "
    "by hand (which gives NaN gradients); `python benches/where_guard.py` runs this section alone. The guard "
    "is one `where` over each guarded argument in the forward pass; targets need no gradient, so the "
    "backward is unchanged. Under `jax.jit` XLA fuses it.",
]

NOTES = """## What the numbers say, and what was done about them

- **Kernel selection** (`lossdsl/kernels.py`) is what brings the eager PyTorch losses to the
  frameworks' own speed (compare the table with kernel selection switched off: an op-by-op
  lowering of Huber is many times slower than `F.huber_loss`); MSE, L1, smooth L1,
  cross-entropy (class weights, soft labels) and BCE with logits likewise. The subexpression is recognised by the IR's structure,
  and each fused call is proven equal to the decomposed form, kinks included
  (`tests/test_kernels.py`). Not every fused call qualifies: TensorFlow's
  `softmax_cross_entropy_with_logits` has gradient `softmax - labels`, which is the gradient of
  `-sum(y * log_softmax(z))` only when the labels sum to 1, so TensorFlow keeps the decomposed
  form for soft labels (the parity suite, whose labels are arbitrary, caught it).
- **Losses no framework ships** (the `robust` case, and Huber with kernel selection switched
  off): on PyTorch the backward is derived from the spec at compile time and run as one
  `autograd.Function` (`lossdsl/autodiff.py`) for inputs of 65536 elements and more (below that
  its Python backward costs more than it saves, and the plain path runs). What it gains depends on
  the formula: Huber's derived backward is `where(|r| <= 1, g * |r|, g) * sign(r)`, two passes where
  the tape makes many more; the robust loss's is about as long as the tape. It never makes a loss
  one fused kernel, which is why kernel selection comes first.
- **TensorFlow eager, graph distance**: the conventions cost a few eager ops: `norm` with
  gradient 0 at 0 and `maximum` splitting ties take several small ops where `tf.norm` and
  `tf.maximum` take one each (and give NaN at 0, and a whole gradient to one side). Under
  `tf.function(jit_compile=True)` XLA fuses them and the ratio is 1.
- **Tiny losses under `torch.compile`**: one graph, no breaks (`torch._dynamo.explain`); what is
  left is the guards on the compiled loss's argument checks, a constant few microseconds per call,
  visible only when the loss itself takes microseconds.
- **A benchmark artefact, found and fixed**: `torch.compile` ratios used to depend on what ran
  before in the process (1.0× alone, 1.2× after another case). The closures of every case shared
  one code object, so dynamo saw "the same" function with new shapes and recompiled it with
  dynamic shapes. The harness now resets dynamo and compiles with `dynamic=False` per case.
- **JAX eager** is faster than the op-by-op baseline because the loss's compute function is
  jitted: a call is one dispatch. Inside a user's `jax.jit` it inlines, and the compiled ratios
  are about 1 (graph distance has more primitives, from the `norm` and `maximum` conventions;
  XLA fuses them).
- **Noise, and how to re-run**: every ratio here is from one shared, noisy 2-core virtual
  machine (other jobs ran alongside; single rounds moved by 2× and more). This harness now
  times the process's CPU time, which other jobs do not add to (the std and overhead tables
  were measured so); a section dated before 2026-12-02 was timed by the wall clock. Medians
  of interleaved rounds are the figures to read, and the min–max range says how far to trust each. Re-run a section with
  `OMP_NUM_THREADS=1 python benches/run.py --only users` (or `std`, `overhead`, `check`, ...):
  it replaces that section of this file and leaves the rest.
- **What users run** (the first section): kernel selection now sees the losses as shipped. The
  IR is put in a normal form first (`lossdsl/canonical.py`), so `(y - yhat)^2`, `r * r`,
  `abs(r)^2`, `1.0 > d` and `logsumexp(z) - pick(z, y)` reach the pattern their textbook
  spelling reaches; a scalar `param` (`delta`, `beta`, `label_smoothing`, `ignore_index`,
  `pos_weight`) reaches the fused call as a Python number; a per-sample loss gets a
  `compute_mean` in which the API's default mean and the loss's own mean over features are one
  mean, so `lossdsl.std`'s Huber is `F.huber_loss(yhat, y, delta=n_delta)`; cross-entropy with
  an ignored label is `F.cross_entropy(..., ignore_index=..., reduction='sum')` over the count
  (0, not NaN, when every label is ignored), and on JAX and TensorFlow `logsumexp(z) - z[y]`
  (through `tf.nn`'s fused op on TensorFlow) with no `log_softmax` of the whole batch and no
  smoothing term when the smoothing is 0. `weighted_cross_entropy` is
  `F.cross_entropy(..., weight=class_w, reduction='sum')` over the weights of the labels seen
  (its guarded form is the `weighted_ce` kernel's pattern); on TensorFlow and JAX the same
  kernel is a fused sparse cross-entropy weighed by the labels' class weights, with no
  smoothing term when the smoothing is the number 0.
- **Compiled torch losses with params** (triplet 4.7×, focal 2.7×, cross-entropy with label
  smoothing 1.9×, margin ranking 1.9× in the table before): `torch._dynamo.explain` showed 1 to 4
  graph breaks per call, all `ndarray.dtype`: a param given as a Python number (its default
  included) became a tensor through NumPy, which dynamo does not trace. The torch backend now
  makes it with `torch.tensor(x, dtype=torch.float64)` (NumPy's precision) and keeps nothing
  made while torch.compile traces: one graph, no break
  (`tests/test_torch_params_compiled.py`); the ratios after are in the tables above.
- **focal**: `(1 - p_t) ^ gamma` with `gamma` a 0-d tensor is torch's general power, forward
  and backward: measured 5.0 ms against 0.96 ms for `** 2.0` (4096×256, value and gradient,
  eager), and 22.8 ms against 10.4 ms for the whole focal loss under `torch.compile`. A float
  param as an exponent is now printed as `x ** (n_gamma if n_gamma is not None else p_gamma)`,
  the Python number where the caller gave one. Its cross-entropy term now reaches
  `F.binary_cross_entropy_with_logits(reduction='none')`: kernel selection declined it because
  `1 - y` is shared with `p_t`; a shared node of the targets alone no longer counts (it costs
  the fused call nothing; a shared node of the preds still does, `tests/test_kernels.py`).
- **kl_div**: the derived backward was `-where(p > 0, where(p > 0, p * g, 0), 0)` and the
  forward guarded `p` inside `p > 0` as well. A comparison's operands are no longer guarded (no
  gradient flows through a bool), and the backward reads a `where` of the same condition
  through: the backward is one masked product. What is left is the contract: the spec's term
  is exactly 0 where `p` is 0, even where `log_q` is `-inf` (`F.kl_div` gives NaN there), which
  costs the `where` over the product and the guarded `log` that `F.kl_div` (`xlogy(p, p) - p *
  log_q`) does not make; no fused call gives that value, so none is used.
- **poisson_nll**: `F.poisson_nll_loss` is `exp(x) - y * x` written in Python, no fused call;
  lossdsl's derived backward is the same two passes (0.95× eager after these changes, 1.74× in
  the earlier table was noise: its range was 0.13–11).
- **Memory** is the growth of the resident set during the calls, with a fixed glibc mmap
  threshold so that freed tensors leave the resident set; lossdsl allocates what the baseline
  allocates.
""".splitlines()


def machine() -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for mod in ("torch", "tensorflow", "jax", "optax", "numpy"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} missing")
    return [f"- machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
            f"- Python {platform.python_version()}; {', '.join(versions)}",
            "- device: CPU. No GPU was available where this was measured; GPU numbers are missing."]


def main() -> int:
    global QUICK
    keep_freed_memory()  # the timing process only: a test that imports this module keeps glibc's defaults
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    ap.add_argument("--only", choices=["std", "users", "overhead", "eager", "compiled", "compile", "check", "seeds", "memory", "where"])
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"), help="'-' for stdout only")
    ap.add_argument("--case", action="append", help="only these cases (eager and compiled sections)")
    args = ap.parse_args()
    QUICK = args.quick
    if args.case:
        CASES[:] = [c for c in CASES if c.name in args.case]
    sections: list[tuple[str, list[str]]] = []
    want = (lambda s: args.only in (None, s))
    if want("users"):
        from std_losses import table as users_table

        sections.append(("What users run: the std losses and equivalent spellings against the framework",
                         USERS_NOTE + [""] + users_table(QUICK)))
    if want("std"):
        sections.append((STD_TITLE, std_section()))
    if want("overhead"):
        from overhead import table as overhead_table

        sections.append(("Per-call overhead (PyTorch eager)", overhead_table(QUICK)))
    if want("eager"):
        sections.append(("Extra: specs written to match a kernel, eager", section_value_grad(compiled=False)))
    if want("eager"):
        sections.append(("Extra: PyTorch eager with kernel selection switched off", section_kernels_off()))
    if want("compiled"):
        sections.append(("Extra: specs written to match a kernel, compiled: `torch.compile`, "
                         "`jax.jit(jax.value_and_grad)`, `tf.function(jit_compile=True)`",
                         section_value_grad(compiled=True)))
        sections.append(("JAX primitives in `value_and_grad` (nested jits inlined)", jaxpr_counts()))
    if want("compile"):
        sections.append(("Compile time", section_compile_time()))
    if want("check"):
        sections.append(("`lossdsl check`", section_check_process()))
    if want("seeds"):
        sections.append(("The seeds' own code", section_seeds()))
    if want("memory"):
        sections.append(("Peak memory of value + gradient (torch, CPU)", section_memory()))
    if want("where"):
        from where_guard import table as where_guard_table

        sections.append(("The `where` guard", where_guard_table(quick=QUICK) + [""] + WHERE_GUARD_NOTE))
    cmd = "python benches/run.py" + (" --quick" if QUICK else "") + (f" --only {args.only}" if args.only else "")
    lines = ["# Benchmarks", "",
             f"Measured {datetime.date.today().isoformat()} with `{cmd}` (`make bench`). Times are per call "
             "(value and gradient with respect to the pred); ratios are lossdsl / baseline, median over repeats "
             "with the min–max range, the two interleaved. Values and gradients are compared before timing.", ""]
    lines += machine() + [""]
    for title, rows in sections:
        lines += [f"## {title}", ""] + rows + [""]
    lines += NOTES
    text = "\n".join(lines)
    if args.out != "-" and not QUICK:
        out = Path(args.out)
        if args.only and out.exists():
            # One section measured again: it replaces its namesake in the document, the rest stays.
            stamp = f"Measured {datetime.date.today().isoformat()} with `{cmd}`."
            text = replace_sections(out.read_text(), [
                (t, ([] if rows and rows[0].startswith("Measured") else [stamp, ""]) + rows) for t, rows in sections])
        out.write_text(text)
    print(text)
    return 0


def replace_sections(doc: str, sections: list[tuple[str, list[str]]]) -> str:
    """`doc` with each `## title` section's body replaced (a new title goes before the first section)."""
    lines = doc.splitlines()
    for title, rows in sections:
        body = [f"## {title}", ""] + rows + [""]
        heads = [i for i, line in enumerate(lines) if line.startswith("## ")]
        at = next((i for i in heads if lines[i] == f"## {title}"), None)
        if at is None:
            first = heads[0] if heads else len(lines)
            lines[first:first] = body
        else:
            end = next((i for i in heads if i > at), len(lines))
            lines[at:end] = body
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
