"""Tensors read column by column: `b[:, 0]`, `b[:, 1]`, ... (every axis whole but the last, the
last indexed by a constant). A backend whose framework does better with one split of such a
tensor than with a slice per column (`Printer.split_columns`) gets each column from one call:
the code generator binds the split once, where the first column is read, and prints every read
of a column as the split's part."""

from __future__ import annotations

from dataclasses import dataclass, field

from .ir import Index, Node, SliceItem

_WHOLE = SliceItem(None, None, None)


@dataclass
class ColumnSplit:
    """The column reads of one tensor: its last axis has `size` columns."""

    base: Node
    size: int
    reads: dict[int, list[Index]] = field(default_factory=dict)  # column (0-based) -> its reads


def _column_of(node: Node) -> int | None:
    """The column `node` reads, if it is `x[:, ..., :, k]` with a literal last axis."""
    if not isinstance(node, Index) or node.x.type.rank == 0 or len(node.items) != node.x.type.rank:
        return None
    *whole, k = node.items
    last = node.x.type.shape[-1]
    if not isinstance(k, int) or isinstance(k, bool) or not last.is_literal:
        return None
    if any(not isinstance(it, SliceItem) or it != _WHOLE for it in whole):
        return None
    return k % last.value


def column_splits(order: list[Node], root: Node) -> dict[int, ColumnSplit]:
    """id of each column read -> the split of its tensor, for tensors read as at least two
    different columns. A split makes every column, read or not (and under autodiff a gradient
    for each), so a tensor qualifies only where at least half of its columns are read."""
    by_base: dict[int, ColumnSplit] = {}
    for n in order:
        k = _column_of(n) if n is not root else None
        if k is None:
            continue
        assert isinstance(n, Index)
        split = by_base.setdefault(id(n.x), ColumnSplit(n.x, n.x.type.shape[-1].value))
        split.reads.setdefault(k, []).append(n)
    out: dict[int, ColumnSplit] = {}
    for split in by_base.values():
        if len(split.reads) >= 2 and split.size <= 2 * len(split.reads):
            for reads in split.reads.values():
                out.update((id(r), split) for r in reads)
    return out


__all__ = ["ColumnSplit", "column_splits"]
