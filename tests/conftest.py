"""Shared helpers. Tests that need a framework skip loudly when it is missing (see
`needs`), and the session summary counts those skips so none pass unnoticed."""

from __future__ import annotations

import importlib.util
import os
import textwrap
from pathlib import Path

import pytest

import lossdsl
from lossdsl import LossError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("JAX_PLATFORMS", os.environ.get("LOSSDSL_JAX_PLATFORMS", "cpu"))

if importlib.util.find_spec("jax") is not None:
    # The float64 half of the parity suite needs JAX's float64; float32 inputs stay float32.
    import jax

    jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parent.parent

# The derived PyTorch backward (lossdsl/autodiff.py) is used from a size up; the tests' inputs
# are small, so the parity suite lowers the threshold to run through it everywhere it applies.
import lossdsl.codegen  # noqa: E402

lossdsl.codegen.FUSED_MIN_ELEMENTS = 0
EXAMPLES = ROOT / "examples"

FRAMEWORKS = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}


def available(backend: str) -> bool:
    module = FRAMEWORKS.get(backend)
    return module is None or importlib.util.find_spec(module) is not None


def needs(backend: str):
    """Skip (loudly, with the reason counted in the summary) when a framework is missing."""
    return pytest.mark.skipif(not available(backend), reason=f"MISSING FRAMEWORK: {backend} is not installed")


def modules_imported_by(code: str, candidates=("torch", "tensorflow", "jax", "numpy", "keras")) -> list[str]:
    """Run `code` in a fresh interpreter (in the repository) and list which of `candidates` it imported."""
    import subprocess
    import sys

    probe = f"{code}\nimport sys as _s; print(sorted(m for m in {tuple(candidates)!r} if m in _s.modules))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return eval(r.stdout.strip().splitlines()[-1])


def spec(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


def check_ok(text: str):
    return lossdsl.check(spec(text))


def check_err(text: str) -> LossError:
    with pytest.raises(LossError) as info:
        lossdsl.check(spec(text))
    return info.value


def refused_at(text: str, code: str, caret: str) -> LossError:
    """`lossdsl.check(text)` fails with `code` first, its caret on a column where `caret` starts."""
    with pytest.raises(LossError) as info:
        lossdsl.check(text)
    d = info.value.first
    assert d.code == code, str(info.value)
    line = text.splitlines()[d.span.line - 1]
    assert line[d.span.col - 1 :].startswith(caret), (line, d.span, str(info.value))
    return info.value


def codes(err: LossError) -> list[str]:
    return [d.code for d in err.errors]


# Parity inputs are drawn afresh each run; the seed is printed so a failure can be replayed
# with LOSSDSL_SEED=<seed>.
SEED = int(os.environ.get("LOSSDSL_SEED") or int.from_bytes(os.urandom(4), "little"))


def pytest_report_header(config):
    return f"lossdsl parity seed: {SEED} (replay with LOSSDSL_SEED={SEED})"


@pytest.fixture
def rng(request):
    import numpy as np

    # One stream per test, derived from the session seed and the test's id.
    import zlib

    return np.random.default_rng([SEED, zlib.crc32(request.node.nodeid.encode())])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    terminalreporter.write_line(f"lossdsl parity seed: {SEED}")
    skipped = terminalreporter.stats.get("skipped", [])
    missing = [r for r in skipped if "MISSING FRAMEWORK" in str(getattr(r, "longrepr", ""))]
    if missing:
        terminalreporter.write_sep("!", f"{len(missing)} tests SKIPPED because a framework is missing", red=True)
