"""`use` (docs/language.md §1): the `def`s of other files brought into scope.

`use "helpers.loss"` reads a path relative to the using file (to the working directory for
source text); `use std.NAME` reads `lossdsl/std/NAME.loss`. A used file's own `use`s are
followed, so its `def`s may call the `def`s it uses. Only `def`s come in: a used file's
declarations, `let`s and `loss` stay its own. A standard loss comes in as one `def` named
after its file (lossdsl/checker/loss_defs.py), its own helper `def`s written out in it. Only the parser reads the files, so
`lossdsl check` stays free of frameworks.

Errors: a file that cannot be read or has syntax errors (E212, with its errors in that file),
a cycle of `use`s (E213, naming each `use` on the way), and a name defined both here and in a
used file, or in two used files (E214, naming both places).
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

from .. import syntax as S
from ..diagnostics import LossError
from ..functions import USER_FUNCTIONS
from ..loading import load_source
from ..source import Source
from .loss_defs import loss_as_def
from .report import Reporter


@dataclass(frozen=True)
class UsedDef:
    definition: S.Def
    via: S.Use  # the `use` of the checked file that brought it in


def _where(span) -> str:
    return f"{span.path}:{span.line}:{span.col}"


def _key(source: Source) -> str:
    return str(source.path.resolve()) if source.path is not None else f"<{id(source)}>"


class Uses:
    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.modules: dict[str, S.Module | None] = {}  # by resolved path; None when unreadable

    def collect(self, module: S.Module) -> list[UsedDef]:
        """Every `def` the file's `use`s bring in, each once (a file used twice, directly or
        through another, counts once)."""
        out: list[UsedDef] = []
        seen: set[tuple[str, str]] = set()
        for use in (s for s in module.statements if isinstance(s, S.Use)):
            for d in self._defs_of(use, module.source, [(_key(module.source), None)]):
                key = (d.span.path, d.name)
                if key not in seen:
                    seen.add(key)
                    out.append(UsedDef(d, use))
        return out

    def _defs_of(self, use: S.Use, user: Source, chain: list[tuple[str, S.Use | None]]) -> list[S.Def]:
        source = self._load(use, user)
        if source is None:
            return []
        key = _key(source)
        if key in [k for k, _ in chain]:
            start = [k for k, _ in chain].index(key)
            steps = [u for _, u in chain[start + 1 :] if u is not None] + [use]
            self.report.error(
                f"`use` makes a cycle: `{use.target}` uses, directly or not, the file that uses it",
                use.span,
                "E213",
                notes=[f"{_where(u.span)}: `use {_shown(u)}`" for u in steps],
                help="move the shared `def`s into a file that neither uses",
            )
            return []
        module = self._parse(source, use)
        if module is None:
            return []
        defs = [s for s in module.statements if isinstance(s, S.Def)]
        if use.library == "std" and use.target not in USER_FUNCTIONS:
            # `use std.huber` defines `huber(yhat, y, delta=1.0)`; the file's own helpers, written
            # out in it, stay the file's (they read its lets and dimensions)
            as_def = loss_as_def(module, use.target)
            defs = [as_def] if as_def is not None else defs
        for inner in (s for s in module.statements if isinstance(s, S.Use)):
            defs += self._defs_of(inner, source, chain + [(key, use)])
        return defs

    def _load(self, use: S.Use, user: Source) -> Source | None:
        if use.library is not None:
            if use.library != "std":
                self.report.error(
                    f"unknown library `{use.library}`",
                    use.span,
                    "E212",
                    help='the library is `std` (`use std.huber`); a file is used by its path: `use "helpers.loss"`',
                )
                return None
            names = _std_names()
            if use.target not in names:
                import difflib

                close = difflib.get_close_matches(use.target, names, n=1)
                self.report.error(
                    f"the standard library has no `{use.target}`",
                    use.target_span,
                    "E212",
                    help=f"did you mean `std.{close[0]}`?" if close else f"it has: {', '.join(names)}",
                )
                return None
            from importlib import resources  # only when a spec uses the standard library

            path = pathlib.Path(str(resources.files("lossdsl.std").joinpath(f"{use.target}.loss")))
        else:
            base = user.path.parent if user.path is not None else pathlib.Path(os.getcwd())
            path = base / use.target
        try:
            return load_source(path)
        except LossError as e:
            self.report.error(
                f"cannot use `{_shown(use)}`: {e.findings[0].message}",
                use.target_span,
                "E212",
                help="a path is relative to the file that uses it",
            )
            return None

    def _parse(self, source: Source, use: S.Use) -> S.Module | None:
        key = _key(source)
        if key in self.modules:
            return self.modules[key]
        from ..parser import parse_source

        result = parse_source(source, allow_quick=False)
        errors = [d for d in result.findings if d.severity == "error"]
        module: S.Module | None = result.module
        if errors:
            self.report.error(
                f"the used file `{_shown(use)}` has syntax errors",
                use.target_span,
                "E212",
                notes=[f"{d.where}: {d.message}" for d in errors[:3]],
            )
            for d in errors:
                self.report.diags.add(d)
            module = None
        self.modules[key] = module
        return module


def _std_names() -> list[str]:
    # Read as package data, not imported: lossdsl.std compiles losses, and checking needs none of that.
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files("lossdsl.std").iterdir() if p.name.endswith(".loss"))


def _shown(use: S.Use) -> str:
    return f"{use.library}.{use.target}" if use.library else f'"{use.target}"'
