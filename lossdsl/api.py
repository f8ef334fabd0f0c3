"""`lossdsl.compile`: a spec -> a callable of one backend's tensors.

    f = lossdsl.compile("examples/weighted_mse.loss", backend="torch")
    f = lossdsl.compile(src, backend="jax", context={"mask": mask}, params={"alpha": 0.3})

Context tensors are checked and their sizes bound here, once; params get their
compile-time values (or defaults) here and may be overridden at each call. The
backend's framework is imported here, and only that one.
"""

from __future__ import annotations

import builtins
import difflib
import linecache
from collections.abc import Mapping
from typing import Any, cast

from .checked import CheckedModule, Declaration
from .codegen import generate
from .diagnostics import Diagnostic, LossError
from .frontend import check_source
from .loading import load_source
from .passes import lower
from .runtime import CompiledLoss, Runtime
from .types import BOOL, FLOAT, INT, TensorType

_counter = 0


def resolve_backend(name: str):
    from lossdsl.backends import NAMES, canonical_name, get_backend

    if not isinstance(name, str) or canonical_name(name) is None:
        close = difflib.get_close_matches(str(name), list(NAMES) + ["tf"], n=1)
        raise LossError([Diagnostic(f"unknown backend {name!r}", None, "E810", path="<compile>",
                                    help=(f"did you mean {close[0]!r}? " if close else "")
                                    + "backends: 'torch', 'tensorflow' (or 'tf'), 'jax', 'numpy'")])
    try:
        return get_backend(name)
    except ImportError as e:
        extra = {"tensorflow": "tensorflow"}.get(canonical_name(name), canonical_name(name))
        raise ImportError(f"the {canonical_name(name)} backend needs its framework: "
                          f"pip install 'lossdsl[{extra}]' ({e})") from e


def compile(spec, backend: str = "torch", *, context: Mapping[str, Any] | None = None,
            params: Mapping[str, Any] | None = None, sharded: str | None = None, group: Any = None,
            fused_backward: bool = True, check_indices: bool = True):
    """Compile a spec (a path, or source text) for `backend`. Raises `LossError` for any
    mistake in the spec or in the context and params given here.

    `sharded="B"` says the dimension B is split across data-parallel replicas: reductions over
    it are computed over the global batch (docs/distributed.md). `group` is the torch process
    group (default: the world), the JAX axis name (default "batch"); TensorFlow uses the
    strategy of the replica context it is called in.

    `fused_backward=False` keeps PyTorch's own autograd where lossdsl would run a backward
    derived from the spec (lossdsl/autodiff.py); that derived backward is once-differentiable,
    so a loss whose gradient is differentiated again (a gradient penalty) needs False.

    `check_indices` (on by default) checks, at each eager call, that every int argument read as
    an index lies in its axis (E812): one small read from the device per such argument.
    Under jit, `tf.function` or `torch.compile` the values are not there to read and the check
    is skipped."""
    be = resolve_backend(backend)
    source = load_source(spec)
    from .parser import parse_source

    if parse_source(source, allow_quick=True).module.quick:
        from .quick import QuickLoss

        if sharded:
            raise LossError([Diagnostic("the quick form cannot be sharded; declare the spec", None, "E811",
                                        path=source.name)])
        return QuickLoss(source, be, context=context or {}, params=params or {}, check_indices=check_indices)
    checked = check_source(source)
    return build(checked, be, context=context or {}, params=params or {}, sharded=sharded, group=group,
                 fused_backward=fused_backward, check_indices=check_indices)


def _check_sharded(checked: CheckedModule, sharded: Any) -> None:
    symbols = checked.symbols
    if not isinstance(sharded, str) or sharded not in symbols:
        raise LossError([Diagnostic(f"`sharded={sharded!r}` names no dimension of this spec", None, "E811",
                                    path=checked.source.name,
                                    help=f"its dimensions are {', '.join(f'`{s}`' for s in symbols)}" if symbols
                                    else "it has no dimension symbols")])
    for d in checked.of_kind("context"):
        for leaf in d.leaves:
            if any(dim.sym == sharded for dim in leaf.type.shape):
                raise LossError([Diagnostic(f"context `{leaf.label}: {leaf.type}` has the sharded dimension "
                                            f"`{sharded}`, but a context tensor is the same on every replica",
                                            leaf.span, "E811",
                                            help="make it an input, so each replica passes its own part")])


def build(checked: CheckedModule, be, *, context: Mapping[str, Any], params: Mapping[str, Any],
          sharded: str | None = None, group: Any = None, fused_backward: bool = True,
          check_indices: bool = True) -> CompiledLoss:
    static = dict(checked.bindings)
    if sharded is not None:
        _check_sharded(checked, sharded)
        if sharded in static:
            raise LossError([Diagnostic(f"`{sharded}` has a fixed size ({static[sharded][0]}), so it cannot be split "
                                        "across replicas", None, "E811", path=checked.source.name)])
    ctx_values = _bind_context(checked, be, context, static)
    param_values = _bind_params(checked, be, params, static)
    made_global: list = []
    root, derivative = plan(checked, be.printer, sharded=sharded, made_global=made_global,
                            fused_backward=fused_backward)
    gen = generate(checked, root, be.printer, static_dims=static, dynamic_sizes=be.dynamic_sizes,
                   sharded=sharded is not None, derivative=derivative, check_indices=check_indices)
    runtime = Runtime(checked, be, gen.leaves, ctx_values, param_values, gen.index_reads)
    namespace = runtime.namespace()
    dist = be.collectives(group, source_name=checked.source.name) if sharded is not None else None
    namespace["_dist"] = dist
    global _counter
    _counter += 1
    filename = f"<lossdsl:{checked.source.name}:{be.name}:{_counter}>"
    linecache.cache[filename] = (len(gen.source), None, gen.source.splitlines(True), filename)
    exec(builtins.compile(gen.source, filename, "exec"), namespace)
    compute = be.wrap_compute(namespace["compute"], gen.static_args, sharded=sharded is not None)
    namespace["compute"] = compute
    entry = be.wrap_entry(namespace["entry"])
    loss = CompiledLoss(checked, be, gen.source, entry, compute, runtime, gen.entry_args)
    if sharded is not None:
        loss._shard(sharded, dist, made_global)
    return loss


# Elementwise kernels that fuse a subtraction and an abs or a square, but reduce nothing: worth
# less than a backward derived for the whole loss, which they would prevent.
_ELEMENTWISE_KERNELS = ("mse", "l1", "huber", "smooth_l1", "bce_logits")


def plan(checked: CheckedModule, printer, *, sharded: str | None = None, made_global: list | None = None,
         fused_backward: bool = True):
    """The lowered IR a backend prints, and the derived backward when it will use one
    (lossdsl/autodiff.py): with every kernel the backend has, or, failing a derivation, without
    the elementwise ones if that makes the whole loss derivable."""
    kernels = printer.KERNELS
    root = lower(checked, kernels=kernels, sharded=sharded, made_global=made_global)
    if not (fused_backward and printer.FUSED_BACKWARD):
        return root, None
    from .autodiff import derive
    from .ir import Arg, topological

    def attempt(r):
        return derive(r, [n for n in topological(r) if isinstance(n, Arg) and n.kind == "pred"])

    derivative = attempt(root)
    if derivative is None:
        reducing = {k: {r for r in v if r != "none"} if k in _ELEMENTWISE_KERNELS else v for k, v in kernels.items()}
        other = lower(checked, kernels=reducing, sharded=sharded)
        alt = attempt(other)
        if alt is not None:
            return other, alt
    return root, derivative


def generate_source(spec, backend: str = "torch", *, context=None, params=None) -> str:
    """The code `compile` would run (what `lossdsl emit` prints)."""
    be_name = backend
    from lossdsl.backends import canonical_name

    if canonical_name(be_name) is None:
        resolve_backend(be_name)
    source = load_source(spec)
    checked = check_source(source)
    from .printing import printer_for

    printer = printer_for(canonical_name(be_name))
    static = dict(checked.bindings)
    if context:
        _bind_context(checked, None, context, static)
    root, derivative = plan(checked, printer)
    gen = generate(checked, root, printer, static_dims=static, dynamic_sizes=canonical_name(be_name) == "tensorflow",
                   derivative=derivative)
    return gen.source


# ---- context and params -----------------------------------------------------------------------


def _np_kind(x: Any) -> tuple[str, tuple]:
    """(dtype kind, shape) of a value given at compile time, whatever its framework."""
    shape = tuple(getattr(x, "shape", ()))
    dt = getattr(x, "dtype", None)
    if dt is None:
        import numpy as np

        arr = np.asarray(x)
        return {"f": "float", "i": "int", "u": "int", "b": "bool"}.get(arr.dtype.kind, "other"), arr.shape
    name = str(dt).lower()
    if "bool" in name:
        return "bool", tuple(int(s) for s in shape)
    if "int" in name:
        return "int", tuple(int(s) for s in shape)
    if "float" in name or "half" in name or "double" in name:
        return "float", tuple(int(s) for s in shape)
    return "other", tuple(int(s) for s in shape)


def _check_static_value(decl: Declaration, path: tuple[str, ...], t: TensorType, value: Any,
                        static: dict[str, tuple[int, str]], what: str) -> None:
    kind, shape = _np_kind(value)
    label = ".".join((decl.name,) + path)
    span = decl.leaf_spans.get(path, decl.type_span)
    want = t.dtype
    ok = (want is FLOAT and kind in ("float", "int", "bool")) or (want is INT and kind == "int") or (
        want is BOOL and kind == "bool")
    if not ok:
        raise LossError([Diagnostic(f"{decl.kind} `{label}` must be {want} (`{t}`), found {kind} values", span,
                                    "E803")])
    if len(shape) != t.rank:
        raise LossError([Diagnostic(f"{decl.kind} `{label}` must have rank {t.rank} (`{t}`), found shape "
                                    f"{tuple(shape)}", span, "E804")])
    leaf = next(lf for lf in decl.leaves if lf.path == path)
    for k, (d, n) in enumerate(zip(t.shape, shape)):
        dspan = leaf.dim_spans[k] if k < len(leaf.dim_spans) else span
        if d.is_literal:
            if d.value != n:
                raise LossError([Diagnostic(f"axis {k} of {decl.kind} `{label}` must have size {d.value}, found {n}",
                                            dspan, "E805")])
            continue
        assert d.sym is not None  # not is_literal
        if d.sym in static and static[d.sym][0] != n:
            raise LossError([Diagnostic(f"`{d.sym}` is {static[d.sym][0]} {static[d.sym][1]} but {n} {what}",
                                        dspan, "E805")])
        static.setdefault(d.sym, (n, what))


def _bind_context(checked: CheckedModule, be, context: Mapping[str, Any], static) -> dict[str, Any]:
    decls = checked.of_kind("context")
    names = {d.name for d in decls}
    for key in context:
        if key not in names:
            close = difflib.get_close_matches(key, list(names), n=1)
            raise LossError([Diagnostic(f"`{key}` is not a context of this spec", None, "E806",
                                        path=checked.source.name,
                                        help=f"did you mean `{close[0]}`?" if close else
                                        (f"its context tensors: {', '.join(sorted(names))}" if names else
                                         "it declares no context"))])
    values: dict[str, Any] = {}
    for d in decls:
        if d.name not in context:
            raise LossError([Diagnostic(f"context `{d.name}: {d.type}` is not bound", d.name_span, "E806",
                                        help=f"pass it once: `lossdsl.compile(..., context={{'{d.name}': ...}})`")])
        value = context[d.name]
        for leaf in d.leaves:
            v = value
            for p in leaf.path:
                if not isinstance(v, Mapping) or p not in v:
                    raise LossError([Diagnostic(f"context `{leaf.label}` is missing", d.name_span, "E807")])
                v = v[p]
            _check_static_value(d, leaf.path, leaf.type, v, static, f"from context `{leaf.label}`")
            values[leaf.label] = v
    return values


def _bind_params(checked: CheckedModule, be, params: Mapping[str, Any], static) -> dict[str, Any]:
    decls = {d.name: d for d in checked.of_kind("param")}
    for key in params:
        if key not in decls:
            close = difflib.get_close_matches(key, list(decls), n=1)
            raise LossError([Diagnostic(f"`{key}` is not a param of this spec", None, "E806",
                                        path=checked.source.name,
                                        help=f"did you mean `{close[0]}`?" if close else None)])
    values: dict[str, Any] = {}
    for name, d in decls.items():
        if name in params:
            _check_static_value(d, (), cast(TensorType, d.type), params[name], static, f"from param `{name}`")
            values[name] = params[name]
        elif d.has_default:
            values[name] = d.default
    return values
