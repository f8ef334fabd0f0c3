"""The long explanation of every error and warning code: what it means, a spec (or a call) that
gets it, the same fixed, and how to fix it. `lossdsl explain CODE` prints one; docs/errors.md is
generated from all of them (scripts/gen_errors_doc.py), so the two never disagree.

The titles are `lossdsl.diagnostics.CODES`'; a test checks that every code there is explained
here, that every wrong example gets its code and that every right one checks clean.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from .diagnostics import CODES

__all__ = ["EXPLANATIONS", "Explanation", "explain", "render_text"]


@dataclass(frozen=True)
class Explanation:
    code: str
    meaning: str
    wrong: str  # a spec (or, for `language="python"`, a call) that gets the code
    right: str  # the same, fixed
    fix: str
    language: str = "loss"  # "loss": specs; "python": the code runs `lossdsl.compile` and calls the loss

    @property
    def title(self) -> str:
        return CODES[self.code]


_YHAT_Y = "pred   yhat: float[B]\ntarget y:    float[B]\n"
_YHAT_ALPHA = (
    "pred   yhat:  float[B]\ntarget y:     float[B]\nparam  alpha: float = 0.5\nloss = mean(alpha * (yhat - y)^2)\n"
)
_YHAT_Y_BC = "pred   yhat: float[B, C]\ntarget y:    float[B, C]\n"
# The spec the call-time examples compile.
_MSE = 'SPEC = """\npred   yhat: float[B]\ntarget y:    float[B]\nloss = mean((yhat - y)^2)\n"""\n'
_CALL = "import numpy as np\nimport lossdsl\n\n" + _MSE + 'f = lossdsl.compile(SPEC, backend="numpy")\n'


def _e(code: str, meaning: str, wrong: str, right: str, fix: str, language: str = "loss") -> Explanation:
    return Explanation(code, meaning, wrong, right, fix, language)


_KERAS = (
    "import numpy as np\nimport keras\nimport lossdsl.keras\n\n"
    'SPEC = """\npred   logits: float[B, C]\ntarget y:      float[B, C]\ninput  group:  int[B]\n'
    'loss = -sum(y * log_softmax(logits), axis=C) * (1.0 + float(group))\n"""\n'
    'loss = lossdsl.keras.Loss(SPEC, y_true=["y", "group"])\n'
    'x, y = np.ones((8, 4), "float32"), np.eye(3, dtype="float32")[np.arange(8) % 3]\n'
    "group = np.arange(8) % 2\n"
    "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])\n"
)

_ALL = [
    _e(
        "E001",
        "The spec could not be read: the file is missing, is a directory, or is not UTF-8.",
        'import lossdsl\n\nlossdsl.compile("no_such_file.loss", backend="numpy")\n',
        'import lossdsl\nimport lossdsl.std\n\nlossdsl.compile(lossdsl.std.path("mse"), backend="numpy")\n',
        "Check the path (it is relative to the working directory) and that the file is saved as UTF-8. "
        "A string that ends in `.loss` is read as a path; anything else is read as spec text.",
        "python",
    ),
    _e(
        "E101",
        "The text does not follow the grammar. The message says what was expected; common mistakes have "
        "their own codes below.",
        _YHAT_Y.replace("target y:    float[B]", "input  input: float[B]") + "loss = mean(input * yhat)\n",
        "pred  yhat: float[B]\ninput w:    float[B]\nloss = mean(w * yhat)\n",
        "Read the message: it names what the parser expected where it stopped. A keyword (`input`, `loss`, "
        "`float`...) cannot be a name; a statement starts with a keyword (`let x = ...`, not `x = ...`).",
    ),
    _e(
        "E102",
        "A `(`, `[` or `{` is never closed. Inside brackets an expression may span lines, so the report "
        "points at the opening bracket.",
        _YHAT_Y + "loss = mean(abs(yhat - y)\n",
        _YHAT_Y + "loss = mean(abs(yhat - y))\n",
        "Add the closing bracket where the expression ends. Since a statement continues while a bracket is "
        "open, the next lines may be reported too: fix the first finding first.",
    ),
    _e(
        "E103",
        "A closing bracket with no (or another) opening bracket.",
        _YHAT_Y + "loss = mean(abs(yhat - y)))\n",
        _YHAT_Y + "loss = mean(abs(yhat - y))\n",
        "Remove the extra bracket, or change it to the one that matches: the help names the bracket it should close.",
    ),
    _e(
        "E104",
        "Powers are written `^`, not `**`.",
        _YHAT_Y + "loss = mean((yhat - y) ** 2)\n",
        _YHAT_Y + "loss = mean((yhat - y)^2)\n",
        "Write `x^2`. `^` binds tighter than unary minus (`-x^2` is `-(x^2)`) and groups to the right.",
    ),
    _e(
        "E105",
        "`a < b < c` is not allowed: write `a < b and b < c`.",
        _YHAT_Y + "loss = mean(where(0 < yhat < 1, (yhat - y)^2, 0.0))\n",
        _YHAT_Y + "loss = mean(where(0 < yhat and yhat < 1, (yhat - y)^2, 0.0))\n",
        "Join the two comparisons with `and`. Python chains comparisons, most languages do not; the language "
        "refuses rather than guess.",
    ),
    _e(
        "E106",
        "A character that is not part of the language (strings, `$`, `&`, `!`...).",
        _YHAT_Y + "loss = mean(where(yhat > 0 && y > 0, yhat, 0.0))\n",
        _YHAT_Y + "loss = mean(where(yhat > 0 and y > 0, yhat, 0.0))\n",
        "Use the language's words: `and`, `or`, `not`; there are no strings and no `%`. A `#` starts a comment.",
    ),
    _e(
        "E108",
        "Positional arguments must come before `name=value` ones.",
        _YHAT_Y_BC + "loss = mean(sum(axis=C, (yhat - y)^2))\n",
        _YHAT_Y_BC + "loss = mean(sum((yhat - y)^2, axis=C))\n",
        "Put the positional arguments first, then the keyword ones.",
    ),
    _e(
        "E109",
        "`=` inside an expression; comparison is `==`.",
        _YHAT_Y + "loss = mean(where((y = 1), yhat, 0.0))\n",
        _YHAT_Y + "loss = mean(where((y == 1), yhat, 0.0))\n",
        "Compare with `==`. A single `=` belongs to a statement (`let x = ...`) or a keyword argument (`axis=C`).",
    ),
    _e(
        "E201",
        "A name that is not declared, defined by `let`, a parameter of the enclosing `def`, or a dimension. "
        "Close matches are suggested.",
        _YHAT_Y + "loss = mean((yhat - labels)^2)\n",
        _YHAT_Y + "loss = mean((yhat - y)^2)\n",
        "Correct the spelling (the help suggests the closest name), or declare the name (`input labels: "
        "float[B]`) or define it (`let labels = ...`) before the statement that reads it.",
    ),
    _e(
        "E202",
        "A function that is neither built in nor defined with `def`. Close matches are suggested.",
        _YHAT_Y + "loss = mean(squared(yhat - y))\n",
        _YHAT_Y + "loss = mean(square(yhat - y))\n",
        "Use a built-in (docs/language.md lists them; the help suggests the closest) or define the function "
        "with `def name(x) = ...`.",
    ),
    _e(
        "E203",
        "A name is defined once: declarations, lets and defs share one namespace.",
        _YHAT_Y + "let err = yhat - y\nlet err = abs(err)\nloss = mean(err)\n",
        _YHAT_Y + "let err     = yhat - y\nlet abs_err = abs(err)\nloss = mean(abs_err)\n",
        "Give the second definition its own name. Values never change in the language, so a name is "
        "one value everywhere in the file.",
    ),
    _e(
        "E204",
        "Every file needs exactly one `loss = ...`.",
        _YHAT_Y + "let err = (yhat - y)^2\n",
        _YHAT_Y + "let err = (yhat - y)^2\nloss = mean(err)\n",
        "Add a `loss = ...` statement: it is the value the compiled function returns.",
    ),
    _e(
        "E205",
        "A second `loss` statement.",
        _YHAT_Y + "loss = mean((yhat - y)^2)\nloss = mean(abs(yhat - y))\n",
        _YHAT_Y + "let mse = mean((yhat - y)^2)\nlet mae = mean(abs(yhat - y))\nloss = mse + 0.5 * mae\n",
        "Keep one `loss`: name the parts with `let` and combine them.",
    ),
    _e(
        "E206",
        "A `def` that calls itself (directly or through others), or `let`s defined in terms of each other: "
        "defs are inlined and lets are values, so neither can recurse.",
        _YHAT_Y + "def decay(x) = 0.5 * decay(x)\nloss = mean(decay((yhat - y)^2))\n",
        _YHAT_Y + "def decay(x) = 0.5 * x\nloss = mean(decay((yhat - y)^2))\n",
        "Write the computation without recursion: a fixed number of steps written out, or a reduction "
        "(`sum`, `cumsum`) over an axis.",
    ),
    _e(
        "E207",
        "`reduction` and `sample_weight` are keyword arguments of the compiled function and cannot be declared.",
        "pred   yhat:          float[B]\ntarget y:             float[B]\ninput  sample_weight: float[B]\n"
        "loss = mean(sample_weight * (yhat - y)^2)\n",
        _YHAT_Y + "loss = (yhat - y)^2\n",
        "Write a per-sample loss (shape `[B]`) and pass `sample_weight=` (and `reduction=`) when calling the "
        "compiled loss; or declare the weight under another name (`input w: float[B]`).",
    ),
    _e(
        "E208",
        "A function used as a value (`log` without a call), or a value called like a function.",
        _YHAT_Y + "loss = mean(abs) * mean(yhat - y)\n",
        _YHAT_Y + "loss = mean(abs(yhat - y))\n",
        "Call the function with its arguments (`abs(x)`); a declared or `let` name is a value and is not called.",
    ),
    _e(
        "E209",
        "No `pred`: the loss must depend on a model output.",
        "input  yhat: float[B]\ntarget y:    float[B]\nloss = mean((yhat - y)^2)\n",
        _YHAT_Y + "loss = mean((yhat - y)^2)\n",
        "Declare the model's output with `pred`: the loss is differentiated with respect to every pred.",
    ),
    _e(
        "E210",
        "A `.field` that the record does not have, or a field read on a tensor.",
        _YHAT_Y + "input  x:    {feature: float[B]}\nloss = mean(x.features * (yhat - y)^2)\n",
        _YHAT_Y + "input  x:    {feature: float[B]}\nloss = mean(x.feature * (yhat - y)^2)\n",
        "Use a field the record declares (the help lists them), or add the field to the record's type.",
    ),
    _e(
        "E211",
        "A `def` with the name of a built-in function.",
        _YHAT_Y + "def log(x) = log1p(x - 1)\nloss = mean(log(abs(yhat - y) + 1))\n",
        _YHAT_Y + "def shifted_log(x) = log1p(x - 1)\nloss = mean(shifted_log(abs(yhat - y) + 1))\n",
        "Give the function a name of its own; the built-in stays available under its name.",
    ),
    _e(
        "E212",
        "A `use` (docs/language.md §1) whose file cannot be read: a path that names no file (a path is "
        "relative to the file that uses it), a name the standard library does not have, a library other "
        "than `std`, or a used file with syntax errors (reported in that file too).",
        "use std.hubr\n\npred   yhat: float[B]\ntarget y:    float[B]\nloss = mean((yhat - y)^2)\n",
        "use std.huber\n\npred   yhat: float[B]\ntarget y:    float[B]\nloss = mean((yhat - y)^2)\n",
        'Spell the file as it is: `use std.huber`, `use "helpers.loss"` next to the using file.',
    ),
    _e(
        "E213",
        "Files that `use` each other, directly or through others. A `def` is inlined where it is called, "
        "so the files would have no first one to read; each `use` on the way is named.",
        "import pathlib\nimport tempfile\n\nimport lossdsl\n\nfolder = pathlib.Path(tempfile.mkdtemp())\n"
        '(folder / "a.loss").write_text(\'use "b.loss"\\ndef f(x) = 2 * x\\n\')\n'
        '(folder / "b.loss").write_text(\'use "a.loss"\\ndef g(x) = f(x) + 1\\n\')\n'
        '(folder / "main.loss").write_text(\'use "b.loss"\\npred z: float[B]\\nloss = mean(g(z))\\n\')\n'
        'lossdsl.check(folder / "main.loss")\n',
        "import pathlib\nimport tempfile\n\nimport lossdsl\n\nfolder = pathlib.Path(tempfile.mkdtemp())\n"
        "(folder / \"a.loss\").write_text('def f(x) = 2 * x\\n')\n"
        '(folder / "b.loss").write_text(\'use "a.loss"\\ndef g(x) = f(x) + 1\\n\')\n'
        '(folder / "main.loss").write_text(\'use "b.loss"\\npred z: float[B]\\nloss = mean(g(z))\\n\')\n'
        'lossdsl.check(folder / "main.loss")\n',
        "Move the `def`s both files need into a third file that neither uses, and `use` it from both.",
        "python",
    ),
    _e(
        "E214",
        "A name defined in this file and by a `def` of a file it uses, or by `def`s of two used files. The "
        "error is at the definition in this file (or at the second `use`) and names the other place.",
        "import pathlib\nimport tempfile\n\nimport lossdsl\n\nfolder = pathlib.Path(tempfile.mkdtemp())\n"
        "(folder / \"helpers.loss\").write_text('def huber(r, d) = where(abs(r) <= d, 0.5 * r^2, d * (abs(r) - 0.5 * d))\\n')\n"
        '(folder / "main.loss").write_text(\'use "helpers.loss"\\npred z: float[B]\\ndef huber(r) = r^2\\nloss = mean(huber(z))\\n\')\n'
        'lossdsl.check(folder / "main.loss")\n',
        "import pathlib\nimport tempfile\n\nimport lossdsl\n\nfolder = pathlib.Path(tempfile.mkdtemp())\n"
        "(folder / \"helpers.loss\").write_text('def huber(r, d) = where(abs(r) <= d, 0.5 * r^2, d * (abs(r) - 0.5 * d))\\n')\n"
        '(folder / "main.loss").write_text(\'use "helpers.loss"\\npred z: float[B]\\nloss = mean(huber(z, 1.0))\\n\')\n'
        'lossdsl.check(folder / "main.loss")\n',
        "Rename one of them, or drop the local definition and call the used one.",
        "python",
    ),
    _e(
        "E301",
        "Operands of the wrong dtype for an operation (comparing a bool with a number, branches of "
        "`where` of different kinds).",
        _YHAT_Y + "loss = mean(where(y > 0, yhat, y > 1))\n",
        _YHAT_Y + "loss = mean(where(y > 0, yhat, 0.0))\n",
        "Make both sides the same kind: numbers with numbers, `bool` with `bool`. Convert a mask with `float(mask)`.",
    ),
    _e(
        "E302",
        "Arithmetic on `bool`. Convert with `float(mask)` or select with `where(mask, a, b)`.",
        _YHAT_Y + "loss = mean((yhat > 0) * (yhat - y)^2)\n",
        _YHAT_Y + "loss = mean(float(yhat > 0) * (yhat - y)^2)\n",
        "Convert the mask with `float(...)` (1.0 where true), or select with `where(mask, a, b)`.",
    ),
    _e(
        "E303",
        "A number where `bool` is needed: the condition of `where`, the operands of `and`/`or`/`not`.",
        _YHAT_Y + "loss = mean(where(y, yhat, 0.0))\n",
        _YHAT_Y + "loss = mean(where(y > 0, yhat, 0.0))\n",
        "Write the comparison that makes the condition (`y > 0`, `y != 0`).",
    ),
    _e(
        "E304",
        "A float where `int` is needed: indices, `segment_*` ids, `one_hot` classes.",
        "pred   logits: float[B, C]\ntarget y:      float[B]\nloss = -mean(pick(log_softmax(logits), y))\n",
        "pred   logits: float[B, C]\ntarget y:      int[B]\nloss = -mean(pick(log_softmax(logits), y))\n",
        "Declare the labels or ids as `int`, or convert with `int(...)` (which truncates toward zero).",
    ),
    _e(
        "E305",
        "A param default that does not fit the declared type or shape (or a default on a declaration that is "
        "not a param).",
        _YHAT_ALPHA.replace("0.5", "true"),
        _YHAT_ALPHA,
        "Give a default of the declared dtype (a `float` accepts an integer literal) and shape (a list of "
        "the declared length), or none and bind the param at compile time.",
    ),
    _e(
        "E306",
        "A pred must be a float tensor.",
        "pred   labels: int[B]\ntarget y:      float[B]\nloss = mean((float(labels) - y)^2)\n",
        "pred   scores: float[B]\ntarget y:      float[B]\nloss = mean((scores - y)^2)\n",
        "Declare the model output as `float`: the loss is differentiated with respect to it, and an integer "
        "has no gradient. Integer labels are a `target`.",
    ),
    _e(
        "E307",
        "A record used where a tensor is needed; read one of its fields.",
        _YHAT_Y + "input  x:    {feature: float[B]}\nloss = mean(x * (yhat - y)^2)\n",
        _YHAT_Y + "input  x:    {feature: float[B]}\nloss = mean(x.feature * (yhat - y)^2)\n",
        "Read the field you mean: `x.feature`.",
    ),
    _e(
        "E308",
        "A parenthesised tuple outside `axis=`.",
        _YHAT_Y + "loss = mean((yhat, y))\n",
        _YHAT_Y + "loss = mean((yhat - y)^2)\n",
        "A tuple only names several axes (`sum(x, axis=(B, C))`); combine the values with an operator instead.",
    ),
    _e(
        "E309",
        "A param must be a tensor, not a record.",
        _YHAT_Y + "param  opts: {alpha: float}\nloss = mean(opts.alpha * (yhat - y)^2)\n",
        _YHAT_ALPHA,
        "Declare one param per value.",
    ),
    _e(
        "E310",
        "A declared value domain (`in ...`, docs/language.md §2) that cannot hold for its declaration: a domain on "
        "a `bool`, `simplex` on an `int` or on a scalar, an unknown domain name, an end that is not a dimension "
        "symbol of the file, a closed infinite end (`[0, inf]`), a non-integer end on an `int`, an empty "
        "interval, or a param default outside its domain.",
        _YHAT_Y + "input  w:    float[B] in (0, inf]\nloss = mean(w * (yhat - y)^2)\n",
        _YHAT_Y + "input  w:    float[B] in (0, inf)\nloss = mean(w * (yhat - y)^2)\n",
        "Write the smaller end first, open at `inf`, with integer ends for an `int`: `[0, C)`, `(0, inf)`, `[0, 1]`.",
    ),
    _e(
        "E401",
        "Shapes that do not broadcast. Broadcasting lines shapes up from the right; two different dimension "
        "symbols never broadcast, even if their sizes happen to agree, so a `[B]` weight times a `[B, C]` "
        "loss is an error with the fix (`w[:, None]`) instead of a silent outer product.",
        "pred   logits: float[B, C]\ntarget y:      float[B, C]\ninput  w:      float[B]\n\n"
        "let ce = -y * log_softmax(logits)\nloss = mean(w * ce)\n",
        "pred   logits: float[B, C]\ntarget y:      float[B, C]\ninput  w:      float[B]\n\n"
        "let ce = -y * log_softmax(logits)\nloss = mean(w[:, None] * ce)\n",
        "Line the axes up explicitly: `w[:, None]` makes a `[B]` weight `[B, 1]`, one weight per row. Or reduce "
        "the other operand first (`sum(ce, axis=C)` is `[B]`).",
    ),
    _e(
        "E402",
        "A dimension symbol bound to two different sizes; both sources are named.",
        _YHAT_Y
        + "param  w:    float[C] = [1.0, 2.0]\nparam  v:    float[C] = [1.0, 2.0, 3.0]\n"
        + "loss = mean((yhat - y)^2) * sum(w) * sum(v)\n",
        _YHAT_Y
        + "param  w:    float[C] = [1.0, 2.0]\nparam  v:    float[K] = [1.0, 2.0, 3.0]\n"
        + "loss = mean((yhat - y)^2) * sum(w) * sum(v)\n",
        "A dimension symbol is one size everywhere in the file: give different sizes different symbols, or "
        "make the sources agree.",
    ),
    _e(
        "E403",
        "A size-1 axis stretched against a dimension that the result already has on another axis, which "
        "makes an outer product of that dimension with itself: a `[B, 1]` model output (Keras' `Dense(1)`) "
        "against `[B]` labels gives a `[B, B]` loss, and its mean is a plausible-looking wrong number. "
        "Drop the size-1 axis (`yhat[:, 0]`). An outer product meant as one is written with explicit "
        "`None` axes (`x[:, None] - x[None, :]`), which is allowed.",
        "pred   yhat: float[B, 1]\ntarget y:    float[B]\nloss = mean((yhat - y)^2)\n",
        "pred   yhat: float[B, 1]\ntarget y:    float[B]\nloss = mean((yhat[:, 0] - y)^2)\n",
        "Drop the size-1 axis (`yhat[:, 0]`) or add one to the other side (`y[:, None]`); for a real outer "
        "product write both `None` axes.",
    ),
    _e(
        "E404",
        "An operand of the wrong rank (`pick` indices, `transpose` of a vector, segment ids...).",
        "pred   logits: float[B, C]\ntarget y:      int[B, C]\nloss = -mean(pick(log_softmax(logits), y))\n",
        "pred   logits: float[B, C]\ntarget y:      int[B]\nloss = -mean(pick(log_softmax(logits), y))\n",
        "Give the operand the rank the function needs (the message says which shape it expected); one-hot "
        "labels are read with `sum(y * log_softmax(logits), axis=C)` instead of `pick`.",
    ),
    _e(
        "E405",
        "An `axis` out of range, naming no axis, naming two axes (`[N, N]`), given twice, or missing for "
        "`argmax` above rank 1.",
        _YHAT_Y_BC + "loss = mean(sum((yhat - y)^2, axis=2))\n",
        _YHAT_Y_BC + "loss = mean(sum((yhat - y)^2, axis=C))\n",
        "Name the axis by its dimension symbol (`axis=C`): it cannot be out of range, and it says which axis is meant.",
    ),
    _e(
        "E406",
        "An index out of range, too many indices, an empty or backwards slice, or two `...`.",
        _YHAT_Y_BC + "loss = mean(yhat[0, 0, 0] - y[:, 0])\n",
        _YHAT_Y_BC + "loss = mean(yhat[:, 0] - y[:, 0])\n",
        "Index no more axes than the value has, with indices inside their axis. A shape written after an "
        "expression (`x [B, C]`) is read as an index: make a shape note a comment (`# [B, C]`).",
    ),
    _e(
        "E407",
        "Slice bounds must be integer literals.",
        "pred  seq: float[B, T]\nparam k:   int = 1\nloss = mean(seq[:, k:] - seq[:, :-1])\n",
        "pred seq: float[B, T]\nloss = mean(seq[:, 1:] - seq[:, :-1])\n",
        "Write the bounds as numbers: the sizes of the result must be known when the spec is checked.",
    ),
    _e(
        "E408",
        "A bool mask as an index: the result's shape would depend on the data. Use `where(mask, x, 0.0)`.",
        _YHAT_Y + "loss = sum(yhat[yhat > y] - y[yhat > y])\n",
        _YHAT_Y + "loss = sum(where(yhat > y, yhat - y, 0.0))\n",
        "Keep every element and zero the ones the mask drops: `where(mask, x, 0.0)`; for a mean over the "
        "selected elements divide by `sum(float(mask))`.",
    ),
    _e(
        "E409",
        "Int-tensor indices cannot be mixed with slices, `...` or `None`.",
        "pred    yhat: float[B]\ntarget  y:    int[B]\ncontext W:    float[C, D]\n"
        "loss = mean(yhat * sum(W[y, :], axis=D))\n",
        "pred    yhat: float[B]\ntarget  y:    int[B]\ncontext W:    float[C, D]\n"
        "loss = mean(yhat * sum(W[y], axis=D))\n",
        "Leave the trailing axes out (`W[y]` gathers whole rows), or index every axis with int tensors (`W[y, z]`).",
    ),
    _e(
        "E410",
        "The inner dimensions of `a @ b` differ.",
        "pred    a: float[B, C]\ncontext M: float[D, E]\nloss = mean(a @ M)\n",
        "pred    a: float[B, C]\ncontext M: float[C, E]\nloss = mean(a @ M)\n",
        "The last axis of `a` and the first (second to last) axis of `b` must be the same dimension; "
        "`transpose(b)` swaps the last two axes.",
    ),
    _e(
        "E411",
        "The step of a `scan` gives a value of another dtype or shape than the carry it was given; "
        "its result becomes the next carry, so it must keep the carry's type.",
        "pred x: float[B, T]\ndef step(a, xt) = sum(a + xt)\nloss = mean(scan(step, x[:, 0], [x], axis=T))\n",
        "pred x: float[B, T]\ndef step(a, xt) = a + xt\nloss = mean(scan(step, x[:, 0], [x], axis=T))\n",
        "Make the step give a value of the carry's shape (the caret marks the step's body); to keep "
        "a summary, carry it in another axis and reduce after the `scan`.",
    ),
    _e(
        "E501",
        "A call with the wrong number of arguments; the missing ones are named.",
        _YHAT_Y + "loss = mean(clip(yhat - y, 0.0))\n",
        _YHAT_Y + "loss = mean(clip(yhat - y, 0.0, 1.0))\n",
        "Give the arguments the message names; docs/language.md lists each function's signature.",
    ),
    _e(
        "E502",
        "A keyword argument the function does not take. Names from other libraries (`dim`, `keepdim`) get a hint.",
        "pred yhat: float[B, C]\nloss = mean(sum(yhat, dim=1))\n",
        "pred yhat: float[B, C]\nloss = mean(sum(yhat, axis=1))\n",
        "Use the language's keyword (`axis`, `keepdims`): the help names it.",
    ),
    _e(
        "E503",
        "An argument given twice.",
        _YHAT_Y_BC + "loss = mean(softmax(yhat, -1, axis=-1) - y)\n",
        _YHAT_Y_BC + "loss = mean(softmax(yhat, axis=-1) - y)\n",
        "Give it once, positionally or by keyword.",
    ),
    _e(
        "E504",
        "A static argument (`axis`, `keepdims`, `ddof`, `p`, a size) that is not a literal, or out of range.",
        _YHAT_Y_BC + "param  k:    int = 1\nloss = mean(sum((yhat - y)^2, axis=k))\n",
        _YHAT_Y_BC + "loss = mean(sum((yhat - y)^2, axis=1))\n",
        "Write the value in the spec: the shapes of the result depend on it, so it must be known when the "
        "spec is checked.",
    ),
    _e(
        "E601",
        "`loss` must be float.",
        "pred yhat: float[B]\nloss = sum(int(yhat * 10))\n",
        "pred yhat: float[B]\nloss = sum(yhat * 10)\n",
        "Compute the loss in floats; `int(...)` and comparisons have no gradient.",
    ),
    _e(
        "E602",
        "`loss` must be a scalar or per-sample `[B]` (B the leading dimension of a pred); the help says which "
        "axes to reduce.",
        _YHAT_Y_BC + "loss = (yhat - y)^2\n",
        _YHAT_Y_BC + "loss = mean((yhat - y)^2, axis=C)\n",
        "Reduce the other axes (`mean(..., axis=C)` for a per-sample loss, `mean(...)` for a scalar).",
    ),
    _e(
        "E603",
        "A pred reaches `loss` only through operations without a gradient (`argmax`, comparisons, rounding, "
        "`int()`, `stop_gradient`, indices): its gradient would be zero everywhere.",
        "pred   logits: float[B, C]\ntarget y:      int[B]\nloss = 1 - mean(float(argmax(logits, axis=-1) == y))\n",
        "pred   logits: float[B, C]\ntarget y:      int[B]\nloss = -mean(pick(log_softmax(logits), y))\n",
        "Use a differentiable surrogate (cross-entropy for accuracy, a sigmoid for a threshold), or declare "
        "the value as an `input` if the model is not trained through it.",
    ),
    _e(
        "E604",
        "A pred that `loss` does not use.",
        "pred   yhat: float[B]\npred   aux:  float[B]\ntarget y:    float[B]\nloss = mean((yhat - y)^2)\n",
        _YHAT_Y + "loss = mean((yhat - y)^2)\n",
        "Use the pred in the loss, or remove it (declare it as an `input` if it is only read).",
    ),
    _e(
        "W701",
        "(Warning.) A `log`, `log1p` or `sqrt` whose operand, or a `/` whose divisor, may leave the domain as "
        "far as the interval analysis can tell. `lossdsl check --strict` fails on it.",
        "pred   probs: float[B, C]\ntarget y:     float[B, C]\nloss = -mean(sum(y * log(probs), axis=C))\n",
        "pred   probs: float[B, C]\ntarget y:     float[B, C]\n"
        "loss = -mean(sum(y * log(clip(probs, 1e-7, 1.0)), axis=C))\n",
        "Keep the operand inside the domain: `clip(p, eps, 1)` before a `log`, `maximum(d, eps)` for a divisor; "
        "or work from logits (`log_softmax`, `log_sigmoid`), which are stable.",
    ),
    _e(
        "E801",
        "At a call: an argument not given, or a param with no default and no value.",
        _CALL + "f(np.zeros(4))\n",
        _CALL + "f(np.zeros(4), np.ones(4))\n",
        "Pass every pred, target and input, positionally in declaration order or by name; bind params "
        "without a default at compile time (`params=`) or at the call.",
        "python",
    ),
    _e(
        "E802",
        "At a call: too many positional arguments, an unknown keyword, or one given twice.",
        _CALL + "f(np.zeros(4), np.ones(4), np.ones(4))\n",
        _CALL + "f(np.zeros(4), np.ones(4))\n",
        "Pass the declared arguments only; the message lists them.",
        "python",
    ),
    _e(
        "E803",
        "At a call: an argument of the wrong dtype kind (a float for an `int` index, an int pred), or not a "
        "tensor at all.",
        _CALL + "f(np.zeros(4, dtype=np.int64), np.ones(4))\n",
        _CALL + "f(np.zeros(4, dtype=np.float32), np.ones(4))\n",
        "Convert the array to the declared dtype (`float` preds, `int` labels and ids).",
        "python",
    ),
    _e(
        "E804",
        "At a call (or for a context at compile time): an argument of the wrong rank.",
        _CALL + "f(np.zeros((4, 1)), np.ones(4))\n",
        _CALL + "f(np.zeros((4, 1))[:, 0], np.ones(4))\n",
        "Reshape the array to the declared rank (a `Dense(1)` output is `[B, 1]`: take `[:, 0]`), or change "
        "the declaration.",
        "python",
    ),
    _e(
        "E805",
        "At a call (or for a context at compile time): a size that disagrees with the declaration or with "
        "the size bound earlier; both sources are named. Also a size below what an index needs.",
        _CALL + "f(np.zeros(4), np.ones(5))\n",
        _CALL + "f(np.zeros(4), np.ones(4))\n",
        "Make the sizes agree: one dimension symbol is one size in every argument of a call.",
        "python",
    ),
    _e(
        "E806",
        "A context passed at a call (it is bound at compile time), a context missing at compile time, or an "
        "unknown context or param name. A standalone module (`lossdsl emit --standalone`) raises it for a "
        "context missing at its `bind(...)` or a spec with context called without it; emitting one with "
        "context given is E806 too (it takes its context when it runs).",
        "import numpy as np\nimport lossdsl\n\n"
        'SPEC = """\npred    yhat: float[B, C]\ntarget  y:    float[B, C]\ncontext w:    float[C]\n'
        'loss = mean(sum(w * (yhat - y)^2, axis=C))\n"""\nf = lossdsl.compile(SPEC, backend="numpy")\n',
        "import numpy as np\nimport lossdsl\n\n"
        'SPEC = """\npred    yhat: float[B, C]\ntarget  y:    float[B, C]\ncontext w:    float[C]\n'
        'loss = mean(sum(w * (yhat - y)^2, axis=C))\n"""\n'
        'f = lossdsl.compile(SPEC, backend="numpy", context={"w": np.ones(3)})\n',
        "Bind every context with `context={...}` when compiling, and pass only preds, targets, inputs and "
        "params at the call.",
        "python",
    ),
    _e(
        "E807",
        "A record argument that is not a dict, lacks a field, or has an extra one. In Keras: a `y_true` that "
        "lacks a field the loss reads, a field named in both `y_true=[...]` and `inputs=[...]`, or a field "
        "declared in `inputs=[...]` that the model's inputs do not carry (the model is not wrapped in "
        "`lossdsl.keras.MetadataModel`, or its input dict lacks the name).",
        "import numpy as np\nimport lossdsl\n\n"
        'SPEC = """\npred   yhat: float[B]\ntarget y:    float[B]\ninput  x:    {feature: float[B]}\n'
        'loss = mean(x.feature * (yhat - y)^2)\n"""\nf = lossdsl.compile(SPEC, backend="numpy")\n'
        'f(np.zeros(4), np.ones(4), x={"weight": np.ones(4)})\n',
        "import numpy as np\nimport lossdsl\n\n"
        'SPEC = """\npred   yhat: float[B]\ntarget y:    float[B]\ninput  x:    {feature: float[B]}\n'
        'loss = mean(x.feature * (yhat - y)^2)\n"""\nf = lossdsl.compile(SPEC, backend="numpy")\n'
        'f(np.zeros(4), np.ones(4), x={"feature": np.ones(4)})\n',
        "Pass a dict with exactly the declared fields.",
        "python",
    ),
    _e(
        "E808",
        "An unknown `reduction`, a `sample_weight` of the wrong shape, or a `sample_weight` with a scalar "
        "loss; also a malformed `--dim`/`--param`.",
        _CALL + 'f(np.zeros(4), np.ones(4), reduction="avg")\n',
        _CALL + 'f(np.zeros(4), np.ones(4), reduction="mean")\n',
        'Use `reduction="mean"`, `"sum"`, `"weighted_mean"` or `"none"`, with a per-sample `[B]` loss and a '
        "`[B]` `sample_weight`.",
        "python",
    ),
    _e(
        "E809",
        "A dimension symbol used by `one_hot` or `segment_*` that no declaration mentions, so nothing gives its size.",
        "pred  yhat:  float[B]\ninput group: int[B]\nloss = sum(segment_mean(yhat, group, G))\n",
        "pred  yhat:    float[B]\ninput group:   int[B]\nparam group_w: float[G] = [1.0, 0.5]\n"
        "loss = sum(group_w * segment_mean(yhat, group, G))\n",
        "Mention the dimension in a declaration whose size is known (a context, a param with a default, or "
        "an argument), so the number of groups or classes is bound.",
    ),
    _e(
        "E810",
        "An unknown backend name.",
        "import lossdsl\n\n" + _MSE + 'lossdsl.compile(SPEC, backend="theano")\n',
        "import lossdsl\n\n" + _MSE + 'lossdsl.compile(SPEC, backend="numpy")\n',
        'Use `"torch"`, `"tensorflow"` (or `"tf"`), `"jax"` or `"numpy"`.',
        "python",
    ),
    _e(
        "E811",
        "`lossdsl.compile(..., sharded=...)` names no dimension of the spec, or the spec needs the whole "
        "batch on one replica for something along that dimension (a product, `argmax`, `softmax`, `cumsum`, "
        "slicing or gathering along it), or a context tensor has that dimension, or torch.distributed was not "
        "initialised before the call (docs/distributed.md). Also `lossdsl emit --standalone` of a sharded "
        "loss: its collectives are lossdsl's.",
        "import lossdsl\n\n" + _MSE + 'lossdsl.compile(SPEC, backend="numpy", sharded="N")\n',
        "import lossdsl\n\n" + _MSE + 'lossdsl.compile(SPEC, backend="numpy")\n',
        "Name the batch dimension the replicas split, and keep what needs the whole batch out of the spec "
        "(or compute it on one replica).",
        "python",
    ),
    _e(
        "E812",
        "At a call: an `int` argument (or a slice of one) read as an index (by `pick`, a gather, `one_hot` or "
        "`segment_*`) "
        "holds a value outside [0, size) of the axis it indexes, such as PyTorch's ignore label -100. The "
        "frameworks disagree there (NumPy, PyTorch and TensorFlow on CPU raise, JAX and GPUs clamp or read "
        "garbage), so the entry checks the values first; an index read under a `where` guard is not checked "
        "(the guard makes the lanes it drops 0 before the read). While tracing (jit, `tf.function`, "
        "`torch.compile`, Keras `fit`) the values cannot be read: an assertion in the graph says E812 where "
        "the framework keeps one (`tf.function` without XLA, `torch.compile`), and elsewhere the loss is NaN "
        "with a zero gradient (docs/language.md §3). `check_values=True` (`lossdsl.compile`, "
        "`lossdsl.keras.Loss`, `LossModule`) keeps the check itself in the traced code: the same LossError "
        "through a host callback under "
        "`jax.jit`, a graph assertion whose text says E812 under `tf.function` (under XLA, `jit_compile=True`, "
        "which drops assertions, `check_values=True` is refused with E812 when the loss is traced), a "
        "device-side assertion under `torch.compile` that the read waits for; "
        "`lossdsl.compile(..., check_indices=False)` turns it off.",
        "import numpy as np\nimport lossdsl\n\n"
        'SPEC = """\npred   logits: float[B, C]\ntarget y:      int[B]\nloss = -pick(log_softmax(logits), y)\n"""\n'
        'f = lossdsl.compile(SPEC, backend="numpy")\nf(np.zeros((2, 3)), np.array([0, -100]))\n',
        "import numpy as np\nimport lossdsl\n\n"
        'SPEC = """\npred   logits: float[B, C]\ntarget y:      int[B]\nloss = -pick(log_softmax(logits), y)\n"""\n'
        'f = lossdsl.compile(SPEC, backend="numpy")\nf(np.zeros((2, 3)), np.array([0, 2]))\n',
        "Keep index values inside their axis. For an ignored label, guard the read "
        "(`where(y != ignore, -pick(logp, y), 0.0)`, as `lossdsl/std/cross_entropy.loss` does).",
        "python",
    ),
    _e(
        "E813",
        "`lossdsl.keras.Loss(..., y_true=[...])` packs targets and metadata side by side in one `y_true`. Keras "
        "hands that same `y_true` to every compiled metric and computes `class_weight` from it, so a plain "
        '`metrics=["accuracy"]` or `fit(class_weight=...)` would read the wrong columns and report a wrong '
        "number. A plain metric is refused when the model is compiled (Keras builds its metrics before the loss "
        'is first called, where a metric such as `"mse"` would fail with a shape error of its own); '
        "`class_weight` by the first step of `fit`, which leaves the model's weights as they were.",
        _KERAS + 'model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])\n'
        "model.fit(x, lossdsl.keras.pack(loss, y=y, group=group), epochs=1, verbose=0)\n",
        _KERAS + 'model.compile(optimizer="sgd", loss=loss, metrics=[loss.metric("accuracy")])\n'
        "model.fit(x, lossdsl.keras.pack(loss, y=y, group=group), epochs=1, verbose=0)\n",
        'Wrap each metric (`loss.metric("accuracy")`, or `lossdsl.keras.Metric(spec, like=loss)`), or send the '
        'metadata through the model\'s inputs (`Loss(spec, inputs=["group"])` with '
        '`lossdsl.keras.MetadataModel(model)` and `fit({"x": x, "group": ids}, y)`): `y_true` is then '
        "the plain target that metrics and `class_weight` read.",
        "python",
    ),
    _e(
        "E814",
        "At a call with `lossdsl.compile(..., check_domains=True)`: an argument holds a value outside the domain "
        "its declaration promises (`in (0, 1]`, `in simplex`, `in onehot`, `in [0, C)`; docs/language.md §2). "
        "The error points at the domain and names the first value outside it. The check reads every declared "
        "argument back to the host at each eager call, so it is off by default; it is skipped while tracing.",
        "import numpy as np\nimport lossdsl\n\n"
        'SPEC = """\npred   yhat: float[B]\ntarget p:    float[B] in (0, 1]\nloss = mean(-p * log(p) * yhat)\n"""\n'
        'f = lossdsl.compile(SPEC, backend="numpy", check_domains=True)\nf(np.ones(2), np.array([0.5, 0.0]))\n',
        "import numpy as np\nimport lossdsl\n\n"
        'SPEC = """\npred   yhat: float[B]\ntarget p:    float[B] in (0, 1]\nloss = mean(-p * log(p) * yhat)\n"""\n'
        'f = lossdsl.compile(SPEC, backend="numpy", check_domains=True)\nf(np.ones(2), np.array([0.5, 0.25]))\n',
        "Pass values inside the declared domain, or widen the domain (a probability that may be 0 is `[0, 1]`, and "
        "its `log` then needs a guard).",
        "python",
    ),
]

EXPLANATIONS: dict[str, Explanation] = {e.code: e for e in _ALL}


def explain(code: str) -> Explanation | None:
    """The explanation of `code` (any case), or None for a code the project does not have."""
    return EXPLANATIONS.get(code.strip().upper())


def render_text(e: Explanation, width: int = 88) -> str:
    """What `lossdsl explain` prints."""

    def para(text: str) -> str:
        return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)

    def block(code: str) -> str:
        return textwrap.indent(code.rstrip("\n"), "    ")

    what = "A spec" if e.language == "loss" else "Code"
    return "\n\n".join(
        [
            f"{e.code}: {e.title}",
            para(e.meaning),
            f"{what} that gets {e.code}:",
            block(e.wrong),
            "The same, fixed:",
            block(e.right),
            para("How to fix it: " + e.fix),
        ]
    )
