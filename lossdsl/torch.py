"""PyTorch: a spec as an `nn.Module`.

    criterion = lossdsl.torch.LossModule("examples/graph_distance.loss", context={"adj": adj})
    criterion.to("cuda")                  # context tensors are buffers: they move with the module
    loss = criterion(emb)                 # same call as the compiled function
    criterion.set_params(alpha=0.3)       # or per call: criterion(emb, alpha=0.3)

Context tensors and the values of params are registered as buffers, so `.to(device)`,
`state_dict()` and `load_state_dict()` treat them like any other state: a checkpoint keeps
the params set by `set_params` (per-epoch group weights survive a resume). Each call hands
the current buffers to the compiled loss as arguments and changes no state, so the module
compiles into one graph (`torch.compile(fullgraph=True)`), exports (`torch.export`), and
nothing traced stays behind in it.

`check_domains=True` checks, at each eager call, that every argument, context buffer and param
declared with a value domain lies in it (E814), as `lossdsl.compile` does; skipped while tracing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["LossModule"]


def _buffer_name(label: str) -> str:
    return "ctx_" + label.replace(".", "__")


def _param_buffer_name(name: str) -> str:
    return "param_" + name


_TORCH_DTYPES = {"float": torch.float32, "int": torch.int64, "bool": torch.bool}


class LossModule(nn.Module):
    def __init__(
        self,
        spec,
        *,
        context: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        fused_backward: bool = True,
        check_indices: bool = True,
        check_values: bool = False,
        check_domains: bool = False,
    ):
        super().__init__()
        import lossdsl

        self.loss_fn = lossdsl.compile(
            spec,
            backend="torch",
            context=context,
            params=params,
            fused_backward=fused_backward,
            check_indices=check_indices,
            check_values=check_values,
            check_domains=check_domains,
        )
        self._labels: list[str] = []
        for decl in self.loss_fn.spec.of_kind("context"):
            for leaf in decl.leaves:
                assert context is not None  # compile() refuses a context declaration left unbound
                value = context[decl.name]
                for p in leaf.path:
                    value = value[p]
                self.register_buffer(_buffer_name(leaf.label), torch.as_tensor(value))
                self._labels.append(leaf.label)
        # Params with a value (a default, or bound here) are buffers too; those without one are
        # given at each call and are no state of the module.
        self._param_names: list[str] = []
        for decl in self.loss_fn.spec.of_kind("param"):
            if decl.name in self.loss_fn.params:
                dtype = _TORCH_DTYPES[decl.type.dtype.value]
                value = torch.as_tensor(self.loss_fn.params[decl.name], dtype=dtype)
                self.register_buffer(_param_buffer_name(decl.name), value)
                self._param_names.append(decl.name)

    @property
    def signature(self) -> str:
        return self.loss_fn.signature

    @property
    def params(self) -> dict[str, Any]:
        """The current param values, as Python numbers and lists."""
        return {name: getattr(self, _param_buffer_name(name)).tolist() for name in self._param_names}

    def set_params(self, **values: Any) -> None:
        """New param values, checked as `lossdsl.compile` checks them, kept in the param buffers
        (so in `state_dict()`) on the buffers' device."""
        self.loss_fn.check_params(**values)
        for name, value in values.items():
            old = getattr(self, _param_buffer_name(name), None)
            dtype = old.dtype if old is not None else _TORCH_DTYPES[self._param_dtype(name)]
            new = torch.as_tensor(value, dtype=dtype, device=old.device if old is not None else None)
            self.register_buffer(_param_buffer_name(name), new)
            if name not in self._param_names:
                self._param_names.append(name)

    def _param_dtype(self, name: str) -> str:
        decl = next(d for d in self.loss_fn.spec.of_kind("param") if d.name == name)
        return decl.type.dtype.value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # Params not given at the call take their buffer's value, the context its buffers'.
        for name in self._param_names:
            if name not in kwargs:
                kwargs[name] = getattr(self, _param_buffer_name(name))
        if not self._labels:
            return self.loss_fn(*args, **kwargs)
        context = {label: getattr(self, _buffer_name(label)) for label in self._labels}
        return self.loss_fn.call_with(context, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.loss_fn.spec.source.name}: {self.signature}"
