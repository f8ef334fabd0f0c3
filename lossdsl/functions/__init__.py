"""The table of functions: one entry per function and operator of the language.

An entry (lossdsl/functions/table.py) holds everything about its function: how it is
called, its dtype and shape rule, its gradient and convention where the frameworks disagree
(docs/language.md §4), its value range and domain, its safe value in guarded lanes, how it
behaves when an axis is sharded, and more; the passes read these rules by name. Entries are
defined by group, one module each. Each backend's printer spells every entry
(tests/test_function_table.py checks that none is missing).
"""

from __future__ import annotations

from ..ir import Gather, Node
from ..types import Dim
from . import (  # noqa: F401  (they define)
    axis,
    construction,
    conversion,
    convolution,
    elementwise,
    layout,
    linalg,
    operators,
    order,
    picking,
    recurrence,
    reductions,
    sequence,
)
from .table import (
    ELEMENTWISE,
    FUNCTIONS,
    LOCAL,
    MIXES,
    REDUCES,
    REQUIRED,
    ROWS,
    RULE_KINDS,
    CallSite,
    Function,
    NoRule,
    Param,
    RuleContext,
    StaticArg,
)

USER_FUNCTIONS: dict[str, Function] = {name: f for name, f in FUNCTIONS.items() if f.user}
BINARY_OPERATORS: dict[str, str] = {f.symbol: f.name for f in FUNCTIONS.values() if f.symbol and len(f.params) == 2}


def index_uses(node: Node) -> list[tuple[Node, Dim]]:
    """The operands `node` reads as indices, each with the dimension it indexes into."""
    if isinstance(node, Gather):
        return [(idx, node.x.type.shape[k]) for k, idx in enumerate(node.indices)]
    fn = getattr(node, "fn", None)
    rule = FUNCTIONS[fn].index_operands if fn is not None else None
    return rule(node) if rule is not None else []  # type: ignore[arg-type]


__all__ = [
    "BINARY_OPERATORS",
    "ELEMENTWISE",
    "FUNCTIONS",
    "LOCAL",
    "MIXES",
    "REDUCES",
    "REQUIRED",
    "ROWS",
    "RULE_KINDS",
    "USER_FUNCTIONS",
    "CallSite",
    "Function",
    "NoRule",
    "Param",
    "RuleContext",
    "StaticArg",
    "index_uses",
]
