"""Shared helpers. Tests that need a framework skip loudly when it is missing (see
`needs`), and the session summary counts those skips so none pass unnoticed."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

import lossdsl
from lossdsl import LossError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

FRAMEWORKS = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}


def available(backend: str) -> bool:
    module = FRAMEWORKS.get(backend)
    return module is None or importlib.util.find_spec(module) is not None


def needs(backend: str):
    """Skip (loudly, with the reason counted in the summary) when a framework is missing."""
    return pytest.mark.skipif(not available(backend), reason=f"MISSING FRAMEWORK: {backend} is not installed")


def spec(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


def check_ok(text: str):
    return lossdsl.check(spec(text))


def check_err(text: str) -> LossError:
    with pytest.raises(LossError) as info:
        lossdsl.check(spec(text))
    return info.value


def codes(err: LossError) -> list[str]:
    return [d.code for d in err.errors]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    missing = [r for r in skipped if "MISSING FRAMEWORK" in str(getattr(r, "longrepr", ""))]
    if missing:
        terminalreporter.write_sep("!", f"{len(missing)} tests SKIPPED because a framework is missing", red=True)
