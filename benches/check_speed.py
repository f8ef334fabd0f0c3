"""`lossdsl check` of 30 files as users run it: one process, the time beyond the interpreter's
start-up, and where that time goes (imports, loading the parser, parsing, checking).

    python benches/check_speed.py          # prints the rows
    python benches/run.py --only check     # the section of docs/benchmarks.md

The files are the examples and the standard library's specs, the first 30 by name. Each
process runs after the bytecode caches are written, as after any first run. Whole-process
times are the least of the runs (what the work costs; a shared machine only adds to it) with
the median beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh process: each stage as the first call of `lossdsl check` meets it (cold).
_STAGES = r"""
import json, sys, time
t0 = time.perf_counter()
import lossdsl.cli
t1 = time.perf_counter()
from lossdsl import parser
from lossdsl.frontend import check_parsed
from lossdsl.diagnostics import LossError
from lossdsl.loading import load_source
parser._lark()
t2 = time.perf_counter()
sources = [load_source(f) for f in sys.argv[1:]]
parsed = [parser.parse_source(s, allow_quick=False) for s in sources]
t3 = time.perf_counter()
for p in parsed:
    try:
        check_parsed(p)
    except LossError:
        pass
t4 = time.perf_counter()
frameworks = sorted(m for m in ("torch", "tensorflow", "jax", "numpy") if m in sys.modules)
print(json.dumps({"import": t1 - t0, "parser": t2 - t1, "parse": t3 - t2, "check": t4 - t3,
                  "frameworks": frameworks}))
"""


def check_files() -> list[str]:
    files = sorted((ROOT / "examples").glob("*.loss")) + sorted((ROOT / "lossdsl" / "std").glob("*.loss"))
    return [str(p) for p in files[:30]]


def measure(rounds: int = 21) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    files = check_files()
    script = Path(sys.executable).with_name("lossdsl")  # the console script, as users run it
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "lossdsl"]
    cmd += ["check", "-q", *files]
    base_cmd = [sys.executable, "-c", "pass"]
    subprocess.run(cmd, env=env, capture_output=True)  # writes the bytecode caches and the parser cache
    base, whole, stages = [], [], []
    for _ in range(rounds):  # interleaved, so load on the machine falls on both alike
        for times, c in ((base, base_cmd), (whole, cmd)):
            s = time.perf_counter()
            subprocess.run(c, env=env, capture_output=True, check=False)
            times.append(time.perf_counter() - s)
        out = subprocess.run([sys.executable, "-c", _STAGES, *files], env=env, capture_output=True, text=True)
        stages.append(json.loads(out.stdout))
    beyond = [w - b for w, b in zip(whole, base)]
    return {
        "files": len(files),
        "rounds": rounds,
        "whole_min": min(whole),
        "whole_median": statistics.median(whole),
        "base_min": min(base),
        "base_median": statistics.median(base),
        "beyond_min": min(whole) - min(base),
        "beyond_median": statistics.median(beyond),
        "stages": {k: min(s[k] for s in stages) for k in ("import", "parser", "parse", "check")},
        "frameworks": stages[0]["frameworks"],
    }


def rows(quick: bool = False) -> list[str]:
    m = measure(rounds=5 if quick else 21)
    ms = {k: v * 1e3 for k, v in m["stages"].items()}
    return [
        f"- `lossdsl check -q` on {m['files']} files (examples and std) as a whole process, "
        f"{m['rounds']} interleaved runs: least {m['whole_min'] * 1e3:.0f} ms against `python -c pass` "
        f"{m['base_min'] * 1e3:.0f} ms, **{m['beyond_min'] * 1e3:.0f} ms beyond start-up** "
        f"(median of the per-run differences {m['beyond_median'] * 1e3:.0f} ms)",
        f"- where it goes (least over the runs, each stage cold as in a fresh process): importing "
        f"`lossdsl.cli` {ms['import']:.0f} ms, loading the cached parser {ms['parser']:.0f} ms, "
        f"parsing the {m['files']} files {ms['parse']:.0f} ms, checking them {ms['check']:.0f} ms",
        f"- frameworks imported by `lossdsl check`: {m['frameworks'] or '[]'}",
    ]


if __name__ == "__main__":
    print("\n".join(rows(quick="--quick" in sys.argv)))
