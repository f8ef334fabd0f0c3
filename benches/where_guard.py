"""What guarding the data under `where` costs: the missing-label loss, value and gradient.

    python benches/where_guard.py            # prints a markdown table (docs/benchmarks.md)
    python benches/where_guard.py --quick    # fewer repeats

Three ways, alternated in one process, median of rounds: lossdsl as shipped (the target that a
branch reads is guarded, so a NaN label gives gradient 0), lossdsl with that guard turned off
(the gradient is NaN at a missing label), and the same formula written by hand in the framework
(NaN too). The ratio shipped / unguarded is the guard's cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lossdsl  # noqa: E402
import lossdsl.passes  # noqa: E402

SPEC = """pred   yhat: float[B]
target y:    float[B]
loss = sum(where(y == y, (yhat - y)^2, 0.0)) / maximum(sum(float(y == y)), 1.0)
"""


def compile_both(backend: str):
    shipped = lossdsl.compile(SPEC, backend=backend)
    original = lossdsl.passes._is_data
    lossdsl.passes._is_data = lambda node: False  # the guard off, for comparison only
    try:
        unguarded = lossdsl.compile(SPEC, backend=backend)
    finally:
        lossdsl.passes._is_data = original
    return shipped, unguarded


def torch_cases(n: int):
    import torch

    torch.set_num_threads(1)
    shipped, unguarded = compile_both("torch")
    yhat = torch.randn(n, requires_grad=True)
    y = torch.randn(n)
    y[::100] = float("nan")

    def by_hand(a, b):
        keep = b == b
        return torch.where(keep, (a - b) ** 2, 0.0).sum() / keep.sum().clamp(min=1)

    def step(f):
        def run():
            yhat.grad = None
            f(yhat, y).backward()
        return run

    return {"lossdsl": step(shipped), "lossdsl, guard off": step(unguarded), "by hand": step(by_hand)}


def jax_cases(n: int):
    import jax
    import jax.numpy as jnp

    shipped, unguarded = compile_both("jax")
    yhat = jnp.asarray(np.random.default_rng(0).normal(size=n), jnp.float32)
    y = np.random.default_rng(1).normal(size=n).astype(np.float32)
    y[::100] = np.nan
    y = jnp.asarray(y)

    def by_hand(a, b):
        keep = b == b
        return jnp.where(keep, (a - b) ** 2, 0.0).sum() / jnp.maximum(keep.sum(), 1)

    def step(f):
        g = jax.jit(jax.value_and_grad(f))
        g(yhat, y)[1].block_until_ready()
        return lambda: g(yhat, y)[1].block_until_ready()

    return {"lossdsl": step(shipped), "lossdsl, guard off": step(unguarded), "by hand": step(by_hand)}


def measure(cases: dict, rounds: int, number: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return {k: statistics.median(v) for k, v in times.items()}


def table(n: int = 1 << 20, quick: bool = False) -> list[str]:
    rounds, number = (3, 3) if quick else (15, 10)
    rows = [f"missing-label loss, value + gradient, {n} float32 elements, 1% NaN labels, one thread, "
            f"median of {rounds} interleaved rounds", "",
            "| framework | lossdsl (µs) | guard off (µs) | by hand (µs) | guard cost | lossdsl / by hand |",
            "|---|---|---|---|---|---|"]
    for name, make in (("torch eager", torch_cases), ("jax.jit", jax_cases)):
        t = measure(make(n), rounds, number)
        rows.append(f"| {name} | {t['lossdsl'] * 1e6:.0f} | {t['lossdsl, guard off'] * 1e6:.0f} | "
                    f"{t['by hand'] * 1e6:.0f} | {t['lossdsl'] / t['lossdsl, guard off']:.2f}x | "
                    f"{t['lossdsl'] / t['by hand']:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-n", type=int, default=1 << 20)
    args = parser.parse_args()
    print("\n".join(table(args.n, args.quick)))


if __name__ == "__main__":
    main()
