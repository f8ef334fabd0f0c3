"""Evaluating a compiled loss from NumPy arrays on any backend, with its gradients:
`lossdsl run`, the examples table of the main job, and the test harness use it.

    value, grads = value_and_grads(f, "jax", {"yhat": ..., "y": ...}, preds=["yhat"])

Values come back as float64 NumPy arrays; `grads` maps each pred to d(sum of the
value)/d pred (empty for the NumPy backend, which has no gradients).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np

from lossdsl.backends import canonical_name, get_backend

from .api import compile as compile_spec
from .diagnostics import Diagnostic, LossError, name_hint
from .frontend import check
from .sampling import random_inputs


def _backend(name: str):
    try:
        return get_backend(name)
    except KeyError:
        raise ValueError(f"unknown backend {name!r}") from None


def to_backend(backend: str, value: Any, dtype: str = "float32", device: str | None = None) -> Any:
    """A NumPy value (or a dict of them) as the backend's tensor; floats in `dtype`."""
    if isinstance(value, dict):
        return {k: to_backend(backend, v, dtype, device) for k, v in value.items()}
    be = _backend(backend)
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        arr = arr.astype({"float64": np.float64, "float32": np.float32, "float16": np.float16}[dtype])
    return be.from_numpy(arr, device)


@overload
def to_numpy(x: None) -> None: ...
@overload
def to_numpy(x: Any) -> np.ndarray: ...
def to_numpy(x: Any) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu()
        return x.double().numpy() if x.dtype.is_floating_point else x.numpy()
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    arr = np.asarray(x)
    return arr.astype(np.float64) if arr.dtype.kind == "f" else arr


def value_and_grads(
    f,
    backend: str,
    args: dict[str, Any],
    preds: list[str],
    dtype: str = "float64",
    device: str | None = None,
    **call_kwargs: Any,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    be = _backend(backend)
    conv = {k: to_backend(backend, v, dtype, device) for k, v in args.items()}
    out, grads = be.value_and_grads(lambda **tensors: f(**tensors, **call_kwargs), conv, preds)
    return to_numpy(out), {p: _zeros_if_none(to_numpy(g), args[p]) for p, g in grads.items()}


def _zeros_if_none(g, like):
    return np.zeros(np.shape(like)) if g is None else g


# ---- lossdsl run ---------------------------------------------------------------------------------


def _parse_assignments(items: list[str], what: str, cast) -> dict[str, Any]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LossError(
                [Diagnostic(f"--{what} takes NAME=VALUE, found {item!r}", None, "E808", path="<command line>")]
            )
        try:
            out[name.strip()] = cast(value)
        except ValueError:
            raise LossError(
                [
                    Diagnostic(
                        f"--{what} {name}: {value!r} is not a number",
                        None,
                        "E808",
                        path="<command line>",
                        help="a list is written [1.0, 0.5]" if what == "param" else None,
                    )
                ]
            ) from None
    return out


def _number_or_list(text: str) -> Any:
    """`0.5`, `-inf` or `[1.0, 0.5]` (nested lists for higher ranks): what a param's default may be."""
    if text.strip() in ("inf", "-inf"):  # the language's literal (docs/language.md §3)
        return float(text)
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ValueError(text) from None
    flat = np.asarray(value)
    if flat.dtype.kind not in "iufb":
        raise ValueError(text)
    return value


def _known_names(given: Mapping[str, Any], known: Sequence[str], what: str, flag: str) -> None:
    for name in given:
        if name not in known:
            listing = f"its {what}s: {', '.join(known)}" if known else f"it has no {what}s"
            hint = name_hint(name, known, listing)
            raise LossError(
                [
                    Diagnostic(
                        f"{flag} {name}: the spec has no {what} `{name}`",
                        None,
                        "E806",
                        path="<command line>",
                        help=hint,
                    )
                ]
            )


def load_npz(path: str, checked) -> tuple[dict, dict, dict]:
    """Arguments, context and params from a .npz: one array per name, record fields as `x.field`."""
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise LossError([Diagnostic(f"cannot read {path}: {e}", None, "E001", path=path)]) from None
    keys = set(data.files)
    args: dict[str, Any] = {}
    context: dict[str, Any] = {}
    params: dict[str, Any] = {}
    missing: list[str] = []
    for d in checked.declarations:
        target = {"context": context, "param": params}.get(d.kind, args)
        if d.is_record:
            rec: dict = {}
            for leaf in d.leaves:
                key = leaf.label
                if key not in keys:
                    missing.append(f"{key} ({d.kind}, {leaf.type})")
                    continue
                cur = rec
                for p in leaf.path[:-1]:
                    cur = cur.setdefault(p, {})
                cur[leaf.path[-1]] = data[key]
            target[d.name] = rec
        elif d.name in keys:
            target[d.name] = data[d.name]
        elif not (d.kind == "param" and d.has_default):
            missing.append(f"{d.name} ({d.kind}, {d.type})")
    used = {leaf.label for d in checked.declarations for leaf in d.leaves}
    unknown = sorted(keys - used)
    if unknown:
        raise LossError(
            [
                Diagnostic(
                    f"{path} has an array `{unknown[0]}` that the spec does not declare",
                    None,
                    "E806",
                    path=path,
                    help=name_hint(unknown[0], sorted(used), f"its names: {', '.join(sorted(used))}"),
                )
            ]
        )
    if missing:
        raise LossError(
            [
                Diagnostic(
                    f"{path} lacks {len(missing)} array{'s' if len(missing) > 1 else ''}: " + ", ".join(missing),
                    None,
                    "E801",
                    path=path,
                    help=f"save them with np.savez({path!r}, name=array, ...); a record field is saved as 'name.field'",
                )
            ]
        )
    return args, context, params


def run_spec(ns) -> int:
    """`lossdsl run SPEC --backend B (--data F.npz | --random) [--dim B=32]`."""
    checked = check(ns.spec)
    dims = _parse_assignments(ns.dim, "dim", int)
    _known_names(dims, checked.symbols, "dimension", "--dim")
    overrides = _parse_assignments(ns.param, "param", _number_or_list)
    _known_names(overrides, [d.name for d in checked.of_kind("param")], "param", "--param")
    if ns.random:
        args, context, params = random_inputs(checked, np.random.default_rng(ns.seed), dims, dtype=np.float32)
    else:
        args, context, params = load_npz(ns.data, checked)
    params.update(overrides)
    backend = canonical_name(ns.backend) or ns.backend
    f = compile_spec(
        ns.spec, backend=backend, context={k: to_backend(backend, v) for k, v in context.items()}, params=params or None
    )
    preds = [d.name for d in checked.preds]
    value, grads = value_and_grads(f, backend, args, preds, "float32", reduction=ns.reduction)
    out = sys.stdout
    out.write(f"spec      {checked.source.name}\nbackend   {backend}\n")
    for d in checked.call_args:
        shapes = _shapes(args[d.name])
        out.write(f"{d.kind:9s} {d.name}: {d.type}  {shapes}\n")
    v = np.asarray(value)
    out.write(f"loss      {v.item() if v.ndim == 0 else v.tolist()}\n")
    if not grads:
        out.write("gradients (the numpy backend computes values only)\n")
    for p, g in grads.items():
        finite = bool(np.all(np.isfinite(g)))
        out.write(f"|d/d{p}|  {float(np.linalg.norm(g)):.6g}{'' if finite else '  (not finite!)'}\n")
    return 0


def _shapes(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shapes(v)}" for k, v in value.items()) + "}"
    return str(tuple(np.shape(value)))
