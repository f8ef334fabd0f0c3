"""Findings as a SARIF 2.1.0 log: `lossdsl check --format sarif`, for GitHub code scanning and
other tools that read the OASIS Static Analysis Results Interchange Format.

One run, tool `lossdsl`; one rule per code of `lossdsl.diagnostics.CODES`, described from
`lossdsl.explanations` (what `lossdsl explain` prints); one result per finding, its region the
finding's span (SARIF's lines and columns are 1-based with an exclusive end column, as a
`Span`'s are, and count Unicode code points, as Python strings do).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from .diagnostics import CODES, Diagnostic
from .explanations import EXPLANATIONS

__all__ = ["SARIF_SCHEMA", "SARIF_VERSION", "sarif_log"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# Relative paths are relative to the directory `lossdsl check` ran in: the repository root in CI.
SOURCE_ROOT = "%SRCROOT%"


def sarif_log(findings: Sequence[Diagnostic], *, tool_version: str) -> dict:
    """The SARIF log of `findings` (a JSON-ready dict)."""
    codes = list(CODES)
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "lossdsl",
                        "version": tool_version,
                        "semanticVersion": tool_version,
                        "rules": [_rule(code) for code in codes],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "originalUriBaseIds": {SOURCE_ROOT: {"description": {"text": "the directory lossdsl ran in"}}},
                "results": [_result(d, codes.index(d.code) if d.code in CODES else None) for d in findings],
            }
        ],
    }


def _rule(code: str) -> dict:
    e = EXPLANATIONS[code]
    help_text = f"{e.fix}\n\nRun `lossdsl explain {code}` for a wrong and a right example."
    what = "A spec" if e.language == "loss" else "Code"
    help_markdown = (
        f"{e.fix}\n\n{what} that gets it:\n\n```{e.language}\n{e.wrong.rstrip()}\n```\n\n"
        f"The same, fixed:\n\n```{e.language}\n{e.right.rstrip()}\n```"
    )
    return {
        "id": code,
        "name": _rule_name(CODES[code]),
        "shortDescription": {"text": CODES[code]},
        "fullDescription": {"text": e.meaning},
        "help": {"text": help_text, "markdown": help_markdown},
        "defaultConfiguration": {"level": "warning" if code.startswith("W") else "error"},
    }


def _rule_name(title: str) -> str:
    """SARIF's rule name is an identifier-like word: `shapes that do not broadcast` -> `ShapesThatDoNotBroadcast`."""
    words = "".join(ch if ch.isalnum() else " " for ch in title).split()
    return "".join(w[:1].upper() + w[1:] for w in words)


def _result(d: Diagnostic, rule_index: int | None) -> dict:
    text = d.message
    for note in d.notes:
        text += f"\nnote: {note}"
    if d.help:
        text += f"\nhelp: {d.help}"
    result: dict = {
        "ruleId": d.code,
        "level": "error" if d.severity == "error" else "warning",
        "message": {"text": text},
        "locations": [{"physicalLocation": _physical_location(d)}],
    }
    if rule_index is not None:
        result["ruleIndex"] = rule_index
    return result


def _physical_location(d: Diagnostic) -> dict:
    path = d.span.path if d.span is not None else (d.path or "<unknown>")
    location: dict = {"artifactLocation": _artifact(path)}
    if d.span is not None:
        s = d.span
        end_col = s.end_col if s.end_line > s.line else max(s.end_col, s.col)
        location["region"] = {
            "startLine": s.line,
            "startColumn": s.col,
            "endLine": max(s.end_line, s.line),
            "endColumn": end_col,
            "snippet": {"text": s.source.line(s.line)},
        }
    return location


def _artifact(path: str) -> dict:
    p = Path(path)
    if p.is_absolute():
        return {"uri": p.as_uri()}
    # A relative reference with forward slashes, resolved against the directory lossdsl ran in.
    return {"uri": quote(PurePosixPath(*p.parts).as_posix(), safe="/"), "uriBaseId": SOURCE_ROOT}
