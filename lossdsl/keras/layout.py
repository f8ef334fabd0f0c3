"""Where each target and input of a spec travels in Keras, and how it is taken out again.

Keras hands a loss only `y_true` and `y_pred`. A spec's fields reach it three ways:
- in `y_true` itself: the one target as a plain tensor, a dict `{name: tensor}` (a direct
  call), or several packed side by side in one float tensor (`y_true=[names]` + `pack`);
- through the model's input dict (`inputs=[names]` + `MetadataModel`), so that `y_true`
  stays the plain target that metrics and `class_weight` read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import keras
import numpy as np

from ..checked import CheckedModule
from ..diagnostics import Diagnostic, LossError
from ..source import Source
from ..types import BOOL, INT, TensorType
from .metadata import current_metadata

# float32 holds every integer up to 2^24 exactly; a larger id would come back as another one.
EXACT_IN_FLOAT32 = 1 << 24


def error(message: str, code: str, path: str, span=None, help: str | None = None) -> LossError:
    return LossError([Diagnostic(message, span, code, path=path if span is None else None, help=help)])


class Layout:
    """The fields of `spec` other than its prediction, and where each comes from."""

    def __init__(
        self,
        spec: CheckedModule,
        text: str,
        path: str,
        context: Mapping[str, np.ndarray],
        y_true: Sequence[str] | None,
        inputs: Sequence[str] | None,
    ):
        self.spec = spec
        self.text = text
        self.path = path
        self.context = context
        self.fields = [d for d in spec.call_args if d.kind != "pred"]
        self.pred = next(d.name for d in spec.call_args if d.kind == "pred")
        names = {d.name for d in self.fields}
        self.inputs = list(inputs or [])
        for n in self.inputs:
            if n not in names:
                raise error(
                    f"`{n}` is not a target or input of this spec",
                    "E806",
                    path,
                    help="inputs=[...] can name: " + ", ".join(sorted(names)),
                )
        self.in_y_true = [d for d in self.fields if d.name not in self.inputs]
        self.order = list(y_true) if y_true is not None else None
        if self.order is None and self.inputs and len(self.in_y_true) == 1:
            self.order = [self.in_y_true[0].name]  # y_true is the one remaining field, as it is
        self.packed: list[tuple[Any, str]] = []  # (leaf, label) in packing order
        if self.order is not None:
            leaves = {lf.label: lf for d in self.fields for lf in d.leaves}
            for n in self.order:
                decl = next((d for d in self.fields if d.name == n), None)
                if decl is not None:
                    self.packed += [(lf, lf.label) for lf in decl.leaves]
                elif n in leaves:
                    self.packed.append((leaves[n], n))
                else:
                    raise error(
                        f"`{n}` is not a target or input of this spec",
                        "E806",
                        path,
                        help=f"y_true can carry: {', '.join(sorted(leaves))}",
                    )
            both = [n for n in self.order if n in self.inputs]
            if both:
                raise error(f"`{both[0]}` is named in both y_true=[...] and inputs=[...]", "E807", path)
            carried = {label for _, label in self.packed}
            left_out = [d.name for d in self.in_y_true if any(lf.label not in carried for lf in d.leaves)]
            if left_out:
                raise error(
                    f"y_true=[...] leaves out {', '.join(left_out)}",
                    "E807",
                    path,
                    help="every target and input travels in y_true, or through the model's inputs "
                    "(`inputs=[...]` with `lossdsl.keras.MetadataModel`)",
                )

    # ---- saving: a metric that reads y_true as a loss does carries the loss's layout ----
    def config(self) -> dict:
        return {
            "spec": self.text,
            "spec_name": self.path,
            "context": {k: np.asarray(v).tolist() for k, v in self.context.items()},
            "y_true": self.order,
            "inputs": self.inputs or None,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Layout:
        from ..frontend import check

        spec = check(Source(config["spec"], config["spec_name"]))
        context = {k: np.asarray(v) for k, v in (config.get("context") or {}).items()}
        return cls(spec, config["spec"], config["spec_name"], context, config.get("y_true"), config.get("inputs"))

    @property
    def key(self) -> tuple:
        """Equal for two layouts that read y_true the same way (a reloaded metric's and its loss's)."""
        return (self.text, tuple(self.order or ()), tuple(self.inputs))

    @property
    def is_packed(self) -> bool:
        """Whether `y_true` carries more than the plain target (so other consumers of `y_true`,
        Keras metrics and `class_weight`, would read it wrongly)."""
        return len(self.packed) > 1

    def target_leaf(self, name: str | None = None):
        """The leaf a plain Keras metric compares with the prediction: `name`, or the first
        target declared."""
        for leaf, label in self.packed or [(d.leaves[0], d.name) for d in self.fields]:
            if (name is None and leaf.decl.kind == "target") or label == name:
                return leaf, label
        raise error(
            f"`{name}` is not carried in y_true" if name else "this spec declares no target",
            "E806",
            self.path,
            help="y_true carries: " + ", ".join(label for _, label in self.packed),
        )

    # ---- y_true -> fields ----
    def unpack(self, y_true, y_pred, whole: list | None = None) -> dict[str, Any]:
        """Every field of the spec, by name, from `y_true` and the model's metadata. Where an
        int field packed into the float y_true cannot be read (a traced step), an in-graph
        "all whole numbers" flag is appended to `whole` (see `refuse_fractional_ids`)."""
        if isinstance(y_true, Mapping):
            return self.from_dict(y_true)
        if self.order is None:
            if len(self.fields) != 1:
                names = ", ".join(d.name for d in self.fields)
                raise error(
                    f"y_true is one tensor, but the spec takes {names}",
                    "E807",
                    self.path,
                    help="pass a dict, name the packed order with `Loss(..., y_true=[...])` and build "
                    "y_true with `lossdsl.keras.pack`, or send metadata through the model's inputs "
                    "(`inputs=[...]` with `lossdsl.keras.MetadataModel`)",
                )
            return {self.fields[0].name: self.cast_field(self.fields[0], y_true)}
        out = self.split(y_true, y_pred, whole) if self.packed else {}
        if self.inputs:
            metadata = current_metadata()
            for n in self.inputs:
                if metadata is None or n not in metadata:
                    decl = next(d for d in self.fields if d.name == n)
                    raise LossError(
                        [
                            Diagnostic(
                                f"`{n}` comes through the model's inputs, and none reached the loss"
                                if metadata is None
                                else f"the model's inputs have no `{n}`",
                                decl.name_span,
                                "E807",
                                help="wrap the model: `lossdsl.keras.MetadataModel(model)`, and give "
                                f"`fit` a dict of inputs: {{'x': x, '{n}': ...}}",
                            )
                        ]
                    )
                decl = next(d for d in self.fields if d.name == n)
                refuse_float_ids(decl, metadata[n])
                out[n] = self.cast_field(decl, metadata[n])
        return out

    def from_dict(self, y_true: Mapping[str, Any]) -> dict[str, Any]:
        for d in self.fields:
            if d.name not in y_true:
                raise LossError(
                    [Diagnostic(f"y_true has no `{d.name}`", d.name_span, "E807", help="add it to the y_true dict")]
                )
        extra = [k for k in y_true if k not in {d.name for d in self.fields}]
        if extra:
            raise error(
                f"y_true has a field `{extra[0]}` that the spec does not take",
                "E807",
                self.path,
                help="its targets and inputs: " + ", ".join(f"`{d.name}`" for d in self.fields),
            )
        return {d.name: self.cast_field(d, y_true[d.name]) for d in self.fields}

    def split(self, y_true, y_pred, whole: list | None = None) -> dict[str, Any]:
        widths = self.widths(tuple(y_pred.shape))  # static sizes; the batch may be unknown
        out: dict[str, Any] = {}
        start = 0
        for leaf, label in self.packed:
            w = widths[label]
            part = keras.ops.reshape(y_true[..., start : start + w], (-1, *widths[label + ":trailing"]))
            start += w
            target = out
            for p in (leaf.decl.name,) + leaf.path[:-1]:
                if leaf.path:
                    target = target.setdefault(p, {})
            if leaf.type.dtype is INT:
                refuse_fractional_ids(label, leaf, part, whole)
            target[leaf.path[-1] if leaf.path else leaf.decl.name] = cast_to(leaf.type.dtype, part)
        return out

    def widths(self, pred_shape) -> dict[str, Any]:  # widths, and "<label>:trailing" shapes
        sizes: dict[str, int] = {k: v for k, (v, _) in self.spec.bindings.items()}
        pred_type: Any = cast(Any, self.spec.declaration(self.pred)).type
        for d, n in zip(pred_type.shape, pred_shape):
            if d.is_symbol and isinstance(n, int):
                sizes.setdefault(cast(str, d.sym), n)
        for d in self.spec.of_kind("context"):
            for leaf in d.leaves:
                value = self.context[d.name]
                for p in leaf.path:
                    value = value[p]
                for dim, n in zip(leaf.type.shape, np.shape(value)):
                    if dim.is_symbol:
                        sizes.setdefault(cast(str, dim.sym), int(n))
        out: dict[str, Any] = {}
        for leaf, label in self.packed:
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

    def cast_field(self, decl, value):
        if decl.is_record:
            return {k: self.cast_leaf(decl, (k,), v) for k, v in value.items()}
        return cast_to(decl.leaves[0].type.dtype, value)

    def cast_leaf(self, decl, path, value):
        if isinstance(value, Mapping):
            return {k: self.cast_leaf(decl, path + (k,), v) for k, v in value.items()}
        leaf = next((lf for lf in decl.leaves if lf.path == path), None)
        return cast_to(leaf.type.dtype, value) if leaf is not None else value

    # ---- arrays -> one packed y_true ----
    def pack(self, arrays: Mapping[str, Any]) -> np.ndarray:
        if not self.packed:
            raise error(
                "this loss has no y_true layout",
                "E807",
                self.path,
                help="create it with `Loss(spec, y_true=[names...])`",
            )
        labels = [label for _, label in self.packed]

        def lookup(label: str):
            if label in arrays:
                return arrays[label]
            head, *path = label.split(".")
            value = arrays.get(head)
            for p in path:
                value = value.get(p) if isinstance(value, Mapping) else None
            return value

        order = self.order or []
        missing = [n for n in labels if lookup(n) is None]
        extra = [n for n in arrays if n not in order and n not in labels]
        if missing or extra:
            raise error(
                f"pack needs {', '.join(labels)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unexpected {', '.join(extra)}" if extra else ""),
                "E807",
                self.path,
            )
        cols = []
        batch = None
        leaves = {label: leaf for leaf, label in self.packed}
        for n in labels:
            a = np.asarray(lookup(n))
            self.check_packable(n, leaves[n].type, a)
            batch = a.shape[0] if batch is None else batch
            if a.shape[0] != batch:
                raise error(f"`{n}` has {a.shape[0]} rows, the others {batch}", "E805", self.path)
            cols.append(a.reshape(batch, -1).astype(np.float32))
        return np.concatenate(cols, axis=1)

    def check_packable(self, label: str, t: TensorType, a: np.ndarray) -> None:
        """An int target or input travels as float32 and is cast back: only ints that float32
        holds exactly may go in. A float where an int is declared is refused, as at a call
        (E803), rather than rounded (0.6 would become group 1)."""
        if t.dtype is not INT:
            return
        if a.dtype.kind not in "iu":
            raise error(
                f"`{label}` is declared `{t}` but holds {a.dtype} values",
                "E803",
                self.path,
                help=f"pass ints (`{label}.astype(int)` if the values are whole numbers); a float id is never rounded",
            )
        if a.size and int(np.abs(a).max()) > EXACT_IN_FLOAT32:
            raise error(
                f"`{label}` holds ints beyond 2^24, which a packed float32 y_true cannot carry exactly",
                "E803",
                self.path,
                help="send it through the model's inputs (`lossdsl.keras.MetadataModel`) instead of packing it",
            )


def refuse_float_ids(decl, value, holder: str = "the model's inputs hold") -> None:
    """Metadata from the model's inputs (or a y_true dict, before Keras makes it float) keeps
    its dtype: a float where an int is declared is refused, as at a call (E803), never rounded
    (group 0.6 would become 1)."""
    if decl.is_record or decl.leaves[0].type.dtype is not INT:
        return
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        dtype = np.asarray(value).dtype  # a list
    if "float" in str(dtype):
        raise LossError(
            [
                Diagnostic(
                    f"{decl.kind} `{decl.name}` is declared `{decl.leaves[0].type}` but {holder} {dtype} values",
                    decl.name_span,
                    "E803",
                    help=f"give `{decl.name}` as ints (`ids.astype(int)` if they are whole "
                    "numbers); a float id is never rounded",
                )
            ]
        )


def all_of(flags: list):
    """The in-graph flags of one batch (e.g. "the packed ids are whole numbers") and-ed together."""
    ok = flags[0]
    for flag in flags[1:]:
        ok = keras.ops.logical_and(ok, flag)
    return ok


def refuse_fractional_ids(label: str, leaf, part, whole: list | None = None) -> None:
    """An int field packed into the float y_true: where its values can be read (a direct call,
    eager Keras) one that is not a whole number is refused, not rounded. `pack` refuses float
    ids before they are packed; under a traced `fit` the values are not there to read, and
    an in-graph flag goes to `whole` instead: the loss is NaN where it is false."""
    from ..backends import get_backend

    values = get_backend(keras.backend.backend()).host_values(part)
    if values is None:
        if whole is not None:
            whole.append(keras.ops.all(keras.ops.equal(part, keras.ops.round(part))))
        return
    if not values.size:
        return
    fractional = values[values != np.round(values)]
    if fractional.size:
        raise LossError(
            [
                Diagnostic(
                    f"`{label}` is declared `{leaf.type}` but the packed y_true holds {fractional.flat[0]:g} there",
                    leaf.span,
                    "E803",
                    help="build y_true with `lossdsl.keras.pack`, which takes ints only; a float id is never rounded",
                )
            ]
        )


def cast_to(dtype, value):
    # Keras converts y_true to the loss's float dtype; give ints and bools back their kind.
    if dtype is INT:
        return keras.ops.cast(keras.ops.round(value) if "float" in str(value.dtype) else value, "int32")
    if dtype is BOOL:
        return keras.ops.cast(value, "bool") if "bool" not in str(value.dtype) else value
    return value
