"""The backend pages: the base holds the shared defaults, each page only what differs, and the
rest of lossdsl reaches a framework only through its backend object."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lossdsl
from lossdsl.backends import _MODULES as MODULES
from lossdsl.backends import NAMES, Backend, Printer, get_backend
from lossdsl.runner import to_backend, to_numpy, value_and_grads

ROOT = Path(__file__).resolve().parent.parent


def _classes(base: type) -> dict[str, type]:
    """Each backend's Backend or Printer class, read without importing any framework."""
    out = {}
    for name, (module_name, cls_name) in MODULES.items():
        cls = getattr(importlib.import_module(module_name), cls_name)
        out[name] = cls if base is Backend else cls.printer
    return out


def _body(fn) -> str:
    return textwrap.dedent(inspect.getsource(fn)).split("\n", 1)[1].strip()


def _own_methods(cls: type) -> dict[str, str]:
    return {k: _body(v) for k, v in vars(cls).items() if inspect.isfunction(v)}


def _framework(name: str) -> Backend:
    """The backend, or a skip where its framework is not installed."""
    framework = _classes(Backend)[name].framework
    if framework is not None:
        pytest.importorskip(framework)
    return get_backend(name)


@pytest.mark.parametrize("base", [Backend, Printer], ids=["Backend", "Printer"])
def test_no_page_repeats_a_default_or_another_page(base):
    defaults = {k: _body(v) for cls in base.__mro__ if cls is not object
                for k, v in vars(cls).items() if inspect.isfunction(v)}
    seen: dict[tuple[str, str], str] = {}
    for name, cls in _classes(base).items():
        for method, body in _own_methods(cls).items():
            assert defaults.get(method) != body, f"{name}: {method} is the default of {base.__name__}"
            other = seen.setdefault((method, body), name)
            assert other == name, f"{method} is written alike on {other} and {name}: a default of {base.__name__}"


def test_the_base_defaults_on_numpy():
    be = get_backend("numpy")
    x32 = np.arange(3, dtype=np.float32)
    assert be.compute_dtype(x32) is np.float32 and be.compute_dtype(x32, x32.astype(np.float64)) is np.float64
    assert be.to_float(x32, np.float32) is x32  # no copy when the dtype is right
    assert be.to_int(x32).dtype == np.int64
    assert be.safe_divide(np.float64(0.0), np.float64(0.0)) == 0.0 and be.safe_divide(6.0, np.float64(2.0)) == 3.0
    w = np.zeros(2)  # weights that sum to 0
    assert be.weighted_mean(np.array([1.0, 2.0]) * w, w) == 0.0
    assert be.weighted_mean(np.array([1.0, 4.0]), np.array([1.0, 1.0])) == 2.5
    assert be.count(x32) == 3 and be.count(x32).dtype == np.float32


@pytest.mark.parametrize("backend", NAMES)
def test_dtype_kind_and_name(backend):
    be = _framework(backend)
    cases = {"float": (np.ones(2, np.float32), "float32"), "int": (np.ones(2, np.int64), None),
             "bool": (np.ones(2, bool), "bool")}
    for kind, (arr, name) in cases.items():
        x = be.from_numpy(arr)
        assert be.is_tensor(x)
        assert be.dtype_kind(x) == kind, (backend, kind)
        if name is not None:
            assert be.dtype_name(x) == name


@pytest.mark.parametrize("backend", NAMES)
def test_compile_time_values_are_classified_by_their_backend(backend):
    # A context of the wrong dtype kind, as the backend's own tensor and as NumPy data.
    be = _framework(backend)
    spec = "pred yhat: float[B]\ncontext k: int[B]\nloss = mean(float(k) * yhat)\n"
    for k in (be.from_numpy(np.array([1.0, 2.0])), be.from_numpy(np.array([True, False])), np.array(["a", "b"]),
              None):
        with pytest.raises(lossdsl.LossError) as e:
            lossdsl.compile(spec, backend=backend, context={"k": k})
        assert e.value.findings[0].code == "E803"
    f = lossdsl.compile(spec, backend=backend, context={"k": be.from_numpy(np.array([1, 2]))})
    assert to_numpy(f(to_backend(backend, np.array([1.0, 1.0])))) == 1.5


@pytest.mark.parametrize("backend", NAMES)
def test_runner_dispatches_value_and_gradient_through_the_backend(backend):
    _framework(backend)
    f = lossdsl.compile("pred yhat: float[B]\ntarget y: float[B]\nloss = mean((yhat - y) ^ 2)\n", backend=backend)
    yhat, y = np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 1.0])
    value, grads = value_and_grads(f, backend, {"yhat": yhat, "y": y}, ["yhat"], "float64")
    assert value == pytest.approx(10.0 / 3)
    if backend == "numpy":
        assert grads == {}  # values only
    else:
        np.testing.assert_allclose(grads["yhat"], 2 * (yhat - y) / 3)


def test_runner_rejects_an_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        to_backend("mxnet", np.zeros(2))


@pytest.mark.parametrize("backend", NAMES)
def test_rounding_an_int_is_the_identity_and_a_float_is_the_table_spelling(backend):
    from lossdsl.ir import Apply, Arg, topological

    printer_cls = _classes(Printer)[backend]
    checked = lossdsl.check("pred a: float[B]\ntarget k: int[B]\nloss = mean(a * floor(a) * float(round(k)))\n")
    nodes = topological(checked.loss)
    names = {id(n): n.name for n in nodes if isinstance(n, Arg)}
    printer = printer_cls(names)
    for node in nodes:
        if isinstance(node, Apply) and node.fn in ("floor", "round"):
            expected = "k" if node.fn == "round" else printer_cls.FUNCTIONS["floor"].format(x="a")
            assert printer.expr(node) == expected


@pytest.mark.parametrize("backend", NAMES)
def test_a_cast_of_a_size_is_spelled_for_a_python_int(backend):
    be = _framework(backend)
    f = lossdsl.compile("pred a: float[B]\nloss = sum(a) / float(B) + float(int(B)) * 0.0\n", backend=backend)
    assert to_numpy(f(be.from_numpy(np.array([1.0, 2.0, 6.0])))) == pytest.approx(3.0)


@pytest.mark.parametrize("backend", NAMES)
def test_a_cast_of_arithmetic_of_sizes_is_spelled_for_a_python_int(backend):
    be = _framework(backend)
    f = lossdsl.compile("pred a: float[B, T]\nloss = sum(a) / (B * T) + mean(a) * float(T - 2 * B + 1)\n", backend=backend)
    a = np.arange(6.0).reshape(2, 3)
    assert to_numpy(f(be.from_numpy(a))) == pytest.approx(15.0 / 6.0 + 2.5 * 0.0)


def test_the_derived_backward_is_written_by_its_printer():
    # codegen plans it; only a printer with FUSED_BACKWARD writes the framework's function.
    for name, printer in _classes(Printer).items():
        assert ("derived_compute" in vars(printer)) == printer.FUSED_BACKWARD, name


# api.py's generate_source still picks dynamic sizes by the name "tensorflow" (not yet asked of the
# backend class); the integration modules are about their framework by design.
_FRAMEWORK_MODULES = {"torch.py", "keras.py", "api.py"}
_FRAMEWORK_NAMES = {"torch", "pytorch", "tensorflow", "tf", "jax", "numpy", "np"}


def test_lossdsl_does_not_switch_on_framework_names():
    found = []
    for path in sorted((ROOT / "lossdsl").glob("*.py")):
        if path.name in _FRAMEWORK_MODULES:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                    if any(isinstance(c, ast.Constant) and c.value in _FRAMEWORK_NAMES for c in items):
                        found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(m.split(".")[0] in {"torch", "tensorflow", "jax"} for m in modules):
                    found.append(f"{path.name}:{node.lineno}: imports {modules}")
    assert not found, "framework knowledge belongs in backends/:\n" + "\n".join(found)
