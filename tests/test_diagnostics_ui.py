"""Diagnostics as a compiler's UI tests: each wrong spec in tests/diagnostics/ sits
beside the exact output `lossdsl check` must print for it (path:line:col, message,
source line, caret, notes, help). Regenerate after a deliberate change with
`LOSSDSL_UPDATE_DIAGNOSTICS=1 pytest tests/test_diagnostics_ui.py` and review the diff.
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import lossdsl
from lossdsl import LossError
from lossdsl.cli import main
from lossdsl.diagnostics import CODES
from lossdsl.frontend import findings_for

from conftest import ROOT

CASES = sorted((ROOT / "tests" / "diagnostics").glob("*.loss"))
UPDATE = os.environ.get("LOSSDSL_UPDATE_DIAGNOSTICS") == "1"


def run_check(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with redirect_stdout(out):
            code = main(["check", *args])
    finally:
        os.chdir(cwd)
    return code, out.getvalue()


def test_there_are_at_least_twenty_wrong_specs():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_expected_output(case: Path):
    rel = case.relative_to(ROOT).as_posix()
    code, out = run_check(rel)
    expected_file = case.with_suffix(".out")
    if UPDATE:
        expected_file.write_text(out)
    expected = expected_file.read_text()
    assert out == expected
    is_warning_only = case.stem.startswith("warning_")
    assert code == (0 if is_warning_only else 1)
    for line in out.splitlines():
        assert "Traceback" not in line


def test_whole_folder_fails_and_reports_every_file():
    code, out = run_check("tests/diagnostics")
    assert code == 1
    for case in CASES:
        assert case.relative_to(ROOT).as_posix() + ":" in out, case.name


# ---- every code of the catalogue (lossdsl.diagnostics.CODES) has a UI case, or a reason not to ----

def _raises(call) -> list[str]:
    try:
        call()
    except LossError as err:
        return [d.code for d in err.findings]
    return []


def _spec(text: str):
    """The codes `lossdsl check` reports for a spec (errors and warnings)."""
    return lambda: [d.code for d in findings_for(text)]


def _call(spec: str, *args, context=None, params=None, sharded=None, backend="numpy", **kwargs):
    """The codes raised by compiling `spec` and calling it with NumPy arguments."""
    def run():
        def go():
            f = lossdsl.compile(spec, backend=backend, context=context, params=params, sharded=sharded)
            f(*args, **kwargs)
        return _raises(go)
    return run


_P = "pred yhat: float[B]\n"
_ONES = np.ones(3)
_WHY_SPEC = ("no UI case yet (docs/errors.md prints each code's UI case, so adding one regenerates it); "
             "pinned here by a spec that triggers it")
_WHY_CALL = "raised when a compiled loss is built or called, which `lossdsl check` never does"

# code -> (why it has no case in tests/diagnostics/, something that must still report it)
NO_UI_CASE = {
    "E001": ("the spec cannot be read: a missing file has no text to show",
             lambda: _raises(lambda: lossdsl.check(ROOT / "tests" / "diagnostics" / "no_such_spec.loss"))),
    "E103": (_WHY_SPEC, _spec(_P + "loss = mean(yhat))\n")),
    "E106": (_WHY_SPEC, _spec(_P + "loss = mean(yhat) $ 1\n")),
    "E108": (_WHY_SPEC, _spec(_P + "loss = mean(sum(axis=B, yhat))\n")),
    "E109": (_WHY_SPEC, _spec(_P + "let a = (yhat = 1)\nloss = mean(yhat)\n")),
    "E205": (_WHY_SPEC, _spec(_P + "loss = mean(yhat)\nloss = sum(yhat)\n")),
    "E208": (_WHY_SPEC, _spec(_P + "loss = mean(log)\n")),
    "E209": (_WHY_SPEC, _spec("target y: float[B]\nloss = mean(y)\n")),
    "E211": (_WHY_SPEC, _spec(_P + "def log(x) = x\nloss = mean(log(yhat))\n")),
    "E306": (_WHY_SPEC, _spec("pred k: int[B]\nloss = mean(float(k))\n")),
    "E407": (_WHY_SPEC, _spec(_P + "input k: int\nloss = mean(yhat[k:])\n")),
    "E409": (_WHY_SPEC, _spec("pred p: float[B, C]\ninput k: int[B]\nloss = mean(p[k, :])\n")),
    "E503": (_WHY_SPEC, _spec(_P + "loss = mean(sum(yhat, axis=B, axis=B))\n")),
    "E504": (_WHY_SPEC, _spec(_P + "input k: int\nloss = mean(sum(yhat, axis=k))\n")),
    "E801": (_WHY_CALL, _call(_P + "target y: float[B]\nloss = mean(yhat - y)\n", _ONES)),
    "E802": (_WHY_CALL, _call(_P + "loss = mean(yhat)\n", _ONES, _ONES)),
    "E803": (_WHY_CALL, _call(_P + "loss = mean(yhat)\n", np.ones(3, dtype=np.int64))),
    "E804": (_WHY_CALL, _call(_P + "loss = mean(yhat)\n", np.ones((3, 2)))),
    "E805": (_WHY_CALL, _call("pred p: float[3]\nloss = mean(p)\n", np.ones(4))),
    "E806": (_WHY_CALL, _call(_P + "context w: float[B]\nloss = mean(w * yhat)\n", _ONES)),
    "E807": (_WHY_CALL, _call(_P + "input x: {a: float[B], b: float[B]}\nloss = mean(yhat * x.a * x.b)\n", _ONES,
                              x={"a": _ONES})),
    "E808": (_WHY_CALL, _call(_P + "loss = yhat ^ 2\n", _ONES, reduction="median")),
    "E810": (_WHY_CALL, _call(_P + "loss = mean(yhat)\n", _ONES, backend="no_such_backend")),
    "E811": (_WHY_CALL, _call(_P + "loss = mean(yhat)\n", _ONES, sharded="N")),
    "E812": (_WHY_CALL, _call("pred p: float[B, C]\ninput k: int[B]\nloss = mean(pick(p, k))\n",
                              np.ones((2, 3)), np.array([0, 3]))),
    "E214": ("needs a second file to clash with (tests/test_use.py has the cases); pinned here by two files "
             "written to a temporary folder", lambda: _clash_across_files()),
    "E814": (_WHY_CALL, lambda: _raises(lambda: lossdsl.compile(
        _P + "input w: float[B] in (0, inf)\nloss = mean(w * yhat)\n", backend="numpy",
        check_domains=True)(_ONES, np.zeros(3)))),
    "E813": ("raised inside Keras's compile or fit, which have no source position to show (tests/workers/"
             "keras_metadata_worker.py trains with it on every Keras backend)", lambda: _keras_packed_metric()),
}


def _clash_across_files() -> list[str]:
    import tempfile

    folder = Path(tempfile.mkdtemp())
    (folder / "helpers.loss").write_text("def sq(x) = x^2\n")
    (folder / "main.loss").write_text('use "helpers.loss"\n' + _P + "def sq(x) = x * x\nloss = mean(sq(yhat))\n")
    return _raises(lambda: lossdsl.check(folder / "main.loss"))


def _keras_packed_metric() -> list[str]:
    """The check `compile` runs on a model with a packed y_true and a plain metric."""
    import keras

    import lossdsl.keras

    loss = lossdsl.keras.Loss("pred p: float[B, C]\ntarget y: float[B, C]\ninput g: int[B]\n"
                              "loss = -sum(y * log(p), axis=C) * float(g)\n", y_true=["y", "g"])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    return _raises(lambda: model.compile(loss=loss, metrics=["accuracy"]))


def ui_codes() -> dict[str, list[str]]:
    """code -> the UI cases whose findings carry it (read from the findings, not the text)."""
    out: dict[str, list[str]] = {}
    for case in CASES:
        for d in findings_for(case):
            out.setdefault(d.code, []).append(case.stem)
    return out


def test_every_code_in_the_catalogue_has_a_ui_case_or_a_named_reason_not_to():
    covered = set(ui_codes())
    missing = [c for c in CODES if c not in covered and c not in NO_UI_CASE]
    assert not missing, f"codes with neither a case in tests/diagnostics/ nor an entry in NO_UI_CASE: {missing}"


def test_the_opt_out_list_names_only_catalogued_codes_without_a_ui_case():
    assert set(NO_UI_CASE) <= set(CODES), set(NO_UI_CASE) - set(CODES)
    stale = sorted(set(NO_UI_CASE) & set(ui_codes()))
    assert not stale, f"{stale} now have a UI case: remove them from NO_UI_CASE"
    assert all(why.strip() for why, _ in NO_UI_CASE.values())


def test_the_ui_cases_report_only_catalogued_codes():
    assert set(ui_codes()) <= set(CODES), set(ui_codes()) - set(CODES)


@pytest.mark.parametrize("code", sorted(NO_UI_CASE))
def test_each_opted_out_code_is_still_reported_by_its_trigger(code):
    _, trigger = NO_UI_CASE[code]
    assert code in trigger()
