"""From a spec to a compiled loss, stage by stage:

    parsed  = parse(spec)                                   text -> syntax tree
    checked = check(parsed)                                 -> checked IR (lossdsl.frontend)
    code    = emit(checked, backend, static_dims=...)       -> lowered IR -> Python source
    loss    = instantiate(checked, backend, code, ...)      the source executed: a CompiledLoss

This module is the one place where the stages are put together: `lossdsl.compile`, the
quick form, `lossdsl ir`, `lossdsl emit` and the benchmarks all go through it, so what
`emit` prints is what `compile` runs.

`backend` is a Backend class (`backend_class` finds one without importing its framework,
enough to emit code) or a loaded Backend (needed to instantiate). Until `instantiate`
only its class attributes are read: `printer` and `dynamic_sizes`.
"""

from __future__ import annotations

import builtins
import difflib
import importlib
import itertools
import linecache
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from lossdsl.backends import NAMES, Backend, canonical_name
from lossdsl.backends.base import Unsupported

from .autodiff import Derivative, derive
from .checked import CheckedModule
from .codegen import Generated, generate
from .diagnostics import Diagnostic, LossError
from .frontend import check_parsed
from .ir import Apply, Arg, Node, apply, topological
from .kernels import reduces_in_a_kernel, yields_to_derived
from .loading import load_source
from .parser import ParseResult, parse_source
from .passes import lower as lower_ir
from .runtime import CompiledLoss, Runtime
from .types import FLOAT, TensorType

__all__ = [
    "Emitted",
    "Lowered",
    "backend_class",
    "backend_name",
    "check",
    "check_sharded",
    "emit",
    "instantiate",
    "lower",
    "parse",
    "printer_for",
]


# ---- text -> checked IR --------------------------------------------------------------------


def parse(spec: Any, *, allow_quick: bool = True) -> ParseResult:
    """Parse a spec (a path, source text or a `Source`). Its syntax errors are findings on the
    result, reported with the checker's by `check`; a quick form that does not parse raises.
    `compile` parses once and reads from the result whether the text is the quick form."""
    return parse_source(load_source(spec), allow_quick=allow_quick)


def check(parsed: ParseResult) -> CheckedModule:
    """The checked IR of a parsed spec, with the analyses' warnings on `.warnings`."""
    return check_parsed(parsed)


# ---- backends, by name ---------------------------------------------------------------------


def backend_name(name: Any) -> str:
    """The canonical name of a backend (aliases resolved); E810 for a name no backend has."""
    key = canonical_name(name) if isinstance(name, str) else None
    if key is None:
        close = difflib.get_close_matches(str(name), list(NAMES) + ["tf"], n=1)
        raise LossError(
            [
                Diagnostic(
                    f"unknown backend {name!r}",
                    None,
                    "E810",
                    path="<compile>",
                    help=(f"did you mean {close[0]!r}? " if close else "")
                    + "backends: 'torch', 'tensorflow' (or 'tf'), 'jax', 'numpy'",
                )
            ]
        )
    return key


def backend_class(name: str) -> type[Backend]:
    """The Backend class of `name`, without importing its framework: what emitting code needs.
    Each backend lives in `lossdsl.backends.<name>_backend` (importing that module imports no
    framework; `Backend.load()` does)."""
    key = backend_name(name)
    module = importlib.import_module(f"lossdsl.backends.{key}_backend")
    classes: list[type[Backend]] = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Backend)]
    return next(cls for cls in classes if cls.name == key)


def printer_for(name: str):
    """The printer class of a backend, without importing its framework."""
    return backend_class(name).printer


# ---- checked IR -> lowered IR -> code ------------------------------------------------------


def check_sharded(checked: CheckedModule, sharded: Any) -> None:
    """E811 unless `sharded` names a dimension of the spec that no context tensor has."""
    symbols = checked.symbols
    if not isinstance(sharded, str) or sharded not in symbols:
        raise LossError(
            [
                Diagnostic(
                    f"`sharded={sharded!r}` names no dimension of this spec",
                    None,
                    "E811",
                    path=checked.source.name,
                    help=f"its dimensions are {', '.join(f'`{s}`' for s in symbols)}"
                    if symbols
                    else "it has no dimension symbols",
                )
            ]
        )
    for d in checked.of_kind("context"):
        for leaf in d.leaves:
            if any(dim.sym == sharded for dim in leaf.type.shape):
                raise LossError(
                    [
                        Diagnostic(
                            f"context `{leaf.label}: {leaf.type}` has the sharded dimension "
                            f"`{sharded}`, but a context tensor is the same on every replica",
                            leaf.span,
                            "E811",
                            help="make it an input, so each replica passes its own part",
                        )
                    ]
                )


@dataclass
class Lowered:
    """The IR a backend prints, the backward derived for it (or None), and the reductions
    made global over a sharded dimension (for `lossdsl ir --sharded` and the run time)."""

    root: Node
    derivative: Derivative | None = None
    made_global: list[Node] = field(default_factory=list)
    # A per-sample loss's mean over the samples (the API's default reduction), lowered with the
    # backend's kernels, where that reaches a reducing fused call: `compute_mean`.
    mean_root: Node | None = None


def _api_mean(
    checked: CheckedModule, kernels: dict[str, set[str]], always: bool = False, merged: bool = False
) -> Node | None:
    """`mean(loss, axis=0)` lowered for a backend, where it reaches a reducing fused call (or
    `always`, or `merged` where it is one mean with the per-sample mean): the normal form
    (lossdsl/canonical.py) turns the mean of per-sample means into one mean, so
    `mean(huber(...), axis=D)` under the API's mean is `F.huber_loss(...)` itself."""
    loss = checked.loss
    if not (kernels or always) or loss.type.rank != 1 or loss.type.dtype is not FLOAT:
        return None
    mean = apply("mean", (loss,), TensorType(FLOAT, ()), loss.span, (("axis", (0,)), ("keepdims", False)))
    root = lower_ir(replace(checked, loss=mean), kernels=kernels)
    if always or (merged and isinstance(root, Apply) and root.fn == "mean" and root.args[0].type.rank > 1):
        return root
    return root if reduces_in_a_kernel(root) else None


def lower(
    checked: CheckedModule, backend: Any = None, *, sharded: str | None = None, fused_backward: bool = True
) -> Lowered:
    """The lowered IR. Without a backend: the passes every backend shares (`lossdsl ir --lowered`).
    With one: also its kernels, and the derived backward where its printer uses one
    (lossdsl/autodiff.py), with every kernel it has or, failing a derivation, without the
    elementwise kernels that yield to it (`Kernel.yields_to_derived`) if that makes the whole loss derivable."""
    made_global: list[Node] = []
    if backend is None:
        return Lowered(lower_ir(checked, sharded=sharded, made_global=made_global), None, made_global)
    printer = backend.printer
    kernels = printer.KERNELS
    root = lower_ir(checked, kernels=kernels, sharded=sharded, made_global=made_global)
    mean_root = (
        _api_mean(checked, kernels, printer.API_MEAN_IN_COMPUTE, printer.API_MEAN_WHEN_MERGED)
        if sharded is None
        else None
    )
    if not (fused_backward and printer.FUSED_BACKWARD):
        return Lowered(root, None, made_global, mean_root)
    derivative = _derive_for_preds(root)
    if derivative is None:
        reducing = {k: {r for r in v if r != "none"} if yields_to_derived(k) else v for k, v in kernels.items()}
        other = lower_ir(checked, kernels=reducing, sharded=sharded)
        alt = _derive_for_preds(other)
        if alt is not None:
            return Lowered(other, alt, made_global, mean_root)
    return Lowered(root, derivative, made_global, mean_root)


def _derive_for_preds(root: Node) -> Derivative | None:
    return derive(root, [n for n in topological(root) if isinstance(n, Arg) and n.kind == "pred"])


@dataclass
class Emitted:
    """The code for one backend and the lowered IR it was printed from."""

    lowered: Lowered
    generated: Generated
    sharded: str | None = None
    static_dims: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # the sizes it takes as known

    @property
    def source(self) -> str:
        return self.generated.source


def emit(
    checked: CheckedModule,
    backend: Any,
    *,
    static_dims: Mapping[str, tuple[int, str]],
    sharded: str | None = None,
    fused_backward: bool = True,
    check_indices: bool = True,
    check_context: bool = False,
) -> Emitted:
    """Lower for `backend` and print its code. `static_dims` are the sizes known before any call:
    the spec's own, and those of the context and params bound at compile time. `check_context`
    checks the context's shapes at each call (for code that is given it later)."""
    lowered = lower(checked, backend, sharded=sharded, fused_backward=fused_backward)

    def write(lowered: Lowered) -> Generated:
        return generate(
            checked,
            lowered.root,
            backend.printer,
            static_dims=dict(static_dims),
            dynamic_sizes=backend.dynamic_sizes,
            sharded=sharded or False,
            derivative=lowered.derivative,
            check_indices=check_indices,
            mean_root=lowered.mean_root,
            check_context=check_context,
        )

    try:
        generated = write(lowered)
    except Unsupported:
        if lowered.derivative is None:
            raise
        # A backward the printer cannot write (it would need a size only the framework knows,
        # such as a stepped slice's): the framework's autograd differentiates the plain compute.
        lowered = replace(lowered, derivative=None)
        generated = write(lowered)
    return Emitted(lowered, generated, sharded, dict(static_dims))


# ---- code -> a compiled loss ---------------------------------------------------------------

# Numbers the generated modules' file names, so a traceback shows which compilation it came from.
_compilations = itertools.count(1)


def instantiate(
    checked: CheckedModule,
    backend: Backend,
    code: Emitted,
    *,
    context_values: dict[str, Any],
    param_values: dict[str, Any],
    group: Any = None,
) -> CompiledLoss:
    """Execute the emitted code with a loaded backend: the callable `compile` returns.
    The source is registered with `linecache` so tracebacks and debuggers show its lines."""
    gen = code.generated
    runtime = Runtime(checked, backend, gen.leaves, context_values, param_values, gen.index_reads)
    namespace = runtime.namespace()
    sharded = code.sharded
    dist = backend.collectives(group, source_name=checked.source.name) if sharded is not None else None
    namespace["_dist"] = dist
    filename = f"<lossdsl:{checked.source.name}:{backend.name}:{next(_compilations)}>"
    linecache.cache[filename] = (len(gen.source), None, gen.source.splitlines(True), filename)
    exec(builtins.compile(gen.source, filename, "exec"), namespace)
    compute = backend.wrap_compute(namespace["compute"], gen.static_args, sharded=sharded is not None)
    namespace["compute"] = compute
    if gen.mean_static_args is not None:
        namespace["compute_mean"] = backend.wrap_compute(namespace["compute_mean"], gen.mean_static_args)
    entry = backend.wrap_entry(namespace["entry"])
    loss = CompiledLoss(checked, backend, gen.source, entry, compute, runtime, gen.entry_args, code.static_dims)
    loss._fused_mean = gen.mean_static_args is not None
    if sharded is not None:
        loss._shard(sharded, dist, code.lowered.made_global)
    return loss
