"""A node that several `where` branches read (a `let` two branches use) is guarded once, under
the `or` of their conditions, and so computed once (`guard_wheres`, lossdsl/passes.py). Values
and gradients stay those of a copy per branch: a lane some branch takes sees the true value,
and a lane no branch takes gets gradient exactly 0, also where the data there is NaN, inf or
outside a function's domain (docs/language.md §4). Each test lowers a small spec and counts
the nodes of the IR, or runs it on every backend against values and gradients worked out
by hand, on both sides of the size from which PyTorch runs the derived backward."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from conftest import needs, spec
from harness import BACKENDS, GRAD_BACKENDS, assert_close, compile_for, value_and_grads

import lossdsl
import lossdsl.codegen
import lossdsl.std
from lossdsl.api import generate_source
from lossdsl.ir import Apply, Node, topological
from lossdsl.pipeline import backend_class
from lossdsl.pipeline import lower as lower_for

THRESHOLD = 64  # the derived backward's threshold, moved here to run both sides cheaply
SIZES = (THRESHOLD - 1, THRESHOLD + 1)


@pytest.fixture
def threshold(monkeypatch):
    monkeypatch.setattr(lossdsl.codegen, "FUSED_MIN_ELEMENTS", THRESHOLD)


def fns(root: Node) -> Counter:
    """How many distinct nodes apply each function (a shared node counts once)."""
    return Counter(n.fn for n in topological(root) if isinstance(n, Apply))


def lowered(text: str, backend: str | None = None) -> Node:
    checked = lossdsl.check(spec(text) if "\n" in text else text)
    return lower_for(checked, backend_class(backend) if backend else None).root


def run(text, backend, args, preds):
    value, grads = value_and_grads(compile_for(spec(text), backend), backend, args, preds)
    return value, (grads if backend != "numpy" else None)


# Two branches read `l`; the lanes with y outside {1, 2} are taken by neither.
TWO_BRANCHES = """
    pred   p: float[B]
    target t: float[B]
    target y: float[B]
    let l = log(p) * t
    loss = sum(where(y == 1, l, 0.0) + where(y == 2, 2.0 * l, 0.0))
"""


def _two_branch_inputs(rng, n):
    """Lanes no branch takes (y = 0 or NaN) hold a log's domain edge and NaN or inf data."""
    y = rng.choice([1.0, 2.0, 0.0, np.nan], size=n)
    p = rng.uniform(0.5, 2.0, n)
    t = rng.normal(size=n)
    none = ~np.isin(y, (1.0, 2.0))
    p[none] = rng.choice([0.0, -1.0, -np.inf], size=none.sum())
    t[none] = rng.choice([np.nan, np.inf, -np.inf], size=none.sum())
    return {"p": p, "t": t, "y": y}, none


# ---- computed once ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [None, *BACKENDS])
def test_cosine_embedding_computes_its_dot_and_norms_once(backend):
    # `c` is read under `y == 1` and under `y == -1`: one cosine, guarded under their `or`.
    counts = fns(lowered(str(lossdsl.std.path("cosine_embedding")), backend))
    assert (counts["dot"], counts["sum"], counts["sqrt"], counts["div"]) == (1, 2, 2, 1), counts
    # 3 guards under the `or`, each branch's select of `c` in its own lanes, the 2 branches
    assert counts["or"] == 1 and counts["where"] == 7, counts


def test_the_generated_code_computes_the_cosine_once():
    code = generate_source(lossdsl.std.path("cosine_embedding"), backend="torch")
    compute = code.split("def compute(", 1)[1].split("\ndef ", 1)[0]
    assert compute.count("torch.sqrt(") == 2 and compute.count("torch.where(") == 7, compute


def test_a_let_two_branches_read_is_guarded_once_under_either_condition():
    root = lowered(TWO_BRANCHES)
    counts = fns(root)
    assert counts["log"] == 1 and counts["or"] == 1, counts
    (log,) = [n for n in topological(root) if isinstance(n, Apply) and n.fn == "log"]
    guard = log.args[0]
    assert isinstance(guard, Apply) and guard.fn == "where" and guard.args[0].fn == "or"


def test_a_let_read_under_a_condition_and_a_narrower_one_is_guarded_under_the_wider():
    root = lowered("""
        pred   p: float[B]
        target y: float[B]
        let l = log(p)
        loss = sum(where(y > 0, l + where(y == 1, l, 0.0), 0.0))
    """)
    counts = fns(root)
    assert counts["log"] == 1 and counts["or"] == 0, counts


@pytest.mark.parametrize(
    "loss",
    [
        "where(y == 1, l, 0.0) + where(y == 2, where(l > 0.0, l, 0.0), 0.0)",  # in a `where`'s condition
        "where(y == 1, l, 0.0) + where(y == 2, l * float(l > 0.0), 0.0)",  # by a comparison: no gradient
        "where(y == 1, l, 0.0) + where(y == 2, l, 0.0) + 0.5 * l",  # under no condition
    ],
)
def test_a_let_some_read_does_not_need_finite_keeps_a_copy_per_condition(loss):
    # Such a read does not make its branch's value depend on `l`, so it counts as a read under
    # no condition, and `l` is not shared: each branch keeps its own guards.
    root = lowered(f"""
        pred   p: float[B]
        target y: float[B]
        let l = log(p)
        loss = sum({loss})
    """)
    assert fns(root)["or"] == 0 and fns(root)["log"] >= 2, fns(root)


# ---- the same values and gradients ---------------------------------------------------------------


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_a_branch_gets_gradient_zero_where_another_branch_takes_an_infinite_shared_value(backend, threshold):
    # `s` is -inf where p = 0, a lane the first branch takes (exp(-inf) = 0, finite) and the
    # second does not: the second's product with `s` must still send q exactly 0 there.
    src = """
        pred   q: float[B]
        target p: float[B]
        target y: float[B]
        let s = log(p)
        loss = sum(where(y == 1, exp(s), 0.0) + where(y == 2, s * q, 0.0))
    """
    assert fns(lowered(src))["log"] == 1
    for n in SIZES:
        y = np.resize([1.0, 2.0, 0.0], n)
        p = np.resize([0.0, 0.5, 2.0, 3.0], n)
        p[y == 2] = 1.5
        q = np.linspace(-1.0, 1.0, n)
        value, grads = run(src, backend, {"q": q, "p": p, "y": y}, ["q"])
        want = np.where(y == 1, p, 0.0) + np.where(y == 2, np.log(np.where(y == 2, p, 1.0)) * q, 0.0)
        assert_close(value, want.sum(), "float64", f"{backend} value, n={n}")
        assert np.all(np.isfinite(grads["q"])), grads["q"]
        assert np.all(grads["q"][y != 2] == 0.0)
        assert_close(grads["q"], np.where(y == 2, np.log(1.5), 0.0), "float64", f"{backend} gradient, n={n}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_lanes_no_branch_takes_get_gradient_zero_with_nan_inf_or_out_of_domain_data(backend, rng, threshold):
    for n in SIZES:
        args, none = _two_branch_inputs(rng, n)
        value, grads = run(TWO_BRANCHES, backend, args, ["p"])
        y, p, t = args["y"], np.where(none, 1.0, args["p"]), np.where(none, 0.0, args["t"])
        k = np.where(y == 1, 1.0, np.where(y == 2, 2.0, 0.0))
        assert_close(value, (k * np.log(p) * t).sum(), "float64", f"{backend} value, n={n}")
        if grads is not None:
            assert np.all(grads["p"][none] == 0.0), grads["p"][none]
            assert_close(grads["p"], k * t / p, "float64", f"{backend} gradient, n={n}")


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_a_reduction_two_branches_read_is_guarded_once(backend, rng, threshold):
    src = """
        pred   p: float[B, D]
        target y: float[B]
        let s = sum(log(p), axis=D)
        loss = sum(where(y == 1, s, 0.0) + where(y == 2, 2.0 * s, 0.0))
    """
    assert fns(lowered(src))["log"] == 1
    for n in SIZES:
        y = rng.choice([1.0, 2.0, 0.0, np.nan], size=n)
        p = rng.uniform(0.5, 2.0, (n, 3))
        none = ~np.isin(y, (1.0, 2.0))
        p[none, 0] = -1.0
        p[none, 1] = 0.0
        value, grads = run(src, backend, {"p": p, "y": y}, ["p"])
        k = np.where(y == 1, 1.0, np.where(y == 2, 2.0, 0.0))[:, None]
        pk = np.where(none[:, None], 1.0, p)
        assert_close(value, (k * np.log(pk)).sum(), "float64", f"{backend} value, n={n}")
        assert np.all(grads["p"][none] == 0.0)
        assert_close(grads["p"], k / pk, "float64", f"{backend} gradient, n={n}")


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_conditions_of_different_shapes_are_joined_by_broadcasting(backend, rng, threshold):
    src = """
        pred   p: float[B, D]
        input  m: bool[B, D]
        target y: float[B]
        let l = log(p)
        loss = sum(where(m, l, 0.0) + where(y[:, None] == 1, 3.0 * l, 0.0))
    """
    root = lowered(src)
    assert fns(root)["log"] == 1 and fns(root)["or"] == 1
    for n in SIZES:
        m = rng.random((n, 4)) < 0.4
        y = rng.choice([1.0, 0.0], size=n)
        taken = m | (y[:, None] == 1)
        p = np.where(taken, rng.uniform(0.5, 2.0, (n, 4)), rng.choice([0.0, -1.0], (n, 4)))
        value, grads = run(src, backend, {"p": p, "m": m, "y": y}, ["p"])
        k = m + 3.0 * (y[:, None] == 1)
        pk = np.where(taken, p, 1.0)
        assert_close(value, (k * np.log(pk)).sum(), "float64", f"{backend} value, n={n}")
        assert np.all(grads["p"][~taken] == 0.0)
        assert_close(grads["p"], k / pk, "float64", f"{backend} gradient, n={n}")


@pytest.mark.parametrize("backend", GRAD_BACKENDS)
def test_a_picked_row_two_branches_read_never_reads_an_index_out_of_range(backend, rng, threshold):
    src = """
        pred   z: float[B, C]
        target k: int[B]
        target y: float[B]
        let lp = pick(log_softmax(z), k)
        loss = sum(where(y == 1, -lp, 0.0) + where(y == 2, -2.0 * lp, 0.0))
    """
    assert fns(lowered(src))["pick"] == 1
    for n in SIZES:
        z = rng.normal(size=(n, 5))
        y = rng.choice([1.0, 2.0, 0.0], size=n)
        k = rng.integers(0, 5, n)
        none = y == 0.0
        k[none] = rng.choice([-100, 7], size=none.sum())
        value, grads = run(src, backend, {"z": z, "k": k, "y": y}, ["z"])
        w = np.where(y == 1, 1.0, np.where(y == 2, 2.0, 0.0))
        lsm = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        kk = np.where(none, 0, k)
        assert_close(value, -(w * lsm[np.arange(n), kk]).sum(), "float64", f"{backend} value, n={n}")
        onehot = np.eye(5)[kk]
        assert np.all(grads["z"][none] == 0.0)
        assert_close(grads["z"], w[:, None] * (np.exp(lsm) - onehot), "float64", f"{backend} gradient, n={n}")


@pytest.mark.parametrize("margin", [None, 0.2])
@pytest.mark.parametrize("backend", BACKENDS)
@needs("torch")
def test_cosine_embedding_matches_the_float64_reference_also_where_no_branch_is_taken(backend, margin, rng):
    import torch
    import torch.nn.functional as F

    n = 12
    x1, x2 = rng.normal(size=(n, 5)), rng.normal(size=(n, 5))
    y = rng.choice([1.0, -1.0, 0.0, np.nan], size=n)
    y[:4] = [1.0, -1.0, 0.0, np.nan]
    x1[2] = 0.0  # a zero vector in a lane no branch takes
    params = {} if margin is None else {"margin": margin}
    f = compile_for(lossdsl.std.path("cosine_embedding"), backend, params=params)
    value, grads = value_and_grads(f, backend, {"x1": x1, "x2": x2, "y": y}, ["x1", "x2"])
    t1, t2 = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    ref = F.cosine_embedding_loss(t1, t2, torch.tensor(y), margin=margin or 0.0)
    ref_grads = torch.autograd.grad(ref, [t1, t2])
    assert_close(value, ref.detach().numpy(), "float64", f"cosine_embedding on {backend}")
    for name, g in zip(("x1", "x2"), ref_grads) if backend != "numpy" else ():
        assert np.all(grads[name][2:4] == 0.0)
        assert_close(grads[name], g.numpy(), "float64", f"d cosine_embedding/d {name} on {backend}")
