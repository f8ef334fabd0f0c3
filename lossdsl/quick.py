"""The quick form (docs/language.md §1): a bare expression, typed from the first call.

    f = lossdsl.compile("mean(abs(x.feature) * (y - yhat)^2)", backend="torch")
    f(yhat, y, x={"feature": feat})

`yhat` / `y_pred` are the preds, `y` / `y_true` the targets, and every other free
name an input. At a call, each argument's dtype and shape become a declaration
(every axis a literal of that call's size), the spec is checked as usual and
compiled; a call with other shapes is checked and compiled again (and cached).
Positional arguments go preds first, then targets, then inputs in the order they
first appear in the expression.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import syntax as S
from .diagnostics import Diagnostic, LossError
from .functions import USER_FUNCTIONS
from .parser import ParseResult
from .pipeline import check, emit, instantiate

PRED_NAMES = ("yhat", "y_pred")
TARGET_NAMES = ("y", "y_true")


def free_names(expr: S.Expr) -> list[str]:
    """Names read by the expression, in order of first appearance (axis names excluded)."""
    out: list[str] = []
    skip: set[int] = set()
    for node in S.walk(expr):
        if isinstance(node, S.Call):
            for kw in node.kwargs:
                if kw.name == "axis":
                    for sub in S.walk(kw.value):
                        skip.add(id(sub))
        if isinstance(node, S.Name) and id(node) not in skip and node.id not in out:
            out.append(node.id)
    return out


class QuickLoss:
    def __init__(
        self,
        parsed: ParseResult,
        backend,
        *,
        context: Mapping[str, Any],
        params: Mapping[str, Any],
        check_indices: bool = True,
    ):
        """`parsed`: the quick form as `lossdsl.pipeline.parse` read it (the text is parsed once)."""
        self._check_indices = check_indices
        self.check_values = False  # set by `compile(check_values=True)`
        if parsed.findings:
            raise LossError(parsed.findings)
        self.source = parsed.module.source
        self.backend = backend.name
        self._backend = backend
        self.expr = parsed.module.quick_expr
        if context or params:
            raise LossError(
                [
                    Diagnostic(
                        "the quick form takes no context or params; declare them in a spec", self.expr.span, "E806"
                    )
                ]
            )
        names = [n for n in free_names(self.expr) if n not in USER_FUNCTIONS or n in PRED_NAMES + TARGET_NAMES]
        self.preds = [n for n in names if n in PRED_NAMES]
        self.targets = [n for n in names if n in TARGET_NAMES]
        self.inputs = [n for n in names if n not in PRED_NAMES + TARGET_NAMES]
        if not self.preds:
            raise LossError(
                [
                    Diagnostic(
                        "the quick form needs a pred named `yhat` or `y_pred`",
                        self.expr.span,
                        "E209",
                        help="or write a spec with declarations: `pred out: float[B]`",
                    )
                ]
            )
        self.order = self.preds + self.targets + self.inputs
        self._compiled: dict[tuple, Any] = {}

    @property
    def signature(self) -> str:
        return "(" + ", ".join(self.order) + ") -> typed at the first call"

    def __repr__(self) -> str:
        return f"<lossdsl.QuickLoss {self.signature} on {self.backend}>"

    def __call__(self, *args: Any, reduction: str = "mean", sample_weight: Any = None, **kwargs: Any) -> Any:
        if len(args) > len(self.order):
            raise LossError(
                [
                    Diagnostic(
                        f"too many positional arguments: {len(self.order)} expected "
                        f"({', '.join(self.order)}), found {len(args)}",
                        self.expr.span,
                        "E802",
                    )
                ]
            )
        values = dict(zip(self.order, args))
        for k, v in kwargs.items():
            if k not in self.order:
                raise LossError(
                    [
                        Diagnostic(
                            f"unexpected argument `{k}`; the expression reads "
                            f"{', '.join(f'`{n}`' for n in self.order)}",
                            self.expr.span,
                            "E802",
                        )
                    ]
                )
            if k in values:
                raise LossError([Diagnostic(f"argument `{k}` is given twice", self.expr.span, "E802")])
            values[k] = v
        missing = [n for n in self.order if n not in values]
        if missing:
            raise LossError([Diagnostic(f"missing argument `{missing[0]}`", self.expr.span, "E801")])
        key = tuple((n, self._type_key(values[n])) for n in self.order)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(key)
            self._compiled[key] = compiled
        return compiled(**values, reduction=reduction, sample_weight=sample_weight)

    def _type_key(self, value: Any):
        be = self._backend
        if isinstance(value, Mapping):
            return ("record", tuple((k, self._type_key(v)) for k, v in value.items()))
        x = value if be.is_tensor(value) else be.asarray(value)
        kind = be.dtype_kind(x)
        return (kind, tuple(be.shape(x)))

    def _type_expr(self, key, span) -> S.TypeExpr:
        if key[0] == "record":
            return S.RecordTypeExpr(tuple(S.FieldExpr(str(k), self._type_expr(v, span), span) for k, v in key[1]), span)
        kind, shape = key
        if kind not in ("float", "int", "bool"):
            raise LossError([Diagnostic(f"unsupported dtype in the quick form: {kind}", span, "E803")])
        dims = tuple(
            S.DimLiteral(int(n), span) if n is not None else S.DimSymbol(f"N{i}", span) for i, n in enumerate(shape)
        )
        return S.TensorTypeExpr(kind, dims, span)

    def _compile(self, key):
        span = self.expr.span
        decls = []
        for name, tkey in key:
            kind = "pred" if name in self.preds else "target" if name in self.targets else "input"
            if kind == "pred" and tkey[0] != "float":
                raise LossError(
                    [Diagnostic(f"the pred `{name}` must be a float tensor, found {tkey[0]}", span, "E306")]
                )
            decls.append(S.Decl(kind, name, self._type_expr(tkey, span), None, span, span))
        module = S.Module(self.source, tuple(decls) + (S.LossStmt(self.expr, span),), quick=True)
        # Typed from this call: a module with no syntax findings, and no context or params to bind.
        checked = check(ParseResult(module, [], {}))
        code = emit(checked, self._backend, static_dims=checked.bindings, check_indices=self._check_indices)
        compiled = instantiate(checked, self._backend, code, context_values={}, param_values={})
        compiled._runtime.check_values = self.check_values
        return compiled
