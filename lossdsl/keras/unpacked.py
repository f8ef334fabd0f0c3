"""`loss.metric("accuracy")`: any Keras metric, given the plain target out of a loss's
packed `y_true`."""

from __future__ import annotations

from typing import Any, cast

import keras

from ..types import INT
from .layout import Layout, all_of


def keras_metric(identifier: Any, target_type, pred_rank: int) -> keras.metrics.Metric:
    """`identifier` as a metric object. "accuracy" and "crossentropy" mean what Keras's
    `compile` makes of them for this target and prediction (categorical for a one-hot
    target, sparse for int labels, binary for one output)."""
    if isinstance(identifier, keras.metrics.Metric):
        return identifier
    if identifier in ("accuracy", "acc", "crossentropy", "ce"):
        kind = "accuracy" if identifier in ("accuracy", "acc") else "crossentropy"
        if target_type.dtype is INT and target_type.rank == pred_rank - 1:
            return keras.metrics.get(f"sparse_categorical_{kind}")
        if pred_rank == 1 or target_type.rank < 2:
            return keras.metrics.get(f"binary_{kind}")
        return keras.metrics.get(f"categorical_{kind}")
    return keras.metrics.get(identifier)


@keras.saving.register_keras_serializable(package="lossdsl")
class Unpacked(keras.metrics.Metric):
    """A Keras metric fed the target out of a packed y_true (`layout` is the loss's)."""

    def __init__(self, layout: Layout, metric: Any, target: str | None = None, name: str | None = None):
        self.source_layout = layout
        self.leaf, self.label = layout.target_leaf(target)
        pred_rank = cast(Any, layout.spec.declaration(layout.pred)).type.rank
        inner = keras_metric(metric, self.leaf.type, pred_rank)
        super().__init__(name=name or inner.name)
        self.inner = inner
        # set when a packed id seen inside a traced step was not a whole number (it would have
        # been rounded): the result is then NaN, never a number computed from a rounded id
        self.fractional = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="fractional_ids")

    def update_state(self, y_true, y_pred, sample_weight=None):
        whole: list = []  # under a traced step: "the packed ids are whole numbers" flags
        value: Any = self.source_layout.unpack(y_true, y_pred, whole)
        for part in self.label.split("."):
            value = value[part]
        if whole:  # a fractional id: the metric is NaN until reset, as the loss is for that batch
            bad = 1.0 - keras.ops.cast(all_of(whole), "float32")
            self.fractional.assign(keras.ops.maximum(self.fractional, bad))
        return self.inner.update_state(value, y_pred, sample_weight=sample_weight)

    def result(self):
        inner = self.inner.result()
        return keras.ops.where(self.fractional > 0, keras.ops.full_like(inner, float("nan")), inner)

    def reset_state(self):
        self.inner.reset_state()
        self.fractional.assign(0.0)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "metric": keras.metrics.serialize(self.inner),
            "target": self.label,
            "layout": self.source_layout.config(),
        }

    @classmethod
    def from_config(cls, config: dict) -> Unpacked:
        inner = keras.metrics.deserialize(config["metric"])
        return cls(Layout.from_config(config["layout"]), inner, target=config["target"], name=config["name"])
