"""Lowered IR -> one readable Python module per spec and backend.

The module has two functions:

    entry(<call arguments>, <params>)    checks every argument's presence, dtype kind,
                                         rank and sizes against the declarations (as
                                         straight-line code, so a call costs what
                                         hand-written code costs), converts dtypes,
                                         and calls compute
    compute(<tensors>, <dims>)           the loss, one framework op after another

Names in the generated code never clash with the framework's or Python's: values
are `v_<name>` (record fields `v_<name>__<field>`), context `c_<name>`, params
`p_<name>`, lets `l_<name>`, dimension sizes `d_<symbol>`, temporaries `t<n>`. The
code is built from the IR only; no user text is pasted into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .checked import CheckedModule, Leaf
from .ir import Apply, Arg, Const, DimSize, Node, topological
from .types import BOOL, FLOAT, INT, Dim


def leaf_var(kind: str, name: str, path: tuple[str, ...] = ()) -> str:
    prefix = {"context": "c_", "param": "p_"}.get(kind, "v_")
    return prefix + "__".join((name,) + path)


@dataclass
class Generated:
    source: str
    entry_args: list[str]  # python parameter names of `entry`, call arguments then params
    leaves: list[Leaf]  # the leaf behind each index used by the run-time checks
    static_args: list[str] = field(default_factory=list)  # compute's non-tensor parameters
    static_dims: dict[str, tuple[int, str]] = field(default_factory=dict)


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + text)


def _dims_used(root: Node) -> list[str]:
    out: list[str] = []

    def add(d: Dim | None) -> None:
        if d is not None and d.sym is not None and d.sym.isidentifier() and d.sym not in out:
            out.append(d.sym)

    for n in topological(root):
        if isinstance(n, DimSize):
            add(n.dim)
        elif isinstance(n, Apply):
            add(n.attr("depth"))
            add(n.attr("groups"))
    return out


def generate(checked: CheckedModule, root: Node, printer_cls, *, static_dims: dict[str, tuple[int, str]],
             dynamic_sizes: bool = False, source_name: str = "", sharded: bool = False) -> Generated:
    """Python source for `entry` and `compute`. `static_dims` are sizes known before any call
    (from the spec itself, context tensors and params bound at compile time)."""
    order = topological(root)
    decl_rank = {d.name: i for i, d in enumerate(checked.declarations)}
    used_args = sorted((n for n in order if isinstance(n, Arg)), key=lambda n: (decl_rank.get(n.name, 0), n.path))
    arg_names = {id(n): leaf_var(n.kind, n.name, n.path) for n in used_args}

    # ---- compute ----------------------------------------------------------------------
    uses: dict[int, int] = {}
    for n in order:
        for c in n.inputs:
            uses[id(c)] = uses.get(id(c), 0) + 1
    let_spans = {}
    for name, node in checked.lets.items():
        let_spans[(node.span.line, node.span.col, node.span.end_line, node.span.end_col)] = name
    last_with_span: dict[tuple, int] = {}
    for n in order:
        if n.span is not None and not isinstance(n, (Arg, Const, DimSize)):
            last_with_span[(n.span.line, n.span.col, n.span.end_line, n.span.end_col)] = id(n)

    names: dict[int, str] = dict(arg_names)
    body = _Lines()
    printer = printer_cls(names)
    temp = 0
    taken: set[str] = set(arg_names.values())
    for n in order:
        if isinstance(n, (Arg, Const, DimSize)) or n is root:
            continue
        key = (n.span.line, n.span.col, n.span.end_line, n.span.end_col) if n.span is not None else None
        let_name = let_spans.get(key) if key is not None and last_with_span.get(key) == id(n) else None
        if let_name is None and uses.get(id(n), 0) < 2:
            continue
        if let_name is not None:
            var = f"l_{let_name}"
            k = 2
            while var in taken:
                var, k = f"l_{let_name}_{k}", k + 1
        else:
            temp += 1
            var = f"t{temp}"
        taken.add(var)
        body(f"{var} = {printer.expr(n)}")
        names[id(n)] = var
    body(f"return {printer.expr(root)}")

    dims_needed = _dims_used(root)
    static_args = ["_cdt", "_dev"] + [f"d_{s}" for s in dims_needed]
    compute_params = [arg_names[id(n)] for n in used_args] + static_args

    # ---- entry ------------------------------------------------------------------------
    call_decls = checked.call_args
    param_decls = checked.of_kind("param")
    context_decls = checked.of_kind("context")
    entry_args = [f"a_{d.name}" for d in call_decls] + [f"p_{d.name}" for d in param_decls]
    leaves: list[Leaf] = []
    e = _Lines()
    if sharded:
        e("_dist.check()  # the replicas' collectives are ready")
    bound: dict[str, str] = {}  # symbol -> how it was bound (for messages)
    for sym, (value, where) in static_dims.items():
        e(f"d_{sym} = {value}  # {where}")
        bound[sym] = where
    first_binding: dict[str, tuple[str, int]] = {}

    def check_shape(var: str, leaf_index: int, leaf: Leaf, label: str) -> None:
        t = leaf.type
        e(f"_s = _shape({var})")
        e(f"if len(_s) != {t.rank}:")
        e(f"_fail_rank({leaf_index}, _s)", 2)
        for k, d in enumerate(t.shape):
            if d.is_literal:
                cond = f"_s[{k}] != {d.value}"
                e(f"if {'_s[%d] is not None and ' % k if dynamic_sizes else ''}{cond}:")
                e(f"_fail_size({leaf_index}, {k}, _s, {d.value}, {'the declaration'!r})", 2)
                continue
            sym = d.sym
            if sym in bound:
                if dynamic_sizes and sym not in static_dims:
                    e(f"d_{sym} = _merge_size({leaf_index}, {k}, _s, d_{sym}, {bound[sym]!r})")
                else:
                    e(f"if {'_s[%d] is not None and ' % k if dynamic_sizes else ''}_s[{k}] != d_{sym}:")
                    e(f"_fail_size({leaf_index}, {k}, _s, d_{sym}, {bound[sym]!r})", 2)
            else:
                e(f"d_{sym} = _s[{k}]")
                bound[sym] = f"from `{label}` (axis {k})"
                first_binding[sym] = (var, k)

    pred_vars: list[str] = []
    # After the compute dtype is known: dtype conversions, and the shape checks of params
    # (which are converted first); each entry is a line, or (var, leaf index, leaf) to check.
    conversions: list = []
    for d in call_decls:
        if d.is_record:
            e(f"_record({len(leaves)}, a_{d.name}, {[list(l.path) for l in d.leaves]!r})")
        for leaf in d.leaves:
            var = leaf_var(d.kind, d.name, leaf.path)
            idx = len(leaves)
            leaves.append(leaf)
            source = f"a_{d.name}" + "".join(f"[{p!r}]" for p in leaf.path)
            kind = leaf.type.dtype.value
            e(f"{var} = _arg_{kind}({idx}, {source})")
            check_shape(var, idx, leaf, leaf.label)
            if d.kind == "pred":
                pred_vars.append(var)
            if leaf.type.dtype is FLOAT:
                conversions.append(f"{var} = _to_float({var}, _cdt)")
            elif leaf.type.dtype is INT:
                conversions.append(f"{var} = _to_int({var})")
    for d in param_decls:
        leaf = d.leaves[0]
        idx = len(leaves)
        leaves.append(leaf)
        conversions.append(f"p_{d.name} = _param({idx}, p_{d.name}, _cdt, {pred_vars[0] if pred_vars else 'None'})")
        if leaf.type.rank:
            conversions.append((f"p_{d.name}", idx, leaf))
    for c in context_decls:
        for leaf in c.leaves:
            idx = len(leaves)
            leaves.append(leaf)
            var = leaf_var("context", c.name, leaf.path)
            conversions.append(f"{var} = _context({idx}, _cdt, {pred_vars[0] if pred_vars else 'None'})")

    for constraint in checked.constraints:
        dim = constraint.dim
        if dim.sym in bound or dim.sym in static_dims:
            size = printer.dim(dim) if dim.sym.isidentifier() else None
            if size:
                guard = f"d_{dim.sym} is not None and " if dynamic_sizes else ""
                e(f"if {guard}{size} < {constraint.minimum}:")
                e(f"_fail_min({checked.constraints.index(constraint)}, {size})", 2)

    e(f"_cdt = _compute_dtype({', '.join(pred_vars)})")
    e(f"_dev = _device({pred_vars[0]})")
    for line in conversions:
        if isinstance(line, tuple):
            var, idx, leaf = line
            check_shape(var, idx, leaf, leaf.label)
        else:
            e(line)
    if dynamic_sizes:
        for sym in dims_needed:
            if sym in first_binding and sym not in static_dims:
                var, k = first_binding[sym]
                e(f"if d_{sym} is None:")
                e(f"d_{sym} = _dynamic_size({var}, {k})", 2)
    e(f"return compute({', '.join(compute_params)})")

    header = [
        f"# Generated by lossdsl from {source_name or checked.source.name} for {printer_cls.backend}.",
        "# Readable on purpose; regenerated on every compile, so edit the .loss file instead.",
        "# `rt`, `_k` and the other `_` names are lossdsl's run-time support for this backend.",
        *printer_cls.imports,
        "",
        "",
        f"def compute({', '.join(compute_params)}):",
        *body.lines,
        "",
        "",
        f"def entry({', '.join(entry_args)}):",
        *e.lines,
        "",
    ]
    return Generated("\n".join(header), entry_args, leaves, static_args, dict(static_dims))


__all__ = ["generate", "Generated", "leaf_var", "BOOL"]
