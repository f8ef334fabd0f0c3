"""Indexing (docs/language.md §3): basic indexing with integers, slices, `...` and `None`,
whose result shape follows from the syntax, and gathers by int tensors. Slice bounds and
integer indices are literals, so a slice's size (§2) and the minimum size an index needs of a
symbolic dim are known before any call (recorded with `need_size`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeGuard, cast

from .. import syntax as S
from ..functions import FUNCTIONS, CallSite
from ..ir import Apply, Const, DimSize, Gather, Index, Node, SliceItem
from ..source import Span
from ..types import BOOL, INT, NEW_AXIS, Dim, TensorType
from .dims import Dims
from .literals import int_literal
from .report import POISON, Reporter, RuleFailed, SpanTexts, span_text
from .rule_context import CheckerRuleContext


def is_tensor_index(item: Any) -> TypeGuard[S.Expr]:
    """An index item that is an expression to type (an int tensor); the rest (slices, `...`,
    `None`, integer literals) are read from the syntax."""
    return not (isinstance(item, (S.Slice, S.EllipsisIndex, S.NewAxis)) or int_literal(item) is not None)


class Indexing:
    def __init__(self, report: Reporter, dims: Dims, rules: CheckerRuleContext):
        self.report = report
        self.dims = dims
        self.rules = rules

    def index(self, x: Node, e: S.Index, tensor_items: list[Node | None]) -> Node:
        """`x[...]`, where `tensor_items` holds the typed int-tensor items (None for the others)."""
        if any(t is not None for t in tensor_items):
            with_slices = any(isinstance(it, (S.Slice, S.EllipsisIndex, S.NewAxis)) for it in e.items)
            scalars = all(t is None or (t.type.rank == 0 and t.type.dtype is INT) for t in tensor_items)
            if with_slices and scalars:
                return self._scalar_index(x, e, tensor_items)
            return self._gather(x, e, tensor_items)
        return self._basic_index(x, e)

    # ---- int scalars among slices: a `def` argument as an index ----------------------------------

    def _scalar_index(self, x: Node, e: S.Index, tensor_items: list[Node | None]) -> Node:
        """`x[:, t]` where each int item is a scalar (a `def` argument, `argmax` of a vector, an
        `int` declaration): it drops its axis, as an integer literal does. One whose value is known
        before any call (a literal passed to a `def`, or arithmetic on literals) is that literal,
        counted from the end when negative; the others are read at run time as a gather of those
        axes (moved to the front), and are not counted from the end (§3, E812)."""
        known: dict[int, int] = {}
        dynamic: list[int] = []
        for i, t in enumerate(tensor_items):
            if t is None:
                continue
            v = _static_int(t)
            if v is None:
                dynamic.append(i)
            else:
                known[id(e.items[i])] = v
        if not dynamic:
            return self._basic_index(x, e, known)
        consuming = sum(not isinstance(it, (S.EllipsisIndex, S.NewAxis)) for it in e.items)
        if consuming > x.type.rank or sum(isinstance(it, S.EllipsisIndex) for it in e.items) > 1:
            return self._basic_index(x, e, known)  # reports the mistake
        axes: list[int] = []  # the axis of x each dynamic item reads
        axis = 0
        for i, it in enumerate(e.items):
            if isinstance(it, S.EllipsisIndex):
                axis += x.type.rank - consuming
            elif not isinstance(it, S.NewAxis):
                if i in dynamic:
                    axes.append(axis)
                axis += 1
        perm = tuple(axes + [k for k in range(x.type.rank) if k not in axes])
        moved = x
        if perm != tuple(range(x.type.rank)):
            moved_type = TensorType(x.type.dtype, tuple(x.type.shape[k] for k in perm))
            moved = Apply(moved_type, e.span, fn="permute", args=(x,), attrs=(("perm", perm),))
        indices = tuple(cast(Node, tensor_items[i]) for i in dynamic)
        picked = Gather(TensorType(x.type.dtype, moved.type.shape[len(axes) :]), e.span, moved, indices)
        rest = tuple(it for i, it in enumerate(e.items) if i not in dynamic)
        if not rest:
            return picked
        return self._basic_index(picked, replace(e, items=rest), known)

    # ---- gathers by int tensors -------------------------------------------------------------

    def _gather(self, x: Node, e: S.Index, tensor_items: list[Node | None]) -> Node:
        indices: list[Node] = []
        for it, node in zip(e.items, tensor_items):
            if isinstance(it, (S.Slice, S.EllipsisIndex, S.NewAxis)):
                self.report.error(
                    "an int-tensor index cannot be mixed with slices, `...` or `None`",
                    it.span,
                    "E409",
                    help="index every leading axis with int tensors or integers, or gather first and slice the result",
                )
                return POISON
            if node is None:
                node = Const(TensorType(INT), it.span, cast(int, int_literal(it)))  # an int literal
            if node.type.dtype is BOOL:
                self.report.error(
                    "a bool mask cannot be an index: the result's shape would depend on the data",
                    it.span,
                    "E408",
                    help="keep the shape and zero the rest: `where(mask, x, 0.0)`",
                )
                return POISON
            if node.type.dtype is not INT:
                self.report.error(
                    f"indices must be int, found `{node.type}`",
                    it.span,
                    "E304",
                    help="class indices come from `argmax(...)` or an `int` declaration",
                )
                return POISON
            indices.append(node)
        if len(indices) > x.type.rank:
            self.report.error(f"too many indices for `{x.type}`: {len(indices)} given", e.span, "E406")
            return POISON
        if not self._gather_indices_in_range(x, e, indices):
            return POISON
        # The indices broadcast with each other, as the operands of `+` do.
        spans = [it.span for it in e.items]
        site = CallSite(FUNCTIONS["add"], indices, spans, SpanTexts(spans), {}, e.span)
        try:
            shape = self.rules.broadcast(site) if len(indices) > 1 else indices[0].type.shape
        except RuleFailed:
            return POISON
        out = TensorType(x.type.dtype, tuple(shape) + x.type.shape[len(indices) :])
        return Gather(out, e.span, x, tuple(indices))

    def _gather_indices_in_range(self, x: Node, e: S.Index, indices: list[Node]) -> bool:
        """The indices whose value is known before any call: integer literals (as in basic
        indexing) and a dimension's own size (`x[B]` on an axis of size B, always past the end)."""
        for k, (it, node) in enumerate(zip(e.items, indices)):
            dim = self.dims.resolve(x.type.shape[k])
            if isinstance(node, Const):
                v = int(node.value)
                if dim.is_literal and not -dim.value <= v < dim.value:
                    self.report.error(f"index {v} is out of range for an axis of size {dim.value}", it.span, "E406")
                    return False
                if not dim.is_literal:
                    self.rules.need_size(dim, v + 1 if v >= 0 else -v, it.span)
            elif isinstance(node, DimSize):
                size = self.dims.resolve(node.dim)
                past_end = (
                    (size.sym == dim.sym and size.offset >= dim.offset)
                    if size.sym is not None
                    else dim.is_literal and size.offset >= dim.value
                )
                if past_end:
                    if len(indices) > 1 and all(isinstance(i, DimSize) for i in indices):
                        shape = "[" + ", ".join(span_text(i.span) for i in e.items) + "]"
                        hint = (
                            "a shape written after an expression is read as an index; to note the shape, "
                            f"make it a comment: `# {shape}`"
                        )
                    else:
                        hint = "indices count from 0: the last element is at `-1`"
                    self.report.error(
                        f"index `{span_text(it.span)}` is past the end of an axis of size {dim}",
                        it.span,
                        "E406",
                        help=hint,
                    )
                    return False
        return True

    # ---- basic indexing -----------------------------------------------------------------------

    def _basic_index(self, x: Node, e: S.Index, known: dict[int, int] | None = None) -> Node:
        """`known`: the values of int scalar items known before any call, by the item's id."""
        n_ellipsis = sum(isinstance(it, S.EllipsisIndex) for it in e.items)
        if n_ellipsis > 1:
            self.report.error("an index may hold at most one `...`", e.span, "E406")
            return POISON
        consuming = sum(not isinstance(it, (S.EllipsisIndex, S.NewAxis)) for it in e.items)
        rank = x.type.rank
        if consuming > rank:
            self.report.error(
                f"too many indices for `{x.type}`: {consuming} given, it has {rank} ax{'is' if rank == 1 else 'es'}",
                e.span,
                "E406",
                help="`None` adds an axis; an integer or a slice reads one" if rank else "a scalar cannot be indexed",
            )
            return POISON
        # `...` (or nothing, at the end) stands for a full slice of each axis not indexed.
        items: list = []
        for it in e.items:
            if isinstance(it, S.EllipsisIndex):
                items.extend([SliceItem(None, None, None)] * (rank - consuming))
            else:
                items.append(it)
        if not n_ellipsis:
            items.extend([SliceItem(None, None, None)] * (rank - consuming))
        shape: list[Dim] = []
        out_items: list = []
        axis = 0
        for it in items:
            if isinstance(it, S.NewAxis):
                shape.append(NEW_AXIS)
                out_items.append(None)
                continue
            dim = x.type.shape[axis]
            axis += 1
            if isinstance(it, SliceItem):
                shape.append(dim)
                out_items.append(it)
                continue
            if isinstance(it, S.Slice):
                bounds: list[int | None] = []
                for part in (it.start, it.stop, it.step):
                    if part is None:
                        bounds.append(None)
                        continue
                    v = int_literal(part)
                    if v is None:
                        self.report.error(
                            "slice bounds must be integer literals",
                            part.span,
                            "E407",
                            help="to select by a computed index, use an int tensor index or `pick`",
                        )
                        return POISON
                    bounds.append(v)
                start, stop, step = bounds
                if step is not None and step <= 0:
                    self.report.error(f"slice step must be positive, found {step}", it.span, "E406")
                    return POISON
                size = self._slice_size(dim, start, stop, step or 1, it.span)
                if size is None:
                    return POISON
                shape.append(size)
                out_items.append(SliceItem(start, stop, step))
                continue
            v = known[id(it)] if known and id(it) in known else int_literal(it)
            assert v is not None
            rd = self.dims.resolve(dim)
            if rd.is_literal:
                if not -rd.value <= v < rd.value:
                    self.report.error(f"index {v} is out of range for an axis of size {rd.value}", it.span, "E406")
                    return POISON
            else:
                self.rules.need_size(dim, v + 1 if v >= 0 else -v, it.span)
            out_items.append(v)
        return Index(TensorType(x.type.dtype, tuple(shape)), e.span, x, tuple(out_items))

    def _slice_size(self, dim: Dim, start: int | None, stop: int | None, step: int, span: Span) -> Dim | None:
        """The length of `dim[start:stop:step]`, symbolic where `dim` is; None (reported) when empty."""
        rd = self.dims.resolve(dim)
        if rd.is_literal:
            n = len(range(*slice(start, stop, step).indices(rd.value)))
            if n == 0:
                self.report.error(f"this slice of an axis of size {rd.value} is empty", span, "E406")
                return None
            return Dim.lit(n)
        need_size = self.rules.need_size
        a = start or 0
        if stop is None:
            if a >= 0:
                length = dim.plus(-a)
                need_size(dim, a, span)
            else:
                length = Dim.lit(-a)
                need_size(dim, -a, span)
        elif a >= 0 and stop >= 0:
            if stop <= a:
                self.report.error("this slice is empty", span, "E406")
                return None
            length = Dim.lit(stop - a)
            need_size(dim, stop, span)
        elif a >= 0 and stop < 0:
            length = dim.plus(stop - a)
            need_size(dim, a - stop, span)
        elif a < 0 and stop < 0:
            if stop <= a:
                self.report.error("this slice is empty", span, "E406")
                return None
            length = Dim.lit(stop - a)
            need_size(dim, -a, span)
        else:  # negative start, non-negative stop: the size depends on the axis length
            length = Dim.sliced(dim, a, stop)
        if step == 1:
            return length
        if length.is_literal:
            return Dim.lit(-(-length.value // step))
        return Dim.divided(length, step, ceil=True)


def _static_int(node: Node) -> int | None:
    """The value of an int scalar known before any call: a literal (passed to a `def`), or `-`,
    `+`, `-`, `*` of such values; else None."""
    if isinstance(node, Const) and node.type.dtype is INT and not isinstance(node.value, bool):
        return int(node.value)
    if not isinstance(node, Apply) or node.type.rank != 0 or node.type.dtype is not INT:
        return None
    values = [_static_int(a) for a in node.args]
    if any(v is None for v in values):
        return None
    ints = cast(list[int], values)
    if node.fn == "neg" and len(ints) == 1:
        return -ints[0]
    if node.fn in ("add", "sub", "mul") and len(ints) == 2:
        a, b = ints
        return a + b if node.fn == "add" else a - b if node.fn == "sub" else a * b
    return None
