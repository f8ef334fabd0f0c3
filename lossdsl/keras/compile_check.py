"""Plain metrics over a packed `y_true`, refused when the model is compiled.

Keras builds a model's compiled metrics before it first calls the loss (on the JAX and torch
backends `fit` traces the metrics first), so a metric such as `"mse"` would meet the packed
columns, targets and metadata side by side, and fail with Keras's own shape error, or report
a wrong number, before the loss could say anything. `Model.compile` is therefore followed by
the check the loss also runs at its first call (`refuse_plain_metrics`): a plain metric next
to a lossdsl loss with a packed `y_true` is a LossError (E813) saying what to use instead.
Models compiled with any other loss are not touched.
"""

from __future__ import annotations

import functools
from typing import Any

import keras

_INSTALLED = "_lossdsl_checks_packed_metrics"


def install() -> None:
    """Wrap `compile` once (importing lossdsl.keras does it), on the class that defines it:
    Keras reloads a saved model with its compile config only where `compile` is not
    overridden (it compares the model's `compile` with that class's)."""
    owner = next(c for c in keras.Model.__mro__ if "compile" in vars(c))
    compile_ = vars(owner)["compile"]
    if getattr(compile_, _INSTALLED, False):
        return

    @functools.wraps(compile_)
    def compile(self, *args: Any, **kwargs: Any) -> Any:
        out = compile_(self, *args, **kwargs)
        check_compiled(self)
        return out

    setattr(compile, _INSTALLED, True)
    owner.compile = compile  # type: ignore[method-assign]


def check_compiled(model) -> None:
    from .loss import Loss, refuse_plain_metrics

    losses = keras.tree.flatten(getattr(model, "loss", None)) if getattr(model, "loss", None) is not None else []
    for loss in losses:
        if isinstance(loss, Loss) and loss.layout.is_packed:
            refuse_plain_metrics(loss, model)
