"""One pipeline (lossdsl/pipeline.py) behind `compile`, `lossdsl emit` and the quick form:
what `emit` prints is the code `compile` runs, and `compile` parses a spec's text once."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

import lossdsl
import lossdsl.parser
from lossdsl.api import generate_source
from lossdsl.cli import main
from lossdsl.sampling import random_inputs

from conftest import EXAMPLES
from harness import BACKENDS, compile_for

NAMES = sorted(p.stem for p in EXAMPLES.glob("*.loss"))


def needs_framework(backend: str) -> None:
    if backend != "numpy":
        pytest.importorskip(backend, reason=f"MISSING FRAMEWORK: {backend} is not installed")


def emitted_by_cli(spec, backend: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["emit", str(spec), "--backend", backend]) == 0
    return out.getvalue()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_emit_shows_the_code_compile_runs(name, backend, rng):
    needs_framework(backend)
    path = EXAMPLES / f"{name}.loss"
    _, ctx, prm = random_inputs(lossdsl.check(path), rng)
    compiled = compile_for(path, backend, ctx, prm)
    assert generate_source(path, backend, context=ctx, params=prm) == compiled.source
    # The command prints what `generate_source` returns; with nothing to bind, that is what runs.
    printed = emitted_by_cli(path, backend)
    assert printed == generate_source(path, backend)
    if not ctx and not prm:
        assert printed == compiled.source


SIZED_BY_A_PARAM = """\
pred yhat: float[B, K]
target y: float[B, K]
param w: float[K]
loss = mean(sum((yhat - y)^2 * w, axis=1))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_emit_keeps_a_size_bound_by_a_param(backend):
    needs_framework(backend)
    params = {"w": np.ones(4)}
    emitted = generate_source(SIZED_BY_A_PARAM, backend, params=params)
    assert "d_K = 4  # from param `w`" in emitted
    assert "d_K = 4" not in generate_source(SIZED_BY_A_PARAM, backend)
    assert emitted == lossdsl.compile(SIZED_BY_A_PARAM, backend=backend, params=params).source


def test_emit_checks_the_params_it_binds():
    with pytest.raises(lossdsl.LossError) as err:
        generate_source(SIZED_BY_A_PARAM, "numpy", params={"w": np.ones((2, 2))})
    assert err.value.first.code == "E804"


@pytest.fixture
def text_parses(monkeypatch):
    """How many times the parser reads a whole text (as a spec, or as the quick form)."""
    calls: list[str] = []
    original = lossdsl.parser._parse_text

    def counting(text, start):
        calls.append(start)
        return original(text, start)

    monkeypatch.setattr(lossdsl.parser, "_parse_text", counting)
    return calls


def test_compile_parses_a_spec_once(text_parses):
    lossdsl.compile("pred yhat: float[B]\ntarget y: float[B]\nloss = mean((yhat - y)^2)\n", backend="numpy")
    assert text_parses == ["start"]


def test_compile_parses_the_quick_form_once(text_parses):
    f = lossdsl.compile("mean((yhat - y)^2)", backend="numpy")
    f(np.ones(3), np.zeros(3))
    f(np.ones(4), np.zeros(4))  # typed again for new shapes, not parsed again
    assert text_parses == ["start", "quick"]  # not a spec, so read as the quick form
