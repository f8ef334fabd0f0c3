"""The VS Code extension in editors/vscode/: its TextMate grammar is the one
scripts/gen_textmate.py generates from the grammar and the function table, and it scopes
every `.loss` file of the repository as the parser reads it (tokenised with node, by
vscode-textmate and vscode-oniguruma, as VS Code does)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from lossdsl import syntax as S
from lossdsl.diagnostics import LossError
from lossdsl.functions import USER_FUNCTIONS
from lossdsl.parser import parse_source
from lossdsl.source import Source

VSCODE = ROOT / "editors" / "vscode"
SKIP_DIRS = {".venv", "venv", "node_modules", "build", "dist", ".git"}


def loss_files():
    return sorted(p for p in ROOT.rglob("*.loss") if not SKIP_DIRS & set(p.relative_to(ROOT).parts))


def test_textmate_grammar_is_the_generated_one():
    r = subprocess.run([sys.executable, "scripts/gen_textmate.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_vscode_extension_declares_the_language_the_grammar_and_the_language_server():
    pkg = json.loads((VSCODE / "package.json").read_text())
    [language] = pkg["contributes"]["languages"]
    assert language["id"] == "lossdsl" and language["extensions"] == [".loss"]
    [grammar] = pkg["contributes"]["grammars"]
    assert grammar["scopeName"] == "source.lossdsl" and (VSCODE / grammar["path"]).is_file()
    assert "vscode-languageclient" in pkg["dependencies"]
    assert pkg["contributes"]["configuration"]["properties"]["lossdsl.server.args"]["default"] == ["lsp"]
    main = (VSCODE / pkg["main"]).read_text()
    assert 'require("vscode-languageclient/node")' in main and "LanguageClient(" in main
    config = json.loads((VSCODE / language["configuration"]).read_text())
    assert config["comments"]["lineComment"] == "#"
    assert config["brackets"] == [["(", ")"], ["[", "]"], ["{", "}"]]
    assert "editors/vscode/node_modules/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.fixture(scope="module")
def tokenize():
    """Runs editors/vscode/test/tokenize.js; installs its npm packages the first time."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed on this machine")
    if not (VSCODE / "node_modules" / "vscode-textmate").is_dir():
        r = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=VSCODE, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, f"npm ci failed in editors/vscode:\n{r.stderr[-3000:]}"

    def run(paths) -> dict[str, list[dict]]:
        r = subprocess.run(
            ["node", "test/tokenize.js", *map(str, paths)], cwd=VSCODE, capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0, r.stderr[-3000:]
        out = [json.loads(line) for line in r.stdout.splitlines()]
        return {d["file"]: d["tokens"] for d in out}

    return run


def activate(settings: dict | None = None) -> dict:
    """What the extension's activate() starts (editors/vscode/test/activate.js)."""
    r = subprocess.run(
        ["node", "test/activate.js", json.dumps(settings or {})], cwd=VSCODE, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_the_extension_starts_lossdsl_lsp_as_its_language_client_and_stops_it(tokenize):
    # `tokenize` has installed the extension's npm packages: activate.js resolves the real
    # vscode-languageclient before it stands in for it.
    pkg = json.loads((VSCODE / "package.json").read_text())
    settings = pkg["contributes"]["configuration"]["properties"]
    out = activate()
    [started, stopped] = out["events"]
    server = {"command": settings["lossdsl.server.command"]["default"], "args": settings["lossdsl.server.args"]["default"]}
    assert started["started"]["serverOptions"] == {"run": server, "debug": server}
    assert started["started"]["clientOptions"]["documentSelector"] == [{"language": "lossdsl"}]
    assert stopped == {"stopped": "lossdsl"} and out["subscribed"] == [True]
    # The command a user points the setting at is what starts, and it speaks LSP.
    venv_lossdsl = shutil.which("lossdsl", path=str(Path(sys.executable).parent))
    assert venv_lossdsl is not None, "no lossdsl command next to this Python"
    [started, _] = activate({"lossdsl.server.command": venv_lossdsl})["events"]
    run = started["started"]["serverOptions"]["run"]
    pytest.importorskip("pygls", reason="the language server needs pygls (pip install 'lossdsl[lsp]')")
    from lsp_client import LspClient

    client = LspClient([run["command"], *run["args"]])
    try:
        caps = client.initialize()["capabilities"]
        assert caps["textDocumentSync"]["change"] == 1 and caps["textDocumentSync"]["save"]  # full text; saves told
        assert caps["hoverProvider"] and caps["definitionProvider"] and caps["documentFormattingProvider"]
        assert caps["completionProvider"]["triggerCharacters"] == ["."]
        assert client.close() == 0
    finally:
        client.kill()


def token_at(tokens: list[dict], line: int, col: int) -> dict:
    for t in tokens:
        if t["line"] == line and t["col"] <= col < t["col"] + len(t["text"]):
            return t
    raise AssertionError(f"no token at {line}:{col}")


def scopes_at(tokens, line: int, col: int) -> str:
    return " ".join(token_at(tokens, line, col)["scopes"])


def statement_keyword(stmt: S.Statement) -> str:
    if isinstance(stmt, S.Decl):
        return stmt.kind
    return {S.Let: "let", S.Def: "def", S.LossStmt: "loss", S.Use: "use"}[type(stmt)]


def test_every_builtin_of_the_table_is_scoped_as_a_support_function(tokenize, tmp_path):
    lines = ["pred x: float[B]"] + [f"let use_{name} = {name}(x)" for name in sorted(USER_FUNCTIONS)]
    path = tmp_path / "all_builtins.loss"
    path.write_text("\n".join(lines) + "\n")
    tokens = tokenize([path])[str(path)]
    for n, name in enumerate(sorted(USER_FUNCTIONS), start=2):
        token = token_at(tokens, n, len(f"let use_{name} = ") + 1)
        assert token["text"] == name and "support.function" in " ".join(token["scopes"]), (name, token)


def test_every_loss_file_is_scoped_as_the_parser_reads_it(tokenize):
    """Built-ins called as support.function, statement keywords as keyword, dimension names
    in declared shapes, numbers, and comments, at the positions the parser gives them."""
    files = loss_files()
    assert len(files) > 50
    tokenized = tokenize(files)
    assert sorted(tokenized) == sorted(map(str, files))  # every file tokenised, none threw
    checked_calls = 0
    for path in files:
        tokens = tokenized[str(path)]
        text = path.read_text(encoding="utf-8")
        for n, line in enumerate(text.split("\n"), start=1):
            if "#" in line:  # no strings in the language: the first # starts a comment
                for col in (line.index("#") + 1, len(line.rstrip("\r"))):  # from the # to the end of the line
                    assert "comment.line" in scopes_at(tokens, n, col), (path.name, n, col)
        try:
            result = parse_source(Source(text, str(path)), allow_quick=False)
        except LossError:
            continue
        for stmt in result.module.statements:
            kw = statement_keyword(stmt)
            t = token_at(tokens, stmt.span.line, stmt.span.col)
            assert t["text"] == kw and " ".join(t["scopes"]).count("keyword"), (path.name, stmt.span.line, t)
            if isinstance(stmt, S.Decl):
                for dim in _dims(stmt.type):
                    scope = scopes_at(tokens, dim.span.line, dim.span.col)
                    want = "entity.name.type.dimension" if isinstance(dim, S.DimSymbol) else "constant.numeric"
                    assert want in scope, (path.name, dim)
                continue
            if isinstance(stmt, S.Use):
                want = "string.quoted" if stmt.library is None else "entity.name.namespace"
                assert want in scopes_at(tokens, stmt.target_span.line, stmt.target_span.col), (path.name, stmt)
                continue
            for node in S.walk(stmt.body if isinstance(stmt, S.Def) else stmt.value):
                if isinstance(node, S.Call) and node.func in USER_FUNCTIONS:
                    scope = scopes_at(tokens, node.func_span.line, node.func_span.col)
                    assert "support.function.builtin" in scope, (path.name, node.func, node.func_span.line)
                    checked_calls += 1
                elif isinstance(node, S.Number):
                    want = "constant.language" if node.value == float("inf") else "constant.numeric"  # the literal inf
                    assert want in scopes_at(tokens, node.span.line, node.span.col), (path.name, node)
    assert checked_calls > 100


def _dims(t: S.TypeExpr):
    if isinstance(t, S.TensorTypeExpr):
        return list(t.dims)
    return [d for f in t.fields for d in _dims(f.type)]
