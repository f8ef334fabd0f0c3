"""A spec as a `keras.losses.Loss`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import keras
import numpy as np

from ..diagnostics import Diagnostic, LossError
from ..loading import load_source
from ..source import Source
from ..types import BOOL, INT, TensorType
from .layout import Layout, all_of, error, refuse_float_ids
from .metadata import calling_model, refusing_cleanly
from .params import Lending, ParamState
from .unpacked import Unpacked


@keras.saving.register_keras_serializable(package="lossdsl")
class Loss(keras.losses.Loss):
    def __init__(
        self,
        spec,
        *,
        context: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        y_true: Sequence[str] | None = None,
        inputs: Sequence[str] | None = None,
        spec_name: str | None = None,
        name: str | None = None,
        reduction: str = "sum_over_batch_size",
        dtype=None,
        check_values: bool = False,
        check_domains: bool = False,
    ):
        source = load_source(spec, spec_name)
        super().__init__(name=name or default_name(source), reduction=reduction, dtype=dtype)
        import lossdsl

        self.backend_name = keras.backend.backend()
        self._source = source
        self._context = {k: np.asarray(v) for k, v in (context or {}).items()}
        checked = lossdsl.check(source)
        preds = checked.preds
        if len(preds) != 1:
            raise LossError(
                [
                    Diagnostic(
                        f"a Keras loss takes one prediction, and this spec declares {len(preds)} preds",
                        preds[-1].name_span if preds else None,
                        "E806",
                        help="use lossdsl.compile(...) in a custom training step instead",
                    )
                ]
            )
        self.layout = Layout(checked, source.text, source.name, self._context, y_true, inputs)
        # Params live in Keras variables: a callback may assign them without a retrace.
        initial = {d.name: d.default for d in checked.of_kind("param") if d.has_default}
        initial.update(params or {})
        values = {}
        for d in checked.of_kind("param"):
            if d.name in initial:
                dtype_name = {INT: "int32", BOOL: "bool"}.get(cast(TensorType, d.type).dtype, "float32")
                values[d.name] = np.asarray(initial[d.name], dtype=dtype_name)
        self._lending = Lending(ParamState(values, name=f"{self.name}_params"))
        backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[self.backend_name]
        # fit always traces (tf.function, jax.jit): only check_values keeps the index check there.
        self.check_values = check_values
        # Domains are read on the host: checked where Keras calls the loss eagerly (a direct call,
        # `run_eagerly=True`), skipped inside the traced training step.
        self.check_domains = check_domains
        self.compiled = lossdsl.compile(
            source,
            backend=backend,
            context=self._context,
            params=dict(initial),
            check_values=check_values,
            check_domains=check_domains,
        )
        self._checked = self.compiled.spec
        self._per_sample = self._checked.per_sample
        self._checked_models: set[int] = set()

    # ---- params ----
    @property
    def params(self) -> dict[str, Any]:
        return {k: keras.ops.convert_to_numpy(v.value) for k, v in self._lending.state.values.items()}

    def set_params(self, **values: Any) -> None:
        """New values for the param variables, checked as `lossdsl.compile` checks them (dtype,
        rank, the sizes the loss was compiled for); nothing changes unless all pass. Safe from
        any callback, at any point of `fit`, on every backend."""
        self.compiled.check_params(**values)
        for k in values:
            if k not in self._lending.state.values:
                raise error(
                    f"`{k}` is not a param of this spec (or has no value to start from)", "E806", self._source.name
                )
        self._lending.assign(values)

    def track(self, model) -> None:
        """Lend the param variables to `model`: a jitted JAX step sees only the model's state.
        `UpdateParams` and `set_params` do this when needed; a checkpoint written meanwhile
        loads into a fresh model."""
        self._lending.seen(model)
        if self.backend_name == "jax":
            self._lending.lend(model)

    def untrack(self, model) -> None:
        self._lending.take_back(model)

    # ---- metrics over the same y_true ----
    def metric(self, metric: Any, target: str | None = None, name: str | None = None) -> keras.metrics.Metric:
        """A Keras metric (`"accuracy"`, a `keras.metrics.Metric`, ...) that sees the plain
        target (`target`, or the first declared) instead of the packed `y_true`."""
        return Unpacked(self.layout, metric, target=target, name=name)

    # ---- the loss ----
    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras weighs the value `call` returns; a scalar (already reduced) spec has no samples
        # to weigh, and Keras would silently rescale it by the mean weight. `fit(class_weight=...)`
        # arrives here as a sample_weight too.
        if sample_weight is not None and not self._per_sample:
            raise LossError(
                [
                    Diagnostic(
                        "`sample_weight` (or `class_weight`) needs a per-sample loss, but this `loss` is a scalar",
                        self._checked.loss.span,
                        "E808",
                        help="make `loss` per-sample (shape [B]) and let Keras reduce it",
                    )
                ]
            )
        if isinstance(y_true, Mapping):  # Keras makes every y_true float: read the dtypes before
            # (a list would be taken for a structure of scalars)
            y_true = {k: np.asarray(v) if isinstance(v, (list, tuple)) else v for k, v in y_true.items()}
            for decl in self.layout.fields:
                if decl.name in y_true:
                    refuse_float_ids(decl, y_true[decl.name], "the y_true dict holds")
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        with refusing_cleanly():
            self._look_at_caller()
            whole: list = []  # under a traced step: "the packed ids are whole numbers" flags
            fields = self.layout.unpack(y_true, y_pred, whole)
        params = {k: v.value for k, v in self._lending.state.values.items()}
        out = self.compiled(
            **{self.layout.pred: y_pred}, **fields, **params, reduction="none" if self._per_sample else "mean"
        )
        return out if not whole else nan_unless(whole, out)

    def _look_at_caller(self) -> None:
        """Remember the model that trains with this loss (for `set_params` on JAX), and refuse
        what a packed `y_true` would silently corrupt there."""
        caller = calling_model()
        if caller is None:
            return
        model = caller.model
        self._lending.seen(model)
        if not self.layout.is_packed:
            return
        key = id(model)
        if key not in self._checked_models:
            refuse_plain_metrics(self, model)
            self._checked_models.add(key)
        if caller.in_fit and caller.entry.f_locals.get("class_weight") is not None:
            raise error(
                "`class_weight` would read the packed y_true (targets and metadata side by side) and "
                "weigh the wrong classes",
                "E813",
                self._source.name,
                help="send the metadata through the model's inputs instead (`Loss(..., inputs=[...])` with "
                "`lossdsl.keras.MetadataModel`): y_true is then the plain target that class_weight reads",
            )

    # ---- saving ----
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            self.layout.config(),  # the spec, its name, the context, where y_true and inputs travel
            params={k: np.asarray(v).tolist() for k, v in self.params.items()},
            check_values=self.check_values,
            check_domains=self.check_domains,
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        config = dict(config)
        spec = config.pop("spec")
        return cls(spec, **config)


def refuse_plain_metrics(loss: Loss, model) -> None:
    """A packed `y_true` reaches every compiled metric: a plain one (`"accuracy"`) would compare
    the prediction with targets and metadata side by side and report a wrong number."""
    compiled = getattr(model, "_compile_metrics", None)
    if compiled is None:
        return
    for group in (compiled._user_metrics, compiled._user_weighted_metrics):
        for m in keras.tree.flatten(group) if group is not None else []:
            if (
                getattr(getattr(m, "source_layout", None), "key", None) != loss.layout.key
            ):  # Unpacked, Metric(like=loss)
                label = m if isinstance(m, str) else getattr(m, "name", type(m).__name__)
                raise error(
                    f"the metric `{label}` would read the packed y_true (targets and metadata side by side) "
                    "and report a wrong number",
                    "E813",
                    loss._source.name,
                    help=f"wrap it: `metrics=[loss.metric({label!r})]`, or send the metadata through the "
                    "model's inputs (`Loss(..., inputs=[...])` with `lossdsl.keras.MetadataModel`)",
                )


def nan_unless(flags: list, loss):
    """`loss` where every flag holds, else NaN with a zero gradient: a packed id that is not a
    whole number, seen only inside a traced step, is never rounded into a number that looks
    right (docs/integrations.md)."""
    return keras.ops.where(all_of(flags), loss, keras.ops.full_like(loss, float("nan")))


def default_name(source: Source) -> str:
    stem = source.name.rsplit("/", 1)[-1]
    return stem[:-5] if stem.endswith(".loss") else "lossdsl"
