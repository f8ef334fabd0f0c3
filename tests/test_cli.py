"""The `lossdsl` command: exit codes, output formats, and what it imports."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT, EXAMPLES, modules_imported_by
from test_diagnostics_ui import run_check

GOOD = "pred yhat: float[B]\ntarget y: float[B]\nloss = mean((yhat - y)^2)\n"
BAD = "pred yhat: float[B]\ntarget y: float[B]\nloss = mean((yhat - y) ** 2)\n"
WARN = "pred p: float[B]\ntarget y: float[B]\nloss = -mean(y * log(p))\n"


def cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lossdsl", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_examples_check_clean():
    code, out = run_check("examples")
    assert code == 0, out
    assert out.strip() == f"all good: {len(list(EXAMPLES.glob('*.loss')))} files checked"


def test_exit_codes(tmp_path):
    good, bad, warn = write(tmp_path, "g.loss", GOOD), write(tmp_path, "b.loss", BAD), write(tmp_path, "w.loss", WARN)
    assert cli("check", str(good)).returncode == 0
    assert cli("check", str(bad)).returncode == 1
    assert cli("check", str(warn)).returncode == 0
    assert cli("check", "--strict", str(warn)).returncode == 1
    assert cli("check", str(tmp_path / "missing.loss")).returncode == 2
    assert cli("check").returncode == 2
    assert cli("check", "--format", "yaml", str(good)).returncode == 2
    assert cli().returncode == 2


def test_a_folder_is_searched_recursively(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "b.loss", BAD)
    write(tmp_path, "g.loss", GOOD)
    r = cli("check", str(tmp_path))
    assert r.returncode == 1
    assert "b.loss:3:24: error: `**` is not an operator" in r.stdout
    assert "found 1 error in 2 files checked" in r.stdout


def test_empty_folder_is_a_usage_error(tmp_path):
    r = cli("check", str(tmp_path))
    assert r.returncode == 2 and "no .loss files" in r.stderr


def test_text_format_shows_line_caret_and_help(tmp_path):
    bad = write(tmp_path, "b.loss", BAD)
    out = cli("check", str(bad)).stdout
    assert f"{bad}:3:24: error: `**` is not an operator  [E104]" in out
    assert "  3 | loss = mean((yhat - y) ** 2)" in out
    assert "    |                        ^~" in out
    assert "  help: use `^` for powers: `x ^ 2`" in out


def test_json_format(tmp_path):
    bad = write(tmp_path, "b.loss", BAD)
    r = cli("check", "--format", "json", str(bad))
    data = json.loads(r.stdout)
    assert r.returncode == 1
    assert data["errors"] == 1 and data["files"] == 1
    (f,) = data["findings"]
    assert (f["line"], f["column"], f["code"], f["severity"]) == (3, 24, "E104", "error")
    assert f["path"] == str(bad) and f["help"].startswith("use `^`")


def test_github_format(tmp_path):
    bad = write(tmp_path, "b.loss", BAD)
    out = cli("check", "--format", "github", str(bad)).stdout
    first = out.splitlines()[0]
    assert first.startswith(f"::error file={bad},line=3,col=24,endLine=3,endColumn=26,title=E104")
    assert first.endswith("::`**` is not an operator%0Ahelp: use `^` for powers: `x ^ 2`")


def test_quiet_prints_errors_only(tmp_path):
    good, warn = write(tmp_path, "g.loss", GOOD), write(tmp_path, "w.loss", WARN)
    assert cli("check", "-q", str(good), str(warn)).stdout == ""


def test_check_imports_no_framework_and_no_numpy():
    code = "from lossdsl.cli import main; assert main(['check', 'examples', '-q']) == 0"
    assert modules_imported_by(code) == []


def test_version_and_help():
    assert cli("--version").stdout.startswith("lossdsl ")
    assert "check" in cli("--help").stdout


def test_no_traceback_on_unreadable_input(tmp_path):
    p = tmp_path / "bin.loss"
    p.write_bytes(b"\xff\xfe\x00bad")
    r = cli("check", str(p))
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    assert "cannot read" in r.stdout


# ---- run: nothing the user typed is ignored -----------------------------------------------------

SIZED = "pred yhat: float[B]\ntarget y: float[B]\nparam w: float[K] = [1.0, 2.0]\nloss = mean((yhat - y)^2) * sum(w)\n"


def run_in_process(*args: str, capsys) -> tuple[int, str, str]:
    from lossdsl.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--dim", "b=4"], "did you mean `B`?"),
        (["--dim", "Q=3"], "its dimensions: B, K"),
        (["--param", "wt=[1.0, 2.0]"], "did you mean `w`?"),
        (["--param", "w=abc"], "a list is written"),
        (["--param", "w=[1.0, 2.0, 3.0]"], "E805"),
    ],
)
def test_run_refuses_a_dim_or_param_the_spec_does_not_have(tmp_path, capsys, extra, needle):
    spec = write(tmp_path, "s.loss", SIZED)
    code, out, err = run_in_process("run", str(spec), "--random", *extra, capsys=capsys)
    assert code == 1 and needle in err, err
    assert "loss " not in out


def test_run_takes_a_list_for_a_param(tmp_path, capsys):
    import numpy as np

    spec = write(tmp_path, "s.loss", SIZED)
    data = tmp_path / "d.npz"
    np.savez(data, yhat=np.ones(3), y=np.zeros(3))
    code, out, _ = run_in_process("run", str(spec), "--data", str(data), "--param", "w=[1.0, 3.0]", capsys=capsys)
    assert code == 0
    assert "loss      4.0" in out  # mean(1) * (1 + 3)


def test_run_draws_sizes_the_spec_can_read_and_takes_inf_for_a_param(tmp_path, capsys):
    spec = write(tmp_path, "s.loss", "pred a: float[B, C]\nparam lo: float = 0.0\n"
                                     "loss = sum(topk(a, 6, axis=C)) + max(maximum(a, lo))\n")
    code, out, err = run_in_process("run", str(spec), "--random", "--param", "lo=-inf", capsys=capsys)
    assert code == 0, err
    assert "(3, 6)" in out  # C drawn as 4 would be too small for topk of 6
    code, _, err = run_in_process("run", str(spec), "--random", "--dim", "C=4", capsys=capsys)
    assert code == 1 and "E805" in err  # a size given by hand is kept, and checked


def test_run_refuses_an_npz_array_the_spec_does_not_declare(tmp_path, capsys):
    import numpy as np

    spec = write(tmp_path, "s.loss", SIZED)
    data = tmp_path / "d.npz"
    np.savez(data, yhat=np.ones(3), yy=np.zeros(3))
    code, _, err = run_in_process("run", str(spec), "--data", str(data), capsys=capsys)
    assert code == 1 and "`yy`" in err and "did you mean `y`?" in err, err


@pytest.mark.parametrize("command", [["ir"], ["emit", "-b", "numpy"], ["run", "--random"]])
def test_every_command_reads_an_existing_file_whatever_its_name(tmp_path, capsys, command):
    spec = write(tmp_path, "spec.txt", GOOD)
    code, out, err = run_in_process(command[0], str(spec), *command[1:], capsys=capsys)
    assert code == 0, err
    missing = str(tmp_path / "nothere.loss")
    code, _, err = run_in_process(command[0], missing, *command[1:], capsys=capsys)
    assert code == 2 and "no such file" in err, err
    code, out, err = run_in_process(command[0], GOOD, *command[1:], capsys=capsys)  # spec text itself
    assert code == 0, err
