"""Keras 3: a spec as a `keras.losses.Loss`, on the TensorFlow, JAX and torch backends.

Keras hands a loss only `y_true` and `y_pred`. The spec's other targets and inputs (group
ids, time weights, features) reach it one of two ways:

- **through the model's inputs** (recommended): `Loss(spec, inputs=["group"])`, the model
  wrapped in `MetadataModel`, and `fit({"x": x, "group": ids}, y)`. `y_true` stays the plain
  target, so `metrics=["accuracy"]`, `class_weight` and `sample_weight` read it as usual.

      loss = lossdsl.keras.Loss("examples/weighted_cce.loss", inputs=["group"], ...)
      model = lossdsl.keras.MetadataModel(base_model)
      model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
      model.fit({"x": x, "group": ids}, y, validation_data=({"x": xv, "group": idsv}, yv))

- **packed into `y_true`**: `Loss(spec, y_true=["y", "group"])` and
  `fit(x, pack(loss, y=y, group=ids))`. Only what unpacks it may read that `y_true`: metrics
  through `loss.metric("accuracy")` or `Metric(..., like=loss)`; a plain metric is refused
  (E813) when the model is compiled, `class_weight` at the first step, rather than computed
  on the packed columns.

Params are Keras variables, so a callback can change them between steps without a retrace
(`UpdateParams`, or `loss.set_params` from any callback). `get_config`/`from_config` carry the
spec text, context and current params, so a saved model reloads with its loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import compile_check
from .loss import Loss
from .metadata import MetadataModel
from .metrics import Metric
from .params import UpdateParams

compile_check.install()

__all__ = ["Loss", "MetadataModel", "Metric", "UpdateParams", "pack"]


def pack(loss: Loss, **arrays: Any) -> np.ndarray:
    """One float32 array with the named targets and inputs side by side, in the order of
    `Loss(..., y_true=[...])`, for `model.fit(x, pack(loss, y=..., group=...))`."""
    return loss.layout.pack(arrays)
