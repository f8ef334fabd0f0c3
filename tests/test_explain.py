"""`lossdsl explain CODE`: every code the project can emit is explained, and each explanation's
examples do what they say (the wrong one gets the code, the right one is clean)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lossdsl import LossError
from lossdsl.diagnostics import CODES
from lossdsl.explanations import EXPLANATIONS, explain
from lossdsl.formatting import format_source
from lossdsl.frontend import findings_for
from lossdsl.source import Source

from conftest import ROOT, modules_imported_by

SPEC_CODES = [c for c, e in EXPLANATIONS.items() if e.language == "loss"]
CALL_CODES = [c for c, e in EXPLANATIONS.items() if e.language == "python"]


def test_every_code_in_the_registry_is_explained():
    assert set(EXPLANATIONS) == set(CODES)
    for e in EXPLANATIONS.values():
        assert e.meaning and e.fix and e.wrong != e.right
        assert e.language in ("loss", "python")


@pytest.mark.parametrize("code", SPEC_CODES)
def test_the_wrong_spec_gets_its_code_and_the_right_one_is_clean(code):
    e = EXPLANATIONS[code]
    wrong = findings_for(Source(e.wrong, "wrong.loss"))
    assert code in [d.code for d in wrong], [d.render() for d in wrong]
    right = findings_for(Source(e.right, "right.loss"))
    assert right == [], [d.render() for d in right]


@pytest.mark.parametrize("code", SPEC_CODES)
def test_the_example_specs_are_in_the_canonical_layout(code):
    e = EXPLANATIONS[code]
    for text in (e.wrong, e.right):
        try:
            assert format_source(text) == text
        except LossError:
            assert text is e.wrong  # a syntax error cannot be formatted; only a wrong example has one


def _raised(snippet: str) -> list[str]:
    try:
        exec(compile(snippet, "<example>", "exec"), {})
    except LossError as err:
        return [d.code for d in err.findings]
    return []


@pytest.mark.parametrize("code", CALL_CODES)
def test_the_wrong_call_raises_its_code_and_the_right_one_runs(code):
    e = EXPLANATIONS[code]
    assert code in _raised(e.wrong)
    assert _raised(e.right) == []


def test_lookup_ignores_case_and_spaces():
    assert explain(" e401 ") is EXPLANATIONS["E401"]
    assert explain("E999") is None


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lossdsl", *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_explain_prints_meaning_examples_fix_and_what_check_says():
    r = cli("explain", "E401")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("E401: shapes that do not broadcast\n")
    assert "A spec that gets E401:" in out and "The same, fixed:" in out and "How to fix it:" in out
    assert "    loss = mean(w[:, None] * ce)" in out
    assert "example.loss:6:13: error: cannot broadcast `float[B]` with `float[B, C]`  [E401]" in out


def test_explain_of_an_unknown_code_exits_2_with_the_closest_codes():
    r = cli("explain", "E4011")
    assert r.returncode == 2 and r.stdout == ""
    assert "no such code: E4011" in r.stderr and "E401" in r.stderr


def test_explain_without_a_code_lists_every_code():
    lines = cli("explain").stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(CODES)


def test_explain_imports_no_framework_and_no_numpy():
    code = "from lossdsl.cli import main; assert main(['explain', 'E401']) == 0"
    assert modules_imported_by(code) == []
