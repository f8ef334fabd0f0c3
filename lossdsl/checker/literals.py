"""Literals the checker reads before typing: integer indices, slice bounds and static arguments."""

from __future__ import annotations

from typing import Any

from .. import syntax as S


def int_literal(e: Any) -> int | None:
    """`3` or `-3`, else None."""
    if isinstance(e, S.Number) and e.is_int:
        return int(e.value)
    if isinstance(e, S.UnaryOp) and e.op == "-" and isinstance(e.operand, S.Number) and e.operand.is_int:
        return -int(e.operand.value)
    return None


def number_literal(e: Any) -> float | int | None:
    """`0.5` or `-0.5` (or an integer), else None."""
    if isinstance(e, S.Number):
        return e.value
    if isinstance(e, S.UnaryOp) and e.op == "-" and isinstance(e.operand, S.Number):
        return -e.operand.value
    return None
