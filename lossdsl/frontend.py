"""The front end as one call: text -> syntax tree -> checked IR, with every finding.

    parse(spec) -> syntax.Module
    check(spec) -> CheckedModule          (raises LossError; warnings on .warnings)
    check_parsed(parse_result) -> CheckedModule   (for a caller that has parsed already)

The rest of the way to code (lowering, code generation) is `lossdsl.pipeline`.

Imports no ML framework and no NumPy, so `lossdsl check` starts fast.
"""

from __future__ import annotations

from .analysis import domain_findings, gradient_findings
from .checked import CheckedModule
from .checker import check_module
from .checker.expressions import Observer
from .checker.reuse import LetMemo
from .diagnostics import Diagnostic, LossError
from .loading import load_source
from .parser import ParseResult, parse, parse_source
from .source import Source

__all__ = ["analyze", "check", "check_parsed", "check_source", "check_types", "findings_for", "parse"]


def check(spec, *, allow_quick: bool = False) -> CheckedModule:
    """Parse and check a spec (a path or source text). Raises `LossError` on any error."""
    source = load_source(spec)
    return check_source(source, allow_quick=allow_quick)


def check_source(source: Source, *, allow_quick: bool = False) -> CheckedModule:
    return check_parsed(parse_source(source, allow_quick=allow_quick))


def check_parsed(result: ParseResult, *, observe: Observer | None = None) -> CheckedModule:
    """Check what the parser made of a spec, reporting its syntax findings with the checker's.
    `observe` is told of every expression checked and its value (lossdsl/checker/expressions.py)."""
    return analyze(check_types(result, observe=observe))


def check_types(result: ParseResult, *, observe: Observer | None = None, memo: LetMemo | None = None) -> CheckedModule:
    """The first half of `check_parsed`: the types, and the syntax and type errors; `analyze`
    is the rest (the language server answers requests between the two). `memo`: what the last
    check of the same file did, for a check after an edit (lossdsl/checker/reuse.py)."""
    findings: list[Diagnostic] = list(result.findings)
    try:
        checked = check_module(result.module, broken=result.broken, observe=observe, memo=memo)
    except LossError as err:
        raise LossError(findings + err.findings) from None
    if any(d.severity == "error" for d in findings):
        raise LossError(findings)
    return checked


def analyze(checked: CheckedModule) -> CheckedModule:
    """The analyses after type checking: gradient paths (errors), then domains (warnings)."""
    errors = gradient_findings(checked)
    if errors:
        raise LossError(errors)
    checked.warnings = domain_findings(checked)
    return checked


def findings_for(spec) -> list[Diagnostic]:
    """Every finding (errors and warnings) for one spec, without raising: what `lossdsl check` prints."""
    try:
        checked = check(spec)
    except LossError as err:
        return err.findings
    return list(checked.warnings)
