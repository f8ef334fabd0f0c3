"""A loss's params as Keras state: variables a callback can assign between steps, which the
compiled training step reads without a retrace on every Keras backend.

On TensorFlow and torch a step reads a variable where it lives. A jitted JAX step sees only
the model's state, so there the variables are lent to the model as a metric's state
(`ParamState`): metric variables travel into and out of the jitted step, and are not part of
the model's own weights, so a checkpoint written while they are lent loads into a fresh model.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np


class ParamState(keras.metrics.Metric):
    """Holds the param variables. Not a statistic: `reset_state` keeps them, and `result` adds
    nothing to the logs."""

    def __init__(self, initial: Mapping[str, np.ndarray], name: str):
        super().__init__(name=name)
        self.values = {
            k: self.add_variable(shape=v.shape, initializer=_constant(v), dtype=str(v.dtype), name=f"lossdsl_{k}")
            for k, v in initial.items()
        }

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        pass

    def reset_state(self) -> None:
        pass

    def result(self) -> dict:
        return {}


def _constant(value: np.ndarray) -> Callable[..., np.ndarray]:
    return lambda shape=None, dtype=None: np.asarray(value, dtype=dtype or value.dtype)


class Lending:
    """Which models the params are lent to (JAX only), and the lending itself."""

    def __init__(self, state: ParamState):
        self.state = state
        self.models: weakref.WeakSet = weakref.WeakSet()  # every model seen calling the loss
        self.attribute = f"_lossdsl_params_{id(state)}"

    def seen(self, model) -> None:
        self.models.add(model)

    def lend(self, model) -> None:
        if getattr(model, self.attribute, None) is self.state:
            return
        tracker = model._tracker
        was_locked = tracker.locked
        tracker.unlock()
        try:
            setattr(model, self.attribute, self.state)  # tracked as one of the model's metrics
        finally:
            if was_locked:
                tracker.lock()

    def take_back(self, model) -> None:
        if getattr(model, self.attribute, None) is self.state:
            model._tracker.untrack(self.state)
            object.__delattr__(model, self.attribute)

    def assign(self, values: Mapping[str, Any]) -> None:
        """Assign between steps. A JAX `fit` keeps the state of the running epoch outside the
        variables: write it back first, lend the params to every model seen (the next step then
        fetches them, tracing once more the first time), and the loop fetches the new values."""
        jax = keras.backend.backend() == "jax"
        models = list(self.models) if jax else []
        for model in models:
            model.jax_state_sync()
            self.lend(model)
        for k, v in values.items():
            var = self.state.values[k]
            var.assign(np.asarray(v, dtype=var.dtype))
        for model in models:
            model._jax_state_synced = True


class UpdateParams(keras.callbacks.Callback):
    """Sets the loss's params from `schedule(epoch, logs)` at the start of every epoch (logs of
    the previous epoch, `None` at the first). The change reaches the compiled training step
    without a retrace on every backend."""

    def __init__(self, loss, schedule: Callable[[int, dict | None], Mapping[str, Any] | None]):
        super().__init__()
        self.loss = loss
        self.schedule = schedule
        self._last_logs: dict | None = None

    def on_train_begin(self, logs=None):
        self.loss.track(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        values = self.schedule(epoch, self._last_logs)
        if values:
            self.loss.set_params(**values)

    def on_epoch_end(self, epoch, logs=None):
        self._last_logs = dict(logs or {})
