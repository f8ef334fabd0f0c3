"""Per-call overhead on PyTorch eager: the 8×4 MSE (where the loss itself costs microseconds)
against F.mse_loss, and what each piece of the generated entry's checks costs.

    python benches/overhead.py            # prints the table
    python benches/run.py --only overhead # the section of docs/benchmarks.md
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benches"))

import lossdsl  # noqa: E402

MSE = "pred yhat: float[B, D]\ntarget y: float[B, D]\nloss = mean((yhat - y)^2)\n"
CE = "pred z: float[B, C]\ntarget k: int[B]\nloss = mean(-pick(log_softmax(z, axis=C), k))\n"


def _us(stmt, ns: dict, number: int = 5000) -> float:
    """Microseconds of CPU time per call, the least of several repeats (what the code costs, not the noise)."""
    return min(timeit.repeat(stmt, globals=ns, number=number, repeat=7, timer=time.process_time)) / number * 1e6


def _interleaved(base, dsl, rounds: int, number: int) -> tuple[float, float, list[float]]:
    bs, ds, ratios = [], [], []
    for _ in range(rounds):
        s = time.process_time()  # the process's CPU time, as benches/run.py
        for _ in range(number):
            base()
        b = (time.process_time() - s) / number
        s = time.process_time()
        for _ in range(number):
            dsl()
        d = (time.process_time() - s) / number
        bs.append(b)
        ds.append(d)
        ratios.append(d / b)
    return statistics.median(bs), statistics.median(ds), ratios


def table(quick: bool = False) -> list[str]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    f = lossdsl.compile(MSE, backend="torch")
    g = lossdsl.compile(CE, backend="torch")
    x = torch.randn(8, 4, requires_grad=True)
    y = torch.randn(8, 4)
    z = torch.randn(8, 4)
    k = torch.randint(0, 4, (8,))

    def base():
        return torch.autograd.grad(F.mse_loss(x, y), [x])

    def dsl():
        return torch.autograd.grad(f(x, y), [x])

    for fn in (base, dsl):
        for _ in range(200):
            fn()
    b, d, ratios = _interleaved(base, dsl, 5 if quick else 21, 200 if quick else 2000)
    rt, be = f._runtime, f._backend
    ns = {"f": f, "g": g, "rt": rt, "be": be, "x": x, "y": y, "z": z, "k": k, "F": F, "torch": torch,
          "grt": g._runtime, "cdt": torch.float32, "compute": f.compute, "dev": x.device}
    n = 1000 if quick else 20000
    pieces = [
        ("the call: arguments bound, reduction read (`CompiledLoss.__call__` less `entry`)",
         _us("f(x, y)", ns, n) - _us("f._entry(x, y)", ns, n)),
        ("an argument's kind and dtype kind (`_arg_float`)", _us("rt.arg_float(0, x)", ns, n)),
        ("its rank and sizes (`_shape` and the comparisons, 2 axes)",
         _us("s = be.shape(x)\nif len(s) != 2: pass\nif s[0] != 8: pass\nif s[1] != 4: pass", ns, n)),
        ("the compute dtype and device (`_compute_dtype`, `_device`)",
         _us("be.compute_dtype(x); be.device_key(x)", ns, n)),
        ("an argument's conversion to the compute dtype (`_to_float`, already float32)",
         _us("be.to_float(x, cdt)", ns, n)),
        ("an int index argument's range on the CPU (`_check_index`: aminmax and one read)",
         _us("grt.check_index(0, k, 4)", ns, n)),
        ("the whole entry, 8×4 MSE, two arguments (`entry` less `compute`)",
         _us("f._entry(x, y)", ns, n) - _us("compute(x, y, cdt, dev)", ns, n)),
    ]
    rows = [f"8×4 MSE, value and gradient, one thread, median of {len(ratios)} interleaved rounds: "
            f"`F.mse_loss` {b * 1e6:.1f} µs, lossdsl {d * 1e6:.1f} µs, **{statistics.median(ratios):.2f}×** "
            f"({min(ratios):.2f}–{max(ratios):.2f}).", "",
            "| what each call checks | cost |", "|---|---|"]
    rows += [f"| {what} | {max(us, 0.0):.2f} µs |" for what, us in pieces]
    return rows + ["", *traced_guard_rows(quick)]


def traced_guard_rows(quick: bool = False) -> list[str]:
    """Under tracing an index cannot be checked on the host: the traced code compares each index
    with its axis and makes the loss NaN if one is outside (docs/language.md §3). Its cost in a
    jitted value-and-gradient step, against the same step with `check_indices=False`: the
    median of interleaved rounds."""
    try:
        import jax
        import numpy as np
    except ImportError:
        return ["(JAX is not installed: the traced index guard was not measured)"]
    rng = np.random.default_rng(0)
    rounds = 5 if quick else 15
    rows = [f"Under `jax.jit(jax.value_and_grad)` an index is checked in the traced code (NaN loss when one is "
            f"outside its axis, docs/language.md §3): the CE loss above, float32, one step with and without "
            f"(`check_indices=False`), median of {rounds} interleaved rounds (min–max of the ratio).", "",
            "| traced step | index guard | `check_indices=False` | ratio |", "|---|---|---|---|"]
    for b, c, number in ((64, 10, 400), (4096, 1000, 20)):
        z = jax.numpy.asarray(rng.normal(size=(b, c)).astype(np.float32))
        k = jax.numpy.asarray(rng.integers(0, c, b))
        guarded, plain = (
            jax.jit(jax.value_and_grad(lossdsl.compile(CE, backend="jax", check_indices=on))) for on in (True, False)
        )
        g, p, ratios = _interleaved(
            lambda: jax.block_until_ready(guarded(z, k)),
            lambda: jax.block_until_ready(plain(z, k)),
            rounds,
            number // 4 if quick else number,
        )
        rows.append(f"| B={b}, C={c} | {g * 1e6:.1f} µs | {p * 1e6:.1f} µs | "
                    f"{statistics.median([1 / r for r in ratios]):.2f}× ({1 / max(ratios):.2f}–{1 / min(ratios):.2f}) |")
    return rows


if __name__ == "__main__":
    from run import keep_freed_memory

    keep_freed_memory()
    print("\n".join(table("--quick" in sys.argv)))
