"""The docs stay true to the code: the error catalogue is generated from the code, the
language reference names every function, the README's commands exist."""

from __future__ import annotations

import subprocess
import sys

from lossdsl.diagnostics import CODES
from lossdsl.functions import USER_FUNCTIONS

from conftest import ROOT


def test_error_catalogue_is_current():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_errors_doc
    finally:
        sys.path.pop(0)
    assert (ROOT / "docs" / "errors.md").read_text() == gen_errors_doc.render(), \
        "docs/errors.md is stale: run python scripts/gen_errors_doc.py"
    assert set(gen_errors_doc.EXPLANATIONS) == set(CODES)


def test_language_reference_names_every_function():
    text = (ROOT / "docs" / "language.md").read_text()
    missing = [f for f in USER_FUNCTIONS if f"`{f}" not in text and f" {f} " not in text and f" {f}`" not in text]
    assert not missing, missing


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    targets = subprocess.run(["make", "-pRrq", "-f", str(ROOT / "Makefile"), ":"], capture_output=True,
                             text=True, cwd=ROOT).stdout
    for target in ("demo:", "test:", "bench:"):
        assert f"\n{target}" in targets, target
    assert "make test" in (ROOT / ".ci" / "run").read_text()
