"""The docs stay true to the code: the error catalogue is generated from the code, the
language reference names every function, the README's commands exist."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

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


def _script(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        return __import__(name)
    finally:
        sys.path.pop(0)


def test_function_reference_is_current_and_names_every_function():
    gen = _script("gen_functions_doc")
    text = (ROOT / "docs" / "functions.md").read_text()
    assert text == gen.render(), "docs/functions.md is stale: run python scripts/gen_functions_doc.py"
    for name, f in USER_FUNCTIONS.items():
        assert f"| `{f.signature()}` |" in text, name


def test_docs_site_builds_strictly_with_loss_blocks_highlighted_by_the_lexer(tmp_path):
    import os

    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr
    pages = {p.parent.name for p in site.rglob("index.html")}
    for doc in (ROOT / "docs").glob("*.md"):
        assert doc.stem == "index" or doc.stem in pages, doc.name
    errors = (site / "errors" / "index.html").read_text()
    # Keyword.Declaration and Name.Builtin: the `loss` blocks went through lossdsl's lexer.
    assert '<span class="kd">pred</span>' in errors
    assert '<span class="nb">log_softmax</span>' in errors
    # The wrong examples of syntax errors hold characters outside the language; the tooling page's do not.
    assert '<span class="err">&amp;&amp;</span>' in errors
    tooling = (site / "tooling" / "index.html").read_text()
    assert '<span class="kd">let</span>' in tooling and '<span class="err">' not in tooling


def test_the_version_has_one_source_and_the_changelog_knows_it():
    from importlib.metadata import version

    import lossdsl

    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and not re.search(r"^version\s*=\s*\"", pyproject, re.M)
    assert 'version = { attr = "lossdsl.__version__" }' in pyproject

    assert version("lossdsl") == lossdsl.__version__
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "\n## Unreleased\n" in changelog
    assert f"\n## {lossdsl.__version__}" in changelog


def test_release_bumps_the_version_and_dates_the_unreleased_notes(tmp_path):
    import shutil

    release = _script("release")
    (tmp_path / "lossdsl").mkdir()
    shutil.copy(ROOT / "lossdsl" / "__init__.py", tmp_path / "lossdsl" / "__init__.py")
    shutil.copy(ROOT / "CHANGELOG.md", tmp_path / "CHANGELOG.md")
    import lossdsl

    major, minor, _ = (int(x) for x in lossdsl.__version__.split("."))
    new = f"{major}.{minor + 1}.0"
    release.release(new, "2030-01-02", root=tmp_path)
    assert f'__version__ = "{new}"' in (tmp_path / "lossdsl" / "__init__.py").read_text()
    notes = (tmp_path / "CHANGELOG.md").read_text()
    assert f"## Unreleased\n\n## {new} — 2030-01-02\n\n### Added" in notes
    with pytest.raises(ValueError, match="not above"):
        release.release(lossdsl.__version__, "2030-01-02", root=tmp_path)
