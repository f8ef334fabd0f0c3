"""What runs at each call: the helpers the generated `entry` calls, and `CompiledLoss`.

Every mistake in the arguments of a call (a missing one, a wrong dtype, rank or
size, a record without a field) raises `LossError` naming the argument, the
dimension and both sources of its size, with a caret under the declaration, never
a framework's broadcasting error. The checks read static shapes only, so they run
at trace time under `jax.jit`, `tf.function` and `torch.compile`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, cast

from .binding import bind_params
from .checked import CheckedModule, Declaration, Leaf
from .diagnostics import Diagnostic, LossError
from .domain_check import DomainCheck
from .types import FLOAT, INT, RecordType

REDUCTIONS = ("mean", "sum", "weighted_mean", "none")


class _Default:
    """Marks a param not given at the call (its compile-time value or default is used)."""

    def __repr__(self) -> str:
        return "<default>"


DEFAULT = _Default()


def _shape_text(shape: Sequence) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Runtime:
    """The helpers of one compiled spec on one backend (bound into the generated module)."""

    def __init__(
        self,
        checked: CheckedModule,
        backend,
        leaves: list[Leaf],
        context: dict[str, Any],
        params: dict[str, Any],
        index_reads: Sequence = (),
    ):
        self.checked = checked
        self.backend = backend
        self.leaves = leaves
        self.context = context  # leaf label -> value as given (numpy or a backend tensor)
        self.params = params  # name -> value bound at compile time (or its default)
        self._cache: dict[tuple, Any] = {}
        self.index_reads = index_reads  # codegen.IndexRead per `_check_index` of the entry
        # Keep the index check alive under jit / tf.function / torch.compile (compile(check_values=True)).
        self.check_values = False
        self._index_texts = [self._index_text(read) for read in index_reads]
        # Each leaf's label and dtype as plain strings: what a param's conversion reads. Under
        # torch.compile every attribute read while tracing becomes a guard checked at each call;
        # a leaf's `label` property and its dtype enum's `value` cost about ten each.
        self._labels = [leaf.label for leaf in leaves]
        self._dtypes = [leaf.type.dtype.value for leaf in leaves]

    def namespace(self) -> dict[str, Any]:
        be = self.backend
        return {
            "_arg_float": self.arg_float,
            "_arg_int": self.arg_int,
            "_arg_bool": self.arg_bool,
            "_shape": be.shape,
            "_fail_rank": self.fail_rank,
            "_fail_size": self.fail_size,
            "_merge_size": self.merge_size,
            "_fail_min": self.fail_min,
            "_record": self.record,
            "_check_index": self.check_index,
            "_guard_indices": self.guard_indices,
            "_compute_dtype": be.compute_dtype,
            "_to_float": be.to_float,
            "_to_int": be.to_int,
            "_param": self.param,
            "_context": self.context_value,
            "_dynamic_size": getattr(be, "dynamic_size", None),
            "_device": be.device_key,
            "_number": self.number,
            "_known_positive": _known_positive,
            **be.namespace(),
        }

    # ---- errors ----
    def _error(
        self,
        message: str,
        leaf: Leaf | None,
        code: str,
        *,
        help: str | None = None,
        span=None,
        notes: Sequence[str] = (),
    ) -> LossError:
        if span is None and leaf is not None:
            span = leaf.span
        return LossError(
            [Diagnostic(message, span, code, help=help, notes=tuple(notes), path=self.checked.source.name)]
        )

    def _what(self, leaf: Leaf) -> str:
        return f"{leaf.kind} `{leaf.label}`"

    def fail_rank(self, i: int, shape) -> None:
        leaf = self.leaves[i]
        help = None
        if len(shape) == leaf.type.rank + 1 and shape[-1] == 1:
            # A model head of one unit (Keras Dense(1), nn.Linear(d, 1)) outputs a trailing axis of 1.
            help = (
                f"drop the trailing axis of size 1 before the call (`{leaf.label}[..., 0]`, "
                f"`.squeeze(-1)`, or a `Reshape`/`Flatten` after a one-unit `Dense`), "
                f"or declare it: `{leaf.type.dtype}[{', '.join([str(d) for d in leaf.type.shape] + ['1'])}]`"
            )
        elif (
            len(shape) + 1 == leaf.type.rank
            and leaf.type.shape
            and leaf.type.shape[-1].is_literal
            and leaf.type.shape[-1].value == 1
        ):
            help = f"add the trailing axis of size 1 before the call (`{leaf.label}[..., None]`)"
        raise self._error(
            f"{self._what(leaf)} must have rank {leaf.type.rank} (`{leaf.type}`), found shape {_shape_text(shape)}",
            leaf,
            "E804",
            help=help,
        ) from None

    def fail_size(self, i: int, k: int, shape, expected, where: str) -> None:
        leaf = self.leaves[i]
        dim = leaf.type.shape[k]
        span = leaf.dim_spans[k] if k < len(leaf.dim_spans) else leaf.span
        found = shape[k]
        if dim.is_literal:
            msg = f"axis {k} of {self._what(leaf)} must have size {dim.value} (`{leaf.type}`), found {found}"
        else:
            msg = f"`{dim.sym}` is {expected} {where} but {found} from `{leaf.label}` (axis {k})"
        raise self._error(
            msg, leaf, "E805", span=span, notes=[f"`{leaf.label}` has shape {_shape_text(shape)}"]
        ) from None

    def merge_size(self, i: int, k: int, shape, current, where: str):
        found = shape[k]
        if found is None:
            return current
        if current is None:
            return found
        if found != current:
            self.fail_size(i, k, shape, current, where)
        return current

    def fail_min(self, ci: int, size) -> None:
        c = self.checked.constraints[ci]
        raise self._error(
            f"{c.what} needs `{c.dim}` to be at least {c.minimum}, found {size}", None, "E805", span=c.span
        ) from None

    def check_index(self, k: int, x: Any, size: int, unchecked: list | None = None) -> Any:
        """Every value of an int argument read as an index (read `k` of the generated entry)
        lies in [0, size); returns `x` (under tracing with `check_values`, `x` made to depend on
        the check, so the framework's own gather cannot fail first). Under tracing without it,
        an in-graph assertion where the framework keeps one, else a flag in `unchecked` that
        makes the loss NaN (`guard_indices`). A context tensor's range is read once and kept."""
        read = self.index_reads[k]
        leaf = self.leaves[read.leaf]
        if leaf.kind == "context":
            span = self._cache.get(("range", k))
            if span is None:
                span = self.backend.value_range(x)
                if span is not None:
                    self._cache[("range", k)] = span
        else:
            if self.backend.assert_indices_async(x, size, self.device_message(k, size)):
                return x  # checked on the device (a GPU), without a read back to the host
            span = self.backend.value_range(x)
        if span is None:
            if self.check_values:
                if self.backend.drops_assertions():
                    raise self.unchecked_error(k)
                return self.backend.traced_index_check(
                    x, size, self.device_message(k, size), lambda lo, hi, v: self.check_span(k, v, size, (lo, hi))
                )
            if unchecked is None:
                return x
            return self.backend.traced_index_guard(x, size, self.device_message(k, size), unchecked)
        self.check_span(k, x, size, span)
        return x

    def guard_indices(self, loss: Any, unchecked: list, dist: Any = None, dev: Any = None) -> Any:
        """The loss, or NaN where an index check that could not raise found a value out of range
        (on any replica, where `dist` is the collectives of a sharded loss)."""
        return self.backend.guard_indices(loss, unchecked, dist, dev) if unchecked else loss

    def check_span(self, k: int, x: Any, size: int, span: tuple[int, int]) -> None:
        if span[0] >= 0 and span[1] < size:
            return
        bad = span[0] if span[0] < 0 else span[1]
        at = list(self.backend.where_value(x, bad)) if x is not None else None
        raise self.index_error(k, size, bad, at) from None

    def index_message(self, k: int, size: int, bad: int | None, at: list | None) -> str:
        # Strings only: under torch.compile this runs inside the trace.
        what, dim, where = self._index_texts[k]
        of = f"an axis of size {size}" if dim is None else f"{dim}, which is {size} {where}"
        holds = "a value" if bad is None else f"{bad} at {at}" if at is not None else str(bad)
        return f"{what} holds {holds}, outside [0, {size}): it indexes {of}".rstrip()

    def unchecked_error(self, k: int) -> LossError:
        read = self.index_reads[k]
        return self._error(
            f"`check_values=True` cannot check {self._index_texts[k][0]} here: XLA (`jit_compile=True`) drops "
            "the assertion, and an index outside its axis would give a wrong number without a word",
            self.leaves[read.leaf],
            "E812",
            span=read.span,
            help="compile without XLA: `tf.function(..., jit_compile=False)`, or in Keras "
            "`model.compile(..., jit_compile=False)`",
        )

    def device_message(self, k: int, size: int) -> str:
        """The text of an index check that runs on the device (no value is read back to say which)."""
        return f"E812: {self.index_message(k, size, None, None)} ({self.checked.source.name})"

    def _index_text(self, read) -> tuple[str, str | None, str]:
        leaf = self.leaves[read.leaf]
        what = self._what(leaf) if read.label == leaf.label else f"`{read.label}`"
        return what, None if read.dim.sym is None else f"`{read.dim}`", read.where

    def index_error(self, k: int, size: int, bad: int, at: list | None) -> LossError:
        read = self.index_reads[k]
        leaf = self.leaves[read.leaf]
        help = (
            "indices are not counted from the end; to leave samples out (PyTorch's ignore_index), guard "
            f"the read: `where({read.label} >= 0, -pick(logp, {read.label}), 0.0)`, as lossdsl.std's "
            "cross_entropy does"
            if bad < 0
            else None
        )
        return self._error(self.index_message(k, size, bad, at), leaf, "E812", help=help, span=read.span)

    def record(self, i: int, value: Any, paths: list[list[str]]) -> None:
        leaf = self.leaves[i]
        decl = leaf.decl
        if not isinstance(value, Mapping):
            raise self._error(
                f"{decl.kind} `{decl.name}` is a record `{decl.type}`: pass a dict, found {type(value).__name__}",
                leaf,
                "E807",
                span=decl.type_span,
                help=f"e.g. {decl.name}={{{', '.join(repr(n) + ': ...' for n in cast(RecordType, decl.type).names)}}}",
            ) from None
        self._fields(decl, value, decl.type, ())

    def _fields(self, decl: Declaration, value: Mapping, rtype, prefix: tuple[str, ...]) -> None:
        names = rtype.names
        label = ".".join((decl.name,) + prefix)
        for name in names:
            if name not in value:
                raise self._error(
                    f"{decl.kind} `{label}` is missing field `{name}`",
                    None,
                    "E807",
                    span=decl.leaf_spans.get(prefix + (name,), decl.type_span),
                    help=f"it has {', '.join(repr(k) for k in value) or 'no fields'}",
                ) from None
            sub = rtype.field(name)
            if isinstance(sub, RecordType):
                if not isinstance(value[name], Mapping):
                    raise self._error(
                        f"field `{label}.{name}` is a record: pass a dict", None, "E807", span=decl.type_span
                    ) from None
                self._fields(decl, value[name], sub, prefix + (name,))
        extra = [k for k in value if k not in names]
        if extra:
            close = difflib.get_close_matches(str(extra[0]), names, n=1)
            raise self._error(
                f"{decl.kind} `{label}` has no field `{extra[0]}`",
                None,
                "E807",
                span=decl.type_span,
                help=f"did you mean `{close[0]}`?" if close else f"its fields are {', '.join(f'`{n}`' for n in names)}",
            ) from None

    # ---- conversion ----
    def _tensor(self, i: int, x: Any) -> Any:
        be = self.backend
        if be.is_tensor(x):
            return x
        try:
            return be.asarray(x)
        except Exception as e:  # any framework's conversion error becomes ours
            leaf = self.leaves[i]
            raise self._error(
                f"{self._what(leaf)} must be a tensor, found {type(x).__name__} ({e})", leaf, "E803"
            ) from None

    def _dtype_error(self, i: int, x: Any, want: str, help: str | None = None) -> LossError:
        leaf = self.leaves[i]
        return self._error(
            f"{self._what(leaf)} must be {want} (`{leaf.type}`), found {self.backend.dtype_name(x)}",
            leaf,
            "E803",
            help=help,
        )

    def arg_float(self, i: int, x: Any) -> Any:
        x = self._tensor(i, x)
        kind = self.backend.dtype_kind(x)
        if kind == "float":
            return x
        if kind in ("int", "bool") and self.leaves[i].kind != "pred":
            return x  # widened to the compute dtype
        raise self._dtype_error(i, x, "a float tensor" if self.leaves[i].kind == "pred" else "a number tensor")

    def arg_int(self, i: int, x: Any) -> Any:
        x = self._tensor(i, x)
        if self.backend.dtype_kind(x) == "int":
            return x
        raise self._dtype_error(
            i,
            x,
            "an int tensor",
            help="indices and ids must be integers; convert them "
            "(`.long()` in torch, `.astype(int)` in NumPy/JAX, `tf.cast` in TensorFlow)",
        )

    def arg_bool(self, i: int, x: Any) -> Any:
        x = self._tensor(i, x)
        if self.backend.dtype_kind(x) == "bool":
            return x
        raise self._dtype_error(i, x, "a bool tensor", help="compare to get a bool, e.g. `x > 0`")

    def context_value(self, i: int, cdt: Any, like: Any, given: Mapping[str, Any] | None = None) -> Any:
        """A context tensor in the compute dtype on `like`'s device, converted once and cached;
        or, when the caller holds the context itself (`given`, a module's buffers), that tensor
        converted on each call, so no state outlives a trace."""
        be = self.backend
        if given is not None:
            leaf = self.leaves[i]
            return self._convert_static(i, given[leaf.label], cdt, like)
        key = (i, str(cdt), be.device_key(like))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        leaf = self.leaves[i]
        value = self.context[leaf.label]
        value = self._convert_static(i, value, cdt, like)
        if be.may_cache():
            self._cache[key] = value
        return value

    def _convert_static(self, i: int, value: Any, cdt: Any, like: Any) -> Any:
        """Leaf `i`'s context tensor or param default in the compute dtype, on `like`'s device. It is
        cached, so the backend makes it outside any trace (a traced value must not outlive its trace)."""
        return self.backend.constant(value, self._dtypes[i], cdt, like)

    def param(self, i: int, value: Any, cdt: Any, like: Any) -> Any:
        if value is DEFAULT:
            key = (i, str(cdt), self.backend.device_key(like))
            hit = self._cache.get(key)
            if hit is not None:
                return hit
            label = self._labels[i]
            if label not in self.params:
                leaf = self.leaves[i]
                raise self._error(
                    f"param `{leaf.label}` has no value: it has no default and was not bound",
                    None,
                    "E801",
                    span=leaf.decl.name_span,
                    help=f"pass it at the call (`{leaf.label}=...`) or bind it once with "
                    f"`lossdsl.compile(..., params={{'{leaf.label}': ...}})`",
                ) from None
            out = self._convert_static(i, self.params[label], cdt, like)
            if self.backend.may_cache():
                self._cache[key] = out
            return out
        leaf = self.leaves[i]
        x = self._tensor(i, value)
        kind = self.backend.dtype_kind(x)
        want = leaf.type.dtype.value
        if (
            (want == "float" and kind not in ("float", "int"))
            or (want == "int" and kind != "int")
            or (want == "bool" and kind != "bool")
        ):
            raise self._dtype_error(i, x, f"a {want} value")
        if leaf.type.rank == 0 and len(self.backend.shape(x)) != 0:
            self.fail_rank(i, self.backend.shape(x))
        if leaf.type.dtype is FLOAT:
            x = self.backend.to_float(x, cdt)
        elif leaf.type.dtype is INT:
            x = self.backend.to_int(x)
        return self.backend.place_like(x, like) if like is not None else x

    def number(self, i: int, value: Any) -> Any:
        """A scalar param as the Python number a fused call takes as a hyperparameter (torch's
        `delta=`), or None where the caller gave a tensor: the decomposed form then runs, with
        no read from the device."""
        if value is DEFAULT:
            value = self.params.get(self._labels[i])
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item") and not self.backend.is_tensor(value):
            value = value.item()  # a NumPy scalar, as from a config file (never the framework's tensor: a read)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if self._dtypes[i] == "float" else int(value)

    def clear_cache(self) -> None:
        self._cache.clear()


def _known_positive(size: Any) -> bool:
    """A batch size known now (a Python int, not a graph's tensor) and not 0."""
    return type(size) is int and size > 0


class CompiledLoss:
    """A spec compiled for one backend. Call it with the backend's own tensors:

    f(yhat, y, x={"feature": feat})             positional, in declaration order
    f(yhat=yhat, y=y, x=..., alpha=0.3)         by name; params by keyword only
    f(..., reduction="sum", sample_weight=w)    for a per-sample loss
    """

    def __init__(
        self,
        checked: CheckedModule,
        backend,
        source: str,
        entry,
        compute,
        runtime: Runtime,
        entry_args: list[str],
        static_dims: Mapping[str, tuple[int, str]] | None = None,
    ):
        self.spec = checked
        self.backend = backend.name
        self._backend = backend
        self.source = source
        self._entry = entry
        self.compute = compute
        self._runtime = runtime
        self._static_dims = dict(static_dims or {})  # sizes the code was generated for
        self._call_decls = checked.call_args
        self._param_decls = checked.of_kind("param")
        self._n_call = len(self._call_decls)
        self._call_names = {d.name: None for d in self._call_decls}  # in the order of the declarations
        self._slots = {d.name: i for i, d in enumerate(self._call_decls)}
        self._slots.update({d.name: self._n_call + j for j, d in enumerate(self._param_decls)})
        self._defaults = (DEFAULT,) * len(self._param_decls)
        self._per_sample = checked.loss.type.rank == 1
        self._context_names = {d.name for d in checked.of_kind("context")}
        self.sharded: str | None = None
        self._dist: Any = None
        self.global_reductions: list[str] = []
        # the generated entry computes the mean over the samples itself (`entry(..., _mean=True)`),
        # with a fused call where the framework has one (lossdsl/pipeline.py, `_api_mean`)
        self._fused_mean = False
        self.domain_check: DomainCheck | None = None  # set by `compile(..., check_domains=True)`

    def _shard(self, sym: str, dist, made_global) -> None:
        """Set by `compile(..., sharded=sym)`: reductions over `sym` are over all replicas."""
        self.sharded = sym
        self._dist = dist
        loss_dim = self.spec.loss.type.shape[0] if self._per_sample else None
        self._global_reduction = loss_dim is not None and loss_dim.sym == sym and loss_dim.offset == 0
        from .sharding import describe_global

        self.global_reductions = [describe_global(n) for n in made_global]
        if self._global_reduction:
            self.global_reductions.append(f"the per-sample loss's reduction (`reduction=`) over `{sym}`")

    # ---- what a caller may ask ----
    @property
    def signature(self) -> str:
        return self.spec.signature()

    @property
    def arguments(self) -> list[dict]:
        """Names, kinds, dtypes and symbolic shapes of everything the loss takes."""
        out = []
        for d in self.spec.declarations:
            out.append(
                {"name": d.name, "kind": d.kind, "type": str(d.type), "default": d.default if d.has_default else None}
            )
        return out

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._runtime.params)

    def check_params(self, **values: Any) -> None:
        """Raise the LossError `set_params` would raise for these values, changing nothing."""
        bind_params(self.spec, self._backend, values, dict(self._static_dims))

    def set_params(self, **values: Any) -> None:
        """Change the compile-time value of params (no recompilation). Each value is checked as at
        `lossdsl.compile`: its dtype, rank and the sizes the code was generated for; nothing
        changes unless every value passes."""
        self.check_params(**values)
        for name, value in values.items():
            self._runtime.params[name] = value
        self._runtime.clear_cache()

    def __repr__(self) -> str:
        return f"<lossdsl.CompiledLoss {self.spec.source.name} on {self.backend}: {self.signature}>"

    # ---- calling ----
    def __call__(self, *args: Any, reduction: str = "mean", sample_weight: Any = None, **kwargs: Any) -> Any:
        # The common call (every argument given, params at their values, the API's mean of a
        # per-sample loss whose entry computes it, or a scalar loss) goes straight to the
        # generated entry: its checks are the checks.
        if (
            reduction == "mean"
            and (self._fused_mean or not self._per_sample)
            and sample_weight is None
            and self._dist is None
            and self.domain_check is None
            and len(args) + len(kwargs) == self._n_call
        ):
            if kwargs:
                if args or kwargs.keys() != self._call_names.keys():
                    return self.call_with(None, *args, reduction=reduction, **kwargs)
                args, kwargs = tuple([kwargs[name] for name in self._call_names]), {}
            if not self._per_sample:
                return self._entry(*args, *self._defaults)
            reduced = self._entry(*args, *self._defaults, _mean=True)
            if reduced is not None:
                return reduced
        return self.call_with(None, *args, reduction=reduction, sample_weight=sample_weight, **kwargs)

    def call_with(
        self,
        context: Mapping[str, Any] | None,
        *args: Any,
        reduction: str = "mean",
        sample_weight: Any = None,
        **kwargs: Any,
    ) -> Any:
        """The call, with the context tensors given here (by leaf label, already checked, e.g. a
        module's buffers) instead of those bound at compile time."""
        values: Sequence[Any]
        if not kwargs and len(args) == self._n_call:
            values = args + self._defaults
        else:
            values = self._bind(args, kwargs)
        if self.domain_check is not None:
            rt = self._runtime
            self.domain_check(values, rt.params, rt.context if context is None else context, DEFAULT)
        given = {} if context is None else {"_given": context}
        if self._fused_mean and reduction == "mean" and sample_weight is None and self._dist is None:
            reduced = self._entry(*values, _mean=True, **given)
            if reduced is not None:
                return reduced
        out = self._entry(*values, **given)
        if self._per_sample:
            reduced = self._reduce(out, reduction, sample_weight)
            if self._dist is not None and self._global_reduction and reduction != "none":
                return self._dist.finish(reduced)  # the same global value on every replica
            return reduced
        if sample_weight is not None:
            raise LossError(
                [
                    Diagnostic(
                        "`sample_weight` needs a per-sample loss, but this `loss` is a scalar",
                        self.spec.loss.span,
                        "E808",
                        help="make `loss` per-sample (shape [B]) and let the API reduce it",
                        path=self.spec.source.name,
                    )
                ]
            )
        if reduction not in REDUCTIONS:
            self._bad_reduction(reduction)
        return out if self._dist is None else self._dist.finish(out)

    def _bind(self, args: tuple, kwargs: dict) -> list:
        n = self._n_call
        decls = self._call_decls
        src = self.spec.source.name
        if len(args) > n:
            names = ", ".join(d.name for d in decls)
            raise LossError(
                [
                    Diagnostic(
                        f"too many positional arguments: {n} expected ({names}), found {len(args)}",
                        None,
                        "E802",
                        path=src,
                        help="params are passed by keyword" if self._param_decls else None,
                    )
                ]
            )
        values: list = list(args) + [None] * (n - len(args)) + list(self._defaults)
        given = [True] * len(args) + [False] * (n - len(args))
        for name, value in kwargs.items():
            slot = self._slots.get(name)
            if slot is None:
                if name in self._context_names:
                    raise LossError(
                        [
                            Diagnostic(
                                f"context `{name}` is bound once, at compile time, not at each call",
                                None,
                                "E806",
                                path=src,
                                help=f"pass it to `lossdsl.compile(..., context={{'{name}': ...}})`",
                            )
                        ]
                    )
                close = difflib.get_close_matches(name, list(self._slots), n=1)
                raise LossError(
                    [
                        Diagnostic(
                            f"unexpected argument `{name}`",
                            None,
                            "E802",
                            path=src,
                            help=f"did you mean `{close[0]}`?" if close else f"the loss takes {self.signature}",
                        )
                    ]
                )
            if slot < n:
                if given[slot]:
                    raise LossError([Diagnostic(f"argument `{name}` is given twice", None, "E802", path=src)])
                given[slot] = True
            values[slot] = value
        for i, ok in enumerate(given):
            if not ok:
                d = decls[i]
                raise LossError(
                    [
                        Diagnostic(
                            f"missing {d.kind} `{d.name}: {d.type}`",
                            d.name_span,
                            "E801",
                            path=src,
                            help=f"pass it positionally or as `{d.name}=...`",
                        )
                    ]
                )
        return values

    def _bad_reduction(self, reduction: Any) -> None:
        raise LossError(
            [
                Diagnostic(
                    f"unknown reduction {reduction!r}",
                    None,
                    "E808",
                    path=self.spec.source.name,
                    help="use " + ", ".join(repr(r) for r in REDUCTIONS),
                )
            ]
        )

    def _reduce(self, loss: Any, reduction: str, sample_weight: Any) -> Any:
        be = self._backend
        if reduction not in REDUCTIONS:
            self._bad_reduction(reduction)
        if sample_weight is not None:
            w = sample_weight if be.is_tensor(sample_weight) else be.asarray(sample_weight)
            ws, ls = be.shape(w), be.shape(loss)
            if len(ws) != 1 or (ws[0] is not None and ls[0] is not None and ws[0] != ls[0]):
                raise LossError(
                    [
                        Diagnostic(
                            f"`sample_weight` must have shape ({ls[0]},), one weight per sample, found {_shape_text(ws)}",
                            self.spec.loss.span,
                            "E808",
                            path=self.spec.source.name,
                        )
                    ]
                )
            if be.dtype_kind(w) not in ("float", "int", "bool"):
                raise LossError(
                    [Diagnostic("`sample_weight` must be numeric", None, "E808", path=self.spec.source.name)]
                )
            w = be.place_like(be.to_float(w, be.dtype_of(loss)), loss)
            weighted = loss * w
        else:
            w = None
            weighted = loss
        if reduction == "none":
            return weighted
        if self._dist is not None and self._global_reduction:
            return self._global_reduce(loss, weighted, w, reduction)
        return be.reduce_samples(weighted, w, reduction)

    def _global_reduce(self, loss: Any, weighted: Any, w: Any, reduction: str) -> Any:
        """The reductions of §5 over the global batch: sums and counts all-reduced."""
        be, dist = self._backend, self._dist
        dev = be.device_key(loss)
        total = dist.sum(be.sum(weighted), dev)
        if reduction == "sum":
            return total
        if reduction == "weighted_mean" and w is not None:
            denom = dist.sum(be.sum(w), dev)
        else:
            denom = dist.sum(be.count(loss), dev)
        return be.safe_divide(total, denom)


__all__ = ["DEFAULT", "REDUCTIONS", "CompiledLoss", "Runtime"]
