"""The names a file defines: declarations (pred, target, input, context, param) with their
types and defaults, `let`s and `def`s (docs/language.md §1-§2), and which `def`s recurse."""

from __future__ import annotations

from collections.abc import Iterator

from .. import syntax as S
from ..checked import Declaration, Leaf
from ..domains import from_syntax
from ..functions import USER_FUNCTIONS
from ..source import Span
from ..types import BOOL, FLOAT, INT, Dim, DType, RecordType, TensorType, ValueType
from .dims import Dims
from .report import Reporter
from .uses import UsedDef, Uses

# Keyword arguments of the compiled loss (docs/language.md §6), so not names a file may define.
RESERVED = ("reduction", "sample_weight")


class Names:
    """Every name the file defines, by kind, filled by `declare`."""

    def __init__(self, report: Reporter, dims: Dims, broken: set[str]):
        self.report = report
        self.dims = dims
        # Names of statements that failed to parse or to declare: their uses stay quiet.
        self.broken = broken
        self.decls: dict[str, Declaration] = {}
        self.decl_order: list[Declaration] = []
        self.lets: dict[str, S.Let] = {}
        self.defs: dict[str, S.Def] = {}
        self.known_symbols: set[str] = set()  # dimension symbols used in a declaration
        self.recursive_defs: set[str] = set()

    def is_value(self, name: str) -> bool:
        """A declared or `let`-bound name (outside any `def`)."""
        return name in self.decls or name in self.lets

    # ---- statements -------------------------------------------------------------------

    def declare(self, module: S.Module) -> None:
        seen: dict[str, Span] = {}
        for stmt in module.statements:
            if isinstance(stmt, (S.LossStmt, S.Use)):
                continue
            name = stmt.name
            span = stmt.name_span
            if name in RESERVED:
                self.broken.add(name)  # its uses stay quiet
                self.report.error(
                    f"`{name}` is reserved for the Python API and cannot be declared",
                    span,
                    "E207",
                    help=f"`{name}=` is passed when the compiled loss is called (docs/language.md "
                    "§6); choose another name",
                )
                continue
            if name in seen:
                self.report.error(
                    f"`{name}` is defined twice",
                    span,
                    "E203",
                    notes=[f"first defined at line {seen[name].line}, column {seen[name].col}"],
                    help="a name is defined once; rename one of them",
                )
                continue
            seen[name] = span
            if isinstance(stmt, S.Decl):
                decl = self._declaration(stmt)
                if decl is not None:
                    self.decls[name] = decl
                    self.decl_order.append(decl)
                else:
                    self.broken.add(name)
            elif isinstance(stmt, S.Let):
                self.lets[name] = stmt
            elif isinstance(stmt, S.Def):
                if name in USER_FUNCTIONS:
                    self.report.error(
                        f"`{name}` is a built-in function and cannot be redefined",
                        span,
                        "E211",
                        help="choose another name for your function",
                    )
                    continue
                self.defs[name] = stmt
        if any(isinstance(s, S.Use) for s in module.statements):
            self._declare_used(module, seen)

    def _declare_used(self, module: S.Module, seen: dict[str, Span]) -> None:
        """The `def`s the file's `use`s bring in; a name defined twice is E214 naming both places."""
        brought: dict[str, UsedDef] = {}
        for used in Uses(self.report).collect(module):
            d = used.definition
            there = f"{d.name_span.path}:{d.name_span.line}:{d.name_span.col}"
            if d.name in seen:
                here = seen[d.name]
                self.report.error(
                    f"`{d.name}` is defined here and in a file this one uses",
                    here,
                    "E214",
                    notes=[
                        f"also defined at {there}, brought in by the `use` at line {used.via.span.line}",
                    ],
                    help="rename one of them",
                )
                continue
            if d.name in brought:
                first = brought[d.name].definition.name_span
                self.report.error(
                    f"`{d.name}` is defined in two used files",
                    used.via.span,
                    "E214",
                    notes=[
                        f"defined at {first.path}:{first.line}:{first.col}",
                        f"and at {there}",
                    ],
                    help="rename one of them, or use only one of the files",
                )
                continue
            if d.name in USER_FUNCTIONS:
                self.report.error(
                    f"`{d.name}` is a built-in function and cannot be redefined",
                    d.name_span,
                    "E211",
                    notes=[f"brought in by the `use` at line {used.via.span.line}"],
                    help="choose another name for the function",
                )
                continue
            brought[d.name] = used
            self.defs[d.name] = d

    def _declaration(self, d: S.Decl) -> Declaration | None:
        vtype = self._value_type(d.type)
        if vtype is None:
            return None
        # A declaration with an error is still declared, so that its uses do not cascade.
        decl = Declaration(d.kind, d.name, vtype, d.span, d.type.span, d.name_span)
        if d.kind == "pred" and not (isinstance(vtype, TensorType) and vtype.dtype is FLOAT):
            self.report.error(
                f"a pred must be a float tensor, found `{vtype}`",
                d.type.span,
                "E306",
                help="declare one `pred` per model output, e.g. `pred yhat: float[B, C]`",
            )
        if d.kind == "param" and not isinstance(vtype, TensorType):
            self.report.error(
                f"a param must be a tensor, found the record `{vtype}`",
                d.type.span,
                "E309",
                help="declare one param per value",
            )
        if d.default is not None:
            if d.kind != "param":
                self.report.error(
                    f"only a param may have a default; `{d.name}` is a {d.kind}",
                    d.default.span,
                    "E305",
                    help="a default belongs to a hyperparameter: `param alpha: float = 0.5`",
                )
            elif isinstance(vtype, TensorType) and self._check_default(d, vtype):
                decl.default, decl.has_default = d.default.value, True
        for path, texpr in _leaves(d.type):
            t = _tensor_type(texpr)
            domain = from_syntax(texpr.domain) if texpr.domain is not None else None
            decl.leaves.append(Leaf(decl, path, t, texpr.span, tuple(dim.span for dim in texpr.dims), domain))
            decl.leaf_spans[path] = texpr.span
        return decl

    def _value_type(self, texpr: S.TypeExpr) -> ValueType | None:
        if isinstance(texpr, S.TensorTypeExpr):
            for d in texpr.dims:
                if isinstance(d, S.DimSymbol):
                    self.known_symbols.add(d.name)
            return _tensor_type(texpr)
        fields = []
        for f in texpr.fields:
            sub = self._value_type(f.type)
            if sub is None:
                return None
            fields.append((f.name, sub))
        return RecordType(tuple(fields))

    # ---- a param's default ------------------------------------------------------------------

    def _check_default(self, d: S.Decl, t: TensorType) -> bool:
        """The default's values have the declared dtype and its nesting the declared shape; a
        dimension symbol gets its size from it."""
        lit = d.default
        assert lit is not None
        want = {BOOL: "`true` or `false`", INT: "an integer", FLOAT: "a number"}[t.dtype]
        bad = next((v for v in _flat(lit.value) if not _scalar_fits(v, t.dtype)), None)
        if bad is not None:
            shown = "true" if bad is True else "false" if bad is False else repr(bad)
            self.report.error(f"the default of `{d.name}: {t}` must be {want}, found `{shown}`", lit.span, "E305")
            return False
        shape = _list_shape(lit.value)
        if shape is None:
            self.report.error(
                f"the default of `{d.name}` is a ragged list",
                lit.span,
                "E305",
                help="every row of a list default must have the same length",
            )
            return False
        if len(shape) != t.rank:
            what = "a number" if not shape else f"a list of shape {list(shape)}"
            self.report.error(f"the default of `{d.name}: {t}` must have rank {t.rank}, found {what}", lit.span, "E305")
            return False
        for dim, n in zip(t.shape, shape):
            if dim.is_literal and dim.value != n:
                self.report.error(
                    f"the default of `{d.name}: {t}` has {n} entries where `{dim}` are declared", lit.span, "E305"
                )
                return False
            if dim.is_symbol:
                prev = self.dims.bound.get(dim.sym)  # type: ignore[arg-type]
                if prev is not None and prev[0] != n:
                    self.report.error(
                        f"`{dim.sym}` is {prev[0]} {prev[1]} but {n} from the default of `{d.name}`", lit.span, "E402"
                    )
                    return False
                self.dims.bind(dim.sym, n, f"from the default of `{d.name}` (line {lit.span.line})")  # type: ignore
        return True

    # ---- recursion among defs ------------------------------------------------------------

    def find_recursive_defs(self) -> None:
        """A `def` is inlined at each call, so one that calls itself, directly or not, is an error."""
        calls: dict[str, set[str]] = {}
        for name, d in self.defs.items():
            params = set(d.params)
            calls[name] = {
                e.func for e in S.walk(d.body) if isinstance(e, S.Call) and e.func in self.defs and e.func not in params
            }
        for start in self.defs:
            path = _cycle_from(start, calls)
            if path and start not in self.recursive_defs:
                self.recursive_defs.update(path[:-1])
                chain = " -> ".join(f"`{p}`" for p in path)
                self.report.error(
                    f"`{start}` calls itself ({chain}); a `def` is inlined and cannot recurse",
                    self.defs[start].name_span,
                    "E206",
                    help="write the repetition with a reduction or `cumsum` instead",
                )


def _cycle_from(start: str, calls: dict[str, set[str]]) -> list[str] | None:
    stack = [(start, [start])]
    seen = set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(calls.get(node, ())):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def _leaves(texpr: S.TypeExpr, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], S.TensorTypeExpr]]:
    """Each tensor of a declared type, with its field path inside the record."""
    if isinstance(texpr, S.TensorTypeExpr):
        yield path, texpr
    else:
        for f in texpr.fields:
            yield from _leaves(f.type, path + (f.name,))


def _tensor_type(texpr: S.TensorTypeExpr) -> TensorType:
    dims = []
    for d in texpr.dims:
        if isinstance(d, S.DimSymbol):
            dims.append(Dim(d.name))
        else:
            dims.append(Dim.lit(d.value))
    return TensorType(DType(texpr.dtype), tuple(dims))


def _scalar_fits(v, dtype: DType) -> bool:
    if dtype is BOOL:
        return isinstance(v, bool)
    if dtype is INT:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _list_shape(v) -> tuple[int, ...] | None:
    """The shape of a nested list default, or None when it is ragged."""
    if not isinstance(v, list):
        return ()
    if not v:
        return (0,)
    subs = [_list_shape(x) for x in v]
    if any(s != subs[0] for s in subs) or subs[0] is None:
        return None
    return (len(v),) + subs[0]


def _flat(v) -> Iterator:
    if isinstance(v, list):
        for x in v:
            yield from _flat(x)
    else:
        yield v
