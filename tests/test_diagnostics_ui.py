"""Diagnostics as a compiler's UI tests: each wrong spec in tests/diagnostics/ sits
beside the exact output `lossdsl check` must print for it (path:line:col, message,
source line, caret, notes, help). Regenerate after a deliberate change with
`LOSSDSL_UPDATE_DIAGNOSTICS=1 pytest tests/test_diagnostics_ui.py` and review the diff.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from lossdsl.cli import main

from conftest import ROOT

CASES = sorted((ROOT / "tests" / "diagnostics").glob("*.loss"))
UPDATE = os.environ.get("LOSSDSL_UPDATE_DIAGNOSTICS") == "1"


def run_check(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with redirect_stdout(out):
            code = main(["check", *args])
    finally:
        os.chdir(cwd)
    return code, out.getvalue()


def test_there_are_at_least_twenty_wrong_specs():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_expected_output(case: Path):
    rel = case.relative_to(ROOT).as_posix()
    code, out = run_check(rel)
    expected_file = case.with_suffix(".out")
    if UPDATE:
        expected_file.write_text(out)
    expected = expected_file.read_text()
    assert out == expected
    is_warning_only = case.stem.startswith("warning_")
    assert code == (0 if is_warning_only else 1)
    for line in out.splitlines():
        assert "Traceback" not in line


def test_whole_folder_fails_and_reports_every_file():
    code, out = run_check("tests/diagnostics")
    assert code == 1
    for case in CASES:
        assert case.relative_to(ROOT).as_posix() + ":" in out, case.name


def test_every_error_code_that_a_spec_can_trigger_is_covered():
    """Each E1xx-E6xx code appears in at least one expected output or in the unit tests' sources."""
    from lossdsl.diagnostics import CODES

    text = "".join(c.with_suffix(".out").read_text() for c in CASES)
    tests_text = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    spec_codes = [c for c in CODES if c[1] in "123456" and c.startswith("E")]
    missing = [c for c in spec_codes if f"[{c}]" not in text and f'"{c}"' not in tests_text]
    assert not missing, missing
