"""The API's mean of a per-sample mean on torch: the normal form makes `mean(mean(x, axis=D))`
one mean, which the generated entry computes itself (`compute_mean`) below the derived backward's
size and under torch.compile, and as the mean of the per-sample compute above it, eager; value
and gradient are the spec's on both sides of that size, eager and compiled."""

from __future__ import annotations

import ast

import numpy as np
import pytest
from conftest import needs
from harness import assert_eager_and_compiled

import lossdsl
import lossdsl.std


def _reference(x, y, margin):
    per = np.where(y != -1, x, 0.0) + np.where(y != 1, np.maximum(margin - x, 0.0), 0.0)
    grad = np.where(y != -1, 1.0, 0.0) - np.where((y != 1) & (margin - x > 0), 1.0, 0.0)
    return per.mean(), grad / x.size


def _function(source: str, name: str) -> ast.FunctionDef:
    (fn,) = [n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name]
    return fn


@needs("torch")
def test_the_api_mean_of_a_per_sample_mean_is_one_mean_on_torch():
    source = lossdsl.compile(lossdsl.std.path("hinge_embedding"), backend="torch").source
    (ret,) = [n for n in ast.walk(_function(source, "compute_mean")) if isinstance(n, ast.Return)]
    call = ret.value
    assert isinstance(call, ast.Call) and ast.unparse(call.func) == "torch.mean"
    assert not call.keywords, "a mean over every element, not per sample"
    # the entry takes it below the derived backward's size or under torch.compile
    (choice,) = [n for n in ast.walk(_function(source, "entry")) if isinstance(n, ast.IfExp)]
    assert ast.unparse(choice.body).startswith("compute_mean(")
    assert "torch.compiler.is_compiling()" in ast.unparse(choice.test)
    assert ast.unparse(choice.orelse).startswith("torch.mean(compute(")


@needs("torch")
@pytest.mark.parametrize("rows", [8, 2048], ids=["one mean", "derived backward"])
def test_the_api_mean_of_hinge_embedding_is_its_value_and_gradient_on_both_sides_of_the_size(rng, rows):
    x = rng.normal(size=(rows, 40))
    y = np.where(rng.random((rows, 40)) < 0.5, -1.0, 1.0)
    x[0, :3] = [0.8, 0.8, 0.8]  # the kink of relu(margin - x): gradient 0 there (docs/language.md §4)
    f = lossdsl.std.compile("hinge_embedding", backend="torch", params={"margin": 0.8})
    want_value, want_grad = _reference(x, y, 0.8)
    assert_eager_and_compiled(f, "torch", {"x": x, "y": y}, "x", want_value, want_grad)


@needs("torch")
def test_the_api_mean_of_an_empty_batch_is_zero_with_one_mean():
    import torch

    f = lossdsl.std.compile("hinge_embedding", backend="torch")
    x = torch.zeros((0, 5), requires_grad=True)
    value = f(x, torch.ones((0, 5)))
    assert value.item() == 0.0
