"""Declared value domains (docs/language.md §2): `float[B] in (0, 1]`, `int[B] in [0, C)`,
`float[B, C] in simplex`, `float[B, C] in onehot`. Parsed and formatted; checked against their
declaration (E310); read by the domain analysis (no W701 where the domain rules it out), by the
random inputs (drawn from inside the domain) and by the opt-in call-time check (E814)."""

from __future__ import annotations

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError
from lossdsl.domains import Interval, Named, violation
from lossdsl.formatting import format_source
from lossdsl.frontend import parse_source
from lossdsl.sampling import random_inputs
from lossdsl.source import Source

from conftest import available
from harness import convert

BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(not available(b), reason=f"MISSING FRAMEWORK: {b} is not installed"))
            for b in ("numpy", "torch", "jax", "tensorflow")]

SPEC = """\
pred   logits: float[B, C]
target p:      float[B, C] in simplex
target y:      int[B] in [0, C)
input  w:      float[B] in (0, inf)
input  r:      {shift: float[B] in [-1, 1.5], k: float[B]}
param  t:      float in (0, 1] = 0.5

loss = mean(-sum(p * log_softmax(logits / t), axis=C) * w + r.shift * r.k) + mean(-pick(log_softmax(logits), y))
"""


def leaf_domain(checked, name, path=()):
    decl = checked.declaration(name)
    return next(lf for lf in decl.leaves if lf.path == path).domain


def warnings_of(src):
    return [d for d in lossdsl.check(src).warnings if d.code == "W701"]


def errors_of(src):
    with pytest.raises(LossError) as e:
        lossdsl.check(src)
    return e.value.findings


# ---- syntax ----------------------------------------------------------------------------------


def test_each_kind_of_domain_is_parsed_onto_its_leaf():
    checked = lossdsl.check(SPEC)
    assert leaf_domain(checked, "p") == Named("simplex", leaf_domain(checked, "p").span)
    y = leaf_domain(checked, "y")
    assert (y.low, y.high, y.low_closed, y.high_closed) == (0, "C", True, False)
    w = leaf_domain(checked, "w")
    assert (w.low, w.high, w.low_closed, w.high_closed) == (0, float("inf"), False, False)
    shift = leaf_domain(checked, "r", ("shift",))
    assert (shift.low, shift.high, shift.low_closed, shift.high_closed) == (-1, 1.5, True, True)
    assert leaf_domain(checked, "r", ("k",)) is None
    t = leaf_domain(checked, "t")
    assert (t.low_closed, t.high_closed) == (False, True)
    assert str(y) == "[0, C)" and str(w) == "(0, inf)"


def test_the_domain_span_points_at_the_domain():
    y = leaf_domain(lossdsl.check(SPEC), "y")
    line = SPEC.splitlines()[2]
    assert (y.span.line, y.span.col) == (3, line.index("in [0, C)") + 1)


def test_an_interval_may_close_with_the_other_bracket_but_an_expression_may_not():
    lossdsl.check("pred z: float[B]\ntarget y: float[B] in [0, 1)\nloss = mean(z * y)\n")
    with pytest.raises(LossError) as e:
        lossdsl.check("pred z: float[B]\nloss = mean(z[0:1) * 2)\n")
    assert [d.code for d in e.value.findings] == ["E103"]


def test_a_domain_name_is_not_a_keyword():
    lossdsl.check("pred simplex: float[B]\ninput onehot: float[B]\nloss = mean(simplex * onehot)\n")


def test_in_is_a_keyword():
    result = parse_source(Source("pred in: float[B]\nloss = mean(in)\n"))
    assert any(d.code == "E101" and "keyword" in d.message for d in result.findings)


def test_the_formatter_keeps_domains_and_is_stable():
    messy = "pred logits:float[B,C]\ntarget p:float[B,C]  in   simplex\ntarget y:int[B] in[0,C)\n" \
            "param t:float in(0,1]=0.5\nloss=mean(-sum(p*log_softmax(logits/t),axis=C))+mean(float(y))\n"
    out = format_source(messy)
    assert "target p:      float[B, C] in simplex" in out
    assert "target y:      int[B] in [0, C)" in out
    assert "param  t:      float in (0, 1] = 0.5" in out
    assert format_source(out) == out
    assert lossdsl.check(out).declaration("y").leaves[0].domain.high == "C"


def test_the_highlighter_marks_in_as_a_keyword():
    from pygments.token import Keyword

    from lossdsl.highlight import LossLexer

    tokens = list(LossLexer().get_tokens("target y: int[B] in [0, C)\n"))
    assert (Keyword, "in") in [(t, v) for t, v in tokens if v == "in"]


# ---- E310: a domain that does not fit its declaration -----------------------------------------

BAD = {
    "a bool": ("input m: bool[B] in [0, 1]", "is a bool"),
    "simplex on an int": ("input m: int[B, C] in simplex", "needs a float"),
    "simplex on a scalar": ("input m: float in simplex", "scalar"),
    "onehot on a scalar": ("input m: float in onehot", "scalar"),
    "an unknown name": ("input m: float[B, C] in simplx", "did you mean"),
    "an unknown symbol": ("input m: int[B] in [0, K)", "`K`"),
    "a closed infinite end": ("input m: float[B] in [0, inf]", "infinite"),
    "a closed minus infinity": ("input m: float[B] in [-inf, 0)", "infinite"),
    "a fraction on an int": ("input m: int[B] in [0, 2.5)", "non-integer"),
    "an empty interval": ("input m: float[B] in (1, 1]", "holds no value"),
    "ends swapped": ("input m: float[B] in [1, 0]", "holds no value"),
    "a default outside": ("param m: float in (0, 1] = 1.5", "outside its domain"),
    "a list default outside": ("param m: float[2] in [0, 1] = [0.5, -0.5]", "outside its domain"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_domain_that_cannot_hold_is_E310_at_the_domain(case):
    decl, words = BAD[case]
    src = f"pred z: float[B, C]\n{decl}\nloss = mean(z)\n"
    diags = errors_of(src)
    assert [d.code for d in diags] == ["E310"], [d.render() for d in diags]
    d = diags[0]
    assert words in d.message + (d.help or "")
    assert (d.span.line, d.span.col) == (2, decl.index(" in ") + 2)


@pytest.mark.parametrize("decl", ["input m: float[B] in [0, 1]", "input m: int[B] in [0, C)", "input m: float[B, C] in onehot",
                                  "input m: int[B, C] in onehot", "input m: float[B] in (-inf, 0]",
                                  "param m: float in [0, 1] = 1", "input m: float in [C, inf)"])
def test_a_domain_that_fits_is_accepted(decl):
    lossdsl.check(f"pred z: float[B, C]\n{decl}\nloss = mean(z)\n")


# ---- the domain analysis -----------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["(0, 1]", "(0, inf)", "(0.001, 5]"])
def test_log_of_a_value_declared_positive_is_not_warned(domain):
    assert warnings_of(f"pred z: float[B]\ntarget p: float[B] in {domain}\nloss = mean(-log(p) * z)\n") == []


def test_log_of_a_value_that_may_be_zero_is_still_warned():
    assert len(warnings_of("pred z: float[B]\ntarget p: float[B] in [0, 1]\nloss = mean(-log(p) * z)\n")) == 1
    assert len(warnings_of("pred z: float[B]\ntarget p: float[B]\nloss = mean(-log(p) * z)\n")) == 1


def test_log_of_simplex_rows_is_not_warned_and_of_onehot_rows_is():
    src = "pred z: float[B, C]\ntarget p: float[B, C] in {}\nloss = mean(sum(p * log(p) * z, axis=C))\n"
    assert warnings_of(src.format("simplex")) == []
    assert len(warnings_of(src.format("onehot"))) == 1


def test_a_divisor_declared_positive_is_not_warned():
    src = "pred x: float[B]\ninput s: float[B]{}\nloss = mean(x / s)\n"
    assert len(warnings_of(src.format(""))) == 1
    assert warnings_of(src.format(" in (0, inf)")) == []


def test_a_cosine_normalisation_with_a_positive_eps_is_not_warned():
    src = "pred x: float[B, D]\ntarget t: float[B, D]\nparam eps: float {}\n" \
          "loss = mean(sum(x / sqrt(sum(x^2, axis=D, keepdims=true) + eps) * t, axis=D))\n"
    assert warnings_of(src.format("in (0, inf)")) == []
    assert len(warnings_of(src.format("in [0, inf)"))) == 1  # eps may be 0


def test_a_param_domain_wins_over_the_sign_of_its_default():
    src = "pred x: float[B]\nparam s: float{} = 1.0\nloss = mean(x / s)\n"
    assert warnings_of(src.format("")) == []  # the default is positive: assumed to stay so
    assert len(warnings_of(src.format(" in [0, 2]"))) == 1  # the declaration allows 0


# ---- random inputs -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_random_inputs_lie_in_their_declared_domains(seed):
    checked = lossdsl.check(SPEC)
    args, _, params = random_inputs(checked, np.random.default_rng(seed), {"B": 6, "C": 4})
    sizes = {"B": 6, "C": 4}
    for name, path, value in [("p", (), args["p"]), ("y", (), args["y"]), ("w", (), args["w"]),
                              ("r", ("shift",), args["r"]["shift"])]:
        domain = leaf_domain(checked, name, path)
        assert violation(domain, value, sizes) is None, (name, value)
    assert args["y"].dtype == np.int64 and set(np.unique(args["y"])) <= set(range(4))
    assert args["w"].min() > 0


def test_a_declared_domain_wins_over_the_role_read_from_the_loss():
    # `y * log_softmax(z)` makes an undeclared target a one-hot label; declared, it is drawn from its domain.
    plain = "pred z: float[B, C]\ntarget y: float[B, C]{}\nloss = mean(-sum(y * log_softmax(z), axis=C))\n"
    rng = np.random.default_rng(0)
    label = random_inputs(lossdsl.check(plain.format("")), rng, {"B": 50, "C": 4})[0]["y"]
    assert set(np.unique(label)) <= {0.0, 1.0}
    soft = random_inputs(lossdsl.check(plain.format(" in simplex")), rng, {"B": 50, "C": 4})[0]["y"]
    assert (soft > 0).all() and (soft < 1).all() and np.allclose(soft.sum(-1), 1)
    wide = random_inputs(lossdsl.check(plain.format(" in [2, 3]")), rng, {"B": 50, "C": 4})[0]["y"]
    assert (wide >= 2).all() and (wide <= 3).all()


def test_random_onehot_and_int_intervals():
    src = "pred z: float[B, C]\ntarget o: float[B, C] in onehot\ninput k: int[B] in (-3, -1]\n" \
          "input n: int[B] in [5, inf)\nloss = mean(z * o) + mean(float(k + n))\n"
    args = random_inputs(lossdsl.check(src), np.random.default_rng(1), {"B": 40, "C": 3})[0]
    assert (args["o"].sum(-1) == 1).all() and set(np.unique(args["o"])) <= {0.0, 1.0}
    assert set(np.unique(args["k"])) <= {-2, -1} and len(np.unique(args["k"])) == 2
    assert args["n"].min() >= 5


# ---- the call-time check ---------------------------------------------------------------------

GOOD = {"logits": np.zeros((2, 3)), "p": np.full((2, 3), 1 / 3), "y": np.array([0, 2]), "w": np.ones(2),
        "r": {"shift": np.array([0.5, -1.0]), "k": np.ones(2)}}


def _args(backend, **changes):
    values = {**GOOD, **changes}

    def conv(v):
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return convert(backend, v, "int64" if v.dtype.kind == "i" else "float64")

    return {k: conv(v) for k, v in values.items()}


OUTSIDE = {  # the argument changed, and the text the error shows
    "an index at C": ({"y": np.array([0, 3])}, "target `y` holds 3 at (1,), outside its declared domain `[0, C)`"),
    "a zero weight": ({"w": np.array([1.0, 0.0])}, "input `w` holds 0 at (1,)"),
    "a simplex entry of 0": ({"p": np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])}, "0 at (0, 2)"),
    "a simplex row off 1": ({"p": np.full((2, 3), 0.3)}, "a row summing to 0.9 at (0,)"),
    "a record field": ({"r": {"shift": np.array([0.5, 2.0]), "k": np.ones(2)}}, "input `r.shift` holds 2 at (1,)"),
    "NaN": ({"w": np.array([1.0, np.nan])}, "nan at (1,)"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(OUTSIDE))
def test_check_domains_raises_E814_at_the_domain(backend, case):
    change, text = OUTSIDE[case]
    f = lossdsl.compile(SPEC, backend=backend, check_domains=True)
    f(**_args(backend))  # inside every domain: no error
    with pytest.raises(LossError) as e:
        f(**_args(backend, **change))
    d = e.value.findings[0]
    assert d.code == "E814" and text in d.message, d.message
    name = next(iter(change))
    decl_line = next(i for i, line in enumerate(SPEC.splitlines(), 1) if line.split()[1].rstrip(":") == name)
    assert d.span.line == decl_line and SPEC.splitlines()[decl_line - 1][d.span.col - 1:].startswith("in ")


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_domains_checks_params_and_context(backend):
    f = lossdsl.compile(SPEC, backend=backend, check_domains=True)
    with pytest.raises(LossError, match="param `t` holds 2, outside its declared domain `\\(0, 1\\]`"):
        f(**_args(backend), t=2.0)
    ctx_spec = "pred z: float[B, C]\ncontext cw: float[C] in (0, inf)\nloss = mean(z * cw)\n"
    g = lossdsl.compile(ctx_spec, backend=backend, check_domains=True, context={"cw": np.array([1.0, 0.0])})
    with pytest.raises(LossError) as e:
        g(convert(backend, np.ones((2, 2)), "float64"))
    assert e.value.findings[0].code == "E814" and "context `cw` holds 0 at (1,)" in e.value.findings[0].message


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_domain_check_is_off_by_default(backend):
    f = lossdsl.compile(SPEC, backend=backend)
    value = f(**_args(backend, w=np.array([1.0, -1.0])))
    assert np.isfinite(float(np.asarray(value)))


def test_the_domain_check_is_skipped_under_jax_jit():
    if not available("jax"):
        pytest.skip("MISSING FRAMEWORK: jax is not installed")
    import jax

    f = lossdsl.compile(SPEC, backend="jax", check_domains=True)
    args = _args("jax", w=np.array([1.0, -1.0]))
    with pytest.raises(LossError):
        f(**args)  # eager: checked
    value = jax.jit(lambda a: f(**a))(args)  # traced: the values are not there to read
    assert np.isfinite(float(value))


def test_violation_reads_symbol_ends_from_the_sizes():
    domain = Interval(0, "C", True, False, None)
    assert violation(domain, np.array([0, 4]), {"C": 5}) is None
    assert violation(domain, np.array([0, 5]), {"C": 5}) == "5 at (1,)"
    assert violation(Named("onehot", None), np.array([[0.0, 1.0], [1.0, 1.0]]), {}) == "a row with 2 ones at (1,)"


def test_the_highlighter_marks_a_named_domain():
    from pygments.token import Name

    from lossdsl.highlight import LossLexer

    tokens = list(LossLexer().get_tokens("pred p: float[B, C] in simplex\n"))
    assert (Name.Builtin.Pseudo, "simplex") in tokens


# ---- drawing from any interval: a property ------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_END = st.one_of(st.integers(-50, 50), st.floats(-50, 50, allow_nan=False), st.just(float("inf")),
                 st.just(float("-inf")), st.just("C"))


@settings(max_examples=200, deadline=None)
@given(low=_END, high=_END, low_closed=st.booleans(), high_closed=st.booleans(), integer=st.booleans(),
       seed=st.integers(0, 2**32 - 1), c=st.integers(1, 9))
def test_values_drawn_from_any_non_empty_interval_lie_in_it(low, high, low_closed, high_closed, integer, seed, c):
    from lossdsl.domains import draw

    sizes = {"C": c}
    lo = sizes[low] if low == "C" else low
    hi = sizes[high] if high == "C" else high
    low_closed = low_closed and lo != float("-inf")
    high_closed = high_closed and hi != float("inf")
    if lo in (float("inf"),) or hi in (float("-inf"),):
        return
    if integer:  # the integers inside must exist
        import math
        first = (math.ceil(lo) if low_closed else math.floor(lo) + 1) if math.isfinite(lo) else -math.inf
        last = (math.floor(hi) if high_closed else math.ceil(hi) - 1) if math.isfinite(hi) else math.inf
        if first > last:
            return
    elif not (lo < hi or (lo == hi and low_closed and high_closed)):
        return
    if not integer and lo == hi:
        return  # a single point: drawn values are strictly inside, so there is nothing to draw
    domain = Interval(low, high, low_closed, high_closed, None)
    values = draw(domain, (7,), sizes, np.random.default_rng(seed), integer=integer)
    assert violation(domain, values, sizes) is None, (domain, values)


def test_a_power_of_a_value_away_from_zero_is_no_zero_divisor():
    # sigma in (0, inf): sigma^2 is above 0 even where the bound underflows; a base that may be 0 still warns
    for domain, default in ((" in (0, inf)", 1.5), (" in [0.5, 4]", 1.5), (" in (-inf, -1]", -2.0)):
        spec = f"pred x: float[B]\nparam sigma: float{domain} = {default}\nloss = mean(x / (2 * sigma^2))\n"
        assert lossdsl.check(spec).warnings == [], domain
    assert [w.code for w in lossdsl.check("pred x: float[B]\ninput s: float[B]\nloss = mean(x / s^2)\n").warnings] == ["W701"]
