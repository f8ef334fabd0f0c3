"""NumPy: the reference backend (values only, no gradients). JAX's printer is this
one with `jnp` for `np` and a few conventions of its own (see jax_backend.py)."""

from __future__ import annotations

import types
from typing import Any

import numpy as np

from lossdsl import lm_head

from .base import Backend, Printer, same_padding


def numpy_like_table(xp: str) -> dict[str, str]:
    """Spellings shared by NumPy and jax.numpy."""
    return {
        "abs": f"{xp}.abs({{x}})",
        "sign": f"{xp}.sign({{x}})",
        "square": f"{xp}.square({{x}})",
        "relu": f"{xp}.maximum({{x}}, 0)",
        "exp": f"{xp}.exp({{x}})",
        "expm1": f"{xp}.expm1({{x}})",
        "log": f"{xp}.log({{x}})",
        "log1p": f"{xp}.log1p({{x}})",
        "sqrt": f"{xp}.sqrt({{x}})",
        "sin": f"{xp}.sin({{x}})",
        "cos": f"{xp}.cos({{x}})",
        "tanh": f"{xp}.tanh({{x}})",
        "cosh": f"{xp}.cosh({{x}})",
        "sinh": f"{xp}.sinh({{x}})",
        "acos": f"{xp}.arccos({{x}})",
        "asin": f"{xp}.arcsin({{x}})",
        "atan": f"{xp}.arctan({{x}})",
        "atan2": f"{xp}.arctan2({{y}}, {{x}})",
        "isnan": f"{xp}.isnan({{x}})",
        "isfinite": f"{xp}.isfinite({{x}})",
        "sigmoid": "rt.sigmoid({x})",
        "log_sigmoid": "rt.log_sigmoid({x})",
        "softplus": f"{xp}.logaddexp({{x}}, 0.0)",
        "logaddexp": f"{xp}.logaddexp({{a}}, {{b}})",
        "minimum": f"{xp}.minimum({{a}}, {{b}})",
        "maximum": f"{xp}.maximum({{a}}, {{b}})",
        "clip": f"{xp}.minimum({xp}.maximum({{x}}, {{lo}}), {{hi}})",
        "where": f"{xp}.where({{cond}}, {{a}}, {{b}})",
        "sum": f"{xp}.sum({{x}}{{reduce_kw}})",
        "mean": f"{xp}.mean({{x}}{{reduce_kw}})",
        "prod": f"{xp}.prod({{x}}{{reduce_kw}})",
        "max": f"{xp}.max({{x}}{{reduce_kw}})",
        "min": f"{xp}.min({{x}}{{reduce_kw}})",
        "logsumexp": "rt.logsumexp({x}, {axes}, {keepdims})",
        "var": f"{xp}.var({{x}}, axis={{axes}}, ddof={{ddof}}, keepdims={{keepdims}})",
        "std": f"{xp}.std({{x}}, axis={{axes}}, ddof={{ddof}}, keepdims={{keepdims}})",
        "norm": "rt.norm({x}, {p}, {axes}, {keepdims})",
        "argmax": f"{xp}.argmax({{x}}, axis={{axis0}}, keepdims={{keepdims}})",
        "argmin": f"{xp}.argmin({{x}}, axis={{axis0}}, keepdims={{keepdims}})",
        "softmax": "rt.softmax({x}, {axis})",
        "log_softmax": "rt.log_softmax({x}, {axis})",
        "cumsum": f"{xp}.cumsum({{x}}, axis={{axis}})",
        "cumprod": f"{xp}.cumprod({{x}}, axis={{axis}})",
        "logcumsumexp": f"{xp}.logaddexp.accumulate({{x}}, axis={{axis}})",
        "sort": f"{xp}.sort({{x}}, axis={{axis}}, kind='stable')",
        "argsort": f"{xp}.argsort({{x}}, axis={{axis}}, kind='stable')",
        "topk": "rt.topk({x}, {k}, {axis})",
        "argtopk": "rt.argtopk({x}, {k}, {axis})",
        "pick": f"{xp}.take_along_axis({{x}}, {xp}.expand_dims({{idx}}, -1), axis=-1)[..., 0]",
        "one_hot": "rt.one_hot({idx}, {depth}, _cdt)",
        "arange": f"{xp}.arange({{size}}, dtype=_INT)",
        "eye": f"{xp}.eye({{size}}, dtype=_cdt)",
        "diag": "rt.diag({x})",
        "dot": f"{xp}.sum({xp}.multiply({{a}}, {{b}}), axis={{axis}})",
        "transpose": f"{xp}.swapaxes({{x}}, -1, -2)",
        "permute": f"{xp}.transpose({{x}}, {{perm}})",
        "pad": f"{xp}.pad({{x}}, {{widths}})",
        "concat": f"{xp}.concatenate({{xs}}, axis={{axis}})",
        "stack": f"{xp}.stack({{xs}}, axis={{axis}})",
        "flatten": "rt.flatten({x}, {start}, {end})",
        "unflatten": "rt.unflatten({x}, {axis}, {sizes})",
        "segment_sum": "rt.segment_sum({v}, {ids}, {groups})",
        "ctc_loss": "rt.ctc_loss({log_probs}, {labels}, {input_lengths}, {label_lengths}, {blank})",
        "segment_mean": "rt.segment_mean({v}, {ids}, {groups}, _cdt)",
        "conv1d": "rt.conv({x}, {w}, {stride}, {same})",
        "conv2d": "rt.conv({x}, {w}, {stride}, {same})",
        "avg_pool2d": "rt.avg_pool2d({x}, {kernel}, {stride})",
        "ones_like": f"{xp}.ones({xp}.shape({{x}}), dtype={{dtype}})",
        "stop_gradient": "{x}",
        "and": f"{xp}.logical_and({{a}}, {{b}})",
        "or": f"{xp}.logical_or({{a}}, {{b}})",
        "not": f"{xp}.logical_not({{x}})",
        "floor": f"{xp}.floor({{x}})",
        "ceil": f"{xp}.ceil({{x}})",
        "round": f"{xp}.round({{x}})",
        "cast_float": f"{xp}.asarray({{x}}, dtype=_cdt)",
        "cast_int": f"{xp}.asarray({{x}}).astype(_INT)",
    }


class NumpyPrinter(Printer):
    backend = "numpy"
    xp = "np"
    imports: tuple[str, ...] = ("import numpy as np",)
    FUNCTIONS = numpy_like_table("np")
    KERNELS = {"lm_head": {"stats"}}


# ---- run-time helpers the generated code calls as rt.<name> ------------------------------------


def numpy_like_argtopk(xp, x, k, axis):
    """The first k positions of a stable sort of -x: the largest first, ties in their order."""
    order = xp.argsort(-x, axis=axis, kind="stable") if xp is np else xp.argsort(-x, axis=axis, stable=True)
    return xp.take(order, xp.arange(k), axis=axis)


def numpy_like_diag(xp, x):
    """[..., N, N] with x's last axis on the diagonal (NumPy's `diag` takes no batch axes)."""
    return x[..., None] * xp.eye(x.shape[-1], dtype=x.dtype)


def numpy_like_ctc_unfit(xp, labels, input_lengths, label_lengths, blank):
    """[B] bool: the samples no CTC alignment fits (docs/language.md §3), whose loss is `inf`:
    fewer steps than labels plus repeated neighbours (each needs a blank between), or a label
    that is the blank."""
    within = xp.arange(labels.shape[1])[None, :] < label_lengths[:, None]
    repeats = xp.sum((labels[:, 1:] == labels[:, :-1]) & within[:, 1:], axis=1)
    blank_label = xp.any((labels == blank) & within, axis=1)
    return (input_lengths < label_lengths + repeats) | blank_label


def numpy_ctc_loss(log_probs, labels, input_lengths, label_lengths, blank):
    """The reference: the CTC forward (alpha) recursion in log space over the extended labels
    `blank l1 blank l2 ... blank`, one sample at a time."""
    z = log_probs - np.max(log_probs, axis=-1, keepdims=True)
    lp = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    out = np.empty(lp.shape[0], dtype=lp.dtype)
    unfit = numpy_like_ctc_unfit(np, labels, input_lengths, label_lengths, blank)
    for b in range(lp.shape[0]):
        steps, ext = int(input_lengths[b]), np.full(2 * int(label_lengths[b]) + 1, blank)
        ext[1::2] = labels[b, : int(label_lengths[b])]
        if unfit[b] or steps == 0:
            out[b] = np.inf if unfit[b] or len(ext) > 1 else 0.0
            continue
        # a path may skip a blank between two different labels
        skip = np.zeros(len(ext), dtype=bool)
        skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
        alpha = np.full(len(ext), -np.inf, dtype=lp.dtype)
        alpha[:2] = lp[b, 0, ext[:2]]
        for t in range(1, steps):
            prev = alpha
            alpha = prev.copy()
            alpha[1:] = np.logaddexp(alpha[1:], prev[:-1])
            alpha[2:] = np.where(skip[2:], np.logaddexp(alpha[2:], prev[:-2]), alpha[2:])
            alpha = alpha + lp[b, t, ext]
        out[b] = -np.logaddexp.reduce(alpha[-2:])
    return out


def numpy_conv(x, w, stride, same):
    """The float64 reference: every window multiplied out with einsum, group by group."""
    n = x.ndim - 2
    k = w.shape[2:]
    if same:
        x = np.pad(x, [(0, 0), (0, 0)] + [same_padding(x.shape[2 + i], k[i], stride) for i in range(n)])
    windows = np.lib.stride_tricks.sliding_window_view(x, k, axis=tuple(range(2, 2 + n)))
    windows = windows[(slice(None), slice(None)) + (slice(None, None, stride),) * n]
    b, c = x.shape[:2]
    o, per_group = w.shape[:2]
    groups = c // per_group
    out_sizes = windows.shape[2 : 2 + n]
    windows = windows.reshape((b, groups, per_group) + out_sizes + k)
    spatial, taps = "HW"[:n], "hw"[:n]
    out = np.einsum(
        f"bgc{spatial}{taps},goc{taps}->bgo{spatial}", windows, w.reshape((groups, o // groups) + w.shape[1:])
    )
    return out.reshape((b, o) + out_sizes)


def numpy_avg_pool2d(x, kernel, stride):
    windows = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(-2, -1))
    return windows[..., ::stride, ::stride, :, :].mean(axis=(-2, -1))


# ---- the language-model head (lossdsl/lm_head.py) ----------------------------------------------


def numpy_lm_head(
    h, W, b, idx, stats, softcap, chunk=None, min_logits=lm_head.DEFAULT_MIN_LOGITS, dist=None, uniform=False
):
    """The reference: the same online logsumexp over chunks of the vocabulary as the frameworks'
    fast path (values only), so the NumPy backend holds one chunk of logits at a time too. NumPy
    is one replica: a split vocabulary (`dist`) is the whole of it. h of rank 3 or more: the
    tokens along its leading axes, as rows."""
    if h.ndim > 2:
        labels = idx.reshape(-1) if idx is not None else None
        out = numpy_lm_head(h.reshape(-1, h.shape[-1]), W, b, labels, stats, softcap, chunk, min_logits, dist, uniform)
        return out.reshape(*h.shape[:-1], out.shape[-1])
    n, v = h.shape[0], W.shape[0]
    step = lm_head.plan(n, h.shape[1], v, chunk, min_logits) or v
    m = np.full(n, -np.inf, dtype=h.dtype)
    s = np.zeros(n, dtype=h.dtype)
    picked = np.zeros(n, dtype=h.dtype)
    rowsum = np.zeros(n, dtype=h.dtype)
    for start in range(0, v, step):
        z = h @ W[start : start + step].T
        if b is not None:
            z = z + b[start : start + step]
        if softcap is not None:
            z = softcap * np.tanh(z / softcap)
        m_new = np.maximum(m, z.max(axis=1))
        s = s * np.exp(m - m_new) + np.exp(z - m_new[:, None]).sum(axis=1)
        m = m_new
        rowsum += z.sum(axis=1)
        if idx is not None:
            local = idx - start
            inside = (local >= 0) & (local < z.shape[1])
            picked += np.where(inside, z[np.arange(n), np.clip(local, 0, z.shape[1] - 1)], 0.0)
    lse = m + np.log(s)
    return np.stack(lm_head.columns(stats, lse, picked - lse, rowsum, float(v)), axis=1).astype(h.dtype)


def numpy_like_segment_mean(xp, segment_sum):
    """segment_mean over NumPy or jax.numpy: each group's mean, 0 for an empty group."""

    def segment_mean(v, ids, groups, dtype):
        total = segment_sum(xp.asarray(v, dtype=dtype), ids, groups)
        count = segment_sum(xp.ones(xp.shape(ids), dtype=dtype), ids, groups)
        count = count.reshape(count.shape + (1,) * (total.ndim - 1))
        return total / xp.maximum(count, 1.0)

    return segment_mean


def _runtime(np) -> types.SimpleNamespace:
    """Stable float64-quality formulas (NumPy has no sigmoid or logsumexp of its own)."""

    def sigmoid(x):
        return np.exp(-np.logaddexp(0.0, -x))

    def log_sigmoid(x):
        return -np.logaddexp(0.0, -x)

    def logsumexp(x, axis, keepdims):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=axis)

    def softmax(x, axis):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    def log_softmax(x, axis):
        return x - logsumexp(x, (axis,), True)

    def norm(x, p, axis, keepdims):
        a = np.abs(x)
        if p == 1:
            return np.sum(a, axis=axis, keepdims=keepdims)
        if p == 2:
            return np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims))
        return np.sum(a**p, axis=axis, keepdims=keepdims) ** (1.0 / p)

    def one_hot(idx, depth, dtype):
        return (np.expand_dims(idx, -1) == np.arange(depth)).astype(dtype)

    def argtopk(x, k, axis):
        return numpy_like_argtopk(np, x, k, axis)

    def topk(x, k, axis):
        return np.take_along_axis(x, numpy_like_argtopk(np, x, k, axis), axis=axis)

    def flatten(x, start, end):
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1 :])

    def unflatten(x, axis, sizes):
        return x.reshape(x.shape[:axis] + tuple(sizes) + x.shape[axis + 1 :])

    def diag(x):
        return numpy_like_diag(np, x)

    def segment_sum(v, ids, groups):
        ids = np.asarray(ids)
        v = np.asarray(v)
        flat_ids = ids.reshape(-1)
        flat_v = v.reshape((-1,) + v.shape[ids.ndim :])
        keep = (flat_ids >= 0) & (flat_ids < groups)
        out = np.zeros((groups,) + v.shape[ids.ndim :], dtype=v.dtype)
        np.add.at(out, flat_ids[keep], flat_v[keep])
        return out

    def scan(step, init, xs, captured, axes, keep_all):
        # a loop over the scanned axis (docs/language.md §3, `scan`)
        carry, carries = init, []
        for t in range(xs[0].shape[axes[0]]):
            carry = step(carry, tuple(np.take(x, t, axis=k) for x, k in zip(xs, axes)), captured)
            carries.append(carry)
        if keep_all:
            return np.stack(carries) if carries else np.zeros((0,) + np.shape(init), np.asarray(init).dtype)
        return carry

    return types.SimpleNamespace(
        sigmoid=sigmoid,
        log_sigmoid=log_sigmoid,
        logsumexp=logsumexp,
        softmax=softmax,
        log_softmax=log_softmax,
        norm=norm,
        one_hot=one_hot,
        argtopk=argtopk,
        topk=topk,
        flatten=flatten,
        unflatten=unflatten,
        diag=diag,
        segment_sum=segment_sum,
        segment_mean=numpy_like_segment_mean(np, segment_sum),
        ctc_loss=numpy_ctc_loss,
        scan=scan,
        conv=numpy_conv,
        avg_pool2d=numpy_avg_pool2d,
        lm_head=numpy_lm_head,
    )


numpy_rt = _runtime(np)


class NumpyBackend(Backend):
    """Also the JAX backend's base: the NumPy calls below go through `xp`."""

    name = "numpy"
    aliases: tuple[str, ...] = ("np",)
    printer = NumpyPrinter
    differentiable = False
    xp: Any = np
    float32: Any = np.float32
    float64: Any = np.float64
    int_dtype: Any = np.int64
    tensor_type = np.ndarray
    #: dtype.kind codes -> dtype kinds
    KINDS = {"f": "float", "i": "int", "u": "int", "b": "bool"}

    def cast(self, x, dtype):
        return x.astype(dtype)

    def sum(self, x):
        return self.xp.sum(x)

    def mean(self, x):
        return self.xp.mean(x)

    def nonzero(self, b):
        return self.xp.where(b == 0, 1.0, b)

    def count(self, x):
        return self.xp.asarray(x.shape[0], dtype=x.dtype)

    def value_range(self, x: Any) -> tuple[int, int] | None:
        return (int(x.min()), int(x.max())) if x.size else None

    def asarray(self, x: Any) -> Any:
        if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # a framework tensor
            x = x.detach().cpu().numpy() if hasattr(x, "detach") else x.numpy()
        out = np.asarray(x)
        if out.dtype == object:
            raise TypeError("not a numeric array")
        return out

    def dtype_kind(self, x: Any) -> str:
        return self.KINDS.get(np.dtype(x.dtype).kind, "other")

    def namespace(self) -> dict[str, Any]:
        return {"np": np, "rt": numpy_rt, "_INT": np.int64, "_BOOL": np.bool_}
