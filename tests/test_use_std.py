"""`use std.NAME` (docs/language.md §1): a standard loss as a function named after its file, equal
to the std loss itself, whatever the dimensions of the spec that calls it are named; and the
mistakes at its calls."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lossdsl
import lossdsl.std
from lossdsl.diagnostics import LossError
from lossdsl.sampling import random_inputs

from conftest import available
from harness import value_and_grads

NAMES = lossdsl.std.names()


def _wrapper(name: str) -> tuple[str, lossdsl.CheckedModule]:
    """A spec that declares what the std loss declares (each dimension renamed, `B` to `B_`) and
    whose loss is the std loss called as a function with its params left to their defaults."""
    checked = lossdsl.check(lossdsl.std.path(name))
    symbols = set(checked.symbols)
    lines = [f"use std.{name}"]
    args = []
    for line in lossdsl.std.source(name).splitlines():
        words = line.split()
        if words and words[0] in ("pred", "target", "input", "context"):
            renamed = re.sub(r"\b([A-Za-z_]\w*)\b", lambda m: m.group(1) + "_" if m.group(1) in symbols else m.group(1),
                             line.split(":", 1)[1])
            lines.append(f"{words[0]} {words[1].rstrip(':')}:{renamed}")
            args.append(words[1].rstrip(":"))
    lines.append(f"loss = {name}({', '.join(args)})")
    return "\n".join(lines) + "\n", checked


@pytest.mark.parametrize("name", NAMES)
def test_a_std_loss_called_as_a_function_equals_the_std_loss(name, rng):
    spec, checked = _wrapper(name)
    sizes = {"B": 6, "C": 4, "D": 5, "H": 13, "W": 12}
    args, ctx, _ = random_inputs(checked, rng, sizes)
    wrapped = lossdsl.compile(spec, backend="numpy", context=ctx)
    assert wrapped.spec.loss.type.rank == checked.loss.type.rank
    want = lossdsl.std.compile(name, backend="numpy", context=ctx)(**args, reduction="none")
    got = wrapped(**args, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=spec)


HUBER = "use std.huber\npred a: float[N, K]\ntarget b: float[N, K]\ninput b2: float[N, J]\n"


def test_params_by_keyword_and_the_function_inside_a_larger_loss(rng):
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    spec = "use std.huber\npred a: float[N, K]\ntarget b: float[N, K]\nloss = mean(huber(a, b, delta=0.5)) + 0.1 * mean(a^2)\n"
    got = lossdsl.compile(spec, backend="numpy")(a, b)
    want = lossdsl.std.compile("huber", backend="numpy", params={"delta": 0.5})(a, b) + 0.1 * np.mean(a**2)
    assert got == pytest.approx(want, rel=1e-12)
    # positional params and a param of the using spec passed on
    spec = "use std.focal\npred z: float[N, K]\ntarget t: float[N, K]\nparam g: float = 1.5\nloss = focal(z, t, 0.4, g)\n"
    t = (rng.random((5, 3)) < 0.5).astype(float)
    got = lossdsl.compile(spec, backend="numpy")(a, t)
    want = lossdsl.std.compile("focal", backend="numpy", params={"alpha": 0.4, "gamma": 1.5})(a, t)
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.skipif(not available("torch"), reason="MISSING FRAMEWORK: torch is not installed")
def test_the_gradient_of_a_used_std_loss_is_the_std_loss_gradient(rng):
    x = rng.uniform(0, 1, (2, 3, 12, 11))
    args = {"img": x, "ref": np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)}
    spec = "use std.ssim\npred img: float[N, CH, Y, X]\ntarget ref: float[N, CH, Y, X]\nloss = ssim(img, ref, sigma=1.2)\n"
    got, got_g = value_and_grads(lossdsl.compile(spec, backend="torch"), "torch", args, ["img"])
    std = lossdsl.std.compile("ssim", backend="torch", params={"sigma": 1.2})
    want, want_g = value_and_grads(std, "torch", {"x": args["img"], "y": args["ref"]}, ["x"])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got_g["img"], want_g["x"], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("body,code,text", [
    ("loss = mean(huber(a[:, 0], b[:, 0]))", "E404", "`huber` takes `yhat` as `float[B, D]`, found `float[N]`"),
    ("loss = mean(huber(a, b2))", "E402", "`huber` needs one size for `D`: `yhat` has `K` there, `y` has `J`"),
    ("loss = mean(huber(a[:, 1:], b[:, 1:]))", "E405", "reads axis `D` of `yhat` by name"),
    ("loss = mean(huber(a, b, delt=1.0))", "E502", "`huber` has no parameter `delt`"),
    ("loss = mean(huber(a))", "E501", "`huber` takes 3 arguments (yhat, y, delta), found 1"),
    ("def huber(x) = x\nloss = mean(huber(a))", "E214", "`huber` is defined here and in a file this one uses"),
])
def test_mistakes_at_the_call_are_loss_errors(body, code, text):
    with pytest.raises(LossError) as info:
        lossdsl.check(HUBER + body + "\n")
    d = info.value.first
    assert d.code == code and text in d.message, (d.code, d.message)


def test_only_the_loss_comes_in_not_the_files_helpers():
    with pytest.raises(LossError) as info:
        lossdsl.check("use std.ssim\npred x: float[N, K]\nloss = mean(blur(x))\n")
    assert info.value.first.code == "E202" and "`blur`" in info.value.first.message
