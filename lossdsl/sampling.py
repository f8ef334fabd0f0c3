"""Random inputs that fit a spec's declarations: for `lossdsl run --random`, the
benchmarks and the parity tests.

Sizes: symbols get the sizes given, else the spec's own, else 3, 4, 5... in order
of appearance (distinct, so a transposed axis cannot pass by accident). Ints used as
indices, ids or classes are drawn from their valid range (read from how the IR uses
them); other ints from [0, 3); bools are fair coins.

A leaf with a declared value domain (`in (0, 1]`, `in simplex`, `in onehot`, `in [0, C)`)
is drawn from inside it, whatever the rules below would say.

Other floats follow what the loss does with them (`value_roles`), so that a loss computed on
them is one a user could see in training:
- a target multiplied by a log-probability (`y * log(p)`, `y * log_softmax(z)`) or a
  probability (`y * sigmoid(z)`, as in Dice) is a label: one-hot along its last axis (0 or 1
  for a vector);
- a target compared with -1 (`where(y == -1, ...)`) is a sign: -1 or 1 (embedding losses);
- a value whose log is taken (`log(p)`, through `clip`, `maximum` or `+ eps`), or whose
  complement `1 - p` is, is a probability: rows of a softmax when a one-hot label of its
  shape multiplies it, else uniform in (0.01, 0.99);
- a value subtracted from a log (`log(p) - log_q`, a KL divergence) is a log-probability: rows
  of a log-softmax, and the value whose log it is then rows of a softmax;
- a value a margin is reduced by under a hinge (`relu(margin - x)`) is a distance: at least 0;
- a value read as the corners of boxes (`x[:, 2] - x[:, 0]`, `x[:, 3] - x[:, 1]`) is boxes
  (x1, y1, x2, y2) with x1 < x2 and y1 < y2;
- other inputs, context and params (weights, masks, features) are positive, in [0.5, 1.5);
- everything else (preds, regression targets) is standard normal.

The labels and lengths of a `ctc_loss` are drawn together, so that an alignment fits each
sample: labels other than the blank, at least one of them, and at least as many steps as
labels plus repeated neighbours (each repeat needs a blank between its two labels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checked import CheckedModule, Leaf
from .domains import draw
from .functions import index_uses
from .ir import Apply, Arg, Const, Index, Node, SliceItem, topological
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
    for c in checked.constraints:  # a drawn size is large enough for what the spec reads (`topk(x, 6)`)
        drawn = c.dim.sym
        if drawn in sizes and drawn not in (given or {}) and drawn not in checked.bindings:
            sizes[drawn] = max(sizes[drawn], c.minimum - c.dim.offset)
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


LABEL, SIGN, PROBABILITY, SIMPLEX, POSITIVE, NORMAL = "label", "sign", "probability", "simplex", "positive", "normal"
LOG_SIMPLEX, DISTANCE, BOXES = "log_simplex", "distance", "boxes"
_THROUGH = ("clip", "maximum", "minimum", "add", "cast_float", "float")  # log(clip(p, eps, 1)), log(p + eps)


def _leaf(node: Node) -> tuple[str, tuple[str, ...]] | None:
    return (node.name, node.path) if isinstance(node, Arg) and node.type.dtype is FLOAT else None


def _log_of(node: Node) -> bool:
    return isinstance(node, Apply) and node.fn in ("log", "log_softmax", "log_sigmoid")


def _probability_of(node: Node) -> bool:
    return isinstance(node, Apply) and node.fn in ("sigmoid", "softmax")


def _target(node: Node) -> bool:
    return isinstance(node, Arg) and node.kind == "target" and _leaf(node) is not None


def value_roles(checked: CheckedModule) -> dict[tuple[str, tuple[str, ...]], str]:
    """The role of each float leaf, read from how the loss uses it (see the module docstring)."""
    labels: set = set()
    signs: set = set()
    logged: dict = {}  # leaf -> its node
    log_probabilities: set = set()
    distributions: set = set()
    distances: set = set()
    boxes: set = set()
    for node in topological(checked.loss):
        if not isinstance(node, Apply):
            continue
        if node.fn == "sub" and _leaf(node.args[1]) is not None:
            minuend = node.args[0]
            if isinstance(minuend, Apply) and minuend.fn == "log" and _leaf(minuend.args[0]) is not None:
                log_probabilities.add(_leaf(node.args[1]))  # log(p) - log_q
                distributions.add(_leaf(minuend.args[0]))
        if node.fn == "relu" and isinstance(node.args[0], Apply) and node.args[0].fn == "sub":
            margin, x = node.args[0].args
            if _leaf(x) is not None and (
                isinstance(margin, Const) or (isinstance(margin, Arg) and margin.kind == "param")
            ):
                distances.add(_leaf(x))  # relu(margin - x)
        if node.fn == "log":
            x = node.args[0]
            while isinstance(x, Apply) and x.fn in _THROUGH:
                x = next((a for a in x.args if not isinstance(a, Const)), x.args[0])
            if _leaf(x) is not None:
                logged[_leaf(x)] = x
        if node.fn == "sub" and isinstance(node.args[0], Const) and node.args[0].value == 1 and _leaf(node.args[1]):
            logged.setdefault(_leaf(node.args[1]), node.args[1])  # `1 - c`: a probability, too
        if node.fn == "mul":
            for a, b in (node.args, node.args[::-1]):
                other = b.args if isinstance(b, Apply) and b.fn == "mul" else (b,)
                if _target(a) and any(_log_of(o) or _probability_of(o) for o in other):
                    labels.add(_leaf(a))
        corners = _corner_pair(*node.args) if node.fn == "sub" else None
        if corners is not None:
            boxes.add(corners)  # x2 - x1, y2 - y1
        if node.fn in ("eq", "ne"):
            for a, b in (node.args, node.args[::-1]):
                if _target(a) and isinstance(b, Const) and b.value == -1:
                    signs.add(_leaf(a))
    shapes_of_labels = {_leaf_type(checked, k).shape for k in labels}
    roles: dict = {}
    for d in checked.declarations:
        for leaf in d.leaves:
            key = (d.name, leaf.path)
            if leaf.type.dtype is not FLOAT:
                continue
            if key in labels:
                roles[key] = LABEL
            elif key in log_probabilities:
                roles[key] = LOG_SIMPLEX
            elif key in distributions:
                roles[key] = SIMPLEX
            elif key in distances:
                roles[key] = DISTANCE
            elif key in boxes and leaf.type.rank and leaf.type.shape[-1].is_literal and leaf.type.shape[-1].value == 4:
                roles[key] = BOXES
            elif key in signs:
                roles[key] = SIGN
            elif key in logged:
                rank2 = leaf.type.rank >= 2 and leaf.type.shape in shapes_of_labels
                roles[key] = SIMPLEX if rank2 else PROBABILITY
            elif d.kind in ("input", "context", "param"):
                roles[key] = POSITIVE
            else:
                roles[key] = NORMAL
    return roles


def _corner_pair(a: Node, b: Node) -> tuple[str, tuple[str, ...]] | None:
    """The float leaf of `x[..., 2] - x[..., 0]` or `x[..., 3] - x[..., 1]` (a box's width or
    height), else None."""
    if not (isinstance(a, Index) and isinstance(b, Index) and a.items and b.items and a.x is b.x):
        return None
    corners = (a.items[-1], b.items[-1])
    if corners not in ((2, 0), (3, 1)) or not all(isinstance(i, SliceItem) for i in a.items[:-1] + b.items[:-1]):
        return None
    return _leaf(a.x)


def _leaf_type(checked: CheckedModule, key: tuple[str, tuple[str, ...]]):
    name, path = key
    decl = next(d for d in checked.declarations if d.name == name)
    return next(lf for lf in decl.leaves if lf.path == path).type


def random_value(t, sizes, rng, bound: Dim | None = None, *, dtype=np.float64, role: str = NORMAL) -> np.ndarray:
    shape = tuple(_size(d, sizes) for d in t.shape)
    if t.dtype is FLOAT:
        return _float_value(shape, rng, role).astype(dtype)
    if t.dtype is INT:
        high = _size(bound, sizes) if bound is not None else 3
        return rng.integers(0, max(high, 1), size=shape).astype(np.int64)
    assert t.dtype is BOOL
    return rng.random(shape) < 0.5


def domain_value(leaf: Leaf, sizes: dict[str, int], rng: np.random.Generator, *, dtype=np.float64) -> np.ndarray:
    """Values for a leaf with a declared domain, drawn from inside it."""
    assert leaf.domain is not None
    shape = tuple(_size(d, sizes) for d in leaf.type.shape)
    if leaf.type.dtype is INT:
        out = draw(leaf.domain, shape, sizes, rng, integer=True)
        return np.asarray(out).astype(np.int64)
    return np.asarray(draw(leaf.domain, shape, sizes, rng, integer=False)).astype(dtype)


def _float_value(shape: tuple[int, ...], rng: np.random.Generator, role: str) -> np.ndarray:
    if role == LABEL:
        if not shape:
            return np.asarray(float(rng.random() < 0.5))
        if len(shape) == 1:
            return (rng.random(shape) < 0.5).astype(np.float64)
        classes = rng.integers(0, shape[-1], size=shape[:-1])
        return np.eye(shape[-1])[classes]
    if role == SIGN:
        return np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    if role in (SIMPLEX, LOG_SIMPLEX):
        z = rng.standard_normal(shape)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        rows = e / e.sum(axis=-1, keepdims=True)
        return rows if role == SIMPLEX else np.log(rows)
    if role == DISTANCE:
        return np.abs(rng.standard_normal(shape))
    if role == PROBABILITY:
        return rng.uniform(0.01, 0.99, shape)
    if role == BOXES:
        corner = rng.standard_normal(shape[:-1] + (2,))
        size = rng.uniform(0.1, 2.0, shape[:-1] + (2,))
        return np.concatenate([corner, corner + size], axis=-1)
    if role == POSITIVE:
        return rng.uniform(0.5, 1.5, shape)
    return rng.standard_normal(shape)


def random_inputs(
    checked: CheckedModule, rng: np.random.Generator, sizes: dict[str, int] | None = None, *, dtype=np.float64
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(call arguments, context, params) as NumPy arrays; records as dicts. Params with a
    default are left out (the default is used)."""
    sizes = dimension_sizes(checked, sizes)
    bounds = index_bounds(checked)
    roles = value_roles(checked)
    args: dict[str, Any] = {}
    context: dict[str, Any] = {}
    params: dict[str, Any] = {}
    drawn: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}  # every leaf drawn, by (name, path)
    declared = {(d.name, leaf.path) for d in checked.declarations for leaf in d.leaves if leaf.domain is not None}
    for d in checked.declarations:
        if d.kind == "param" and d.has_default:
            continue
        values: dict[tuple[str, ...], np.ndarray] = {}
        for leaf in d.leaves:
            key = (d.name, leaf.path)
            if leaf.domain is not None:  # the declared domain wins over what the loss's use suggests
                values[leaf.path] = domain_value(leaf, sizes, rng, dtype=dtype)
                continue
            values[leaf.path] = random_value(
                leaf.type, sizes, rng, bounds.get(key), dtype=dtype, role=roles.get(key, NORMAL)
            )
        drawn.update({(d.name, path): v for path, v in values.items()})
        value: Any = values[()] if () in values else _nest(values)
        {"context": context, "param": params}.get(d.kind, args)[d.name] = value
    for node in topological(checked.loss):
        if isinstance(node, Apply) and node.fn == "ctc_loss":
            _fit_alignments(node, drawn, declared, rng)
    return args, context, params


def _fit_alignments(node: Apply, drawn: dict, declared: set, rng: np.random.Generator) -> None:
    """Labels and lengths of `ctc_loss(scores, labels, input_lengths, label_lengths)` that an
    alignment fits (changed in place), where all three are leaves drawn without a domain."""
    keys = [(a.name, a.path) if isinstance(a, Arg) else None for a in node.args[1:4]]
    if any(k is None or k not in drawn or k in declared for k in keys):
        return
    labels, input_lengths, label_lengths = (drawn[k] for k in keys)
    blank = dict(node.attrs).get("blank", 0)
    steps, classes = _scores_sizes(node, drawn)
    if classes < 2 or steps < 1 or labels.ndim != 2:
        return
    others = np.array([c for c in range(classes) if c != blank])
    for b in range(labels.shape[0]):
        labels[b] = others[rng.integers(0, len(others), labels.shape[1])]
        n = int(rng.integers(1, labels.shape[1] + 1)) if labels.shape[1] else 0
        while n and n + int(np.sum(labels[b, 1:n] == labels[b, : n - 1])) > steps:
            n -= 1
        need = n + int(np.sum(labels[b, 1:n] == labels[b, : n - 1]))
        label_lengths[b] = n
        input_lengths[b] = rng.integers(max(need, 1), steps + 1)


def _scores_sizes(node: Apply, drawn: dict) -> tuple[int, int]:
    scores = node.args[0]
    if not isinstance(scores, Arg) or (scores.name, scores.path) not in drawn:
        return 0, 0
    shape = np.shape(drawn[(scores.name, scores.path)])
    return (int(shape[1]), int(shape[2])) if len(shape) == 3 else (0, 0)


def _nest(flat: dict[tuple[str, ...], Any]) -> dict:
    out: dict = {}
    for path, v in flat.items():
        cur = out
        for p in path[:-1]:
            cur = cur.setdefault(p, {})
        cur[path[-1]] = v
    return out
