"""Writes docs/errors.md: every code of lossdsl/diagnostics.py with an explanation and, where
tests/diagnostics/ has one, the exact output of `lossdsl check` on a spec that triggers it.

    python scripts/gen_errors_doc.py          (tests/test_docs.py checks the file is current)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lossdsl.diagnostics import CODES  # noqa: E402

EXPLAIN = {
    "E001": "The spec could not be read: the file is missing, is a directory, or is not UTF-8.",
    "E101": "The text does not follow the grammar. The message says what was expected; common mistakes have "
            "their own codes below.",
    "E102": "A `(`, `[` or `{` is never closed. Inside brackets an expression may span lines, so the report "
            "points at the opening bracket.",
    "E103": "A closing bracket with no (or another) opening bracket.",
    "E104": "Powers are written `^`, not `**`.",
    "E105": "`a < b < c` is not allowed: write `a < b and b < c`.",
    "E106": "A character that is not part of the language (strings, `$`, `&`, `!`...).",
    "E108": "Positional arguments must come before `name=value` ones.",
    "E109": "`=` inside an expression; comparison is `==`.",
    "E201": "A name that is not declared, defined by `let`, a parameter of the enclosing `def`, or a dimension. "
            "Close matches are suggested.",
    "E202": "A function that is neither built in nor defined with `def`. Close matches are suggested.",
    "E203": "A name is defined once: declarations, lets and defs share one namespace.",
    "E204": "Every file needs exactly one `loss = ...`.",
    "E205": "A second `loss` statement.",
    "E206": "A `def` that calls itself (directly or through others), or `let`s defined in terms of each other: "
            "defs are inlined and lets are values, so neither can recurse.",
    "E207": "`reduction` and `sample_weight` are keyword arguments of the compiled function and cannot be "
            "declared.",
    "E208": "A function used as a value (`log` without a call), or a value called like a function.",
    "E209": "No `pred`: the loss must depend on a model output.",
    "E210": "A `.field` that the record does not have, or a field read on a tensor.",
    "E211": "A `def` with the name of a built-in function.",
    "E301": "Operands of the wrong dtype for an operation (comparing a bool with a number, branches of "
            "`where` of different kinds).",
    "E302": "Arithmetic on `bool`. Convert with `float(mask)` or select with `where(mask, a, b)`.",
    "E303": "A number where `bool` is needed: the condition of `where`, the operands of `and`/`or`/`not`.",
    "E304": "A float where `int` is needed: indices, `segment_*` ids, `one_hot` classes.",
    "E305": "A param default that does not fit the declared type or shape (or a default on a declaration that is "
            "not a param).",
    "E306": "A pred must be a float tensor.",
    "E307": "A record used where a tensor is needed; read one of its fields.",
    "E308": "A parenthesised tuple outside `axis=`.",
    "E309": "A param must be a tensor, not a record.",
    "E401": "Shapes that do not broadcast. Broadcasting lines shapes up from the right; two different dimension "
            "symbols never broadcast, even if their sizes happen to agree, so a `[B]` weight times a `[B, C]` "
            "loss is an error with the fix (`w[:, None]`) instead of a silent outer product.",
    "E402": "A dimension symbol bound to two different sizes; both sources are named.",
    "E403": "A size-1 axis stretched against a dimension that the result already has on another axis, which "
            "makes an outer product of that dimension with itself: a `[B, 1]` model output (Keras' `Dense(1)`) "
            "against `[B]` labels gives a `[B, B]` loss, and its mean is a plausible-looking wrong number. "
            "Drop the size-1 axis (`yhat[:, 0]`). An outer product meant as one is written with explicit "
            "`None` axes (`x[:, None] - x[None, :]`), which is allowed.",
    "E404": "An operand of the wrong rank (`pick` indices, `transpose` of a vector, segment ids...).",
    "E405": "An `axis` out of range, naming no axis, naming two axes (`[N, N]`), given twice, or missing for "
            "`argmax` above rank 1.",
    "E406": "An index out of range, too many indices, an empty or backwards slice, or two `...`.",
    "E407": "Slice bounds must be integer literals.",
    "E408": "A bool mask as an index: the result's shape would depend on the data. Use `where(mask, x, 0.0)`.",
    "E409": "Int-tensor indices cannot be mixed with slices, `...` or `None`.",
    "E410": "The inner dimensions of `a @ b` differ.",
    "E501": "A call with the wrong number of arguments; the missing ones are named.",
    "E502": "A keyword argument the function does not take. Names from other libraries (`dim`, `keepdim`) get a "
            "hint.",
    "E503": "An argument given twice.",
    "E504": "A static argument (`axis`, `keepdims`, `ddof`, `p`, a size) that is not a literal, or out of range.",
    "E601": "`loss` must be float.",
    "E602": "`loss` must be a scalar or per-sample `[B]` (B the leading dimension of a pred); the help says which "
            "axes to reduce.",
    "E603": "A pred reaches `loss` only through operations without a gradient (`argmax`, comparisons, rounding, "
            "`int()`, `stop_gradient`, indices): its gradient would be zero everywhere.",
    "E604": "A pred that `loss` does not use.",
    "W701": "(Warning.) A `log`, `log1p` or `sqrt` whose operand, or a `/` whose divisor, may leave the domain as "
            "far as the interval analysis can tell. `lossdsl check --strict` fails on it.",
    "E801": "At a call: an argument not given, or a param with no default and no value.",
    "E802": "At a call: too many positional arguments, an unknown keyword, or one given twice.",
    "E803": "At a call: an argument of the wrong dtype kind (a float for an `int` index, an int pred), or not a "
            "tensor at all.",
    "E804": "At a call (or for a context at compile time): an argument of the wrong rank.",
    "E805": "At a call (or for a context at compile time): a size that disagrees with the declaration or with "
            "the size bound earlier; both sources are named. Also a size below what an index needs.",
    "E806": "A context passed at a call (it is bound at compile time), a context missing at compile time, or an "
            "unknown context or param name. A standalone module (`lossdsl emit --standalone`) raises it for a "
            "context missing at its `bind(...)` or a spec with context called without it; emitting one with "
            "context given is E806 too (it takes its context when it runs).",
    "E807": "A record argument that is not a dict, lacks a field, or has an extra one. In Keras: a `y_true` that "
            "lacks a field the loss reads, a field named in both `y_true=[...]` and `inputs=[...]`, or a field "
            "declared in `inputs=[...]` that the model's inputs do not carry (the model is not wrapped in "
            "`lossdsl.keras.MetadataModel`, or its input dict lacks the name).",
    "E808": "An unknown `reduction`, a `sample_weight` of the wrong shape, or a `sample_weight` with a scalar "
            "loss; also a malformed `--dim`/`--param`.",
    "E809": "A dimension symbol used by `one_hot` or `segment_*` that no declaration mentions, so nothing gives "
            "its size.",
    "E810": "An unknown backend name.",
    "E811": "`lossdsl.compile(..., sharded=...)` names no dimension of the spec, or the spec needs the whole "
            "batch on one replica for something along that dimension (a product, `argmax`, `softmax`, `cumsum`, "
            "slicing or gathering along it), or a context tensor has that dimension, or torch.distributed was not "
            "initialised before the call (docs/distributed.md). Also `lossdsl emit --standalone` of a sharded "
            "loss: its collectives are lossdsl's.",
    "E812": "At a call: an `int` argument (or a slice of one) read as an index (by `pick`, a gather, `one_hot` or "
            "`segment_*`) "
            "holds a value outside [0, size) of the axis it indexes, such as PyTorch's ignore label -100. The "
            "frameworks disagree there (NumPy, PyTorch and TensorFlow on CPU raise, JAX and GPUs clamp or read "
            "garbage), so the entry checks the values first; an index read under a `where` guard is not checked "
            "(the guard makes the lanes it drops 0 before the read). Skipped while tracing (jit, `tf.function`, `torch.compile`, "
            "Keras `fit`) unless `check_values=True` (`lossdsl.compile`, `lossdsl.keras.Loss`, `LossModule`) keeps it "
            "in the traced code: the same LossError through a host callback under `jax.jit`, a graph assertion "
            "whose text says E812 under `tf.function` (XLA's `jit_compile` drops it), a device-side assertion "
            "under `torch.compile`; `lossdsl.compile(..., check_indices=False)` turns it off.",
    "E813": "`lossdsl.keras.Loss(..., y_true=[...])` packs targets and metadata side by side in one `y_true`. "
            "Keras hands that same `y_true` to every compiled metric and computes `class_weight` from it, so a "
            "plain `metrics=[\"accuracy\"]` or `fit(class_weight=...)` would read the wrong columns and report a "
            "wrong number. The first step of `fit` or `evaluate` refuses it and leaves the model's weights as they "
            "were. Wrap each metric (`metrics=[loss.metric(\"accuracy\")]`, or `lossdsl.keras.Metric(spec, "
            "like=loss)`), or send the metadata through the model's inputs (`Loss(spec, inputs=[\"group\"])` with "
            "`lossdsl.keras.MetadataModel(model)` and `fit({\"x\": x, \"group\": ids}, y)`): `y_true` is then the "
            "plain target that metrics and `class_weight` read.",
}


def example_for(code: str) -> str | None:
    for out in sorted((ROOT / "tests" / "diagnostics").glob("*.out")):
        text = out.read_text()
        if f"[{code}]" in text:
            return text.rstrip("\n")
    return None


def render() -> str:
    lines = ["# Error and warning codes", "",
             "Every finding of `lossdsl check` and every `LossError` carries one of these codes. The examples are "
             "the exact output for the specs in `tests/diagnostics/` (the UI tests check them).",
             "", "Generated by `python scripts/gen_errors_doc.py`.", ""]
    for code, title in CODES.items():
        lines += [f"## {code} — {title}", "", EXPLAIN[code], ""]
        example = example_for(code)
        if example:
            lines += ["```", example, "```", ""]
    return "\n".join(lines)


def main() -> int:
    missing = [c for c in CODES if c not in EXPLAIN]
    if missing:
        print(f"no explanation for {missing}", file=sys.stderr)
        return 1
    (ROOT / "docs" / "errors.md").write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
