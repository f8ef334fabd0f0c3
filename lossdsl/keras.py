"""Keras 3: a spec as a `keras.losses.Loss`, on the TensorFlow, JAX and torch backends.

    loss = lossdsl.keras.Loss("examples/group_weighted_cce.loss", y_true=["y", "group"])
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, lossdsl.keras.pack(loss, y=onehot, group=ids), sample_weight=w,
              callbacks=[lossdsl.keras.UpdateParams(loss, lambda epoch, logs: {"group_w": ...})])

How metadata reaches the loss. Keras hands a loss only `y_true` and `y_pred`, so the
spec's targets and inputs travel in `y_true`:
- a dict `{name: tensor}` (record fields as nested dicts), when you call the loss yourself
  or from an overridden `compute_loss`;
- or packed side by side in one float tensor, for `model.fit`: `y_true=[names...]` says in
  which order, `lossdsl.keras.pack(loss, **arrays)` builds it, and the loss splits it again
  (ints are cast back; widths come from the declarations and the prediction's shape).
- Keras's own `sample_weight` weighs the per-sample loss, as in every Keras loss.

Params are Keras variables, so a callback can change them between epochs without a retrace
(`UpdateParams`). On the JAX backend, where a jitted step sees only the model's variables,
`UpdateParams` lends them to the model for the length of `fit`. `get_config`/`from_config`
carry the spec text, context and current params, so a saved model reloads with its loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import keras
import numpy as np

from .diagnostics import Diagnostic, LossError
from .loading import load_source
from .source import Source, is_path_like
from .types import BOOL, INT, TensorType

__all__ = ["Loss", "UpdateParams", "pack"]


def _as_list(value: Any) -> Any:
    arr = np.asarray(value)
    return arr.tolist()


@keras.saving.register_keras_serializable(package="lossdsl")
class Loss(keras.losses.Loss):
    def __init__(
        self,
        spec,
        *,
        context: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        y_true: Sequence[str] | None = None,
        spec_name: str | None = None,
        name: str | None = None,
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        source = (
            load_source(spec)
            if is_path_like(spec) or isinstance(spec, Source)
            else Source(spec, spec_name or "<string>")
        )
        super().__init__(name=name or _default_name(source), reduction=reduction, dtype=dtype)
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
        self._pred = preds[0].name
        self._fields = [d for d in checked.call_args if d.kind != "pred"]
        self._layout = list(y_true) if y_true is not None else None
        self._packed = []  # (leaf, label) in packing order: a record contributes each field
        if self._layout is not None:
            leaves = {lf.label: lf for d in self._fields for lf in d.leaves}
            for n in self._layout:
                decl = next((d for d in self._fields if d.name == n), None)
                if decl is not None:
                    self._packed += [(lf, lf.label) for lf in decl.leaves]
                elif n in leaves:
                    self._packed.append((leaves[n], n))
                else:
                    raise LossError(
                        [
                            Diagnostic(
                                f"`{n}` is not a target or input of this spec",
                                None,
                                "E806",
                                path=source.name,
                                help=f"y_true can carry: {', '.join(sorted(leaves))}",
                            )
                        ]
                    )
            packed = {label for _, label in self._packed}
            unpacked = [d.name for d in self._fields if any(lf.label not in packed for lf in d.leaves)]
            if unpacked:
                raise LossError(
                    [
                        Diagnostic(
                            f"y_true=[...] leaves out {', '.join(unpacked)}",
                            None,
                            "E807",
                            path=source.name,
                            help="every target and input must travel in y_true",
                        )
                    ]
                )
        # Params live in Keras variables: a callback may assign them without a retrace.
        initial = {d.name: d.default for d in checked.of_kind("param") if d.has_default}
        initial.update(params or {})
        self._param_vars = {}
        for d in checked.of_kind("param"):
            if d.name in initial:
                dtype_name = {INT: "int32", BOOL: "bool"}.get(cast(TensorType, d.type).dtype, "float32")
                self._param_vars[d.name] = keras.Variable(
                    np.asarray(initial[d.name], dtype=dtype_name), trainable=False, name=f"lossdsl_{d.name}"
                )
        backend = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[self.backend_name]
        self.compiled = lossdsl.compile(source, backend=backend, context=self._context, params=dict(initial))
        self._checked = self.compiled.spec
        self._per_sample = self._checked.per_sample

    # ---- params ----
    @property
    def params(self) -> dict[str, Any]:
        return {k: keras.ops.convert_to_numpy(v.value) for k, v in self._param_vars.items()}

    def set_params(self, **values: Any) -> None:
        """New values for the param variables, checked as `lossdsl.compile` checks them (dtype,
        rank, the sizes the loss was compiled for); nothing changes unless all pass."""
        self.compiled.check_params(**values)
        for k in values:
            if k not in self._param_vars:
                raise LossError(
                    [
                        Diagnostic(
                            f"`{k}` is not a param of this spec (or has no value to start from)",
                            None,
                            "E806",
                            path=self._source.name,
                        )
                    ]
                )
        for k, v in values.items():
            var = self._param_vars[k]
            var.assign(np.asarray(v, dtype=var.dtype))

    def track(self, model) -> None:
        """Lend the param variables to `model` (the JAX trainer passes only the model's
        variables into its jitted step). `UpdateParams` does this during `fit`."""
        tracker = model._tracker
        was_locked = tracker.locked
        tracker.unlock()
        try:
            for v in self._param_vars.values():
                if not tracker.is_in_store("non_trainable_variables", v):
                    model._track_variable(v)
        finally:
            if was_locked:
                tracker.lock()

    def untrack(self, model) -> None:
        for v in self._param_vars.values():
            if model._tracker.is_in_store("non_trainable_variables", v):
                model._untrack_variable(v)

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
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        fields = self._split(y_true, y_pred)
        params = {k: v.value for k, v in self._param_vars.items()}
        return self.compiled(
            **{self._pred: y_pred}, **fields, **params, reduction="none" if self._per_sample else "mean"
        )

    def _split(self, y_true, y_pred) -> dict[str, Any]:
        ops = keras.ops
        if isinstance(y_true, Mapping):
            for d in self._fields:
                if d.name not in y_true:
                    self._missing(d)
            extra = [k for k in y_true if k not in {d.name for d in self._fields}]
            if extra:
                raise LossError(
                    [
                        Diagnostic(
                            f"y_true has a field `{extra[0]}` that the spec does not take",
                            None,
                            "E807",
                            path=self._source.name,
                            help="its targets and inputs: " + ", ".join(f"`{d.name}`" for d in self._fields),
                        )
                    ]
                )
            return {d.name: self._cast_fields(d, y_true[d.name]) for d in self._fields}
        if self._layout is None:
            if len(self._fields) != 1:
                names = ", ".join(d.name for d in self._fields)
                raise LossError(
                    [
                        Diagnostic(
                            f"y_true is one tensor, but the spec takes {names}",
                            None,
                            "E807",
                            path=self._source.name,
                            help="pass a dict, or name the packed order with "
                            "`Loss(..., y_true=[...])` and build y_true with "
                            "`lossdsl.keras.pack`",
                        )
                    ]
                )
            return {self._fields[0].name: self._cast_fields(self._fields[0], y_true)}
        widths = self._widths(tuple(y_pred.shape))  # static sizes; the batch may be unknown
        out: dict[str, Any] = {}
        start = 0
        for leaf, label in self._packed:
            w = widths[label]
            part = ops.reshape(y_true[..., start : start + w], (-1, *widths[label + ":trailing"]))
            start += w
            target = out
            for p in (leaf.decl.name,) + leaf.path[:-1]:
                if leaf.path:
                    target = target.setdefault(p, {})
            target[leaf.path[-1] if leaf.path else leaf.decl.name] = self._cast(leaf.type.dtype, part)
        return out

    def _widths(self, pred_shape) -> dict[str, Any]:  # widths, and "<label>:trailing" shapes
        sizes: dict[str, int] = {k: v for k, (v, _) in self._checked.bindings.items()}
        pred_decl = self._checked.declaration(self._pred)
        for d, n in zip(pred_decl.type.shape, pred_shape):
            if d.is_symbol and isinstance(n, int):
                sizes.setdefault(d.sym, n)
        for d in self._checked.of_kind("context"):
            for leaf in d.leaves:
                for dim, n in zip(
                    leaf.type.shape,
                    np.shape(self._context[leaf.label] if not leaf.path else _dig(self._context[d.name], leaf.path)),
                ):
                    if dim.is_symbol:
                        sizes.setdefault(dim.sym, int(n))
        out: dict[str, Any] = {}
        for leaf, label in self._packed:
            if not leaf.type.rank:
                raise LossError(
                    [
                        Diagnostic(
                            f"`{label}` cannot be packed: only tensors with a leading batch axis can", leaf.span, "E807"
                        )
                    ]
                )
            values = []
            for dim in leaf.type.shape[1:]:
                size = dim.value if dim.is_literal else sizes.get(cast(str, dim.sym))
                if size is None:
                    raise LossError(
                        [
                            Diagnostic(
                                f"the size `{dim}` of `{label}` is not known when y_true is unpacked",
                                leaf.span,
                                "E809",
                                help="give it through the prediction's shape, a context tensor or "
                                "a param, or pass y_true as a dict",
                            )
                        ]
                    )
                values.append(size)
            out[label] = math.prod(values) if values else 1
            out[label + ":trailing"] = tuple(values)
        return out

    def _cast_fields(self, decl, value):
        if decl.is_record:
            return {k: self._cast_fields_leaf(decl, (k,), v) for k, v in value.items()}
        return self._cast(decl.leaves[0].type.dtype, value)

    def _cast_fields_leaf(self, decl, path, value):
        if isinstance(value, Mapping):
            return {k: self._cast_fields_leaf(decl, path + (k,), v) for k, v in value.items()}
        leaf = next((lf for lf in decl.leaves if lf.path == path), None)
        return self._cast(leaf.type.dtype, value) if leaf is not None else value

    @staticmethod
    def _cast(dtype, value):
        # Keras converts y_true to the loss's float dtype; give ints and bools back their kind.
        if dtype is INT:
            return keras.ops.cast(keras.ops.round(value) if "float" in str(value.dtype) else value, "int32")
        if dtype is BOOL:
            return keras.ops.cast(value, "bool") if "bool" not in str(value.dtype) else value
        return value

    def _missing(self, decl):
        raise LossError(
            [Diagnostic(f"y_true has no `{decl.name}`", decl.name_span, "E807", help="add it to the y_true dict")]
        )

    # ---- saving ----
    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            spec=self._source.text,
            spec_name=self._source.name,
            context={k: _as_list(v) for k, v in self._context.items()},
            params={k: _as_list(v) for k, v in self.params.items()},
            y_true=self._layout,
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> Loss:
        config = dict(config)
        spec = config.pop("spec")
        return cls(spec, **config)


def _dig(value, path):
    for p in path:
        value = value[p]
    return value


def _default_name(source: Source) -> str:
    stem = source.name.rsplit("/", 1)[-1]
    return stem[:-5] if stem.endswith(".loss") else "lossdsl"


def pack(loss: Loss, **arrays: Any) -> np.ndarray:
    """One float32 array with the named targets and inputs side by side, in the order of
    `Loss(..., y_true=[...])`, for `model.fit(x, pack(loss, y=..., group=...))`."""
    if loss._layout is None:
        raise LossError(
            [
                Diagnostic(
                    "this loss has no y_true layout",
                    None,
                    "E807",
                    path=loss._source.name,
                    help="create it with `Loss(spec, y_true=[names...])`",
                )
            ]
        )
    labels = [label for _, label in loss._packed]

    def lookup(label: str):
        if label in arrays:
            return arrays[label]
        head, *path = label.split(".")
        value = arrays.get(head)
        for p in path:
            value = value.get(p) if isinstance(value, Mapping) else None
        return value

    missing = [n for n in labels if lookup(n) is None]
    extra = [n for n in arrays if n not in loss._layout and n not in labels]
    if missing or extra:
        raise LossError(
            [
                Diagnostic(
                    f"pack needs {', '.join(labels)}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unexpected {', '.join(extra)}" if extra else ""),
                    None,
                    "E807",
                    path=loss._source.name,
                )
            ]
        )
    cols = []
    batch = None
    leaves = dict((label, leaf) for leaf, label in loss._packed)
    for n in labels:
        a = np.asarray(lookup(n))
        _check_packable(loss, n, leaves[n].type, a)
        batch = a.shape[0] if batch is None else batch
        if a.shape[0] != batch:
            raise LossError(
                [Diagnostic(f"`{n}` has {a.shape[0]} rows, the others {batch}", None, "E805", path=loss._source.name)]
            )
        cols.append(a.reshape(batch, -1).astype(np.float32))
    return np.concatenate(cols, axis=1)


# float32 holds every integer up to 2^24 exactly; a larger id would come back as another one.
_EXACT_IN_FLOAT32 = 1 << 24


def _check_packable(loss: Loss, label: str, t: TensorType, a: np.ndarray) -> None:
    """An int target or input travels as float32 and is cast back: only ints that float32
    holds exactly may go in. A float where an int is declared is refused, as at a call (E803),
    rather than rounded (0.6 would become group 1)."""
    if t.dtype is not INT:
        return
    if a.dtype.kind not in "iu":
        raise LossError(
            [
                Diagnostic(
                    f"`{label}` is declared `{t}` but holds {a.dtype} values",
                    None,
                    "E803",
                    path=loss._source.name,
                    help=f"pass ints (`{label}.astype(int)` if the values are whole numbers); a float id "
                    "is never rounded",
                )
            ]
        )
    if a.size and int(np.abs(a).max()) > _EXACT_IN_FLOAT32:
        raise LossError(
            [
                Diagnostic(
                    f"`{label}` holds ints beyond 2^24, which a packed float32 y_true cannot carry exactly",
                    None,
                    "E803",
                    path=loss._source.name,
                    help="pass y_true as a dict from a custom training step instead of packing it",
                )
            ]
        )


class UpdateParams(keras.callbacks.Callback):
    """Sets the loss's params from `schedule(epoch, logs)` at the start of every epoch (logs of
    the previous epoch, `None` at the first). The change reaches the compiled training step
    without a retrace on every backend."""

    def __init__(self, loss: Loss, schedule: Callable[[int, dict | None], Mapping[str, Any] | None]):
        super().__init__()
        self.loss = loss
        self.schedule = schedule
        self._last_logs: dict | None = None
        self._lent = False

    def on_train_begin(self, logs=None):
        if self.loss.backend_name == "jax":
            self.loss.track(self.model)
            self._lent = True

    def on_epoch_begin(self, epoch, logs=None):
        values = self.schedule(epoch, self._last_logs)
        if values:
            self.loss.set_params(**values)

    def on_epoch_end(self, epoch, logs=None):
        self._last_logs = dict(logs or {})

    def on_train_end(self, logs=None):
        if self._lent:
            self.loss.untrack(self.model)
            self._lent = False
