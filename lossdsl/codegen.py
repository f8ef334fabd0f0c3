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
from .columns import ColumnSplit, column_splits
from .functions import FUNCTIONS, index_uses
from .ir import Apply, Arg, Const, DimSize, Index, Node, topological
from .kernels import reduces_in_a_kernel
from .source import Span
from .types import FLOAT, INT, Dim


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
    index_reads: list[IndexRead] = field(default_factory=list)  # behind `_check_index(k, ...)`
    mean_static_args: list[str] | None = None  # compute_mean's, where the module has one


@dataclass(frozen=True)
class IndexRead:
    """An int argument (or a slice of one) that the loss reads as an index, for E812."""

    leaf: int  # index into Generated.leaves
    label: str  # as the user wrote it: `y`, `pairs[:, 0]`
    span: Span  # where to point: the declaration, or the slice in the expression
    dim: Dim  # the axis it indexes
    where: str  # how that axis's size was bound


class _Lines:
    def __init__(self, indent: int = 1) -> None:
        self.lines: list[str] = []
        self.indent = indent

    def __call__(self, text: str, indent: int | None = None) -> None:
        self.lines.append("    " * (self.indent if indent is None else indent) + text)


def _dims_used(root: Node) -> list[str]:
    out: list[str] = []

    def add(d: Dim | None) -> None:
        for t in d.symbols() if d is not None else ():
            if t not in out:
                out.append(t)

    seen: set[int] = set()
    pending = [root]
    while pending:
        for n in topological(pending.pop(), seen=seen):
            if isinstance(n, DimSize):
                add(n.dim)
            elif isinstance(n, Apply):
                if n.fn == "kernel":  # a fused call falls back to its decomposed IR, with its sizes
                    pending.append(n.attr("decomposed"))
                for _, v in n.attrs:  # sizes a function is given (`one_hot`'s depth, `unflatten`'s sizes)
                    for d in v if isinstance(v, tuple) else (v,):
                        if isinstance(d, Dim):
                            add(d)
    return out


def _let_namer(checked: CheckedModule, order: list[Node]):
    """node -> the `let` it is bound to (the outermost node with the let's span), else None."""
    let_spans = {}
    for name, node in checked.lets.items():
        let_spans[(node.span.line, node.span.col, node.span.end_line, node.span.end_col)] = name
    last_with_span: dict[tuple, int] = {}
    for n in order:
        if n.span is not None and not isinstance(n, (Arg, Const, DimSize)):
            last_with_span[(n.span.line, n.span.col, n.span.end_line, n.span.end_col)] = id(n)

    def let_name_of(n: Node) -> str | None:
        if n.span is None:
            return None
        key = (n.span.line, n.span.col, n.span.end_line, n.span.end_col)
        return let_spans.get(key) if last_with_span.get(key) == id(n) else None

    return let_name_of


def _emit_split(split: ColumnSplit, printer, names, let_name_of, lines, new_var) -> None:
    """One split of a tensor read column by column, unpacked into a variable per column read
    (the `let` it is bound to, where it is one); every read of a column is that variable."""
    targets = []
    for k in range(split.size):
        reads = split.reads.get(k)
        if not reads:
            targets.append("_")
            continue
        let_name = next((m for m in (let_name_of(r) if let_name_of else None for r in reads) if m), None)
        var = new_var(let_name)
        targets.append(var)
        names.update((id(r), var) for r in reads)
    lines(f"{', '.join(targets)} = {printer.split_columns(printer.expr(split.base), split.size)}")


def _emit(
    order,
    root,
    printer,
    names,
    taken,
    let_name_of,
    uses,
    lines,
    force,
    temp_prefix="t",
    skip=frozenset(),
    splits: dict[int, ColumnSplit] | None = None,
) -> None:
    """Assignments for the nodes that get a variable: a `let`, a node used twice, a forced one,
    a tensor's columns where `splits` (lossdsl/columns.py) says they come from one split."""
    temp = sum(1 for v in taken if v.startswith(temp_prefix) and v[len(temp_prefix) :].isdigit())

    def new_var(let_name: str | None) -> str:
        """`l_<let>` (numbered where taken) for a `let`, else the next free temporary."""
        nonlocal temp
        if let_name is not None:
            var = f"l_{let_name}"
            k = 2
            while var in taken:
                var, k = f"l_{let_name}_{k}", k + 1
        else:
            temp += 1
            var = f"{temp_prefix}{temp}"
            while var in taken:
                temp += 1
                var = f"{temp_prefix}{temp}"
        taken.add(var)
        return var

    for n in order:
        if isinstance(n, (Arg, Const, DimSize)) or n is root or id(n) in names or id(n) in skip:
            continue
        if splits and id(n) in splits:
            _emit_split(splits[id(n)], printer, names, let_name_of, lines, new_var)
            continue
        let_name = let_name_of(n) if let_name_of else None
        if let_name is None and uses.get(id(n), 0) < 2 and id(n) not in force:
            continue
        var = new_var(let_name)
        lines(f"{var} = {printer.expr(n)}")
        names[id(n)] = var


def _reads_only_the_shape(user: Apply, n: Node) -> bool:
    """`user` reads `n` only for its shape (`like` in the derived backward's bookkeeping), so the
    backward needs to save its shape, not its value."""
    shape_only = FUNCTIONS[user.fn].shape_only
    return bool(shape_only) and all(a is not n for i, a in enumerate(user.args) if i not in shape_only)


# Below this many pred elements the derived backward (a Python backward function) costs more
# in overhead than it saves in passes over the data: measured with benches/run.py (the robust
# case and the seeds' per-sample weights).
FUSED_MIN_ELEMENTS = 1 << 16


@dataclass
class DerivedBackward:
    """A loss split for a backend that runs a backward derived from the IR (lossdsl/autodiff.py):
    what the printer's `derived_compute` needs to write it as its framework's custom-gradient
    function. Assignments are unindented lines; the plain compute is the function `_plain`."""

    tensors: list[str]  # the compute's tensor parameters
    statics: list[str]  # its other parameters (the compute dtype, the device, sizes)
    preds: list[str]  # the tensor parameters that are preds
    forward: list[str]  # assignments of the forward
    out: str  # the forward's value
    saved: list[str]  # forward values the backward reads
    shaped: list[str]  # forward values whose shape alone the backward reads
    shape_vars: list[str]  # the backward's names for those shapes
    seed: str  # the backward's name for the gradient of the loss
    backward: list[str]  # assignments of the backward
    grads: list[str]  # the gradient of each tensor parameter ("None" where it has none)
    min_elements: int  # below this many pred elements the plain compute is cheaper

    @property
    def params(self) -> list[str]:
        return self.tensors + self.statics


def _derive_backward(
    root, order, derivative, used_args, printer, names, let_name_of, leaf_names, static_args, uses
) -> DerivedBackward:
    """The forward, saving only what the derived backward reads, and the backward as one function."""
    grad_roots = [derivative.grads.get((a.name, a.path)) if a.kind == "pred" else None for a in used_args]
    forward_ids = {id(n) for n in order}
    bw_order: list[Node] = []
    seen: set[int] = set()
    for g in grad_roots:
        if g is not None:  # forward nodes are leaves here: the backward reads them, saved
            bw_order += topological(g, stop=forward_ids, seen=seen)
    value_refs: list[Node] = []
    shape_refs: list[Node] = []
    for n in bw_order:
        if id(n) not in forward_ids:
            continue
        if isinstance(n, (Const, DimSize)):
            continue
        users = [u for u in bw_order if id(u) not in forward_ids and any(a is n for a in u.inputs)]
        if all(isinstance(u, Apply) and _reads_only_the_shape(u, n) for u in users):
            shape_refs.append(n)
        else:
            value_refs.append(n)
    # forward
    fw = _Lines(0)
    taken: set[str] = set(names.values())
    force = {id(n) for n in value_refs + shape_refs}
    _emit(order, root, printer, names, taken, let_name_of, uses, fw, force)
    out = names.get(id(root)) or printer.expr(root)
    if id(root) in force and id(root) not in names:
        fw("out = " + out)
        names[id(root)] = "out"
        out = "out"
    # backward: forward values under their forward names, shapes under s_<name>
    shape_names = {id(n): "s_" + names[id(n)] for n in shape_refs}
    bnames = {id(n): names[id(n)] for n in value_refs}
    bnames.update({id(a): names[id(a)] for a in used_args})
    seed = "_g"
    bnames[id(derivative.seed)] = seed
    bprinter = type(printer)(bnames)
    bprinter.shape_names = shape_names
    buses: dict[int, int] = {}
    for n in bw_order:
        for c in n.inputs:
            buses[id(c)] = buses.get(id(c), 0) + 1
    btaken = set(bnames.values()) | set(taken)
    bw = _Lines(0)
    for g in grad_roots:
        if g is not None:
            order_g = topological(g, stop=forward_ids)
            # Forward nodes are read from what forward saved, never computed again.
            _emit(order_g, g, bprinter, bnames, btaken, None, buses, bw, set(), temp_prefix="b", skip=forward_ids)
    return DerivedBackward(
        tensors=leaf_names,
        statics=static_args,
        preds=[names[id(a)] for a in used_args if a.kind == "pred"],
        forward=fw.lines,
        out=out,
        saved=[names[id(n)] for n in value_refs],
        shaped=[names[id(n)] for n in shape_refs],
        shape_vars=list(shape_names.values()),
        seed=seed,
        backward=bw.lines,
        grads=[bprinter.expr(g) if g is not None else "None" for g in grad_roots],
        min_elements=FUSED_MIN_ELEMENTS,
    )


def _read_indices(root: Node) -> list[tuple[Node, Arg, Dim]]:
    """What the lowered IR reads as indices unguarded, so that every value is read: int arguments
    and basic slices of them (`pairs[:, 0]`), each with its argument and the dimension indexed.
    A read under a `where` guard (std's cross-entropy with its ignore label) reads only the lanes
    the condition keeps, and is left out."""
    out: dict[int, tuple[Node, Arg, Dim]] = {}
    seen: set[int] = set()
    pending = [root]
    while pending:
        for node in topological(pending.pop(), seen=seen):
            if isinstance(node, Apply) and node.fn == "kernel":
                pending.append(node.attr("decomposed"))  # a fused call indexes as its decomposed IR does
            for idx, dim in index_uses(node):
                base = idx
                while isinstance(base, Index):
                    base = base.x
                if isinstance(base, Arg) and id(idx) not in out:
                    out[id(idx)] = (idx, base, dim)
    return list(out.values())


def generate(
    checked: CheckedModule,
    root: Node,
    printer_cls,
    *,
    static_dims: dict[str, tuple[int, str]],
    dynamic_sizes: bool = False,
    source_name: str = "",
    sharded: bool | str = False,
    derivative=None,
    check_indices: bool = True,
    mean_root: Node | None = None,
    check_context: bool = False,
) -> Generated:
    """Python source for `entry` and `compute`. `static_dims` are sizes known before any call
    (from the spec itself, context tensors and params bound at compile time). `check_indices`
    makes the entry check the values of int arguments read as indices (one read from the device).
    `mean_root`, for a per-sample loss: its mean over the samples, lowered with the kernels a
    fused call takes reduced (`compute_mean`, which `entry(..., _mean=True)` calls).
    `check_context` makes it check the shapes of context tensors at each call too, for code that
    takes them after it is generated (a standalone module's `bind`)."""
    compute = _write_compute(checked, root, printer_cls, derivative)
    mean = _write_compute(checked, mean_root, printer_cls, None, name="compute_mean") if mean_root is not None else None
    entry = _EntryWriter(checked, printer_cls(dict(compute.arg_names)), static_dims, dynamic_sizes)
    entry.check_context = check_context
    entry.write(root, compute, sharded=sharded, check_indices=check_indices, mean=mean)
    source = [
        f"# Generated by lossdsl from {source_name or checked.source.name} for {printer_cls.backend}.",
        "# Readable on purpose; regenerated on every compile, so edit the .loss file instead.",
        "# `rt`, `_k` and the other `_` names are lossdsl's run-time support for this backend.",
        *printer_cls.imports,
        "",
        "",
        *compute.lines,
        "",
        "",
        *((*mean.lines, "", "") if mean is not None else ()),
        f"def entry({', '.join(entry.args + (['_given=None'] if checked.of_kind('context') else []))}):",
        *entry.lines.lines,
        "",
    ]
    return Generated(
        "\n".join(source),
        entry.args,
        entry.leaves,
        compute.static_args,
        dict(static_dims),
        entry.index_reads,
        mean.static_args if mean is not None else None,
    )


@dataclass
class _Compute:
    lines: list[str]  # the module's compute function (and what it calls)
    arg_names: dict[int, str]  # id of an Arg -> its variable
    params: list[str]  # compute's parameters: the tensors, then static_args
    static_args: list[str]
    dims_needed: list[str]  # the dimension symbols compute reads
    numbers: list[str] = field(default_factory=list)  # params a fused call takes as Python numbers
    derived_preds: list[str] = field(default_factory=list)  # with a derived backward: the preds it takes
    reduced_kernel: bool = False  # whether it reaches a fused call that reduces


def _numbers(order: list[Node], printer_cls) -> list[str]:
    """The params the printed code also takes as Python numbers (a fused call's hyperparameters,
    lossdsl/kernels.py; an exponent, on torch): compute gets each as `n_<name>` too, a Python
    number where the caller gave one (else None)."""
    out: list[str] = []
    for n in order:
        out += [p for p in printer_cls.number_params(n) if p not in out]
    return out


def _write_compute(checked: CheckedModule, root: Node, printer_cls, derivative, name: str = "compute") -> _Compute:
    """`compute`: one framework call per node, a variable per `let` and per shared node. With a
    derived backward, the plain compute is `_plain`, and the backend's printer writes the rest."""
    order = topological(root)
    decl_rank = {d.name: i for i, d in enumerate(checked.declarations)}
    used_args = sorted((n for n in order if isinstance(n, Arg)), key=lambda n: (decl_rank.get(n.name, 0), n.path))
    arg_names = {id(n): leaf_var(n.kind, n.name, n.path) for n in used_args}
    uses: dict[int, int] = {}
    for n in order:
        for c in n.inputs:
            uses[id(c)] = uses.get(id(c), 0) + 1
    let_name_of = _let_namer(checked, order)
    dims_needed = _dims_used(root)
    if derivative is not None:
        for g in derivative.grads.values():
            dims_needed += [d for d in _dims_used(g) if d not in dims_needed]
    numbers = _numbers(order, printer_cls)
    static_args = ["_cdt", "_dev"] + [f"d_{s}" for s in dims_needed] + [f"n_{p}" for p in numbers]
    leaf_names = [arg_names[id(n)] for n in used_args]
    params = leaf_names + static_args
    # The plain compute: one framework call per node, the framework's autodiff.
    plain_names = dict(arg_names)
    body = _Lines(1)
    printer = printer_cls(plain_names)
    splits = column_splits(order, root) if printer.SPLITS_COLUMNS else None
    _emit(order, root, printer, plain_names, set(arg_names.values()), let_name_of, uses, body, set(), splits=splits)
    body(f"return {printer.expr(root)}")
    if derivative is None:
        lines = [f"def {name}({', '.join(params)}):", *body.lines]
    else:
        names = dict(arg_names)
        printer = printer_cls(names)
        plan = _derive_backward(
            root, order, derivative, used_args, printer, names, let_name_of, leaf_names, static_args, uses
        )
        lines = [f"def _plain({', '.join(params)}):", *body.lines, "", "", *printer.derived_compute(plan)]
    reduced = reduces_in_a_kernel(root)
    derived_preds = plan.preds if derivative is not None else []
    return _Compute(lines, arg_names, params, static_args, dims_needed, numbers, derived_preds, reduced)


class _EntryWriter:
    """`entry`: unpacks the call's arguments, checks each one's dtype kind, rank and sizes against
    its declaration and the sizes seen so far, converts dtypes, binds params and context, checks
    constraints and index values, then calls compute. Straight-line code, so that a call costs
    what hand-written checks cost."""

    def __init__(self, checked: CheckedModule, printer, static_dims: dict[str, tuple[int, str]], dynamic_sizes: bool):
        self.checked = checked
        self.printer = printer  # knows the arguments' variables, no temporaries
        self.static_dims = static_dims
        self.dynamic_sizes = dynamic_sizes
        self.lines = _Lines()
        self.args = [f"a_{d.name}" for d in checked.call_args] + [f"p_{d.name}" for d in checked.of_kind("param")]
        self.leaves: list[Leaf] = []
        self.leaf_of: dict[tuple[str, tuple[str, ...]], int] = {}  # (name, path) -> index into leaves
        self.bound: dict[str, str] = {}  # symbol -> how it was bound (for messages)
        self.first_binding: dict[str, tuple[str, int]] = {}  # symbol -> (variable, axis) that bound it
        self.pred_vars: list[str] = []
        self.index_reads: list[IndexRead] = []
        self.numbers: set[str] = set()  # params also passed as Python numbers (`n_<name>`)
        self.check_context = False  # context shapes are checked when it is bound, unless this is set
        self.sharded: str | None = None  # the dimension split across replicas, if any

    def write(self, root: Node, compute: _Compute, *, sharded: bool | str, check_indices: bool, mean=None) -> None:
        e = self.lines
        self.sharded = sharded if isinstance(sharded, str) else None
        self.numbers = set(compute.numbers) | set(mean.numbers if mean is not None else ())
        if mean is not None:
            self.args.append("_mean=False")
        if sharded:
            e("_dist.check()  # the replicas' collectives are ready")
        for sym, (value, where) in self.static_dims.items():
            e(f"d_{sym} = {value}  # {where}")
            self.bound[sym] = where
        # After the compute dtype is known: dtype conversions, and the shape checks of params
        # (which are converted first); each entry is a line, or (var, leaf index, leaf) to check.
        conversions = self._call_args() + self._params_and_context()
        self._constraints()
        e(f"_cdt = _compute_dtype({', '.join(self.pred_vars)})")
        e(f"_dev = _device({self.pred_vars[0]})")
        for line in conversions:
            if isinstance(line, tuple):
                var, idx, leaf = line
                self._check_shape(var, idx, leaf, leaf.label)
            else:
                e(line)
        needed = compute.dims_needed + [
            d for d in (mean.dims_needed if mean is not None else ()) if d not in compute.dims_needed
        ]
        if self.dynamic_sizes:
            for sym in needed:
                if sym in self.first_binding and sym not in self.static_dims:
                    var, k = self.first_binding[sym]
                    e(f"if d_{sym} is None:")
                    e(f"d_{sym} = _dynamic_size({var}, {k})", 2)
        if check_indices:
            self._index_checks(root)
        # Where an index check could not raise (under tracing), the loss is NaN if an index was
        # outside its axis (docs/language.md §3, "Index values under tracing").
        # Sharded: the replicas agree on it (one replica's bad id makes every replica's loss NaN).
        agree = ", _dist, _dev" if sharded else ""
        guard = f"_guard_indices({{}}, _unchecked{agree})" if self.index_reads else "{}"
        if mean is not None:
            # The mean of an empty batch is 0 (docs/language.md §6), which no fused mean gives:
            # there, and where the batch size is unknown until the graph runs, the caller reduces.
            e("if _mean:")
            e(f"if _known_positive({self.printer.dim(root.type.shape[0])}):", 2)
            call = f"compute_mean({', '.join(mean.params)})"
            if compute.derived_preds and not mean.reduced_kernel:  # one mean, or a derived backward
                per_sample = f"compute({', '.join(compute.params)})"
                call = self.printer.api_mean_choice(compute.derived_preds, FUSED_MIN_ELEMENTS, call, per_sample)
            e("return " + guard.format(call), 3)
            e("return None", 2)
        e("return " + guard.format(f"compute({', '.join(compute.params)})"))

    def _add_leaf(self, leaf: Leaf) -> int:
        self.leaves.append(leaf)
        return len(self.leaves) - 1

    def _maybe(self, k: int) -> str:
        """The guard of a size check where the size may be unknown until the graph runs."""
        return f"_s[{k}] is not None and " if self.dynamic_sizes else ""

    def _check_shape(self, var: str, leaf_index: int, leaf: Leaf, label: str) -> None:
        e, t = self.lines, leaf.type
        e(f"_s = _shape({var})")
        e(f"if len(_s) != {t.rank}:")
        e(f"_fail_rank({leaf_index}, _s)", 2)
        for k, d in enumerate(t.shape):
            if d.is_literal:
                e(f"if {self._maybe(k)}_s[{k}] != {d.value}:")
                e(f"_fail_size({leaf_index}, {k}, _s, {d.value}, {'the declaration'!r})", 2)
                continue
            sym = d.sym
            assert sym is not None  # not is_literal
            if sym in self.bound:
                if self.dynamic_sizes and sym not in self.static_dims:
                    e(f"d_{sym} = _merge_size({leaf_index}, {k}, _s, d_{sym}, {self.bound[sym]!r})")
                else:
                    e(f"if {self._maybe(k)}_s[{k}] != d_{sym}:")
                    e(f"_fail_size({leaf_index}, {k}, _s, d_{sym}, {self.bound[sym]!r})", 2)
            else:
                e(f"d_{sym} = _s[{k}]")
                self.bound[sym] = f"from `{label}` (axis {k})"
                self.first_binding[sym] = (var, k)

    def _call_args(self) -> list:
        """Unpack and check each argument of the call (record fields one by one); return their
        dtype conversions."""
        e = self.lines
        conversions: list = []
        for d in self.checked.call_args:
            if d.is_record:
                e(f"_record({len(self.leaves)}, a_{d.name}, {[list(lf.path) for lf in d.leaves]!r})")
            for leaf in d.leaves:
                var = leaf_var(d.kind, d.name, leaf.path)
                idx = self._add_leaf(leaf)
                source = f"a_{d.name}" + "".join(f"[{p!r}]" for p in leaf.path)
                e(f"{var} = _arg_{leaf.type.dtype.value}({idx}, {source})")
                self._check_shape(var, idx, leaf, leaf.label)
                if d.kind == "pred":
                    self.pred_vars.append(var)
                if leaf.type.dtype is FLOAT:
                    conversions.append(f"{var} = _to_float({var}, _cdt)")
                elif leaf.type.dtype is INT:
                    conversions.append(f"{var} = _to_int({var})")
                self.leaf_of[(d.name, leaf.path)] = idx
        return conversions

    def _params_and_context(self) -> list:
        """Params (given at the call or bound) and context tensors, in the compute dtype."""
        like = self.pred_vars[0] if self.pred_vars else "None"
        conversions: list = []
        for d in self.checked.of_kind("param"):
            leaf = d.leaves[0]
            idx = self._add_leaf(leaf)
            if d.name in self.numbers:  # before it becomes a tensor: the fused call wants a number
                conversions.append(f"n_{d.name} = _number({idx}, p_{d.name})")
            conversions.append(f"p_{d.name} = _param({idx}, p_{d.name}, _cdt, {like})")
            if leaf.type.rank:
                conversions.append((f"p_{d.name}", idx, leaf))
        for c in self.checked.of_kind("context"):
            for leaf in c.leaves:
                idx = self._add_leaf(leaf)
                var = leaf_var("context", c.name, leaf.path)
                conversions.append(f"{var} = _context({idx}, _cdt, {like}, _given)")
                if self.check_context:
                    conversions.append((var, idx, leaf))
                self.leaf_of[(c.name, leaf.path)] = idx
        return conversions

    def _constraints(self) -> None:
        e = self.lines
        for i, constraint in enumerate(self.checked.constraints):
            dim = constraint.dim
            if dim.sym in self.bound or dim.sym in self.static_dims:
                size = self.printer.dim(dim) if dim.sym.isidentifier() else None
                if size:
                    guard = f"d_{dim.sym} is not None and " if self.dynamic_sizes else ""
                    e(f"if {guard}{size} < {constraint.minimum}:")
                    e(f"_fail_min({i}, {size})", 2)

    def _index_checks(self, root: Node) -> None:
        # Out-of-range index values: NumPy, torch and TF (on CPU) raise their own errors, JAX and
        # GPUs clamp or read garbage; this gives one LossError everywhere (under tracing, an
        # assertion in the graph or a NaN loss: Runtime.check_index).
        for node, arg, dim in _read_indices(root):
            idx = self.leaf_of.get((arg.name, arg.path))
            if idx is None:  # a param: bound or defaulted, not an index in any spec we know of
                continue
            if not self.index_reads:
                self.lines("_unchecked = []  # in-graph range flags of the checks that could not raise")
            leaf = self.leaves[idx]
            label = leaf.label if node is arg else (node.span.text or leaf.label)
            where = "the declaration" if dim.sym is None else self.bound.get(dim.sym, "")
            self.index_reads.append(IndexRead(idx, label, leaf.span if node is arg else node.span, dim, where))
            guard = f"if d_{dim.sym} is not None: " if self.dynamic_sizes and dim.sym is not None else ""
            size = self.printer.dim(dim)
            if dim.sym is not None and dim.sym == self.sharded:  # an index into a split axis is global
                size = f"_dist.total({size}, _dev)"
            check = f"_check_index({len(self.index_reads) - 1}, {self.printer.expr(node)}, {size}, _unchecked)"
            # An argument read whole is rebound to what the check returns: under tracing with
            # check_values, a tensor that depends on the check, so the gather waits for it.
            self.lines(f"{guard}{self.printer.expr(node)} = {check}" if node is arg else f"{guard}{check}")


__all__ = ["Generated", "generate", "leaf_var"]
