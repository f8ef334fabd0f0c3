"""`lossdsl.compile`: a spec -> a callable of one backend's tensors.

    f = lossdsl.compile("examples/weighted_mse.loss", backend="torch")
    f = lossdsl.compile(src, backend="jax", context={"mask": mask}, params={"alpha": 0.3})

Context tensors are checked and their sizes bound here, once; params get their
compile-time values (or defaults) here and may be overridden at each call. The
backend's framework is imported here, and only that one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lossdsl.backends import get_backend

from .binding import bind_context, bind_params
from .checked import CheckedModule
from .diagnostics import Diagnostic, LossError
from .domain_check import DomainCheck
from .pipeline import backend_class, backend_name, check, check_sharded, emit, instantiate, parse
from .quick import QuickLoss
from .runtime import CompiledLoss
from .standalone import standalone_source


def resolve_backend(name: str):
    """The loaded backend called `name` (E810 for an unknown name, ImportError with the
    install command when its framework is missing)."""
    key = backend_name(name)
    try:
        return get_backend(key)
    except ImportError as e:
        # Each backend's extra in pyproject.toml is named after it.
        raise ImportError(f"the {key} backend needs its framework: pip install 'lossdsl[{key}]' ({e})") from e


def compile(
    spec,
    backend: str = "torch",
    *,
    context: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    sharded: str | None = None,
    group: Any = None,
    fused_backward: bool = True,
    check_indices: bool = True,
    check_values: bool = False,
    check_domains: bool = False,
):
    """Compile a spec (a path, or source text) for `backend`. Raises `LossError` for any
    mistake in the spec or in the context and params given here.

    `sharded="B"` says the dimension B is split across data-parallel replicas: reductions over
    it are computed over the global batch (docs/distributed.md). `group` is the torch process
    group (default: the world), the JAX axis name (default "batch"); TensorFlow uses the
    strategy of the replica context it is called in.

    `fused_backward=False` keeps PyTorch's own autograd where lossdsl would run a backward
    derived from the spec (lossdsl/autodiff.py). Where a gradient is itself differentiated (a
    gradient penalty: `create_graph=True`), the derived backward differentiates the plain compute
    with PyTorch's autograd, so higher derivatives need no option.

    `check_indices` (on by default) checks, at each eager call, that every int argument read as
    an index lies in its axis (E812): one small read from the device per such argument.
    Under jit, `tf.function` or `torch.compile` the values are not there to read: a graph
    assertion with the E812 text where the framework keeps one, else the loss is NaN with a
    zero gradient (docs/language.md §3). `check_values=True` (a debug mode) keeps the check
    itself in the traced code: a host
    callback under `jax.jit` (the same LossError, wrapped in XLA's runtime error), a graph
    assertion under `tf.function` (its text says E812; under XLA, `jit_compile=True`, which
    drops assertions, the trace is refused with E812), a device-side assertion under
    `torch.compile` (no host synchronisation; the read waits for it, so Inductor's own bounds
    check cannot fail first without the E812 text).

    `check_domains=True` checks, at each eager call, that every argument (and context tensor and
    param) declared with a value domain (`in (0, 1]`, `in simplex`, `in [0, C)`; docs/language.md
    §2) lies in it (E814). It reads each such value back to the host at every call, a device
    synchronisation and a pass over the data, so it is off by default; skipped while tracing."""
    be = resolve_backend(backend)
    # Parsed once: the same result says whether the text is the quick form and is then checked.
    parsed = parse(spec, allow_quick=True)
    if parsed.module.quick:
        if sharded:
            raise LossError(
                [
                    Diagnostic(
                        "the quick form cannot be sharded; declare the spec",
                        None,
                        "E811",
                        path=parsed.module.source.name,
                    )
                ]
            )
        quick = QuickLoss(parsed, be, context=context or {}, params=params or {}, check_indices=check_indices)
        quick.check_values = check_values and check_indices
        return quick
    compiled = build(
        check(parsed),
        be,
        context=context or {},
        params=params or {},
        sharded=sharded,
        group=group,
        fused_backward=fused_backward,
        check_indices=check_indices,
    )
    compiled._runtime.check_values = check_values and check_indices
    if check_domains:
        compiled.domain_check = DomainCheck(compiled.spec, be, compiled._static_dims)
    return compiled


def build(
    checked: CheckedModule,
    be,
    *,
    context: Mapping[str, Any],
    params: Mapping[str, Any],
    sharded: str | None = None,
    group: Any = None,
    fused_backward: bool = True,
    check_indices: bool = True,
) -> CompiledLoss:
    """A checked spec compiled for a loaded backend, with its context and params bound."""
    static, ctx_values, param_values = _bind(checked, be, context, params, sharded)
    code = emit(
        checked, be, static_dims=static, sharded=sharded, fused_backward=fused_backward, check_indices=check_indices
    )
    return instantiate(checked, be, code, context_values=ctx_values, param_values=param_values, group=group)


def generate_source(
    spec,
    backend: str = "torch",
    *,
    context: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    sharded: str | None = None,
    fused_backward: bool = True,
    check_indices: bool = True,
    standalone: bool = False,
) -> str:
    """The code `compile` runs with the same arguments (what `lossdsl emit` prints). The backend's
    framework is not imported. Context may be left out: its sizes are then checked at each call.

    `standalone=True`: a module that needs only the framework (lossdsl/standalone.py), with
    `loss(...)` and, for a spec with context, `bind(**context)`; params' values are baked in."""
    be = backend_class(backend)
    checked = check(parse(spec, allow_quick=False))
    if standalone and context:
        raise LossError.plain(
            "a standalone module takes its context tensors when it runs, not when it is emitted",
            path=checked.source.name,
            code="E806",
            help=f"leave `context=` out and call the module's `bind({', '.join(context)}=...)`",
        )
    # Context and params are checked as `compile` checks them, read through NumPy: only their
    # sizes reach the code, and the framework stays unloaded.
    static, _, param_values = _bind(checked, get_backend("numpy"), context or None, params or {}, sharded)
    code = emit(
        checked,
        be,
        static_dims=static,
        sharded=sharded,
        fused_backward=fused_backward,
        check_indices=check_indices,
        check_context=standalone,
    )
    if standalone:
        return standalone_source(checked, be, code, param_values)
    return code.source


def _bind(
    checked: CheckedModule, be, context: Mapping[str, Any] | None, params: Mapping[str, Any], sharded: str | None
) -> tuple[dict[str, tuple[int, str]], dict[str, Any], dict[str, Any]]:
    """The sizes known at compile time (the spec's, the context's, the params'), and the context
    and param values. `context=None` leaves the context unbound (only `generate_source` does)."""
    static = dict(checked.bindings)
    if sharded is not None:
        check_sharded(checked, sharded)
        if sharded in static:
            raise LossError(
                [
                    Diagnostic(
                        f"`{sharded}` has a fixed size ({static[sharded][0]}), so it cannot be split across replicas",
                        None,
                        "E811",
                        path=checked.source.name,
                    )
                ]
            )
    ctx_values = bind_context(checked, be, context, static) if context is not None else {}
    param_values = bind_params(checked, be, params, static)
    return static, ctx_values, param_values
