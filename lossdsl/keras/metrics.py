"""`Metric(spec, ...)`: a spec's value averaged over the samples of an epoch, optionally per
group (`by="group", groups=G` logs `<name>_0 ... <name>_{G-1}`, and `val_<name>_<g>` on
validation data), so per-epoch group weights can come from `logs` in an `UpdateParams`
schedule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from ..diagnostics import Diagnostic, LossError
from ..loading import load_source
from .layout import Layout, error
from .loss import Loss, default_name, nan_unless
from .metadata import current_metadata, refusing_cleanly


@keras.saving.register_keras_serializable(package="lossdsl")
class Metric(keras.metrics.Metric):
    """A spec evaluated on every batch and averaged over the samples of the epoch (per group
    with `by=`). `like=loss` reads y_true as that loss does (packed or plain, metadata from
    the model's inputs); otherwise `y_true`/`inputs` say where the spec's fields travel, as
    for `Loss`."""

    def __init__(
        self,
        spec,
        *,
        like: Loss | Layout | None = None,
        by: str | None = None,
        groups: int | None = None,
        context: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        y_true: Sequence[str] | None = None,
        inputs: Sequence[str] | None = None,
        spec_name: str | None = None,
        name: str | None = None,
        dtype=None,
    ):
        import lossdsl

        source = load_source(spec, spec_name)
        super().__init__(name=name or default_name(source), dtype=dtype)
        context = {k: np.asarray(v) for k, v in (context or {}).items()}
        backend = keras.backend.backend()
        self.compiled = lossdsl.compile(source, backend=backend, context=context, params=dict(params or {}))
        spec_checked = self.compiled.spec
        self.path = source.name
        # Every field of this spec is taken by name from what `like` unpacks, else from the
        # model's inputs; `own` casts what comes from the inputs.
        self.own = Layout(spec_checked, source.text, source.name, context, None, None)
        self.source_layout = (
            like.layout
            if isinstance(like, Loss)
            else like or Layout(spec_checked, source.text, source.name, context, y_true, inputs)
        )
        self.spec_params = dict(params or {})
        self.per_sample = spec_checked.per_sample
        self.by = by
        self.groups = groups
        if by is not None:
            if groups is None or groups < 1:
                raise error(f"`by={by!r}` needs the number of groups: `groups=G`", "E806", self.path)
            if not self.per_sample:
                raise LossError(
                    [
                        Diagnostic(
                            f"a metric by `{by}` needs a per-sample value, but this `loss` is a scalar",
                            spec_checked.loss.span,
                            "E808",
                            help="make `loss` per-sample (shape [B]); the metric averages it within each group",
                        )
                    ]
                )
        size = (int(groups),) if groups is not None and by is not None else ()
        self.total = self.add_variable(shape=size, initializer="zeros", name="total")
        self.count = self.add_variable(shape=size, initializer="zeros", name="count")

    def _field(self, name: str, available: Mapping[str, Any]):
        if name in available:
            return available[name]
        metadata = current_metadata() or {}
        if name in metadata:
            decl = next((d for d in self.own.fields if d.name == name), None)
            return self.own.cast_field(decl, metadata[name]) if decl is not None else metadata[name]
        raise error(
            f"the metric needs `{name}`, which neither y_true nor the model's inputs carry",
            "E807",
            self.path,
            help="pass `like=loss` to read y_true as the loss does, or send it through the model's inputs "
            "(`lossdsl.keras.MetadataModel`)",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        ops = keras.ops
        with refusing_cleanly():
            whole: list = []  # under a traced step: "the packed ids are whole numbers" flags
            available = self.source_layout.unpack(y_true, y_pred, whole)
            args = {d.name: self._field(d.name, available) for d in self.own.fields}
            ids = self._field(self.by, available) if self.by is not None else None
        value = self.compiled(**{self.own.pred: y_pred}, **args, reduction="none" if self.per_sample else "mean")
        value = ops.cast(value if not whole else nan_unless(whole, value), self.dtype)
        batch = ops.cast(ops.shape(y_pred)[0], self.dtype)
        if not self.per_sample:  # a batch mean: weigh it by the batch size
            self.total.assign_add(value * batch)
            self.count.assign_add(batch)
            return
        w = ops.ones_like(value) if sample_weight is None else ops.cast(ops.reshape(sample_weight, (-1,)), self.dtype)
        if self.by is None:
            self.total.assign_add(ops.sum(value * w))
            self.count.assign_add(ops.sum(w))
            return
        ids = ops.cast(ops.reshape(ids, (-1,)), "int32")
        self.total.assign_add(ops.segment_sum(value * w, ids, num_segments=self.groups))
        self.count.assign_add(ops.segment_sum(w, ids, num_segments=self.groups))

    def result(self):
        mean = keras.ops.divide_no_nan(self.total, self.count)  # an empty group counts 0, as segment_mean
        if self.by is None:
            return mean
        return {f"{self.name}_{g}": mean[g] for g in range(int(self.groups or 0))}

    def reset_state(self):
        for v in (self.total, self.count):
            v.assign(keras.ops.zeros_like(v.value))

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "dtype": self.dtype,
            **self.own.config(),  # the spec, its name and context (and where fields travel: nowhere)
            "params": {k: np.asarray(v).tolist() for k, v in self.spec_params.items()},
            "by": self.by,
            "groups": self.groups,
            "reads": self.source_layout.config(),
        }

    @classmethod
    def from_config(cls, config: dict) -> Metric:
        config = dict(config)
        spec = config.pop("spec")
        reads = Layout.from_config(config.pop("reads"))
        return cls(spec, like=reads, **config)
