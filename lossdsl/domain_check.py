"""The call-time check of declared value domains: `lossdsl.compile(..., check_domains=True)`.

At each eager call every argument declared with a domain (`in (0, 1]`, `in simplex`,
`in [0, C)`) is read back to the host and compared with it; one that leaves it is a
`LossError` (E814) pointing at the domain. Reading the values costs a transfer from the
device and a pass over them per declared argument, which is why the check is opt-in.
While tracing (jit, `tf.function`, `torch.compile`) the values are not there to read and the
check is skipped. Context tensors and params are checked too, with the values bound at
compile time or passed at this call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .checked import CheckedModule, Leaf
from .diagnostics import Diagnostic, LossError
from .domains import Interval, violation


class DomainCheck:
    def __init__(self, checked: CheckedModule, backend: Any, static_dims: Mapping[str, tuple[int, str]]):
        self.checked = checked
        self.backend = backend
        self.static = {k: v for k, (v, _) in static_dims.items()}
        call = checked.call_args
        params = checked.of_kind("param")
        # (slot in the call's value list, leaf) for every leaf passed at a call
        self.slots = [(i, leaf) for i, d in enumerate(call) for leaf in d.leaves]
        self.slots += [(len(call) + j, leaf) for j, d in enumerate(params) for leaf in d.leaves]
        self.context = [leaf for d in checked.of_kind("context") for leaf in d.leaves]
        self.any = any(leaf.domain is not None for _, leaf in self.slots) or any(
            leaf.domain is not None for leaf in self.context
        )

    def __call__(
        self, values: Sequence[Any], params: Mapping[str, Any], context: Mapping[str, Any], default: Any
    ) -> None:
        """`values`: the call's (pred, target, input, then param) values, `default` standing for a
        param not passed (its value is then `params[name]`)."""
        if not self.any:
            return
        read: list[tuple[Leaf, Any]] = []
        for slot, leaf in self.slots:
            value = values[slot] if slot < len(values) else None
            if leaf.kind == "param" and (value is None or value is default):
                value = params.get(leaf.decl.name)
            read.append((leaf, _at(value, leaf.path)))
        read += [(leaf, context.get(leaf.label)) for leaf in self.context]
        sizes = dict(self.static)
        for leaf, value in read:
            shape = getattr(value, "shape", None)
            if shape is None or len(shape) != leaf.type.rank:
                continue  # a wrong rank is the entry's error (E804)
            for dim, n in zip(leaf.type.shape, shape):
                if dim.is_symbol and isinstance(n, int):
                    sizes.setdefault(dim.sym, n)  # type: ignore[arg-type]
        for leaf, value in read:
            if leaf.domain is None or value is None:
                continue
            host = self.backend.host_values(value)
            if host is None:
                continue  # under tracing
            domain = leaf.domain
            if isinstance(domain, Interval) and any(s not in sizes for s in domain.symbols):
                continue
            bad = violation(domain, host, sizes)
            if bad is not None:
                raise self._error(leaf, bad, sizes)

    def _error(self, leaf: Leaf, bad: str, sizes: dict[str, int]) -> LossError:
        domain = leaf.domain
        assert domain is not None
        notes = []
        if isinstance(domain, Interval):
            notes = [f"`{s}` is {sizes[s]} at this call" for s in domain.symbols]
        return LossError(
            [
                Diagnostic(
                    f"{leaf.kind} `{leaf.label}` holds {bad}, outside its declared domain `{domain}`",
                    domain.span,
                    "E814",
                    notes=tuple(notes),
                    help="pass values inside the domain, or widen the domain in the declaration",
                    path=self.checked.source.name,
                )
            ]
        )


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(p)
    return value
