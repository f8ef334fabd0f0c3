"""TensorFlow. Where its ops differ from docs/language.md §4 the printer calls a helper:

- `maximum`/`minimum` split the gradient 0.5/0.5 at ties (tf.maximum gives 1 to one side);
- `clip` is `minimum(maximum(x, lo), hi)`, whose TF gradient gives x 1 at both bounds,
  and whose value is `hi` when lo > hi, as in NumPy and torch (tf.clip_by_value gives lo);
- `norm` has gradient 0 at 0 (tf.norm gives NaN);
- `argmax`/`argmin` return the first index on ties (tf.argmax does not promise which);
- `sort`/`topk` are a stable argsort and a gather (tied elements keep their order);
- `atan2` has gradient 0 at the origin (tf.math.atan2 gives NaN);
- `cumprod` is a scan, exact through zeros (tf.math.cumprod's gradient is 0 after a zero);
- literals become tensors of the compute dtype, so float64 losses stay float64, and
  int / int is computed in the compute dtype, never TensorFlow's float64.

Sizes may be unknown while tracing a `tf.function`; the argument checks then check
what is known, and the loss reads the rest with `tf.shape`. Importing this module
does not import tensorflow; `TensorflowBackend.load()` does."""

from __future__ import annotations

import math
import types
from typing import Any

from lossdsl import lm_head as lm_head_settings
from lossdsl.ir import Apply, Const, Gather

from .base import Backend, LocalCollectives, Printer


class TensorflowPrinter(Printer):
    backend = "tensorflow"
    imports = ("import tensorflow as tf",)
    ONES_ON_TAPE = "tf.where(tf.zeros_like({x}, dtype=tf.bool), {x}, tf.ones_like({x}))"
    # `x ** 2.0` under XLA is a product; `x ** tensor` stays exp(log) with the exponent's gradient
    NUMBER_EXPONENTS = True
    # An eager call runs the compute as one graph (TensorflowBackend.wrap_compute): the API's mean
    # of a per-sample loss is then inside it, not a few more eager ops and their gradients.
    API_MEAN_IN_COMPUTE = True
    # Under XLA the gradient of each column slice `b[:, k]` is a pad of the whole tensor, and the
    # fusion of their sum computes every column's upstream expression once per column; the
    # gradient of one unstack is one stack of the columns' gradients.
    SPLITS_COLUMNS = True
    FUNCTIONS = {
        "abs": "tf.abs({x})",
        "sign": "tf.sign({x})",
        "square": "tf.square({x})",
        "relu": "tf.nn.relu({x})",
        "exp": "tf.exp({x})",
        "expm1": "tf.math.expm1({x})",
        "log": "tf.math.log({x})",
        "log1p": "tf.math.log1p({x})",
        "sqrt": "tf.sqrt({x})",
        "sin": "tf.sin({x})",
        "cos": "tf.cos({x})",
        "tanh": "tf.tanh({x})",
        "cosh": "tf.math.cosh({x})",
        "sinh": "tf.math.sinh({x})",
        "acos": "tf.math.acos({x})",
        "asin": "tf.math.asin({x})",
        "atan": "tf.math.atan({x})",
        "atan2": "rt.atan2({y}, {x})",
        "isnan": "tf.math.is_nan({x})",
        "isfinite": "tf.math.is_finite({x})",
        "sigmoid": "tf.sigmoid({x})",
        "log_sigmoid": "tf.math.log_sigmoid({x})",
        "softplus": "tf.math.softplus({x})",
        "logaddexp": "rt.logaddexp({a}, {b})",
        "minimum": "rt.minimum({a}, {b})",
        "maximum": "rt.maximum({a}, {b})",
        "clip": "tf.minimum(tf.maximum({x}, {lo}), {hi})",
        "where": "tf.where({cond}, {a}, {b})",
        "sum": "tf.reduce_sum({x}{reduce_kw})",
        "mean": "tf.reduce_mean({x}{reduce_kw})",
        "prod": "tf.reduce_prod({x}{reduce_kw})",
        "max": "tf.reduce_max({x}{reduce_kw})",
        "min": "tf.reduce_min({x}{reduce_kw})",
        "logsumexp": "tf.reduce_logsumexp({x}{reduce_kw})",
        "var": "rt.var({x}, {axes}, {ddof}, {keepdims})",
        "std": "rt.std({x}, {axes}, {ddof}, {keepdims})",
        "norm": "rt.norm({x}, {p}, {axes}, {keepdims})",
        "argmax": "rt.argmax({x}, {axis0}, {keepdims})",
        "argmin": "rt.argmin({x}, {axis0}, {keepdims})",
        "softmax": "tf.nn.softmax({x}, axis={axis})",
        "log_softmax": "tf.nn.log_softmax({x}, axis={axis})",
        "cumsum": "tf.math.cumsum({x}, axis={axis})",
        "cumprod": "rt.cumprod({x}, {axis})",
        "logcumsumexp": "tf.math.cumulative_logsumexp({x}, axis={axis})",
        "sort": "rt.sort({x}, {axis})",
        "argsort": "tf.cast(tf.argsort({x}, axis={axis}, stable=True), tf.int64)",
        "topk": "rt.topk({x}, {k}, {axis})",
        "argtopk": "rt.argtopk({x}, {k}, {axis})",
        "pick": "tf.gather({x}, {idx}, batch_dims={idx_rank})",
        "one_hot": "tf.one_hot({idx}, {depth}, dtype=_cdt)",
        "arange": "tf.range({size}, dtype=tf.int64)",
        "eye": "tf.eye({size}, dtype=_cdt)",
        "diag": "tf.linalg.diag({x})",
        "dot": "tf.reduce_sum(tf.multiply({a}, {b}), axis={axis})",
        "transpose": "tf.linalg.matrix_transpose({x})",
        "permute": "tf.transpose({x}, {perm})",
        "pad": "tf.pad({x}, {widths})",
        "concat": "tf.concat({xs}, axis={axis})",
        "stack": "tf.stack({xs}, axis={axis})",
        "flatten": "rt.flatten({x}, {start}, {end})",
        "unflatten": "rt.unflatten({x}, {axis}, {sizes})",
        "segment_sum": "rt.segment_sum({v}, {ids}, {groups})",
        "ctc_loss": "rt.ctc_loss({log_probs}, {labels}, {input_lengths}, {label_lengths}, {blank})",
        "segment_mean": "rt.segment_mean({v}, {ids}, {groups})",
        "conv1d": "rt.conv({x}, {w}, {stride}, {same})",
        "conv2d": "rt.conv({x}, {w}, {stride}, {same})",
        "avg_pool2d": "rt.avg_pool2d({x}, {kernel}, {stride})",
        "ones_like": "tf.ones_like({x}, dtype={dtype})",
        "stop_gradient": "tf.stop_gradient({x})",
        "and": "tf.logical_and({a}, {b})",
        "or": "tf.logical_or({a}, {b})",
        "not": "tf.logical_not({x})",
        "eq": "tf.equal({a}, {b})",
        "ne": "tf.not_equal({a}, {b})",
        "matmul": "rt.matmul({a}, {b})",
        "cast_float": "tf.cast({x}, _cdt)",
        "cast_int": "tf.cast({x}, tf.int64)",
        "floor": "tf.floor({x})",
        "ceil": "tf.math.ceil({x})",
        "round": "tf.round({x})",
    }

    def const_arg(self, const, node: Apply) -> str:
        if isinstance(const, Apply):  # arithmetic of literals: a Python number, made a tensor as one
            return f"_k({self._p(const)[0]}, {self.dtype_name(const.type.dtype)})"
        if not isinstance(const, Const):  # a size, maybe only known while the graph runs
            return f"tf.cast({self._p(const)[0]}, {self.dtype_name(const.type.dtype)})"
        return f"_k({self._print_Const(const)[0]}, {self.dtype_name(const.type.dtype)})"

    # Spelled as functions (not operators) on TensorFlow.
    def _op_eq(self, node: Apply) -> str:
        return self.FUNCTIONS["eq"].format(**self.fields(node))

    def _op_ne(self, node: Apply) -> str:
        return self.FUNCTIONS["ne"].format(**self.fields(node))

    def _op_matmul(self, node: Apply) -> str:
        a, b = node.args
        if a.type.rank >= 2 and isinstance(b, Apply) and b.fn == "transpose" and id(b) not in self.names:
            # a @ transpose(b) without materialising the transpose
            return f"tf.linalg.matmul({self.expr(a)}, {self.expr(b.args[0])}, transpose_b=True)"
        return self.FUNCTIONS["matmul"].format(**self.fields(node))

    # ---- fused losses (lossdsl/kernels.py); their gradients meet docs/language.md §4 at the kinks ----
    # soft_ce is not tf.nn.softmax_cross_entropy_with_logits: its gradient is softmax - labels, which
    # is the gradient of -sum(y * log_softmax(z)) only when the labels sum to 1 (the parity suite,
    # whose labels are arbitrary, caught it); rt.soft_ce has the gradient for any labels.
    KERNELS = {
        "mse": {"mean", "none"},
        "soft_ce": {"none"},
        "bce_logits": {"mean", "none"},
        "nll": {"mean", "none", "weighted_mean"},
        "lm_head": {"stats", "reduced"},
        "ce": {"mean"},
        "weighted_ce": {"mean"},
    }

    def _kernel_mse(self, node, a, b):
        d = f"tf.math.squared_difference({a}, {b})"
        if node.attr("reduction") != "mean":
            return d
        if max(x.type.rank for x in node.args) >= 2:
            # The mean of the rows' means (every row has as many elements): XLA on CPU reduces
            # a matrix to one number through square tiles, across rows, and row by row faster.
            return f"tf.reduce_mean(tf.reduce_mean({d}, axis=-1))"
        return f"tf.reduce_mean({d})"

    def _kernel_bce_logits(self, node, z, y, pos_weight=None):
        d = f"tf.nn.sigmoid_cross_entropy_with_logits(labels={y}, logits={z})"
        if pos_weight is not None:
            d = self.unless_one(node, 0, d, f"rt.weighted_bce({z}, {y}, {pos_weight})")
        return f"tf.reduce_mean({d})" if node.attr("reduction") == "mean" else d

    def _kernel_soft_ce(self, node, z, y):
        return f"rt.soft_ce({z}, {y})"

    def _kernel_ce(self, node, z, y, ls, ignore=None):
        smoothing = self.unless_zero(node, 0, ls)
        return f"rt.smoothed_ce({z}, {y}, {smoothing}, {ignore if node.attr('ignore') else None})"

    def _kernel_lm_head(self, node, h, W, *rest):
        if node.attr("sharded"):
            # MirroredStrategy mirrors every variable: no replica holds only its part of W.
            from lossdsl.diagnostics import Diagnostic, LossError

            raise LossError(
                [
                    Diagnostic(
                        f"a language-model head with its vocabulary `{node.attr('sharded')}` split across "
                        "replicas has no TensorFlow form: MirroredStrategy keeps a whole copy of W on each",
                        node.span,
                        "E811",
                        help="compile it for torch or jax, or without `sharded=` (then `sharded=` may name the batch)",
                    )
                ]
            )
        return super()._kernel_lm_head(node, h, W, *rest)

    def _kernel_nll(self, node, z, y, w=None):
        d = f"tf.nn.sparse_softmax_cross_entropy_with_logits(labels={y}, logits={z})"
        if node.attr("reduction") == "weighted_mean":
            return f"rt.weighted_mean_of({d}, tf.gather({w}, {y}))"
        return f"tf.reduce_mean({d})" if node.attr("reduction") == "mean" else d

    def split_columns(self, x: str, size: int) -> str:
        return f"tf.unstack({x}, num={size}, axis=-1)"

    def _print_Gather(self, node: Gather) -> tuple[str, int]:
        x = self.expr(node.x)
        shapes = {i.type.shape for i in node.indices}
        if len(shapes) == 1 and all(_non_negative(i) for i in node.indices):
            # The common case (W[argmax(y), argmax(yhat)]): no broadcasting, no index from the end.
            if len(node.indices) == 1:
                return f"tf.gather({x}, {self.expr(node.indices[0])})", 100
            if node.indices[0].type.rank > 0:  # (rt.gather takes scalar indices: see there)
                stacked = ", ".join(self.expr(i) for i in node.indices)
                return f"tf.gather_nd({x}, tf.stack([{stacked}], axis=-1))", 100
        return f"rt.gather({x}, ({''.join(self.expr(i) + ', ' for i in node.indices)}))", 100


def _non_negative(index) -> bool:
    """An index that cannot count from the end: a position from argmax/argmin, or a literal >= 0."""
    if isinstance(index, Const):
        return index.value >= 0
    return isinstance(index, Apply) and index.fn in ("argmax", "argmin")


def _runtime(tf) -> types.SimpleNamespace:
    def scan(step, init, xs, captured, axes, keep_all):
        # tf.foldl (the last carry) or tf.scan (every carry) over the scanned axis moved first,
        # graph loops that trace under tf.function (docs/language.md §3, `scan`)
        def first(x, k):
            rank = x.shape.rank
            return tf.transpose(x, [k] + [i for i in range(rank) if i != k])

        elems = tuple(first(tf.convert_to_tensor(x), k) for x, k in zip(xs, axes))
        init = tf.convert_to_tensor(init)

        def body(carry, slices):
            return tf.convert_to_tensor(step(carry, slices, captured), dtype=init.dtype)

        if keep_all:
            return tf.scan(body, elems, initializer=init)
        return tf.foldl(body, elems, initializer=init)

    def ctc_alpha(log_probs, labels, input_lengths, label_lengths, blank):
        # The CTC forward recursion over the extended labels `blank l1 blank ... lL blank`, in the
        # scores' dtype (tf.nn.ctc_loss computes in float32 whatever it is given). A large finite
        # log 0 keeps the gradient of unreachable states 0 rather than NaN.
        dtype, zero = log_probs.dtype, tf.constant(-1e30, log_probs.dtype)
        lp = tf.nn.log_softmax(log_probs, axis=-1)
        blanks = tf.fill(tf.shape(labels), tf.cast(blank, labels.dtype))
        ext = tf.concat([tf.reshape(tf.stack([blanks, labels], axis=2), [tf.shape(labels)[0], -1]), blanks[:, :1]], 1)
        states = tf.shape(ext)[1]
        lp_ext = tf.transpose(tf.gather(lp, ext, axis=2, batch_dims=1), [1, 0, 2])  # [T, B, S]
        earlier = tf.concat([ext[:, :2], ext[:, :-2]], axis=1)
        skip = tf.logical_and(tf.not_equal(ext, blanks[:, :1]), tf.not_equal(ext, earlier))

        def shifted(a, k):
            return tf.concat([tf.fill([tf.shape(a)[0], k], zero), a[:, :-k]], axis=1)

        def step(alpha, elems):
            t, lp_t = elems
            stay_or_next = logaddexp(alpha, shifted(alpha, 1))
            moved = tf.where(skip, logaddexp(stay_or_next, shifted(alpha, 2)), stay_or_next) + lp_t
            return tf.where((t < input_lengths)[:, None], moved, alpha)

        start = tf.where(tf.range(states)[None, :] < 2, lp_ext[0], zero)
        steps = tf.range(1, tf.shape(lp_ext)[0], dtype=input_lengths.dtype)
        alpha = tf.foldl(step, (steps, lp_ext[1:]), initializer=start)
        last = tf.cast(2 * label_lengths, tf.int32)
        end = tf.gather(alpha, last[:, None], batch_dims=1)[:, 0]
        before = tf.where(last > 0, tf.gather(alpha, tf.maximum(last - 1, 0)[:, None], batch_dims=1)[:, 0], zero)
        return tf.where(input_lengths > 0, -logaddexp(end, before), tf.zeros([], dtype))  # no steps, no labels: p = 1

    def ctc_loss(log_probs, labels, input_lengths, label_lengths, blank):
        # A sample no alignment fits is run with no labels (always fits) and gets inf, with
        # gradient 0 (docs/language.md §3). tf.nn.ctc_loss computes in float32 and its gradient is
        # not differentiable again (nested tapes get 0): the recursion in the scores' dtype is.
        within = tf.range(tf.shape(labels, out_type=labels.dtype)[1])[None, :] < label_lengths[:, None]
        repeats = tf.reduce_sum(
            tf.cast(tf.logical_and(tf.equal(labels[:, 1:], labels[:, :-1]), within[:, 1:]), label_lengths.dtype), axis=1
        )
        blank_label = tf.reduce_any(tf.logical_and(tf.equal(labels, tf.cast(blank, labels.dtype)), within), axis=1)
        unfit = tf.logical_or(input_lengths < label_lengths + repeats, blank_label)
        fitted = tf.where(unfit, tf.zeros_like(label_lengths), label_lengths)
        loss = ctc_alpha(log_probs, labels, input_lengths, fitted, blank)
        return tf.where(unfit, tf.constant(float("inf"), log_probs.dtype), loss)

    def unbroadcast(grad, like):
        # the gradient of a broadcast operand: summed over the axes it was broadcast along
        if grad.shape == like.shape and grad.shape.is_fully_defined():
            return grad
        shape = tf.shape(like)
        axes, _ = tf.raw_ops.BroadcastGradientArgs(s0=shape, s1=tf.shape(grad))
        return tf.reshape(tf.reduce_sum(grad, axes), shape)

    def tie_split(op, first_wins):
        # The value of tf.maximum (tf.minimum); at a tie each side gets half the gradient
        # (docs/language.md §4), the other side 0 (selected, not multiplied: an infinite gradient
        # stays off it). One op on the tape: a `where` of the tie and both sides' gradients under
        # it were five, and under XLA kept the box losses' slices from fusing (as a gradient of
        # four `where`s did; this one of three lets them fuse).
        @tf.custom_gradient
        def split(a, b):
            def grad(g):
                tie, wins, zeros = tf.equal(a, b), first_wins(a, b), tf.zeros_like(g)
                shared = tf.where(tie, 0.5 * g, g)
                ga = tf.where(wins, shared, zeros)
                gb = tf.where(wins, tf.where(tie, shared, zeros), g)
                return unbroadcast(ga, a), unbroadcast(gb, b)

            return op(a, b), grad

        def call(a, b):
            # Ints have no gradient (and no half).
            dtype = a.dtype if tf.is_tensor(a) else getattr(b, "dtype", tf.float32)
            if not tf.as_dtype(dtype).is_floating:
                return op(a, b)
            if not tf.is_tensor(a):
                a = tf.convert_to_tensor(a, b.dtype)
            if not tf.is_tensor(b):
                b = tf.convert_to_tensor(b, a.dtype)
            return split(a, b)

        return call

    maximum = tie_split(tf.maximum, tf.greater_equal)
    minimum = tie_split(tf.minimum, tf.less_equal)

    def logaddexp(a, b):
        # TensorFlow has none: shifted by the larger operand (held constant, so each operand's
        # gradient is its share e^a / (e^a + e^b)); a non-finite larger one shifts by 0. Where
        # both are -inf the log reads 1: the value is -inf with derivatives 0.
        m = tf.stop_gradient(tf.maximum(a, b))
        m = tf.where(tf.math.is_finite(m), m, tf.zeros_like(m))
        s = tf.exp(a - m) + tf.exp(b - m)
        empty = tf.equal(s, 0)
        return (
            m
            + tf.math.log(tf.where(empty, tf.ones_like(s), s))
            + tf.where(empty, tf.constant(-float("inf"), s.dtype), tf.zeros_like(s))
        )

    @tf.custom_gradient
    def atan2_op(y, x):
        def grad(g):
            # (x, -y) / (x² + y²), and 0 at the origin (docs/language.md §4; tf.math.atan2's
            # gradient is NaN there): divide_no_nan reads 0 where the denominator is 0.
            r2 = tf.square(x) + tf.square(y)
            return unbroadcast(tf.math.divide_no_nan(g * x, r2), y), unbroadcast(tf.math.divide_no_nan(-g * y, r2), x)

        return tf.math.atan2(y, x), grad

    def atan2(y, x):
        # The value of tf.math.atan2, one op on the tape (the origin's `where`s were eleven).
        if not tf.is_tensor(y):
            y = tf.convert_to_tensor(y, x.dtype)
        if not tf.is_tensor(x):
            x = tf.convert_to_tensor(x, y.dtype)
        return atan2_op(y, x)

    def take_along(x, idx, axis):
        return tf.experimental.numpy.take_along_axis(x, idx, axis)

    def sort(x, axis):
        # tf.sort promises no order among ties: a stable argsort and a gather (docs/language.md §4).
        return take_along(x, tf.argsort(x, axis=axis, stable=True), axis)

    def argtopk(x, k, axis):
        order = tf.argsort(x, axis=axis, direction="DESCENDING", stable=True)
        return tf.cast(tf.gather(order, tf.range(k), axis=axis), tf.int64)

    def topk(x, k, axis):
        return take_along(x, argtopk(x, k, axis), axis)

    def conv(x, w, stride, same):
        # tf.nn.conv2d is channels last ([B, H, W, C], kernel [KH, KW, C/groups, O]) and takes no
        # groups on a CPU: x and w are transposed, a conv1d is a conv2d of height 1, and each
        # group is its own convolution, concatenated along the channels.
        one_d = len(x.shape) == 3
        if one_d:
            x, w = x[:, :, None, :], w[:, :, None, :]
        x = tf.transpose(x, (0, 2, 3, 1))
        w = tf.transpose(w, (2, 3, 1, 0))
        groups = x.shape[-1] // w.shape[2]
        padding = "SAME" if same else "VALID"  # the odd zero after, as docs/language.md §3 says
        parts = zip(tf.split(x, groups, axis=-1), tf.split(w, groups, axis=-1)) if groups > 1 else [(x, w)]
        out = tf.concat([tf.nn.conv2d(xg, wg, stride, padding) for xg, wg in parts], axis=-1)
        out = tf.transpose(out, (0, 3, 1, 2))
        return out[:, :, 0, :] if one_d else out

    def avg_pool2d(x, kernel, stride):
        # channels last: the axes before H and W as one batch axis, one channel
        shape = tf.shape(x)
        flat = tf.reshape(x, tf.concat([[-1], shape[-2:], [1]], 0))
        out = tf.nn.avg_pool2d(flat, kernel, stride, "VALID")
        return tf.reshape(out, tf.concat([shape[:-2], tf.shape(out)[1:3]], 0))

    def flatten(x, start, end):
        shape = tf.shape(x)
        return tf.reshape(x, tf.concat([shape[:start], [-1], shape[end + 1 :]], 0))

    def unflatten(x, axis, sizes):
        shape = tf.shape(x)
        middle = tf.stack([tf.cast(s, shape.dtype) for s in sizes])
        return tf.reshape(x, tf.concat([shape[:axis], middle, shape[axis + 1 :]], 0))

    def cumprod(x, axis):
        # tf.math.cumprod's gradient is 0 for the factors after a zero; a scan differentiates each
        # product exactly (docs/language.md §4).
        rank = x.shape.rank
        perm = [axis] + [i for i in range(rank) if i != axis]
        out = tf.scan(lambda acc, v: acc * v, tf.transpose(x, perm))
        return tf.transpose(out, [perm.index(i) for i in range(rank)])

    def _first_index(x, axis, keepdims, pick):
        rank = x.shape.rank
        target = pick(x, axis=axis, keepdims=True)
        n = tf.shape(x, out_type=tf.int64)[axis]
        positions = tf.reshape(tf.range(n), [-1 if i == axis else 1 for i in range(rank)])
        hit = tf.logical_or(tf.equal(x, target), tf.math.is_nan(x)) if x.dtype.is_floating else tf.equal(x, target)
        return tf.reduce_min(tf.where(hit, positions, n), axis=axis, keepdims=keepdims)

    def argmax(x, axis, keepdims):
        return _first_index(x, axis, keepdims, tf.reduce_max)

    def argmin(x, axis, keepdims):
        return _first_index(x, axis, keepdims, tf.reduce_min)

    def var(x, axes, ddof, keepdims):
        if ddof == 0:
            return tf.math.reduce_variance(x, axis=axes, keepdims=keepdims)
        axes_t = [axes] if isinstance(axes, int) else list(axes)
        mean = tf.reduce_mean(x, axis=axes_t, keepdims=True)
        n = tf.cast(tf.reduce_prod(tf.gather(tf.shape(x), axes_t)), x.dtype)
        return tf.reduce_sum(tf.square(x - mean), axis=axes_t, keepdims=keepdims) / (n - ddof)

    def std(x, axes, ddof, keepdims):
        return tf.sqrt(var(x, axes, ddof, keepdims))

    def norm(x, p, axes, keepdims):
        if p == 1:
            return tf.reduce_sum(tf.abs(x), axis=axes, keepdims=keepdims)
        s = tf.reduce_sum(tf.abs(x) ** p if p != 2 else tf.square(x), axis=axes, keepdims=keepdims)
        nonzero = s > 0
        # The root's gradient is infinite at 0: feed it a safe 1 there and select 0.
        root = (
            tf.where(nonzero, s, tf.ones_like(s)) ** (1.0 / p)
            if p != 2
            else tf.sqrt(tf.where(nonzero, s, tf.ones_like(s)))
        )
        return tf.where(nonzero, root, tf.zeros_like(s))

    def matmul(a, b):
        ra, rb = a.shape.rank, b.shape.rank
        if ra == 1 and rb == 1:
            return tf.reduce_sum(a * b, axis=-1)
        if rb == 1:
            return tf.linalg.matvec(a, b)
        if ra == 1:
            return tf.linalg.matvec(b, a, transpose_a=True)
        return tf.linalg.matmul(a, b)

    def gather(x, indices):
        parts = [tf.cast(i, tf.int64) for i in indices]
        if all(p.shape.rank == 0 for p in parts):
            # TensorFlow's gradient of gather_nd fails for a single index vector: gather one row of them.
            return gather(x, [tf.reshape(p, [1]) for p in parts])[0]
        shape = tf.shape(parts[0], out_type=tf.int64)
        for p in parts[1:]:
            shape = tf.broadcast_dynamic_shape(shape, tf.shape(p, out_type=tf.int64))
        sizes = tf.shape(x, out_type=tf.int64)
        parts = [tf.broadcast_to(p, shape) for p in parts]
        parts = [tf.where(p < 0, p + sizes[k], p) for k, p in enumerate(parts)]  # negative from the end
        # A variable (a param Keras keeps) is read first: gathered directly it is a resource
        # gather, which XLA (`jit_compile=True`) cannot compile.
        return tf.gather_nd(tf.convert_to_tensor(x), tf.stack(parts, axis=-1))

    def segment_sum(v, ids, groups):
        g = tf.cast(groups, ids.dtype)
        keep = tf.logical_and(ids >= 0, ids < g)
        safe = tf.where(keep, ids, -tf.ones_like(ids))  # TensorFlow drops negative ids
        return tf.math.unsorted_segment_sum(v, safe, groups)

    def segment_mean(v, ids, groups):
        total = segment_sum(v, ids, groups)
        count = segment_sum(tf.ones(tf.shape(ids), dtype=v.dtype), ids, groups)
        count = tf.reshape(count, tf.concat([tf.shape(count), tf.ones([total.shape.rank - 1], tf.int32)], 0))
        return total / tf.maximum(count, 1.0)

    def exp_minus_abs(z):
        # exp(-|z|), its exponent a `where` so that its derivative at 0 is one side's (-1), not
        # abs's 0: what is built from it below is then differentiable at 0 once more
        return tf.exp(tf.where(z >= 0, -z, z))

    def sigmoid_of_minus(z):
        e = exp_minus_abs(z)
        return tf.where(z >= 0, e, tf.ones_like(e)) / (1.0 + e)

    @tf.custom_gradient
    def softplus_of_minus(z):
        # log(1 + exp(-z)) as tf.nn's weighted cross-entropy computes it, log1p(exp(-|z|)) + relu(-z),
        # with derivative -σ(-z) at z = 0 too (that relu's and abs's gradients are 0 there). σ(-z)
        # from the same exp (XLA's own logistic costs several times more).
        return tf.math.log1p(exp_minus_abs(z)) + tf.nn.relu(-z), lambda g: -g * sigmoid_of_minus(z)

    def weighted_bce(z, y, w):
        # -(w y log σ(z) + (1 - y) log σ(-z)) as tf.nn.weighted_cross_entropy_with_logits writes it,
        # (1 - y) z + (1 + (w - 1) y) softplus(-z): one exp forward and backward, where
        # tf.math.softplus under XLA takes a logistic for its gradient, as two log-sigmoids do
        return (1.0 - y) * z + (1.0 + (w - 1.0) * y) * softplus_of_minus(z)

    def weighted_mean_of(loss, w):
        return tf.reduce_sum(w * loss) / tf.reduce_sum(w)

    @tf.custom_gradient
    def soft_ce(z, y):
        # -sum(y * log_softmax(z)) over the last axis, with its gradient for labels of any sum,
        # softmax(z) * sum(y) - y, in one op on the tape: autodiff through log_softmax writes
        # -g * y out and sums it again, and under XLA computes the softmax's exp twice. The
        # gradient reads only z and y (a second derivative sees all of it); XLA shares the
        # softmax's reductions and exp with the forward's log_softmax.
        logp = tf.nn.log_softmax(z)

        def grad(g):
            g = g[..., None]
            total = tf.reduce_sum(y, axis=-1, keepdims=True)
            return g * (tf.nn.softmax(z) * total - y), -g * tf.nn.log_softmax(z)

        return -tf.reduce_sum(y * logp, axis=-1), grad

    def smoothed_ce(z, y, smoothing, ignore):
        """Softmax cross-entropy through tf.nn's fused op, with label smoothing (None: none) as
        `ls * (z[y] - mean(z))` added to it, the mean over the labels not equal to `ignore`
        (None: every label counts), 0 when every label is ignored."""
        valid = None if ignore is None else tf.not_equal(y, ignore)
        k = y if valid is None else tf.where(valid, y, tf.zeros_like(y))
        per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=k, logits=z)
        if smoothing is not None:
            z_y = tf.gather(z, k, batch_dims=1)
            per = per + smoothing * (z_y - tf.reduce_mean(z, axis=-1))
        if valid is None:
            return tf.reduce_mean(per)
        count = tf.reduce_sum(tf.cast(valid, per.dtype))
        return tf.reduce_sum(tf.where(valid, per, tf.zeros_like(per))) / tf.maximum(count, 1.0)

    def weighted_ce(z, y, w, seen, total, smoothing, ignore):
        """Class-weighted softmax cross-entropy through tf.nn's fused op, over `total` (the sum of
        `seen`, each sample's weight, 0 where its label is `ignore`), 0 where no weight is seen;
        label smoothing (None: none) with its term -sum(w * log_softmax(z)) as sum(w) *
        logsumexp(z) - sum(w * z): no [B, C] log-softmax (a product and a sum rather than a
        matvec: no TF32 on a GPU)."""
        valid = tf.not_equal(y, ignore)
        k = tf.where(valid, y, tf.zeros_like(y))
        per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=k, logits=z)
        zeros = tf.zeros_like(per)
        num = tf.reduce_sum(tf.where(valid, seen * per, zeros))  # an ignored row's logits are never read
        if smoothing is not None:
            lse = per + tf.gather(z, k, batch_dims=1)
            smooth = tf.reduce_sum(w) * lse - tf.reduce_sum(z * w, axis=-1)
            classes = tf.cast(tf.shape(z)[-1], z.dtype)
            smoothed = tf.reduce_sum(tf.where(valid, smooth, zeros))
            num = (1.0 - smoothing) * num + smoothing / classes * smoothed
        # 0 where the total is not positive, with gradient 0: one op on the tape
        return tf.math.divide_no_nan(num, tf.where(total > 0.0, total, tf.zeros_like(total)))

    return types.SimpleNamespace(
        weighted_bce=weighted_bce,
        weighted_mean_of=weighted_mean_of,
        smoothed_ce=smoothed_ce,
        soft_ce=soft_ce,
        weighted_ce=weighted_ce,
        maximum=maximum,
        minimum=minimum,
        logaddexp=logaddexp,
        atan2=atan2,
        ctc_loss=ctc_loss,
        scan=scan,
        sort=sort,
        argtopk=argtopk,
        topk=topk,
        conv=conv,
        avg_pool2d=avg_pool2d,
        cumprod=cumprod,
        flatten=flatten,
        unflatten=unflatten,
        argmax=argmax,
        argmin=argmin,
        var=var,
        std=std,
        norm=norm,
        matmul=matmul,
        gather=gather,
        segment_sum=segment_sum,
        segment_mean=segment_mean,
        **_lm_head_runtime(tf),  # the language-model head (lossdsl/lm_head.py): lm_head, lm_head_loss
    )


# ---- the language-model head (lossdsl/lm_head.py) ----------------------------------------------


def _lm_head_runtime(tf):
    """`lm_head(h, W, b, idx, stats, softcap, chunk, min_logits)`: the [N, K] statistics of the
    logits h @ W^T + b. From `min_logits` logits, a `tf.while_loop` over chunks of the vocabulary
    with an online logsumexp under `tf.custom_gradient`, whose gradient is another loop that
    recomputes each chunk's logits. The gradient is written in TensorFlow ops, so nested tapes
    differentiate it again."""

    def logits(h, W, b, softcap, start, size):
        z = tf.linalg.matmul(h, W[start : start + size], transpose_b=True)
        if b is not None:
            z = z + b[start : start + size]
        return softcap * tf.tanh(z / softcap) if softcap is not None else z

    def picked_in(z, idx, start):
        local = tf.cast(idx, tf.int64) - tf.cast(start, tf.int64)
        cols = tf.range(tf.shape(z, out_type=tf.int64)[1])
        return tf.reduce_sum(tf.where(cols[None, :] == local[:, None], z, tf.zeros_like(z)), axis=1)

    def dense(h, W, b, idx, stats, softcap):
        v = tf.cast(tf.shape(W)[0], h.dtype)
        z = logits(h, W, b, softcap, 0, tf.shape(W)[0])
        lse = tf.reduce_logsumexp(z, axis=1)
        logp = picked_in(z, idx, 0) - lse if idx is not None else None
        return tf.stack(lm_head_settings.columns(stats, lse, logp, tf.reduce_sum(z, axis=1), v), axis=1)

    def chunked(h, W, b, idx, stats, softcap, step):
        n, v = tf.shape(h)[0], tf.shape(W)[0]
        vf = tf.cast(v, h.dtype)
        floats = (h, W) + ((b,) if b is not None else ())

        @tf.custom_gradient
        def run(*xs):
            h, W = xs[0], xs[1]
            b = xs[2] if len(xs) > 2 else None

            def forward(start, m, s, picked, rowsum):
                z = logits(h, W, b, softcap, start, step)
                m_new = tf.maximum(m, tf.reduce_max(z, axis=1))
                s = s * tf.exp(m - m_new) + tf.reduce_sum(tf.exp(z - m_new[:, None]), axis=1)
                if idx is not None:
                    picked = picked + picked_in(z, idx, start)
                return start + step, m_new, s, picked, rowsum + tf.reduce_sum(z, axis=1)

            zeros = tf.zeros([n], h.dtype)
            init = (tf.constant(0), tf.fill([n], tf.constant(-float("inf"), h.dtype)), zeros, zeros, zeros)
            # One iteration at a time: TensorFlow would otherwise run up to ten chunks at once.
            _, m, s, picked, rowsum = tf.while_loop(lambda start, *_: start < v, forward, init, parallel_iterations=1)
            lse = m + tf.math.log(s)
            out = tf.stack(lm_head_settings.columns(stats, lse, picked - lse, rowsum, vf), axis=1)

            def grad(g):
                col = {k: g[:, i] for i, k in enumerate(stats)}
                zero = tf.zeros([n], h.dtype)
                g_logp, g_mean, g_sum = (col.get(k, zero) for k in ("logp", "mean_logp", "sum_logp"))
                a = (col.get("lse", zero) - g_logp - g_mean - vf * g_sum)[:, None]  # the coefficient of softmax
                c = (g_mean / vf + g_sum)[:, None]  # the same for every class

                def backward(start, gh, gW, gb):
                    z = logits(h, W, b, softcap, start, step)
                    dz = a * tf.exp(z - lse[:, None]) + c
                    if idx is not None:
                        local = tf.cast(idx, tf.int64) - tf.cast(start, tf.int64)
                        cols = tf.range(tf.shape(z, out_type=tf.int64)[1])
                        dz = dz + tf.where(cols[None, :] == local[:, None], g_logp[:, None], tf.zeros_like(dz))
                    if softcap is not None:
                        dz = dz * (1.0 - tf.square(z / softcap))
                    gh = gh + tf.linalg.matmul(dz, W[start : start + step])
                    gW = gW.write(start // step, tf.linalg.matmul(dz, h, transpose_a=True))
                    gb = gb.write(start // step, tf.reduce_sum(dz, axis=0))
                    return start + step, gh, gW, gb

                arrays = [tf.TensorArray(h.dtype, size=0, dynamic_size=True, infer_shape=False) for _ in range(2)]
                _, gh, gW, gb = tf.while_loop(
                    lambda start, *_: start < v,
                    backward,
                    (tf.constant(0), tf.zeros_like(h), *arrays),
                    parallel_iterations=1,
                )
                grads = [gh, gW.concat()]
                if b is not None:
                    grads.append(gb.concat())
                return grads

            return out, grad

        return run(*floats)

    def lm_head(h, W, b, idx, stats, softcap, chunk, min_logits, uniform=False):
        n, d, v = (x if x is not None else 0 for x in (h.shape[0], h.shape[1], W.shape[0]))
        step = lm_head_settings.plan(n, d, v, chunk, min_logits) if n and v else None
        if step is None:  # small, or sizes known only when the graph runs: dense
            return dense(h, W, b, idx, stats, softcap)
        return chunked(h, W, b, idx, stats, softcap, step)

    def slab_rows(rows, v, d):
        """Rows of dW a slab: a power of two (so that it shares a large factor with V) whose
        product [slab, D] takes at most a quarter of a chunk's [rows, V] logits, but no more
        than 32 slabs (each is an operation in the loop's body)."""
        most = max(1, rows * v // (4 * d))
        slab = 1 << (most.bit_length() - 1)
        least = -(-v // 32)
        return min(v, max(slab, 1 << (least - 1).bit_length()))

    def buffer(shape, dtype):
        """A new zero tensor that `add_rows` may write into: `Empty` is stateful, so no graph
        optimisation folds it into a constant shared between calls."""
        return tf.raw_ops.Empty(shape=shape, dtype=dtype, init=True)

    def add_rows(x, rows, part):
        """x[rows] += part (a row of part to each row of x named, no row named twice), in x's own
        memory (TensorFlow has no in-place matrix product, and `x + part` would hold x twice);
        x must come from `buffer` (or a reshape of it) and have no other reader. Differentiable:
        the gradient of a sum, which reads no value of x."""

        @tf.custom_gradient
        def added(x, part):
            return tf.raw_ops.InplaceAdd(x=x, i=rows, v=part), lambda up: (up, tf.gather(up, rows))

        return added(x, part)

    def folded(h, W, b, idx, stats, softcap, token_loss, captured, per_token, reduction, step):
        """A head whose per-token loss `token_loss` is summed (lossdsl/lm_head_loss.py): a
        `tf.while_loop` over chunks of tokens, each with all its classes, evaluates the per-token
        loss and its derivative to the statistics and makes the chunk's part of dh, dW (one [V, D]
        buffer) and db from its softmax; the gradient only scales them. The prepared tensors are
        TensorFlow ops of h and W, so nested tapes differentiate them again."""
        n, v = int(h.shape[0]), int(W.shape[0])
        # at least 128 tokens a chunk: each chunk adds a product to all of dW, a pass over it (with
        # 64, those passes took the time to 1.1-1.2 times tf.nn's; with 128, about tf.nn's)
        rows = max(lm_head_settings.token_rows(n, v, step), min(n, 128))
        floats = (h, W) + ((b,) if b is not None else ())
        if idx is not None:
            idx = tf.cast(idx, tf.int32)

        def as_float(d):  # a Python number straight to h's dtype (through float32 it would round)
            return tf.cast(d, h.dtype) if tf.is_tensor(d) else tf.constant(d, h.dtype)

        @tf.custom_gradient
        def run(*xs):
            h, W = xs[0], xs[1]
            b = xs[2] if len(xs) > 2 else None

            def chunk(i, total, gh, gb, gW):
                s = i * rows
                hc = h[s : s + rows]
                z = tf.linalg.matmul(hc, W, transpose_b=True)
                if b is not None:
                    z = z + b
                slope = None
                if softcap is not None:
                    t = tf.tanh(z / softcap)
                    slope = 1.0 - tf.square(t)  # the derivative of s * tanh(z / s)
                    z = softcap * t
                rowsum = tf.reduce_sum(z, axis=1) if "mean_logp" in stats or "sum_logp" in stats else None
                picked = None
                if idx is not None:
                    ic = idx[s : s + rows]
                    inside = tf.cast((ic >= 0) & (ic < v), h.dtype)
                    at = tf.stack([tf.range(tf.shape(ic)[0]), tf.clip_by_value(ic, 0, v - 1)], axis=1)
                    picked = tf.gather_nd(z, at) * inside
                m = tf.stop_gradient(tf.reduce_max(z, axis=1))
                # z's last reader: it may then take over z's memory (one [rows, V] tensor at a time)
                with tf.control_dependencies([x for x in (m, rowsum, picked) if x is not None]):
                    e = tf.exp(z - m[:, None])
                norm = tf.reduce_sum(e, axis=1)
                lse = m + tf.math.log(norm)
                cols = lm_head_settings.columns(
                    stats, lse, picked - lse if picked is not None else None, rowsum, float(v)
                )
                ks = tuple(c[s : s + rows] if each else c for c, each in zip(captured, per_token))
                loss, grads = token_loss(cols, ks)
                zero = tf.zeros_like(lse)
                # the mean's 1 / N goes into the coefficients: no pass over dW to divide it
                g = {k: (zero + as_float(d) * scale if d is not None else zero) for k, d in zip(stats, grads)}
                g_logp, g_mean, g_sum = (g.get(k, zero) for k in ("logp", "mean_logp", "sum_logp"))
                a = g.get("lse", zero) - g_logp - g_mean - v * g_sum  # the coefficient of softmax
                dz = e * (a / norm)[:, None]  # e's last reader: it may take over e's memory
                if rowsum is not None:
                    dz = dz + (g_mean / v + g_sum)[:, None]
                if slope is not None:
                    dz = dz * slope
                # dW in slabs of classes (`gW` groups `group` rows of dW a row), each added in place
                # before the next slab's product is made: a slab's product is the only temporary
                for j in range(0, v, slab):
                    with tf.control_dependencies([gW]):
                        part = tf.linalg.matmul(dz[:, j : j + slab], hc, transpose_a=True)
                    gW = add_rows(gW, tf.range(j // group, min(j + slab, v) // group), tf.reshape(part, [-1, wide]))
                gb = gb + tf.reduce_sum(dz, axis=0) if b is not None else gb
                with tf.control_dependencies([gW]):
                    dh = tf.linalg.matmul(dz, W)
                if idx is not None:
                    # the picked logit's term, one row of dh and of dW a token (never in dz, which
                    # a scatter would copy)
                    hot = g_logp * inside
                    if slope is not None:
                        hot = hot * tf.gather_nd(slope, at)
                    dh = dh + hot[:, None] * tf.gather(W, at[:, 1])
                    # one row a class named (InplaceAdd on a GPU adds repeated rows concurrently)
                    named, which = tf.unique(at[:, 1])
                    per_class = tf.math.unsorted_segment_sum(hot[:, None] * hc, which, tf.size(named))
                    byclass = add_rows(tf.reshape(gW, tf.shape(W)), named, per_class)
                    gW = tf.ensure_shape(tf.reshape(byclass, tf.shape(gW)), gW.shape)
                    if b is not None:
                        gb = tf.tensor_scatter_nd_add(gb, at[:, 1:], hot)
                gh = add_rows(gh, tf.range(s // tokens, (s + tf.shape(hc)[0]) // tokens), tf.reshape(dh, [-1, tall]))
                return (i + 1, total + tf.reduce_sum(zero + loss), gh, gb, gW)

            count = -(-n // rows)
            scale = 1.0 / n if reduction == "mean" else 1.0
            d = int(W.shape[1]) if W.shape[1] is not None else rows
            slab = slab_rows(rows, v, d)
            # dW and dh in place in views of `group` (`tokens`) of their rows a row: a slab (a
            # chunk) is whole rows of the view, added by one operation
            group, tokens = math.gcd(v, slab), math.gcd(n, rows)
            wide, tall = group * tf.shape(W)[1], tokens * tf.shape(h)[1]
            bias = tf.zeros_like(b) if b is not None else tf.zeros([], h.dtype)
            init = (
                tf.constant(0),
                tf.zeros([], h.dtype),
                buffer(tf.stack([n // tokens, tall]), h.dtype),
                bias,
                buffer(tf.stack([v // group, wide]), W.dtype),
            )
            # One chunk at a time: TensorFlow would otherwise run up to ten at once.
            _, total, gh, gb, gW = tf.while_loop(
                lambda i, *_: i < count, chunk, init, parallel_iterations=1, maximum_iterations=count
            )
            gh, gW = tf.reshape(gh, tf.shape(h)), tf.reshape(gW, tf.shape(W))
            total = total * scale

            def grad(up):
                # An upstream gradient of 1 (the loss itself) hands the prepared tensors over as they are.
                return [
                    tf.cond(up == 1.0, lambda x=x: tf.identity(x), lambda x=x: x * up) for x in (gh, gW, gb)[: len(xs)]
                ]

            return total, grad

        return run(*floats)

    def lm_head_loss(h, W, b, idx, stats, softcap, token_loss, captured, per_token, reduction, chunk, min_logits):
        n, d, v = (x if x is not None else 0 for x in (h.shape[0], h.shape[1], W.shape[0]))
        step = lm_head_settings.plan(n, d, v, chunk, min_logits) if n and v else None
        if step is None:  # small, or sizes known only when the graph runs: the statistics and the loss
            out = lm_head(h, W, b, idx, stats, softcap, chunk, min_logits)
            loss, _ = token_loss([out[:, i] for i in range(len(stats))], tuple(captured))
            loss = loss + tf.zeros_like(out[:, 0])
            return tf.reduce_mean(loss) if reduction == "mean" else tf.reduce_sum(loss)
        return folded(h, W, b, idx, stats, softcap, token_loss, captured, per_token, reduction, step)

    def tokens_in_rows(h, idx, captured=(), per_token=()):
        """h of rank 3 or more (the tokens along its leading axes) as [tokens, D], and the labels
        and per-token values read along with it as vectors."""
        flat = tuple(tf.reshape(c, [-1]) if each else c for c, each in zip(captured, per_token))
        return tf.reshape(h, [-1, h.shape[-1]]), tf.reshape(idx, [-1]) if idx is not None else None, flat

    def any_lm_head(h, W, b, idx, *rest, **kw):
        if h.shape.rank == 2:
            return lm_head(h, W, b, idx, *rest, **kw)
        rows, labels, _ = tokens_in_rows(h, idx)
        out = lm_head(rows, W, b, labels, *rest, **kw)
        return tf.reshape(out, tf.concat([tf.shape(h)[:-1], tf.shape(out)[-1:]], axis=0))

    def any_lm_head_loss(h, W, b, idx, stats, softcap, token_loss, captured, per_token, *rest, **kw):
        if h.shape.rank > 2:
            h, idx, captured = tokens_in_rows(h, idx, captured, per_token)
        return lm_head_loss(h, W, b, idx, stats, softcap, token_loss, captured, per_token, *rest, **kw)

    return {"lm_head": any_lm_head, "lm_head_loss": any_lm_head_loss}


class TensorflowCollectives(LocalCollectives):
    """Collectives in the replica context of a tf.distribute strategy. With no strategy (one
    replica) each is the identity.

    Gradients: each replica computes the same global loss L, and MirroredStrategy sums the
    replicas' gradients. The backward of `sum` is the all-reduced upstream gradient (the true
    adjoint of a cross-replica sum, so a global reduction that feeds another one, as in `var`,
    is right), which makes each replica's gradient that of R * L; `finish` divides it by the
    number of replicas R once, at the loss."""

    def __init__(self, tf):
        self.tf = tf

    def check(self) -> None:
        pass

    def _context(self):
        ctx = self.tf.distribute.get_replica_context()
        return None if ctx is None or ctx.num_replicas_in_sync == 1 else ctx

    def sum(self, x, dev=None):
        tf = self.tf
        x = tf.convert_to_tensor(x)
        ctx = self._context()
        if ctx is None:
            return x
        if not x.dtype.is_floating:
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, x)

        @tf.custom_gradient
        def all_sum(t):
            def grad(dy):
                return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(dy))

            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, t), grad

        return all_sum(x)

    def _gathered(self, x, reduce):
        # tf.distribute.ReduceOp has only SUM and MEAN: gather every replica's value and reduce.
        tf = self.tf
        x = tf.stop_gradient(tf.convert_to_tensor(x))
        ctx = self._context()
        return x if ctx is None else reduce(ctx.all_gather(x[None], axis=0), axis=0)

    def max(self, x, dev=None):
        return self._gathered(x, self.tf.reduce_max)

    def min(self, x, dev=None):
        return self._gathered(x, self.tf.reduce_min)

    def finish(self, loss):
        tf = self.tf
        ctx = self._context()
        if ctx is None:
            return loss
        replicas = ctx.num_replicas_in_sync

        @tf.custom_gradient
        def per_replica_share(t):
            return tf.identity(t), lambda dy: dy / replicas

        return per_replica_share(loss)


# How many traced graphs an eager loss keeps (per shape, dtype and static argument): a param
# given as a new Python number at each call (a schedule) or ever-new shapes trace again, but do
# not grow memory without bound.
EAGER_GRAPHS_KEPT = 64


class TensorflowBackend(Backend):
    name = "tensorflow"
    aliases = ("tf",)
    framework = "tensorflow"
    printer = TensorflowPrinter
    dynamic_sizes = True

    def load(self) -> None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        self.tf = tf
        self.rt = _runtime(tf)
        self.float32, self.float64, self.int_dtype = tf.float32, tf.float64, tf.int64
        self._consts: dict[tuple, Any] = {}
        self.loaded = True

    def cast(self, x, dtype):
        return self.tf.cast(x, dtype)

    def sum(self, x):
        return self.tf.reduce_sum(x)

    def mean(self, x):
        return self.tf.reduce_mean(x)

    def nonzero(self, b):
        return self.tf.where(self.tf.equal(b, 0), self.tf.ones_like(b), b)

    def count(self, x):
        return self.tf.cast(self.tf.shape(x)[0], x.dtype)

    def is_tensor(self, x: Any) -> bool:
        return self.tf.is_tensor(x)

    def value_range(self, x: Any) -> tuple[int, int] | None:
        tf = self.tf
        if not tf.executing_eagerly() or not hasattr(x, "numpy") or x.shape.num_elements() == 0:
            return None  # inside a tf.function: the graph's own gather checks (on CPU) remain
        if x.device.endswith("CPU:0"):  # in host memory: read where it lies, no op dispatched
            a = x.numpy()
            return int(a.min()), int(a.max())
        lo, hi = tf.stack((tf.reduce_min(x), tf.reduce_max(x))).numpy().tolist()
        return int(lo), int(hi)

    def host_values(self, x: Any) -> Any:
        import numpy as np

        tf = self.tf
        if not isinstance(x, tf.Tensor):
            return super().host_values(x)
        if not tf.executing_eagerly() or not hasattr(x, "numpy"):
            return None
        return np.asarray(tf.cast(x, tf.float64).numpy() if x.dtype.is_floating else x.numpy())

    def drops_assertions(self) -> bool:
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(self.tf.compat.v1.get_default_graph()))

    def traced_index_check(self, x, size, message, check):
        # A graph assertion that the gather depends on (else the gather's own error may come
        # first). XLA (jit_compile=True) drops assertions: there the check cannot run.
        tf = self.tf
        lo, hi = tf.reduce_min(x), tf.reduce_max(x)
        size = tf.cast(size, x.dtype)  # a dynamic size is an int32 tensor; ids may be int64
        ok = tf.logical_or(tf.equal(tf.size(x), 0), tf.logical_and(lo >= 0, hi < size))
        asserted = tf.debugging.Assert(ok, [f"{message}; smallest", lo, "largest", hi], summarize=1)
        with tf.control_dependencies([asserted]):
            return tf.identity(x)

    def traced_index_guard(self, x, size, message, flags):
        # In a graph the assertion runs and says E812; XLA (jit_compile=True, Keras's default
        # for `fit`) drops it, and its gathers clamp: there the flag turns the loss into NaN.
        if not self.drops_assertions():
            return self.traced_index_check(x, size, message, None)
        tf = self.tf
        ok = tf.logical_and(x >= 0, x < tf.cast(size, x.dtype))
        flags.append(tf.reduce_all(ok))
        return tf.where(ok, x, tf.zeros_like(x))

    def guard_indices(self, loss, flags, dist=None, dev=None):
        tf = self.tf
        ok = tf.reduce_all(tf.stack(flags))
        if dist is not None:  # the same flag on every replica
            ok = dist.min(tf.cast(ok, tf.int32), dev) > 0
        return tf.where(ok, loss, tf.constant(float("nan"), loss.dtype))

    def asarray(self, x: Any) -> Any:
        return self.tf.convert_to_tensor(self._host(x))

    def dtype_kind(self, x: Any) -> str:
        dt = x.dtype
        if dt.is_floating:
            return "float"
        if dt.is_integer:
            return "int"
        if dt.is_bool:
            return "bool"
        return "other"

    def dtype_name(self, x: Any) -> str:
        return x.dtype.name

    def dynamic_size(self, x: Any, axis: int) -> Any:
        return self.tf.shape(x)[axis]

    def const(self, value, dtype):
        """A cached constant, made eagerly even when first asked for inside a tf.function."""
        key = (value, dtype)
        t = self._consts.get(key)
        if t is None:
            with self.tf.init_scope():
                t = self.tf.constant(value, dtype=dtype)
            self._consts[key] = t
        return t

    def constant(self, value, kind, cdt, like):
        # Made eagerly even when first asked for inside a tf.function: it is cached across calls.
        if self.tf.is_tensor(value) and not hasattr(value, "numpy"):
            return super().constant(value, kind, cdt, like)  # a symbolic tensor: not ours to cache
        with self.tf.init_scope():
            return super().constant(value, kind, cdt, like)

    def value_and_grads(self, fn, args, preds):
        with self.tf.GradientTape() as tape:
            for p in preds:
                tape.watch(args[p])
            out = fn(**args)
            total = self.tf.reduce_sum(out)
        return out, dict(zip(preds, tape.gradient(total, [args[p] for p in preds])))

    def wrap_entry(self, fn):
        # Plain Python checks on static shapes: autograph has nothing to convert there.
        return self.tf.autograph.experimental.do_not_convert(fn)

    def wrap_compute(self, fn, static_args, *, sharded: bool = False):
        """The compute of an eager call run as one graph: one dispatch on the tape, where op by op
        each operation and each operation of its gradient is a dispatch of its own, most of an
        eager call's time at a loss's usual sizes. A graph is traced once per shape and dtype of
        the tensors and per value of the static arguments (the last `len(static_args)` of the
        call: the compute dtype, sizes, params given as Python numbers), and kept; a call is one
        dictionary lookup away from it (a `tf.function`'s own dispatch binds and canonicalises
        every argument, which costs about what a small loss's graph does). A call with a
        variable among its tensors takes a `tf.function`. Inside a caller's `tf.function`
        (Keras's `fit`, `jit_compile=True`) the plain compute is traced into the caller's graph.
        A sharded loss is left to the caller: its collectives run in the strategy's replica context."""
        tf = self.tf
        plain = tf.autograph.experimental.do_not_convert(fn)
        if sharded:
            return plain
        statics, traced = len(static_args), tf.function(plain, autograph=False)
        graphs: dict[tuple, Any] = {}
        eager_tensor = type(tf.constant(0))

        def compute(*args, **kwargs):
            if not tf.executing_eagerly():
                return plain(*args, **kwargs)
            split = len(args) - statics
            tensors, static = args[:split], args[split:]
            if kwargs or not all(type(x) is eager_tensor for x in tensors):
                return traced(*args, **kwargs)
            key = (static, tuple((tuple(x.shape), x.dtype) for x in tensors))
            try:
                graph = graphs.get(key)
            except TypeError:  # a static argument that is no dictionary key
                return traced(*args)
            if graph is None:

                def run(*tensors):
                    return plain(*tensors, *static)

                if len(graphs) >= EAGER_GRAPHS_KEPT:  # many shapes or param values: the oldest goes
                    del graphs[next(iter(graphs))]
                graph = graphs[key] = tf.function(run, autograph=False).get_concrete_function(*tensors)
            return graph(*tensors)

        return compute

    def collectives(self, group=None, *, source_name: str = ""):
        return TensorflowCollectives(self.tf)

    def namespace(self) -> dict[str, Any]:
        tf = self.tf
        return {"tf": tf, "rt": self.rt, "_k": self.const, "_INT": tf.int64, "_BOOL": tf.bool}
