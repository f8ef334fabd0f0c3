"""JAX: the NumPy printer with `jnp` (einops' JAX backend is its NumPy one with another
module), plus the conventions of docs/language.md §4 where JAX differs:

- `abs` at 0 has gradient 0 (jnp.abs gives 1): `jnp.abs` with a custom JVP, sign(x);
- `clip` at its bounds gives x a gradient of 1 (jnp.clip gives 0.5);
- `norm` at 0 has gradient 0 (jnp.linalg.norm gives NaN);
- `atan2` at the origin has gradient 0 (jnp.arctan2 gives NaN);
- `logaddexp` of two -inf has gradient 0 (jnp.logaddexp gives NaN).

Where a rule is JAX's own but costs more under `jax.jit` than the function needs, the runtime
has its own (`logaddexp`, `softplus`, `relu`, `atan2`, `norm`): each says why.

The pure `compute` function is jitted (dimension sizes and the dtype are static),
so an eager call costs one dispatch; inside a user's `jax.jit` it simply inlines.
Importing this module does not import jax; `JaxBackend.load()` does."""

from __future__ import annotations

import types
from typing import Any

from lossdsl import lm_head as lm_head_settings

from .base import LocalCollectives
from .numpy_backend import (
    NumpyBackend,
    NumpyPrinter,
    numpy_like_argtopk,
    numpy_like_ctc_unfit,
    numpy_like_diag,
    numpy_like_segment_mean,
    numpy_like_table,
)


class JaxPrinter(NumpyPrinter):
    backend = "jax"
    xp = "jnp"
    imports = ("import jax", "import jax.numpy as jnp")
    FUNCTIONS = {
        **numpy_like_table("jnp"),
        "abs": "rt.abs({x})",
        "atan2": "rt.atan2({y}, {x})",
        "logaddexp": "rt.logaddexp({a}, {b})",
        "clip": "rt.clip({x}, {lo}, {hi})",
        "relu": "rt.relu({x})",
        "sigmoid": "jax.nn.sigmoid({x})",
        "log_sigmoid": "rt.log_sigmoid({x})",
        "softplus": "rt.softplus({x})",
        "logsumexp": "jax.nn.logsumexp({x}, axis={axes}, keepdims={keepdims})",
        "softmax": "jax.nn.softmax({x}, axis={axis})",
        "log_softmax": "jax.nn.log_softmax({x}, axis={axis})",
        "one_hot": "jax.nn.one_hot({idx}, {depth}, dtype=_cdt)",
        "logcumsumexp": "jax.lax.cumlogsumexp({x}, axis={axis})",
        "sort": "jnp.sort({x}, axis={axis}, stable=True)",
        "argsort": "jnp.argsort({x}, axis={axis}, stable=True).astype(_INT)",
        "stop_gradient": "jax.lax.stop_gradient({x})",
    }

    # -pick(log_softmax(z), y) as logsumexp(z) - z[y]: the same value, and a gradient
    # (softmax - one_hot) that needs no log_softmax of the whole [B, C] (as optax computes it)
    KERNELS = {
        "nll": {"none", "mean", "weighted_mean"},
        "ce": {"mean"},
        "weighted_ce": {"mean"},
        "lm_head": {"stats"},
    }

    def _kernel_nll(self, node, z, y, w=None):
        per = f"jax.nn.logsumexp({z}, axis=-1) - jnp.take_along_axis({z}, jnp.expand_dims({y}, -1), axis=-1)[..., 0]"
        reduction = node.attr("reduction")
        if reduction == "none":
            return per
        if reduction == "mean":
            return f"jnp.mean({per})"
        return f"rt.weighted_mean_of({per}, {w}[{y}])"

    def _kernel_ce(self, node, z, y, ls, ignore=None):
        # -log_softmax(z)[y] is logsumexp(z) - z[y] and its mean over classes logsumexp(z) - mean(z):
        # no [B, C] log_softmax is built (optax's form); no smoothing term where it is 0.
        smoothing = self.unless_zero(node, 0, ls)
        return f"rt.smoothed_ce({z}, {y}, {smoothing}, {ignore if node.attr('ignore') else None})"


def _runtime(jax, jnp) -> types.SimpleNamespace:
    @jax.custom_jvp
    def abs_(x):
        return jnp.abs(x)

    @abs_.defjvp
    def _abs_jvp(primals, tangents):
        # d|x|/dx = sign(x): 0 at x = 0, where jnp.abs gives 1 (docs/language.md §4). A custom rule
        # (rather than x * sign(x)) keeps the compiled graph as small as jnp.abs's own.
        (x,), (t,) = primals, tangents
        return jnp.abs(x), jnp.sign(x) * t

    def clip(x, lo, hi):
        # The value of minimum(maximum(x, lo), hi), with gradient 1 to x at either bound.
        inside = (x >= lo) & (x <= hi)
        return jnp.where(inside, x, jnp.minimum(jnp.maximum(x, lo), hi))

    def exp_and_sigmoid(d):
        """exp(-|d|) and sigmoid(d) from it: one exponential for a value and its gradient. -|d|
        is a `where` so that its derivative at 0 is -1 (sigmoid's derivative there 1/4, as
        everywhere else: second derivatives differentiate this)."""
        e = jnp.exp(jnp.where(d >= 0, -d, d))
        return e, jnp.where(d >= 0, 1.0, e) / (1.0 + e)

    # The rules below return the function itself as the value, so that a second derivative
    # differentiates the same rule again; XLA computes the exponential they share once.

    @jax.custom_jvp
    def softplus(x):
        # jax.nn.softplus is jnp.logaddexp(x, 0): under jax.jit its rule's value and gradient
        # take three exponentials where one does
        e, _ = exp_and_sigmoid(x)
        return jnp.where(x >= 0, x, 0.0) + jnp.log1p(e)

    @softplus.defjvp
    def _softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        _, share = exp_and_sigmoid(x)
        return softplus(x), share * t

    def logaddexp_parts(a, b):
        """a - b (0 where both are -inf, where it is NaN: the transpose of the gradient's
        `where` would multiply 0 by it), exp(-|a - b|) and sigmoid(a - b), each operand's share
        e^a / (e^a + e^b) of the gradient, from the value's own exponential (jnp.logaddexp's
        rule takes two more). The value's rule and the gradient's spell them alike: XLA
        computes them once."""
        both_minus_inf = jnp.maximum(a, b) == -jnp.inf
        d = jnp.where(both_minus_inf, 0.0, a - b)
        return both_minus_inf, d, *exp_and_sigmoid(d)

    @jax.custom_jvp
    def logaddexp(a, b):
        # Where both are -inf the value is -inf and the gradient 0 (docs/language.md §4;
        # jnp.logaddexp's is NaN there); where both are +inf (a - b is NaN) the value is +inf.
        _, d, e, _ = logaddexp_parts(a, b)
        return jnp.where(jnp.isnan(d), a + b, jnp.where(d >= 0, a, b) + jnp.log1p(e))

    @logaddexp.defjvp
    def _logaddexp_jvp(primals, tangents):
        (a, b), (ta, tb) = primals, tangents
        both_minus_inf, _, _, share = logaddexp_parts(a, b)
        return logaddexp(a, b), jnp.where(both_minus_inf, 0.0, tb + share * (ta - tb))

    def relu(x):
        # jax.nn.relu's rule (gradient 0 at 0, docs/language.md §4) is a `max` with a select of a
        # broadcast 0: XLA on the CPU fuses the max into a following reduction and writes the 0s
        # out as a whole array first. A `where` has the same value and gradient and no such array.
        return jnp.where(x <= 0, 0, x)  # an int 0: an int x stays int

    @jax.custom_jvp
    def atan2(y, x):
        return jnp.arctan2(y, x)

    @atan2.defjvp
    def _atan2_jvp(primals, tangents):
        # Gradient 0 at the origin (docs/language.md §4; jnp.arctan2 gives NaN): the origin's
        # lanes divide by a safe 1 and take 0. One arctan2, where a `where` around the
        # differentiated branch computes two.
        (y, x), (ty, tx) = primals, tangents
        r2 = x * x + y * y
        origin = r2 == 0
        return atan2(y, x), jnp.where(origin, 0.0, (x * ty - y * tx) / jnp.where(origin, 1.0, r2))

    def norm(x, p, axis, keepdims):
        if p == 1:
            return jnp.sum(abs_(x), axis=axis, keepdims=keepdims)
        # |x|^2 as x * x and the root as sqrt for p = 2: a general power is a pow in XLA, and
        # |x|'s sign in the gradient one more product
        s = jnp.sum(x * x if p == 2 else jnp.abs(x) ** p, axis=axis, keepdims=keepdims)
        nonzero = s > 0
        # The root's gradient is infinite at 0: feed it a safe 1 there and select 0.
        safe = jnp.where(nonzero, s, 1.0)
        return jnp.where(nonzero, jnp.sqrt(safe) if p == 2 else safe ** (1.0 / p), 0.0)

    def segment_sum(v, ids, groups):
        flat_ids = ids.reshape(-1)
        flat_v = v.reshape((-1,) + v.shape[ids.ndim :])
        return jax.ops.segment_sum(flat_v, flat_ids, num_segments=groups)  # out-of-range ids dropped

    def ctc_loss(log_probs, labels, input_lengths, label_lengths, blank):
        # optax normalises the scores itself and marks padding with 1s. A sample no alignment fits
        # is run with no labels (always fits) and gets inf: its gradient is 0 (docs/language.md §3).
        import optax

        unfit = numpy_like_ctc_unfit(jnp, labels, input_lengths, label_lengths, blank)
        fitted = jnp.where(unfit, 0, label_lengths)
        steps_pad = (jnp.arange(log_probs.shape[1])[None, :] >= input_lengths[:, None]).astype(log_probs.dtype)
        labels_pad = (jnp.arange(labels.shape[1])[None, :] >= fitted[:, None]).astype(log_probs.dtype)
        loss = optax.ctc_loss(log_probs, steps_pad, labels, labels_pad, blank_id=blank)
        return jnp.where(unfit, jnp.inf, loss)

    def scan(step, init, xs, captured, axes, keep_all):
        # jax.lax.scan over the scanned axis moved first (docs/language.md §3, `scan`)
        def body(carry, slices):
            new = step(carry, slices, captured)
            return new, (new if keep_all else None)

        last, carries = jax.lax.scan(body, init, tuple(jnp.moveaxis(x, k, 0) for x, k in zip(xs, axes)))
        return carries if keep_all else last

    def weighted_mean_of(loss, w):
        return jnp.sum(w * loss) / jnp.sum(w)

    def smoothed_ce(z, y, smoothing, ignore):
        """Softmax cross-entropy with label smoothing (None: none), the mean over the labels not
        equal to `ignore` (None: every label counts), 0 when every label is ignored."""
        valid = None if ignore is None else y != ignore
        k = y if valid is None else jnp.where(valid, y, 0)
        lse = jax.nn.logsumexp(z, axis=-1)
        z_y = jnp.take_along_axis(z, k[..., None], axis=-1)[..., 0]
        per = lse - z_y
        if smoothing is not None:
            per = per + smoothing * (z_y - jnp.mean(z, axis=-1))
        if valid is None:
            return jnp.mean(per)
        return jnp.sum(jnp.where(valid, per, 0.0)) / jnp.maximum(jnp.sum(valid), 1).astype(per.dtype)

    def weighted_ce(z, y, w, seen, total, smoothing, ignore):
        """Class-weighted softmax cross-entropy over `total` (the sum of `seen`, each sample's
        weight, 0 where its label is `ignore`), 0 where no weight is seen, with label smoothing
        (None: none). Its term -sum(w * log_softmax(z)) is sum(w) * logsumexp(z) - sum(w * z):
        no [B, C] log-softmax (a product and a sum rather than a matvec: no TF32 on a GPU)."""
        valid = y != ignore
        k = jnp.where(valid, y, 0)
        lse = jax.nn.logsumexp(z, axis=-1)
        nll = lse - jnp.take_along_axis(z, k[..., None], axis=-1)[..., 0]
        num = jnp.sum(jnp.where(valid, seen * nll, 0.0))  # an ignored row's logits are never read
        if smoothing is not None:
            smooth = jnp.where(valid, jnp.sum(w) * lse - jnp.sum(z * w, axis=-1), 0.0)
            num = (1.0 - smoothing) * num + smoothing / z.shape[-1] * jnp.sum(smooth)
        positive = total > 0.0
        return jnp.where(positive, num / jnp.where(positive, total, 1.0), 0.0)

    def conv(x, w, stride, same):
        n = x.ndim - 2
        layout = "NC" + "HW"[:n]
        return jax.lax.conv_general_dilated(
            x,
            w,
            window_strides=(stride,) * n,
            padding="SAME" if same else "VALID",  # the odd zero after, as docs/language.md §3 says
            dimension_numbers=(layout, "OI" + "HW"[:n], layout),
            feature_group_count=x.shape[1] // w.shape[1],
            precision=jax.lax.Precision.HIGHEST,  # no TF32 on a GPU: the value of the spec's float
        )

    def avg_pool2d(x, kernel, stride):
        lead = (1,) * (x.ndim - 2)
        total = jax.lax.reduce_window(x, 0.0, jax.lax.add, lead + (kernel, kernel), lead + (stride, stride), "VALID")
        return total / (kernel * kernel)

    return types.SimpleNamespace(
        abs=abs_,
        conv=conv,
        avg_pool2d=avg_pool2d,
        clip=clip,
        diag=lambda x: numpy_like_diag(jnp, x),
        flatten=lambda x, start, end: x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1 :]),
        unflatten=lambda x, axis, sizes: x.reshape(x.shape[:axis] + tuple(sizes) + x.shape[axis + 1 :]),
        argtopk=lambda x, k, axis: numpy_like_argtopk(jnp, x, k, axis).astype(jnp.asarray(0).dtype),
        topk=lambda x, k, axis: jnp.take_along_axis(x, numpy_like_argtopk(jnp, x, k, axis), axis=axis),
        atan2=atan2,
        norm=norm,
        logaddexp=logaddexp,
        softplus=softplus,
        log_sigmoid=lambda x: -softplus(-x),
        relu=relu,
        segment_sum=segment_sum,
        segment_mean=numpy_like_segment_mean(jnp, segment_sum),
        weighted_mean_of=weighted_mean_of,
        ctc_loss=ctc_loss,
        scan=scan,
        smoothed_ce=smoothed_ce,
        weighted_ce=weighted_ce,
        lm_head=_lm_head_runtime(jax, jnp),  # the language-model head (lossdsl/lm_head.py)
    )


# ---- the language-model head (lossdsl/lm_head.py) ----------------------------------------------


def _lm_head_runtime(jax, jnp):
    """`lm_head(h, W, b, idx, stats, softcap)`: the [N, K] statistics of the logits h @ W^T + b.
    From `lm_head.min_logits()` logits, a `lax.scan` over chunks of the vocabulary with an online
    logsumexp, whose step is rematerialised (`jax.checkpoint`): reverse mode saves only the
    [N]-sized running values per chunk and recomputes each chunk's logits in the backward, and
    because the rule is JAX's own, forward mode, `jax.hessian` and `vmap` work as on any code."""

    def logits(h, W, b, softcap):
        z = h @ W.T
        if b is not None:
            z = z + b
        return softcap * jnp.tanh(z / softcap) if softcap is not None else z

    def dense(h, W, b, idx, stats, softcap):
        v = W.shape[0]
        z = logits(h, W, b, softcap)
        lse = jax.nn.logsumexp(z, axis=1)
        logp = jnp.take_along_axis(z, idx[:, None], axis=1)[:, 0] - lse if idx is not None else None
        return jnp.stack(lm_head_settings.columns(stats, lse, logp, jnp.sum(z, axis=1), float(v)), axis=1)

    def parts(h, W, b, idx, softcap, step, vary=lambda x: x):
        """(lse, the picked logit, the row sum) over the classes of W, chunk by chunk; `vary`
        marks the running values as differing between replicas where W does (shard_map)."""
        n, v = h.shape[0], W.shape[0]
        chunks = -(-v // step)
        pad = chunks * step - v
        Wc = jnp.pad(W, ((0, pad), (0, 0))).reshape(chunks, step, W.shape[1])
        bc = jnp.pad(b, (0, pad)).reshape(chunks, step) if b is not None else None
        starts = jnp.arange(chunks) * step
        cols = jnp.arange(step)

        @jax.checkpoint
        def body(carry, xs):
            m, s, picked, rowsum = carry
            w, bias, start = xs
            z = logits(h, w, bias, softcap)
            valid = (start + cols) < v
            z_max = jnp.where(valid, z, -jnp.inf)
            # the shift of the logsumexp is any constant: held out of the gradient, which is then exact
            m_new = jax.lax.stop_gradient(jnp.maximum(m, jnp.max(z_max, axis=1)))
            s = s * jnp.exp(m - m_new) + jnp.sum(jnp.where(valid, jnp.exp(z_max - m_new[:, None]), 0.0), axis=1)
            rowsum = rowsum + jnp.sum(jnp.where(valid, z, 0.0), axis=1)
            if idx is not None:
                picked = picked + jnp.sum(jnp.where(cols == (idx - start)[:, None], z, 0.0), axis=1)
            return (m_new, s, picked, rowsum), None

        zeros = jnp.zeros((n,), h.dtype)
        init = tuple(map(vary, (jnp.full((n,), -jnp.inf, h.dtype), zeros, zeros, zeros)))
        (m, s, picked, rowsum), _ = jax.lax.scan(body, init, (Wc, bc, starts))
        return m + jnp.log(s), picked, rowsum

    def chunked(h, W, b, idx, stats, softcap, step):
        lse, picked, rowsum = parts(h, W, b, idx, softcap, step)
        return jnp.stack(lm_head_settings.columns(stats, lse, picked - lse, rowsum, float(W.shape[0])), axis=1)

    def split(h, W, b, idx, stats, softcap, step, dist):
        """A split vocabulary: this replica's classes (from `offset` of `total`), combined with
        psum/pmax, which JAX differentiates (dh is summed over the replicas by the transpose)."""
        offset, total = dist.extent(W.shape[0])
        local = idx - offset if idx is not None else None
        lse, picked, rowsum = parts(h, W, b, local, softcap, step, dist.vary)
        lse, picked, rowsum = lm_head_settings.global_statistics(
            dist, lse, picked, rowsum, total, jnp.exp, jnp.log, jax.lax.stop_gradient
        )
        return jnp.stack(lm_head_settings.columns(stats, lse, picked - lse, rowsum, float(total)), axis=1)

    def lm_head(h, W, b, idx, stats, softcap, chunk, min_logits, dist=None, uniform=False):
        step = lm_head_settings.plan(h.shape[0], h.shape[1], W.shape[0], chunk, min_logits)
        if dist is not None:  # below the threshold, one chunk of the local classes
            return split(h, W, b, idx, stats, softcap, step or max(1, W.shape[0]), dist)
        if step is None:
            return dense(h, W, b, idx, stats, softcap)
        return chunked(h, W, b, idx, stats, softcap, step)

    def any_lm_head(h, W, b, idx, *rest, **kw):
        """h of rank 3 or more: the tokens along its leading axes, as rows."""
        if h.ndim == 2:
            return lm_head(h, W, b, idx, *rest, **kw)
        labels = idx.reshape(-1) if idx is not None else None
        out = lm_head(h.reshape(-1, h.shape[-1]), W, b, labels, *rest, **kw)
        return out.reshape(*h.shape[:-1], out.shape[-1])

    return any_lm_head


class JaxCollectives(LocalCollectives):
    """`psum`/`pmax`/`pmin` over a named axis (shard_map, pmap). Outside such a context the
    arrays are the global ones (plain calls, or `jax.jit` over sharded global arrays), and the
    local reduction already is the global one."""

    def __init__(self, jax, axis_name):
        self.jax, self.axis_name = jax, axis_name

    def check(self) -> None:
        pass

    def _manual(self) -> bool | None:
        """Whether the axis is a manual (shard_map) axis of the current mesh; None if no mesh
        names it (then pmap may bind it, or nothing does)."""
        try:
            mesh = self.jax.sharding.get_abstract_mesh()
            names = tuple(getattr(mesh, "axis_names", ()) or ())
            if self.axis_name in names:
                kind = mesh.axis_types[names.index(self.axis_name)]
                return "Manual" in str(kind)
        except Exception:  # an older JAX without abstract meshes
            return None
        return None

    def _collective(self, fn, x):
        manual = self._manual()
        if manual is False:  # jit over global (sharded) arrays: the program sees the whole batch
            return x
        try:
            return fn(x, self.axis_name)
        except NameError:  # the axis is not bound: this program sees the whole batch
            return x

    def sum(self, x, dev=None):
        return self._collective(self.jax.lax.psum, x)

    def max(self, x, dev=None):
        return self._collective(self.jax.lax.pmax, x)

    def min(self, x, dev=None):
        return self._collective(self.jax.lax.pmin, x)

    def vary(self, x):
        """`x` marked as differing between the replicas of the axis (under shard_map)."""
        return self._collective(lambda a, name: self.jax.lax.pcast(a, (name,), to="varying"), x)

    def extent(self, n, dev=None):
        # shard_map splits an axis into equal parts
        if self._manual() is False:
            return 0, n
        try:
            size = self.jax.lax.axis_size(self.axis_name)
            return self.jax.lax.axis_index(self.axis_name) * n, int(size) * n
        except NameError:
            return 0, n


class JaxBackend(NumpyBackend):
    """The NumPy backend with `jnp`, plus autodiff, tracers and jit."""

    name = "jax"
    aliases = ()
    framework = "jax"
    printer = JaxPrinter
    differentiable = True
    KINDS = {**NumpyBackend.KINDS, "V": "float"}  # bfloat16 (ml_dtypes) has kind "V"

    def load(self) -> None:
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp, self.xp = jax, jnp, jnp
        self.rt = _runtime(jax, jnp)
        self.float32, self.float64, self.tensor_type = jnp.float32, jnp.float64, jax.Array
        self.int_dtype = jnp.asarray(0).dtype  # int32, or int64 with jax_enable_x64
        self.loaded = True

    def value_range(self, x: Any) -> tuple[int, int] | None:
        tracer = self.jax.core.Tracer
        if isinstance(x, tracer) or x.size == 0:
            return None  # under jit or vmap: XLA cannot raise, out-of-range gathers clamp there
        lo, hi = x.min(), x.max()
        if isinstance(lo, tracer):  # a constant inside a jit trace: the ops were staged, not run
            return None
        lo, hi = self.jax.device_get((lo, hi))
        return int(lo), int(hi)

    def host_values(self, x: Any) -> Any:
        import numpy as np

        if isinstance(x, self.jax.core.Tracer):
            return None
        return np.asarray(self.jax.device_get(x))

    def traced_index_check(self, x, size, message, check):
        # A host callback runs the eager check on the values: the same LossError, raised
        # through XLA (wrapped in its runtime error) when the step runs.
        import numpy as np

        def on_host(values):
            values = np.asarray(values)
            if values.size:
                check(int(values.min()), int(values.max()), values)

        self.jax.debug.callback(on_host, x)
        return x

    def traced_index_guard(self, x, size, message, flags):
        # XLA cannot raise, and its gathers clamp: the flag turns the loss into NaN instead
        # (a host callback, as `check_values=True` uses, would stop the device at every step).
        jnp = self.jnp
        ok = (x >= 0) & (x < size)
        flags.append(jnp.all(ok))
        return jnp.where(ok, x, jnp.zeros_like(x))

    def guard_indices(self, loss, flags, dist=None, dev=None):
        jnp = self.jnp
        ok = flags[0]
        for flag in flags[1:]:
            ok = ok & flag
        if dist is not None:  # the same flag on every replica (shard_map checks the loss's replication)
            ok = dist.min(ok.astype(jnp.int32), dev) > 0
        return jnp.where(ok, loss, jnp.asarray(jnp.nan, loss.dtype))

    def asarray(self, x: Any) -> Any:
        return self.jnp.asarray(self._host(x))

    def constant(self, value, kind, cdt, like):
        # NumPy, not jnp: made inside a jit or shard_map trace, a jnp array would be a tracer
        # (or carry that trace's mesh), and this value is cached across traces.
        import numpy as np

        if self.is_tensor(value) and not isinstance(value, self.jax.core.Tracer):
            value = np.asarray(value)
        elif self.is_tensor(value):
            return value
        dtype = {"float": cdt, "int": self.int_dtype, "bool": np.bool_}[kind]
        return np.asarray(value).astype(np.dtype(dtype))

    def value_and_grads(self, fn, args, preds):
        def total_and_value(pvals):
            out = fn(**{**args, **pvals})
            return out.sum(), out

        (_, out), grads = self.jax.value_and_grad(total_and_value, has_aux=True)({p: args[p] for p in preds})
        return out, grads

    def wrap_compute(self, fn, static_args, *, sharded: bool = False):
        # One XLA dispatch per eager call; under a user's jit this inlines into their trace. A
        # sharded loss is left to the caller's shard_map / jit: whether its axis is bound is part
        # of the context it is traced in.
        if sharded:
            return fn
        return self.jax.jit(fn, static_argnames=tuple(static_args))

    def collectives(self, group=None, *, source_name: str = ""):
        return JaxCollectives(self.jax, group if group is not None else "batch")

    def namespace(self) -> dict[str, Any]:
        return {"jax": self.jax, "jnp": self.jnp, "rt": self.rt, "_INT": self.int_dtype, "_BOOL": self.jnp.bool_}
