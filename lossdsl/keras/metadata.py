"""Metadata through the model's inputs: `MetadataModel` takes a dict of inputs, gives the
wrapped model its `x`, and lends the other entries to lossdsl losses and metrics while Keras
computes them. `y_true` stays the plain target, so Keras metrics, `class_weight` and
`sample_weight` read it as they would for any loss.

    loss = lossdsl.keras.Loss("examples/weighted_group.loss", inputs=["group"])
    model = lossdsl.keras.MetadataModel(base_model)
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    model.fit({"x": x, "group": ids}, y, class_weight={0: 1.0, 1: 2.0},
              validation_data=({"x": xv, "group": idsv}, yv))
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import keras

from ..diagnostics import Diagnostic, LossError

# Set while Keras computes the loss and metrics of a MetadataModel's step. Keras computes
# both synchronously inside the step (inside the trace under tf.function and jax.jit), so a
# context variable reaches the loss without passing through Keras.
_METADATA: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("lossdsl_metadata", default=None)


def current_metadata() -> Mapping[str, Any] | None:
    return _METADATA.get()


@contextlib.contextmanager
def lending(metadata: Mapping[str, Any] | None) -> Iterator[None]:
    token = _METADATA.set(metadata)
    try:
        yield
    finally:
        _METADATA.reset(token)


# The Keras entry points that run a loss, and the order of the JAX state each keeps in `state`.
_TRAIN_STATE = ("trainable_variables", "non_trainable_variables", "optimizer_variables", "metrics_variables")
_TEST_STATE = ("trainable_variables", "non_trainable_variables", "metrics_variables")
_ENTRIES = {"fit": _TRAIN_STATE, "train_on_batch": _TRAIN_STATE, "evaluate": _TEST_STATE, "test_on_batch": _TEST_STATE}


class Caller(NamedTuple):
    model: Any  # the keras.Model computing the loss
    entry: Any  # the frame of its fit/evaluate/train_on_batch/test_on_batch, or None

    @property
    def in_fit(self) -> bool:
        return self.entry is not None and self.entry.f_code.co_name in ("fit", "train_on_batch")


def calling_model() -> Caller | None:
    """The Keras model whose `fit`/`evaluate`/`compute_loss` runs this call (None when the
    loss is called directly). Keras passes a loss no model, and what a packed `y_true`
    corrupts (compiled metrics, `class_weight`) is only visible there; the walk costs a few
    microseconds, once per trace (every call in eager Keras)."""
    frame: Any = sys._getframe(1)
    model = None
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.Model):
            model = owner
            if frame.f_code.co_name in _ENTRIES:
                return Caller(model, frame)
        frame = frame.f_back
    return Caller(model, None) if model is not None else None


@contextlib.contextmanager
def refusing_cleanly() -> Iterator[None]:
    """A LossError raised inside a step leaves the model as it was. The JAX trainer takes the
    model's variables out of them (into its local `state`) for the length of an epoch and puts
    them back at its end; an error in the first step would leave the model without weights."""
    try:
        yield
    except LossError:
        caller = calling_model()
        if keras.backend.backend() == "jax" and caller is not None and caller.entry is not None:
            state = caller.entry.f_locals.get("state")
            if state is not None:
                put_back(caller.model, dict(zip(_ENTRIES[caller.entry.f_code.co_name], state)))
        raise


def put_back(model, state: Mapping[str, Any]) -> None:
    # Set directly: inside the step's trace `assign` would only record an update.
    refs = {
        "trainable_variables": model.trainable_variables,
        "non_trainable_variables": model.non_trainable_variables,
        "optimizer_variables": model.optimizer.variables if model.optimizer is not None else [],
        "metrics_variables": model.metrics_variables,
    }
    for name, values in state.items():
        for ref, value in zip(refs[name], values):
            ref._direct_assign(value)


@keras.saving.register_keras_serializable(package="lossdsl")
class MetadataModel(keras.Model):
    """Wraps `model`: called on a dict of inputs, it gives `model` the entry `x_key` and lends
    the other entries (group ids, time weights, features) to the lossdsl losses and metrics
    declared with `inputs=[...]`."""

    def __init__(self, model: keras.Model, x_key: str = "x", **kwargs: Any):
        super().__init__(**kwargs)
        self.inner = model
        self.x_key = x_key

    def call(self, inputs, training=None):
        with refusing_cleanly():
            return self.inner(self._model_input(inputs), training=training)

    def _model_input(self, inputs):
        if isinstance(inputs, Mapping):
            if self.x_key not in inputs:
                raise LossError(
                    [
                        Diagnostic(
                            f"the inputs have no `{self.x_key}` for the model",
                            None,
                            "E807",
                            help=f"give fit/predict a dict with the model's input under '{self.x_key}' "
                            f"(or name it with MetadataModel(model, x_key=...)); got: {', '.join(inputs)}",
                        )
                    ]
                )
            return inputs[self.x_key]
        return inputs

    def _metadata(self, x) -> Mapping[str, Any] | None:
        if isinstance(x, Mapping):
            return {k: v for k, v in x.items() if k != self.x_key}
        return None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        with lending(self._metadata(x)):
            return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        with lending(self._metadata(x)):
            return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.inner),
            "x_key": self.x_key,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects=None) -> MetadataModel:
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(config.pop("model"), custom_objects=custom_objects)
        return cls(inner, **config)
