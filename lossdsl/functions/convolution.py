"""Convolution and pooling over spatial axes: `conv1d`, `conv2d`, `avg_pool2d`.

Layout is channels first, as in PyTorch: `conv1d` reads `x: [B, C, L]` and a kernel
`w: [O, C/groups, K]`, `conv2d` reads `x: [B, C, H, W]` and `w: [O, C/groups, KH, KW]`;
`avg_pool2d` averages windows of the last two axes (`[..., H, W]`). Backends that want
channels last (TensorFlow) transpose in their runtime.

Output sizes are sizes of the language (docs/language.md §3):

    padding=valid, stride 1     H - KH + 1
    padding=valid, stride s     ⌊(H - KH)/s⌋ + 1
    padding=same,  stride 1     H
    padding=same,  stride s     ⌈H/s⌉

`padding=same` pads `total = max((⌈H/s⌉ - 1)·s + KH - H, 0)` zeros, `total // 2` before and
the rest after (an even kernel puts the extra zero after), as TensorFlow's and JAX's "SAME"
do and as PyTorch's `padding="same"` does at stride 1.

The gradient is the framework's (a convolution's backward is the framework's own kernel):
the derived backward steps aside for a loss that holds one."""

from __future__ import annotations

from ..ir import Apply, Node
from ..types import FLOAT, Dim, TensorType
from . import intervals as iv
from .table import MIXES, CallSite, NoRule, Param, RuleContext, define

PADDINGS = ("valid", "same")
FRAMEWORK_GRADIENT = NoRule("the framework differentiates it")
NOT_SCALAR = NoRule("its operands have spatial axes: there is no scalar to fold")


def _window_size(ck: RuleContext, size: Dim, kernel: Dim, stride: int, same: bool, span, what: str) -> Dim:
    """The number of windows along one spatial axis (the table in the module's docstring)."""
    if same:
        if stride == 1:
            return size
        if size.is_literal:
            return Dim.lit(-(-size.value // stride))
        return Dim.divided(size, stride, ceil=True)
    if kernel.is_literal:
        if size.is_literal and size.value < kernel.value:
            ck.fail(
                f"{what} of size {size.value} is smaller than the kernel's {kernel.value}",
                span,
                "E406",
                help="pad it first (`padding=same`, or `pad(x, before, after, axis=...)`), or use a smaller kernel",
            )
        ck.need_size(size, kernel.value, span, f"{what} of a `valid` convolution")
        windows = size.plus(1 - kernel.value)  # H - KH + 1
    elif size.sym == kernel.sym:
        windows = Dim.lit(size.offset - kernel.offset + 1)
    else:
        windows = Dim(f"{size} - {kernel if kernel.is_symbol else f'({kernel})'}", 1)
    if stride == 1:
        return windows
    if windows.is_literal:
        return Dim.lit((windows.value - 1) // stride + 1)
    return Dim.divided(windows.plus(-1), stride, ceil=False).plus(1)


def _stride(ck: RuleContext, site: CallSite, default: int = 1) -> int:
    s = site.static["stride"]
    value = default if s.value is None else s.value
    if value < 1:
        ck.fail(f"`stride` of `{site.fn.name}` must be 1 or more, found {value}", s.span or site.span, "E504")
    return value


def _divides(groups: Dim, n: Dim) -> bool:
    if groups.is_literal and n.is_literal:
        return n.value % groups.value == 0
    if groups.is_literal and groups.value == 1:
        return True
    return groups.is_symbol and n.offset == 0 and n.sym is not None and groups.sym in n.sym.split("*")


def convolution(spatial: int):
    names = ("L",) if spatial == 1 else ("H", "W")
    kernel_names = ("K",) if spatial == 1 else ("KH", "KW")
    fn = f"conv{spatial}d"
    x_layout = "[B, C, " + ", ".join(names) + "]"
    w_layout = "[O, C/groups, " + ", ".join(kernel_names) + "]"

    def rule(ck: RuleContext, site: CallSite):
        x, w = site.t(0), site.t(1)
        for i, (t, layout) in enumerate(((x, x_layout), (w, w_layout))):
            ck.need_dtype(site, i, {FLOAT}, f"`{fn}` convolves floats")
            if t.rank != spatial + 2:
                ck.fail(
                    f"`{fn}` needs {'x' if i == 0 else 'the kernel'} laid out {layout}, found `{t}`",
                    site.arg_spans[i],
                    "E404",
                    help="channels come first, as in PyTorch; `permute(x, [...])` reorders axes by name",
                )
        stride = _stride(ck, site)
        padding = site.static["padding"].value
        groups = site.static["groups"].value
        groups = groups if isinstance(groups, Dim) else Dim.lit(groups)
        span = site.static["groups"].span or site.span
        channels = Dim.product([w.shape[1], groups])
        if channels is None:
            return ck.fail(f"the kernel's input channels `{w.shape[1]}` times `groups` give no size", span, "E405")
        ck.same_dim(
            x.shape[1],
            channels,
            site.span,
            f"`{fn}`: x has {{a}} channels, the kernel reads {w.shape[1]} per group × {groups} groups = {{b}}",
            "E405",
            help=f"the kernel is laid out {w_layout}",
        )
        if not _divides(groups, w.shape[0]):
            ck.fail(
                f"`{fn}`: the kernel's {w.shape[0]} output channels do not split into {groups} groups",
                span,
                "E405",
                help="each group makes the same number of output channels; with `groups` a number, write the "
                "kernel's output channels as a number too, so that this is known before the call",
            )
        out = [
            _window_size(
                ck,
                x.shape[2 + k],
                w.shape[2 + k],
                stride,
                padding == "same",
                site.arg_spans[0],
                f"axis `{x.shape[2 + k]}`",
            )
            for k, n in enumerate(names)
        ]
        shape = (x.shape[0], w.shape[0], *out)
        return TensorType(FLOAT, shape), {"stride": stride, "same": padding == "same", "groups": groups}

    return rule


def avg_pool(ck: RuleContext, site: CallSite):
    x = site.t(0)
    ck.need_dtype(site, 0, {FLOAT}, "`avg_pool2d` averages floats")
    if x.rank < 2:
        ck.fail(f"`avg_pool2d` pools the last two axes, found `{x}`", site.arg_spans[0], "E404")
    k = site.static["kernel"]
    if k.value < 1:
        ck.fail(f"`kernel` of `avg_pool2d` must be 1 or more, found {k.value}", k.span or site.span, "E504")
    stride = _stride(ck, site, default=k.value)
    kernel = Dim.lit(k.value)
    out = [
        _window_size(ck, x.shape[a], kernel, stride, False, site.arg_spans[0], f"axis `{x.shape[a]}`") for a in (-2, -1)
    ]
    return TensorType(FLOAT, (*x.shape[:-2], *out)), {"kernel": k.value, "stride": stride}


def _refused_off_the_batch(what: str, pooling: bool):
    """Each replica convolves its own samples: sharding the batch axis needs nothing; a spatial
    axis (and for a convolution the channels and the kernel) would read lanes another replica
    holds."""

    def shard(g, n: Apply) -> Node:
        x = n.args[0]
        others = list(x.type.shape[-2:]) if pooling else list(x.type.shape[1:]) + list(n.args[1].type.shape)
        if any(g.sym in d.symbols() for d in others):
            g.fail(n, what)
        return n

    return shard


CONV_PARAMS = (
    Param("x"),
    Param("w"),
    Param("stride", "int", 1),
    Param("padding", "choice", "valid", choices=PADDINGS),
    Param("groups", "dim", 1),
)

define(
    "conv1d",
    CONV_PARAMS,
    "convolution",
    convolution(1),
    "cross-correlation of x `[B, C, L]` with w `[O, C/groups, K]`: `[B, O, L - K + 1]` "
    "(`padding=same`: `[B, O, L]`); `stride`, `groups` as in PyTorch",
    grad_args=(0, 1),
    vjp=FRAMEWORK_GRADIENT,
    value_range=iv.unbounded,
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_refused_off_the_batch("`conv1d`", False),
    known_as=("conv", "convolve", "correlate"),
)
define(
    "conv2d",
    CONV_PARAMS,
    "convolution",
    convolution(2),
    "cross-correlation of x `[B, C, H, W]` with w `[O, C/groups, KH, KW]`: `[B, O, H - KH + 1, W - KW + 1]` "
    "(`padding=same`: `[B, O, H, W]`); `stride`, `groups` as in PyTorch",
    grad_args=(0, 1),
    vjp=FRAMEWORK_GRADIENT,
    value_range=iv.unbounded,
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_refused_off_the_batch("`conv2d`", False),
    known_as=("conv_general_dilated", "convolution"),
)
define(
    "avg_pool2d",
    (Param("x"), Param("kernel", "int"), Param("stride", "int", None, shown="kernel")),
    "convolution",
    avg_pool,
    "the mean of each `kernel`×`kernel` window of the last two axes, `stride` apart (default: `kernel`); "
    "no padding: `[..., ⌊(H - kernel)/stride⌋ + 1, ...]`",
    known_as=("avg_pool", "avgpool", "average_pooling2d", "reduce_window"),
    vjp=FRAMEWORK_GRADIENT,
    value_range=iv.same_as_operand,
    fold=NOT_SCALAR,
    lanes=MIXES,
    sharding=_refused_off_the_batch("`avg_pool2d`", True),
)
