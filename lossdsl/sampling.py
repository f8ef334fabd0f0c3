"""Random inputs that fit a spec's declarations: for `lossdsl run --random`, the
benchmarks and the parity tests.

Sizes: symbols get the sizes given, else the spec's own, else 3, 4, 5... in order
of appearance (distinct, so a transposed axis cannot pass by accident). Floats are
standard normal; ints used as indices, ids or classes are drawn from their valid
range (read from how the IR uses them); other ints from [0, 3); bools are fair coins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checked import CheckedModule
from .functions import index_uses
from .ir import Arg, topological
from .types import BOOL, FLOAT, INT, Dim


def dimension_sizes(checked: CheckedModule, given: dict[str, int] | None = None) -> dict[str, int]:
    sizes = {k: v for k, (v, _) in checked.bindings.items()}
    sizes.update(given or {})
    next_size = 3
    for sym in checked.symbols:
        if sym not in sizes:
            while next_size in sizes.values():
                next_size += 1
            sizes[sym] = next_size
            next_size += 1
    return sizes


def _size(d: Dim, sizes: dict[str, int]) -> int:
    if d.sym is None:
        return d.offset
    return sizes[d.sym] + d.offset


def index_bounds(checked: CheckedModule) -> dict[tuple[str, tuple[str, ...]], Dim]:
    """For int leaves used as an index, the dimension they index into."""
    out: dict[tuple[str, tuple[str, ...]], Dim] = {}
    for node in topological(checked.loss):
        for idx, dim in index_uses(node):
            if isinstance(idx, Arg):
                out.setdefault((idx.name, idx.path), dim)
    return out


def random_value(t, sizes, rng, bound: Dim | None = None, *, dtype=np.float64) -> np.ndarray:
    shape = tuple(_size(d, sizes) for d in t.shape)
    if t.dtype is FLOAT:
        return rng.standard_normal(shape).astype(dtype)
    if t.dtype is INT:
        high = _size(bound, sizes) if bound is not None else 3
        return rng.integers(0, max(high, 1), size=shape).astype(np.int64)
    assert t.dtype is BOOL
    return rng.random(shape) < 0.5


def random_inputs(
    checked: CheckedModule, rng: np.random.Generator, sizes: dict[str, int] | None = None, *, dtype=np.float64
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(call arguments, context, params) as NumPy arrays; records as dicts. Params with a
    default are left out (the default is used)."""
    sizes = dimension_sizes(checked, sizes)
    bounds = index_bounds(checked)
    args: dict[str, Any] = {}
    context: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for d in checked.declarations:
        if d.kind == "param" and d.has_default:
            continue
        values: dict[tuple[str, ...], np.ndarray] = {}
        for leaf in d.leaves:
            values[leaf.path] = random_value(leaf.type, sizes, rng, bounds.get((d.name, leaf.path)), dtype=dtype)
        value: Any = values[()] if () in values else _nest(values)
        {"context": context, "param": params}.get(d.kind, args)[d.name] = value
    return args, context, params


def _nest(flat: dict[tuple[str, ...], Any]) -> dict:
    out: dict = {}
    for path, v in flat.items():
        cur = out
        for p in path[:-1]:
            cur = cur.setdefault(p, {})
        cur[path[-1]] = v
    return out
