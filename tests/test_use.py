"""`use` (docs/language.md §1): `use "helpers.loss"` and `use std.NAME` bring the `def`s of another
file into scope, following that file's own `use`s. A file that cannot be read is E212, a cycle of
`use`s E213, a name defined twice across files E214; each names the places in both files. Only
the parser reads the used files, so `lossdsl check` stays framework-free."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError

from conftest import ROOT

HUBER = "def huber(r, d) = where(abs(r) <= d, 0.5 * r^2, d * (abs(r) - 0.5 * d))\n"


def write(folder, **files):
    for name, text in files.items():
        (folder / f"{name}.loss").write_text(text)
    return folder


def codes_of(path):
    with pytest.raises(LossError) as e:
        lossdsl.check(path)
    return e.value.findings


def test_a_used_files_defs_are_called_like_local_ones(tmp_path):
    write(tmp_path, helpers='use "inner.loss"\n' + HUBER + "def half_twice(r) = twice(r) / 2\n",
          inner="def twice(r) = 2 * r\n",
          main='use "helpers.loss"\npred yhat: float[B]\ntarget y: float[B]\n'
               "loss = mean(huber(yhat - y, 1.0) + half_twice(yhat))\n")
    f = lossdsl.compile(tmp_path / "main.loss", backend="numpy")
    yhat, y = np.array([0.0, 3.0, -1.0]), np.array([0.5, 0.0, 0.0])
    r = np.abs(yhat - y)
    expected = np.mean(np.where(r <= 1.0, 0.5 * r**2, r - 0.5) + yhat)
    assert float(f(yhat, y)) == pytest.approx(expected)


def test_a_used_path_is_relative_to_the_file_that_uses_it(tmp_path):
    (tmp_path / "lib").mkdir()
    write(tmp_path / "lib", helpers='use "more/sq.loss"\n' + HUBER)
    (tmp_path / "lib" / "more").mkdir()
    write(tmp_path / "lib" / "more", sq="def sq(x) = x^2\n")
    write(tmp_path, main='use "lib/helpers.loss"\npred z: float[B]\nloss = mean(huber(z, 2.0) + sq(z))\n')
    assert str(lossdsl.check(tmp_path / "main.loss").loss.type) == "float"


def test_a_used_files_declarations_lets_and_loss_stay_its_own(tmp_path):
    write(tmp_path, helpers="pred other: float[B]\nlet k = 3.0\ndef sq(x) = x^2\nloss = mean(other)\n",
          main='use "helpers.loss"\npred z: float[B]\nloss = mean(sq(z))\n')
    checked = lossdsl.check(tmp_path / "main.loss")
    assert [d.name for d in checked.declarations] == ["z"]
    write(tmp_path, bad='use "helpers.loss"\npred z: float[B]\nloss = mean(sq(z) * k)\n')
    assert [d.code for d in codes_of(tmp_path / "bad.loss")] == ["E201"]


def test_use_std_reads_the_standard_library(tmp_path):
    write(tmp_path, main="use std.huber\npred z: float[B]\nloss = mean(z^2)\n")
    lossdsl.check(tmp_path / "main.loss")


def test_a_missing_file_or_library_entry_is_E212_at_the_use(tmp_path):
    write(tmp_path, main='use "nope.loss"\nuse std.hubr\nuse lib.huber\npred z: float[B]\nloss = mean(z)\n')
    found = codes_of(tmp_path / "main.loss")
    assert [(d.code, d.span.line) for d in found] == [("E212", 1), ("E212", 2), ("E212", 3)]
    assert "no such file" in found[0].message and "did you mean `std.huber`?" in found[1].help


def test_a_used_file_with_a_syntax_error_is_reported_in_both_files(tmp_path):
    write(tmp_path, helpers="def sq(x) = x^^2\n", main='use "helpers.loss"\npred z: float[B]\nloss = mean(z)\n')
    found = codes_of(tmp_path / "main.loss")
    paths = {(d.code, d.span.path.rsplit("/", 1)[-1]) for d in found}
    assert ("E212", "main.loss") in paths and any(c.startswith("E1") and p == "helpers.loss" for c, p in paths)


def test_a_cycle_of_uses_is_E213_naming_each_use(tmp_path):
    write(tmp_path, a='use "b.loss"\ndef f(x) = 2 * x\n', b='use "a.loss"\ndef g(x) = f(x) + 1\n',
          main='use "a.loss"\npred z: float[B]\nloss = mean(g(z))\n')
    found = codes_of(tmp_path / "main.loss")
    cycle = [d for d in found if d.code == "E213"]
    assert len(cycle) == 1
    d = cycle[0]
    assert d.span.path.endswith("b.loss") and d.span.line == 1
    assert any("a.loss:1:1" in n for n in d.notes) and any("b.loss:1:1" in n for n in d.notes)


def test_a_file_that_uses_itself_is_a_cycle(tmp_path):
    write(tmp_path, main='use "main.loss"\npred z: float[B]\nloss = mean(z)\n')
    assert [d.code for d in codes_of(tmp_path / "main.loss")] == ["E213"]


def test_a_local_name_that_a_used_def_also_defines_is_E214_naming_both(tmp_path):
    write(tmp_path, helpers=HUBER, main='use "helpers.loss"\npred z: float[B]\ndef huber(r) = r^2\n'
                                       "loss = mean(huber(z))\n")
    (d,) = codes_of(tmp_path / "main.loss")
    assert d.code == "E214" and d.span.path.endswith("main.loss") and (d.span.line, d.span.col) == (3, 5)
    assert any("helpers.loss:1:5" in n for n in d.notes)


def test_two_used_files_defining_one_name_is_E214_at_the_second_use(tmp_path):
    write(tmp_path, a="def sq(x) = x^2\n", b="def sq(x) = x * x\n",
          main='use "a.loss"\nuse "b.loss"\npred z: float[B]\nloss = mean(sq(z))\n')
    (d,) = codes_of(tmp_path / "main.loss")
    assert d.code == "E214" and d.span.line == 2
    assert any("a.loss:1:5" in n for n in d.notes) and any("b.loss:1:5" in n for n in d.notes)


def test_a_file_used_twice_brings_its_defs_once(tmp_path):
    write(tmp_path, base="def sq(x) = x^2\n", a='use "base.loss"\ndef f(x) = sq(x)\n',
          b='use "base.loss"\ndef g(x) = sq(x) + 1\n',
          main='use "a.loss"\nuse "b.loss"\npred z: float[B]\nloss = mean(f(z) + g(z))\n')
    lossdsl.check(tmp_path / "main.loss")


def test_an_error_inside_a_used_def_points_into_its_file_and_at_the_call(tmp_path):
    write(tmp_path, helpers="def bad(x) = x @ x\n", main='use "helpers.loss"\npred z: float[B, C]\nloss = mean(bad(z))\n')
    (d,) = codes_of(tmp_path / "main.loss")
    assert d.span.path.endswith("helpers.loss")
    assert any("called at line 3" in n for n in d.notes)


def test_use_is_formatted_and_check_stays_framework_free(tmp_path):
    from lossdsl.formatting import format_source

    text = 'use   "helpers.loss"\nuse std.huber\npred z: float[B]\nloss = mean(sq(z))\n'
    assert format_source(text).startswith('use "helpers.loss"\nuse std.huber\n')
    write(tmp_path, helpers="def sq(x) = x^2\n", main=text)
    code = ("import sys, lossdsl.cli\n"
            f"rc = lossdsl.cli.main(['check', {str(tmp_path / 'main.loss')!r}])\n"
            "bad = [m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules]\n"
            "print(rc, bad)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "0 []", r.stdout + r.stderr
