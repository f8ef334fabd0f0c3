"""The text form of a checked module: `lossdsl ir`.

`printer_for` (a backend's printer class, as `lossdsl emit` uses it) is `lossdsl.pipeline`'s,
named here too for the tests that read or patch a printer's tables.
"""

from __future__ import annotations

from .checked import CheckedModule
from .ir import Apply, Arg, Const, Gather, Index, describe, topological
from .pipeline import check_sharded, lower, printer_for
from .sharding import describe_global


def format_ir(checked: CheckedModule, *, lowered: bool = False, sharded: str | None = None) -> str:
    """One line per node: `%n = op(args) : type   # line:col`, lets named where they are bound."""
    root = checked.loss
    made: list = []
    if lowered:
        if sharded:
            check_sharded(checked, sharded)
        # The passes every backend shares: no backend's kernels, no derived backward.
        shared = lower(checked, sharded=sharded)
        root, made = shared.root, shared.made_global
    names: dict[int, str] = {}
    let_of = {id(node): name for name, node in checked.lets.items()}
    lines = [f"# {checked.source.name}: {checked.signature()}"]
    for d in checked.declarations:
        extra = f" = {d.default}" if d.has_default else ""
        lines.append(f"{d.kind:8s} {d.name}: {d.type}{extra}")
    if checked.bindings:
        lines.append("sizes    " + ", ".join(f"{k} = {v} ({w})" for k, (v, w) in checked.bindings.items()))
    lines.append("")
    k = 0
    for node in topological(root):
        if isinstance(node, Arg):
            names[id(node)] = node.label
            continue
        if isinstance(node, Const):
            names[id(node)] = describe(node)
            continue
        k += 1
        name = f"%{k}"
        names[id(node)] = name
        args = ", ".join(names[id(a)] for a in node.inputs)
        op = describe(node)
        if isinstance(node, (Apply, Index, Gather)):
            op = f"{op}({args})" if not isinstance(node, Index) else f"{names[id(node.x)]}{op[5:]}"
        where = f"{node.span.line}:{node.span.col}" if node.span is not None else ""
        let = f"   let {let_of[id(node)]}" if id(node) in let_of else ""
        lines.append(f"{name:>5} = {op} : {node.type}   # {where}{let}")
    lines.append(f"loss = {names[id(root)]} : {root.type}")
    if sharded:
        lines.append("")
        lines.append(f"made global over `{sharded}` (all_sum / all_max / all_min above):")
        lines += [f"  {describe_global(n)}" for n in made] or ["  nothing"]
        loss_dim = checked.loss.type.shape[0] if checked.loss.type.rank == 1 else None
        if loss_dim is not None and loss_dim.sym == sharded:
            lines.append("  and the per-sample loss's reduction (`reduction=`)")
    return "\n".join(lines)


__all__ = ["format_ir", "printer_for"]
