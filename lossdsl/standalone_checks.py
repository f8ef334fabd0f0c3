"""The argument checks and the callable of a standalone module (`lossdsl emit --standalone`).

Everything below the marker line is copied, as text, into each standalone module, after the
backend's own run-time support (its Backend class trimmed to what is used, bound as `_be`) and
before the tables of one spec (`_LEAVES`, `_READS`, ...) that lossdsl/standalone.py writes. So
it imports nothing, reads only those names, and its messages are those of lossdsl/runtime.py's
LossError (tests/test_standalone.py compares them). It is a module of its own so that it is
linted and type-checked like the rest; nothing imports it at run time.
"""

from __future__ import annotations

from typing import Any

# What each standalone module defines before this text (placeholders for the linters).
_be: Any = None
_SPEC = ""
_SIGNATURE = ""
_LEAVES: list[dict] = []
_READS: list[dict] = []
_CONSTRAINTS: list[dict] = []
_RECORDS: dict[int, dict] = {}
_CALL_ARGS: list[dict] = []
_PARAMS: dict[str, Any] = {}
_PARAM_NAMES: list[str] = []
_CONTEXT: list[dict] = []
_LOSS_AT: dict = {}
_PER_SAMPLE = False


def entry(*args: Any, **kwargs: Any) -> Any:  # the generated entry, defined after this text
    raise NotImplementedError


# ---- copied into each standalone module from here ----

import difflib  # noqa: E402

_REDUCTIONS = ("mean", "sum", "weighted_mean", "none")


class LossArgumentError(ValueError):
    """A mistake in the arguments of this loss. `str(err)` is what lossdsl's LossError shows:
    the spec's file:line:col, the message and its `[E8xx]` code, the declaration and a hint."""

    # TensorFlow's autograph re-raises exceptions from traced code as its own StagingError
    # unless they carry this mark.
    ag_pass_through = True

    def __init__(self, code: str, message: str, at: dict | None = None, help: str | None = None, notes=()):
        self.code, self.message, self.help, self.notes = code, message, help, tuple(notes)
        self.where = at["where"] if at else _SPEC
        lines = [f"{self.where}: error: {message}  [{code}]", *(at["excerpt"] if at else ())]
        lines += [f"  note: {note}" for note in self.notes]
        if help:
            lines.append(f"  help: {help}")
        super().__init__("\n".join(lines))


class LossArgumentTypeError(LossArgumentError, TypeError):
    """A tensor of the wrong dtype (E803)."""


def _shape_text(shape):
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _tensor(i, x):
    if _be.is_tensor(x):
        return x
    try:
        return _be.asarray(x)
    except Exception as e:  # any framework's conversion error becomes ours
        leaf = _LEAVES[i]
        raise LossArgumentTypeError(
            "E803", f"{leaf['what']} must be a tensor, found {type(x).__name__} ({e})", leaf["at"]
        ) from None


def _dtype_error(i, x, want, help=None):
    leaf = _LEAVES[i]
    message = f"{leaf['what']} must be {want} (`{leaf['type']}`), found {_be.dtype_name(x)}"
    return LossArgumentTypeError("E803", message, leaf["at"], help)


def _arg_float(i, x):
    x = _tensor(i, x)
    kind = _be.dtype_kind(x)
    pred = _LEAVES[i]["kind"] == "pred"
    if kind == "float" or (kind in ("int", "bool") and not pred):
        return x  # an int or bool input is widened to the compute dtype
    raise _dtype_error(i, x, "a float tensor" if pred else "a number tensor")


def _arg_int(i, x):
    x = _tensor(i, x)
    if _be.dtype_kind(x) == "int":
        return x
    raise _dtype_error(
        i,
        x,
        "an int tensor",
        help="indices and ids must be integers; convert them "
        "(`.long()` in torch, `.astype(int)` in NumPy/JAX, `tf.cast` in TensorFlow)",
    )


def _arg_bool(i, x):
    x = _tensor(i, x)
    if _be.dtype_kind(x) == "bool":
        return x
    raise _dtype_error(i, x, "a bool tensor", help="compare to get a bool, e.g. `x > 0`")


def _fail_rank(i, shape):
    leaf = _LEAVES[i]
    label, dims, help = leaf["label"], leaf["dims"], None
    if len(shape) == leaf["rank"] + 1 and shape[-1] == 1:
        # A model head of one unit (Keras Dense(1), nn.Linear(d, 1)) outputs a trailing axis of 1.
        help = (
            f"drop the trailing axis of size 1 before the call (`{label}[..., 0]`, "
            f"`.squeeze(-1)`, or a `Reshape`/`Flatten` after a one-unit `Dense`), "
            f"or declare it: `{leaf['dtype']}[{', '.join([*dims, '1'])}]`"
        )
    elif len(shape) + 1 == leaf["rank"] and dims and dims[-1] == "1":
        help = f"add the trailing axis of size 1 before the call (`{label}[..., None]`)"
    message = f"{leaf['what']} must have rank {leaf['rank']} (`{leaf['type']}`), found shape {_shape_text(shape)}"
    raise LossArgumentError("E804", message, leaf["at"], help)


def _fail_size(i, k, shape, expected, where):
    leaf = _LEAVES[i]
    literal, sym = leaf["sizes"][k]
    if literal is not None:
        message = f"axis {k} of {leaf['what']} must have size {literal} (`{leaf['type']}`), found {shape[k]}"
    else:
        message = f"`{sym}` is {expected} {where} but {shape[k]} from `{leaf['label']}` (axis {k})"
    notes = [f"`{leaf['label']}` has shape {_shape_text(shape)}"]
    raise LossArgumentError("E805", message, leaf["dims_at"][k], notes=notes)


def _merge_size(i, k, shape, current, where):
    found = shape[k]
    if found is None:
        return current
    if current is None:
        return found
    if found != current:
        _fail_size(i, k, shape, current, where)
    return current


def _fail_min(ci, size):
    c = _CONSTRAINTS[ci]
    raise LossArgumentError(
        "E805", f"{c['what']} needs `{c['dim']}` to be at least {c['minimum']}, found {size}", c["at"]
    )


def _check_index(k, x, size, unchecked=None):
    """Every value of an int argument read as an index lies in [0, size) (read where the values
    are there to read). Under jit, tf.function or torch.compile: an assertion in the graph where
    the framework keeps one, else a flag in `unchecked` that makes the loss NaN."""
    span = _be.value_range(x)
    read = _READS[k]
    of = f"an axis of size {size}" if read["dim"] is None else f"{read['dim']}, which is {size} {read['where']}"
    if span is None:
        if unchecked is None:
            return x
        message = f"E812: {read['what']} holds a value, outside [0, {size}): it indexes {of}".rstrip()
        return _be.traced_index_guard(x, size, f"{message} ({_SPEC})", unchecked)
    if span[0] >= 0 and span[1] < size:
        return x
    bad = span[0] if span[0] < 0 else span[1]
    at = list(_be.where_value(x, bad))
    help = (
        "indices are not counted from the end; to leave samples out (PyTorch's ignore_index), guard "
        f"the read: `where({read['label']} >= 0, -pick(logp, {read['label']}), 0.0)`, as lossdsl.std's "
        "cross_entropy does"
        if bad < 0
        else None
    )
    message = f"{read['what']} holds {bad} at {at}, outside [0, {size}): it indexes {of}".rstrip()
    raise LossArgumentError("E812", message, read["at"], help)


def _guard_indices(loss, unchecked):
    """The loss, or NaN where an index check that could not raise found a value out of range."""
    return _be.guard_indices(loss, unchecked) if unchecked else loss


def _record(i, value, paths):
    rec = _RECORDS[i]
    if not isinstance(value, dict):
        example = ", ".join(repr(n) + ": ..." for n in rec["fields"])
        raise LossArgumentError(
            "E807",
            f"{rec['kind']} `{rec['name']}` is a record `{rec['type']}`: pass a dict, found {type(value).__name__}",
            rec["at"],
            f"e.g. {rec['name']}={{{example}}}",
        )
    _fields(rec, value, rec["fields"], ())


def _fields(rec, value, fields, prefix):
    label = ".".join((rec["name"], *prefix))
    for name, sub in fields.items():
        if name not in value:
            raise LossArgumentError(
                "E807",
                f"{rec['kind']} `{label}` is missing field `{name}`",
                rec["leaf_at"].get(".".join((*prefix, name)), rec["at"]),
                f"it has {', '.join(repr(k) for k in value) or 'no fields'}",
            )
        if sub is not None:
            if not isinstance(value[name], dict):
                raise LossArgumentError("E807", f"field `{label}.{name}` is a record: pass a dict", rec["at"])
            _fields(rec, value[name], sub, (*prefix, name))
    extra = [k for k in value if k not in fields]
    if extra:
        close = difflib.get_close_matches(str(extra[0]), list(fields), n=1)
        raise LossArgumentError(
            "E807",
            f"{rec['kind']} `{label}` has no field `{extra[0]}`",
            rec["at"],
            f"did you mean `{close[0]}`?" if close else f"its fields are {', '.join(f'`{n}`' for n in fields)}",
        )


def _context(i, cdt, like, given):
    leaf = _LEAVES[i]
    if given is None:
        raise LossArgumentError(
            "E806",
            f"context `{leaf['label']}: {leaf['type']}` is not bound",
            leaf["at"],
            f"bind it once: `f = bind({leaf['label'].split('.')[0]}=...)`, then call `f(...)`",
        )
    return _be.constant(given[leaf["label"]], leaf["dtype"], cdt, like)


class _Default:
    def __repr__(self):
        return "<default>"


_DEFAULT = _Default()
_DEFAULTS: dict = {}  # (param, compute dtype, device) -> its default as a tensor, made once


def _param(i, value, cdt, like):
    leaf = _LEAVES[i]
    if value is _DEFAULT:
        if leaf["label"] not in _PARAMS:
            raise LossArgumentError(
                "E801",
                f"param `{leaf['label']}` has no value: it has no default and was not bound",
                leaf["name_at"],
                f"pass it at the call (`{leaf['label']}=...`)",
            )
        key = (i, str(cdt), _be.device_key(like))
        if key not in _DEFAULTS:
            _DEFAULTS[key] = _be.constant(_PARAMS[leaf["label"]], leaf["dtype"], cdt, like)
        return _DEFAULTS[key]
    x = _tensor(i, value)
    kind, want = _be.dtype_kind(x), leaf["dtype"]
    if (want == "float" and kind not in ("float", "int")) or (want != "float" and kind != want):
        raise _dtype_error(i, x, f"a {want} value")
    if leaf["rank"] == 0 and len(_be.shape(x)) != 0:
        _fail_rank(i, _be.shape(x))
    if want == "float":
        x = _be.to_float(x, cdt)
    elif want == "int":
        x = _be.to_int(x)
    return _be.place_like(x, like) if like is not None else x


def _known_positive(size):
    """A batch size known now (a Python int, not a graph's tensor) and not 0."""
    return type(size) is int and size > 0


def _number(i, value):
    """A scalar param as the Python number a fused call takes as a hyperparameter, or None
    where the caller gave a tensor (the decomposed form then runs, with no read from the device)."""
    leaf = _LEAVES[i]
    if value is _DEFAULT:
        value = _PARAMS.get(leaf["label"])
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item") and not _be.is_tensor(value):
        value = value.item()  # a NumPy scalar, as from a config file
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if leaf["dtype"] == "float" else int(value)


def _bind_arguments(args, kwargs):
    n, names = len(_CALL_ARGS), [d["name"] for d in _CALL_ARGS]
    params = _PARAM_NAMES
    if len(args) > n:
        raise LossArgumentError(
            "E802",
            f"too many positional arguments: {n} expected ({', '.join(names)}), found {len(args)}",
            None,
            "params are passed by keyword" if params else None,
        )
    values = [*args, *([None] * (n - len(args))), *([_DEFAULT] * len(params))]
    given = [True] * len(args) + [False] * (n - len(args))
    slots = {name: i for i, name in enumerate(names + params)}
    for name, value in kwargs.items():
        slot = slots.get(name)
        if slot is None:
            if any(c["name"] == name for c in _CONTEXT):
                raise LossArgumentError(
                    "E806",
                    f"context `{name}` is bound once, not at each call",
                    None,
                    f"bind it once: `f = bind({name}=...)`, then call `f(...)`",
                )
            close = difflib.get_close_matches(name, list(slots), n=1)
            raise LossArgumentError(
                "E802",
                f"unexpected argument `{name}`",
                None,
                f"did you mean `{close[0]}`?" if close else f"the loss takes {_SIGNATURE}",
            )
        if slot < n:
            if given[slot]:
                raise LossArgumentError("E802", f"argument `{name}` is given twice")
            given[slot] = True
        values[slot] = value
    for i, ok in enumerate(given):
        if not ok:
            d = _CALL_ARGS[i]
            raise LossArgumentError(
                "E801",
                f"missing {d['kind']} `{d['name']}: {d['type']}`",
                d["at"],
                f"pass it positionally or as `{d['name']}=...`",
            )
    return values


def _bad_reduction(reduction):
    raise LossArgumentError(
        "E808", f"unknown reduction {reduction!r}", None, "use " + ", ".join(repr(r) for r in _REDUCTIONS)
    )


def _reduce(loss, reduction, sample_weight):
    if reduction not in _REDUCTIONS:
        _bad_reduction(reduction)
    w = None
    weighted = loss
    if sample_weight is not None:
        w = sample_weight if _be.is_tensor(sample_weight) else _be.asarray(sample_weight)
        ws, ls = _be.shape(w), _be.shape(loss)
        if len(ws) != 1 or (ws[0] is not None and ls[0] is not None and ws[0] != ls[0]):
            raise LossArgumentError(
                "E808",
                f"`sample_weight` must have shape ({ls[0]},), one weight per sample, found {_shape_text(ws)}",
                _LOSS_AT,
            )
        if _be.dtype_kind(w) not in ("float", "int", "bool"):
            raise LossArgumentError("E808", "`sample_weight` must be numeric")
        w = _be.place_like(_be.to_float(w, _be.dtype_of(loss)), loss)
        weighted = loss * w
    if reduction == "none":
        return weighted
    return _be.reduce_samples(weighted, w, reduction)


def _call(context, args, reduction, sample_weight, kwargs):
    if not kwargs and len(args) == len(_CALL_ARGS):
        values = [*args, *([_DEFAULT] * len(_PARAM_NAMES))]
    else:
        values = _bind_arguments(args, kwargs)
    out = entry(*values, _given=context) if _CONTEXT else entry(*values)
    if _PER_SAMPLE:
        return _reduce(out, reduction, sample_weight)
    if sample_weight is not None:
        raise LossArgumentError(
            "E808",
            "`sample_weight` needs a per-sample loss, but this `loss` is a scalar",
            _LOSS_AT,
            "make `loss` per-sample (shape [B]) and let the API reduce it",
        )
    if reduction not in _REDUCTIONS:
        _bad_reduction(reduction)
    return out


def bind(**context):
    """The loss with its context tensors bound (checked here for names and dtypes; their sizes
    are checked against the arguments at each call)."""
    names = [c["name"] for c in _CONTEXT]
    for key in context:
        if key not in names:
            raise LossArgumentError(
                "E806",
                f"`{key}` is not a context of this spec",
                None,
                f"its context tensors: {', '.join(sorted(names))}" if names else "it declares no context",
            )
    values = {}
    for c in _CONTEXT:
        if c["name"] not in context:
            raise LossArgumentError(
                "E806",
                f"context `{c['name']}: {c['type']}` is not bound",
                c["at"],
                f"pass it once: `bind({c['name']}=...)`",
            )
        if c["record"] is not None:
            _record(c["record"], context[c["name"]], [])
        for i in c["leaves"]:
            v = context[c["name"]]
            for p in _LEAVES[i]["label"].split(".")[1:]:
                v = v[p]
            values[_LEAVES[i]["label"]] = {"float": _arg_float, "int": _arg_int, "bool": _arg_bool}[
                _LEAVES[i]["dtype"]
            ](i, v)

    def bound_loss(*args, reduction="mean", sample_weight=None, **params):
        return _call(values, args, reduction, sample_weight, params)

    bound_loss.__doc__ = loss.__doc__
    return bound_loss


def loss(*args, reduction="mean", sample_weight=None, **params):
    """The loss of this spec: arguments positionally in declaration order or by name, params by
    keyword (their defaults are baked in); `reduction` and `sample_weight` for a per-sample loss.
    A spec with context tensors is called through `bind(...)`."""
    return _call(None, args, reduction, sample_weight, params)
