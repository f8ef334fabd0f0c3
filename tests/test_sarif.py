"""`lossdsl check --format sarif`: a SARIF 2.1.0 log that GitHub code scanning accepts.

The log is validated against a JSON Schema of the SARIF 2.1.0 objects lossdsl writes, written
from the OASIS SARIF 2.1.0 standard (sarifLog §3.13, run §3.14, toolComponent §3.19,
reportingDescriptor §3.49, result §3.27, location §3.28, physicalLocation §3.29,
artifactLocation §3.4, region §3.30, message §3.11): required properties, value ranges and
enumerations, and no property the standard does not define. Then what GitHub reads is checked
value by value against the findings."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest

from lossdsl.diagnostics import CODES, Diagnostic
from lossdsl.explanations import EXPLANATIONS
from lossdsl.sarif import sarif_log
from lossdsl.source import Source, Span

from conftest import ROOT

_TEXT = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}, "additionalProperties": False}
_MULTIFORMAT = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string"}, "markdown": {"type": "string"}},
    "additionalProperties": False,
}
_POSITIVE = {"type": "integer", "minimum": 1}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}

SARIF_2_1_0 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["version", "runs"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"const": "2.1.0"},
        "runs": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/run"}},
    },
    "definitions": {
        "run": {
            "type": "object",
            "required": ["tool"],
            "additionalProperties": False,
            "properties": {
                "tool": {
                    "type": "object",
                    "required": ["driver"],
                    "additionalProperties": False,
                    "properties": {"driver": {"$ref": "#/definitions/toolComponent"}},
                },
                "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
                "originalUriBaseIds": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"uri": {"type": "string"}, "description": _TEXT},
                        "additionalProperties": False,
                    },
                },
                "results": {"type": "array", "items": {"$ref": "#/definitions/result"}},
            },
        },
        "toolComponent": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "version": {"type": "string"},
                "semanticVersion": {"type": "string"},
                "informationUri": {"type": "string", "format": "uri"},
                "rules": {"type": "array", "items": {"$ref": "#/definitions/reportingDescriptor"}, "uniqueItems": True},
            },
        },
        "reportingDescriptor": {
            "type": "object",
            "required": ["id"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "name": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]*$"},
                "shortDescription": _MULTIFORMAT,
                "fullDescription": _MULTIFORMAT,
                "help": _MULTIFORMAT,
                "helpUri": {"type": "string", "format": "uri"},
                "defaultConfiguration": {
                    "type": "object",
                    "properties": {"level": _LEVEL, "enabled": {"type": "boolean"}},
                    "additionalProperties": False,
                },
            },
        },
        "result": {
            "type": "object",
            "required": ["message"],
            "additionalProperties": False,
            "properties": {
                "ruleId": {"type": "string"},
                "ruleIndex": {"type": "integer", "minimum": -1},
                "level": _LEVEL,
                "message": _TEXT,
                "locations": {"type": "array", "items": {"$ref": "#/definitions/location"}},
            },
        },
        "location": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"physicalLocation": {"$ref": "#/definitions/physicalLocation"}},
        },
        "physicalLocation": {
            "type": "object",
            "required": ["artifactLocation"],
            "additionalProperties": False,
            "properties": {
                "artifactLocation": {
                    "type": "object",
                    "required": ["uri"],
                    "additionalProperties": False,
                    "properties": {"uri": {"type": "string", "format": "uri-reference"}, "uriBaseId": {"type": "string"}},
                },
                "region": {"$ref": "#/definitions/region"},
            },
        },
        "region": {
            "type": "object",
            "required": ["startLine"],
            "additionalProperties": False,
            "properties": {
                "startLine": _POSITIVE,
                "startColumn": _POSITIVE,
                "endLine": _POSITIVE,
                "endColumn": _POSITIVE,
                "snippet": _TEXT,
            },
        },
    },
}


def validate(log: dict) -> None:
    jsonschema.Draft7Validator.check_schema(SARIF_2_1_0)
    jsonschema.Draft7Validator(SARIF_2_1_0, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER).validate(log)


def cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lossdsl", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_the_schema_catches_what_it_should():
    good = sarif_log([], tool_version="1.0")
    validate(good)
    for broken in (
        {**good, "version": "2.0.0"},
        {**good, "runs": [{"tool": {"driver": {}}}]},
        {**good, "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "E1"}]}]},
        {**good, "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "fatal"}]}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_check_of_the_diagnostics_cases_is_valid_sarif_with_one_result_per_finding():
    r = cli("check", "--format", "sarif", "tests/diagnostics")
    assert r.returncode == 1
    log = json.loads(r.stdout)
    validate(log)
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "lossdsl"
    rules = driver["rules"]
    assert [rule["id"] for rule in rules] == list(CODES)
    text = cli("check", "--format", "json", "tests/diagnostics").stdout
    findings = json.loads(text)["findings"]
    assert len(run["results"]) == len(findings) > 40
    for result, finding in zip(run["results"], findings):
        assert result["ruleId"] == finding["code"]
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == finding["severity"]
        assert result["message"]["text"].startswith(finding["message"])
        (loc,) = result["locations"]
        physical = loc["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": finding["path"], "uriBaseId": "%SRCROOT%"}
        if "line" in finding:
            region = physical["region"]
            assert (region["startLine"], region["startColumn"], region["endLine"], region["endColumn"]) == (
                finding["line"], finding["column"], finding["end_line"], finding["end_column"],
            )
            assert region["snippet"]["text"] == finding["source_line"]


def test_rules_carry_the_explanations_help():
    (run,) = sarif_log([], tool_version="1.0")["runs"]
    for rule in run["tool"]["driver"]["rules"]:
        e = EXPLANATIONS[rule["id"]]
        assert rule["shortDescription"]["text"] == CODES[rule["id"]]
        assert rule["fullDescription"]["text"] == e.meaning
        assert rule["help"]["text"].startswith(e.fix)
        assert e.right.rstrip() in rule["help"]["markdown"]
        assert rule["defaultConfiguration"]["level"] == ("warning" if rule["id"] == "W701" else "error")


def test_the_region_of_a_finding_is_its_span_and_help_goes_in_the_message(tmp_path):
    src = Source("pred p: float[B]\nloss = mean(p) + zz\n", str(tmp_path / "a b.loss"))
    d = Diagnostic("unknown name `zz`", Span(src, 2, 18, 2, 20), "E201", help="declare it", notes=("n1",))
    log = sarif_log([d], tool_version="1.0")
    validate(log)
    (result,) = log["runs"][0]["results"]
    assert result["message"]["text"] == "unknown name `zz`\nnote: n1\nhelp: declare it"
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": (tmp_path / "a b.loss").as_uri()}
    assert physical["region"] == {
        "startLine": 2, "startColumn": 18, "endLine": 2, "endColumn": 20, "snippet": {"text": "loss = mean(p) + zz"},
    }


def test_a_finding_without_a_span_points_at_its_file():
    log = sarif_log([Diagnostic("no such file: x y.loss", None, "E001", path="sub/x y.loss")], tool_version="1.0")
    validate(log)
    (result,) = log["runs"][0]["results"]
    assert result["locations"] == [
        {"physicalLocation": {"artifactLocation": {"uri": "sub/x%20y.loss", "uriBaseId": "%SRCROOT%"}}}
    ]


def test_a_clean_check_is_an_empty_valid_log():
    r = cli("check", "--format", "sarif", "examples")
    assert r.returncode == 0
    log = json.loads(r.stdout)
    validate(log)
    assert log["runs"][0]["results"] == []


def test_sarif_output_imports_no_framework_and_no_numpy():
    from conftest import modules_imported_by

    code = "from lossdsl.cli import main; assert main(['check', '--format', 'sarif', 'examples']) == 0"
    assert modules_imported_by(code) == []
