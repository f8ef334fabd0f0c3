"""Text forms of a checked module: `lossdsl ir` and the printer lookup for `lossdsl emit`."""

from __future__ import annotations

import importlib

from .checked import CheckedModule
from .ir import Apply, Arg, Const, DimSize, Gather, Index, Node, describe, topological


def printer_for(backend: str):
    """The printer class of a backend, without importing its framework."""
    from lossdsl.backends import _MODULES

    module_name, cls_name = _MODULES[backend]
    module = importlib.import_module(module_name)
    return getattr(module, cls_name).printer


def format_ir(checked: CheckedModule, *, lowered: bool = False, sharded: str | None = None) -> str:
    """One line per node: `%n = op(args) : type   # line:col`, lets named where they are bound."""
    root = checked.loss
    made: list = []
    if lowered:
        from .passes import lower

        if sharded:
            from .api import _check_sharded

            _check_sharded(checked, sharded)
        root = lower(checked, sharded=sharded, made_global=made)
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
        lines += [f"  {describe(n)} at line {n.span.line}, column {n.span.col}" for n in made] or ["  nothing"]
        loss_dim = checked.loss.type.shape[0] if checked.loss.type.rank == 1 else None
        if loss_dim is not None and loss_dim.sym == sharded:
            lines.append("  and the per-sample loss's reduction (`reduction=`)")
    return "\n".join(lines)


__all__ = ["DimSize", "Node", "format_ir", "printer_for"]
