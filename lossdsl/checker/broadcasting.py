"""Broadcasting of symbolic shapes (docs/language.md §2), and the mistakes it refuses with a
message of their own: two dims that clash (E401, E402), operands of different shapes in the
quick form (E401), and a declared size-1 axis stretched into an outer product of a dimension
with itself (E403)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NoReturn

from ..functions import CallSite
from ..types import NEW_AXIS, ONE, Dim, Shape, TensorType, broadcast_suggestion, shape_str
from .dims import Dims
from .report import Reporter


def broadcast_shapes(
    report: Reporter,
    dims: Dims,
    site: CallSite,
    shapes: Sequence[Shape],
    types: Sequence[TensorType | None],
    texts: Sequence[str],
    *,
    quick: bool,
) -> Shape:
    """The broadcast of `shapes`, aligned from the right; `types` and `texts` (the operands as
    written) only shape the messages."""
    if quick:
        _quick_same_shapes(report, dims, site, shapes, types)
    same = _one_shape(shapes)
    if same is not None:
        return same
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for k in range(1, rank + 1):
        acc: Dim | None = None
        acc_from = -1
        for j, shape in enumerate(shapes):
            if len(shape) < k:
                continue
            d = shape[-k]
            if acc is None:
                acc, acc_from = d, j
                continue
            merged = dims.unify(acc, d, broadcast=True, span=site.span)
            if merged is None:
                _broadcast_error(report, dims, site, shapes, types, texts, acc_from, j, acc, d)
            if merged == ONE and (acc.inserted or d.inserted):
                merged = NEW_AXIS  # one explicit `None` is enough to say how the axes line up
            if merged != acc:
                acc_from = j
            acc = merged
        out.append(acc)  # type: ignore[arg-type]
    result = tuple(reversed(out))
    _no_self_outer_product(report, dims, site, shapes, types, texts, result)
    return result


def _one_shape(shapes: Sequence[Shape]) -> Shape | None:
    """The shape every operand that is not a scalar has, when they all have the same one and
    it has no size-1 axis: the usual case (`a - b` with both `float[B]`), whose broadcast is
    that shape, binds nothing and stretches nothing. None otherwise."""
    found: Shape | None = None
    for s in shapes:
        if not s:
            continue
        if found is None:
            if any(d.sym is None and d.offset == 1 for d in s):  # a size-1 axis, inserted or not
                return None
            found = s
        elif s is not found and s != found:
            return None
    return tuple(found) if found is not None else ()


def _quick_same_shapes(report: Reporter, dims: Dims, site: CallSite, shapes, types) -> None:
    """The quick form declares nothing, so it cannot know which axes are meant to line up:
    operands of different shapes are refused, except a scalar (docs/language.md §1). A size-1
    axis the expression inserts itself with `None` says how the axes line up, and is allowed."""
    tensors = [(i, s) for i, s in enumerate(shapes) if len(s) > 0]
    for (i, a), (j, b) in itertools.pairwise(tensors):
        if len(a) == len(b) and all(
            dims.resolve(x) == dims.resolve(y) or x.inserted or y.inserted for x, y in zip(a, b)
        ):
            continue
        ta = str(types[i]) if types[i] is not None else shape_str(a)
        tb = str(types[j]) if types[j] is not None else shape_str(b)
        notes = ["without declarations the checker cannot tell which axes are meant to line up"]
        short, long_ = (a, b) if len(a) < len(b) else (b, a)
        if len(long_) == len(short) + 1 and long_[-1] == ONE:
            notes.append(
                f"`{shape_str(long_)}` against `{shape_str(short)}` would make a "
                f"`{shape_str(long_[:-1] + short[-1:])}` outer product"
            )
        report.fail(
            f"the quick form does not broadcast `{ta}` with `{tb}`",
            site.span,
            "E401",
            notes=notes,
            help="declare the tensors in a spec, so that each axis has a name (`pred yhat: float[B]`), "
            "or give the operands equal shapes in the expression (`yhat[:, 0]`, `w[:, None]`)",
        )


def _no_self_outer_product(report: Reporter, dims: Dims, site: CallSite, shapes, types, texts, result: Shape) -> None:
    """A declared size-1 axis stretched against a dimension the result already has on another
    axis makes an outer product of that dimension with itself: `float[B, 1]` with `float[B]`
    is `[B, B]`, the Dense(1)-output bug. Allowed when each stretched 1 was inserted with
    `None` (`x[:, None] - x[None, :]`), or when one operand already has both axes."""
    rank = len(result)
    resolved = [dims.resolve(d) for d in result]
    for p in range(rank):
        for q in range(rank):
            a = resolved[p]
            if p == q or a.sym is None or a != resolved[q]:
                continue
            stretched = []  # operands whose declared 1 became the dim at axis p
            both = False
            for i, s in enumerate(shapes):
                lp, lq = len(s) - rank + p, len(s) - rank + q  # the axes of s aligned with p and q
                dp = s[lp] if lp >= 0 else None
                dq = s[lq] if lq >= 0 else None
                if dp is not None and dq is not None and dp != ONE and dq != ONE:
                    both = True
                if dp == ONE and not dp.inserted:
                    stretched.append(i)
            if both or not stretched:
                continue
            i = stretched[0]
            t = str(types[i]) if types[i] is not None else shape_str(shapes[i])
            others = [
                str(types[j]) if types[j] is not None else shape_str(shapes[j])
                for j in range(len(shapes))
                if j != i and shapes[j]
            ]
            text = texts[i] if texts[i] and len(texts[i]) <= 24 else "x"
            lone = [k for k, d in enumerate(shapes[i]) if d == ONE and not d.inserted]
            fix = (
                f"`{text}[{', '.join([':'] * lone[0] + ['0'])}]`"
                if len(lone) == 1
                else f"`{text}` reshaped so its axes line up"
            )
            report.fail(
                f"broadcasting `{t}` with `{' with '.join(others) or 'itself'}` makes a "
                f"`{shape_str(result)}` outer product of `{a}` with itself",
                site.span,
                "E403",
                notes=[
                    f"the size-1 axis of `{t}` is stretched to `{a}`, which the result already "
                    "has on another axis; a `[B, 1]` model output against `[B]` labels is the "
                    "usual cause"
                ],
                help=f"drop the size-1 axis: {fix}; for an outer product, write the axes with "
                "`None`: `x[:, None] - x[None, :]`",
            )


def _broadcast_error(
    report: Reporter, dims: Dims, site: CallSite, shapes, types, texts, i: int, j: int, a: Dim, b: Dim
) -> NoReturn:
    """Operand `i`'s dim `a` clashed with operand `j`'s dim `b`."""
    ta = str(types[i]) if types[i] is not None else "[" + ", ".join(map(str, shapes[i])) + "]"
    tb = str(types[j]) if types[j] is not None else "[" + ", ".join(map(str, shapes[j])) + "]"
    ra, rb = dims.resolve(a), dims.resolve(b)
    help = None
    notes = []
    if ra.is_literal and rb.is_literal and (a.sym or b.sym):
        sym = a if a.sym else b
        other = b if a.sym else a
        value, bound_where = dims.bound[sym.sym]  # type: ignore[index]
        report.fail(
            f"`{sym.sym}` is {value} {bound_where} but {dims.resolve(other)} here",
            site.span,
            "E402",
            notes=[f"in the shapes `{ta}` and `{tb}`"],
        )
    if a.sym and b.sym and a.sym == b.sym:
        notes.append(f"`{a}` and `{b}` differ by {abs(a.offset - b.offset)}")
        help = "slice both operands the same way, e.g. `x[1:] - y[1:]`"
    else:
        notes.append(
            f"aligned from the right, `{a}` meets `{b}`"
            + (
                "; different dimensions never broadcast, even when their sizes agree at run time"
                if (a.sym or b.sym)
                else ""
            )
        )
        small, big, text = (
            (shapes[i], shapes[j], texts[i]) if len(shapes[i]) < len(shapes[j]) else (shapes[j], shapes[i], texts[j])
        )
        if len(text) > 24 or not text:
            text = "x"
        suggestion = broadcast_suggestion(small, big, text)
        if suggestion:
            help = f"to line up the leading axes, insert an axis: `{suggestion}`"
    report.fail(f"cannot broadcast `{ta}` with `{tb}`", site.span, "E401", help=help, notes=notes)
