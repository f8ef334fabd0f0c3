"""PyTorch. Its own ops already follow most of docs/language.md §4 (abs, relu, clamp at the
bounds, maximum ties, amax ties, vector_norm at 0); the printer only has to keep
literals as tensors where torch wants tensors, and group ops it lacks (segment
sums). Importing this module does not import torch; `TorchBackend.load()` does."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from lossdsl import lm_head as lm_head_settings
from lossdsl.ir import Apply, Const, DimSize, Gather, Index, Node, SliceItem

from .base import Backend, LocalCollectives, Printer, same_padding

if TYPE_CHECKING:
    from lossdsl.codegen import DerivedBackward


class TorchPrinter(Printer):
    backend = "torch"
    imports = ("import torch", "import torch.nn.functional as F")
    AXIS_KW = "dim"
    KEEPDIMS_KW = "keepdim"
    # torch.where and torch.clamp take Python numbers; the rest want tensors.
    SCALAR_OK = {"where": frozenset({"a", "b"})}
    #: the generated compute may be an autograd.Function with a derived backward (lossdsl/autodiff.py)
    FUSED_BACKWARD = True
    NUMBER_EXPONENTS = True
    API_MEAN_WHEN_MERGED = True
    SPLITS_COLUMNS = True
    ONES_ON_TAPE = "torch.where(torch.zeros_like({x}, dtype=torch.bool), {x}, 1.0)"
    FUNCTIONS = {
        "abs": "torch.abs({x})",
        "sign": "torch.sign({x})",
        "square": "torch.square({x})",
        "relu": "torch.relu({x})",
        "exp": "torch.exp({x})",
        "expm1": "torch.expm1({x})",
        "log": "torch.log({x})",
        "log1p": "torch.log1p({x})",
        "sqrt": "torch.sqrt({x})",
        "sin": "torch.sin({x})",
        "cos": "torch.cos({x})",
        "tanh": "torch.tanh({x})",
        "cosh": "torch.cosh({x})",
        "sinh": "torch.sinh({x})",
        "acos": "torch.acos({x})",
        "asin": "torch.asin({x})",
        "atan": "torch.atan({x})",
        "atan2": "torch.atan2({y}, {x})",  # gradient 0 at the origin already (§4)
        "isnan": "torch.isnan({x})",
        "isfinite": "torch.isfinite({x})",
        "sigmoid": "torch.sigmoid({x})",
        "log_sigmoid": "F.logsigmoid({x})",
        "softplus": "F.softplus({x})",
        "logaddexp": "rt.logaddexp({a}, {b})",
        "minimum": "torch.minimum({a}, {b})",
        "maximum": "torch.maximum({a}, {b})",
        "where": "torch.where({cond}, {a}, {b})",
        "sum": "torch.sum({x}{reduce_kw})",
        "mean": "torch.mean({x}{reduce_kw})",
        "max": "torch.amax({x}, dim={axes}, keepdim={keepdims})",
        "min": "torch.amin({x}, dim={axes}, keepdim={keepdims})",
        "prod": "rt.prod({x}, {axes}, {keepdims})",
        "logsumexp": "torch.logsumexp({x}, dim={axes}, keepdim={keepdims})",
        "var": "torch.var({x}, dim={axes}, correction={ddof}, keepdim={keepdims})",
        "std": "torch.std({x}, dim={axes}, correction={ddof}, keepdim={keepdims})",
        "norm": "torch.linalg.vector_norm({x}, ord={p}, dim={axes}, keepdim={keepdims})",
        "argmax": "torch.argmax({x}, dim={axis0}, keepdim={keepdims})",
        "argmin": "torch.argmin({x}, dim={axis0}, keepdim={keepdims})",
        "softmax": "torch.softmax({x}, dim={axis})",
        "log_softmax": "torch.log_softmax({x}, dim={axis})",
        "cumsum": "torch.cumsum({x}, dim={axis})",
        "cumprod": "torch.cumprod({x}, dim={axis})",
        "logcumsumexp": "torch.logcumsumexp({x}, dim={axis})",
        "sort": "torch.sort({x}, dim={axis}, stable=True).values",
        "argsort": "torch.argsort({x}, dim={axis}, stable=True)",
        "topk": "rt.topk({x}, {k}, {axis})",
        "argtopk": "rt.argtopk({x}, {k}, {axis})",
        "pick": "torch.gather({x}, -1, torch.unsqueeze({idx}, -1)).squeeze(-1)",
        "one_hot": "(torch.unsqueeze({idx}, -1) == torch.arange({depth}, device=_dev)).to(_cdt)",
        "arange": "torch.arange({size}, device=_dev)",
        "eye": "torch.eye({size}, dtype=_cdt, device=_dev)",
        "diag": "torch.diag_embed({x})",
        "dot": "torch.sum(torch.mul({a}, {b}), dim={axis})",
        "transpose": "torch.transpose({x}, -1, -2)",
        "permute": "torch.permute({x}, {perm})",
        "concat": "torch.cat({xs}, dim={axis})",
        "stack": "torch.stack({xs}, dim={axis})",
        "flatten": "torch.flatten({x}, {start}, {end})",
        "unflatten": "torch.unflatten({x}, {axis}, {sizes})",
        "segment_sum": "rt.segment_sum({v}, {ids}, {groups})",
        "ctc_loss": "rt.ctc_loss({log_probs}, {labels}, {input_lengths}, {label_lengths}, {blank})",
        "segment_mean": "rt.segment_mean({v}, {ids}, {groups})",
        "conv1d": "rt.conv({x}, {w}, {stride}, {same})",
        "conv2d": "rt.conv({x}, {w}, {stride}, {same})",
        "avg_pool2d": "rt.avg_pool2d({x}, {kernel}, {stride})",
        "ones_like": "torch.ones_like({x}, dtype={dtype})",
        "stop_gradient": "{x_p}.detach()",
        "and": "torch.logical_and({a}, {b})",
        "or": "torch.logical_or({a}, {b})",
        "not": "torch.logical_not({x})",
        "floor": "torch.floor({x})",
        "ceil": "torch.ceil({x})",
        "round": "torch.round({x})",
        "cast_float": "{x_p}.to(_cdt)",
        "cast_int": "{x_p}.to(torch.int64)",
    }
    # A size is a Python int, which has no `.to`.
    SIZE_CASTS = {"cast_float": "_k(float({x}), _cdt, _dev)", "cast_int": "int({x})"}

    def const_arg(self, const, node: Apply) -> str:
        # A cached 0-d tensor on the loss's device: torch.maximum(x, 0.0) is not allowed.
        return f"_k({self._p(const)[0]}, {self.dtype_name(const.type.dtype)}, _dev)"

    def _fn_pad(self, node: Apply) -> str:
        # F.pad lists (before, after) from the last axis backwards
        flat = [w for lo_hi in reversed(node.attr("widths")) for w in lo_hi]
        return f"F.pad({self.expr(node.args[0])}, {tuple(flat)!r})"

    def _fn_clip(self, node: Apply) -> str:
        x, lo, hi = node.args
        if isinstance(lo, Const) and isinstance(hi, Const) and not isinstance(x, (Const, DimSize)):
            return f"torch.clamp({self.expr(x)}, {self.expr(lo)}, {self.expr(hi)})"  # bounds as numbers
        f = self.fields(node)
        return f"torch.clamp({f['x']}, {f['lo']}, {f['hi']})"

    # ---- fused losses (lossdsl/kernels.py); their gradients meet docs/language.md §4 at the kinks ----
    KERNELS = {
        "mse": {"mean", "none"},
        "l1": {"mean", "none"},
        "huber": {"mean", "none"},
        "smooth_l1": {"mean", "none"},
        "bce_logits": {"mean", "none"},
        "nll": {"mean", "none", "weighted_mean"},
        "soft_ce": {"none"},
        "lm_head": {"stats", "reduced"},
        "ce": {"mean"},
        "weighted_ce": {"mean"},
    }

    @staticmethod
    def _reduction(node: Apply) -> str:
        return "" if node.attr("reduction") == "mean" else ", reduction='none'"

    def _kernel_mse(self, node, a, b):
        return f"F.mse_loss({a}, {b}{self._reduction(node)})"

    def _kernel_l1(self, node, a, b):
        return f"F.l1_loss({a}, {b}{self._reduction(node)})"

    def _positive_knot(self, node: Apply, call: str, a: str, b: str, kw: str) -> str:
        # F.huber_loss and F.smooth_l1_loss take the knot as a Python number, and only > 0.
        k = self.hyper_number(node, 0)
        fused = f"{call}({a}, {b}{self._reduction(node)}, {kw}={k})"
        conditions = [f"{k} is not None", f"{k} > 0"] if self.hyper_is_param(node, 0) else []
        return self.fused_or_decomposed(node, fused, conditions)

    def _kernel_huber(self, node, a, b, delta):
        return self._positive_knot(node, "F.huber_loss", a, b, "delta")

    def _kernel_smooth_l1(self, node, a, b, beta):
        return self._positive_knot(node, "F.smooth_l1_loss", a, b, "beta")

    def _kernel_bce_logits(self, node, z, y, pos_weight=None):
        call = f"F.binary_cross_entropy_with_logits({z}, {y}{self._reduction(node)}"
        if pos_weight is None:
            return call + ")"
        return self.unless_one(node, 0, call + ")", f"{call}, pos_weight={pos_weight})")

    def _kernel_soft_ce(self, node, z, y):
        return f"F.cross_entropy({z}, {y}, reduction='none')"  # y: probabilities per class

    def _kernel_nll(self, node, z, y, w=None):
        if node.attr("reduction") == "weighted_mean":
            return f"F.cross_entropy({z}, {y}, weight={w})"
        if node.attr("reduction") == "mean":
            return f"F.cross_entropy({z}, {y})"
        # Per sample under torch.compile, the decomposed form: inductor sums the gradient of
        # F.cross_entropy's one-hot over the classes with the row's whole gradient computed again
        # for each class; the gradient of the decomposed form's gather is a scatter into zeros,
        # read once (softmax_focal, 1024 x 250: the backward graph 1.4x the hand-written form's).
        decomposed = self._p(node.attr("decomposed"))[0]
        return f"({decomposed} if torch.compiler.is_compiling() else F.cross_entropy({z}, {y}, reduction='none'))"

    def _kernel_ce(self, node, z, y, ls, ignore=None):
        # torch computes no smoothing term when label_smoothing is 0, and takes both as numbers.
        n_ls = self.hyper_number(node, 0)
        conditions = [f"{n_ls} is not None", f"0.0 <= {n_ls} <= 1.0"] if self.hyper_is_param(node, 0) else []
        smoothing = "" if n_ls == "0.0" else f", label_smoothing={n_ls}"
        if not node.attr("ignore"):
            return self.fused_or_decomposed(node, f"F.cross_entropy({z}, {y}{smoothing})", conditions)
        n_k = self.hyper_number(node, 1)
        if self.hyper_is_param(node, 1):
            conditions.append(f"{n_k} is not None")
        # torch's own mean over the labels not ignored; 0, not torch's NaN, when every label is
        # ignored (docs/language.md §6): the `where` passes the mean a zero gradient there, and
        # torch's backward leaves every ignored row at 0. Not `reduction='sum'` over the count:
        # with smoothing, torch.compile makes a backward kernel half as fast of that form.
        fused = (
            f"torch.where(torch.sum({y} != {n_k}) > 0, F.cross_entropy({z}, {y}, ignore_index={n_k}{smoothing}), 0.0)"
        )
        return self.fused_or_decomposed(node, fused, conditions)

    def _kernel_weighted_ce(self, node, z, y, w, seen, total, ls, ignore):
        # Over the weights of the labels seen, 0 (not torch's NaN) where none is: the division's
        # operand is 1 there, so its gradient is 0 too (docs/language.md §6).
        n_ls, n_k = self.hyper_number(node, 0), self.hyper_number(node, 1)
        conditions = [f"{n_ls} is not None", f"0.0 <= {n_ls} <= 1.0"] if self.hyper_is_param(node, 0) else []
        if self.hyper_is_param(node, 1):
            conditions.append(f"{n_k} is not None")
        smoothing = "" if n_ls == "0.0" else f", label_smoothing={n_ls}"
        fused = (
            f"torch.where({total} > 0.0, F.cross_entropy({z}, {y}, weight={w}, ignore_index={n_k}{smoothing},"
            f" reduction='sum') / torch.where({total} > 0.0, {total}, 1.0), 0.0)"
        )
        return self.fused_or_decomposed(node, fused, conditions)

    # ---- the backward of a derived gradient (lossdsl/autodiff.py) ----
    def derived_compute(self, plan: DerivedBackward) -> list[str]:
        # An autograd.Function: the forward records no tape and saves only what the backward reads.
        fw = [
            *plan.forward,
            f"rt.save(ctx, {_tuple(plan.saved)}, ({', '.join(plan.tensors)},))",
            f"ctx.shapes = {_tuple([f'{n}.shape' for n in plan.shaped])}",
            f"ctx.statics = ({', '.join(plan.statics)},)",
            f"return {plan.out}",
        ]
        bw = [
            "if torch.is_grad_enabled():  # a graph of the gradient is asked for: differentiate the plain compute",
            f"    return rt.plain_backward(ctx, _plain, {plan.seed})",
        ]
        if plan.saved:
            bw.append(f"{_tuple(plan.saved)[1:-1]} = rt.saved(ctx)")
        if plan.shape_vars:
            bw.append(f"{_tuple(plan.shape_vars)[1:-1]} = ctx.shapes")
        bw.append(f"{', '.join(plan.statics)}, = ctx.statics")
        bw += [*plan.backward, f"return {', '.join(plan.grads + ['None'] * len(plan.statics))}"]
        params = ", ".join(plan.params)
        pred_elements = " + ".join(f"{p}.numel()" for p in plan.preds)
        return [
            "class _Loss(torch.autograd.Function):",
            "    # Forward without a tape; the backward derived from the IR at compile time (lossdsl/autodiff.py).",
            "    @staticmethod",
            f"    def forward(ctx, {params}):",
            *("        " + line for line in fw),
            "",
            "    @staticmethod",
            f"    def backward(ctx, {plan.seed}):",
            *("        " + line for line in bw),
            "",
            "",
            f"def compute({params}):",
            f"    if {pred_elements} < {plan.min_elements} or rt.transformed({plan.preds[0]}):",
            "        # small: the Python backward costs more than it saves; under torch.func: its own autograd",
            f"        return _plain({params})",
            f"    return _Loss.apply({params})",
        ]

    #: the backward's names for the shapes of forward values (set by lossdsl/codegen.py)
    shape_names: dict[int, str] = {}

    def shape_of(self, x) -> str:
        name = self.shape_names.get(id(x))
        return name if name is not None else f"{self.fields_of(x)}.shape"

    def fields_of(self, x) -> str:
        text, prec = self._p(x)
        return text if prec >= 100 else f"({text})"

    def _fn_sum_to(self, node: Apply) -> str:
        g, x = node.args
        return f"{self.fields_of(g)}.sum_to_size({self.shape_of(x)})"

    def _fn_relu_grad(self, node: Apply) -> str | tuple[str, int]:
        # a select (torch.where) would be many times slower on the CPU
        return self._fused_grad(node, "threshold_backward", ", 0.0") or super()._fn_relu_grad(node)

    def _fn_sigmoid_grad(self, node: Apply) -> str | tuple[str, int]:
        return self._fused_grad(node, "sigmoid_backward") or super()._fn_sigmoid_grad(node)

    def _fn_tanh_grad(self, node: Apply) -> str | tuple[str, int]:
        return self._fused_grad(node, "tanh_backward") or super()._fn_tanh_grad(node)

    def _fused_grad(self, node: Apply, op: str, extra: str = "") -> str | None:
        # torch's own backward kernel of the function (one pass), where g is a tensor of the
        # shape of the value it reads (x for relu, y for sigmoid and tanh)
        g, v = node.args
        if g.type.shape != v.type.shape or isinstance(g, Const):
            return None
        return f"torch.ops.aten.{op}({self.expr(g)}, {self.expr(v)}{extra})"

    def _fn_unreduce(self, node: Apply) -> str:
        g, x = node.args
        return f"rt.unreduce({self.expr(g)}, {node.attr('axis')!r}, {node.attr('keepdims')!r}, {self.shape_of(x)})"

    def _fn_index_grad(self, node: Apply) -> str:
        g, x = node.args
        items = ", ".join(
            "None"
            if it is None
            else f"slice({it.start}, {it.stop}, {it.step})"
            if isinstance(it, SliceItem)
            else str(it)
            for it in node.attr("items")
        )
        return f"rt.index_grad({self.expr(g)}, {self.shape_of(x)}, ({items},))"

    def api_mean_choice(self, preds: list[str], min_elements: int, one_mean: str, per_sample: str) -> str:
        # Eager, from `min_elements` on, the derived backward of the per-sample compute is faster
        # than autograd of one mean (squared_hinge at 1M elements: 0.74x of the hand-written form
        # against 0.99x); under torch.compile one mean is (inductor keeps what the per-sample mean
        # reads for the second: hinge_embedding 1.2x of F.hinge_embedding_loss against 1.0x).
        small = f"{' + '.join(f'{p}.numel()' for p in preds)} < {min_elements}"
        return f"{one_mean} if {small} or torch.compiler.is_compiling() else torch.mean({per_sample})"

    def split_columns(self, x: str, size: int) -> str:
        # The gradient of one `unbind` is one `stack`; each `x[:, k]`'s is a zero tensor of x's
        # size with its column set, and inductor sums those in a loop over the columns that
        # recomputes every column's gradient expression (giou under torch.compile: twice the
        # backward time of the `stack`).
        return f"{x}.unbind(-1)"

    def _print_Gather(self, node: Gather) -> tuple[str, int]:
        # `x[arange(B)[:, None, None], order, arange(C)]` (numpy's take_along_axis) is one
        # torch.gather: advanced indexing broadcasts every index into a tensor of the output's
        # size first and differentiates through index_put with accumulation.
        axis = _along_one_axis(node)
        if axis is None:
            return super()._print_Gather(node)
        return f"torch.gather({self.expr(node.x)}, {axis}, {self.expr(node.indices[axis])})", 100


def _along_one_axis(node: Gather) -> int | None:
    """The axis a gather reads along, where every other index is `arange` of its own axis laid
    along that axis and this one index has the output's shape; None for any other gather."""
    shape = node.x.type.shape
    rank = len(shape)
    if len(node.indices) != rank:
        return None
    along = [d for d, idx in enumerate(node.indices) if not _arange_along(idx, d, shape)]
    if len(along) != 1 or tuple(node.indices[along[0]].type.shape) != tuple(node.type.shape):
        return None
    return along[0]


def _arange_along(idx: Node, axis: int, shape) -> bool:
    """`idx` is `arange(shape[axis])`, broadcast (right-aligned, or by `None`s) along `axis` only."""
    base = idx.x if isinstance(idx, Index) else idx
    if isinstance(idx, Index) and not all(it is None or it == SliceItem(None, None, None) for it in idx.items):
        return False
    if not (isinstance(base, Apply) and base.fn == "arange"):
        return False
    dims = idx.type.shape
    if len(dims) > len(shape):
        return False
    laid = [None] * (len(shape) - len(dims)) + list(dims)  # None: an axis the broadcast adds
    return laid[axis] == shape[axis] and all(
        d is None or (d.is_literal and d.value == 1) for i, d in enumerate(laid) if i != axis
    )


def _tuple(names: list[str]) -> str:
    """A tuple display of names: `()`, `(a,)`, `(a, b)`."""
    return f"({', '.join(names)}{',' if len(names) == 1 else ''})"


def _runtime(torch) -> types.SimpleNamespace:
    def logaddexp(a, b):
        # torch.logaddexp's second derivative is NaN where one operand is -inf (its backward
        # divides by 1 + e^inf). Shifted by the larger operand held constant (0 where it is not
        # finite), every derivative stays finite; where both are -inf the log reads 1, so the
        # value is -inf with derivatives 0 (docs/language.md §4).
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        m = torch.maximum(a, b).detach()
        m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
        s = torch.exp(a - m) + torch.exp(b - m)
        empty = s == 0
        return m + torch.log(torch.where(empty, torch.ones_like(s), s)) + torch.where(empty, float("-inf"), 0.0)

    def prod(x, axes, keepdims):
        # torch.prod reduces one dim at a time; go from the last so indices stay valid.
        for a in sorted((axes,) if isinstance(axes, int) else axes, reverse=True):
            x = torch.prod(x, dim=a, keepdim=keepdims)
        return x

    def segment_sum(v, ids, groups):
        flat_ids = ids.reshape(-1)
        tail = tuple(v.shape[ids.dim() :])
        flat_v = v.reshape((-1,) + tail)
        keep = (flat_ids >= 0) & (flat_ids < groups)  # ids outside [0, G) are dropped
        safe_ids = torch.where(keep, flat_ids, torch.zeros_like(flat_ids))
        kept = torch.where(keep.reshape((-1,) + (1,) * len(tail)), flat_v, torch.zeros_like(flat_v))
        return flat_v.new_zeros((groups,) + tail).index_add(0, safe_ids, kept)

    def ctc_alpha(lp, labels, input_lengths, label_lengths, blank):
        # The CTC forward recursion over `blank l1 blank ... lL blank` on normalised scores, by
        # autograd to any order; a large finite log 0 keeps unreachable states' gradients 0.
        none = torch.tensor(-1e30, dtype=lp.dtype, device=lp.device)
        blanks = torch.full_like(labels, blank)
        ext = torch.cat([torch.stack([blanks, labels], dim=2).reshape(labels.shape[0], -1), blanks[:, :1]], dim=1)
        emit = torch.gather(lp, 2, ext[:, None, :].expand(-1, lp.shape[1], -1))  # [B, T, S]
        earlier = torch.cat([ext[:, :2], ext[:, :-2]], dim=1)
        skip = (ext != blank) & (ext != earlier)
        states = torch.arange(ext.shape[1], device=lp.device)
        alpha = torch.where(states[None, :] < 2, emit[:, 0], none)
        for t in range(1, lp.shape[1]):
            one = torch.cat([none.expand(alpha.shape[0], 1), alpha[:, :-1]], dim=1)
            two = torch.cat([none.expand(alpha.shape[0], 2), alpha[:, :-2]], dim=1)
            stay_or_next = logaddexp(alpha, one)
            moved = torch.where(skip, logaddexp(stay_or_next, two), stay_or_next) + emit[:, t]
            alpha = torch.where((t < input_lengths)[:, None], moved, alpha)
        end = alpha.gather(1, (2 * label_lengths)[:, None])[:, 0]
        before = alpha.gather(1, (2 * label_lengths - 1).clamp(min=0)[:, None])[:, 0]
        loss = -logaddexp(end, torch.where(label_lengths > 0, before, none))
        return torch.where(input_lengths > 0, loss, torch.zeros_like(loss))  # no steps, no labels: p = 1

    def ctc_loss(log_probs, labels, input_lengths, label_lengths, blank):
        # The scores normalised as TF and optax do. F.ctc_loss's gradient cannot be differentiated
        # again (`create_graph=True` raises), so the recursion runs here, to any order (its value
        # and gradient are F.ctc_loss's: tests/test_std.py). A sample no alignment fits is run
        # with no labels (always fits) and gets inf, with gradient 0 (docs/language.md §3).
        within = torch.arange(labels.shape[1], device=labels.device)[None, :] < label_lengths[:, None]
        repeats = ((labels[:, 1:] == labels[:, :-1]) & within[:, 1:]).sum(dim=1)
        unfit = (input_lengths < label_lengths + repeats) | ((labels == blank) & within).any(dim=1)
        fitted = torch.where(unfit, torch.zeros_like(label_lengths), label_lengths)
        loss = ctc_alpha(torch.log_softmax(log_probs, dim=-1), labels, input_lengths, fitted, blank)
        return torch.where(unfit, float("inf"), loss)

    def scan(step, init, xs, captured, axes, keep_all):
        # a loop over the scanned axis, differentiated by autograd (docs/language.md §3, `scan`)
        carry, carries = init, []
        for t in range(xs[0].shape[axes[0]]):
            carry = step(carry, tuple(x.select(k, t) for x, k in zip(xs, axes)), captured)
            carries.append(carry)
        if keep_all:
            return torch.stack(carries) if carries else init.new_zeros((0,) + tuple(init.shape))
        return carry

    def segment_mean(v, ids, groups):
        total = segment_sum(v, ids, groups)
        count = segment_sum(torch.ones(ids.shape, dtype=v.dtype, device=v.device), ids, groups)
        count = count.reshape(count.shape + (1,) * (total.dim() - 1))
        return total / torch.clamp(count, min=1.0)

    def argtopk(x, k, axis):
        # torch.topk promises no order among ties: the first k of a stable descending sort.
        return torch.argsort(x, dim=axis, descending=True, stable=True).narrow(axis, 0, k)

    def topk(x, k, axis):
        return torch.take_along_dim(x, argtopk(x, k, axis), dim=axis)

    def conv(x, w, stride, same):
        # The zeros of `padding=same` padded here: F.conv2d's own "same" takes no stride.
        n = x.dim() - 2
        if same:
            pads = [same_padding(x.shape[2 + i], w.shape[2 + i], stride) for i in reversed(range(n))]
            x = torch.nn.functional.pad(x, [p for pair in pads for p in pair])
        conv_nd = torch.nn.functional.conv1d if n == 1 else torch.nn.functional.conv2d
        return conv_nd(x, w, stride=stride, groups=x.shape[1] // w.shape[1])

    def avg_pool2d(x, kernel, stride):
        # F.avg_pool2d wants [N, C, H, W]: the axes before H and W as one
        h, w = x.shape[-2:]
        out = torch.nn.functional.avg_pool2d(x.reshape(-1, 1, h, w), kernel, stride)
        return out.reshape(x.shape[:-2] + out.shape[-2:])

    def unreduce(g, axes, keepdims, shape):
        if not keepdims:
            for a in sorted(axes):
                g = g.unsqueeze(a)
        return g.expand(shape)

    def index_grad(g, shape, items):
        out = g.new_zeros(shape)
        out[items] = g
        return out

    # The derived backward (an autograd.Function) keeps the forward's arguments as well as the
    # values its backward reads: when a graph of the gradient is asked for (double backward,
    # create_graph=True), it differentiates the plain compute from those arguments instead, so
    # higher derivatives are those of PyTorch's own autograd at every size.
    def save(ctx, saved, leaves):
        tensors = [x for x in leaves if isinstance(x, torch.Tensor)]
        ctx.save_for_backward(*saved, *tensors)
        ctx.n_saved = len(saved)
        ctx.leaf_kinds = tuple(x if not isinstance(x, torch.Tensor) else _TENSOR for x in leaves)

    def transformed(x):
        """Under torch.func (vmap, grad, jacrev...), which an autograd.Function with a Python
        backward does not join: the plain compute is used there. Under torch.compile, a constant
        False, so that dynamo does not break the graph on a builtin it cannot trace."""
        if torch.compiler.is_compiling():
            return False
        return torch._C._functorch.is_functorch_wrapped_tensor(x)

    def saved(ctx):
        return ctx.saved_tensors[: ctx.n_saved]

    def plain_backward(ctx, plain, g):
        tensors = iter(ctx.saved_tensors[ctx.n_saved :])
        args = [next(tensors) if k is _TENSOR else k for k in ctx.leaf_kinds] + list(ctx.statics)
        wants = ctx.needs_input_grad
        inputs = [a for a, w in zip(args, wants) if w]
        with torch.enable_grad():
            out = plain(*args)
            grads = iter(torch.autograd.grad(out, inputs, g, create_graph=True, materialize_grads=True))
        return tuple(next(grads) if w else None for w in wants)

    return types.SimpleNamespace(
        logaddexp=logaddexp,
        prod=prod,
        segment_sum=segment_sum,
        segment_mean=segment_mean,
        ctc_loss=ctc_loss,
        scan=scan,
        unreduce=unreduce,
        argtopk=argtopk,
        topk=topk,
        conv=conv,
        avg_pool2d=avg_pool2d,
        index_grad=index_grad,
        save=save,
        saved=saved,
        plain_backward=plain_backward,
        transformed=transformed,
        **_lm_head_runtime(torch),  # the language-model head (lossdsl/lm_head.py): lm_head, lm_head_loss
    )


# ---- the language-model head (lossdsl/lm_head.py) ----------------------------------------------


def _reads_row_sums(stats) -> bool:
    return "mean_logp" in stats or "sum_logp" in stats


def _lm_head_runtime(torch):
    """`lm_head(h, W, b, idx, stats, softcap)`: the [N, K] statistics of the logits h @ W^T + b,
    over chunks of the vocabulary from `lm_head.min_logits()` logits, as one autograd.Function
    whose backward recomputes each chunk's logits. A graph of the gradient (create_graph=True)
    and torch.func differentiate the dense statistics instead, so every derivative order is
    PyTorch's own."""

    def logits(h, W, b, softcap, start, stop):
        z = torch.addmm(b[start:stop], h, W[start:stop].T) if b is not None else h @ W[start:stop].T
        return softcap * torch.tanh(z / softcap) if softcap is not None else z

    def dense(h, W, b, idx, stats, softcap):
        v = W.shape[0]
        z = logits(h, W, b, softcap, 0, v)
        lse = torch.logsumexp(z, dim=1)
        picked = torch.gather(z, 1, idx.unsqueeze(1)).squeeze(1) if idx is not None else None
        rowsum = z.sum(dim=1) if ("mean_logp" in stats or "sum_logp" in stats) else None
        logp = picked - lse if picked is not None else None
        return torch.stack(lm_head_settings.columns(stats, lse, logp, rowsum, float(v)), dim=1)

    class Chunked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h, W, b, idx, stats, softcap, step, dist=None):
            n, v = h.shape[0], W.shape[0]
            # A split vocabulary: this replica's classes start at `offset` of `total`.
            offset, total = dist.extent(v, h.device) if dist is not None else (0, v)
            if idx is not None and dist is not None:
                idx = idx - offset
            lse = torch.full((n,), float("-inf"), dtype=h.dtype, device=h.device)
            picked = torch.zeros(n, dtype=h.dtype, device=h.device)
            rowsum = torch.zeros(n, dtype=h.dtype, device=h.device) if _reads_row_sums(stats) else None
            rows = torch.arange(n, device=h.device)
            for start in range(0, v, step):
                z = logits(h, W, b, softcap, start, start + step)
                lse = torch.logaddexp(lse, torch.logsumexp(z, dim=1))  # the online logsumexp
                if rowsum is not None:
                    rowsum += z.sum(dim=1)
                if idx is not None:
                    local = idx - start
                    inside = (local >= 0) & (local < z.shape[1])
                    picked += torch.where(inside, z[rows, local.clamp(0, z.shape[1] - 1)], 0.0)
            if dist is not None:
                lse, summed, rowsum = lm_head_settings.global_statistics(
                    dist, lse, picked if idx is not None else None, rowsum, total, torch.exp, torch.log
                )
                picked = summed if summed is not None else picked
            ctx.save_for_backward(h, W, b, idx, lse)
            ctx.stats, ctx.softcap, ctx.step, ctx.total, ctx.dist = stats, softcap, step, total, dist
            return torch.stack(lm_head_settings.columns(stats, lse, picked - lse, rowsum, float(total)), dim=1)

        @staticmethod
        def backward(ctx, g):
            h, W, b, idx, lse = ctx.saved_tensors[:5]
            stats, softcap, step = ctx.stats, ctx.softcap, ctx.step
            if torch.is_grad_enabled() and ctx.dist is not None:
                raise NotImplementedError(
                    "lossdsl: a language-model head with a split vocabulary (sharded=) has a first "
                    "derivative only; compile without `sharded=` for higher orders"
                )
            if torch.is_grad_enabled():  # a graph of the gradient is asked for: the dense statistics
                wants = ctx.needs_input_grad[:3]
                with torch.enable_grad():
                    inputs = [x for x, w in zip((h, W, b), wants) if w]
                    out = dense(h, W, b, idx, stats, softcap)
                    grads = iter(torch.autograd.grad(out, inputs, g, create_graph=True, materialize_grads=True))
                return (*(next(grads) if w else None for w in wants), None, None, None, None, None)
            n, v = h.shape[0], ctx.total  # the global class count where the vocabulary is split
            col = {k: g[:, i] for i, k in enumerate(stats)}
            zero = torch.zeros(n, dtype=h.dtype, device=h.device)
            g_logp, g_mean, g_sum = (col.get(k, zero) for k in ("logp", "mean_logp", "sum_logp"))
            a = col.get("lse", zero) - g_logp - g_mean - v * g_sum  # the coefficient of softmax
            c = (g_mean / v + g_sum)[:, None]  # the same for every class
            gh = torch.zeros_like(h)
            gW = torch.empty_like(W)
            gb = torch.empty_like(b) if b is not None else None
            a, lse = a[:, None], lse[:, None]
            for start in range(0, W.shape[0], step):
                z = logits(h, W, b, softcap, start, start + step)
                slope = 1.0 - torch.square(z / softcap) if softcap is not None else None
                dz = z.sub_(lse).exp_().mul_(a)  # in place: one chunk-sized buffer
                if _reads_row_sums(stats):
                    dz.add_(c)
                if idx is not None:
                    local = idx - start
                    inside = (local >= 0) & (local < dz.shape[1])
                    hit = torch.where(inside, g_logp, 0.0)[:, None]
                    dz.scatter_add_(1, local.clamp(0, dz.shape[1] - 1)[:, None], hit)
                if slope is not None:
                    dz.mul_(slope)
                gh.addmm_(dz, W[start : start + step])
                torch.mm(dz.T, h, out=gW[start : start + step])
                if gb is not None:
                    torch.sum(dz, dim=0, out=gb[start : start + step])
            if ctx.dist is not None:  # each replica's classes add their part to dh: one all-reduce
                gh = ctx.dist.sum(gh, h.device)
            return gh, gW, gb, None, None, None, None, None

    class Prepared(torch.autograd.Function):
        """The head of a loss whose gradient to each statistic is the same for every token
        (lm_head's `uniform`): the forward runs over chunks of tokens, each with all its classes,
        and keeps what the gradient is made of, so the backward does no matrix product:

            dh = A * (P @ W) + C * sum_v W + G * W[y]      dW = A * (P^T @ h) + C * sum_i h + G * onehot^T h

        with P the softmax and A, C, G the scalars read from the upstream gradient. A gradient
        that turns out not uniform (or a graph of it) takes Chunked's backward instead."""

        @staticmethod
        def forward(ctx, h, W, b, idx, stats, softcap, step, dist=None):
            n, v = h.shape[0], W.shape[0]
            # As many tokens per chunk as the classes of a chunk of Chunked: the same logits' memory.
            rows = max(1, min(n, max(32, n * step // max(v, 1))))
            lse = torch.empty(n, dtype=h.dtype, device=h.device)
            picked = torch.zeros(n, dtype=h.dtype, device=h.device)
            rowsum = torch.empty(n, dtype=h.dtype, device=h.device) if _reads_row_sums(stats) else None
            pw = torch.empty_like(h)  # P @ W
            pth = torch.zeros_like(W)  # P^T @ h
            pcol = torch.zeros_like(b) if b is not None else None  # the column sums of P
            for s in range(0, n, rows):
                hc = h[s : s + rows]
                z = torch.addmm(b, hc, W.T) if b is not None else hc @ W.T
                if rowsum is not None:
                    rowsum[s : s + rows] = z.sum(dim=1)
                if idx is not None:
                    ic = idx[s : s + rows]
                    inside = (ic >= 0) & (ic < v)
                    picked[s : s + rows] = torch.where(inside, z.gather(1, ic.clamp(0, v - 1)[:, None])[:, 0], 0.0)
                m = z.amax(dim=1)
                p = z.sub_(m[:, None]).exp_()  # in place: one chunk-sized buffer
                total = p.sum(dim=1)
                lse[s : s + rows] = m + torch.log(total)
                p.div_(total[:, None])
                pw[s : s + rows] = p @ W
                pth.addmm_(p.T, hc)
                if pcol is not None:
                    pcol += p.sum(dim=0)
            ctx.save_for_backward(h, W, b, idx, lse)
            # Not saved tensors: the backward turns them into the gradients in place, once; a second
            # backward (retain_graph=True) finds them gone and recomputes.
            ctx.prepared = (pw, pth, pcol)
            ctx.stats, ctx.softcap, ctx.step, ctx.total, ctx.dist = stats, None, step, v, None
            return torch.stack(lm_head_settings.columns(stats, lse, picked - lse, rowsum, float(v)), dim=1)

        @staticmethod
        def backward(ctx, g):
            h, W, _, idx, _ = ctx.saved_tensors
            n, v = h.shape[0], W.shape[0]
            prepared, ctx.prepared = ctx.prepared, None
            # The spec's analysis promises a uniform gradient; eager mode checks it all the same
            # (while torch.compile traces, a data-dependent branch would split the graph).
            checked = torch.compiler.is_compiling() or bool((g == g[:1]).all())
            if prepared is None or torch.is_grad_enabled() or n == 0 or not checked:
                return Chunked.backward(ctx, g)
            pw, pth, pcol = prepared
            col = {k: g[0, i] for i, k in enumerate(ctx.stats)}
            zero = torch.zeros((), dtype=h.dtype, device=h.device)
            g_logp, g_mean, g_sum = (col.get(k, zero) for k in ("logp", "mean_logp", "sum_logp"))
            a = col.get("lse", zero) - g_logp - g_mean - v * g_sum  # the coefficient of softmax
            gh, gW = pw.mul_(a), pth.mul_(a)
            gb = pcol.mul_(a) if pcol is not None else None
            if _reads_row_sums(ctx.stats):  # the same for every class
                c = g_mean / v + g_sum
                gh += c * W.sum(dim=0)
                gW += c * h.sum(dim=0)
                if gb is not None:
                    gb += c * n
            if idx is not None:
                inside = (idx >= 0) & (idx < v)
                hit = torch.where(inside, g_logp, 0.0)[:, None]
                gh += hit * W[idx.clamp(0, v - 1)]
                gW.index_add_(0, idx.clamp(0, v - 1), hit * h)
                if gb is not None:
                    gb.index_add_(0, idx.clamp(0, v - 1), hit[:, 0])
            return gh, gW, gb, None, None, None, None, None

    def functorch(x) -> bool:
        """Under torch.func, whose transforms an autograd.Function with a Python backward does not
        join: the dense statistics, with its own autograd. (A constant False while torch.compile
        traces, where the question is a builtin dynamo cannot trace.)"""
        return not torch.compiler.is_compiling() and torch._C._functorch.is_functorch_wrapped_tensor(x)

    def lm_head(h, W, b, idx, stats, softcap, chunk, min_logits, dist=None, uniform=False):
        step = lm_head_settings.plan(h.shape[0], h.shape[1], W.shape[0], chunk, min_logits)
        if uniform and step is not None and dist is None and softcap is None and not functorch(h):
            return Prepared.apply(h, W, b, idx, stats, softcap, step)
        if dist is not None:  # a split vocabulary: below the threshold, one chunk of the local classes
            return Chunked.apply(h, W, b, idx, stats, softcap, step or max(1, W.shape[0]), dist)
        if step is None or functorch(h):
            return dense(h, W, b, idx, stats, softcap)
        return Chunked.apply(h, W, b, idx, stats, softcap, step)

    class Folded(torch.autograd.Function):
        """A head whose per-token loss `token_loss` is summed (lossdsl/lm_head_loss.py): the
        forward runs over chunks of tokens, each with all its classes, evaluates the per-token
        loss and its derivative to the statistics on the chunk, and makes the chunk's part of dh,
        dW and db from its softmax; the backward scales them by the upstream gradient. A graph of
        the gradient, or a second backward of a retained graph, differentiates the statistics
        (Chunked) and the per-token loss instead."""

        @staticmethod
        def forward(ctx, h, W, b, idx, stats, softcap, step, token_loss, per_token, reduction, *captured):
            n, v = h.shape[0], W.shape[0]
            rows = lm_head_settings.token_rows(n, v, step)
            total = torch.zeros((), dtype=h.dtype, device=h.device)
            gh = torch.empty_like(h)
            gW = torch.zeros_like(W)
            gb = torch.zeros_like(b) if b is not None else None
            for s in range(0, n, rows):
                hc = h[s : s + rows]
                z = torch.addmm(b, hc, W.T) if b is not None else hc @ W.T
                slope = None
                if softcap is not None:
                    z = z.div_(softcap).tanh_()
                    slope = 1.0 - torch.square(z)  # the derivative of s * tanh(z / s)
                    z = z.mul_(softcap)
                rowsum = z.sum(dim=1) if _reads_row_sums(stats) else None
                picked, inside = None, None
                if idx is not None:
                    ic = idx[s : s + rows]
                    inside = (ic >= 0) & (ic < v)
                    local = ic.clamp(0, v - 1)
                    picked = torch.where(inside, z.gather(1, local[:, None])[:, 0], 0.0)
                m = z.amax(dim=1)
                p = z.sub_(m[:, None]).exp_()  # in place: one chunk-sized buffer
                norm = p.sum(dim=1)
                lse = m + torch.log(norm)
                p.div_(norm[:, None])
                cols = lm_head_settings.columns(
                    stats, lse, picked - lse if picked is not None else None, rowsum, float(v)
                )
                ks = tuple(c[s : s + rows] if each else c for c, each in zip(captured, per_token))
                loss, grads = token_loss(cols, ks)
                total += torch.sum(loss)
                zero = torch.zeros_like(lse)
                g = {k: (zero + d if d is not None else zero) for k, d in zip(stats, grads)}
                g_logp, g_mean, g_sum = (g.get(k, zero) for k in ("logp", "mean_logp", "sum_logp"))
                dz = p.mul_((g.get("lse", zero) - g_logp - g_mean - v * g_sum)[:, None])  # the coefficient of softmax
                if _reads_row_sums(stats):
                    dz.add_((g_mean / v + g_sum)[:, None])
                if idx is not None:
                    dz.scatter_add_(1, local[:, None], torch.where(inside, g_logp, 0.0)[:, None])
                if slope is not None:
                    dz.mul_(slope)
                torch.mm(dz, W, out=gh[s : s + rows])
                gW.addmm_(dz.T, hc)
                if gb is not None:
                    gb += dz.sum(dim=0)
            ctx.save_for_backward(h, W, b, idx)
            ctx.prepared = (gh, gW, gb)  # not saved tensors: the backward scales them in place, once
            ctx.args = (stats, softcap, step, token_loss, per_token, reduction, captured)
            return total / n if reduction == "mean" else total

        @staticmethod
        def backward(ctx, g):
            h, W, b, idx = ctx.saved_tensors
            stats, softcap, step, token_loss, per_token, reduction, captured = ctx.args
            prepared, ctx.prepared = ctx.prepared, None
            wants = ctx.needs_input_grad[:3]
            if prepared is not None and not torch.is_grad_enabled():
                scale = g / h.shape[0] if reduction == "mean" and h.shape[0] else g
                grads = [x.mul_(scale) if x is not None and w else None for x, w in zip(prepared, wants)]
                return (*grads, *(None,) * (7 + len(captured)))
            create = torch.is_grad_enabled()  # a graph of the gradient is asked for
            with torch.enable_grad():
                inputs = [x for x, w in zip((h, W, b), wants) if w]
                out = reduced_loss(h, W, b, idx, stats, softcap, step, token_loss, per_token, reduction, captured)
                grads = iter(
                    torch.autograd.grad(out, inputs, g, create_graph=create, allow_unused=True, materialize_grads=True)
                )
            return (*(next(grads) if w else None for w in wants), *(None,) * (7 + len(captured)))

    def reduced_loss(h, W, b, idx, stats, softcap, step, token_loss, per_token, reduction, captured):
        """The folded loss as the statistics (chunked, or dense where `step` is None) and the
        per-token loss written out: what the framework differentiates to any order."""
        if step is None or functorch(h):
            out = dense(h, W, b, idx, stats, softcap)
        else:
            out = Chunked.apply(h, W, b, idx, stats, softcap, step)
        loss, _ = token_loss([out[:, i] for i in range(len(stats))], tuple(captured))
        return torch.mean(loss) if reduction == "mean" else torch.sum(loss)

    def lm_head_loss(h, W, b, idx, stats, softcap, token_loss, captured, per_token, reduction, chunk, min_logits):
        step = lm_head_settings.plan(h.shape[0], h.shape[1], W.shape[0], chunk, min_logits)
        if step is None or functorch(h):
            return reduced_loss(h, W, b, idx, stats, softcap, None, token_loss, per_token, reduction, captured)
        return Folded.apply(h, W, b, idx, stats, softcap, step, token_loss, per_token, reduction, *captured)

    def tokens_in_rows(h, idx, captured=(), per_token=()):
        """h of rank 3 or more (the tokens along its leading axes) as [tokens, D], and the labels
        and per-token values read along with it as vectors."""
        flat = tuple(c.reshape(-1) if each else c for c, each in zip(captured, per_token))
        return h.reshape(-1, h.shape[-1]), idx.reshape(-1) if idx is not None else None, flat

    def any_lm_head(h, W, b, idx, *rest, **kw):
        if h.dim() == 2:
            return lm_head(h, W, b, idx, *rest, **kw)
        rows, labels, _ = tokens_in_rows(h, idx)
        out = lm_head(rows, W, b, labels, *rest, **kw)
        return out.reshape(*h.shape[:-1], out.shape[-1])

    def any_lm_head_loss(h, W, b, idx, stats, softcap, token_loss, captured, per_token, *rest, **kw):
        if h.dim() > 2:
            h, idx, captured = tokens_in_rows(h, idx, captured, per_token)
        return lm_head_loss(h, W, b, idx, stats, softcap, token_loss, captured, per_token, *rest, **kw)

    return {"lm_head": any_lm_head, "lm_head_loss": any_lm_head_loss}


_TENSOR = object()  # marks the tensor arguments among those a derived backward keeps


class TorchCollectives(LocalCollectives):
    """torch.distributed collectives. `sum` is differentiable and sends the summed gradient back,
    so that DDP's average of the replicas' gradients is the gradient of the global loss."""

    def __init__(self, torch, group, source_name: str):
        self.torch, self.group, self.source_name = torch, group, source_name

    def check(self) -> None:
        dist = self.torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            from lossdsl.diagnostics import Diagnostic, LossError

            raise LossError(
                [
                    Diagnostic(
                        "this loss was compiled with `sharded=...`, but torch.distributed is not initialised",
                        None,
                        "E811",
                        path=self.source_name,
                        help="call torch.distributed.init_process_group(...) in each process before the loss, or compile "
                        "without `sharded=` for a single process",
                    )
                ]
            )

    def _tensor(self, x, dev):
        return x if isinstance(x, self.torch.Tensor) else self.torch.tensor(x, device=dev)

    def sum(self, x, dev=None):
        import torch.distributed.nn.functional as dnn

        x = self._tensor(x, dev)
        if x.requires_grad:
            return dnn.all_reduce(x, op=self.torch.distributed.ReduceOp.SUM, group=self.group)
        y = x.clone()
        self.torch.distributed.all_reduce(y, op=self.torch.distributed.ReduceOp.SUM, group=self.group)
        return y

    def _reduce(self, x, dev, op):
        y = self._tensor(x, dev).detach().clone()
        self.torch.distributed.all_reduce(y, op=op, group=self.group)
        return y

    def max(self, x, dev=None):
        return self._reduce(x, dev, self.torch.distributed.ReduceOp.MAX)

    def min(self, x, dev=None):
        return self._reduce(x, dev, self.torch.distributed.ReduceOp.MIN)

    def extent(self, n, dev=None):
        # The replicas may hold parts of different sizes: one all_gather of them.
        torch, dist = self.torch, self.torch.distributed
        sizes = [torch.zeros((), dtype=torch.int64, device=dev) for _ in range(dist.get_world_size(self.group))]
        dist.all_gather(sizes, torch.tensor(int(n), dtype=torch.int64, device=dev), group=self.group)
        counts = [int(c) for c in sizes]
        return sum(counts[: dist.get_rank(self.group)]), sum(counts)


class TorchBackend(Backend):
    name = "torch"
    aliases = ("pytorch",)
    framework = "torch"
    printer = TorchPrinter

    def load(self) -> None:
        import torch
        import torch.nn.functional as F

        self.torch = torch
        self.F = F
        self.rt = _runtime(torch)
        self.float32, self.float64, self.int_dtype = torch.float32, torch.float64, torch.int64
        self.tensor_type = torch.Tensor
        self._float_kinds = {torch.float16, torch.bfloat16, torch.float32, torch.float64}
        self._int_kinds = {torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8}
        self._kinds = {**dict.fromkeys(self._float_kinds, "float"), **dict.fromkeys(self._int_kinds, "int")}
        self._kinds[torch.bool] = "bool"
        self._number_dtypes = {float: torch.float64, int: torch.int64, bool: torch.bool}
        self._consts: dict[tuple, Any] = {}
        self.loaded = True

    def cast(self, x, dtype):
        return x.to(dtype)

    def sum(self, x):
        return self.torch.sum(x)

    def mean(self, x):
        return self.torch.mean(x)

    def nonzero(self, b):
        return self.torch.where(b == 0, self.torch.ones_like(b), b)

    def count(self, x):
        return self.torch.tensor(x.shape[0], dtype=x.dtype, device=x.device)

    def value_range(self, x: Any) -> tuple[int, int] | None:
        torch = self.torch
        if (
            x.numel() == 0
            or torch.compiler.is_compiling()
            or torch.jit.is_tracing()
            or torch._C._functorch.is_functorch_wrapped_tensor(x)
        ):  # under torch.func.vmap/grad
            return None
        lo, hi = torch.aminmax(x)
        if x.is_cpu:  # (`is_cpu` is a flag: `device.type` builds a device object, 1 µs a call)
            return lo.item(), hi.item()  # no transfer: two reads cost less than a stack
        return tuple(torch.stack((lo, hi)).tolist())  # one transfer from the device

    def assert_indices_async(self, x: Any, size: int, message: str) -> bool:
        # On a GPU, reading the range back (`value_range`) would stop the host until the device
        # catches up, at every call: a device-side assertion fails the stream instead, with the
        # message, and the call returns at once. The CPU keeps the host check and its LossError.
        torch = self.torch
        if x.is_cpu or x.numel() == 0 or torch.compiler.is_compiling() or torch.jit.is_tracing():
            return False
        self._assert_in_range(x, size, message)
        return True

    def _assert_in_range(self, x: Any, size: int, message: str) -> None:
        self.torch._assert_async(((x >= 0) & (x < size)).all(), message)

    def host_values(self, x: Any) -> Any:
        torch = self.torch
        if not isinstance(x, torch.Tensor):
            return super().host_values(x)
        if (
            x.device.type == "meta"  # shapes only (Keras builds a model's step on them)
            or torch.compiler.is_compiling()
            or torch.jit.is_tracing()
            or torch._C._functorch.is_functorch_wrapped_tensor(x)
        ):
            return None
        x = x.detach()
        return (x.double() if x.is_floating_point() else x).cpu().numpy()  # bfloat16 has no NumPy dtype

    def where_value(self, x: Any, value: int) -> tuple[int, ...]:
        return tuple(int(i) for i in (x == value).nonzero()[0].tolist())

    def traced_index_check(self, x, size, message, check):
        # A device-side assertion: no host synchronisation, and it fails the step when it runs.
        torch = self.torch
        if not torch.compiler.is_compiling() and torch._C._functorch.is_functorch_wrapped_tensor(x):
            return x  # torch.func.vmap/grad cannot batch an assertion
        ok = (x >= 0) & (x < size)
        torch._assert_async(ok.all(), message)
        # The read depends on the check, and reads only in-range values: Inductor's own bounds
        # check in the fused gather would otherwise fail first, without the E812 text.
        return torch.where(ok, x, torch.zeros_like(x))

    def traced_index_guard(self, x, size, message, flags):
        # Under torch.compile a device-side assertion says E812; torch.func's transforms cannot
        # batch one, and there the flag turns the loss into NaN.
        torch = self.torch
        if torch.compiler.is_compiling() or not torch._C._functorch.is_functorch_wrapped_tensor(x):
            return self.traced_index_check(x, size, message, None)
        ok = (x >= 0) & (x < size)
        flags.append(ok.all())
        return torch.where(ok, x, torch.zeros_like(x))

    def guard_indices(self, loss, flags, dist=None, dev=None):
        torch = self.torch
        ok = torch.stack(flags).all()
        if dist is not None:  # the same flag on every replica
            ok = dist.min(ok.to(torch.int32), dev) > 0
        return torch.where(ok, loss, torch.full_like(loss, float("nan")))

    def asarray(self, x: Any) -> Any:
        # A Python number becomes the tensor NumPy would make of it (float64, int64, bool) without
        # NumPy, which torch.compile cannot trace: a param given as a number is no graph break.
        if type(x) in (float, int, bool):
            return self.torch.tensor(x, dtype=self._number_dtypes[type(x)])
        return self.torch.as_tensor(self._host(x))

    def may_cache(self) -> bool:
        return not self.torch.compiler.is_compiling()

    def from_numpy(self, arr, device=None):
        t = self.torch.as_tensor(arr)
        return t.to(device) if device and device != "cpu" else t

    def dtype_kind(self, x: Any) -> str:
        # One dict look-up: this runs for every argument of every call.
        return self._kinds.get(x.dtype, "other")

    def to_float(self, x: Any, dtype: Any) -> Any:
        return x if x.dtype is dtype else x.to(dtype)  # torch's dtypes are singletons

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype).removeprefix("torch.")

    def device_key(self, x: Any) -> Any:
        return x.device if x is not None else None

    def place_like(self, x: Any, like: Any) -> Any:
        return x if x.device == like.device else x.to(like.device)

    def const(self, value, dtype, device):
        """A cached 0-d tensor (no allocation per call). While torch.compile traces, a fresh one:
        the graph holds it as a constant, and a derived backward is traced as a higher-order op
        that may not mutate the cache."""
        if self.torch.compiler.is_compiling():
            return self.torch.tensor(value, dtype=dtype, device=device)
        key = (value, dtype, device)
        t = self._consts.get(key)
        if t is None:
            t = self.torch.tensor(value, dtype=dtype, device=device)
            self._consts[key] = t
        return t

    def value_and_grads(self, fn, args, preds):
        args = {**args, **{p: args[p].clone().requires_grad_(True) for p in preds}}
        out = fn(**args)
        total = out.sum() if out.dim() else out
        grads = self.torch.autograd.grad(total, [args[p] for p in preds], allow_unused=True)
        return out, dict(zip(preds, grads))

    def collectives(self, group=None, *, source_name: str = ""):
        return TorchCollectives(self.torch, group, source_name)

    def namespace(self) -> dict[str, Any]:
        t = self.torch
        return {"torch": t, "F": self.F, "rt": self.rt, "_k": self.const, "_INT": t.int64, "_BOOL": t.bool}
