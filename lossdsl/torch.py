"""PyTorch: a spec as an `nn.Module`.

    criterion = lossdsl.torch.LossModule("examples/graph_distance.loss", context={"adj": adj})
    criterion.to("cuda")                  # context tensors are buffers: they move with the module
    loss = criterion(emb)                 # same call as the compiled function
    criterion.set_params(alpha=0.3)       # or per call: criterion(emb, alpha=0.3)

Context tensors are registered as buffers, so `.to(device)`, `state_dict()` and
`load_state_dict()` treat them like any other state; the module works inside
`torch.compile`d training steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["LossModule"]


def _buffer_name(label: str) -> str:
    return "ctx_" + label.replace(".", "__")


class LossModule(nn.Module):
    def __init__(
        self,
        spec,
        *,
        context: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        fused_backward: bool = True,
        check_indices: bool = True,
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
        self._seen: tuple = ()

    @property
    def signature(self) -> str:
        return self.loss_fn.signature

    @property
    def params(self) -> dict[str, Any]:
        return self.loss_fn.params

    def set_params(self, **values: Any) -> None:
        self.loss_fn.set_params(**values)

    def _sync_context(self) -> None:
        # The buffers may have moved (.to), been replaced or loaded in place (load_state_dict):
        # hand the current ones to the compiled loss, whose per-device cache is then renewed.
        buffers = [getattr(self, _buffer_name(label)) for label in self._labels]
        key = tuple((id(b), b._version, b.device) for b in buffers)
        if key != self._seen:
            runtime = self.loss_fn._runtime
            for label, b in zip(self._labels, buffers):
                runtime.context[label] = b
            runtime.clear_cache()
            self._seen = key

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._labels:
            self._sync_context()
        return self.loss_fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.loss_fn.spec.source.name}: {self.signature}"
