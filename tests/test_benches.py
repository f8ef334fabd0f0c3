"""A smoke run of the benchmark script (timings are never asserted: speed is measured in
benches/, not in tests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, needs


@pytest.mark.slow
@needs("torch")
@needs("tensorflow")
def test_bench_script_runs_quickly_and_checks_agreement():
    r = subprocess.run([sys.executable, str(ROOT / "benches" / "run.py"), "--quick", "--only", "seeds", "--out", "-"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "graph distance, seed 002 loop vs spec" in r.stdout


def test_bench_compile_section():
    r = subprocess.run([sys.executable, str(ROOT / "benches" / "run.py"), "--quick", "--only", "compile", "--out", "-"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "per spec" in r.stdout


def test_lsp_latency_bench_runs_and_reports_the_slowest_request():
    pytest.importorskip("pygls", reason="the language server needs pygls (pip install 'lossdsl[lsp]')")
    r = subprocess.run([sys.executable, str(ROOT / "benches" / "lsp_latency.py"), "--lines", "120", "--repeats", "3"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "generated spec of 120 lines" in r.stdout and "findings: none" in r.stdout
    assert "slowest request:" in r.stdout


@pytest.mark.slow
@needs("torch")
def test_lm_head_bench_measures_each_implementation_in_its_own_process():
    r = subprocess.run([sys.executable, str(ROOT / "benches" / "lm_head.py"), "--quick", "--only", "torch"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| torch |")]
    assert [row.split("|")[3].strip() for row in rows] == [
        "lossdsl", "lossdsl dense", "F.cross_entropy", "F.linear_cross_entropy"]


def test_check_speed_bench_times_each_stage_of_lossdsl_check_and_imports_no_framework():
    r = subprocess.run([sys.executable, str(ROOT / "benches" / "check_speed.py"), "--quick"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "on 30 files" in r.stdout and "beyond start-up" in r.stdout
    assert "parsing the 30 files" in r.stdout and "checking them" in r.stdout
    assert "frameworks imported by `lossdsl check`: []" in r.stdout
