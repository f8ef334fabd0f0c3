"""`lossdsl lsp` spoken to as an editor would: a subprocess, JSON-RPC over stdio
(tests/lsp_client.py). Positions on the wire are 0-based; spans are 1-based."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import ROOT, modules_imported_by, spec

from lossdsl.frontend import findings_for
from lossdsl.functions import USER_FUNCTIONS

pytest.importorskip("pygls", reason="the language server needs pygls (pip install 'lossdsl[lsp]')")

from lsp_client import LspClient

SPEC = spec(
    """
    # classes weighted by a context matrix
    pred   yhat: float[B, C]
    target y:    int[B]
    input  x:    {feature: float[B], meta: {w: float[B]}}
    context W:   float[C, C]
    param  alpha: float = 0.5

    def sq(a) = a ^ 2
    let p = softmax(yhat, axis=C)
    let d = sq(x.feature) + abs(x.meta.w)
    loss = mean(d * -log(pick(p, y))) + alpha * mean(W[y, argmax(yhat, axis=C)])
    """
)
# 0-based line numbers of SPEC's statements
L_PRED, L_INPUT, L_DEF, L_P, L_D, L_LOSS = 1, 3, 7, 8, 9, 10


@pytest.fixture(scope="module")
def client():
    c = LspClient()
    try:
        c.initialize()
        yield c
    finally:
        c.kill()


def col(line: str, text: str, nth: int = 0) -> int:
    """The 0-based column of the `nth` occurrence of `text` in `line`."""
    at = -1
    for _ in range(nth + 1):
        at = line.index(text, at + 1)
    return at


def line_of(n: int) -> str:
    return SPEC.splitlines()[n]


def hover(client, uri: str, line: int, text: str, nth: int = 0, offset: int = 0) -> str:
    """The hover at the `nth` `text` on `line` (`offset` characters into it)."""
    result = client.at("textDocument/hover", uri, line, col(line_of(line), text, nth) + offset)
    assert result is not None, f"no hover on {text!r}"
    return result["contents"]["value"]


@pytest.fixture(scope="module")
def uri(client, tmp_path_factory):
    path = tmp_path_factory.mktemp("lsp") / "weighted.loss"
    path.write_text(SPEC)
    client.open(path.as_uri(), SPEC)
    return path.as_uri()


def test_diagnostics_on_open_are_the_findings_of_lossdsl_check(client, tmp_path):
    text = spec(
        """
        pred yhat: float[B]
        target y: float[B, C]
        let r = log(yhat)
        loss = mean(r + y * zz)
        """
    )
    path = tmp_path / "bad.loss"
    path.write_text(text)
    published = client.open(path.as_uri(), text)["diagnostics"]
    expected = findings_for(path)
    assert [d["code"] for d in published] == [f.code for f in expected] and expected
    for got, want in zip(published, expected):
        assert got["severity"] == (1 if want.severity == "error" else 2)
        assert got["source"] == "lossdsl"
        assert got["message"].splitlines()[0] == want.message
        if want.help:
            assert got["message"].endswith(f"help: {want.help}")
        assert got["range"] == {
            "start": {"line": want.span.line - 1, "character": want.span.col - 1},
            "end": {"line": want.span.end_line - 1, "character": want.span.end_col - 1},
        }


def test_a_use_is_read_next_to_the_document_and_errors_in_the_used_file_show_at_the_use(client, tmp_path):
    (tmp_path / "helpers.loss").write_text("def sq(x) = x^2\ndef bad(x) = x @ x\n")
    good = 'use "helpers.loss"\npred z: float[B]\nloss = mean(sq(z))\n'
    assert client.open((tmp_path / "good.loss").as_uri(), good)["diagnostics"] == []
    bad = 'use "helpers.loss"\npred z: float[B, C]\nloss = mean(bad(z))\n'
    [d] = client.open((tmp_path / "bad.loss").as_uri(), bad)["diagnostics"]
    assert d["message"].startswith(f"{tmp_path / 'helpers.loss'}:2:")
    assert d["range"]["start"] == {"line": 0, "character": 0}


def test_warnings_are_published_with_warning_severity(client, uri):
    # SPEC's `log(pick(p, y))` may see 0: W701, a warning, as `lossdsl check` says.
    path = Path(uri.removeprefix("file://"))
    [finding] = findings_for(path)
    assert finding.code == "W701"
    fresh = "file:///tmp/warn-only.loss"
    [d] = client.open(fresh, SPEC)["diagnostics"]
    assert (d["code"], d["severity"]) == ("W701", 2)


def test_every_change_republishes_diagnostics(client):
    doc = "file:///tmp/changing.loss"
    good = "pred yhat: float[B]\ntarget y: float[B]\nloss = mean((yhat - y)^2)\n"
    assert client.open(doc, good)["diagnostics"] == []
    typo = good.replace("(yhat - y)", "(yaht - y)")
    [d] = client.change(doc, typo, 2)["diagnostics"]
    assert d["code"] == "E201" and d["severity"] == 1 and "did you mean `yhat`?" in d["message"]
    assert d["range"]["start"] == {"line": 2, "character": 13}
    half_typed = good.replace("^2)", "^2) +")  # the line ends where an operand was expected
    [d] = client.change(doc, half_typed, 3)["diagnostics"]
    end = len("loss = mean((yhat - y)^2) +")
    assert d["code"] == "E101" and d["range"]["start"] == {"line": 2, "character": end}
    assert (d["range"]["end"]["line"], d["range"]["end"]["character"]) > (2, end)  # the newline
    unclosed = good.replace("mean((", "mean(((")
    [d] = client.change(doc, unclosed, 4)["diagnostics"]
    assert d["code"] == "E102"
    assert client.change(doc, good, 5)["diagnostics"] == []


def test_ranges_are_in_utf16_code_units_by_default(client):
    # An emoji is one character of the span but two UTF-16 code units on the wire.
    doc = "file:///tmp/emoji.loss"
    [d] = client.open(doc, "pred yhat: float[B]\nloss = mean(yhat) + \U0001f600\n")["diagnostics"]
    assert d["code"] == "E106"
    assert d["range"] == {"start": {"line": 1, "character": 20}, "end": {"line": 1, "character": 22}}


def test_hover_on_a_name_gives_its_type_with_its_symbolic_shape(client, uri):
    assert "let p: float[B, C]" in hover(client, uri, L_LOSS, "pick(p", offset=5)
    assert "pred yhat: float[B, C]" in hover(client, uri, L_P, "yhat")
    assert "let d: float[B]" in hover(client, uri, L_D, "d")
    assert "x.feature: float[B]" in hover(client, uri, L_D, "feature")
    assert "context W: float[C, C]" in hover(client, uri, L_LOSS, "W")
    assert "input x: {feature: float[B], meta: {w: float[B]}}" in hover(client, uri, L_INPUT, "x")
    assert "a: float[B]" in hover(client, uri, L_DEF, "a", 1)  # a def parameter, typed at its call
    assert "C: dimension" in hover(client, uri, L_P, "C")


def test_hover_on_a_builtin_gives_its_signature_result_and_gradient_convention(client, uri):
    text = hover(client, uri, L_D, "abs")
    fn = USER_FUNCTIONS["abs"]
    assert f"{fn.signature()} -> float[B]" in text
    assert fn.doc in text and f"gradient: {fn.grad}" in text and "0 at x = 0" in text
    text = hover(client, uri, L_P, "softmax")
    assert "softmax(x, axis=-1) -> float[B, C]" in text
    assert "mean(x, axis=None, keepdims=false) -> float\n" in hover(client, uri, L_LOSS, "mean")
    assert "def sq(a) -> float[B]" in hover(client, uri, L_D, "sq")
    assert "a * b -> float[B]" in hover(client, uri, L_LOSS, "*")
    text = hover(client, uri, L_P, "axis")
    assert "`axis` of `softmax(x, axis=-1)`" in text and "default -1" in text


def test_a_request_sent_right_after_a_change_describes_the_new_text(client):
    doc = "file:///tmp/retyped.loss"
    client.open(doc, "pred yhat: float[B, C]\nlet z = sum(yhat, axis=C)\nloss = mean(z)\n")
    assert "let z: float[B]" in client.at("textDocument/hover", doc, 1, 4)["contents"]["value"]
    new = "pred yhat: float[B, C]\nlet z = softmax(yhat, axis=C)\nloss = mean(z)\n"
    client.notify(
        "textDocument/didChange", {"textDocument": {"uri": doc, "version": 2}, "contentChanges": [{"text": new}]}
    )
    assert "let z: float[B, C]" in client.at("textDocument/hover", doc, 1, 4)["contents"]["value"]


def test_hover_still_types_what_checked_in_a_file_with_errors(client):
    doc = "file:///tmp/half-broken.loss"
    text = "pred yhat: float[B, C]\nlet z = log_softmax(yhat)\nloss = mean(z + nope)\n"
    [d] = client.open(doc, text)["diagnostics"]
    assert d["code"] == "E201"
    result = client.at("textDocument/hover", doc, 1, 4)
    assert "let z: float[B, C]" in result["contents"]["value"]
    assert result["range"] == {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 5}}
    assert client.at("textDocument/hover", doc, 2, 16) is None  # `nope` means nothing


def test_definition_of_lets_defs_declarations_params_dimensions_and_fields(client, uri):
    def target(line: int, text: str, nth: int = 0):
        loc = client.at("textDocument/definition", uri, line, col(line_of(line), text, nth))
        return None if loc is None else (loc["uri"], loc["range"]["start"]["line"], loc["range"]["start"]["character"])

    assert target(L_LOSS, "d") == (uri, L_D, 4)
    assert target(L_LOSS, "yhat") == (uri, L_PRED, col(line_of(L_PRED), "yhat"))
    assert target(L_D, "sq") == (uri, L_DEF, 4)
    assert target(L_DEF, "a", 1) == (uri, L_DEF, 7)
    assert target(L_P, "C") == (uri, L_PRED, col(line_of(L_PRED), "C"))
    assert target(L_D, "w") == (uri, L_INPUT, col(line_of(L_INPUT), "w:"))
    assert target(L_D, "abs") is None  # a built-in has no definition in the file


def test_definition_hover_and_completion_reach_the_defs_of_used_files(client, tmp_path):
    (tmp_path / "inner.loss").write_text("# squares\ndef sq(x) = x^2\n")
    (tmp_path / "helpers.loss").write_text('use "inner.loss"\n\ndef cube(x) = x * sq(x)\n')
    text = (
        'use "helpers.loss"\nuse std.huber\npred z: float[B, D]\ntarget y: float[B, D]\n'
        "loss = mean(cube(z)) + sq(mean(z)) + huber(z, y)\n"
    )
    uri = (tmp_path / "main.loss").as_uri()
    assert client.open(uri, text)["diagnostics"] == []
    line = text.splitlines()[4]

    def target(name: str):
        loc = client.at("textDocument/definition", uri, 4, line.index(name))
        return loc["uri"], loc["range"]["start"]

    assert target("cube") == ((tmp_path / "helpers.loss").resolve().as_uri(), {"line": 2, "character": 4})
    assert target("sq") == ((tmp_path / "inner.loss").resolve().as_uri(), {"line": 1, "character": 4})
    std_uri, start = target("huber")  # a standard loss used as a function: its `loss` statement
    std_file = Path(unquote(urlparse(std_uri).path))
    assert std_file.name == "huber.loss" and std_file.read_text().splitlines()[start["line"]].startswith("loss =")

    text_of = lambda name: client.at("textDocument/hover", uri, 4, line.index(name))["contents"]["value"]  # noqa: E731
    assert "def cube(x) -> float[B, D]" in text_of("cube") and 'from `use "helpers.loss"`' in text_of("cube")
    assert "def huber(yhat, y, delta=1.0) -> float[B]" in text_of("huber") and "from `use std.huber`" in text_of("huber")
    by_label = {i["label"]: i for i in client.at("textDocument/completion", uri, 4, 0)["items"]}
    assert by_label["cube"]["detail"] == "def cube(x)" and by_label["sq"]["detail"] == "def sq(x)"
    assert by_label["huber"]["detail"] == "def huber(yhat, y, delta=1.0)"


def test_saving_a_used_file_checks_the_open_files_that_use_it_again(client, tmp_path):
    helpers, later = tmp_path / "helpers.loss", tmp_path / "later.loss"
    helpers.write_text("def sq(x) = x^2\n")
    text = 'use "helpers.loss"\nuse "later.loss"\npred z: float[B, C]\nloss = mean(sq(z)) + mean(cube(z))\n'
    (tmp_path / "main.loss").write_text(text)
    main = (tmp_path / "main.loss").as_uri()
    assert [d["code"] for d in client.open(main, text)["diagnostics"]] == ["E212", "E202"]  # no later.loss yet

    def saved(path) -> list[str]:
        client.notify("textDocument/didSave", {"textDocument": {"uri": path.as_uri()}})
        published = client.wait_for("textDocument/publishDiagnostics", lambda p: p["uri"] == main)
        return [d["code"] for d in published["diagnostics"]]

    later.write_text("def cube(x) = x^3\n")
    assert saved(later) == []
    helpers.write_text("def sq(x) = x @ x\n")
    assert saved(helpers) == [f.code for f in findings_for(tmp_path / "main.loss")] == ["E410"]


def test_completion_offers_declared_names_builtins_with_signatures_and_keywords(client, uri):
    items = client.at("textDocument/completion", uri, L_LOSS, 0)["items"]
    by_label = {i["label"]: i for i in items}
    for name in ("yhat", "y", "x", "W", "alpha", "p", "d", "sq", "B", "C"):
        assert name in by_label, name
    assert by_label["p"]["detail"] == "let p: float[B, C]"
    assert by_label["yhat"]["detail"] == "pred yhat: float[B, C]"
    for name, fn in USER_FUNCTIONS.items():
        assert by_label[name]["detail"] == fn.signature()
    for keyword in ("pred", "target", "input", "context", "param", "let", "def", "loss", "where", "true", "None"):
        assert keyword in by_label, keyword


def test_completion_after_a_record_offers_its_fields(client):
    doc = "file:///tmp/fields.loss"
    text = "pred yhat: float[B]\ninput x: {feature: float[B], meta: {w: float[B]}}\nloss = mean(yhat * x.meta.w)\n"
    client.open(doc, text)
    items = client.at("textDocument/completion", doc, 2, len("loss = mean(yhat * x."))["items"]
    assert sorted(i["label"] for i in items) == ["feature", "meta"]
    items = client.at("textDocument/completion", doc, 2, len("loss = mean(yhat * x.meta."))["items"]
    assert [(i["label"], i["detail"]) for i in items] == [("w", "float[B]")]


def test_formatting_replaces_the_document_with_the_formatters_layout(client):
    from lossdsl.formatting import format_source

    doc = "file:///tmp/unformatted.loss"
    text = "pred yhat:float[B]\ntarget  y : float[B]\nloss=mean((yhat-y)^2)   # squared\n"
    client.open(doc, text)
    options = {"tabSize": 4, "insertSpaces": True}
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": doc}, "options": options})
    assert format_source(text) != text
    [edit] = edits
    assert edit["range"]["start"] == {"line": 0, "character": 0}
    assert edit["newText"] == format_source(text)
    client.change(doc, edit["newText"], 2)
    assert client.request("textDocument/formatting", {"textDocument": {"uri": doc}, "options": options}) == []
    client.change(doc, "pred yhat: float[B]\nloss = mean(yhat +)\n", 3)
    assert client.request("textDocument/formatting", {"textDocument": {"uri": doc}, "options": options}) == []


def test_every_example_opens_with_the_findings_of_lossdsl_check(client):
    for path in sorted((ROOT / "examples").glob("*.loss")):
        published = client.open(path.as_uri(), path.read_text())["diagnostics"]
        assert [d["code"] for d in published] == [f.code for f in findings_for(path)], path.name


def test_shutdown_then_exit_ends_the_server_with_status_0():
    c = LspClient()
    try:
        c.initialize()
        assert c.close() == 0
    finally:
        c.kill()


def test_lsp_without_pygls_says_how_to_install_it():
    code = "import sys; sys.modules['pygls'] = None; from lossdsl.cli import main; sys.exit(main(['lsp']))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "pip install 'lossdsl[lsp]'" in r.stderr


def test_the_language_server_imports_no_framework_and_no_numpy():
    assert modules_imported_by("import lossdsl.lsp.server") == []


def test_types_are_known_before_the_analyses_that_only_add_findings():
    # The server answers requests after `type_check` and publishes after `finish`: the first
    # half has every type hover reads, the second the findings of gradient paths and domains.
    from lossdsl.lsp.document import analyze, finish, type_check
    from lossdsl.lsp.hover import hover_at

    doc, checked = type_check(SPEC, "weighted.loss")
    assert checked is not None and doc.findings == []  # W701 comes from the domain analysis
    p_use = line_of(L_LOSS).index("pick(p") + 5
    text, _ = hover_at(doc, L_LOSS + 1, p_use + 1)
    assert "let p: float[B, C]" in text
    assert [d.code for d in finish(doc, checked).findings] == ["W701"]
    assert [d.code for d in analyze(SPEC, "weighted.loss").findings] == ["W701"]
    doc, checked = type_check(SPEC.replace("+ abs(", "+ nope("), "typo.loss")  # a type error: complete at once
    assert checked is None and [d.code for d in doc.findings] == ["E202"]
