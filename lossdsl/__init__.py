"""lossdsl: a small declarative language for loss functions, checked before it runs and
compiled to PyTorch, TensorFlow and JAX.

    import lossdsl
    f = lossdsl.compile("examples/weighted_mse.loss", backend="torch")
    value = f(yhat=pred, y=target, x={"feature": feat})

The front end (`parse`, `check`) imports no ML framework; a backend's framework is
imported when `compile` is asked for it.
"""

from __future__ import annotations

from .checked import CheckedModule
from .diagnostics import Diagnostic, LossError
from .frontend import check, parse

__version__ = "0.1.0"
__all__ = ["CheckedModule", "Diagnostic", "LossError", "__version__", "check", "compile", "parse"]


def compile(
    spec,
    backend: str = "torch",
    *,
    context=None,
    params=None,
    sharded=None,
    group=None,
    fused_backward=True,
    check_indices=True,
    check_values=False,
    check_domains=False,
):
    """Compile a spec (a path or source text) for a backend; see `lossdsl.api.compile`."""
    from .api import compile as _compile

    return _compile(
        spec,
        backend=backend,
        context=context,
        params=params,
        sharded=sharded,
        group=group,
        fused_backward=fused_backward,
        check_indices=check_indices,
        check_values=check_values,
        check_domains=check_domains,
    )
