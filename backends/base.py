"""What every backend provides, and the printer they share.

A backend is two things (einops' backends are the model):

- a `Printer` that turns lowered IR into Python source for its framework. One-to-one
  spellings are a table (`FUNCTIONS`, `"exp": "torch.exp({x})"`); special cases are
  `_fn_<name>` methods. `tests/test_function_table.py` checks that every function of
  lossdsl/functions/ has a spelling on every backend.
- a `Backend` with the run-time support the generated code calls: recognising and
  converting the framework's tensors, dtypes, and the few helpers a formula needs.

Both hold here what the frameworks share, written once over a few primitive spellings, so that a
backend page says only where its framework differs.

The framework is imported in `Backend.load()`, only when that backend is asked for.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lossdsl import lm_head
from lossdsl.ir import Apply, Arg, Const, DimSize, Gather, Index, Node, SliceItem
from lossdsl.types import BOOL, FLOAT, INT, Dim, TensorType

if TYPE_CHECKING:
    from lossdsl.codegen import DerivedBackward

# Python precedences of the operators we print (higher binds tighter).
PREC_ATOM = 100
PREC_POW = 8
PREC_UNARY = 7
PREC_MUL = 6
PREC_ADD = 5
PREC_CMP = 3

_BINARY = {
    "add": ("+", PREC_ADD),
    "sub": ("-", PREC_ADD),
    "mul": ("*", PREC_MUL),
    "div": ("/", PREC_MUL),
    "matmul": ("@", PREC_MUL),
    "pow": ("**", PREC_POW),
    "lt": ("<", PREC_CMP),
    "le": ("<=", PREC_CMP),
    "gt": (">", PREC_CMP),
    "ge": (">=", PREC_CMP),
    "eq": ("==", PREC_CMP),
    "ne": ("!=", PREC_CMP),
}


_AST_PREC = {
    ast.Add: PREC_ADD,
    ast.Sub: PREC_ADD,
    ast.Mult: PREC_MUL,
    ast.Div: PREC_MUL,
    ast.MatMult: PREC_MUL,
    ast.Pow: PREC_POW,
}


def precedence_of(text: str) -> int:
    """The precedence of a printed Python expression, for text a method built by hand."""
    body = ast.parse(text, mode="eval").body
    if isinstance(body, (ast.Call, ast.Attribute, ast.Subscript, ast.Name, ast.Constant)):
        return PREC_ATOM
    if isinstance(body, ast.BinOp):
        return _AST_PREC.get(type(body.op), PREC_CMP - 1)
    if isinstance(body, ast.UnaryOp):
        return PREC_UNARY
    return PREC_CMP - 1  # comparisons, conditionals: always parenthesised


@functools.cache
def _template_precedence(template: str) -> int:
    """The precedence of what a FUNCTIONS template prints, its placeholders read as names."""
    return precedence_of(re.sub(r"\{[^}]*\}", "X", template))


# A size the printer writes as Python integer arithmetic of the dimension variables.
_SIZE_ARITHMETIC = re.compile(r"[A-Za-z_0-9 +*()-]+")
_SIZE_SYMBOL = re.compile(r"\b[A-Za-z_][A-Za-z_0-9]*")


class Unsupported(Exception):
    """A node this backend cannot express (say which and why; never fail silently)."""


class Printer:
    """Prints one node as a Python expression; `names` maps nodes that already have a variable."""

    #: name of the backend, for comments in the generated code
    backend = "?"
    #: import lines the generated module starts with
    imports: tuple[str, ...] = ()
    #: fn -> template with {x}, {a}, {b}... (parameter names of the function table) and attrs
    FUNCTIONS: dict[str, str] = {}
    #: operators printed as Python operators (the framework's tensors overload them)
    OPERATORS = _BINARY
    #: a tensor read column by column is split once (`split_columns`, lossdsl/columns.py)
    SPLITS_COLUMNS = False

    def __init__(self, names: dict[int, str]):
        self.names = names

    # ---- entry points ----
    def expr(self, node: Node) -> str:
        return self._p(node)[0]

    def _p(self, node: Node) -> tuple[str, int]:
        """(source, precedence)."""
        name = self.names.get(id(node))
        if name is not None:
            return name, PREC_ATOM
        method = getattr(self, "_print_" + type(node).__name__)
        return method(node)

    # ---- leaves ----
    def _print_Const(self, node: Const) -> tuple[str, int]:
        v = node.value
        if isinstance(v, bool):
            return self.bool_literal(v), PREC_ATOM
        if isinstance(v, float):
            text = repr(v) if v == v and v not in (float("inf"), float("-inf")) else f"float({str(v)!r})"
        else:
            text = repr(int(v))
        return text, (PREC_UNARY if text.startswith("-") else PREC_ATOM)

    def bool_literal(self, v: bool) -> str:
        return "True" if v else "False"

    def _print_DimSize(self, node: DimSize) -> tuple[str, int]:
        return self.dim(node.dim), PREC_ATOM

    def dim(self, d: Dim) -> str:
        if d.sym is None:
            return str(d.offset)
        division, slicing = d.division(), d.slicing()
        if division is not None:  # a stepped slice's or a strided window's size
            inner, k, ceil = division
            base = f"(-(-{self.dim(inner)} // {k}))" if ceil else f"({self.dim(inner)} // {k})"
        elif slicing is not None:  # a slice from the end to a fixed index: `x[-3:5]`
            inner, start, stop = slicing
            base = f"len(range({self.dim(inner)})[{start}:{stop}])"
        elif _SIZE_ARITHMETIC.fullmatch(d.sym):
            # one symbol, the sum a concatenation made, the product a flatten made, or the
            # difference a `valid` window over a declared kernel size made (`H - KH`)
            base = _SIZE_SYMBOL.sub(lambda m: f"d_{m[0]}", d.sym).replace("*", " * ")
            if not d.is_symbol:
                base = f"({base})"
        else:
            raise Unsupported(f"the size `{d}` is only known to the framework")
        return f"({base} {'+' if d.offset > 0 else '-'} {abs(d.offset)})" if d.offset else base

    def _print_Arg(self, node: Arg) -> tuple[str, int]:  # args always have names
        raise AssertionError(f"unnamed argument {node.label}")

    # ---- operators and functions ----
    def _print_Apply(self, node: Apply) -> tuple[str, int]:
        special = getattr(self, "_fn_" + node.fn, None) or getattr(self, "_op_" + node.fn, None)
        if special is not None:
            out = special(node)
            return out if isinstance(out, tuple) else (out, precedence_of(out))
        if node.fn in self.OPERATORS:
            return self.binary(node)
        return self.spell(node)

    def spell(self, node: Apply) -> tuple[str, int]:
        """`node` printed with its entry of the table."""
        template = self.FUNCTIONS.get(node.fn)
        if template is None:
            raise Unsupported(f"`{node.fn}` has no lowering for {self.backend}")
        if template == "{x}":  # an identity on this backend (numpy's stop_gradient) binds like x
            return self._p(node.args[0])
        return template.format(**self.fields(node)), _template_precedence(template)

    #: whether this backend can run a backward derived from the IR (see lossdsl/autodiff.py);
    #: such a printer writes it with `derived_compute`
    FUSED_BACKWARD = False

    def derived_compute(self, plan: DerivedBackward) -> list[str]:
        """The module's `compute` (and what it calls) for a loss whose backward is derived from
        the IR; the plain compute, with the framework's own autodiff, is already `_plain`."""
        raise Unsupported(f"{self.backend} runs no derived backward")

    #: fused losses this backend prints as one framework call: kernel -> reductions (kernels.py)
    KERNELS: dict[str, set[str]] = {}
    #: a scalar float param as an exponent (`x ^ gamma`) printed as its Python number where the
    #: caller gave one (`n_<name>`): `x ** 2.0` is a square and `x ** 1.5` one pass, where
    #: `x ** tensor` is a general power, several times slower forward and backward (and its
    #: gradient to the exponent, a logarithm, is computed too)
    NUMBER_EXPONENTS = False
    #: whether a per-sample loss's mean over the samples (the API's default reduction) is printed
    #: in the module (`compute_mean`) even where it reaches no fused call: a backend that runs the
    #: compute as one graph call (TensorFlow eager) then runs the mean inside it too
    API_MEAN_IN_COMPUTE = False
    #: the same where the normal form makes that mean and a per-sample mean one mean
    #: (`mean(mean(x, axis=D))` is `mean(x)`): one reduction, where a compiler (torch.compile)
    #: keeps what the per-sample mean reads until the second one
    API_MEAN_WHEN_MERGED = False
    #: keyword names of the framework's reductions
    AXIS_KW = "axis"
    KEEPDIMS_KW = "keepdims"
    #: fn -> parameters whose literal arguments may stay Python numbers (others get `const_arg`)
    SCALAR_OK: dict[str, frozenset[str]] = {}
    #: for a framework with a tape: ones of x's shape that stay on it, with gradient 0, so that a
    #: loss that is `sum(x ^ 0)` can still be differentiated (docs/language.md §4); None where
    #: the framework's autodiff needs no help (JAX) or there is none (NumPy)
    ONES_ON_TAPE: str | None = None

    def _fn_ones_like(self, node: Apply) -> str | tuple[str, int]:
        if self.ONES_ON_TAPE and node.type.dtype is FLOAT and node.args[0].type.dtype is FLOAT:
            return self.ONES_ON_TAPE.format(x=self.expr(node.args[0]))
        return self.FUNCTIONS["ones_like"].format(**self.fields(node)), PREC_ATOM

    def fields(self, node: Apply) -> dict[str, Any]:
        """Printed operands by parameter name (`{x}`, `{a}`...), the same parenthesised where
        they are not atoms (`{x_p}`), and the static attributes (`{axes}`, `{axis0}`, `{keepdims}`)."""
        from lossdsl.functions import FUNCTIONS

        spec = FUNCTIONS[node.fn]
        out: dict[str, Any] = {}
        if spec.variadic:  # `concat([a, b])`: the operands as a list, `{xs}`
            (p,) = spec.tensor_params
            out[p.name] = "[" + ", ".join(self.expr(a) for a in node.args) + "]"
        for p, a in zip([] if spec.variadic else spec.tensor_params, node.args):
            if (
                (isinstance(a, (Const, DimSize)) or self.literal_arithmetic(a))
                and p.name not in self.SCALAR_OK.get(node.fn, ())
                and id(a) not in self.names
            ):
                text, prec = self.const_arg(a, node), PREC_ATOM
            else:
                text, prec = self._p(a)
            out[p.name] = text
            out[p.name + "_p"] = text if prec >= PREC_ATOM else f"({text})"
            out[p.name + "_rank"] = a.type.rank
        for k, v in node.attrs:
            if isinstance(v, tuple) and v and all(isinstance(d, Dim) for d in v):  # `unflatten`'s sizes
                out[k] = "(" + "".join(self.dim(d) + ", " for d in v) + ")"
            else:
                out[k] = self.dim(v) if isinstance(v, Dim) else v
        if "axis" in out:
            axis = out["axis"]
            out["axes"] = self.axes(axis)
            full = isinstance(axis, tuple) and len(axis) == node.args[0].type.rank
            if full and not out.get("keepdims"):
                out["reduce_kw"] = ""  # a full reduction reads best without arguments
            else:
                out["reduce_kw"] = f", {self.AXIS_KW}={out['axes']}, {self.KEEPDIMS_KW}={out.get('keepdims', False)}"
            out["axis0"] = axis[0] if isinstance(axis, tuple) and len(axis) == 1 else axis
            out["axes_list"] = "[" + ", ".join(map(str, axis)) + "]" if isinstance(axis, tuple) else str(axis)
        out["dtype"] = self.dtype_name(node.type.dtype)
        return out

    _LITERAL_OPS = frozenset({"add", "sub", "mul", "div", "neg"})

    def literal_arithmetic(self, node: Node) -> bool:
        """Arithmetic of literals only (`0.9 * 1.0`, left by a derivative's seed of 1): printed as
        Python arithmetic, it is a number, so where a framework function wants a tensor it is
        passed as one literal is (`const_arg`), in the compute dtype rather than the default one."""
        if isinstance(node, Const):
            return id(node) not in self.names
        return (
            isinstance(node, Apply)
            and node.fn in self._LITERAL_OPS
            and id(node) not in self.names
            and all(self.literal_arithmetic(a) for a in node.args)
        )

    def dtype_name(self, dtype) -> str:
        """The generated code's name for a dtype: `_cdt` (the compute dtype), `_INT` or `_BOOL`."""
        return {FLOAT: "_cdt", INT: "_INT", BOOL: "_BOOL"}[dtype]

    def const_arg(self, const: Node, node: Apply) -> str:
        """A literal (a dimension size, or arithmetic of literals) passed to a framework function
        that wants a tensor."""
        return self._p(const)[0]

    def axes(self, axis) -> str:
        if isinstance(axis, int):
            return str(axis)
        if len(axis) == 1:
            return str(axis[0])
        return "(" + ", ".join(map(str, axis)) + ")"

    def binary(self, node: Apply) -> tuple[str, int]:
        exp = _param_exponent(node) if self.NUMBER_EXPONENTS else None
        if exp is not None:
            base, p = self._p(node.args[0])
            if p <= PREC_POW:
                base = f"({base})"
            return f"{base} ** (n_{exp.name} if n_{exp.name} is not None else {self.expr(exp)})", PREC_POW
        op, prec = self.OPERATORS[node.fn]
        a, b = node.args
        sa, pa = self._p(a)
        sb, pb = self._p(b)
        if node.fn == "pow":
            left_needs, right_needs = pa <= prec, pb < PREC_UNARY
        elif prec == PREC_CMP:
            left_needs, right_needs = pa <= prec, pb <= prec
        else:
            left_needs, right_needs = pa < prec, pb <= prec
        if left_needs:
            sa = f"({sa})"
        if right_needs:
            sb = f"({sb})"
        return f"{sa} {op} {sb}", prec

    def _op_neg(self, node: Apply) -> tuple[str, int]:
        s, p = self._p(node.args[0])
        if p < PREC_UNARY or s.startswith("-"):
            s = f"({s})"
        return f"-{s}", PREC_UNARY

    # Collectives over the replicas of a sharded dimension (lossdsl/sharding.py); `_dist` is the
    # backend's collectives object, bound to the process group / axis name / strategy.
    def _fn_scan(self, node: Apply) -> str:
        """`rt.scan(step, init, sequences, captured, axes, all)`: the step a lambda over the carry,
        a tuple of slices and a tuple of the values it reads from outside (lossdsl/functions/recurrence.py)."""
        step = node.attr("step")
        depth = sum(1 for v in self.names.values() if v.startswith("_c"))
        c, x, k = f"_c{depth}", f"_x{depth}", f"_k{depth}"
        inner = {id(step.carry): c}
        inner.update({id(p): f"{x}[{i}]" for i, p in enumerate(step.slices)})
        inner.update({id(p): f"{k}[{i}]" for i, p in enumerate(step.captured)})
        saved = self.names
        self.names = {**saved, **inner}
        try:
            body = self.expr(step.body)
        finally:
            self.names = saved
        n = len(step.slices)
        xs = "".join(self.expr(a) + ", " for a in node.args[1 : 1 + n])
        ks = "".join(self.expr(a) + ", " for a in node.args[1 + n :])
        return (
            f"rt.scan(lambda {c}, {x}, {k}: {body}, {self.expr(node.args[0])}, ({xs}), ({ks}), "
            f"{node.attr('axes')}, {node.attr('all')})"
        )

    def _fn_all_sum(self, node: Apply) -> str:
        return f"_dist.sum({self.expr(node.args[0])}, _dev)"

    def _fn_all_max(self, node: Apply) -> str:
        return f"_dist.max({self.expr(node.args[0])}, _dev)"

    def _fn_all_min(self, node: Apply) -> str:
        return f"_dist.min({self.expr(node.args[0])}, _dev)"

    def _fn_kernel(self, node: Apply) -> str | tuple[str, int]:
        """A fused loss: this backend's call for it (`_kernel_<name>`), else the IR it replaces."""
        method = getattr(self, "_kernel_" + node.attr("kernel"), None)
        if method is not None:
            text = method(node, *[self.expr(a) for a in node.args])
            if text is not None:  # its precedence is read from it: jax's nll is `logsumexp(z) - z[y]`
                return text
        return self._p(node.attr("decomposed"))

    def _kernel_weighted_ce(self, node: Apply, z: str, y: str, w: str, seen: str, total: str, ls: str, ignore: str):
        """Class-weighted cross-entropy through the run time's `weighted_ce` (on a backend that
        declares the kernel), with no smoothing term where `label_smoothing` is the number 0."""
        return f"rt.weighted_ce({z}, {y}, {w}, {seen}, {total}, {self.unless_zero(node, 0, ls)}, {ignore})"

    # The language-model head (lossdsl/lm_head.py): every backend prints the same call, and its
    # run time computes the statistics over chunks of the vocabulary with a custom gradient.
    def _kernel_lm_head(self, node: Apply, h: str, W: str, *rest: str) -> str:
        captured = rest[len(rest) - (node.attr("captured") or 0) :]
        rest = rest[: len(rest) - len(captured)]
        b = rest[0] if node.attr("bias") else "None"
        idx = rest[-1] if "logp" in node.attr("stats") else "None"
        # The chunking in force when the loss is compiled (lm_head.options) is part of its code.
        sizes = f"chunk={lm_head.fixed_chunk()!r}, min_logits={lm_head.min_logits()!r}"
        if node.attr("token_loss") is not None:  # the per-token loss summed in the head (lossdsl/lm_head_loss.py)
            head = f"{h}, {W}, {b}, {idx}, {node.attr('stats')!r}, {node.attr('softcap')!r}"
            per_token = tuple(a.type.rank > 0 for a in node.args[len(node.args) - len(captured) :])
            return (
                f"rt.lm_head_loss({head}, {self._token_loss(node.attr('token_loss'))}, "
                f"({''.join(c + ', ' for c in captured)}), {per_token!r}, {node.attr('reduction')!r}, {sizes})"
            )
        # A head split along its vocabulary combines its shards' statistics with the collectives.
        split = ", dist=_dist" if node.attr("sharded") else ""
        # the gradient to each statistic is the same for every token: it may be prepared in the forward
        split += ", uniform=True" if node.attr("uniform") else ""
        return f"rt.lm_head({h}, {W}, {b}, {idx}, {node.attr('stats')!r}, {node.attr('softcap')!r}, {sizes}{split})"

    def _token_loss(self, token_loss) -> str:
        """`lambda t, k: (u, (du/dt0, ...))`: a folded head's per-token loss and its derivative to
        each statistic's column (None: none), over the columns `t` and the captured values `k` of a
        chunk of tokens."""
        depth = sum(1 for v in self.names.values() if v.startswith("_t"))
        t, k = f"_t{depth}", f"_k{depth}"
        inner = {id(p): f"{t}[{i}]" for i, p in enumerate(token_loss.columns)}
        inner.update({id(p): f"{k}[{i}]" for i, p in enumerate(token_loss.captured)})
        saved = self.names
        self.names = {**saved, **inner}
        try:
            loss = self.expr(token_loss.loss)
            grads = "".join((self.expr(g) if g is not None else "None") + ", " for g in token_loss.grads)
        finally:
            self.names = saved
        return f"lambda {t}, {k}: ({loss}, ({grads}))"

    @classmethod
    def number_params(cls, node: Node) -> tuple[str, ...]:
        """The params that printing `node` also takes as Python numbers (`n_<name>` in compute, None
        at run time where the caller gave a tensor): a kernel's hyperparameters."""
        if isinstance(node, Apply) and node.fn == "kernel":
            return tuple(p for p in node.attr("hyper_params") or () if p is not None)
        exp = _param_exponent(node) if cls.NUMBER_EXPONENTS else None
        return (exp.name,) if exp is not None else ()

    def hyper_number(self, node: Apply, i: int) -> str:
        """Hyperparameter `i` of a kernel as the generated code's Python number: the literal, or
        `n_<param>` (None at run time where the caller passed a tensor; lossdsl/kernels.py)."""
        from lossdsl.kernels import hyper_nodes

        name = node.attr("hyper_params")[i]
        if name is None:
            return repr(hyper_nodes(node)[i].value)  # type: ignore[attr-defined]
        return f"n_{name}"

    def hyper_is_param(self, node: Apply, i: int) -> bool:
        return node.attr("hyper_params")[i] is not None

    def unless_zero(self, node: Apply, i: int, tensor: str) -> str:
        """Hyperparameter `i` as a tensor, or None where it is the number 0 (a literal, or a param
        given as 0): the term it scales (label smoothing's) is then not computed at all."""
        n = self.hyper_number(node, i)
        if not self.hyper_is_param(node, i):
            return "None" if float(n) == 0.0 else tensor
        return f"({tensor} if {n} != 0.0 else None)"

    def unless_one(self, node: Apply, i: int, plain: str, weighted: str) -> str:
        """`weighted` by hyperparameter `i` (BCE's `pos_weight`), or `plain` where the weight is the
        number 1 (a literal, or a param given as 1): no weight, and the call without one is faster.
        A weight that is another expression is always `weighted`."""
        if not node.attr("hyper_params"):
            return weighted
        n = self.hyper_number(node, i)
        if not self.hyper_is_param(node, i):
            return plain if n == "1.0" else weighted
        return f"({plain} if {n} == 1.0 else {weighted})"

    def fused_or_decomposed(self, node: Apply, fused: str, conditions: list[str]) -> str:
        """`fused` where the run-time `conditions` on param hyperparameters hold (a Python number,
        in the call's range), else the decomposed IR: one Python test, no device read."""
        if not conditions:
            return fused
        return f"({fused} if {' and '.join(conditions)} else {self._p(node.attr('decomposed'))[0]})"

    # Rounding an int is the identity on every backend (the frameworks' floor/ceil reject ints);
    # a float is rounded by the table's spelling.
    def _fn_floor(self, node: Apply) -> str | tuple[str, int]:
        if node.args[0].type.dtype is INT:
            return self._p(node.args[0])
        return self.FUNCTIONS[node.fn].format(x=self.expr(node.args[0]))

    _fn_ceil = _fn_round = _fn_floor

    #: cast -> its spelling for a dimension size (a Python int in the generated code), where the
    #: table's spelling wants a tensor (torch's `x.to(dtype)`)
    SIZE_CASTS: dict[str, str] = {}

    def _fn_cast_float(self, node: Apply) -> str | tuple[str, int]:
        x = node.args[0]
        template = self.SIZE_CASTS.get(node.fn) if _is_size_arithmetic(x) else None
        if template is not None:
            return template.format(x=self.expr(x))
        return self.spell(node)

    _fn_cast_int = _fn_cast_float

    def _fn_sigmoid_grad(self, node: Apply) -> str | tuple[str, int]:
        g, y = node.args
        one = Const(TensorType(FLOAT), node.span, 1.0)
        t = node.type
        return self._p(
            Apply(t, node.span, "mul", (g, Apply(t, node.span, "mul", (y, Apply(t, node.span, "sub", (one, y))))))
        )

    def _fn_tanh_grad(self, node: Apply) -> str | tuple[str, int]:
        g, y = node.args
        one = Const(TensorType(FLOAT), node.span, 1.0)
        t = node.type
        return self._p(
            Apply(t, node.span, "mul", (g, Apply(t, node.span, "sub", (one, Apply(t, node.span, "square", (y,))))))
        )

    def _fn_relu_grad(self, node: Apply) -> str | tuple[str, int]:
        # where(x <= 0, 0, g): a NaN x passes g, as the frameworks' relu backward does
        g, x = node.args
        zero = Const(TensorType(FLOAT), node.span, 0.0)
        le = Apply(TensorType(BOOL, x.type.shape), node.span, "le", (x, zero))
        return self._p(Apply(node.type, node.span, "where", (le, zero, g)))

    def api_mean_choice(self, preds: list[str], min_elements: int, one_mean: str, per_sample: str) -> str:
        """The API's mean where it is one mean with the per-sample one (API_MEAN_WHEN_MERGED) and
        the per-sample compute has a derived backward from `min_elements` pred elements on: the
        call `one_mean`, or the mean of the call `per_sample` where that backward is faster."""
        return one_mean

    # ---- indexing ----
    def index_items(self, node: Index) -> str:
        parts = []
        for it in node.items:
            if it is None:
                parts.append("None")
            elif isinstance(it, SliceItem):
                parts.append(str(it))
            else:
                parts.append(str(it))
        # Trailing full slices are implied.
        while parts and parts[-1] == ":" and len(parts) > 1:
            parts.pop()
        return ", ".join(parts) if len(parts) != 1 or parts[0] != ":" else ":"

    def _print_Index(self, node: Index) -> tuple[str, int]:
        s, p = self._p(node.x)
        if p < PREC_ATOM:
            s = f"({s})"
        return f"{s}[{self.index_items(node)}]", PREC_ATOM

    def split_columns(self, x: str, size: int) -> str:
        """One call giving the `size` columns of `x` (split along its last axis, that axis
        dropped), for a backend that sets SPLITS_COLUMNS."""
        raise Unsupported("this backend reads each column with its own slice")

    def _print_Gather(self, node: Gather) -> tuple[str, int]:
        s, p = self._p(node.x)
        if p < PREC_ATOM:
            s = f"({s})"
        return f"{s}[{', '.join(self.expr(i) for i in node.indices)}]", PREC_ATOM


def _is_size_arithmetic(node: Node) -> bool:
    """A size, or `+ - *` of sizes and int literals (`B * T`): a Python int in the generated code."""
    if isinstance(node, DimSize):
        return True
    if isinstance(node, Const):
        return node.type.dtype is INT and not isinstance(node.value, bool)
    return (
        isinstance(node, Apply)
        and node.fn in ("add", "sub", "mul")
        and any(isinstance(a, (DimSize, Apply)) for a in node.args)
        and all(_is_size_arithmetic(a) for a in node.args)
    )


class Backend:
    """Run-time support for one framework. `load()` imports the framework and sets the
    primitives below (its dtypes, `tensor_type`, `cast`, `sum`, `mean`, `nonzero`); the rest is
    written once here in terms of them, and a backend overrides only where its framework differs."""

    name = "?"
    aliases: tuple[str, ...] = ()
    framework: str | None = None  # the module to import; None for numpy
    printer: type[Printer] = Printer
    differentiable = True
    #: the framework's float32, float64 and the int dtype of indices (set by `load()`)
    float32: Any = None
    float64: Any = None
    int_dtype: Any = None
    #: the class of the framework's tensors
    tensor_type: Any = ()

    def __init__(self) -> None:
        self.loaded = False

    def load(self) -> None:
        """Import the framework (raises ImportError with a hint when it is missing)."""
        self.loaded = True

    # ---- primitives: each framework's spelling ----
    def cast(self, x: Any, dtype: Any) -> Any:
        """x converted to dtype."""
        raise NotImplementedError

    def sum(self, x: Any) -> Any:
        """The sum of all of x, a 0-d tensor."""
        raise NotImplementedError

    def mean(self, x: Any) -> Any:
        """The mean of all of x, a 0-d tensor."""
        raise NotImplementedError

    def nonzero(self, b: Any) -> Any:
        """b with 1 where it is 0: a denominator that is safe to divide by."""
        raise NotImplementedError

    def count(self, x: Any) -> Any:
        """The length of x's first axis, as a scalar tensor of x's dtype on x's device."""
        raise NotImplementedError

    # ---- tensors ----
    def is_tensor(self, x: Any) -> bool:
        return isinstance(x, self.tensor_type)

    def asarray(self, x: Any) -> Any:
        """A value the user passed (numpy array, list, Python number) as this backend's tensor.
        Python numbers and lists go through NumPy first, so 0.001 keeps float64 precision (the
        frameworks would make it float32, and a float64 loss would see 0.0010000000474974513)."""
        raise NotImplementedError

    def from_numpy(self, arr: Any, device: str | None = None) -> Any:
        """A NumPy array as this backend's tensor, on `device` where the framework places tensors
        by hand (the test harness and `lossdsl run`)."""
        return self.asarray(arr)

    @staticmethod
    def _host(x: Any) -> Any:
        import numpy as np

        if isinstance(x, (bool, int, float, list, tuple)):
            out = np.asarray(x)
            if out.dtype == object:
                raise TypeError("not a numeric array")
            return out
        return x

    def shape(self, x: Any) -> tuple:
        return tuple(x.shape)

    def dtype_kind(self, x: Any) -> str:
        """'float', 'int', 'bool' or 'other': what a tensor of this framework holds."""
        raise NotImplementedError

    def dtype_name(self, x: Any) -> str:
        """x's dtype as messages name it: `float32`, `int64`."""
        return str(x.dtype)

    def dtype_of(self, x: Any) -> Any:
        return x.dtype

    def compute_dtype(self, *preds: Any) -> Any:
        """float64 when any pred is float64, else float32 (float16/bfloat16 compute in float32)."""
        for p in preds:  # a loop, not any(<generator>): this runs at every call
            if p.dtype == self.float64:
                return self.float64
        return self.float32

    def to_float(self, x: Any, dtype: Any) -> Any:
        """x in `dtype` (x itself when it already is)."""
        return x if x.dtype == dtype else self.cast(x, dtype)

    def to_int(self, x: Any) -> Any:
        return self.to_float(x, self.int_dtype)

    def place_like(self, x: Any, like: Any) -> Any:
        """`x` (a context tensor) on the device of `like`; identity where devices do not matter."""
        return x

    def value_range(self, x: Any) -> tuple[int, int] | None:
        """(smallest, largest) of an int tensor as Python ints, for the index check; None where
        the values are not there to read (a tracer under jit, a symbolic tensor) or x is empty."""
        raise NotImplementedError

    def host_values(self, x: Any) -> Any:
        """x as a NumPy array on the host (for `compile(..., check_domains=True)`), or None where
        the values are not there to read (a tracer under jit, a symbolic tensor)."""
        import numpy as np

        return np.asarray(self._host(x))

    def traced_index_check(self, x: Any, size: int, message: str, check: Callable[[int, int, Any], None]) -> Any:
        """Under tracing, with `compile(check_values=True)`: `x`, made to fail at run time when a
        value lies outside [0, size). `check(lo, hi, values)` raises the eager LossError where a
        backend can call back into Python; `message` is its text where it cannot. A backend that
        never traces returns `x`."""
        return x

    def traced_index_guard(self, x: Any, size: int, message: str, flags: list) -> Any:
        """Under tracing without `check_values`, where the index check cannot raise: `x` with every
        value outside [0, size) read as 0 (so the framework's gather neither fails with its own
        error nor reads out of bounds), and an in-graph "all in range" flag appended to `flags`,
        from which `guard_indices` makes the loss NaN (docs/language.md §3). A backend that can
        assert in the graph (`message`, the E812 text) does that instead. A backend that never
        traces returns `x`."""
        return x

    def guard_indices(self, loss: Any, flags: list, dist: Any = None, dev: Any = None) -> Any:
        """`loss` where every flag of `traced_index_guard` holds (on every replica, where `dist`
        is a sharded loss's collectives), else NaN, with a zero gradient (no step is taken on a
        batch whose ids are wrong)."""
        return loss

    def drops_assertions(self) -> bool:
        """Whether the code being traced now runs where assertions are dropped (XLA under
        TensorFlow's `jit_compile=True`): `check_values=True` is refused there rather than
        silently not checking."""
        return False

    def assert_indices_async(self, x: Any, size: int, message: str) -> bool:
        """Check that every value of x lies in [0, size) without reading it back to the host,
        where the framework can (a device-side assertion on a GPU); False where it cannot, and
        the caller reads the range (`value_range`) and raises E812 itself."""
        return False

    def where_value(self, x: Any, value: int) -> tuple[int, ...]:
        """The first position of `value` in x (only on the error path)."""
        import numpy as np

        return tuple(int(i) for i in np.argwhere(np.asarray(x) == value)[0])

    def device_key(self, x: Any) -> Any:
        return None

    # ---- reductions the API applies to a per-sample loss ----
    def safe_divide(self, a: Any, b: Any) -> Any:
        """a / b, dividing by 1 where b is 0: a weighted mean whose weights sum to 0 (and so
        its weighted sum) is 0, not NaN."""
        return a / self.nonzero(b)

    def weighted_mean(self, weighted: Any, w: Any) -> Any:
        return self.safe_divide(self.sum(weighted), self.sum(w))

    def reduce_samples(self, weighted: Any, w: Any, reduction: str) -> Any:
        """A per-sample loss (already weighted by `w`, if given) reduced on one replica as the API's
        `reduction` says: "sum", "weighted_mean" (by the weights), else the mean. The mean of an
        empty batch is 0, as when every label is ignored (docs/language.md §6)."""
        if reduction == "sum":
            return self.sum(weighted)
        if reduction == "weighted_mean" and w is not None:
            return self.weighted_mean(weighted, w)
        n = self.shape(weighted)[0]
        if n is None:  # unknown until run time (a TensorFlow graph)
            return self.safe_divide(self.sum(weighted), self.count(weighted))
        return self.mean(weighted) if n else self.sum(weighted)

    def may_cache(self) -> bool:
        """Whether a tensor made now may be kept for later calls: not while a compiler traces the
        call (torch.compile), whose graph then holds the fresh tensor as a constant."""
        return True

    def constant(self, value: Any, kind: str, cdt: Any, like: Any) -> Any:
        """A value known before the call (context, param default) as a tensor of `kind`
        ("float": the compute dtype, "int", "bool") on `like`'s device, safe to cache."""
        x = value if self.is_tensor(value) else self.asarray(value)
        if kind == "float":
            x = self.to_float(x, cdt)
        elif kind == "int":
            x = self.to_int(x)
        return self.place_like(x, like) if like is not None else x

    # ---- evaluation with gradients (lossdsl/runner.py) ----
    def value_and_grads(
        self, fn: Callable[..., Any], args: dict[str, Any], preds: list[str]
    ) -> tuple[Any, dict[str, Any]]:
        """`fn(**args)`, and the gradient of the sum of its value with respect to each arg named
        in `preds` (None where the value does not depend on it). A backend without autodiff
        (NumPy) gives no gradients."""
        return fn(**args), {}

    # ---- code generation ----
    def namespace(self) -> dict[str, Any]:
        """Globals for the generated module: the framework and the run-time helpers."""
        return {}

    def wrap_compute(self, fn: Callable, static_args: list[str], *, sharded: bool = False) -> Callable:
        """A hook to compile the pure compute function (JAX jits it); `static_args` are its
        non-tensor parameters (the compute dtype, the device, dimension sizes)."""
        return fn

    def collectives(self, group: Any = None, *, source_name: str = "") -> Any:
        """The `_dist` object for a sharded compile: `sum`, `max`, `min` over replicas, `check()`."""
        return LocalCollectives()

    def wrap_entry(self, fn: Callable) -> Callable:
        """A hook for the generated argument checks (TensorFlow keeps autograph out of them)."""
        return fn

    #: how a generated argument check reads the size of an axis (TensorFlow may not know it)
    dynamic_sizes = False


class LocalCollectives:
    """One replica: every collective is the identity (the NumPy backend, and no distribution).
    The base of each framework's collectives, which say only where they differ."""

    def check(self) -> None:
        pass

    def sum(self, x, dev=None):
        return x

    max = min = sum

    def extent(self, n: int, dev=None) -> tuple[Any, int]:
        """For an axis split across the replicas, this replica holding `n` of it: where its part
        starts (the sizes of the replicas before it) and the global size."""
        return 0, n

    def total(self, n: int, dev=None) -> int:
        """The global size of an axis split across the replicas, this replica holding `n` of it."""
        return self.extent(n, dev)[1]

    def finish(self, loss):
        """The loss every replica computes alike, before it is returned: where the framework's
        own aggregation of the replicas' gradients needs it, the gradient is scaled here."""
        return loss


def axis_tuple(node: Apply) -> tuple[int, ...]:
    axis = node.attr("axis")
    return tuple(axis) if isinstance(axis, tuple) else (axis,)


def _param_exponent(node: Node) -> Arg | None:
    """The exponent of `x ^ e` where e is a scalar float param."""
    if isinstance(node, Apply) and node.fn == "pow":
        e = node.args[1]
        if isinstance(e, Arg) and e.kind == "param" and e.type.rank == 0 and e.type.dtype is FLOAT:
            return e
    return None


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The zeros before and after an axis for `padding=same` (docs/language.md §3): enough for
    ⌈size/stride⌉ windows, the odd one after, as TensorFlow's and JAX's "SAME" pad."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


__all__ = [
    "BOOL",
    "FLOAT",
    "INT",
    "PREC_ADD",
    "PREC_ATOM",
    "PREC_CMP",
    "PREC_MUL",
    "PREC_POW",
    "PREC_UNARY",
    "Backend",
    "Printer",
    "Unsupported",
    "axis_tuple",
    "same_padding",
]
