"""The grammar, the backends and the standard library ship inside the package: a wheel
and an editable install both find them (`lossdsl.grammars`, `lossdsl.backends`,
`lossdsl.std`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources

import pytest

from conftest import EXAMPLES, ROOT


def test_this_install_finds_grammar_backends_and_std():
    import lossdsl.backends
    import lossdsl.grammars
    import lossdsl.std

    assert resources.files("lossdsl.grammars").joinpath("loss.lark").is_file()
    assert hasattr(lossdsl.backends, "get_backend")
    assert "huber" in lossdsl.std.names()


@pytest.mark.slow
def test_a_wheel_carries_everything_and_works_outside_the_repository(tmp_path):
    wheels = tmp_path / "wheels"
    # Built from a copy without the checkout's own build/ folder, whose leftovers from an
    # earlier build would otherwise end up in the wheel and hide a package missing from the list.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", "venv", "build", "dist", ".git", "*.egg-info",
                                                             "__pycache__", ".pytest_cache"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(wheels), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("lossdsl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("lossdsl/grammars/loss.lark", "lossdsl/backends/torch_backend.py", "lossdsl/backends/base.py",
                 "lossdsl/std/huber.loss", "lossdsl/parser.py", "lossdsl/checker/module.py",
                 "lossdsl/cli.py"):
        assert must in names, must
    # Every module of the source tree ships (a subpackage missing from pyproject's list would
    # still import here, through the editable install's finder, and pass unnoticed).
    sources = [f"lossdsl/{p.relative_to(ROOT / 'lossdsl').as_posix()}" for p in (ROOT / "lossdsl").rglob("*.py")]
    sources += [f"lossdsl/backends/{p.name}" for p in (ROOT / "backends").glob("*.py")]
    missing = [m for m in sources if m not in names]
    assert not missing, missing
    target = tmp_path / "site"
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr
    code = ("import lossdsl, lossdsl.std, numpy as np, sys; "
            f"assert lossdsl.__file__.startswith({str(target)!r}), lossdsl.__file__; "
            f"f = lossdsl.compile({str(EXAMPLES / 'weighted_mse.loss')!r}, backend='numpy'); "
            "print(f(np.ones(2), np.zeros(2), x={'feature': np.ones(2)}), len(lossdsl.std.names()))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    value, n_std = run.stdout.split()
    assert float(value) == 1.0 and int(n_std) >= 15
