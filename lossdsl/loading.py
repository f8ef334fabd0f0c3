"""A spec as the user gives it (a path, source text, or a `Source`) -> a `Source`.

Kept apart from `lossdsl.source` so that the dependency runs one way: a finding
(`diagnostics`) points at a `Span`, and reading a file can fail with a finding.
"""

from __future__ import annotations

import os
import pathlib

from .diagnostics import LossError
from .source import Source, is_path_like


def load_source(spec: str | os.PathLike[str] | Source, name: str | None = None) -> Source:
    """Read `spec` as a file if it names one, else take it as source text (called `name` in
    diagnostics, "<string>" by default)."""
    if isinstance(spec, Source):
        return spec
    if is_path_like(spec):
        path = pathlib.Path(os.fspath(spec))
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LossError.plain(f"no such file: {path}", path=str(path), code="E001") from None
        except IsADirectoryError:
            raise LossError.plain(f"is a directory, not a .loss file: {path}", path=str(path), code="E001") from None
        except UnicodeDecodeError as e:
            raise LossError.plain(f"cannot read {path} as UTF-8: {e.reason}", path=str(path), code="E001") from None
        except OSError as e:
            raise LossError.plain(f"cannot read {path}: {e.strerror}", path=str(path), code="E001") from None
        return Source(text, str(path), path)
    if isinstance(spec, str):
        return Source(spec, name or "<string>")
    raise TypeError(f"expected a path or source text, got {type(spec).__name__}")
