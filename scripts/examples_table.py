"""The main job: every example checked, compiled and run on every backend.

For each example, on inputs drawn from its declarations: the value on numpy, torch,
jax and tensorflow in float32, and the largest difference of each backend's gradient
from torch's float64 gradient (relative to the largest gradient entry). Exits 1 if a
backend is missing, a value is not finite, a difference exceeds the float32
tolerance of the parity suite, or a value is below 0 for a loss that is not written as minus
a quantity to maximise (`loss = -...`, such as a similarity), which a note then explains.

    python scripts/examples_table.py [--seed N] [--examples DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

import lossdsl
from lossdsl.runner import to_backend, value_and_grads
from lossdsl.sampling import random_inputs

BACKENDS = ("numpy", "torch", "jax", "tensorflow")
TOLERANCE = 2e-4


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--examples", default=str(Path(__file__).resolve().parent.parent / "examples"))
    args = ap.parse_args()
    missing = [b for b in BACKENDS[1:] if importlib.util.find_spec(b) is None]
    if missing:
        print(f"missing frameworks: {', '.join(missing)} (run `make demo`, which installs them)")
        return 1
    rng = np.random.default_rng(args.seed)
    header = f"{'example':24s}" + "".join(f"{b:>13s}" for b in BACKENDS) + f"{'max |dgrad|':>14s}"
    print(header)
    print("-" * len(header))
    failed = False
    notes = []
    for path in sorted(Path(args.examples).glob("*.loss")):
        checked = lossdsl.check(path)
        inputs, context, params = random_inputs(checked, rng)
        preds = [d.name for d in checked.preds]
        ref = lossdsl.compile(path, backend="torch", context=context, params=params)
        _, ref_grads = value_and_grads(ref, "torch", inputs, preds, "float64")
        scale = max(float(np.max(np.abs(g))) for g in ref_grads.values()) or 1.0
        values, worst = [], 0.0
        for b in BACKENDS:
            f = lossdsl.compile(path, backend=b, context={k: to_backend(b, v) for k, v in context.items()},
                                params=params)
            v, grads = value_and_grads(f, b, inputs, preds, "float32")
            values.append(float(v))
            for p, g in grads.items():
                worst = max(worst, float(np.max(np.abs(g - ref_grads[p]))) / scale)
        ok = all(np.isfinite(values)) and worst <= TOLERANCE and np.allclose(values, values[1], rtol=1e-4)
        if values[1] < 0:
            statement = loss_statement(path)
            negated = statement.startswith("loss = -")
            ok &= negated
            notes.append(f"{path.stem}: `{statement}` is minus a quantity to maximise, so it lies below 0"
                         if negated else f"{path.stem}: a negative value for a loss that is not a negated reward")
        failed |= not ok
        print(f"{path.stem:24s}" + "".join(f"{v:13.6g}" for v in values) + f"{worst:14.2e}" + ("" if ok else "  FAIL"))
    print(f"\nvalues in float32; gradient differences relative to torch float64, tolerance {TOLERANCE:g}")
    for note in notes:
        print(note)
    return 1 if failed else 0


def loss_statement(path: Path) -> str:
    return next(line.split("#")[0].strip() for line in path.read_text().splitlines() if line.startswith("loss ="))


if __name__ == "__main__":
    sys.exit(main())
